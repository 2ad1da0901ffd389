#include "processors/linear_quantizer.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <cmath>
#include <limits>

#include "config/quant_schemes.h"
#include "ops/gemm.h"
#include "ops/gemm_s8.h"
#include "quant/fake_quant.h"
#include "quant/fp_formats.h"
#include "quant/int4_pack.h"
#include "quant/ssz.h"
#include "quant/qparams.h"
#include "quant/quantize_kernels.h"
#include "quant/w8a8_export.h"
#include "util/error.h"
#include "util/scratch.h"
#include "util/vector_clones.h"

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
  prepare(bias);
  quantize_weight(weight_rows);
}

LinearQuantizer::LinearQuantizer(std::string full_name, const LinearQConfig& config, StoredWeight weight,
                                 const float* bias, int64_t out_features, int64_t in_features)
    : name_(std::move(full_name)), config_(config), type_(export_type_of(config)), out_(out_features),
      in_(in_features) {
  prepare(bias);
  const size_t elem = dtype_size(weight.dtype);
  auto rows = [weight, elem, this](int64_t begin, int64_t end, float* dst) {
    convert_to_f32(weight.dtype, static_cast<const uint8_t*>(weight.data) + static_cast<size_t>(begin * in_) * elem,
                   dst, static_cast<size_t>((end - begin) * in_));
  };
  quantize_weight(rows, &weight);
}

LinearQuantizer::~LinearQuantizer() = default;

// What both constructors do before quantizing the weight.
void LinearQuantizer::prepare(const float* bias) {
  check_shape();
  if (bias) bias_.assign(bias, bias + out_);
  if (config_.act.method == "histogram") histogram_ = std::make_unique<HistogramObserver>();
}

int weight_bits(QDtype d) { return d == QDtype::Int4 || d == QDtype::MxFp4 ? 4 : 8; }

void LinearQuantizer::check_shape() const {
  if (out_ <= 0 || in_ <= 0) fail("{}: invalid Linear shape [{}, {}]", name_, out_, in_);
  const int64_t g = weight_group_size(config_.weight);
  if (config_.weight.scope == QScope::PerGroup && in_ % g != 0)
    fail("{}: group_size {} does not divide in_features {} (per-group weights need whole groups; pick a group_size "
         "dividing {} or exclude this Linear)",
         name_, g, in_, in_);
  if (type_ == "W4A8_DYNAMIC") {
    if (out_ % 2 != 0)
      fail("{}: W4A8_DYNAMIC packs two int4 output channels per byte, but out_features {} is odd", name_, out_);
    if (w4a8_scale_bias_cols(name_, in_) == 16 && in_ % 16 != 0)
      fail("{}: W4A8_DYNAMIC scale_bias of a down/o projection sums 16 equal input chunks, but in_features {} is not "
           "divisible by 16",
           name_, in_);
  }
  if (config_.weight.method == "fouroversix" && in_ % 32 != 0)
    fail("{}: fouroversix quantizes whole MX blocks of 32 inputs, but in_features {} is not divisible by 32", name_,
         in_);
  if (config_.weight.scope == QScope::DualScale) {
    // The files hold ceil(in/dual_block_size) dual scales per row; eval and engines can tell the block size from
    // that count only when the row is one block or a whole number of them.
    const int64_t d = mx_dual_block_size(config_.weight);
    if (in_ > d && in_ % d != 0)
      fail("{}: dual_block_size {} neither covers nor divides in_features {} (a partial last dual block would make "
           "the block size ambiguous in the files; pick a dual_block_size dividing {} or at least {}, or exclude "
           "this Linear)",
           name_, d, in_, in_, in_);
  }
  if (config_.weight.dtype == QDtype::MxFp4 && in_ % 2 != 0)
    fail("{}: MXFP4 packs two FP4 inputs per byte, but in_features {} is odd", name_, in_);
}

// Per-channel minmax int weights: what quantize_weight_per_channel_minmax_stored computes.
bool LinearQuantizer::quantizes_stored_directly() const {
  const QConfig& w = config_.weight;
  const bool int_codes = w.dtype != QDtype::Fp8E4M3 && w.dtype != QDtype::MxFp8 && w.dtype != QDtype::MxFp4;
  return int_codes && w.method != "ssz" && w.method != "gptq" && w.method != "ceil_x";
}

