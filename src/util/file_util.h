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

// As write_text_file_atomic, and durable: the file is fsynced before the
// rename and its folder after it, so after a crash or power loss `path` holds
// either the old or the new content. Resume manifests depend on this.
void write_file_durable(const std::filesystem::path& path, const void* data, size_t size);
inline void write_text_file_durable(const std::filesystem::path& path, const std::string& text) {
  write_file_durable(path, text.data(), text.size());
}

// fsyncs a folder so that renames and removals inside it survive a crash.
// Best effort: file systems that refuse fsync on folders are not an error.
void sync_folder(const std::filesystem::path& dir);

}  // namespace lwq
