// Outlier smoothing (spec §1.6 smooth_quant / iter_smooth / flex_smooth_quant,
// §2.8): per-input-channel scales s move activation range from a Linear's
// input into its weights, W[:, c] *= s_c, and the producer of that input (a
// norm's weight, or the output rows of the previous Linear) is divided by s_c,
// so the float function is unchanged.
//
// Use on one unit (one processor × one layer), see docs/design.md:
//   LayerSmoother sm(settings, cfg, arch, "model.layers.3");
//   run the layer's calibration forward with an executor whose run() calls
//   sm.observer().observe(name, x, rows, in) (ObservingExecutor does that);
//   sm.apply(layer_weights);   // before any later processor of the layer runs
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/quant_config.h"
#include "models/architecture.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"

namespace lwq {

enum class SmoothKind { IterSmooth, SmoothQuant, FlexSmoothQuant };

struct SmoothSettings {
  SmoothKind kind = SmoothKind::IterSmooth;
  // iter_smooth default 0.9, smooth_quant 0.5; flex_smooth_quant: nullopt =
  // grid search (then β is searched with the best α).
  std::optional<double> alpha = 0.9;
  std::optional<double> beta;  // flex only; nullopt = grid search
  double scale_min = 1e-5;     // iter_smooth; smooth_quant and flex use 1e-5
  bool symmetric = true;       // false: norm-linear subgraphs smooth around shift = (max+min)/2
  std::vector<std::string> enabled_types = {"norm-linear", "linear-linear", "ov", "up-down"};
  std::vector<std::string> include{"*"}, exclude;  // full dotted Linear names (a subgraph needs all its Linears)
  // Rows of each observed input kept (reservoir, fixed seed) for the flex grid search.
  // The reference searches on every calibration token (on an NPU); 42 GEMMs of
  // this many rows per subgraph is what a CPU affords.
  int64_t max_search_rows = 512;
};

// Settings with the reference defaults of each processor type.
SmoothSettings default_smooth_settings(SmoothKind kind);
// From a parsed iter_smooth / smooth_quant / flex_smooth_quant processor (throws for another type).
SmoothSettings smooth_settings_from(const ProcessorConfig& p);

// ---- statistics ----
struct ChannelStats {
  std::vector<float> max, min;  // per input channel, running over every row observed
  int64_t rows = 0;             // rows observed
  std::vector<float> sample;    // [sample_rows, in]: reservoir of observed rows (flex only)
  int64_t sample_rows = 0;
  // The reservoir's generator, one per watched Linear with a fixed seed, so the
  // sample depends only on this Linear's rows in order, not on how the forward
  // interleaves its Linears (one sample at a time or a batch of them).
  uint64_t rng = 0x9E3779B97F4A7C15ull;
};

// Per-input-channel statistics of the Linears a smoothing processor watches
// (the first target of each subgraph), fed from the LinearExecutor hook.
class SmoothObserver {
 public:
  SmoothObserver() = default;
  SmoothObserver(std::vector<std::string> watched, int64_t keep_rows);
  bool watches(const std::string& linear_name) const { return stats_.count(linear_name) != 0; }
  // x [rows, in], the input of `linear_name` (relative name); ignored when not watched.
  void observe(const std::string& linear_name, const float* x, int64_t rows, int64_t in);
  const ChannelStats& stats(const std::string& linear_name) const;  // throws when nothing was observed

 private:
  std::map<std::string, ChannelStats> stats_;
  int64_t keep_rows_ = 0;
};

// Observes every Linear input, then runs the Linear in f32.
class ObservingExecutor : public LinearExecutor {
 public:
  // With `layer`, Linears are computed from it a block of weight rows at a
  // time (linear_from_layer: no f32 copy of a 16-bit weight), as the runner
  // needs; without, from the f32 weight the forward passes.
  explicit ObservingExecutor(SmoothObserver& obs, const LayerWeights* layer = nullptr) : obs_(obs), layer_(layer) {}
  bool needs_float_weight(const std::string&) const override { return layer_ == nullptr; }
  // Linears whose output no Linear of the unit reads, when the forward's
  // output is thrown away (a later forward recomputes it): their inputs are
  // observed, their product is skipped and zeros written.
  void skip_unread_outputs(std::function<bool(const std::string&)> unused) { output_unused_ = std::move(unused); }
  // Products of stored bfloat16 weights on bf16-rounded inputs with f32
  // accumulation (--compute_dtype auto on a bf16 checkpoint): the statistics
  // only place each channel's range for a heuristic scale, and this forward
  // is the run's most expensive one in f32. Inputs are observed unrounded;
  // outputs stay f32. Weights held in f32 (rewritten by quarot or an earlier
  // smoothing) are rounded to bf16 for the product, a block of rows at a time.
  void use_bf16_products(bool on) { bf16_products_ = on; }
  void run(const std::string& linear_name, const float* x, int64_t rows, int64_t in, const float* weight,
           const float* bias, int64_t out, float* y) override {
    obs_.observe(linear_name, x, rows, in);
    if (output_unused_ && output_unused_(linear_name)) {
      std::fill(y, y + rows * out, 0.0f);
      return;
    }
    if (layer_ && bf16_products_ && compute_dtype() != ComputeDType::BF16 &&
        linear_bf16_rounded(*layer_, linear_name + ".weight", x, rows, in, bias, out, y))
      return;
    if (layer_)
      linear_from_layer(*layer_, linear_name + ".weight", x, rows, in, bias, out, y,
                        bf16_products_ || compute_dtype() == ComputeDType::BF16);
    else LinearExecutor::run(linear_name, x, rows, in, weight, bias, out, y);
  }