void LinearQuantizer::quantize_weight(const WeightRows& weight_rows, const StoredWeight* stored) {
  const QConfig& w = config_.weight;
  const int bits = weight_bits(w.dtype);
  if (stored && quantizes_stored_directly() && w.scope != QScope::PerGroup) {
    weight_ = with_context(name_, [&] {
      return quantize_weight_per_channel_minmax_stored(stored->dtype, stored->data, out_, in_, bits, w.symmetric,
                                                       stored->rows_read);
    });
    weight_ready_ = true;
    return;
  }
  if (!stored && quantizes_stored_directly() && w.scope != QScope::PerGroup) {
    weight_ = with_context(name_, [&] {
      return quantize_weight_per_channel_minmax_rows(weight_rows, out_, in_, bits, w.symmetric);
    });
    weight_ready_ = true;
    return;
  }
  const bool whole_matrix = w.method == "ssz" || w.method == "gptq";
  // Per-group int weights are registered for GPTQ only (spec §1.6.1; the config check refuses the others):
  // the row-wise paths below are per channel, so nothing else may arrive here.
  if (w.scope == QScope::PerGroup && w.method != "gptq")
    fail("{}: per-group weights by method '{}' are not implemented (only gptq is registered per group)", name_,
         w.method);
  if (whole_matrix) {
    float_weight_.resize(static_cast<size_t>(out_ * in_));
    weight_rows(0, out_, float_weight_.data());
    if (w.method == "ssz") {
      weight_ = with_context(name_, [&] {
        return quantize_weight_ssz(float_weight_.data(), out_, in_, bits, ssz_steps(w)).weight;
      });
      float_weight_ = {};
      weight_ready_ = true;
    } else {
      for (size_t k = 0; k < float_weight_.size(); ++k)
        if (!std::isfinite(float_weight_[k]))
          fail("{}: weight quantization: non-finite value in output row {}", name_, k / static_cast<size_t>(in_));
      hessian_ = std::make_unique<HessianAccumulator>(in_);
    }
    return;
  }
  MxWeightMethod mx_method;
  if (w.method == "mse_round") mx_method.kind = MxMethod::MseRound;
  if (w.method == "fouroversix") mx_method.kind = MxMethod::FourOverSix;
  if (w.method == "ceil_x") {
    mx_method.kind = MxMethod::CeilX;
    mx_method.ceil_x = mx_ceil_x_value(w);
    const MxCeilXSearch search = mx_ceil_x_search_range(w);
    if (search.enabled) {  // one c for the whole Linear: its search needs every row
      std::vector<float> all(static_cast<size_t>(out_ * in_));
      weight_rows(0, out_, all.data());
      mx_method.ceil_x = with_context(name_, [&] {
        return mx_ceil_x_search(all.data(), out_, in_, search.min, search.max, search.step);
      });
    }
  }
  // Row-wise methods: quantize blocks of about 4M values.
  const int64_t block = std::max<int64_t>(1, (int64_t{1} << 22) / in_);
  Scratch<float> rows(static_cast<size_t>(std::min(block, out_) * in_));
  weight_ = QuantizedWeight{};
  weight_.q.reserve(static_cast<size_t>(out_ * in_));
  for (int64_t begin = 0; begin < out_; begin += block) {
    const int64_t end = std::min(out_, begin + block), n = end - begin;
    weight_rows(begin, end, rows.data());
    QuantizedWeight part = with_context(name_, [&] {
      if (w.scope == QScope::DualScale)
        return quantize_weight_mxfp4_dualscale(rows.data(), n, in_, mx_dual_block_size(w));
      switch (w.dtype) {
        case QDtype::Fp8E4M3: return quantize_weight_fp8_per_channel(rows.data(), n, in_);
        case QDtype::MxFp8:
        case QDtype::MxFp4: return quantize_weight_mx(rows.data(), n, in_, w.dtype, mx_method);
        default: return quantize_weight_per_channel_minmax(rows.data(), n, in_, bits, w.symmetric);
      }
    });
    append_rows(weight_, part);
  }
  weight_ready_ = true;
}

bool LinearQuantizer::needs_data() const { return !is_data_free(config_); }

namespace {

// Minimum and maximum of one call's activations (non-empty): the vector
// kernel where every value is finite, else std::minmax_element, NaN and all.
std::pair<float, float> call_range(std::span<const float> x) {
  float lo, hi;
  if (row_min_max(x.data(), static_cast<int64_t>(x.size()), &lo, &hi)) return {lo, hi};
  auto [mn, mx] = std::minmax_element(x.begin(), x.end());
  return {*mn, *mx};
}

}  // namespace

