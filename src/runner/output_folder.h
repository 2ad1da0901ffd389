// The save folder is built under a temporary name beside it and renamed into
// place only when complete, so a failed run never leaves a folder that looks
// finished (and --overwrite replaces old content only at that moment).
#pragma once

#include <filesystem>

namespace lwq {

class OutputFolder {
 public:
  // Checks `final_path` up front: refuses an existing non-empty folder unless
  // `overwrite`, a path that is a file, or an unwritable parent. Creates the
  // temporary folder "<parent>/.<name>.lwquant-tmp-<pid>".
  OutputFolder(std::filesystem::path final_path, bool overwrite);
  ~OutputFolder();  // removes the temporary folder unless commit() succeeded
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;

  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& final_path() const { return final_; }
  // Moves the finished folder into place (replacing the old one if allowed).
  void commit();

 private:
  std::filesystem::path final_, temp_;
  bool overwrite_ = false, committed_ = false;
};

}  // namespace lwq
