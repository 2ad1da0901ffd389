// Vector kernels of weight quantization (Highway, dispatched on the CPU's
// features at run time): the data-free path quantizes every weight of the
// model once, so it runs at memory speed rather than one libm call per value.
#pragma once

#include <cstdint>

namespace lwq {

// Minimum and maximum of row[0..n) (n ≥ 1); false when a value is NaN or ±Inf.
bool row_min_max(const float* row, int64_t n, float* lo, float* hi);

// q[i] = clamp(round_half_even(x[i] / scale + offset), qmin, qmax) for finite
// x, exactly as quantize_int() computes it value by value.
void quantize_row(const float* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q);

// The same on a bfloat16 row (bits as stored), widened in registers: equal to
// the f32 kernels on the converted row, with no f32 copy written.
bool row_min_max_bf16(const uint16_t* row, int64_t n, float* lo, float* hi);
void quantize_row_bf16(const uint16_t* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q);

}  // namespace lwq
