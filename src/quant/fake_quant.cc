#include "quant/fake_quant.h"

#include <algorithm>
#include <limits>

#include "quant/quantize_kernels.h"
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

void quantize_per_token(const float* x, int64_t rows, int64_t cols, int bits, bool symmetric, int8_t* q,
                        float* scale, float* offset) {
  if (rows < 0 || cols < 0) fail("quantize_per_token: negative shape [{}, {}]", rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    float lo = 0.0f, hi = 0.0f;
    // The vector kernel's range where the row is finite; otherwise the scalar
    // path, for its error.
    const bool finite = cols > 0 && row_min_max(row, cols, &lo, &hi);  // int_qparams widens it to 0
    const QParams p = finite ? int_qparams({&lo, 1}, {&hi, 1}, bits, symmetric)
                             : whole_range_params(row, static_cast<size_t>(cols), bits, symmetric);
    scale[r] = p.scale[0];
    offset[r] = p.offset[0];
    quantize_tensor(x + r * cols, static_cast<size_t>(cols), scale[r], offset[r], bits, q + r * cols);
  }
}

// NaN gets an unspecified code in range here (quantize_int: 0); a
// calibration forward that meets one stops at the layer's finiteness check.
void quantize_tensor(const float* x, size_t n, float scale, float offset, int bits, int8_t* q) {
  if (n > 0) quantize_row(x, static_cast<int64_t>(n), scale, offset, qmin_of(bits), qmax_of(bits), q);
}

void fake_quant_per_token(float* x, int64_t rows, int64_t cols, int bits, bool symmetric) {
  if (rows < 0 || cols < 0) fail("fake_quant_per_token: negative shape [{}, {}]", rows, cols);
  for (int64_t r = 0; r < rows; ++r) fake_quant_dynamic(x + r * cols, static_cast<size_t>(cols), bits, symmetric);
}

}  // namespace lwq