// Static ranges (running minmax, histogram, pd_mix's decode range) take in
// one call's activations; dynamic and float activations observe nothing.
void LinearQuantizer::observe_activation(std::span<const float> x) {
  if (frozen_) return;
  const QConfig& a = config_.act;
  if (a.dtype != QDtype::Int8 && a.dtype != QDtype::Int4) return;
  if (a.scope == QScope::PerToken) return;
  if (a.scope == QScope::PdMix) {
    // W8A8_MIX (spec §2.6 pd_mix): the running per-tensor asymmetric range
    // gives the exported static params (decode nodes run them, as W8A8).
    const auto [lo, hi] = call_range(x);
    update_minmax(lo, hi, /*symmetric=*/false);
    return;
  }
  if (histogram_) {
    // Histogram W8A8: clip search over the merged histogram after each call.
    histogram_->update(x);
    if (histogram_->has_stats()) {
      QParams qp = histogram_->qparams(8, a.symmetric);
      input_scale_ = qp.scale[0];
      input_offset_ = qp.offset[0];
      clip_min_ = histogram_->clip_min();
      clip_max_ = histogram_->clip_max();
      observed_ = true;
    }
    return;
  }
  // W8A8 static: running min/max over every call, params from the running range.
  const auto [lo, hi] = call_range(x);
  update_minmax(lo, hi, a.symmetric);
}

void LinearQuantizer::fake_quant_activation(std::span<float> x, bool observe) {
  const int64_t rows = static_cast<int64_t>(x.size()) / in_;
  const QConfig& a = config_.act;
  switch (a.dtype) {
    case QDtype::Float: return;
    case QDtype::Fp8E4M3: return fake_quant_fp8_per_token(x.data(), rows, in_);
    case QDtype::MxFp8:
    case QDtype::MxFp4:
      // dualscale: msModelSlim's calibration passes x through; lwquant fake-quantizes it as deployed (MXFP4
      // inside per-token dual blocks), like every dynamic activation.
      if (a.scope == QScope::DualScale) return fake_quant_mxfp4_dualscale(x.data(), rows, in_, mx_dual_block_size(a));
      return fake_quant_mx(x.data(), rows, in_, a.dtype);
    default: break;
  }
  if (observe) observe_activation(x);
  if (a.scope == QScope::PerToken) {
    // Per-token symmetric int, as the serving kernel computes it. (msModelSlim
    // simulates one scale per call here, spec §9 quirk 2; lwquant follows the
    // deployed arithmetic instead.)
    fake_quant_per_token(x.data(), rows, in_, weight_bits(a.dtype), true);
    return;
  }
  if (a.scope == QScope::PdMix) {
    // The calibration output is fake-quantized as the prefill path deploys
    // it, per-token symmetric int8 (msModelSlim: one symmetric scale per call,
    // quirk 2; lwquant follows the deployed arithmetic, as for W8A8_DYNAMIC).
    fake_quant_per_token(x.data(), rows, in_, 8, /*symmetric=*/true);
    return;
  }
  if (!observed_) fail("{}: static activation parameters requested before any calibration data reached it", name_);
  if (histogram_)
    for (float& v : x) v = std::clamp(v, clip_min_, clip_max_);
  fake_quant_tensor(x.data(), x.size(), input_scale_, input_offset_, 8);
}

bool LinearQuantizer::integer_forward() const {
  if (!integer_forward_allowed_ || !weight_ready_ || weight_.code != WeightCode::Int || weight_.group_size != 0 ||
      weight_.bits > 8 || in_ > kMaxS8Depth)
    return false;
  for (float z : weight_.offset)
    if (z != 0.0f) return false;
  const QConfig& a = config_.act;
  return a.dtype == QDtype::Int8 || a.dtype == QDtype::Int4;
}

// The int codes fake_quant_activation's f32 values come from, for one call
// already observed: q[rows, in] and each row's scale and offset.
void LinearQuantizer::activation_codes(std::span<const float> x, int8_t* q, float* row_scale,
                                       float* row_offset) const {
  const int64_t rows = static_cast<int64_t>(x.size()) / in_;
  const QConfig& a = config_.act;
  if (a.scope == QScope::PerToken || a.scope == QScope::PdMix) {
    const int bits = a.scope == QScope::PdMix ? 8 : weight_bits(a.dtype);
    quantize_per_token(x.data(), rows, in_, bits, /*symmetric=*/true, q, row_scale, row_offset);
    return;
  }
  if (!observed_) fail("{}: static activation parameters requested before any calibration data reached it", name_);
  if (histogram_) {
    for (size_t i = 0; i < x.size(); ++i)
      q[i] = quantize_int(std::clamp(x[i], clip_min_, clip_max_), input_scale_, input_offset_, 8);
  } else {
    quantize_tensor(x.data(), x.size(), input_scale_, input_offset_, 8, q);
  }
  std::fill(row_scale, row_scale + rows, input_scale_);
  std::fill(row_offset, row_offset + rows, input_offset_);
}

