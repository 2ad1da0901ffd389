#include "ops/activation.h"

namespace lwq {

void silu_mul(const float* gate, const float* up, int64_t n, float* out) {
#pragma omp parallel for simd if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) out[i] = silu(gate[i]) * up[i];
}

void add_inplace(float* y, const float* x, int64_t n) {
#pragma omp parallel for simd if (n > (1 << 18))
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace lwq
