// Crash-safe progress of a quantization run (resume). After each unit the
// runner commits, in its work folder, the saver's state, the quality-report
// rows so far and the calibration stream (the hidden states entering the next
// unit); the manifest `resume.json` is written last and durably, so it only
// ever names state that is already on disk. Running the same command again
// continues from the last committed unit and produces byte-identical output;
// a different configuration, model or calibration file starts afresh.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/quant_config.h"

namespace lwq {

// What must be equal for a run to continue another's work: the configuration
// as parsed (not its text: comments do not matter), the identity (name, size,
// modification time) of every file in the model folder and of the calibration
// file, and the options that change the output.
struct RunIdentityInputs {
  const ServiceConfig* config = nullptr;
  std::filesystem::path model_path;
  std::filesystem::path calib_file;  // empty for data-free runs
  int max_calib_samples = 0;
  bool report = true;
  bool full_report = false;
};
nlohmann::json run_identity(const RunIdentityInputs& in);

struct ResumePoint {
  int units_done = 0;
  nlohmann::json saver;   // AscendV1Saver::checkpoint()
  nlohmann::json runner;  // the runner's own state (report rows)
  // Calibration hidden states entering unit `units_done`, one vector per
  // sample (empty for data-free runs); filled by load_resume_point.
  std::vector<std::vector<float>> calibration;
};

// Writes `calibration` (the hidden states entering unit point.units_done) to
// calib_state_<units_done>.bin when there is any, then resume.json, both
// durably, and removes the previous unit's state file.
void commit_resume_point(const std::filesystem::path& work_dir, const nlohmann::json& identity,
                         const ResumePoint& point, const std::vector<std::span<const float>>& calibration);

// The committed point in `work_dir` if its identity equals `identity`;
// otherwise nullopt with the reason in `why_not`. Sample sizes are checked
// against `expected_sizes` (floats per sample; empty for data-free runs).
std::optional<ResumePoint> load_resume_point(const std::filesystem::path& work_dir, const nlohmann::json& identity,
                                             const std::vector<size_t>& expected_sizes, std::string& why_not);

// Removes resume.json and the calibration state (before the folder is published).
void remove_resume_files(const std::filesystem::path& work_dir);

}  // namespace lwq