void LinearQuantizer::update_minmax(float lo, float hi, bool symmetric) {
  act_min_ = observed_ ? std::min(act_min_, lo) : lo;
  act_max_ = observed_ ? std::max(act_max_, hi) : hi;
  observed_ = true;
  // aggregation_type mean (msModelSlim's _MeanMinMaxObserver): the params come from the means of the per-call
  // minimums and maximums, summed in float64 and cast back to float32; one call is one forward() (one
  // calibration sample's rows). act_min_/act_max_ stay the widest range seen, which observed_range() reports.
  min_sum_ += lo;
  max_sum_ += hi;
  ++calls_;
  float mn = act_min_, mx = act_max_;
  if (mean_aggregation(config_.act)) {
    mn = static_cast<float>(min_sum_ / static_cast<double>(calls_));
    mx = static_cast<float>(max_sum_ / static_cast<double>(calls_));
  }
  QParams qp = int_qparams({&mn, 1}, {&mx, 1}, 8, symmetric);
  input_scale_ = qp.scale[0];
  input_offset_ = qp.offset[0];
}

void LinearQuantizer::observe_range(float lo, float hi) {
  if (frozen_) fail("{}: activation range observed after calibration ended", name_);
  // Whatever the observer (minmax, histogram): a call whose values span [lo, hi].
  std::vector<float> span = {lo, hi};
  fake_quant_activation(span, /*observe=*/true);
}

void LinearQuantizer::forward(const float* x, int64_t rows, float* y) { forward(x, {&rows, 1}, y); }

void LinearQuantizer::forward(const float* x, std::span<const int64_t> samples, float* y) {
  const int64_t rows = std::reduce(samples.begin(), samples.end(), int64_t{0});
  if (rows == 0) return;
  if (hessian_ && !frozen_) hessian_->add(x, rows);
  if (integer_forward()) return forward_integer(x, samples, y);
  std::vector<float> xq(x, x + rows * in_);
  int64_t at = 0;
  for (int64_t n : samples) {
    if (n > 0) fake_quant_activation({xq.data() + at * in_, static_cast<size_t>(n * in_)}, true);
    at += n;
  }
  const float* bias = bias_.empty() ? nullptr : bias_.data();
  if (!weight_ready_) {  // gptq before freeze(): the float weight
    auto float_rows = [this](int64_t begin, int64_t n, float* dst) {
      std::copy(float_weight_.begin() + begin * in_, float_weight_.begin() + (begin + n) * in_, dst);
    };
    matmul_nt_rows(xq.data(), rows, in_, float_rows, out_, y, bias);
    return;
  }
  // The weight is dequantized per call, a block of output channels at a
  // time, rather than kept in float: the int8 codes are a quarter of a float
  // copy, and the GEMM dwarfs this O(out·in) pass.
  auto dequantized_rows = [this](int64_t begin, int64_t n, float* dst) {
    dequantize_weight_rows(weight_, begin, n, dst);
  };
  matmul_nt_rows(xq.data(), rows, in_, dequantized_rows, out_, y, bias);
}

namespace {

// y[j] = float(acc[j] − z·sums[j]) · (s·sw[j]): one output row's chunk of the
// integer product, dequantized. The difference is an integer below 2^53 in
// magnitude, exact in double (z·sums[j] too, so a clone that fuses the
// subtraction into an FMA computes the same), and float() is the int64
// expression's rounding; the float products have no addition to contract:
// every ISA gives the same bits (util/vector_clones.h).
LWQ_VECTOR_CLONES
void dequantize_sums(const int32_t* acc, int64_t n, double z, float s, const float* sw, const double* sums, float* y) {
  for (int64_t j = 0; j < n; ++j) y[j] = static_cast<float>(static_cast<double>(acc[j]) - z * sums[j]) * (s * sw[j]);
}

}  // namespace

