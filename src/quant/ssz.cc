#include "quant/ssz.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace lwq {
namespace {

// Mean squared error of row `w` quantized with scale s (symmetric).
double row_mse(const float* w, int64_t in, float s, int bits) {
  double e = 0.0;
  for (int64_t i = 0; i < in; ++i) {
    const double d = static_cast<double>(w[i]) - static_cast<double>(dequantize_int(quantize_int(w[i], s, 0.0f, bits), s, 0.0f));
    e += d * d;
  }
  return e / static_cast<double>(in);
}

// Least-squares scale for the codes of row `w` at scale s.
float ls_scale(const float* w, int64_t in, float s, int bits) {
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < in; ++i) {
    const double q = quantize_int(w[i], s, 0.0f, bits);
    num += static_cast<double>(w[i]) * q;
    den += q * q;
  }
  return std::max(static_cast<float>(num / std::max(den, 1e-30)), kEps);
}

}  // namespace

SszResult quantize_weight_ssz(const float* w, int64_t out, int64_t in, int bits, int64_t steps) {
  if (steps <= 0) fail("ssz: step must be positive, got {}", steps);
  SszResult r;
  r.weight = quantize_weight_per_channel_minmax(w, out, in, bits, /*symmetric=*/true);
  std::vector<float>& best_s = r.weight.scale;
  std::vector<float> cur_s = best_s;
  std::vector<double> best(static_cast<size_t>(out)), mse(static_cast<size_t>(out));
#pragma omp parallel for schedule(static) if (out * in > 16384)
  for (int64_t o = 0; o < out; ++o) best[static_cast<size_t>(o)] = row_mse(w + o * in, in, best_s[static_cast<size_t>(o)], bits);
  for (double b : best) r.mse_minmax += b / static_cast<double>(out);
  for (int64_t t = 0; t < steps; ++t) {
    bool converged = true;
#pragma omp parallel for schedule(static) reduction(&& : converged) if (out * in > 16384)
    for (int64_t o = 0; o < out; ++o) {
      const auto k = static_cast<size_t>(o);
      const float* row = w + o * in;
      cur_s[k] = ls_scale(row, in, cur_s[k], bits);
      mse[k] = row_mse(row, in, cur_s[k], bits);
      const double diff = best[k] - mse[k];
      converged = converged && (diff / std::max(best[k], 1e-4) < 1e-10 || std::fabs(diff) < 1e-10);
    }
    r.iterations = t + 1;
    if (converged) break;
    for (int64_t o = 0; o < out; ++o) {
      const auto k = static_cast<size_t>(o);
      if (mse[k] < best[k]) {
        best[k] = mse[k];
        best_s[k] = cur_s[k];
      }
    }
  }
#pragma omp parallel for schedule(static) if (out * in > 16384)
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i)
      r.weight.q[static_cast<size_t>(o * in + i)] = quantize_int(w[o * in + i], best_s[static_cast<size_t>(o)], 0.0f, bits);
  r.mse_final = 0.0;
  for (double b : best) r.mse_final += b / static_cast<double>(out);
  return r;
}

}  // namespace lwq
