#pragma once

#include <cstdint>

namespace lwq {

// RMSNorm as HF LlamaRMSNorm: y = x / sqrt(mean(x²) + eps) · w, per row of
// `dim` values. `y` may alias `x`.
void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y);

}  // namespace lwq
