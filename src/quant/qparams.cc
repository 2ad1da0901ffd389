#include "quant/qparams.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lwq {
namespace {

void check_bits(int bits) {
  if (bits < 2 || bits > 8) fail("quantization bit width {} is outside [2, 8]", bits);
}

}  // namespace

int qmin_of(int bits) { return -(1 << (bits - 1)); }
int qmax_of(int bits) { return (1 << (bits - 1)) - 1; }

QParams int_qparams(std::span<const float> min_val, std::span<const float> max_val, int bits, bool symmetric) {
  check_bits(bits);
  if (min_val.size() != max_val.size())
    fail("int_qparams: {} minimums but {} maximums", min_val.size(), max_val.size());
  QParams p;
  p.scale.resize(min_val.size());
  p.offset.assign(min_val.size(), 0.0f);
  for (size_t i = 0; i < min_val.size(); ++i) {
    if (!std::isfinite(min_val[i]) || !std::isfinite(max_val[i]))
      fail("int_qparams: non-finite statistics at channel {} (min {}, max {})", i, min_val[i], max_val[i]);
    const float mn = std::min(min_val[i], 0.0f);
    const float mx = std::max(max_val[i], 0.0f);
    if (symmetric) {
      const float bound = static_cast<float>(qmax_of(bits));
      p.scale[i] = std::max(std::max(-mn, mx) / bound, kEps);
    } else {
      // Same operation order as torch (max/bound − min/bound) for identical rounding.
      const float bound = static_cast<float>((1 << bits) - 1);
      const float scale = std::max(mx / bound - mn / bound, kEps);
      p.scale[i] = scale;
      p.offset[i] = round_half_even(-mn / scale) + static_cast<float>(qmin_of(bits));
    }
  }
  return p;
}

float round_half_even(float x) { return std::nearbyint(x); }

int8_t quantize_int(float x, float scale, float offset, int bits) {
  const float v = round_half_even(x / scale + offset);
  if (std::isnan(v)) return 0;
  const float lo = static_cast<float>(qmin_of(bits)), hi = static_cast<float>(qmax_of(bits));
  return static_cast<int8_t>(std::clamp(v, lo, hi));
}

}  // namespace lwq
