// Small filesystem helpers shared by readers and writers.
#pragma once

#include <filesystem>
#include <string>

namespace lwq {

// Whole file as a string; throws lwq::Error naming the path on failure.
std::string read_text_file(const std::filesystem::path& path);

// Writes `text` to `path` through a temporary sibling and a rename, so a
// reader never sees a half-written file. Throws lwq::Error on any failure
// (a full disk included) and removes the temporary.
void write_text_file_atomic(const std::filesystem::path& path, const std::string& text);

}  // namespace lwq
