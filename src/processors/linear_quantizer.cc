#include "processors/linear_quantizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/gemm.h"
#include "quant/qparams.h"
#include "quant/w8a8_export.h"
#include "util/error.h"

namespace lwq {

void OutputErrorStats::add(const float* ref, const float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    double r = ref[i], o = out[i];
    err_sq += (o - r) * (o - r);
    ref_sq += r * r;
    out_sq += o * o;
    dot += r * o;
  }
}

void OutputErrorStats::merge(const OutputErrorStats& other) {
  err_sq += other.err_sq;
  ref_sq += other.ref_sq;
  dot += other.dot;
  out_sq += other.out_sq;
  rows += other.rows;
}

// A non-finite sum means a NaN or Inf reached the outputs: the figures are
// NaN then, never a perfect-looking 0 or 1.
double OutputErrorStats::relative_l2() const {
  if (!std::isfinite(err_sq) || !std::isfinite(ref_sq)) return std::nan("");
  if (ref_sq == 0) return err_sq == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(err_sq / ref_sq);
}
double OutputErrorStats::cosine() const {
  if (!std::isfinite(dot) || !std::isfinite(ref_sq) || !std::isfinite(out_sq)) return std::nan("");
  if (ref_sq == 0 || out_sq == 0) return ref_sq == out_sq ? 1.0 : 0.0;
  return dot / std::sqrt(ref_sq * out_sq);
}

LinearQuantizer::LinearQuantizer(std::string full_name, const LinearQConfig& config, const float* weight,
                                 const float* bias, int64_t out_features, int64_t in_features)
    : LinearQuantizer(
          std::move(full_name), config,
          [weight, in_features](int64_t begin, int64_t end, float* dst) {
            std::copy(weight + begin * in_features, weight + end * in_features, dst);
          },
          bias, out_features, in_features) {}

LinearQuantizer::LinearQuantizer(std::string full_name, const LinearQConfig& config, const WeightRows& weight_rows,
                                 const float* bias, int64_t out_features, int64_t in_features)
    : name_(std::move(full_name)), config_(config), type_(export_type_of(config)), out_(out_features),
      in_(in_features) {
  // Per-channel quantization is row-independent: quantize blocks of about 4M values.
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / std::max<int64_t>(in_, 1));
  weight_.out = out_;
  weight_.in = in_;
  weight_.q.reserve(static_cast<size_t>(out_ * in_));
  std::vector<float> rows(static_cast<size_t>(std::min(block, out_) * in_));
  for (int64_t begin = 0; begin < out_; begin += block) {
    const int64_t end = std::min(out_, begin + block);
    weight_rows(begin, end, rows.data());
    QuantizedWeight part = quantize_weight_per_channel_minmax(rows.data(), end - begin, in_, 8, config.weight.symmetric);
    weight_.bits = part.bits;
    weight_.q.insert(weight_.q.end(), part.q.begin(), part.q.end());
    weight_.scale.insert(weight_.scale.end(), part.scale.begin(), part.scale.end());
    weight_.offset.insert(weight_.offset.end(), part.offset.begin(), part.offset.end());
  }
  if (bias) bias_.assign(bias, bias + out_);
}

bool LinearQuantizer::needs_data() const { return !is_data_free(config_); }

void LinearQuantizer::fake_quant_activation(std::vector<float>& x, bool observe) {
  if (type_ == "W8A16") return;
  if (type_ == "W8A8_DYNAMIC") {
    // Per-token symmetric int8, as the serving kernel computes it. (msModelSlim
    // simulates one scale per call here, spec §9 quirk 2; lwquant follows the
    // deployed arithmetic instead.)
    fake_quant_per_token(x.data(), static_cast<int64_t>(x.size()) / in_, in_, 8, true);
    return;
  }
  // W8A8 static: running min/max over every call, params from the running range.
  if (observe && !frozen_) {
    auto [mn, mx] = std::minmax_element(x.begin(), x.end());
    observe_range(*mn, *mx);
  }
  if (!observed_) fail("{}: static activation parameters requested before any calibration data reached it", name_);
  fake_quant_tensor(x.data(), x.size(), input_scale_, input_offset_, 8);
}

void LinearQuantizer::observe_range(float lo, float hi) {
  if (frozen_) fail("{}: activation range observed after calibration ended", name_);
  act_min_ = observed_ ? std::min(act_min_, lo) : lo;
  act_max_ = observed_ ? std::max(act_max_, hi) : hi;
  observed_ = true;
  QParams qp = int_qparams({&act_min_, 1}, {&act_max_, 1}, 8, config_.act.symmetric);
  input_scale_ = qp.scale[0];
  input_offset_ = qp.offset[0];
}

void LinearQuantizer::forward(const float* x, int64_t rows, float* y) {
  std::vector<float> xq(x, x + rows * in_);
  fake_quant_activation(xq, true);
  // The weight is dequantized per call, a block of output channels at a
  // time, rather than kept in float: the int8 codes are a quarter of a float
  // copy, and the GEMM dwarfs this O(out·in) pass.
  auto dequantized_rows = [this](int64_t begin, int64_t n, float* dst) {
    dequantize_rows(weight_.q.data(), weight_.scale.data(), weight_.offset.data(), in_, begin, n, dst);
  };
  matmul_nt_rows(xq.data(), rows, in_, dequantized_rows, out_, y, bias_.empty() ? nullptr : bias_.data());
}

void LinearQuantizer::freeze() {
  if (type_ == "W8A8" && !observed_)
    fail("{}: no calibration data reached this Linear, so its static activation scale is undefined", name_);
  frozen_ = true;
}

QuantizedLinear LinearQuantizer::export_linear(DType serving_dtype) const {
  QuantizedLinear q;
  q.name = name_;
  q.type = type_;
  q.weight = weight_;
  q.bias = bias_;
  if (type_ == "W8A8") {
    q.input_scale = round_to_dtype(input_scale_, serving_dtype);
    q.input_offset = input_offset_;
  }
  return q;
}

}  // namespace lwq
