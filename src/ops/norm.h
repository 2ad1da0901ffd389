#pragma once

#include <cstdint>

namespace lwq {

// RMSNorm as HF LlamaRMSNorm: y = x / sqrt(mean(x²) + eps) · w, per row of
// `dim` values. `y` may alias `x`.
void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);

// LayerNorm as torch.nn.LayerNorm: y = (x − mean) / sqrt(var + eps) per row of
// `dim` values (biased variance), then · weight + bias when `weight` is given
// (`bias` may be null with a weight). Statistics in double. `y` may alias `x`.
void layer_norm(const float* x, int64_t rows, int64_t dim, float eps, const float* weight, const float* bias, float* y);

}  // namespace lwq
