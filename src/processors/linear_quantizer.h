// One Linear under linear_quant: its weight quantized up front (data-free
// per-channel minmax), its activation observed during calibration forwards,
// and its export description built at the end (spec §2.6–2.7, §4.3).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "config/quant_config.h"
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
  // Supplies rows [begin, end) of the float weight W[out, in] into `dst`.
  using WeightRows = std::function<void(int64_t begin, int64_t end, float* dst)>;

  // `weight` [out, in] and `bias` ([out] or nullptr) are the float parameters.
  LinearQuantizer(std::string full_name, const LinearQConfig& config, const float* weight, const float* bias,
                  int64_t out_features, int64_t in_features);
  // The same, reading the weight a block of rows at a time, so quantizing a
  // 16-bit weight never needs a float32 copy of the whole matrix.
  LinearQuantizer(std::string full_name, const LinearQConfig& config, const WeightRows& weight_rows,
                  const float* bias, int64_t out_features, int64_t in_features);

  const std::string& name() const { return name_; }
  const std::string& type() const { return type_; }
  bool needs_data() const;

  // Calibration forward: observes `x` [rows, in] (running min/max for static
  // activations), fake-quantizes it with the current parameters and
  // multiplies by the fake-quantized weight. Once frozen, uses the final
  // parameters and observes nothing.
  void forward(const float* x, int64_t rows, float* y);
  // Ends calibration: fixes the static activation parameters.
  void freeze();

  // The export description; `serving_dtype` rounds input_scale (spec §10 fact 18).
  QuantizedLinear export_linear(DType serving_dtype) const;

  OutputErrorStats& error_stats() { return error_; }

  // Static activations (W8A8): whether any calibration input was observed,
  // and its running range.
  bool has_observed() const { return observed_; }
  std::pair<float, float> observed_range() const { return {act_min_, act_max_}; }
  // Observes [lo, hi] as if a calibration input spanned exactly that range:
  // the documented data-free rule for a routed expert no token reached.
  void observe_range(float lo, float hi);

 private:
  void fake_quant_activation(std::vector<float>& x, bool observe);

  std::string name_;
  LinearQConfig config_;
  std::string type_;
  int64_t out_, in_;
  QuantizedWeight weight_;
  std::vector<float> bias_;
  bool observed_ = false, frozen_ = false;
  float act_min_ = 0.0f, act_max_ = 0.0f;
  float input_scale_ = 0.0f, input_offset_ = 0.0f;
  OutputErrorStats error_;
};

}  // namespace lwq
