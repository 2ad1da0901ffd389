// One Linear under linear_quant: its weight quantized (data-free methods up
// front; gptq at freeze() from the Hessian its calibration forwards
// accumulate), its activation observed during calibration forwards, and its
// export description built at the end (spec §2.6–2.7, §4.3).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "config/quant_config.h"
#include "quant/gptq.h"
#include "quant/histogram.h"
#include "quant/weight_quant.h"
#include "savers/quantized_linear.h"
#include "tensor/dtype.h"

namespace lwq {

// Relative error statistics of a quantized Linear's output against the float
// output on the same inputs (the quality report).
struct OutputErrorStats {
  double err_sq = 0.0, ref_sq = 0.0, dot = 0.0, out_sq = 0.0;
  int64_t rows = 0;
  void add(const float* ref, const float* out, size_t n);
  void merge(const OutputErrorStats& other);
  double relative_l2() const;  // ||out − ref|| / ||ref||
  double cosine() const;
};

class LinearQuantizer {
 public:
  // Supplies rows [begin, end) of the float weight W[out, in] into `dst`;
  // per-channel minmax int weights call it from every thread at once.
  using WeightRows = std::function<void(int64_t begin, int64_t end, float* dst)>;

  // `weight` [out, in] and `bias` ([out] or nullptr) are the float parameters.
  // Throws lwq::Error naming the Linear when its shape does not suit the
  // scheme (a group size that does not divide in_features, an odd dimension
  // to pack, ...).
  LinearQuantizer(std::string full_name, const LinearQConfig& config, const float* weight, const float* bias,
                  int64_t out_features, int64_t in_features);
  // The same, reading the weight a block of rows at a time, so quantizing a
  // 16-bit weight with a row-wise method never needs a float32 copy of the
  // whole matrix (ssz and gptq keep one: their work spans all rows).
  LinearQuantizer(std::string full_name, const LinearQConfig& config, const WeightRows& weight_rows,
                  const float* bias, int64_t out_features, int64_t in_features);
  // The weight as stored (row-major [out, in], any float dtype, e.g. the
  // checkpoint's bf16 bytes): per-channel minmax int weights (the data-free
  // W8A8_DYNAMIC / W8A16 path) are quantized from it directly, with no f32
  // copy; other methods read it a block of rows at a time as above.
  struct StoredWeight {
    DType dtype;
    const void* data;
    // When set, called (from any thread) after each block of rows [begin,
    // end) was read: a streamed mapping drops those pages
    // (LayerWeights::release_rows) instead of holding the whole matrix
    // resident until the end. Per-channel minmax weights only.
    RowsReadFn rows_read;
  };
  LinearQuantizer(std::string full_name, const LinearQConfig& config, StoredWeight weight, const float* bias,
                  int64_t out_features, int64_t in_features);
  ~LinearQuantizer();

  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }
  bool needs_data() const;

  // Calibration forward: observes `x` [rows, in] (running min/max or
  // histogram for static activations, the Hessian for gptq), fake-quantizes
  // it as the deployed scheme does and multiplies by the fake-quantized weight
  // (gptq: by the float weight until freeze()). Once frozen, uses the final
  // parameters and observes nothing.
  void forward(const float* x, int64_t rows, float* y);
  // The same for several calibration samples' rows one after another (x holds
  // sum(samples) rows): each sample is observed and fake-quantized as its own
  // call, in order, exactly as forward() on it alone, and the product runs as
  // one GEMM over all rows (the weight dequantized once, not per sample).
  void forward(const float* x, std::span<const int64_t> samples, float* y);
  // Ends calibration: fixes the static activation parameters; gptq
  // quantizes the weight here.
  void freeze();
  // Whether forward() multiplies int activation codes by the int weight codes
  // with the exact int8 GEMM (ops/gemm_s8) and scales the int32 sums, instead
  // of dequantizing both to f32: int codes of at most 8 bits on both sides,
  // one symmetric scale per output channel, static per-tensor or per-token
  // activations. The same products as the f32 path, summed exactly (the f32
  // path rounds each partial sum), as the deployed kernel sums them.
  // On by default; off for tests that compare the two.
  bool integer_forward() const;
  void set_integer_forward(bool on) { integer_forward_allowed_ = on; }

  // The export description; `serving_dtype` rounds input_scale (spec §10 fact 18).
  QuantizedLinear export_linear(DType serving_dtype) const;
  // The same, moving the codes out instead of copying them: for a quantizer
  // about to be discarded (the data-free savers). Leaves it unusable.
  QuantizedLinear release_linear(DType serving_dtype);

  OutputErrorStats& error_stats() { return error_; }

  // Static activations (W8A8, W8A8_MIX): whether any calibration input was observed,
  // and its running range.
  bool has_observed() const { return observed_; }
  std::pair<float, float> observed_range() const { return {act_min_, act_max_}; }
  // Observes [lo, hi] as if a calibration input spanned exactly that range:
  // the documented data-free rule for a routed expert no token reached.
  void observe_range(float lo, float hi);

 private:
  void update_minmax(float lo, float hi, bool symmetric);

 public:

 private:
  void check_shape() const;
  void prepare(const float* bias);
  void quantize_weight(const WeightRows& weight_rows, const StoredWeight* stored = nullptr);
  bool quantizes_stored_directly() const;
  void fake_quant_activation(std::span<float> x, bool observe);
  void observe_activation(std::span<const float> x);
  void activation_codes(std::span<const float> x, int8_t* q, float* row_scale, float* row_offset) const;
  void forward_integer(const float* x, std::span<const int64_t> samples, float* y);

  std::string name_;
  LinearQConfig config_;
  std::string type_;
  int64_t out_, in_;
  QuantizedWeight weight_;
  bool weight_ready_ = false;
  std::vector<float> float_weight_;  // gptq: kept until freeze()
  std::unique_ptr<HessianAccumulator> hessian_;
  std::unique_ptr<HistogramObserver> histogram_;
  bool integer_forward_allowed_ = true;
  std::vector<double> weight_code_sums_;  // Σ_i q[o, i] per output channel (exact): the activation offset's term
  std::vector<float> bias_;
  bool observed_ = false, frozen_ = false;
  float act_min_ = 0.0f, act_max_ = 0.0f;
  double min_sum_ = 0.0, max_sum_ = 0.0;  // aggregation_type mean: sums of the per-call min / max
  int64_t calls_ = 0;
  float input_scale_ = 0.0f, input_offset_ = 0.0f;
  float clip_min_ = 0.0f, clip_max_ = 0.0f;  // histogram clip range
  OutputErrorStats error_;
};

// Bits of an int dtype (8 / 4); 8 for the float formats.
int weight_bits(QDtype d);

}  // namespace lwq
