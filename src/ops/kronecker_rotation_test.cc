#include "ops/kronecker_rotation.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {
using test::max_rel_err;
using test::random_vec;

// x·kron(L, R) computed naively in double from the factors.
std::vector<double> naive(const std::vector<float>& x, int64_t rows, const std::vector<float>& l, int64_t m,
                          const std::vector<float>& r, int64_t n) {
  const int64_t w = m * n;
  std::vector<double> y(static_cast<size_t>(rows * w), 0.0);
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t k = 0; k < n; ++k)
        for (int64_t j = 0; j < m; ++j)
          for (int64_t l2 = 0; l2 < n; ++l2) {
            const double rk = r.empty() ? (k == l2 ? 1.0 : 0.0) : r[static_cast<size_t>(k * n + l2)];
            y[static_cast<size_t>(row * w + j * n + l2)] +=
                x[static_cast<size_t>(row * w + i * n + k)] * static_cast<double>(l[static_cast<size_t>(i * m + j)]) * rk;
          }
  return y;
}

TEST(KroneckerRotation, AppliesXTimesKronOfTheFactors) {
  for (auto [rows, m, n] : {std::tuple<int64_t, int64_t, int64_t>{1, 2, 3}, {7, 4, 12}, {33, 8, 48}, {5, 1, 16}}) {
    const auto l = random_vec(static_cast<size_t>(m * m), 1);
    const auto r = random_vec(static_cast<size_t>(n * n), 2);
    const auto x = random_vec(static_cast<size_t>(rows * m * n), 3);
    for (bool identity : {false, true}) {
      KroneckerRotation rot(l, m, identity ? std::vector<float>{} : r, n);
      std::vector<float> y = x;
      rot.apply(y.data(), rows);
      EXPECT_LT(max_rel_err(y, naive(x, rows, l, m, identity ? std::vector<float>{} : r, n)), 1e-5)
          << rows << " " << m << " " << n << (identity ? " identity" : "");
      // dense() is the same matrix.
      const std::vector<float> d = rot.dense();
      std::vector<double> yd(static_cast<size_t>(rows * m * n), 0.0);
      const int64_t w = m * n;
      for (int64_t row = 0; row < rows; ++row)
        for (int64_t i = 0; i < w; ++i)
          for (int64_t j = 0; j < w; ++j)
            yd[static_cast<size_t>(row * w + j)] += x[static_cast<size_t>(row * w + i)] * static_cast<double>(d[static_cast<size_t>(i * w + j)]);
      EXPECT_LT(max_rel_err(y, yd), 1e-5);
    }
  }
}

TEST(KroneckerRotation, RotatedWeightKeepsTheProduct) {
  // x·Wᵀ = (x·K)·(W·K)ᵀ for an orthogonal K: the online rotation's premise.
  const int64_t m = 2, n = 4, out = 3, rows = 5;
  const float c = std::cos(0.3f), s = std::sin(0.3f);
  const float h = 0.5f;
  KroneckerRotation rot({c, -s, s, c}, m, {h, h, h, h, h, -h, h, -h, h, h, -h, -h, h, -h, -h, h}, n);
  EXPECT_LT(orthogonality_error(rot.left().data(), m), 1e-6);
  EXPECT_LT(orthogonality_error(rot.right().data(), n), 1e-6);
  auto x = random_vec(static_cast<size_t>(rows * m * n), 4);
  auto w = random_vec(static_cast<size_t>(out * m * n), 5);
  std::vector<double> ref(static_cast<size_t>(rows * out), 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < m * n; ++i) ref[static_cast<size_t>(r * out + o)] += double(x[r * m * n + i]) * w[o * m * n + i];
  rot.apply(x.data(), rows);
  rot.apply(w.data(), out);
  std::vector<float> y(static_cast<size_t>(rows * out), 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < m * n; ++i) y[static_cast<size_t>(r * out + o)] += x[r * m * n + i] * w[o * m * n + i];
  EXPECT_LT(max_rel_err(y, ref), 1e-5);
}

TEST(KroneckerRotation, OrthogonalityErrorSeesANonOrthogonalMatrix) {
  EXPECT_GT(orthogonality_error(std::vector<float>{1, 0.1f, 0, 1}.data(), 2), 0.05);
  EXPECT_LT(orthogonality_error(std::vector<float>{0, 1, 1, 0}.data(), 2), 1e-12);
}

TEST(KroneckerRotation, RefusesFactorsOfTheWrongSize) {
  EXPECT_THROW(KroneckerRotation({1, 0, 0}, 2, {}, 3), Error);
  EXPECT_THROW(KroneckerRotation({1}, 1, {1, 0}, 2), Error);
  EXPECT_THROW(KroneckerRotation({}, 0, {}, 2), Error);
}

}  // namespace
}  // namespace lwq
