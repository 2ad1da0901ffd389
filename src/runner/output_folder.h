// The save folder is built in a work folder beside it and renamed into place
// only when complete, so a failed run never leaves a folder that looks
// finished (and --overwrite replaces old content only at that moment).
//
// The work folder has a fixed name, "<parent>/.<name>.lwquant-partial", so
// that a run killed part-way (kill -9, power loss, full disk) can be resumed
// by running the same command again: the runner commits its progress there
// (resume_manifest.h). A lock file inside it keeps two runs apart.
#pragma once

#include <filesystem>

namespace lwq {

// Throws unless `save_path` is safe to write for a model read from
// `model_path`: never the same folder, one inside it, or one above it, with
// symlinks resolved (a quantization must never be able to delete its input).
void check_save_path_is_not_input(const std::filesystem::path& save_path, const std::filesystem::path& model_path);

class OutputFolder {
 public:
  // Checks `final_path` up front: refuses a path that is a file, an
  // unwritable parent, and an existing non-empty folder unless `overwrite` —
  // and even then only a folder lwquant wrote (it holds a
  // quant_model_description*.json). Takes the work folder (locked; fails when
  // another live run holds it) and removes temporary folders that dead runs
  // of earlier versions left beside it.
  OutputFolder(std::filesystem::path final_path, bool overwrite);
  // Without commit(), the work folder is removed unless keep_for_resume() was called.
  ~OutputFolder();
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;

  const std::filesystem::path& temp_path() const { return temp_; }
  const std::filesystem::path& final_path() const { return final_; }
  // True when the work folder was left by an earlier run (candidate for resume).
  bool found_earlier_work() const { return found_earlier_; }
  // Empties the work folder (the lock stays held): a fresh start.
  void clear();
  // After a failure, keep the work folder so the next run can resume it.
  void keep_for_resume() { keep_ = true; }
  // Moves the finished folder into place (replacing the old one if allowed).
  void commit();

 private:
  std::filesystem::path final_, temp_;
  bool overwrite_ = false, committed_ = false, found_earlier_ = false, keep_ = false;
  int lock_fd_ = -1;
};

}  // namespace lwq
