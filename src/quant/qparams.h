// Integer quantization parameters and element quantization (spec §2.1–2.2).
//
// Everything is computed in float32. msModelSlim computes statistics in the
// observed tensor's dtype (bf16/fp16 on NPU) and casts scales to float32 only
// when writing; lwquant keeps float32 statistics throughout, which equals
// msModelSlim's CPU/fp32 path bit for bit and is at least as accurate for
// bf16 models (differences are below one bf16 ulp of the scale).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace lwq {

// Per-tensor parameters have size 1; per-channel ones one entry per channel.
struct QParams {
  std::vector<float> scale, offset;
};

// float32 machine epsilon: the smallest scale ever produced.
constexpr float kEps = 1.1920929e-07f;

// Range of a signed `bits`-bit integer: [-2^(b-1), 2^(b-1)-1].
int qmin_of(int bits);
int qmax_of(int bits);

// calculate_int_qparam: the range is first widened to contain 0.
//   symmetric:  scale = max(|min|, max) / (2^(b-1)-1), offset 0
//   asymmetric: scale = max/(2^b-1) − min/(2^b-1), offset = round(−min/scale) + qmin (signed domain)
// scale is clamped below at kEps. Throws lwq::Error on size mismatch,
// non-finite statistics, or bits outside [2, 8].
QParams int_qparams(std::span<const float> min_val, std::span<const float> max_val, int bits, bool symmetric);

// torch.round: round half to even (std::nearbyint in the default rounding mode).
float round_half_even(float x);

// clamp(round_half_even(x / scale + offset), qmin, qmax). NaN maps to 0.
int8_t quantize_int(float x, float scale, float offset, int bits);
// (q − offset) · scale.
inline float dequantize_int(int8_t q, float scale, float offset) {
  return (static_cast<float>(q) - offset) * scale;
}

}  // namespace lwq
