#pragma once

#include <cmath>
#include <cstdint>

namespace lwq {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }

// SwiGLU gating of the Llama MLP: out[i] = silu(gate[i]) · up[i]. `out` may
// alias `gate` or `up`.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// y[i] += x[i] (the residual connection).
void add_inplace(float* y, const float* x, int64_t n);

}  // namespace lwq
