// Image + text calibration sets for vision-language models, found the way
// msModelSlim's VLMDatasetLoader finds them (spec §1.9.2): an index file
// (`index.json`: a JSON array; `index.jsonl` or any other `.json`/`.jsonl`:
// one entry per line) of {"text": ..., "image": ...} entries with paths
// relative to the index, a folder holding one such index, or a folder of
// images (.jpg, .jpeg, .png, by name) that all take the default text.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lwq {

struct VlmCalibEntry {
  std::string text;             // the prompt (spec.default_text when the entry has none)
  std::filesystem::path image;  // empty: a text-only entry
};

// Throws naming the file (and entry) for an unreadable or invalid index, an
// entry that is not an object or a string, an image that does not exist or
// has another suffix, audio or video entries (not supported), and a set with
// no entry at all.
std::vector<VlmCalibEntry> load_vlm_dataset(const std::filesystem::path& path, const std::string& default_text);

}  // namespace lwq
