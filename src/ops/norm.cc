#include "ops/norm.h"

#include <cmath>

namespace lwq {

namespace {

// Σ x[i]² in double (each product exact) over eight interleaved partial
// sums, which vectorise; one running sum is a chain of dependent adds.
double sum_squares(const float* x, int64_t n) {
  double part[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) part[j] += static_cast<double>(x[i + j]) * x[i + j];
  for (; i < n; ++i) part[0] += static_cast<double>(x[i]) * x[i];
  return ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
}

}  // namespace

void rms_norm(const float* x, const float* w, int64_t rows, int64_t dim, float eps, float* y) {
#pragma omp parallel for if (rows * dim > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * dim;
    float* yr = y + r * dim;
    const float inv = static_cast<float>(1.0 / std::sqrt(sum_squares(xr, dim) / static_cast<double>(dim) + eps));
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
