#include "runner/quant_runner.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <chrono>
#include <cmath>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <span>

#include "data/calib_dataset.h"
#include "data/tokenizer.h"
#include "io/checkpoint.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/decoder_layer.h"
#include "models/experts.h"
#include "models/unit_model.h"
#include "models/model_config.h"
#include "models/quarot.h"
#include "io/safetensors_writer.h"
#include "processors/expert_smoothing.h"
#include "processors/linear_quantizer.h"
#include "processors/smoothing.h"
#include "quant/w8a8_export.h"
#include "runner/calibration_store.h"
#include "runner/output_folder.h"
#include "runner/progress.h"
#include "runner/quant_plan.h"
#include "runner/resume_manifest.h"
#include "savers/saver.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/memory_stats.h"
#include "util/scratch.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

// One calibration sample flowing through the units.
using CalibSample = UnitInput;

// The quality report measures on a sample so that it costs little next to
// the calibration forward itself: every kReportStride-th row of each Linear
// call, and every kReportStride-th sample for the float layer forward
// (QuantJob::full_report measures everything).
constexpr int64_t kReportStride = 16;

// The largest unit (resident bytes) a data-free run reads ahead of time.
constexpr size_t kDataFreePrefetchBytes = size_t{256} << 20;

// A data-free run is paced by its output writes: 16 MiB O_DIRECT writes keep
// more of the disk's requests in flight than the writer's default 8 MiB
// (SafetensorsWriterOptions::direct_stage_bytes).
constexpr uint64_t kDataFreeWriteStageBytes = uint64_t{16} << 20;
// A calibrated run writes a few MB per second of compute: 2 MiB writes keep
// up, and its two stages then add 4 MiB to the peak instead of 16.
constexpr uint64_t kCalibratedWriteStageBytes = uint64_t{2} << 20;

// Routes each Linear of a calibration forward to its quantizer, if it has
// one, and measures the quantized output against the float one for the
// quality report while the owning processor observes.
class CalibrationExecutor : public LinearExecutor {
 public:
  explicit CalibrationExecutor(const LayerWeights& weights) : weights_(weights) {}
  std::map<std::string, LinearQuantizer*> quantizers;  // by name relative to the layer
  std::set<std::string> observing;
  bool measure = true;       // compute the float reference for the quality report
  int64_t row_stride = 1;    // ... on rows 0, stride, 2·stride, ...
  // Rows a forward gathers for each Linear outside the routed experts (every
  // sample's rows 0, stride, ...): their buffers are sized once, not doubled
  // as they grow (a third of their bytes, 7 MB on a 1 GB model's layer).
  int64_t expected_rows = 0;

  // Mixture-of-experts layers: the runner's hooks around each expert.
  std::function<void(int)> on_expert_begin, on_expert_end;
  std::function<bool(int)> all_tokens;
  std::string router;               // the router Linear's name: its input range is recorded
  float router_min = 0.0f, router_max = 0.0f;
  bool router_seen = false;

  // Float Linears are computed from the layer a block of rows at a time too.
  bool needs_float_weight(const std::string&) const override { return false; }
  bool expert_sees_all_tokens(int e) override { return all_tokens && all_tokens(e); }
  void expert_begin(int e) override {
    in_expert_ = true;
    if (on_expert_begin) on_expert_begin(e);
  }
  // The attention Linears' gathered rows are measured before the MLP's
  // activations exist (each Linear's rows are complete: every batch's
  // attention has run).
  void attention_done() override {
    measure_pending();
    if (!on_attention_done) return;
    // What ran before the first chunk's MLP is the attention half's Linears.
    if (attention_halves_++ == 0) attention_linears_ = ran_;
    if (attention_halves_ == attention_halves_to_save) on_attention_done(attention_linears_);
  }
  // Called with the attention half's Linears once the attention half of the
  // layer's last chunk of samples (attention_halves_to_save: the number of
  // chunks) is done: they have seen every sample, so the runner saves them
  // (docs/design.md "Scratch pool").
  std::function<void(const std::set<std::string>&)> on_attention_done;
  size_t attention_halves_to_save = 0;
  void expert_end(int e) override {
    measure_pending();  // before the hook can drop the expert's weights
    in_expert_ = false;
    if (on_expert_end) on_expert_end(e);
  }

  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight, const float* bias,
           int64_t out, float* y) override {
    run_samples(name, x, {&rows, 1}, in, weight, bias, out, y);
  }

  // One call per sample for the quantizer's observers, one GEMM for all.
  void run_samples(const std::string& name, const float* x, std::span<const int64_t> samples, int64_t in,
                   const float*, const float* bias, int64_t out, float* y) override {
    const int64_t rows = std::reduce(samples.begin(), samples.end(), int64_t{0});
    if (on_attention_done) ran_.insert(name);
    if (!router.empty() && name == router && rows > 0) {
      auto [mn, mx] = std::minmax_element(x, x + rows * in);
      router_min = router_seen ? std::min(router_min, *mn) : *mn;
      router_max = router_seen ? std::max(router_max, *mx) : *mx;
      router_seen = true;
    }
    auto it = quantizers.find(name);
    const bool bf16 = compute_dtype() == ComputeDType::BF16;
    if (it == quantizers.end()) {
      linear_from_layer(weights_, name + ".weight", x, rows, in, bias, out, y, bf16);
      return;
    }
    it->second->forward(x, samples, y);
    if (!measure || !observing.count(name)) return;
    // Rows 0, stride, 2·stride, ... of each sample, as when samples ran one
    // per call, kept with their outputs for measure_pending.
    Pending& p = pending_[name];
    p.quantizer = it->second;
    p.in = in, p.out = out, p.bf16 = bf16;
    if (bias) p.bias.assign(bias, bias + out);
    if (p.x.empty() && !in_expert_ && expected_rows > 0) {
      p.x.reserve(static_cast<size_t>(expected_rows * in));
      p.y.reserve(static_cast<size_t>(expected_rows * out));
    }
    int64_t first = 0;
    for (int64_t n : samples) {
      for (int64_t r = first; r < first + n; r += row_stride) {
        p.x.insert(p.x.end(), x + r * in, x + (r + 1) * in);
        p.y.insert(p.y.end(), y + r * out, y + (r + 1) * out);
      }
      first += n;
    }
  }

  // The float reference of every Linear measured since the last call, one
  // product per Linear over all its gathered rows: the weight is read (a
  // smoothed one converted and scaled) once per layer, not once per batch.
  // Called after each forward and at each expert's end, while the weights are held.
  void measure_pending() {
    for (auto& [name, p] : pending_) {
      const int64_t m = static_cast<int64_t>(p.y.size()) / std::max<int64_t>(p.out, 1);
      Scratch<float> ref(p.y.size());
      const float* bias = p.bias.empty() ? nullptr : p.bias.data();
      // A bf16 weight is not converted to f32 for these few rows (its
      // conversion cost more than the product: 0.9 s of a 1 GB model's 8 s).
      if (p.bf16 || !linear_from_bf16_split(weights_, name + ".weight", p.x.data(), m, p.in, bias, p.out, ref.data()))
        linear_from_layer(weights_, name + ".weight", p.x.data(), m, p.in, bias, p.out, ref.data(), p.bf16);
      OutputErrorStats& stats = p.quantizer->error_stats();
      stats.add(ref.data(), p.y.data(), ref.size());
      stats.rows += m;
    }
    pending_.clear();
  }

 private:
  struct Pending {  // a Linear's gathered input rows and quantized outputs, not yet measured
    LinearQuantizer* quantizer = nullptr;
    int64_t in = 0, out = 0;
    bool bf16 = false;
    std::vector<float> bias;
    std::vector<float, ScratchAllocator<float>> x, y;  // the same sizes every layer: pool blocks
  };
  const LayerWeights& weights_;
  std::map<std::string, Pending> pending_;
  bool in_expert_ = false;
  std::set<std::string> ran_, attention_linears_;
  size_t attention_halves_ = 0;
};

// The family's smoothing subgraphs that exist in this layer: a MoE layer's
// MLP subgraphs name the dense MLP's Linears, which it does not have (its
// routed experts' up → down is smoothed apart: processors/expert_smoothing.h).
//
// Nor those ending in a Linear whose input is rotated online (quarot
// `online` before this processor): a smoothing scale on the producer's side
// of the rotation is not undone by the Linear's columns on the other side.
// They are listed in `crossing` ("ov: self_attn.v_proj → self_attn.o_proj").
Architecture layer_smoothing_arch(const Architecture& arch, const LayerDesc& desc, const LayerWeights& w,
                                  std::vector<std::string>& crossing) {
  std::set<std::string> linears, tensors;
  for (const auto& l : desc.linears)
    if (l.expert < 0) linears.insert(l.name);
  for (const auto& t : desc.tensors) tensors.insert(t.name);
  Architecture a = arch;
  std::erase_if(a.smooth_subgraphs, [&](const SmoothSubgraph& g) {
    bool present = g.type == "norm-linear" ? tensors.count(g.source + ".weight") != 0 : linears.count(g.source) != 0;
    for (const auto& t : g.targets) present = present && linears.count(t) != 0;
    if (!present) return true;
    for (const auto& t : g.targets)
      if (w.input_rotations.count(t)) {
        crossing.push_back(fmt::format("{}: {} → {}", g.type, g.source, t));
        return true;
      }
    return false;
  });
  return a;
}

