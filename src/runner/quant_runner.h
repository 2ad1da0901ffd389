// The layer_wise runner (spec §4.2–4.4) — load layer k → processors →
// saver → commit → free — and its model_wise counterpart, which loads every
// layer first and is kept for comparison. Each finished layer is committed
// durably in the work folder, so the same job run again after a crash
// resumes from there (resume_manifest.h).
#pragma once

#include <filesystem>
#include <string>

#include "config/quant_config.h"
#include "tensor/dtype.h"

namespace lwq {

// How the routed experts of a MoE layer are calibrated (spec §4.8).
enum class MoeCalibration {
  AllExperts,  // every expert sees every token (the reference's dense-all-experts forward); the output stays top-k
  Routed,      // experts see only the tokens routed to them; one that gets none follows a data-free rule
};

struct QuantJob {
  std::filesystem::path model_path;
  std::filesystem::path save_path;
  ServiceConfig config;
  std::string calib_data;            // --calib_data; overrides spec.dataset when set
  std::filesystem::path builtin_calib_dir;  // where dataset names are looked up
  bool overwrite = false;
  bool prefetch = true;              // read layer k+1 while layer k computes
  int max_calib_samples = 0;         // 0 = all
  // Measure each quantized Linear and layer against float on the calibration
  // data (quant_report.json): every 16th row of each Linear call and every
  // 16th sample (at least one) for the layer; full_report measures on all of
  // them (about 2× the calibrated run's time).
  bool report = true;
  bool full_report = false;
  // Written as "<model_type>_best_practice.yaml" into the output, as msModelSlim's CLI does.
  std::string model_type;
  std::string practice_yaml;
  // A configuration that quantizes no Linear is an error unless this is set
  // (then the output is an all-FLOAT copy in the ascendV1 layout).
  bool allow_float_copy = false;
  bool allow_text_only_calib = false;  // vision-language models: text-only calibration entries allowed
  MoeCalibration moe_calibration = MoeCalibration::AllExperts;
  // Bytes the calibration stream's hidden states may hold in memory (0: a
  // quarter of physical memory); beyond it they spill to a temporary file
  // beside save_path (runner/calibration_store.h).
  uint64_t calib_memory_limit = 0;
  // The calibration forward's arithmetic (--compute_dtype): F32, or BF16 for
  // bfloat16 checkpoints only (Linear inputs and outputs and the unit stream
  // rounded to bfloat16, float32 accumulation; docs/design.md "Compute dtype").
  ComputeDType compute_dtype = ComputeDType::F32;
  // With compute_dtype F32 on a bfloat16 checkpoint, the smoothing processors'
  // statistics forward multiplies the stored bf16 weights on bf16-rounded
  // inputs (f32 accumulation; --compute_dtype auto, the CLI's default); the
  // forwards whose observations become deployed parameters stay f32.
  bool bf16_statistics_products = false;
  // Resume commits (fsync of the open shard, calibration state, manifest)
  // follow a unit only once this many seconds have passed since the last one;
  // the last unit always commits. < 0: the default, kCommitSeconds. Units of
  // large models take longer than that, so each still commits; small ones
  // redo at most that much after a crash, and save per-unit fsyncs (a third
  // of a data-free run's wall time) and calibration-state writes (the hidden
  // states of every sample: 6 % of a 1 GB model's calibrated run).
  double commit_interval_s = -1.0;
  // The report's float reference for a layer whose first forward is a
  // smoothing processor's comes from that forward (smoothing and rotation
  // keep the float function); false runs a float forward of its own, as
  // before: for tests that compare the two.
  bool reference_from_smoothing = true;
  // Calibrated runs map the Linear weights of each unit and read them from
  // the page cache on every forward, dropping their pages from the process
  // after each read (LinearWeightHold::Streamed: a layer's weights do not
  // count in its peak RSS); false reads them into memory as before: for tests
  // that compare the two.
  bool stream_calibrated_weights = true;
};

inline constexpr double kCommitSeconds = 10.0;

struct QuantOutcome {
  std::string model_quant_type;
  size_t tensors_written = 0;
  uint64_t bytes_written = 0;
  double wall_seconds = 0.0;
  int64_t peak_rss_bytes = 0;
  int resumed_from_layer = 0;  // > 0 when an interrupted run was continued
};

QuantOutcome run_quantization(const QuantJob& job);

}  // namespace lwq
