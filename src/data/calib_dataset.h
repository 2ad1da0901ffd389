// Calibration prompts, read the way msModelSlim's FileDatasetLoader reads them
// (spec §1.9.1): a `.json` file is an array of strings; anything else is JSON
// Lines, one prompt per line taken from the key "inputs_pretokenized", or the
// whole raw line (newline included) when that key is absent.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lwq {

// `name` as given in spec.dataset / --calib_data: an existing path is used as
// is; otherwise it is looked up in `builtin_dir` (lwquant's calib/ folder).
std::filesystem::path resolve_dataset_path(const std::string& name,
                                           const std::filesystem::path& builtin_dir);

// Throws lwq::Error naming the file (and line) for a missing file, invalid
// JSON, a non-string entry or an empty result.
std::vector<std::string> load_calib_prompts(const std::filesystem::path& file);

}  // namespace lwq