// Crash-test hook: LWQUANT_TEST_KILL_AT="<layer>:<saved|committed>" sends
// this process SIGKILL right after layer <layer> is saved (before its commit)
// or committed — a kill -9 at a chosen point, for the resume tests.
void kill_for_testing(int layer, const char* phase) {
  static const char* spec = std::getenv("LWQUANT_TEST_KILL_AT");
  if (spec && fmt::format("{}:{}", layer, phase) == spec) ::kill(::getpid(), SIGKILL);
}

fs::path calibration_file(const QuantJob& job) {
  return resolve_dataset_path(job.calib_data.empty() ? job.config.dataset : job.calib_data, job.builtin_calib_dir);
}

class LayerWiseQuantizer {
 public:
  explicit LayerWiseQuantizer(const QuantJob& job)
      : job_(job),
        ckpt_(Checkpoint::open(job.model_path)),
        model_(open_unit_model(job.model_path, ckpt_)),
        units_(build_units(job.config)),
        serving_dtype_(serving_dtype_of(model_->dtype())),
        store_(job.calib_memory_limit > 0 ? job.calib_memory_limit : default_calib_memory_limit(),
               fs::absolute(job.save_path).parent_path()) {
    if (units_.empty()) spdlog::warn("spec.process is empty: every tensor is saved unquantized (FLOAT)");
    check_compute_dtype();
    for (size_t u = 0; u < units_.size(); ++u)
      if (units_[u].needs_data && !units_[u].outlier) last_data_unit_ = static_cast<int>(u);
    setup_outlier_processors();
  }

  QuantOutcome run() {
    check_save_path_is_not_input(job_.save_path, job_.model_path);
    const int n = model_->num_units();
    check_something_is_quantized();
    OutputFolder folder(job_.save_path, job_.overwrite);
    warn_unknown_tensors();
    check_outer_tensors_are_finite();

    bool needs_data = false;
    for (const auto& u : units_) needs_data = needs_data || u.needs_data;
    const fs::path calib_file = needs_data ? calibration_file(job_) : fs::path();
    if (needs_data) load_calibration(calib_file);
    else spdlog::info("data-free configuration: no calibration forward is run{}",
                      bf16_compute() ? " (--compute_dtype bf16 changes nothing here: the output is the f32 run's)" : "");
    if (needs_data && bf16_statistics())
      spdlog::info("smoothing statistics: products of the bf16 weights on bf16-rounded inputs (f32 accumulation); "
                   "the quantization forwards stay f32 (--compute_dtype f32 for f32 everywhere)");

    nlohmann::json identity = run_identity(
        {&job_.config, job_.model_path, calib_file, job_.max_calib_samples, job_.report, job_.full_report});
    // Only a bf16 run names its compute dtype, so that work folders of f32
    // runs (and of versions before the option) keep resuming.
    if (bf16_compute() && needs_data) identity["compute_dtype"] = "bf16";
    if (bf16_statistics() && needs_data) identity["statistics_products"] = "bf16";
    std::unique_ptr<Saver> saver = make_output_saver(folder);
    const int first = resume_or_start_fresh(folder, identity, saver);

    bool model_wise = job_.config.runner == RunnerType::ModelWise;
    std::vector<LayerWeights> preloaded;
    if (model_wise) {
      spdlog::info("model_wise runner: loading all {} layers first", n);
      for (int k = first; k < n; ++k) preloaded.push_back(model_->load(k));
    }
    LayerProgress progress(n - first);
    std::future<LayerWeights> next;
    // Routed experts are not part of the loaded layer: they are streamed
    // through one at a time (models/experts.h).
    auto load = [this](int k) { return model_->load(k); };
    // Data-free, weights are quantized from the mapped file; calibrated, read
    // from the page cache by each forward (LinearWeightHold::Streamed).
    model_->hold_linear_weights(linear_weight_hold());
    if (!model_wise && job_.prefetch && first < n) next = std::async(std::launch::async, load, first);
    int committed = first;
    const double commit_interval =
        job_.commit_interval_s >= 0 ? job_.commit_interval_s : kCommitSeconds;
    auto last_commit = std::chrono::steady_clock::now();
    try {
      for (int k = first; k < n; ++k) {
        LayerWeights weights;
        if (model_wise) weights = std::move(preloaded[static_cast<size_t>(k - first)]);
        else weights = next.valid() ? next.get() : load(k);
        // Layer k+1 is read while layer k is processed. A calibrated layer
        // whose weights are read into memory holds its float and int8 weights
        // during its forwards, so there the read starts once the forwards are
        // done and the float copies of quantized Linears are freed: two whole
        // layers are never resident besides int8 codes.
        auto prefetch_next = [&, k] {
          if (!model_wise && job_.prefetch && k + 1 < n && !next.valid())
            next = std::async(std::launch::async, load, k + 1);
        };
        // Data-free, the read overlaps quantizing and writing, except for units
        // above kDataFreePrefetchBytes (a 14B DiT block: 670 MiB), which would
        // double the peak for no time: such runs wait on the disk, not the CPU
        // (docs/benchmarks.md), and the peak stays at one unit.
        // Streamed weights are mapped and checked a block at a time, the pages
        // left in the page cache: the next unit's read starts at once and
        // costs no memory.
        if ((samples_.empty() && weights.bytes() <= kDataFreePrefetchBytes) ||
            linear_weight_hold() == LinearWeightHold::Streamed)
          prefetch_next();
        process_layer(k, weights, *saver, prefetch_next);
        kill_for_testing(k, "saved");
        weights = LayerWeights();
        release_freed_memory();
        trim_scratch_pool();  // scratch shapes no layer uses any more
        const auto now = std::chrono::steady_clock::now();
        if (k + 1 == n || std::chrono::duration<double>(now - last_commit).count() >= commit_interval) {
          commit_progress(folder, identity, *saver, k + 1);
          committed = k + 1;
          last_commit = std::chrono::steady_clock::now();
          kill_for_testing(k, "committed");
        }
        const LayerReport& r = reports_.back();
        progress.layer_done(k - first,
                            r.relative_l2 >= 0 ? fmt::format("output rel. L2 {:.4f}", r.relative_l2) : "");
      }
    } catch (...) {
      if (next.valid()) next.wait();  // never leave a reader running on a closing checkpoint
      if (committed > 0) {
        folder.keep_for_resume();
        spdlog::warn("{} of {} layers are committed in {}; run the same command again to resume from layer {}",
                     committed, n, folder.temp_path().string(), committed);
      }
      throw;
    }
    save_non_layer_tensors(*saver);
    if (quarot_) export_quarot(folder, *saver);
    SaveSummary summary = saver->finish(job_.model_path);
    write_report(folder.temp_path(), summary);
    if (!job_.practice_yaml.empty())
      write_text_file_atomic(folder.temp_path() / ((job_.model_type.empty() ? model_->model_type() : job_.model_type) +
                                                   "_best_practice.yaml"),
                             job_.practice_yaml);
    for (const auto& warning : unmatched_pattern_warnings(units_)) spdlog::warn("{}", warning);
    remove_resume_files(folder.temp_path());
    folder.commit();
    spdlog::info("resume commits (fsync of shards, calibration state, manifest) took {:.2f} s in all", commit_seconds_);

    QuantOutcome outcome;
    outcome.model_quant_type = summary.model_quant_type;
    outcome.tensors_written = summary.tensors;
    outcome.bytes_written = summary.bytes;
    outcome.wall_seconds = progress.elapsed_seconds();
    outcome.peak_rss_bytes = read_memory_stats().peak_rss_bytes;
    outcome.resumed_from_layer = first;
    return outcome;
  }

 private:
  bool bf16_compute() const { return job_.compute_dtype == ComputeDType::BF16; }
  LinearWeightHold linear_weight_hold() const {
    if (samples_.empty()) return LinearWeightHold::Mapped;
    return job_.stream_calibrated_weights ? LinearWeightHold::Streamed : LinearWeightHold::Read;
  }

  // A calibrated run's large buffers that recur in every unit come from the
  // scratch pool (util/scratch.h: activations, int8 codes, calibration
  // states, the report's rows). What malloc still serves above 2 MiB (oneDNN's
  // packing buffers, tensors being saved) is mapped and unmapped per use:
  // held in the heap, buffers of varying sizes left 20–30 MB of holes that
  // the peak carried, against 0.4 s of system time on a 1 GB model
  // (docs/benchmarks.md, session 10). Only for dense decoder layers, whose
  // forward takes its activations from the pool: where routed experts
  // stream through the layer, each expert's weights (tens of MB, read into
  // tensors) would be mapped afresh (+3 s of system time on a 32-expert
  // layer), and DiT blocks' and vision towers' activations are malloc's.
  void tune_allocator_for_calibrated_units() {
    if (!model_->lm_config()) return;
    trim_calibrated_units_ = true;
    for (int k = 0; k < model_->num_units(); ++k)
      if (model_->unit(k).num_experts > 0) return;
    mallopt(M_MMAP_THRESHOLD, 2 << 20);
  }

  // Each unit's freed heap memory goes back to the OS (malloc_trim), so RSS
  // tracks what is live: keeping it measured +30–50 MB of peak in data-free
  // runs (docs/benchmarks.md). Calibrated runs skipped this while their
  // large buffers lived in the heap (refaulting them cost 1.8 s of system
  // time on a 1 GB model); a decoder layer's are pool blocks now and the heap
  // keeps little (measured: dense and MoE layers). DiT blocks and vision
  // towers still hold their activations in the heap: left as they were.
  void release_freed_memory() const {
    if (samples_.empty() || trim_calibrated_units_) ::malloc_trim(0);
  }
  // Smoothing statistics from bf16 products (QuantJob::bf16_statistics_products):
  // bfloat16 checkpoints only; under bf16 compute every product is bf16 anyway.
  bool bf16_statistics() const {
    if (!job_.bf16_statistics_products || bf16_compute() || model_->dtype() != DType::BF16) return false;
    for (const auto& u : units_)
      if (u.outlier && u.outlier->is_smoothing()) return true;
    return false;
  }