// y[r, o] = sx_r · sw_o · Σ_i (qx[r, i] − zx_r) · qw[o, i] + b[o]
//         = sx_r · sw_o · (acc[r, o] − zx_r · Σ_i qw[o, i]) + b[o],
// acc from the exact int8 GEMM; zx_r (an integer, int_qparams) enters in int64.
void LinearQuantizer::forward_integer(const float* x, std::span<const int64_t> samples, float* y) {
  const int64_t rows = std::reduce(samples.begin(), samples.end(), int64_t{0});
  Scratch<int8_t> qx(static_cast<size_t>(rows * in_));
  std::vector<float> sx(static_cast<size_t>(rows)), zx(static_cast<size_t>(rows));
  int64_t at = 0;
  for (int64_t n : samples) {
    if (n > 0) {
      const std::span<const float> call(x + at * in_, static_cast<size_t>(n * in_));
      observe_activation(call);
      activation_codes(call, qx.data() + at * in_, sx.data() + at, zx.data() + at);
    }
    at += n;
  }
  if (weight_code_sums_.empty()) {
    weight_code_sums_.resize(static_cast<size_t>(out_));
    for (int64_t o = 0; o < out_; ++o)
      weight_code_sums_[static_cast<size_t>(o)] = static_cast<double>(code_sum(weight_.q.data() + o * in_, in_));
  }
  // The int32 sums land in y's own bytes (both 4 bytes wide), each chunk
  // copied out before its floats overwrite it: no second rows × out buffer (a
  // calibration batch's gate_proj: 19 MB).
  static_assert(sizeof(int32_t) == sizeof(float));
  matmul_nt_s8(qx.data(), rows, in_, weight_.q.data(), out_, reinterpret_cast<int32_t*>(y));
  const float* sw = weight_.scale.data();
  const double* sums = weight_code_sums_.data();
  const float* bias = bias_.empty() ? nullptr : bias_.data();
#pragma omp parallel for schedule(static) if (rows * out_ > 65536)
  for (int64_t r = 0; r < rows; ++r) {
    // v = a − z·Σq is an integer below 2^53 in magnitude: exact in double, so
    // float(v) is the int64 expression's rounding, in a loop that vectorises.
    const double z = static_cast<double>(static_cast<int64_t>(zx[static_cast<size_t>(r)]));
    const float s = sx[static_cast<size_t>(r)];
    float* yr = y + r * out_;
    constexpr int64_t kChunk = 512;
    int32_t acc[kChunk];
    for (int64_t o0 = 0; o0 < out_; o0 += kChunk) {
      const int64_t n = std::min(kChunk, out_ - o0);
      std::memcpy(acc, yr + o0, static_cast<size_t>(n) * sizeof(int32_t));
      if (!bias) {
        dequantize_sums(acc, n, z, s, sw + o0, sums + o0, yr + o0);
        continue;
      }
      for (int64_t j = 0; j < n; ++j) {
        const double v = static_cast<double>(acc[j]) - z * sums[o0 + j];
        yr[o0 + j] = static_cast<float>(v) * (s * sw[o0 + j]) + bias[o0 + j];
      }
    }
  }
}

void LinearQuantizer::freeze() {
  if ((type_ == "W8A8" || type_ == "W8A8_MIX") && !observed_)
    fail("{}: no calibration data reached this Linear, so its static activation scale is undefined", name_);
  if (hessian_ && !weight_ready_) {
    if (hessian_->rows() == 0)
      fail("{}: no calibration data reached this Linear, so its GPTQ Hessian is undefined (maybe an MoE expert that "
           "never received a token)",
           name_);
    const QConfig& w = config_.weight;
    GptqOptions opt;
    opt.bits = weight_bits(w.dtype);
    opt.symmetric = w.symmetric;
    opt.group_size = weight_group_size(w);
    opt.percdamp = gptq_percdamp(w);
    opt.block_size = gptq_block_size(w);
    std::vector<double> h = hessian_->hessian();
    hessian_.reset();  // the accumulator's buffers go before LAPACK's copies arrive
    weight_ = gptq_quantize(std::move(float_weight_), out_, in_, std::move(h), opt, name_);
    float_weight_ = {};
    weight_ready_ = true;
    // The calibration forwards ran with the float weight: their error figures
    // would show the activation quantization only, so none are reported.
    error_ = {};
  }
  frozen_ = true;
}

QuantizedLinear LinearQuantizer::release_linear(DType serving_dtype) {
  QuantizedWeight codes = std::move(weight_);
  weight_ = {};
  QuantizedLinear q = export_linear(serving_dtype);  // copies only the (now empty) codes
  q.weight = std::move(codes);
  weight_ready_ = false;
  return q;
}

QuantizedLinear LinearQuantizer::export_linear(DType serving_dtype) const {
  if (!weight_ready_) fail("{}: GPTQ weight exported before calibration ended (freeze)", name_);
  QuantizedLinear q;
  q.name = name_;
  q.type = type_;
  q.weight = weight_;
  q.bias = bias_;
  if (type_ == "W8A8" || type_ == "W8A8_MIX") {
    q.input_scale = round_to_dtype(input_scale_, serving_dtype);
    q.input_offset = input_offset_;
  }
  return q;
}

}  // namespace lwq
