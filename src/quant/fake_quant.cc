#include "quant/fake_quant.h"

#include <algorithm>
#include <limits>

#include "util/error.h"

namespace lwq {
namespace {

QParams whole_range_params(const float* x, size_t n, int bits, bool symmetric) {
  float mn = 0.0f, mx = 0.0f;  // the range always contains 0 anyway
  for (size_t i = 0; i < n; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  // std::min/max drop NaN silently; int_qparams rejects Inf. Check NaN here.
  for (size_t i = 0; i < n; ++i)
    if (x[i] != x[i]) fail("fake quantization: NaN activation at element {}", i);
  return int_qparams({&mn, 1}, {&mx, 1}, bits, symmetric);
}

}  // namespace

void fake_quant_tensor(float* x, size_t n, float scale, float offset, int bits) {
  for (size_t i = 0; i < n; ++i) x[i] = dequantize_int(quantize_int(x[i], scale, offset, bits), scale, offset);
}

QParams fake_quant_dynamic(float* x, size_t n, int bits, bool symmetric) {
  QParams p = whole_range_params(x, n, bits, symmetric);
  fake_quant_tensor(x, n, p.scale[0], p.offset[0], bits);
  return p;
}

void fake_quant_per_token(float* x, int64_t rows, int64_t cols, int bits, bool symmetric) {
  if (rows < 0 || cols < 0) fail("fake_quant_per_token: negative shape [{}, {}]", rows, cols);
  for (int64_t r = 0; r < rows; ++r) fake_quant_dynamic(x + r * cols, static_cast<size_t>(cols), bits, symmetric);
}

}  // namespace lwq
