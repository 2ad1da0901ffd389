#include "data/vlm_dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>

#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

std::string lower_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_image_file(const fs::path& p) {
  const std::string ext = lower_extension(p);
  return ext == ".jpg" || ext == ".jpeg" || ext == ".png";
}

VlmCalibEntry entry_from_json(const nlohmann::json& item, const fs::path& index, const std::string& where,
                              const std::string& default_text) {
  VlmCalibEntry e;
  if (item.is_string()) {
    e.text = item.get<std::string>();
    return e;
  }
  if (!item.is_object()) fail("{}: expected an object {{\"text\", \"image\"}} or a string, got {}", where, item.dump());
  for (const char* media : {"audio", "video"})
    if (item.contains(media)) fail("{}: '{}' entries are not supported by lwquant (images only)", where, media);
  for (const char* key : {"text", "image"})
    if (item.contains(key) && !item[key].is_string() && !item[key].is_null())
      fail("{}: \"{}\" must be a string, got {}", where, key, item[key].dump());
  e.text = item.contains("text") && item["text"].is_string() ? item["text"].get<std::string>() : "";
  if (e.text.empty()) e.text = default_text;
  if (item.contains("image") && item["image"].is_string()) {
    fs::path image(item["image"].get<std::string>());
    if (image.is_relative()) image = index.parent_path() / image;
    if (!is_image_file(image)) fail("{}: image {} is not a .jpg, .jpeg or .png file", where, image.string());
    if (!fs::is_regular_file(image)) fail("{}: image {} does not exist", where, image.string());
    e.image = image;
  }
  return e;
}

std::vector<VlmCalibEntry> load_index(const fs::path& file, const std::string& default_text) {
  const std::string text = read_text_file(file);
  std::vector<VlmCalibEntry> out;
  auto parse = [&](const std::string& s, const std::string& where) {
    try {
      return nlohmann::json::parse(s);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: invalid JSON ({})", where, e.what());
    }
  };
  if (file.extension() == ".json") {
    nlohmann::json doc = parse(text, file.string());
    if (!doc.is_array()) fail("{}: expected a JSON array of {{\"text\", \"image\"}} entries", file.string());
    for (size_t i = 0; i < doc.size(); ++i)
      out.push_back(entry_from_json(doc[i], file, fmt::format("{} entry {}", file.string(), i), default_text));
    return out;
  }
  size_t pos = 0;
  for (int line = 1; pos < text.size(); ++line) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    const std::string raw = text.substr(pos, end - pos);
    pos = end + 1;
    if (raw.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = fmt::format("{} line {}", file.string(), line);
    out.push_back(entry_from_json(parse(raw, where), file, where, default_text));
  }
  return out;
}

}  // namespace

std::vector<VlmCalibEntry> load_vlm_dataset(const fs::path& path, const std::string& default_text) {
  std::vector<VlmCalibEntry> out;
  if (fs::is_directory(path)) {
    const bool json = fs::exists(path / "index.json"), jsonl = fs::exists(path / "index.jsonl");
    if (json && jsonl) fail("{} holds both index.json and index.jsonl; keep one", path.string());
    if (json || jsonl) return load_vlm_dataset(path / (json ? "index.json" : "index.jsonl"), default_text);
    std::vector<fs::path> images;
    for (const auto& f : fs::directory_iterator(path))
      if (f.is_regular_file() && is_image_file(f.path())) images.push_back(f.path());
    std::sort(images.begin(), images.end());
    for (auto& image : images) out.push_back({default_text, std::move(image)});
  } else if (fs::is_regular_file(path)) {
    const std::string ext = lower_extension(path);
    if (ext != ".json" && ext != ".jsonl")
      fail("calibration set {} is neither a folder of images nor a .json/.jsonl index", path.string());
    out = load_index(path, default_text);
  } else {
    fail("calibration set {} does not exist", path.string());
  }
  if (out.empty()) fail("calibration set {} holds no usable entry (images .jpg/.jpeg/.png, or index entries)", path.string());
  return out;
}

}  // namespace lwq
