#include "data/calib_dataset.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

std::vector<std::string> load_json_array(const std::filesystem::path& file) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(read_text_file(file));
  } catch (const nlohmann::json::exception& e) {
    fail("calibration file {} is not valid JSON: {}", file.string(), e.what());
  }
  if (!doc.is_array()) fail("calibration file {} must hold a JSON array of strings", file.string());
  std::vector<std::string> prompts;
  for (size_t i = 0; i < doc.size(); ++i) {
    if (!doc[i].is_string())
      fail("calibration file {}: element {} is {}, expected a string", file.string(), i, doc[i].type_name());
    prompts.push_back(doc[i].get<std::string>());
  }
  return prompts;
}

// Blank lines are skipped (msModelSlim would fail on them; a trailing empty
// line is too common to treat as an error).
std::vector<std::string> load_json_lines(const std::filesystem::path& file) {
  std::string text = read_text_file(file);
  std::vector<std::string> prompts;
  size_t pos = 0, raw_lines = 0;
  int first_raw_line = 0;
  for (int line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    size_t next = end == std::string::npos ? text.size() : end + 1;
    std::string raw = text.substr(pos, next - pos);
    pos = next;
    if (is_blank(raw)) continue;
    nlohmann::json item;
    try {
      item = nlohmann::json::parse(raw);
    } catch (const nlohmann::json::exception& e) {
      fail("calibration file {} line {}: invalid JSON ({})", file.string(), line_no, e.what());
    }
    // msModelSlim reads "inputs_pretokenized"; lwquant also reads "text", the
    // shape HF datasets and most tools write (a deliberate difference: the
    // reference would calibrate on the raw JSON line, braces included).
    const char* key = nullptr;
    if (item.is_object())
      for (const char* k : {"inputs_pretokenized", "text"})
        if (item.contains(k)) {
          key = k;
          break;
        }
    if (key) {
      const auto& value = item[key];
      if (!value.is_string())
        fail("calibration file {} line {}: \"{}\" must be a string, got {}", file.string(), line_no, key,
             value.type_name());
      prompts.push_back(value.get<std::string>());
    } else {
      prompts.push_back(raw);  // msModelSlim quirk 10: the raw line, newline included
      if (raw_lines++ == 0) first_raw_line = line_no;
    }
  }
  if (raw_lines > 0)
    spdlog::warn("calibration file {}: {} line(s) (first: line {}) have neither \"inputs_pretokenized\" nor \"text\"; "
                 "each is used as a prompt as it stands, JSON syntax included (msModelSlim's behaviour)",
                 file.string(), raw_lines, first_raw_line);
  return prompts;
}

bool has_json_suffix(const std::filesystem::path& file) { return file.extension() == ".json"; }

}  // namespace

std::filesystem::path resolve_dataset_path(const std::string& name,
                                           const std::filesystem::path& builtin_dir) {
  std::filesystem::path given(name);
  if (std::filesystem::exists(given)) return given;
  std::filesystem::path builtin = builtin_dir / name;
  if (!given.is_absolute() && std::filesystem::exists(builtin)) return builtin;
  fail("calibration dataset '{}' not found (neither a file nor a name in {})", name, builtin_dir.string());
}

std::vector<std::string> load_calib_prompts(const std::filesystem::path& file) {
  if (!std::filesystem::is_regular_file(file))
    fail("calibration file {} does not exist or is not a file", file.string());
  auto prompts = has_json_suffix(file) ? load_json_array(file) : load_json_lines(file);
  if (prompts.empty()) fail("calibration file {} holds no prompts", file.string());
  return prompts;
}

}  // namespace lwq