  // --compute_dtype bf16 reproduces a bfloat16 model's arithmetic; on a
  // checkpoint of another dtype there is no such model to be faithful to
  // (an f16 one's reference computes in f16, whose weights bf16 cannot hold).
  void check_compute_dtype() const {
    if (!bf16_compute() || model_->dtype() == DType::BF16) return;
    fail("--compute_dtype bf16 needs a bfloat16 checkpoint, but {} is {}: bf16 compute rounds the calibration "
         "forward's Linear inputs, outputs and hidden states to bfloat16 as a bf16 model computes them, which an "
         "{} model does not; use --compute_dtype auto (the default) or f32",
         job_.model_path.string(), dtype_name(model_->dtype()), dtype_name(model_->dtype()));
  }

  // bf16 compute: the unit stream holds what a bfloat16 model's residual
  // stream holds between units.
  void round_stream(std::span<float> h) const {
    if (bf16_compute()) round_to_bf16(h.data(), h.size());
  }

  // quarot (at most one, before every linear_quant: config load checks the
  // order) is applied by the model as it loads each unit and streams its
  // experts (UnitModel::set_quarot), its online rotations at its place in
  // process_layer (UnitModel::rotate_online); smoothing units run in
  // process_layer. Checked here, before any work.
  void setup_outlier_processors() {
    for (const auto& unit : units_) {
      if (!unit.outlier) continue;
      const ProcessorConfig& p = *unit.outlier;
      const std::string where = "the practice's " + p.yaml_path;
      const Architecture* family = model_->lm_config() ? find_architecture(lm().model_type) : nullptr;
      if (!family)
        fail("{}: '{}' runs on the decoder-only language-model families only, not on model_type '{}'", where, p.type,
             model_->model_type());
      const Architecture& arch = *family;
      if (p.type == "quarot") {
        if (quarot_) fail("{}: a second quarot processor (the model is rotated once)", where);
        quarot_settings_ = quarot_settings_from(p);
        quarot_ = make_quarot_plan(lm(), quarot_settings_, where);
        model_->set_quarot(&*quarot_);  // its units (and streamed experts) arrive rotated
        continue;
      }
      smooth_settings_from(p);  // throws for bad settings
      for (const auto& t : undeclared_subgraph_types(arch, p.smooth.enable_subgraph_type))
        // The reference practices enable every type on every model: information, not a warning.
        spdlog::info("{}: subgraph type '{}' is not declared by the family '{}'; nothing of that type is smoothed",
                     where, t, arch.family);
    }
  }

  // Calibration inputs; with quarot they live in the rotated residual stream.
  // The samples' positions stay in samples_, their hidden states move to the
  // calibration store (in memory, or spilled beside the output when the
  // stream's peak — inputs, outputs and report references of one unit —
  // exceeds --calib_memory_limit).
  void load_calibration(const fs::path& file) {
    tune_allocator_for_calibrated_units();
    samples_ = model_->calibration_inputs({file, job_.model_path, job_.max_calib_samples, job_.config.default_text,
                                           job_.allow_text_only_calib});
    uint64_t bytes = 0, reported = 0;
    for (size_t i = 0; i < samples_.size(); ++i) {
      bytes += samples_[i].hidden.size() * sizeof(float);
      if (i % report_stride() == 0) reported += samples_[i].hidden.size() * sizeof(float);
    }
    store_.plan(2 * bytes + (job_.report ? reported : 0));
    hidden_ = HiddenSet(&store_);
    for (size_t i = 0; i < samples_.size(); ++i) {
      std::span<float> h = hidden_.add(samples_[i].hidden.size());
      std::copy(samples_[i].hidden.begin(), samples_[i].hidden.end(), h.begin());
      std::vector<float>().swap(samples_[i].hidden);
      if (quarot_) quarot_rotate_rows(*quarot_, h.data(), samples_[i].seq());
      round_stream(h);  // a rotated bf16 embedding table holds these rows rounded
      hidden_.evict(i);
    }
  }

  size_t report_stride() const { return job_.full_report ? 1 : static_cast<size_t>(kReportStride); }

