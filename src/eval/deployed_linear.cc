#include "eval/deployed_linear.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lwq {
namespace {

double clamp_round(double v, double lo, double hi) { return std::clamp(std::nearbyint(v), lo, hi); }

// acc[rows, out] = qx[rows, in] · Wq[out, in]ᵀ, exact in double.
std::vector<double> integer_matmul(const std::vector<double>& qx, int64_t rows, const DeployedLinear& lin) {
  std::vector<double> w(lin.weight.begin(), lin.weight.end());
  std::vector<double> acc(static_cast<size_t>(rows * lin.out));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(lin.out),
              static_cast<int>(lin.in), 1.0, qx.data(), static_cast<int>(lin.in), w.data(), static_cast<int>(lin.in),
              0.0, acc.data(), static_cast<int>(lin.out));
  return acc;
}

void forward_w8a8(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<double> qx(static_cast<size_t>(rows * lin.in));
  // Engines quantize with the reciprocal of input_scale in the activation dtype (fact 18); the saved
  // scale is already rounded to that dtype, so x / scale here matches up to the last float bit.
  for (size_t i = 0; i < qx.size(); ++i)
    qx[i] = clamp_round(static_cast<double>(x[i] / lin.input_scale) + lin.input_offset, -128.0, 127.0);
  std::vector<double> acc = integer_matmul(qx, rows, lin);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < lin.out; ++o) {
      double a = acc[static_cast<size_t>(r * lin.out + o)] + lin.quant_bias[static_cast<size_t>(o)];
      y[r * lin.out + o] = static_cast<float>(a * lin.deq_scale[static_cast<size_t>(o)]);
    }
}

void forward_w8a8_dynamic(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<double> qx(static_cast<size_t>(rows * lin.in));
  std::vector<double> token_scale(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * lin.in;
    float amax = 0.0f;
    for (int64_t i = 0; i < lin.in; ++i) amax = std::max(amax, std::fabs(row[i]));
    double s = std::max(static_cast<double>(amax) / 127.0, 1e-12);
    token_scale[static_cast<size_t>(r)] = s;
    for (int64_t i = 0; i < lin.in; ++i) qx[static_cast<size_t>(r * lin.in + i)] = clamp_round(row[i] / s, -128.0, 127.0);
  }
  std::vector<double> acc = integer_matmul(qx, rows, lin);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < lin.out; ++o) {
      double v = acc[static_cast<size_t>(r * lin.out + o)] * token_scale[static_cast<size_t>(r)] *
                 lin.weight_scale[static_cast<size_t>(o)];
      if (!lin.bias.empty()) v += lin.bias[static_cast<size_t>(o)];
      y[r * lin.out + o] = static_cast<float>(v);
    }
}

void forward_w8a16(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  std::vector<float> w(static_cast<size_t>(lin.out * lin.in));
  for (int64_t o = 0; o < lin.out; ++o)
    for (int64_t i = 0; i < lin.in; ++i)
      w[static_cast<size_t>(o * lin.in + i)] =
          (static_cast<float>(lin.weight[static_cast<size_t>(o * lin.in + i)]) - lin.weight_offset[static_cast<size_t>(o)]) *
          lin.weight_scale[static_cast<size_t>(o)];
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(lin.out),
              static_cast<int>(lin.in), 1.0f, x, static_cast<int>(lin.in), w.data(), static_cast<int>(lin.in), 0.0f, y,
              static_cast<int>(lin.out));
  if (!lin.bias.empty())
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < lin.out; ++o) y[r * lin.out + o] += lin.bias[static_cast<size_t>(o)];
}

}  // namespace

void deployed_linear_forward(const DeployedLinear& lin, const float* x, int64_t rows, float* y) {
  if (lin.type == "W8A8") return forward_w8a8(lin, x, rows, y);
  if (lin.type == "W8A8_DYNAMIC") return forward_w8a8_dynamic(lin, x, rows, y);
  if (lin.type == "W8A16") return forward_w8a16(lin, x, rows, y);
  fail("{}: no deployed arithmetic for quantization type '{}'", lin.name, lin.type);
}

}  // namespace lwq
