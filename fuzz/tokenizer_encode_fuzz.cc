// Fuzz target: arbitrary text through fixed, real tokenizers (the texts a
// user's calibration file or prompt may hold). The first input byte picks the
// tokenizer, the rest is the text: encode, encode with special tokens, and
// decode the ids again (with and without special tokens).
//   0: examples/stories260K (sentencepiece-style, llama)
//   1: tests/data/tokenizer/synth_bytelevel.json (byte-level, added tokens with lstrip/rstrip/single_word)
//   2: tests/data/tokenizer/synth_metaspace_first.json (Metaspace pre-tokenizer)
//   3: Qwen3's tokenizer.json from the shared folder (NFC, byte-level, regex split);
//      fuzz/corpus/tokenizer/qwen3_trimmed.json when the shared folder is absent.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"
#include "fuzz/fuzz_util.h"
#include "util/file_util.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::unique_ptr<lwq::Tokenizer>>& tokenizers() {
  static std::vector<std::unique_ptr<lwq::Tokenizer>> all;
  return all;
}

lwq::Tokenizer synth(const char* name) {
  fs::path file = fs::path(LWQ_SOURCE_DIR) / "tests/data/tokenizer" / name;
  auto doc = nlohmann::json::parse(lwq::read_text_file(file));
  return lwq::Tokenizer::from_json(doc.at("tokenizer").dump(), file.string());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  auto& all = tokenizers();
  all.push_back(std::make_unique<lwq::Tokenizer>(lwq::Tokenizer::load(fs::path(LWQ_SOURCE_DIR) / "examples/stories260K")));
  all.push_back(std::make_unique<lwq::Tokenizer>(synth("synth_bytelevel.json")));
  all.push_back(std::make_unique<lwq::Tokenizer>(synth("synth_metaspace_first.json")));
  fs::path qwen = fs::path(LWQ_SHARED_DIR) / "tokenizers/qwen3";
  if (!fs::exists(qwen / "tokenizer.json")) {
    qwen = fs::path(LWQ_SOURCE_DIR) / "fuzz/corpus/tokenizer/qwen3_trimmed.json";
    std::fprintf(stderr, "lwq fuzz: shared Qwen3 tokenizer missing, using %s\n", qwen.c_str());
  }
  all.push_back(std::make_unique<lwq::Tokenizer>(lwq::Tokenizer::load(qwen)));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto& tok = *tokenizers()[data[0] % tokenizers().size()];
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  lwq::fuzz::expect_lwq_error_only([&] {
    auto ids = tok.encode(text);
    auto special = tok.encode_with_special(text);
    (void)tok.decode(ids);
    (void)tok.decode(special, /*skip_special_tokens=*/false);
  });
  return 0;
}
