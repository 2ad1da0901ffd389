// Fuzz target: an ascendV1 folder's quant_model_description.json, and
// optionally its config.json (src/eval/quantized_folder.h,
// parse_quantized_folder: every check that needs no float model).
//
// The input is the description text, optionally followed by a NUL byte and
// the text of config.json (JSON never holds a raw NUL). At start-up the
// harness copies the small valid folder fuzz/data/quantized_llama (weights
// with W8A8, W8A8_DYNAMIC, W8A16 and FLOAT Linears, and its config.json) into
// a scratch folder; each input is written there as the description (and
// config.json, else the fixed one is put back) and the folder is parsed.
// The same description is then parsed as a mindie_format folder (MindIE-SD's
// layout, QuantFormat::Mindie): its files named after the description's
// model_quant_type when it has a plain one, the fixture's weights hard-linked.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "eval/quantized_folder.h"
#include "fuzz/fuzz_util.h"
#include "util/file_util.h"

namespace {

namespace fs = std::filesystem;

fs::path folder() { return lwq::fuzz::scratch_dir() / "quantized"; }

fs::path mindie_folder() { return lwq::fuzz::scratch_dir() / "mindie"; }
fs::path mindie_weights() { return lwq::fuzz::scratch_dir() / "mindie_weights.safetensors"; }
constexpr fs::perms kMode0640 = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read;

// The file-name suffix mindie_format_saver derives from model_quant_type
// ("" for FLOAT or none), or false when the type is not a plain name.
bool mindie_suffix(std::string_view description, std::string& suffix) {
  const auto j = nlohmann::json::parse(description, nullptr, false);
  std::string type = "float";
  if (j.is_object() && j.contains("model_quant_type") && j["model_quant_type"].is_string())
    type = j["model_quant_type"].get<std::string>();
  if (type.empty() || type.size() > 32) return false;
  for (char& c : type) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  suffix = type == "float" ? "" : "_" + type;
  return true;
}

void parse_as_mindie(std::string_view description) {
  std::string suffix;
  if (!mindie_suffix(description, suffix)) return;
  fs::remove_all(mindie_folder());
  fs::create_directories(mindie_folder());
  const fs::path desc = mindie_folder() / ("quant_model_description" + suffix + ".json");
  lwq::fuzz::write_file(desc, description);
  fs::permissions(desc, kMode0640);
  fs::create_hard_link(mindie_weights(), mindie_folder() / ("quant_model_weight" + suffix + ".safetensors"));
  lwq::fuzz::expect_lwq_error_only([&] {
    lwq::QuantizedFolder q = lwq::parse_quantized_folder(mindie_folder(), lwq::QuantFormat::Mindie);
    for (const auto& prefix : q.quantized_linears()) (void)q.linear_type(prefix);
  });
}

std::string& fixed_config() {
  static std::string text;
  return text;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  const fs::path fixture = fs::path(LWQ_SOURCE_DIR) / "fuzz/data/quantized_llama";
  fs::create_directories(folder());
  fs::copy_file(fixture / "quant_model_weights.safetensors", folder() / "quant_model_weights.safetensors",
                fs::copy_options::overwrite_existing);
  fixed_config() = lwq::read_text_file(fixture / "config.json");
  fs::copy_file(fixture / "quant_model_weights.safetensors", mindie_weights(), fs::copy_options::overwrite_existing);
  fs::permissions(mindie_weights(), kMode0640);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  lwq::fuzz::write_file(folder() / "quant_model_description.json", input.substr(0, nul));
  lwq::fuzz::write_file(folder() / "config.json",
                        nul == std::string_view::npos ? std::string_view(fixed_config()) : input.substr(nul + 1));
  lwq::fuzz::expect_lwq_error_only([&] {
    lwq::QuantizedFolder q = lwq::parse_quantized_folder(folder());
    (void)q.model_quant_type();
    (void)q.serving_dtype();
    for (const auto& prefix : q.quantized_linears()) (void)q.linear_type(prefix);
    for (const auto& name : q.tensor_names()) (void)q.type_of(name);
  });
  parse_as_mindie(input.substr(0, nul));
  return 0;
}
