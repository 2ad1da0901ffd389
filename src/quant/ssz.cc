#include "quant/ssz.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "util/error.h"

namespace lwq {
namespace {

// Round half to even for |v| ≤ 2^22 in the default rounding mode, without a
// libm call: adding and subtracting 1.5·2^23 leaves the integer part rounded
// by the FPU itself (the same result as std::nearbyint).
inline float rne_small(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 · 2^23
  const float t = v + kMagic;  // not folded: no -ffast-math
  return t - kMagic;
}

// One pass over a row at scale s: the codes' least-squares sums Σw·q, Σq²
// and the mean squared error of w against s·q (spec §2.7 steps 1–3).
struct RowPass {
  double num = 0.0, den = 0.0, mse = 0.0;
};

RowPass row_pass(const float* w, int64_t in, float s, float qmin, float qmax) {
  RowPass p;
  for (int64_t i = 0; i < in; ++i) {
    const float q = std::clamp(rne_small(std::clamp(w[i] / s, -256.0f, 256.0f)), qmin, qmax);
    const double d = static_cast<double>(w[i]) - static_cast<double>(q * s);
    p.num += static_cast<double>(w[i]) * q;
    p.den += static_cast<double>(q) * q;
    p.mse += d * d;
  }
  p.mse /= static_cast<double>(in);
  return p;
}

}  // namespace

SszResult quantize_weight_ssz(const float* w, int64_t out, int64_t in, int bits, int64_t steps) {
  if (steps <= 0) fail("ssz: step must be positive, got {}", steps);
  SszResult r;
  r.weight = quantize_weight_per_channel_minmax(w, out, in, bits, /*symmetric=*/true);
  const float qmin = static_cast<float>(qmin_of(bits)), qmax = static_cast<float>(qmax_of(bits));
  std::vector<float>& best_s = r.weight.scale;
  std::vector<float> cur_s = best_s;
  std::vector<RowPass> cur(static_cast<size_t>(out));
  std::vector<double> best(static_cast<size_t>(out));
#pragma omp parallel for schedule(static) if (out * in > 16384)
  for (int64_t o = 0; o < out; ++o) {
    const auto k = static_cast<size_t>(o);
    cur[k] = row_pass(w + o * in, in, best_s[k], qmin, qmax);
    best[k] = cur[k].mse;
  }
  for (double b : best) r.mse_minmax += b / static_cast<double>(out);
  for (int64_t t = 0; t < steps; ++t) {
    bool converged = true;
#pragma omp parallel for schedule(static) reduction(&& : converged) if (out * in > 16384)
    for (int64_t o = 0; o < out; ++o) {
      const auto k = static_cast<size_t>(o);
      // Least squares on the current codes, then requantize with the new scale.
      cur_s[k] = std::max(static_cast<float>(cur[k].num / std::max(cur[k].den, 1e-30)), kEps);
      cur[k] = row_pass(w + o * in, in, cur_s[k], qmin, qmax);
      const double diff = best[k] - cur[k].mse;
      converged = converged && (diff / std::max(best[k], 1e-4) < 1e-10 || std::fabs(diff) < 1e-10);
    }
    r.iterations = t + 1;
    if (converged) break;
    for (int64_t o = 0; o < out; ++o) {
      const auto k = static_cast<size_t>(o);
      if (cur[k].mse < best[k]) {
        best[k] = cur[k].mse;
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
