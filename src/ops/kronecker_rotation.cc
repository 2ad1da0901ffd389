#include "ops/kronecker_rotation.h"

#include <algorithm>
#include <cmath>

#include "ops/gemm.h"
#include "util/error.h"

namespace lwq {

namespace {

std::vector<float> transposed(const std::vector<float>& a, int64_t n) {
  std::vector<float> t(a.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) t[static_cast<size_t>(j * n + i)] = a[static_cast<size_t>(i * n + j)];
  return t;
}

}  // namespace

KroneckerRotation::KroneckerRotation(std::vector<float> left, int64_t m, std::vector<float> right, int64_t n) {
  if (m <= 0 || n <= 0) fail("Kronecker rotation: factor orders must be positive, got {} and {}", m, n);
  if (static_cast<int64_t>(left.size()) != m * m)
    fail("Kronecker rotation: the left factor holds {} values, expected {}×{}", left.size(), m, m);
  if (!right.empty() && static_cast<int64_t>(right.size()) != n * n)
    fail("Kronecker rotation: the right factor holds {} values, expected {}×{}", right.size(), n, n);
  auto f = std::make_shared<Factors>();
  f->m = m, f->n = n;
  f->left_t = transposed(left, m);
  f->left = std::move(left);
  f->right = std::move(right);
  f_ = std::move(f);
}

void KroneckerRotation::apply(float* x, int64_t rows) const {
  if (!f_ || rows <= 0) return;
  const int64_t m = f_->m, n = f_->n, mn = m * n;
  // Rows in chunks of about 256 KiB, each rotated in cache by its thread:
  // X·R for the chunk's rows at once (their m×n matrices stacked are
  // [rows·m, n]: one product), then Lᵀ·(X·R) as one product too, with the
  // row and the m index swapped ([m, rows·n]) and swapped back into x.
  // Products inside the parallel loop run on the calling thread (gemm.h).
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 16) / mn);
  const int64_t chunks = (rows + chunk - 1) / chunk;
#pragma omp parallel if (chunks > 1)
  {
    std::vector<float> a(static_cast<size_t>(chunk * mn)), b(a.size());
#pragma omp for schedule(static)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * chunk, cr = std::min(chunk, rows - r0);
      float* xc = x + r0 * mn;
      const float* xr = xc;
      if (!f_->right.empty()) {
        matmul_nn(xc, cr * m, n, f_->right.data(), n, a.data());
        xr = a.data();
      }
      float* t = xr == a.data() ? b.data() : a.data();
      for (int64_t r = 0; r < cr; ++r)
        for (int64_t i = 0; i < m; ++i) std::copy_n(xr + r * mn + i * n, n, t + (i * cr + r) * n);
      float* z = t == a.data() ? b.data() : a.data();
      matmul_nn(f_->left_t.data(), m, m, t, cr * n, z);
      for (int64_t r = 0; r < cr; ++r)
        for (int64_t j = 0; j < m; ++j) std::copy_n(z + (j * cr + r) * n, n, xc + r * mn + j * n);
    }
  }
}

std::vector<float> KroneckerRotation::dense() const {
  const int64_t m = this->m(), n = this->n(), w = m * n;
  std::vector<float> d(static_cast<size_t>(w * w));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < n; ++k)
      for (int64_t j = 0; j < m; ++j)
        for (int64_t l = 0; l < n; ++l) {
          const float r = f_->right.empty() ? (k == l ? 1.0f : 0.0f) : f_->right[static_cast<size_t>(k * n + l)];
          d[static_cast<size_t>((i * n + k) * w + j * n + l)] = f_->left[static_cast<size_t>(i * m + j)] * r;
        }
  return d;
}

double orthogonality_error(const float* q, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += static_cast<double>(q[k * n + i]) * q[k * n + j];
      worst = std::max(worst, std::abs(s - (i == j ? 1.0 : 0.0)));
    }
  return worst;
}

}  // namespace lwq
