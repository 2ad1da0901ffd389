#include "ops/norm.h"

#include <cmath>

namespace lwq {

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
#pragma omp parallel for if (rows * dim > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    double ss = 0.0;
    for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void layer_norm(const float* x, int64_t rows, int64_t dim, float eps, const float* weight, const float* bias, float* y) {
#pragma omp parallel for if (rows * dim > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    double mean = 0.0, var = 0.0;
    for (int64_t i = 0; i < dim; ++i) mean += xr[i];
    mean /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const double inv = 1.0 / std::sqrt(var / static_cast<double>(dim) + eps);
    float* yr = y + r * dim;
    for (int64_t i = 0; i < dim; ++i) {
      float v = static_cast<float>((xr[i] - mean) * inv);
      if (weight) v = v * weight[i] + (bias ? bias[i] : 0.0f);
      yr[i] = v;
    }
  }
}

}  // namespace lwq
