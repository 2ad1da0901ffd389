#pragma once

#include <cmath>
#include <cstdint>

namespace lwq {

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
// GELU with the tanh approximation (torch gelu(approximate="tanh"); HF
// "gelu_pytorch_tanh", "gelu_new").
inline float gelu_tanh(float x) {
  constexpr float k = 0.7978845608028654f;  // sqrt(2/pi)
  return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
// Exact GELU (torch nn.GELU(), HF "gelu"): x·Φ(x) through erf.
inline float gelu_erf(float x) { return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f)); }

// SwiGLU gating of the Llama MLP: out[i] = silu(gate[i]) · up[i]. `out` may
// alias `gate` or `up`.
void silu_mul(const float* gate, const float* up, int64_t n, float* out);

// y[i] += x[i] (the residual connection).
void add_inplace(float* y, const float* x, int64_t n);

}  // namespace lwq