  // Consecutive sample ranges run through a unit together: all of them in
  // memory; when spilled, as many as fit half the memory limit (inputs and
  // outputs), at least one.
  std::vector<std::pair<size_t, size_t>> chunks(const std::vector<size_t>& which) const {
    if (!store_.spilled() || which.empty()) return {{0, which.size()}};
    std::vector<std::pair<size_t, size_t>> out;
    size_t begin = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < which.size(); ++i) {
      const uint64_t b = 2 * hidden_[which[i]].size_bytes();
      if (i > begin && bytes + b > store_.memory_limit() / 2) {
        out.emplace_back(begin, i);
        begin = i, bytes = 0;
      }
      bytes += b;
    }
    out.emplace_back(begin, which.size());
    return out;
  }

  // A smoothing unit on layer k: a float forward that observes the watched
  // Linears' inputs, then the transform of the layer's float weights (before
  // any later processor builds its quantizers). Returns the forward's outputs.
  // With `output_needed` false (a later processor runs its own forward) the
  // layer's output is not computed: the Linears whose product only feeds it
  // (the MLP's down projection, each routed expert's) are skipped, a quarter
  // of a dense layer's GEMM work, and the returned set is empty.
  //
  // With `reference` (the report, when no quantizer has touched the layer
  // yet) a dense unit's forward runs in two passes, the report's samples
  // last and with their products complete: smoothing and rotation keep the
  // float function, so those outputs are the report's float reference and
  // measure_layer needs no forward of its own. The split is made with or
  // without the report, so both give the same bytes.
  HiddenSet smooth_layer(int k, const LayerDesc& desc, const ProcessorConfig& p, LayerWeights& weights,
                         bool output_needed, HiddenSet* reference) {
    const SmoothSettings settings = smooth_settings_from(p);
    std::vector<std::string> crossing;
    const Architecture arch = layer_smoothing_arch(architecture_for(lm()), desc, weights, crossing);
    for (const auto& g : crossing) {
      const auto& types = settings.enabled_types;
      if (std::find(types.begin(), types.end(), g.substr(0, g.find(':'))) != types.end() &&
          crossing_reported_.insert(p.yaml_path + g).second)
        spdlog::warn("{} ({}): the subgraph {} is not smoothed: quarot's online rotation sits between them (put "
                     "this processor before quarot to smooth it)",
                     p.yaml_path, p.type, g);
    }
    LayerSmoother smoother(settings, lm(), arch, desc.prefix);
    // Spec §4.3: every Linear runs in float on the layer's current weights while
    // the inputs of the Linears the smoother watches are recorded. Routed
    // experts get their scales as they finish, applied as they are read again.
    const MoeTemplate no_experts;
    ExpertUpDownSmoother experts(settings, desc.num_experts > 0 && arch.moe ? *arch.moe : no_experts, desc);
    ExpertObservingExecutor exec(smoother.observer(), weights, experts);
    exec.set_compute_dtype(job_.compute_dtype);
    exec.use_bf16_products(bf16_statistics());
    if (!output_needed) {
      const Architecture& family = architecture_for(lm());
      const std::string down = family.roles.down;
      const std::string expert_prefix = family.moe ? family.moe->experts + "." : std::string();
      const std::string expert_down = family.moe ? "." + family.moe->down : std::string();
      exec.skip_unread_outputs([down, expert_prefix, expert_down](const std::string& name) {
        return name == down || (!expert_prefix.empty() && name.starts_with(expert_prefix) && name.ends_with(expert_down));
      });
    }
    HiddenSet outputs;
    if (output_needed || desc.num_experts > 0) {  // experts are smoothed as one pass streams them
      outputs = forward_all(k, weights, &exec, nullptr);
    } else {
      const std::vector<size_t> picked = report_reference_samples();
      std::vector<size_t> rest;
      for (size_t i = 0; i < samples_.size(); ++i)
        if (std::find(picked.begin(), picked.end(), i) == picked.end()) rest.push_back(i);
      if (!rest.empty()) forward_samples(k, weights, &exec, rest, nullptr);
      if (reference) exec.skip_unread_outputs(nullptr);
      HiddenSet last = forward_samples(k, weights, &exec, picked, nullptr);
      if (reference) *reference = std::move(last);
    }
    if (!output_needed) outputs.clear();
    if (experts.smoothed() > 0) {
      expert_transforms_ = then(expert_transforms_, experts.transform());
      spdlog::debug("{}: {} smoothed the up → down of {} of {} experts", desc.prefix, p.type, experts.smoothed(),
                    desc.num_experts);
    }
    if (smoother.subgraphs().empty()) return outputs;
    SmoothResult r = smoother.apply(weights);
    for (auto& name : r.added_tensors) added_tensors_.insert(std::move(name));
    spdlog::debug("{}: {} smoothed {} subgraph(s)", desc.prefix, p.type, r.subgraphs.size());
    return outputs;
  }

  // After the last layer: the rotated embedding, the final norm fused into the
  // rotated lm_head (its own tensor even for a tied model, whose config.json
  // is then untied), and export_extra_info's optional/quarot.safetensors.
  void export_quarot(const OutputFolder& folder, Saver& saver) {
    QuarotExport ex = quarot_export(lm(), *quarot_, quarot_settings_);
    if (ex.untie_word_embeddings || lm().tie_word_embeddings) saver.untie_word_embeddings();
    if (quarot_settings_.export_extra_info) {
      fs::create_directories(folder.temp_path() / "optional");
      SafetensorsWriter w(folder.temp_path() / QuarotExport::kFile);
      w.add(QuarotExport::kTensor, ex.global_rotation);
      w.finish();
      saver.set_description_optional(ex.description_optional);
    }
  }

  struct LinearReport {
    std::string name, type;
    double relative_l2, cosine;
    // Static activation schemes: the calibration input's range, whose width
    // sets the one step every token is quantized with. A few Linears' ranges
    // (massive activations) can be 100× the rest's while their relative L2
    // stays small (the massive rows dominate it): this is the figure that finds
    // them (docs/quality.md, SmolLM2 static W8A8).
    std::optional<std::pair<float, float>> input_range;
  };
  static LinearReport linear_report(LinearQuantizer& q) {
    const OutputErrorStats& e = q.error_stats();
    LinearReport r{q.name(), q.type(), e.rows ? e.relative_l2() : -1.0, e.rows ? e.cosine() : -1.0, std::nullopt};
    if (q.has_observed()) r.input_range = q.observed_range();
    return r;
  }
  struct LayerReport {
    int layer;
    std::string prefix;
    std::vector<LinearReport> linears;
    double relative_l2, cosine;  // layer output vs float layer on the same inputs; −1 if not measured
    std::vector<int64_t> expert_tokens;  // MoE layers: calibration tokens routed to each expert
    std::string reference;               // where the float reference came from: "smoothing_forward" or "float_forward"
  };

  // The saver never removes what it wrote: the work folder as a whole is
  // kept for a resume or removed (OutputFolder).
  std::unique_ptr<Saver> make_output_saver(const OutputFolder& folder) const {
    std::unique_ptr<Saver> saver = make_saver(job_.config.save, folder.temp_path(), model_->dtype());
    saver->keep_files_for_resume();
    saver->set_write_stage_bytes(samples_.empty() ? kDataFreeWriteStageBytes : kCalibratedWriteStageBytes);
    return saver;
  }

  // The decoder-only LLM's config (smoothing and quarot run on those families only).
  const ModelConfig& lm() const { return *model_->lm_config(); }

  // Matches every Linear of every layer against the processors before any
  // work: a configuration that selects nothing is refused up front (unless a
  // float copy is asked for), and unmatched-pattern warnings cover the whole
  // model whichever layer a resumed run starts from.
  void check_something_is_quantized() {
    size_t selected = 0;
    for (int k = 0; k < model_->num_units(); ++k) {
      LayerDesc desc = model_->unit(k);
      for (const auto& lin : desc.linears)
        for (auto& unit : units_)
          if (unit.match(desc.prefix + "." + lin.name)) {
            ++selected;
            break;
          }
    }
    if (selected > 0) return;
    if (!job_.allow_float_copy)
      fail("the configuration quantizes no Linear of this model (spec.process {}): the output would be an all-FLOAT "
           "copy; check the include/exclude patterns, or pass --allow_float_copy if a float copy is what you want",
           units_.empty() ? "is empty" : "selects nothing");
    spdlog::warn("the configuration quantizes no Linear: writing an all-FLOAT copy (--allow_float_copy)");
  }

  // Continues the work a dead run committed in the work folder, when it is
  // the same job; returns the first layer still to do.
  int resume_or_start_fresh(OutputFolder& folder, const nlohmann::json& identity,
                            std::unique_ptr<Saver>& saver) {
    if (!folder.found_earlier_work()) return 0;
    std::vector<size_t> sizes;
    for (size_t i = 0; i < hidden_.size(); ++i) sizes.push_back(hidden_[i].size());
    std::string why_not;
    std::optional<ResumePoint> point = load_resume_point(folder.temp_path(), identity, sizes, why_not);
    if (point) {
      try {
        saver->resume(point->saver);
        restore_reports(point->runner);
        for (size_t s = 0; s < samples_.size(); ++s) {
          std::copy(point->calibration[s].begin(), point->calibration[s].end(), hidden_[s].begin());
          std::vector<float>().swap(point->calibration[s]);
          hidden_.evict(s);
        }
        spdlog::info("resuming an interrupted run: {} of {} layers were already done (work folder {})",
                     point->units_done, model_->num_units(), folder.temp_path().string());
        return point->units_done;
      } catch (const Error& e) {
        why_not = e.what();
        reports_.clear();
      }
    }
    spdlog::warn("found the work folder {} of an interrupted run but cannot continue it ({}); starting afresh",
                 folder.temp_path().string(), why_not);
    folder.clear();
    saver = make_output_saver(folder);
    if (!samples_.empty()) load_calibration(calibration_file(job_));
    return 0;
  }

  void commit_progress(const OutputFolder& folder, const nlohmann::json& identity, Saver& saver,
                       int units_done) {
    const auto start = std::chrono::steady_clock::now();
    ResumePoint point;
    point.units_done = units_done;
    point.saver = saver.checkpoint();
    point.runner = reports_json();
    std::vector<std::span<const float>> calibration;
    for (size_t i = 0; i < hidden_.size(); ++i) calibration.emplace_back(hidden_[i]);
    commit_resume_point(folder.temp_path(), identity, point, calibration);
    commit_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  std::unique_ptr<LinearQuantizer> make_quantizer(const LayerWeights& weights, const LinearDesc& lin,
                                                 const std::string& full, const ProcessorConfig& owner) {
    // A bias smoothing gave the Linear (asymmetric shift) counts like its own.
    const bool has_bias = lin.has_bias || weights.tensors.count(lin.name + ".bias");
    const float* bias = has_bias ? weights.get(lin.name + ".bias").data() : nullptr;
    const std::string weight = lin.name + ".weight";
    if (weights.scaled(weight)) {  // smoothed, still stored: read a block of rows at a time with its scalings
      const int64_t in = lin.in_features;
      auto rows = [&weights, weight, in](int64_t begin, int64_t end, float* dst) {
        weights.rows_f32(weight, begin, end, in, dst);
      };
      auto q = std::make_unique<LinearQuantizer>(full, owner.qconfig, rows, bias, lin.out_features, lin.in_features);
      weights.release_pages(weight);
      return q;
    }
    // The weight as held (16-bit stored or f32): minmax weights quantize from it with no f32 copy.
    const auto [dtype, data] = weights.raw(weight);
    LinearQuantizer::StoredWeight stored{dtype, data, nullptr};
    if (weights.streamed(weight)) {  // checked finite when loaded; read a block at a time, its pages dropped
      const int64_t in = lin.in_features;
      stored.rows_read = [&weights, weight, in](int64_t begin, int64_t end) {
        weights.release_rows(weight, begin, end, in);
      };
    }
    try {
      auto q = std::make_unique<LinearQuantizer>(full, owner.qconfig, stored, bias, lin.out_features, lin.in_features);
      weights.release_pages(weight);
      return q;
    } catch (const Error&) {
      // Every weight quantizer refuses a non-finite value; a mapped weight,
      // not checked when read, then gets the read error instead.
      weights.check_mapped_finite(lin.name + ".weight");
      throw;
    }
  }

  // Without the quality report, a quantized Linear's float weight is read
  // again only by a smoothing unit later in the list (its quantizer keeps
  // what it needs: codes, or GPTQ's own copy), so it is dropped as soon as the
  // quantizer exists: a large unit (a 1.1 GiB vision tower) then never holds
  // its float weights and int8 codes side by side.
  bool forward_follows(size_t u) const {
    for (size_t v = u + 1; v < units_.size(); ++v)
      if (units_[v].needs_data) return true;
    return false;
  }
  bool float_weight_unused_after(size_t u) const {
    if (job_.report) return false;
    for (size_t v = u + 1; v < units_.size(); ++v)
      if (units_[v].outlier) return false;
    return true;
  }
  static void drop_float_weight(LayerWeights& weights, const std::string& linear) {
    weights.scalings.erase(linear + ".weight");
    weights.stored.erase(linear + ".weight");
    weights.tensors.erase(linear + ".weight");
    weights.mapped.erase(linear + ".weight");
  }

  // The processor unit that owns Linear `full` (first match) and its config, or {-1, nullptr}.
  std::pair<int, const ProcessorConfig*> owner_of(const std::string& full) {
    for (size_t u = 0; u < units_.size(); ++u)
      if (const ProcessorConfig* c = units_[u].match(full)) return {static_cast<int>(u), c};
    return {-1, nullptr};
  }

  // `forwards_done` is called once the layer's calibration forwards are over.
  void process_layer(int k, LayerWeights& weights, Saver& saver, const std::function<void()>& forwards_done) {
    LayerDesc desc = model_->unit(k);
    LayerReport report{k, desc.prefix, {}, -1.0, -1.0, {}, {}};
    expert_transforms_ = {};
    if (samples_.empty()) {
      model_->rotate_online(k, weights);  // data-free: nothing runs before quarot's place
      save_layer_data_free(desc, weights, saver, report);
      reports_.push_back(std::move(report));
      return;
    }
    std::map<std::string, std::unique_ptr<LinearQuantizer>> quantizers;
    CalibrationExecutor exec(weights);
    exec.set_compute_dtype(job_.compute_dtype);
    exec.measure = job_.report;
    exec.row_stride = job_.full_report ? 1 : kReportStride;
    for (const CalibSample& s : samples_) exec.expected_rows += (s.seq() + exec.row_stride - 1) / exec.row_stride;
    HiddenSet outputs, reference;
    std::set<std::string> saved_early;  // tensors saved during the last forward
    added_tensors_.clear();
    for (size_t u = 0; u < units_.size(); ++u) {
      ProcessingUnit& unit = units_[u];
      if (unit.outlier) {
        if (unit.outlier->is_smoothing()) {
          outputs.clear();
          // The first forward on the still-float layer can give the report's reference.
          const bool float_layer =
              job_.report && job_.reference_from_smoothing && quantizers.empty() && reference.empty();
          outputs = smooth_layer(k, desc, *unit.outlier, weights, !forward_follows(u), float_layer ? &reference : nullptr);
        } else {
          // quarot: the offline rotation came with the layer's load; its
          // online rotations take effect here, after the processors before it.
          model_->rotate_online(k, weights);
        }
        continue;
      }
      exec.observing.clear();
      for (const auto& lin : desc.linears) {
        if (lin.expert >= 0 || quantizers.count(lin.name)) continue;  // experts: installed as they stream by
        std::string full = desc.prefix + "." + lin.name;
        const ProcessorConfig* owner = unit.match(full);
        if (!owner) continue;
        auto q = make_quantizer(weights, lin, full, *owner);
        exec.quantizers[lin.name] = q.get();
        exec.observing.insert(lin.name);
        quantizers[lin.name] = std::move(q);
        if (float_weight_unused_after(u)) drop_float_weight(weights, lin.name);
      }
      if (unit.needs_data) {
        ExpertPass pass{static_cast<int>(u), static_cast<int>(u) == last_data_unit_, {}, {}, 0.0f, 0.0f, false};
        if (desc.num_experts > 0) install_expert_hooks(desc, weights, exec, quantizers, pass, saver, report);
        outputs.clear();
        // The layer's last forward needs its inputs no more, but for the
        // report's float forward when smoothing gave no reference.
        std::set<size_t> keep;
        if (job_.report && reference.empty())
          for (size_t i : report_reference_samples()) keep.insert(i);
        if (static_cast<int>(u) == last_data_unit_ && !forward_follows(u) && desc.num_experts == 0) {
          exec.attention_halves_to_save = chunks(all_samples()).size();
          exec.on_attention_done = [&](const std::set<std::string>& ran) {
            save_leading_tensors(desc, quantizers, exec, ran, saver, report, weights, saved_early);
          };
        }
        outputs = forward_all(k, weights, &exec, desc.num_experts > 0 ? &report.expert_tokens : nullptr,
                              forward_follows(u) ? nullptr : &keep);
        exec.measure_pending();
        if (desc.num_experts > 0) finish_cold_experts(desc, exec, quantizers, pass, saver, report);
      }
      for (const auto& name : exec.observing) quantizers.at(name)->freeze();
      exec.on_attention_done = nullptr;
    }
    if (!outputs.empty()) {
      if (job_.report) measure_layer(k, weights, outputs, reference, report);
      hidden_ = std::move(outputs);
    }
    for (const auto& [name, q] : quantizers) drop_float_weight(weights, name);
    release_freed_memory();
    forwards_done();
    save_layer(desc, quantizers, saver, report, weights, saved_early);
    // Only smoothing ran a forward: the routed experts were not saved by a calibration pass.
    if (desc.num_experts > 0 && last_data_unit_ < 0) save_experts_data_free(desc, weights, saver, report);
    reports_.push_back(std::move(report));
  }

  // One data-requiring processor's forward over a MoE layer's experts.
  struct ExpertPass {
    int unit;
    bool last;                       // the layer's last calibration forward: experts are saved as they finish
    std::set<std::string> observing; // expert Linears this pass calibrates
    std::vector<int> cold;           // experts no calibration token reached (--moe_calibration routed)
    float down_min, down_max;        // widest input range the calibrated experts' down projections saw
    bool down_seen;
  };

  // Expert e's Linears are quantized while its weights are in the layer: the
  // ones this processor (or an earlier one) owns are installed before its
  // tokens run; on the last calibration forward the whole expert is
  // exported, saved and its float weights dropped right after.
  void install_expert_hooks(const LayerDesc& desc, LayerWeights& weights, CalibrationExecutor& exec,
                            std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers, ExpertPass& pass,
                            Saver& saver, LayerReport& report) {
    exec.router = model_->router(weights.layer);
    exec.on_expert_begin = [&, this](int e) {
      for (const LinearDesc* lin : desc.expert_linears(e)) {
        const std::string full = desc.prefix + "." + lin->name;
        auto [owner_unit, owner] = owner_of(full);
        if (!owner || owner_unit > pass.unit) continue;
        if (!quantizers.count(lin->name)) quantizers[lin->name] = make_quantizer(weights, *lin, full, *owner);
        exec.quantizers[lin->name] = quantizers[lin->name].get();
        if (owner_unit == pass.unit) {
          pass.observing.insert(lin->name);
          exec.observing.insert(lin->name);
        }
      }
    };
    exec.all_tokens = [&, this](int e) {
      if (job_.moe_calibration != MoeCalibration::AllExperts) return false;
      for (const LinearDesc* lin : desc.expert_linears(e))
        if (pass.observing.count(lin->name) && quantizers.at(lin->name)->needs_data()) return true;
      return false;
    };
    exec.on_expert_end = [&, this](int e) {
      bool cold = false;
      const auto lins = desc.expert_linears(e);
      for (size_t i = 0; i < lins.size(); ++i) {
        const std::string& name = lins[i]->name;
        exec.quantizers.erase(name);
        if (!exec.observing.erase(name)) continue;
        LinearQuantizer& q = *quantizers.at(name);
        if (q.needs_data() && !q.has_observed()) {
          cold = true;
          continue;
        }
        q.freeze();
        if (i + 1 == lins.size() && q.needs_data()) {
          auto [lo, hi] = q.observed_range();
          pass.down_min = pass.down_seen ? std::min(pass.down_min, lo) : lo;
          pass.down_max = pass.down_seen ? std::max(pass.down_max, hi) : hi;
          pass.down_seen = true;
        }
      }
      if (cold) pass.cold.push_back(e);
      if (pass.last) save_expert(desc, e, weights, quantizers, saver, report, /*float_only=*/cold);
    };
  }

  // --moe_calibration routed: an expert no calibration token reached gets a
  // data-free rule for its static activation scales (docs/design.md): gate
  // and up take the range of the layer's MoE input over all tokens (every
  // expert receives those same normed hidden states), down the widest range
  // the layer's other experts' down projections observed.
  void finish_cold_experts(const LayerDesc& desc, const CalibrationExecutor& exec,
                           std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers, ExpertPass& pass,
                           Saver& saver, LayerReport& report) {
    for (int e : pass.cold) {
      spdlog::warn("{}: expert {} received no calibration tokens; its static activation scales follow the data-free "
                   "rule (gate/up: the MoE input's range over all tokens, down: the widest range of the other "
                   "experts' down projections)", desc.prefix, e);
      const auto lins = desc.expert_linears(e);
      for (size_t i = 0; i < lins.size(); ++i) {
        auto it = quantizers.find(lins[i]->name);
        if (it == quantizers.end() || !pass.observing.count(lins[i]->name)) continue;
        LinearQuantizer& q = *it->second;
        if (q.needs_data() && !q.has_observed()) {
          const bool down = i + 1 == lins.size();
          if (down && !pass.down_seen)
            fail("{}: no expert of this layer received calibration tokens, so expert {}'s down projection has no "
                 "activation range to borrow", desc.prefix, e);
          if (!down && !exec.router_seen) fail("{}: the MoE input was never observed", desc.prefix);
          if (down) q.observe_range(pass.down_min, pass.down_max);
          else q.observe_range(exec.router_min, exec.router_max);
        }
        q.freeze();
      }
      if (pass.last) save_expert_quantized(desc, e, quantizers, saver, report);
    }
  }

  // Saves expert e: its quantized Linears (building those a later data-free
  // processor owns) and its FLOAT ones, from the weights now in the layer.
  // With float_only, quantized Linears are left for save_expert_quantized.
  void save_expert(const LayerDesc& desc, int e, LayerWeights& weights,
                   std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers, Saver& saver,
                   LayerReport& report, bool float_only) {
    for (const LinearDesc* lin : desc.expert_linears(e)) {
      const std::string full = desc.prefix + "." + lin->name;
      auto [owner_unit, owner] = owner_of(full);
      if (owner) {
        if (!quantizers.count(lin->name)) quantizers[lin->name] = make_quantizer(weights, *lin, full, *owner);
        continue;
      }
      saver.note_float_linear();
      saver.save_float(full + ".weight", expert_weight(weights, lin->name + ".weight", *lin));
    }
    if (!float_only) save_expert_quantized(desc, e, quantizers, saver, report);
  }

  void save_expert_quantized(const LayerDesc& desc, int e,
                             std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers, Saver& saver,
                             LayerReport& report) {
    for (const LinearDesc* lin : desc.expert_linears(e)) {
      auto it = quantizers.find(lin->name);
      if (it == quantizers.end()) continue;
      save_quantized(*it->second, saver, report);
      quantizers.erase(it);
    }
  }

  // Every caller discards q next: its codes are moved out, not copied.
  void save_quantized(LinearQuantizer& q, Saver& saver, LayerReport& report) {
    saver.save_linear(q.release_linear(serving_dtype_));
    report.linears.push_back(linear_report(q));
  }

  // An expert's float weight in the checkpoint's dtype, taken out of the layer.
  // An f32 one is stored f32, or was rotated (quarot moves every expert
  // weight to f32): that one is rounded to the model's dtype, as rotated
  // layer tensors are.
  Tensor expert_weight(LayerWeights& weights, const std::string& name, const LinearDesc& lin) {
    if (auto it = weights.stored.find(name); it != weights.stored.end()) {
      Tensor t = std::move(it->second);
      weights.stored.erase(it);
      return t;
    }
    const Shape shape{lin.out_features, lin.in_features};
    Tensor t = quarot_ ? tensor_from_f32(model_->dtype(), shape, weights.get(name)) : tensor_f32(shape, weights.get(name));
    weights.tensors.erase(name);
    return t;
  }

  // With no forward to run, each Linear is quantized right when it is saved
  // and its float weight dropped at once: the layer shrinks as it is written.
  // Routed experts are read, quantized and saved one at a time.
  void save_layer_data_free(const LayerDesc& desc, LayerWeights& weights, Saver& saver, LayerReport& report) {
    std::map<std::string, std::unique_ptr<LinearQuantizer>> quantizers;
    for (const auto& lin : desc.linears) {
      if (lin.expert >= 0) continue;
      std::string full = desc.prefix + "." + lin.name;
      if (const ProcessorConfig* owner = owner_of(full).second) {
        quantizers[lin.name] = nullptr;  // quantized lazily below
        owners_[lin.name] = owner;
      }
    }
    save_layer(desc, quantizers, saver, report, weights);
    if (desc.num_experts == 0) return;
    save_experts_data_free(desc, weights, saver, report);
  }

  struct ReadyExpert {
    LayerWeights weights;  // the expert's FLOAT weights left after quantization
    std::map<std::string, std::unique_ptr<LinearQuantizer>> quantizers;
  };

  // Expert e quantized straight from its mapped checkpoint bytes (no copy);
  // its FLOAT Linears are copied out, and the mapping dropped on return. The
  // quantizer's row check stands in for the read-time finiteness pass; on a
  // non-finite weight the stream's check throws the usual read error.
  ReadyExpert prepare_mapped(const LayerDesc& desc, ExpertStream& stream, int e,
                             const std::vector<std::pair<const LinearDesc*, const ProcessorConfig*>>& owners) {
    ReadyExpert r;
    ExpertView view = stream.take_view(e, /*check_finite=*/false);
    for (const auto& [lin, owner] : owners) {
      const ExpertView::Weight& w = view.weights.at(lin->name + ".weight");
      if (owner) {
        try {
          r.quantizers[lin->name] = std::make_unique<LinearQuantizer>(
              desc.prefix + "." + lin->name, owner->qconfig, LinearQuantizer::StoredWeight{w.dtype, w.data, {}}, nullptr,
              lin->out_features, lin->in_features);
        } catch (const Error&) {
          stream.check_finite(e);  // a NaN or Inf: throws the read error instead
          throw;
        }
        continue;
      }
      Tensor copy = copy_view(w);
      if (first_non_finite(copy) >= 0) stream.check_finite(e);
      if (w.dtype == DType::F32) r.weights.tensors[lin->name + ".weight"] = to_f32(copy);
      else r.weights.stored[lin->name + ".weight"] = std::move(copy);
    }
    return r;
  }

  // Routed experts of a data-free layer, pipelined: a worker reads expert e+1
  // and quantizes it while this thread writes expert e, so reading,
  // quantizing and writing overlap and both cores stay busy.
  void save_experts_data_free(const LayerDesc& desc, LayerWeights& weights, Saver& saver, LayerReport& report) {
    // Owners are matched here, on one thread (matching records pattern usage).
    std::vector<std::vector<std::pair<const LinearDesc*, const ProcessorConfig*>>> owners(
        static_cast<size_t>(desc.num_experts));
    for (int e = 0; e < desc.num_experts; ++e)
      for (const LinearDesc* lin : desc.expert_linears(e))
        owners[static_cast<size_t>(e)].emplace_back(lin, owner_of(desc.prefix + "." + lin->name).second);
    std::unique_ptr<ExpertStream> stream = model_->part_stream(weights.layer, weights, job_.prefetch, expert_transforms_);
    bool mapped = stream->mappable();
    for (const auto& lin : desc.linears) mapped = mapped && (lin.expert < 0 || !lin.has_bias);
    auto prepare = [&](int e) {
      ReadyExpert r;
      if (mapped) return prepare_mapped(desc, *stream, e, owners[static_cast<size_t>(e)]);
      r.weights = stream->take(e);
      for (const auto& [lin, owner] : owners[static_cast<size_t>(e)]) {
        if (!owner) continue;
        r.quantizers[lin->name] = make_quantizer(r.weights, *lin, desc.prefix + "." + lin->name, *owner);
        r.weights.stored.erase(lin->name + ".weight");
        r.weights.tensors.erase(lin->name + ".weight");
      }
      return r;
    };
    std::future<ReadyExpert> next = std::async(std::launch::async, prepare, 0);
    for (int e = 0; e < desc.num_experts; ++e) {
      ReadyExpert r = next.get();
      if (e + 1 < desc.num_experts) next = std::async(std::launch::async, prepare, e + 1);
      for (const auto& [lin, owner] : owners[static_cast<size_t>(e)]) {
        if (owner) {
          save_quantized(*r.quantizers.at(lin->name), saver, report);
          continue;
        }
        saver.note_float_linear();
        saver.save_float(desc.prefix + "." + lin->name + ".weight", expert_weight(r.weights, lin->name + ".weight", *lin));
      }
    }
  }

  // Every calibration sample through unit k: the outputs, inputs unchanged.
  HiddenSet forward_all(int k, LayerWeights& weights, LinearExecutor* exec, std::vector<int64_t>* expert_tokens,
                        const std::set<size_t>* keep_inputs = nullptr) {
    return forward_samples(k, weights, exec, all_samples(), expert_tokens, keep_inputs);
  }
  std::vector<size_t> all_samples() const {
    std::vector<size_t> all(samples_.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    return all;
  }

  // Samples `which` through unit k, a chunk at a time (chunks()); each chunk's
  // inputs and outputs leave resident memory once done when spilled. A MoE
  // unit streams its experts once per chunk. With `keep_inputs`, the layer's
  // last forward: every other sample runs in its input's own buffer, which
  // leaves hidden_ (one sample set less at the layer's peak).
  HiddenSet forward_samples(int k, LayerWeights& weights, LinearExecutor* exec, const std::vector<size_t>& which,
                            std::vector<int64_t>* expert_tokens, const std::set<size_t>* keep_inputs = nullptr) {
    HiddenSet outputs(&store_);
    auto consumed = [keep_inputs](size_t i) { return keep_inputs && !keep_inputs->count(i); };
    if (expert_tokens) expert_tokens->clear();
    for (const auto& [begin, end] : chunks(which)) {
      std::vector<SequenceRef> refs;
      for (size_t j = begin; j < end; ++j) {
        const size_t i = which[j];
        if (consumed(i)) {
          outputs.adopt(hidden_.take(i));
        } else {
          outputs.add(hidden_[i].size());
          std::copy(hidden_[i].begin(), hidden_[i].end(), outputs[j].begin());
        }
        refs.push_back({outputs[j].data(), samples_[i].seq(), samples_[i].positions.data(), static_cast<int>(i)});
      }
      std::vector<int64_t> counts;
      std::unique_ptr<ExpertStream> stream = model_->part_stream(k, weights, job_.prefetch, expert_transforms_);
      with_context(fmt::format("layer {} on the calibration samples", k), [&] {
        model_->forward(k, weights, refs, exec, stream.get(), expert_tokens ? &counts : nullptr);
      });
      if (expert_tokens) {
        expert_tokens->resize(std::max(expert_tokens->size(), counts.size()), 0);
        for (size_t e = 0; e < counts.size(); ++e) (*expert_tokens)[e] += counts[e];
      }
      for (size_t j = begin; j < end; ++j) {
        round_stream(outputs[j]);
        if (int64_t bad = first_non_finite(std::span<const float>(outputs[j])); bad >= 0)
          fail("layer {} on calibration sample {}: the layer's output holds a non-finite value at token {}, channel "
               "{} (an overflow in the model's float arithmetic, or damaged weights)", k, which[j],
               bad / model_->width(), bad % model_->width());
        if (!consumed(which[j])) hidden_.evict(which[j]);
        outputs.evict(j);
      }
    }
    return outputs;
  }

  // The samples the report's per-layer figure is measured on: every
  // kReportStride-th sample (at least the first) unless full_report. Whole
  // samples, not prefixes: the first tokens of a sequence (BOS and its
  // attention sink) carry errors unlike the rest and would bias the figure.
  // With few samples those picks can be most of the tokens (4 prompts: the
  // first alone was 45 % of them, and its float forward 40 % of a run's time):
  // then the shortest sample stands in for them.
  std::vector<size_t> report_reference_samples() const {
    std::vector<size_t> picked;
    int64_t picked_rows = 0, all_rows = 0;
    for (size_t s = 0; s < samples_.size(); ++s) {
      all_rows += samples_[s].seq();
      if (s % report_stride() == 0) picked.push_back(s), picked_rows += samples_[s].seq();
    }
    if (report_stride() > 1 && picked_rows * static_cast<int64_t>(report_stride()) > all_rows) {
      auto shortest = std::min_element(samples_.begin(), samples_.end(),
                                       [](const CalibSample& a, const CalibSample& b) { return a.seq() < b.seq(); });
      if (shortest->seq() < picked_rows) picked = {static_cast<size_t>(shortest - samples_.begin())};
    }
    return picked;
  }

  // The layer's quantized output against the float layer on the same inputs
  // (report_reference_samples), from smoothing's forward when it kept them
  // (`reference` non-empty), else from a float forward of those samples.
  void measure_layer(int k, LayerWeights& weights, const HiddenSet& quantized, HiddenSet& reference,
                     LayerReport& report) {
    const std::vector<size_t> picked = report_reference_samples();
    // A MoE layer's float reference streams the experts it routes to once more.
    // Under bf16 compute the reference computes in bf16 too (no quantizers).
    CalibrationExecutor plain(weights);
    plain.set_compute_dtype(job_.compute_dtype);
    report.reference = reference.empty() ? "float_forward" : "smoothing_forward";
    if (reference.empty()) reference = forward_samples(k, weights, bf16_compute() ? &plain : nullptr, picked, nullptr);
    OutputErrorStats stats;
    for (size_t i = 0; i < picked.size(); ++i) {
      stats.add(reference[i].data(), quantized[picked[i]].data(), reference[i].size());
      reference.evict(i);
      quantized.evict(picked[i]);
    }
    report.relative_l2 = stats.relative_l2();
    report.cosine = stats.cosine();
  }

  // The checkpoint's own tensor (original dtype) for a FLOAT save, taken from
  // the loaded layer when it holds the same bytes, so nothing is read twice.
  Tensor original_tensor(LayerWeights& weights, const std::string& name, const std::string& full) {
    if (weights.scaled(name)) {  // smoothed: its f32 values, rounded to the checkpoint's dtype as below
      const TensorInfo& info = ckpt_.info(model_->checkpoint_name(full));
      return tensor_from_f32(info.dtype, info.shape, weights.mutable_f32(name));
    }
    if (auto it = weights.stored.find(name); it != weights.stored.end()) {
      Tensor t = std::move(it->second);
      weights.stored.erase(it);
      return t;
    }
    const std::string stored = model_->checkpoint_name(full);
    const TensorInfo& info = ckpt_.info(stored);
    if (weights.mapped.count(name)) {  // mapped weights are checked where used
      Tensor t = ckpt_.read(stored);
      check_finite(t, stored, ckpt_.file_of(stored).string());
      return t;
    }
    // The layer's f32 copy holds what smoothing / rotation made of the tensor;
    // an untouched 16-bit one converts back to the same bytes.
    if (auto it = weights.tensors.find(name); it != weights.tensors.end())
      return tensor_from_f32(info.dtype, info.shape, it->second);
    return ckpt_.read(stored);
  }

  // Quantizers that are still null are built when their Linear is saved, and
  // the float weight is freed right after (data-free runs). Tensors in
  // `saved` (saved early, below) are skipped.
  void save_layer(const LayerDesc& desc, std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers,
                  Saver& saver, LayerReport& report, LayerWeights& weights,
                  const std::set<std::string>& saved = {}) {
    for (const auto& t : desc.tensors)
      if (!saved.count(t.name)) save_layer_tensor(desc, t.name, quantizers, saver, report, weights);
    // Tensors smoothing created (spec §2.8): a replaced norm's bias, and a
    // bias an asymmetric shift gave a Linear (saved with it when quantized),
    // written FLOAT in float32 — beside their module's weight (above) unless
    // that weight was written before smoothing made them.
    for (const auto& name : added_tensors_)
      if (!quantizers.count(name.substr(0, name.rfind('.')))) save_added_tensor(desc, name, weights, saver);
  }

  void save_added_tensor(const LayerDesc& desc, const std::string& name, const LayerWeights& weights, Saver& saver) {
    const std::vector<float>& v = weights.get(name);
    saver.save_float(desc.prefix + "." + name, tensor_f32({static_cast<int64_t>(v.size())}, v));
  }

  // The Linear whose weight or bias `tensor` is, or nullptr.
  static const LinearDesc* linear_of(const LayerDesc& desc, const std::string& tensor, bool* is_bias) {
    for (const auto& lin : desc.linears) {
      if (tensor == lin.name + ".weight") return *is_bias = false, &lin;
      if (lin.has_bias && tensor == lin.name + ".bias") return *is_bias = true, &lin;
    }
    return nullptr;
  }

  void save_layer_tensor(const LayerDesc& desc, const std::string& name,
                         std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers, Saver& saver,
                         LayerReport& report, LayerWeights& weights) {
    bool is_bias = false;
    const LinearDesc* lin = linear_of(desc, name, &is_bias);
    const bool quantized = lin && quantizers.count(lin->name);
    if (is_bias && quantized) return;  // saved with its Linear
    if (lin && !is_bias && quantized) {
      auto& slot = quantizers.at(lin->name);
      if (!slot) {
        slot = make_quantizer(weights, *lin, desc.prefix + "." + lin->name, *owners_.at(lin->name));
        weights.stored.erase(name);
        weights.mapped.erase(name);
      }
      LinearQuantizer& q = *slot;
      saver.save_linear(q.release_linear(serving_dtype_));  // reset below
      report.linears.push_back(linear_report(q));
      slot.reset();
      save_input_rotation(desc, *lin, weights, saver);
      return;
    }
    const std::string full = desc.prefix + "." + name;
    if (lin && !is_bias) saver.note_float_linear();
    saver.save_float(full, original_tensor(weights, name, full));
    // A bias smoothing gave this norm or FLOAT Linear follows its weight, as
    // msModelSlim's saver writes a module's parameters together.
    if (name.ends_with(".weight") && (!lin || !lin->has_bias)) {
      const std::string bias = name.substr(0, name.size() - 7) + ".bias";
      if (added_tensors_.erase(bias)) save_added_tensor(desc, bias, weights, saver);
    }
    if (lin && (is_bias || !lin->has_bias)) save_input_rotation(desc, *lin, weights, saver);
  }

  // quarot online: a Linear's input rotation follows its tensors (msModelSlim
  // writes its wrapper after the wrapped Linear).
  void save_input_rotation(const LayerDesc& desc, const LinearDesc& lin, const LayerWeights& weights, Saver& saver) {
    auto it = weights.input_rotations.find(lin.name);
    if (it != weights.input_rotations.end())
      saver.save_online_rotation(desc.prefix + "." + lin.name, it->second, quarot_settings_.max_tp_size);
  }

  // The layer's last calibration forward, its attention half done over every
  // sample: the layer's leading tensors up to the first Linear not yet run
  // (norms, q/k/v/o) are final and saved now, so their int8 codes are not
  // held through the MLP's forward (a 1 GB model's layer: 17 of its 51 MB of
  // codes). The saved order is save_layer's.
  void save_leading_tensors(const LayerDesc& desc, std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers,
                            CalibrationExecutor& exec, const std::set<std::string>& ran, Saver& saver,
                            LayerReport& report, LayerWeights& weights, std::set<std::string>& saved) {
    for (const auto& t : desc.tensors) {
      bool is_bias = false;
      const LinearDesc* lin = linear_of(desc, t.name, &is_bias);
      if (lin && !ran.count(lin->name)) return;
      if (lin && quantizers.count(lin->name) && quantizers.at(lin->name)) {
        if (exec.observing.erase(lin->name)) quantizers.at(lin->name)->freeze();
        exec.quantizers.erase(lin->name);
      }
      save_layer_tensor(desc, t.name, quantizers, saver, report, weights);
      saved.insert(t.name);
    }
  }

  // Embedding, final norm and head, a block of rows at a time: a large
  // vocabulary's table (Qwen3: 151 936 × 4 096) is never held whole.
  void save_non_layer_tensors(Saver& saver) {
    for (const auto& t : model_->outer_tensors()) {
      const DType dtype = model_->outer_dtype(t.name);
      RowSource rows = [&](int64_t row0, int64_t n, void* dst) { model_->read_outer_rows(t.name, row0, n, dst); };
      if (quarot_) rows = rotated_rows(t.name, dtype, t.shape);
      saver.save_float_rows(t.name, dtype, t.shape, rows);
    }
  }

  // quarot: embedding rows ← E·R; the final norm fused into lm_head (and then
  // ones), whose rows are rotated too (a tied model's head starts from the
  // unrotated embedding and is written as its own tensor). Written in the
  // stored dtype.
  RowSource rotated_rows(const std::string& name, DType dtype, const Shape& shape) {
    const Architecture& arch = architecture_for(lm());
    const int64_t H = lm().hidden_size;
    auto f32_rows = [this, name, dtype, H](int64_t row0, int64_t n) {
      Tensor raw(dtype, {n, H});
      model_->read_outer_rows(name, row0, n, raw.bytes.data());
      return to_f32(raw);
    };
    if (name == arch.embed_tokens)
      return [this, f32_rows, dtype, H](int64_t row0, int64_t n, void* dst) {
        std::vector<float> rows = f32_rows(row0, n);
        quarot_rotate_rows(*quarot_, rows.data(), n);
        convert_from_f32(rows.data(), dtype, dst, static_cast<size_t>(n * H));
      };
    if (name == arch.final_norm)
      return [dtype](int64_t, int64_t n, void* dst) {
        const std::vector<float> ones(static_cast<size_t>(n), 1.0f);
        convert_from_f32(ones.data(), dtype, dst, static_cast<size_t>(n));
      };
    Tensor norm(model_->outer_dtype(arch.final_norm), {H});
    model_->read_outer_rows(arch.final_norm, 0, H, norm.bytes.data());
    const std::vector<float> g = to_f32(norm);
    if (name == arch.lm_head)
      return [this, f32_rows, g, dtype, H](int64_t row0, int64_t n, void* dst) {
        std::vector<float> rows = f32_rows(row0, n);
        std::vector<float> norm_copy = g;  // quarot_rotate_head sets it to ones
        quarot_rotate_head(*quarot_, norm_copy, rows);
        convert_from_f32(rows.data(), dtype, dst, static_cast<size_t>(n * H));
      };
    fail("quarot: the model has a non-layer tensor '{}' lwquant does not know how to rotate (shape {})", name,
         shape_str(shape));
  }

  // The embedding, final norm and head are written last, a block of rows at a
  // time; a damaged one is found now, before any layer's work, by one pass of
  // the same block reads (each checks its rows).
  void check_outer_tensors_are_finite() const {
    for (const auto& t : model_->outer_tensors()) {
      const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
      const int64_t row_bytes =
          rows > 0 ? shape_numel(t.shape) * static_cast<int64_t>(dtype_size(model_->outer_dtype(t.name))) / rows : 0;
      const int64_t block = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(row_bytes, 1));
      std::vector<uint8_t> scratch(static_cast<size_t>(std::min(block, rows) * row_bytes));
      for (int64_t r = 0; r < rows; r += block) model_->read_outer_rows(t.name, r, std::min(block, rows - r), scratch.data());
    }
  }

  // Tensors no descriptor claims (e.g. rotary inv_freq buffers) are not
  // exported, as msModelSlim exports parameters only.
  void warn_unknown_tensors() {
    std::set<std::string> known;
    for (const auto& t : model_->outer_tensors()) known.insert(model_->checkpoint_name(t.name));
    for (int k = 0; k < model_->num_units(); ++k)
      for (auto& name : model_->checkpoint_tensors(k)) known.insert(std::move(name));
    std::vector<std::string> unknown;
    for (const auto& name : ckpt_.tensor_names())
      if (!known.count(name)) unknown.push_back(name);
    if (!unknown.empty())
      spdlog::warn("{} checkpoint tensor(s) belong to no known module and are not exported, e.g. '{}'",
                   unknown.size(), unknown.front());
  }

  // The report's rows so far; also the runner's resume state.
  nlohmann::ordered_json reports_json() const {
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const auto& r : reports_) {
      nlohmann::ordered_json linears = nlohmann::ordered_json::array();
      for (const auto& l : r.linears) {
        nlohmann::ordered_json j = {{"name", l.name}, {"type", l.type}};
        if (!(l.relative_l2 < 0)) {  // measured (a NaN is written as null, never dropped)
          j["relative_l2"] = l.relative_l2;
          j["cosine"] = l.cosine;
        }
        if (l.input_range) j["input_range"] = {l.input_range->first, l.input_range->second};
        linears.push_back(j);
      }
      nlohmann::ordered_json j = {{"layer", r.layer}, {"name", r.prefix}};
      if (!(r.relative_l2 < 0)) {
        j["relative_l2"] = r.relative_l2;
        j["cosine"] = r.cosine;
      }
      if (!r.reference.empty()) j["reference"] = r.reference;
      j["linears"] = linears;
      if (!r.expert_tokens.empty()) j["expert_tokens"] = r.expert_tokens;
      layers.push_back(j);
    }
    return layers;
  }

  void restore_reports(const nlohmann::json& layers) {
    auto measured = [](const nlohmann::json& j, const char* key) {
      if (!j.contains(key)) return -1.0;
      return j.at(key).is_null() ? std::nan("") : j.at(key).get<double>();
    };
    try {
      for (const auto& j : layers) {
        LayerReport r{j.at("layer").get<int>(), j.at("name").get<std::string>(), {}, measured(j, "relative_l2"),
                      measured(j, "cosine"), {}, {}};
        if (j.contains("expert_tokens")) r.expert_tokens = j.at("expert_tokens").get<std::vector<int64_t>>();
        if (j.contains("reference")) r.reference = j.at("reference").get<std::string>();
        for (const auto& l : j.at("linears")) {
          r.linears.push_back({l.at("name").get<std::string>(), l.at("type").get<std::string>(),
                               measured(l, "relative_l2"), measured(l, "cosine"), std::nullopt});
          if (l.contains("input_range"))
            r.linears.back().input_range = {l.at("input_range").at(0).get<float>(), l.at("input_range").at(1).get<float>()};
        }
        reports_.push_back(std::move(r));
      }
    } catch (const nlohmann::json::exception& e) {
      fail("malformed report rows in the resume manifest: {}", e.what());
    }
  }

  void write_report(const fs::path& dir, const SaveSummary& summary) {
    nlohmann::ordered_json doc = {{"model_quant_type", summary.model_quant_type},
                                  {"calibration_samples", samples_.size()},
                                  {"measured", !samples_.empty() && job_.report},
                                  {"sampled", !samples_.empty() && job_.report && !job_.full_report},
                                  {"compute_dtype", bf16_compute() && !samples_.empty() ? "bf16" : "f32"},
                                  {"statistics_products", bf16_statistics() && !samples_.empty() ? "bf16" : "f32"}};
    if (!samples_.empty()) {
      std::vector<int64_t> tokens;
      for (const auto& sample : samples_) tokens.push_back(sample.seq());
      doc["sample_tokens"] = tokens;
      if (job_.report) doc["layer_reference_samples"] = report_reference_samples();
    }
    doc["layers"] = reports_json();
    write_text_file_atomic(dir / "quant_report.json", doc.dump(2));
    log_worst_layers();
    log_outlying_static_ranges();
  }

  // Static Linears whose calibration input range is kOutlyingRange× the
  // median one's or more: one scale per tensor cannot serve their ordinary
  // tokens; msModelSlim's static practices exclude such Linears by name.
  void log_outlying_static_ranges() const {
    constexpr float kOutlyingRange = 20.0f;
    std::vector<std::pair<float, const std::string*>> widths;
    for (const auto& r : reports_)
      for (const auto& l : r.linears)
        if (l.input_range) widths.emplace_back(l.input_range->second - l.input_range->first, &l.name);
    if (widths.size() < 2) return;
    std::vector<float> sorted;
    for (const auto& w : widths) sorted.push_back(w.first);
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<long>(sorted.size() / 2), sorted.end());
    const float median = sorted[sorted.size() / 2];
    if (!(median > 0.0f)) return;
    std::sort(widths.begin(), widths.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<std::string> names;
    for (const auto& [width, name] : widths) {
      if (!(width >= kOutlyingRange * median)) break;
      names.push_back(fmt::format("{} ({:.0f}x)", *name, width / median));
    }
    if (names.empty()) return;
    spdlog::warn("{} static Linear(s) saw a calibration input range {:.0f}x or more the median Linear's ({:.3g}): "
                 "one activation scale per tensor then quantizes their ordinary tokens coarsely; consider excluding them or "
                 "W8A8_DYNAMIC for them (input_range in quant_report.json): {}",
                 names.size(), kOutlyingRange, median, fmt::join(names, ", "));
  }

  void log_worst_layers() {
    std::vector<const LayerReport*> measured;
    for (const auto& r : reports_)
      if (r.relative_l2 >= 0) measured.push_back(&r);
    if (measured.empty()) {
      spdlog::info("quality report: not measured ({})", job_.report ? "data-free configuration runs no calibration forward"
                                                                    : "--no_report");
      return;
    }
    std::sort(measured.begin(), measured.end(),
              [](const LayerReport* a, const LayerReport* b) { return a->relative_l2 > b->relative_l2; });
    spdlog::info("worst layers by relative L2 error of their output (quant_report.json has every Linear):");
    for (size_t i = 0; i < std::min<size_t>(5, measured.size()); ++i)
      spdlog::info("  {}: relative L2 {:.4f}, cosine {:.6f}", measured[i]->prefix, measured[i]->relative_l2,
                   measured[i]->cosine);
  }

  const QuantJob& job_;
  Checkpoint ckpt_;
  std::unique_ptr<UnitModel> model_;  // the only way the runner sees the model's family
  std::vector<ProcessingUnit> units_;
  DType serving_dtype_;
  CalibrationStore store_;
  std::vector<CalibSample> samples_;  // positions (hidden states: hidden_)
  HiddenSet hidden_;
  std::vector<LayerReport> reports_;
  std::map<std::string, const ProcessorConfig*> owners_;  // data-free path: Linear → owning processor
  double commit_seconds_ = 0.0;
  int last_data_unit_ = -1;  // index in units_ of the last linear_quant unit that runs a calibration forward
  std::optional<QuarotPlan> quarot_;
  QuarotSettings quarot_settings_;
  std::set<std::string> added_tensors_;  // this layer's tensors created by smoothing and not yet written (relative names)
  std::set<std::string> crossing_reported_;  // smoothing subgraphs skipped for an online rotation, warned once
  bool trim_calibrated_units_ = false;   // release_freed_memory in calibrated runs too (decoder layers)
  ExpertTransform expert_transforms_;    // this layer's per-expert smoothing, applied to every later read of an expert
};

}  // namespace

// Tensors of tens of MB are allocated and freed for every Linear and expert;
// glibc would mmap each one afresh (a page fault and a zeroed page per 4 KiB)
// and give every thread its own arena. One arena and a high mmap threshold let
// those buffers be reused; in data-free runs malloc_trim after each layer
// still returns the memory to the OS, so RSS keeps tracking what is live
// (release_freed_memory; docs/benchmarks.md: a third less CPU on data-free
// MoE layers).
static void tune_allocator_for_large_buffers() {
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
}

QuantOutcome run_quantization(const QuantJob& job) {
  tune_allocator_for_large_buffers();
  return LayerWiseQuantizer(job).run();
}

}  // namespace lwq