 private:
  SmoothObserver& obs_;
  const LayerWeights* layer_;
  std::function<bool(const std::string&)> output_unused_;
  bool bf16_products_ = false;
};

// ---- the scale formulas (§2.8), exposed for tests ----
// a_c = max|x_c| (symmetric) or max|x_c − shift_c| = (max−min)/2 with shift = (max+min)/2.
std::vector<float> activation_scale(const ChannelStats& st, bool symmetric);
std::vector<float> activation_shift(const ChannelStats& st);  // (max+min)/2
// w_c = max over the given [rows_i, in] matrices and their rows of |W[r, c]|, clamped ≥ 1e-5.
std::vector<float> weight_scale(const std::vector<std::pair<const float*, int64_t>>& weights, int64_t in);
// The same for one weight of a layer, read a block of rows at a time with its
// scalings (LayerWeights::rows_f32): a 16-bit or streamed weight is never
// converted whole (a 5632×2048 gate_proj: 46 MB of f32).
std::vector<float> weight_scale(const LayerWeights& w, const std::string& name, int64_t in);
// s_c = max(a_c^α / w_c^β, scale_min) (iter_smooth / smooth_quant: β = 1 − α).
std::vector<float> smooth_scale(const std::vector<float>& a, const std::vector<float>& w, double alpha, double beta,
                                double scale_min);
// OV with GQA: o_proj input channel (h, d) reads v_proj output channel (h / ratio, d).
struct OvScales {
  std::vector<float> o;  // [num_heads · head_dim], o_proj input columns
  std::vector<float> v;  // [num_kv_heads · head_dim], v_proj output rows
};
// iter_smooth: per-channel scales s [q_dim] averaged over the heads of each KV group.
OvScales ov_scales_mean(const std::vector<float>& s, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim);
// flex (group_method max): a and w maxed over each group's heads, then a^α / w^β clamped ≥ 1e-5.
OvScales ov_scales_max(const std::vector<float>& a, const std::vector<float>& w, double alpha, double beta,
                       int64_t num_heads, int64_t num_kv_heads, int64_t head_dim);

// ---- flex grid search ----
// Relative RMS error of Q8sym(x/s)·Q8sym(W·s)ᵀ against x·Wᵀ with
// s = max|x|^α / max|W|^β (per channel over these rows; no clamp), activations
// quantized per row (symmetric int8, or asymmetric when !act_sym), weights
// per output row.
double flex_quant_error(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, double alpha,
                        double beta, bool act_sym = true);
struct FlexChoice {
  double alpha = 0, beta = 0, error = 0;
};
// α over {0, 0.05, …, 1} with β = 1 − α (unless β is given), then β over the
// same grid with the best α; ties go to the later grid point (as the reference).
FlexChoice flex_search(const float* x, int64_t rows, int64_t in, const float* w, int64_t out,
                       std::optional<double> alpha, std::optional<double> beta, bool act_sym = true);

// ---- one processor on one layer ----
struct SmoothedSubgraph {
  std::string type, source;
  std::vector<std::string> targets;
  std::vector<float> scales;  // per smoothed channel (the v-row scales for ov)
  double alpha = 0, beta = 0;
};
struct SmoothResult {
  std::vector<SmoothedSubgraph> subgraphs;  // in application order
  // Tensors the transform created (f32, in LayerWeights.tensors): "<norm>.bias"
  // of a replaced norm (exported FLOAT float32, spec §2.8), "<linear>.bias"
  // where an asymmetric shift landed on a Linear without one.
  std::vector<std::string> added_tensors;
};

class LayerSmoother {
 public:
  // `layer_prefix` ("model.layers.3") makes the full names include/exclude see.
  // Throws for an ov subgraph when heads do not group evenly.
  LayerSmoother(SmoothSettings settings, const ModelConfig& cfg, const Architecture& arch, std::string layer_prefix);

  // The family's subgraphs this processor smooths, in application order
  // (up-down, ov, linear-linear, norm-linear).
  const std::vector<SmoothSubgraph>& subgraphs() const { return subgraphs_; }
  SmoothObserver& observer() { return observer_; }

  // Computes the scales from the observed statistics and the current weights
  // and transforms `w` in place; 16-bit stored tensors that change move to
  // f32 `tensors`. Call once, after the calibration forward.
  SmoothResult apply(LayerWeights& w);

 private:
  void apply_one(const SmoothSubgraph& g, LayerWeights& w, SmoothResult& res);

  SmoothSettings s_;
  int64_t num_heads_ = 0, num_kv_heads_ = 0, head_dim_ = 0;
  std::vector<SmoothSubgraph> subgraphs_;
  SmoothObserver observer_;
};

// The subgraph types an `enable_subgraph_type` list names that the family does
// not declare: a warning each (the reference practices list all four types
// for every model, so this cannot be an error).
std::vector<std::string> undeclared_subgraph_types(const Architecture& arch, const std::vector<std::string>& types);

}  // namespace lwq
