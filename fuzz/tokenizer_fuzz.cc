// Fuzz target: a tokenizer.json (src/data/tokenizer.h). The input is the
// tokenizer.json text, optionally followed by a NUL byte and the text of a
// tokenizer_config.json (JSON never holds a raw NUL, so the split is free).
// A tokenizer that loads is run on fixed texts: encode, encode with special
// tokens, decode (with and without special tokens) and id lookups.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer.h"
#include "fuzz/fuzz_util.h"

namespace {

// Short on purpose: a hostile merge table can make BPE quadratic per word.
const std::string_view kTexts[] = {
    "Hello world! It's 2024, isn't it?  Tabs\tand\nnewlines\r\n",
    "Once upon a time, there was a little dog named Spot.",
    "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80 caf\xc3\xa9 e\xcc\x81",  // 你好，世界 😀 café é
    "<s> </s> <unk> <|endoftext|> <|im_start|>user<|im_end|> [mask] dog Cat",
    "   leading and trailing spaces   ",
    "\xff\xfe invalid \xc3 utf-8 \xed\xa0\x80",
    "12345 678.9 x_y-z",
    "",
};

void exercise(const lwq::Tokenizer& tok) {
  std::vector<int32_t> ids;
  for (std::string_view text : kTexts) {
    lwq::fuzz::expect_lwq_error_only([&] {
      auto plain = tok.encode(text);
      auto special = tok.encode_with_special(text);
      (void)tok.decode(plain);
      (void)tok.decode(special, /*skip_special_tokens=*/false);
      ids.insert(ids.end(), plain.begin(), plain.end());
    });
  }
  (void)tok.vocab_size();
  (void)tok.adds_bos();
  for (int32_t id : {0, 1, 2, 3, 255, 256, 151643, -1, INT32_MAX}) {
    lwq::fuzz::expect_lwq_error_only([&] { (void)tok.id_to_token(id); });
    ids.push_back(id);
  }
  lwq::fuzz::expect_lwq_error_only([&] { (void)tok.decode(ids); });
  lwq::fuzz::expect_lwq_error_only([&] { (void)tok.decode(ids, false); });
  for (std::string_view t : {"<s>", "</s>", "<unk>", "<|endoftext|>", "a", "\xc4\xa0"})
    (void)tok.token_to_id(t);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  std::optional<std::string_view> config;
  if (nul != std::string_view::npos) config = input.substr(nul + 1);
  lwq::fuzz::expect_lwq_error_only([&] {
    auto tok = lwq::Tokenizer::from_json(json, "tokenizer.json", config);
    exercise(tok);
  });
  return 0;
}
