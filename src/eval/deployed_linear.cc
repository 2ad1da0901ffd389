#include "eval/deployed_linear.h"


#include <algorithm>
#include <cmath>

#include "ops/gemm.h"
#include "ops/gemm_s8.h"
#include "quant/fp_formats.h"
#include "quant/weight_quant.h"
#include "tensor/dtype.h"
#include "util/error.h"

namespace lwq {
namespace {

double clamp_round(double v, double lo, double hi) { return std::clamp(std::nearbyint(v), lo, hi); }

// acc[rows, out] = qx[rows, in] · Wq[out, in]ᵀ with int8 codes summed in
// int32, exactly as an NPU's cube unit does (ops/gemm_s8: oneDNN VNNI or an
// exact int16 kernel), not float emulation.
std::vector<double> integer_matmul(const std::vector<double>& qx_in, int64_t rows, const DeployedLinear& lin) {
  if (lin.in > kMaxS8Depth)
    fail("{}: {} input channels exceed the exact int32 accumulation depth ({})", lin.name, lin.in, kMaxS8Depth);
  std::vector<int8_t> qx(qx_in.size());
  for (size_t i = 0; i < qx.size(); ++i) qx[i] = static_cast<int8_t>(qx_in[i]);
  std::vector<int32_t> acc32(static_cast<size_t>(rows * lin.out));
  matmul_nt_s8(qx.data(), rows, lin.in, lin.weight.data(), lin.out, acc32.data());
  return std::vector<double>(acc32.begin(), acc32.end());
}

void forward_w8a8(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<double> qx(static_cast<size_t>(rows * lin.in));
  // Engines quantize with the reciprocal of input_scale in the activation dtype (fact 18); lin.input_scale
  // is already rounded to that dtype (the saved one is, for lwquant folders; QuantizedFolder::load_linear
  // rounds others), so x / scale here matches up to the rounding of that reciprocal.
  for (size_t i = 0; i < qx.size(); ++i)
    qx[i] = clamp_round(static_cast<double>(x[i] / lin.input_scale) + lin.input_offset, -128.0, 127.0);
  std::vector<double> acc = integer_matmul(qx, rows, lin);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < lin.out; ++o) {
      double a = acc[static_cast<size_t>(r * lin.out + o)] + lin.quant_bias[static_cast<size_t>(o)];
      y[r * lin.out + o] = static_cast<float>(a * lin.deq_scale[static_cast<size_t>(o)]);
    }
}

// Per-token symmetric int quantization of x [rows, in]: codes into qx, scales into token_scale.
void quantize_tokens(const DeployedLinear& lin, const float* x, int64_t rows, int bits, std::vector<double>& qx,
                     std::vector<double>& token_scale) {
  const double qmax = (1 << (bits - 1)) - 1, qmin = -(1 << (bits - 1));
  qx.resize(static_cast<size_t>(rows * lin.in));
  token_scale.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * lin.in;
    float amax = 0.0f;
    for (int64_t i = 0; i < lin.in; ++i) amax = std::max(amax, std::fabs(row[i]));
    double s = std::max(static_cast<double>(amax) / qmax, 1e-12);
    token_scale[static_cast<size_t>(r)] = s;
    for (int64_t i = 0; i < lin.in; ++i) qx[static_cast<size_t>(r * lin.in + i)] = clamp_round(row[i] / s, qmin, qmax);
  }
}

// Element (o, i) of the dequantized weight.
float weight_value(const DeployedLinear& lin, int64_t o, int64_t i) {
  const int64_t groups = static_cast<int64_t>(lin.weight_scale.size()) / lin.out;
  const auto k = static_cast<size_t>(o * groups + (lin.group_size > 0 ? i / lin.group_size : 0));
  const int8_t c = lin.weight[static_cast<size_t>(o * lin.in + i)];
  if (lin.type == "WFP8AFP8_DYNAMIC" || lin.type == "W8A8_MXFP8")
    return f8e4m3_to_f32(static_cast<uint8_t>(c)) * lin.weight_scale[k];
  if (lin.type == "W4A8_MXFP" || lin.type == "W4A4_MXFP4")
    return fp4_e2m1_value(static_cast<uint8_t>(c)) * lin.weight_scale[k];
  if (lin.type == "W4A4_MXFP4_DUALSCALE") {
    const int64_t duals = static_cast<int64_t>(lin.weight_dual_scale.size()) / lin.out;
    const float inner = fp4_e2m1_value(static_cast<uint8_t>(c)) * lin.weight_scale[k];
    return inner * lin.weight_dual_scale[static_cast<size_t>(o * duals + i / lin.dual_block_size)];
  }
  const float z = lin.weight_offset.empty() ? 0.0f : lin.weight_offset[k];
  return (static_cast<float>(c) - z) * lin.weight_scale[k];
}

// y = xd·Ŵᵀ (+ bias when given) with Ŵ dequantized a block of rows at a time.
void float_forward(const DeployedLinear& lin, const float* xd, int64_t rows, float* y, const float* bias) {
  auto dequantized_rows = [&lin](int64_t begin, int64_t n, float* dst) {
    for (int64_t o = 0; o < n; ++o)
      for (int64_t i = 0; i < lin.in; ++i) dst[o * lin.in + i] = weight_value(lin, begin + o, i);
  };
  matmul_nt_rows(xd, rows, lin.in, dequantized_rows, lin.out, y, bias);
}

bool integer_weights(const DeployedLinear& lin) {
  if (lin.group_size > 0 || lin.weight_scale.size() != static_cast<size_t>(lin.out)) return false;
  return std::all_of(lin.weight_offset.begin(), lin.weight_offset.end(), [](float z) { return z == 0.0f; });
}

// Dynamic per-token int activations (W8A8_DYNAMIC, W4A8_DYNAMIC: int8; W4A4_DYNAMIC: int4).
void forward_dynamic_int(const DeployedLinear& lin, const float* x, int64_t rows, float* y, int bits) {
  std::vector<double> qx, token_scale;
  quantize_tokens(lin, x, rows, bits, qx, token_scale);
  if (integer_weights(lin)) {
    std::vector<double> acc = integer_matmul(qx, rows, lin);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < lin.out; ++o) {
        double v = acc[static_cast<size_t>(r * lin.out + o)] * token_scale[static_cast<size_t>(r)] *
                   lin.weight_scale[static_cast<size_t>(o)];
        if (!lin.bias.empty()) v += lin.bias[static_cast<size_t>(o)];
        y[r * lin.out + o] = static_cast<float>(v);
      }
    return;
  }
  std::vector<float> qf(qx.begin(), qx.end());
  float_forward(lin, qf.data(), rows, y, nullptr);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < lin.out; ++o) {
      float& v = y[r * lin.out + o];
      v = static_cast<float>(v * token_scale[static_cast<size_t>(r)]) + (lin.bias.empty() ? 0.0f : lin.bias[static_cast<size_t>(o)]);
    }
}

void forward_fp8_dynamic(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<float> xq(static_cast<size_t>(rows * lin.in)), token_scale(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float s = fp8_scale_of(x + r * lin.in, lin.in);
    token_scale[static_cast<size_t>(r)] = s;
    for (int64_t i = 0; i < lin.in; ++i)
      xq[static_cast<size_t>(r * lin.in + i)] = f8e4m3_to_f32(fp8_quantize_code(x[r * lin.in + i], s));
  }
  float_forward(lin, xq.data(), rows, y, nullptr);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < lin.out; ++o) {
      float& v = y[r * lin.out + o];
      v = v * token_scale[static_cast<size_t>(r)] + (lin.bias.empty() ? 0.0f : lin.bias[static_cast<size_t>(o)]);
    }
}

void forward_mx(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<float> xq(x, x + rows * lin.in);
  fake_quant_mx(xq.data(), rows, lin.in, lin.type == "W4A4_MXFP4" ? QDtype::MxFp4 : QDtype::MxFp8);
  float_forward(lin, xq.data(), rows, y, lin.bias.empty() ? nullptr : lin.bias.data());
}

void forward_mx_dualscale(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<float> xq(x, x + rows * lin.in);
  fake_quant_mxfp4_dualscale(xq.data(), rows, lin.in, lin.dual_block_size);
  float_forward(lin, xq.data(), rows, y, lin.bias.empty() ? nullptr : lin.bias.data());
}

// Weights dequantized a block of output channels at a time.
void forward_w8a16(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  if (lin.group_size > 0) return float_forward(lin, x, rows, y, lin.bias.empty() ? nullptr : lin.bias.data());
  auto dequantized_rows = [&lin](int64_t begin, int64_t n, float* dst) {
    dequantize_rows(lin.weight.data(), lin.weight_scale.data(), lin.weight_offset.data(), lin.in, begin, n, dst);
  };
  matmul_nt_rows(x, rows, lin.in, dequantized_rows, lin.out, y, lin.bias.empty() ? nullptr : lin.bias.data());
}

}  // namespace

void deployed_linear_forward(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  if (lin.type == "W8A8") return forward_w8a8(lin, x, rows, y);
  // W8A8_MIX: nodes that are not KV consumers (prefill, and every node of a
  // non-disaggregated deployment) run the dynamic path with weight_scale
  // (ascend_loaders §4.2); its static tensors are W8A8's, checked on load.
  if (lin.type == "W8A8_MIX" || lin.type == "W8A8_DYNAMIC" || lin.type == "W4A8_DYNAMIC")
    return forward_dynamic_int(lin, x, rows, y, 8);
  if (lin.type == "W4A4_DYNAMIC") return forward_dynamic_int(lin, x, rows, y, 4);
  if (lin.type == "WFP8AFP8_DYNAMIC") return forward_fp8_dynamic(lin, x, rows, y);
  if (lin.type == "W8A8_MXFP8" || lin.type == "W4A8_MXFP" || lin.type == "W4A4_MXFP4") return forward_mx(lin, x, rows, y);
  if (lin.type == "W4A4_MXFP4_DUALSCALE") return forward_mx_dualscale(lin, x, rows, y);
  if (lin.type == "W8A16") return forward_w8a16(lin, x, rows, y);
  fail("{}: no deployed arithmetic for quantization type '{}'", lin.name, lin.type);
}

}  // namespace lwq
