#include <gtest/gtest.h>

#include <cmath>

#include "ops/activation.h"
#include "ops/norm.h"
#include "ops/ops_test_util.h"

namespace lwq {
namespace {

TEST(RmsNorm, MatchesFormula) {
  const int64_t rows = 3, dim = 10;
  auto x = test::random_vec(rows * dim, 11, 3.0f), w = test::random_vec(dim, 12);
  std::vector<float> y(rows * dim);
  rms_norm(x.data(), w.data(), rows, dim, 1e-5f, y.data());
  std::vector<double> ref(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0;
    for (int64_t i = 0; i < dim; ++i) ms += double(x[r * dim + i]) * x[r * dim + i] / dim;
    for (int64_t i = 0; i < dim; ++i) ref[r * dim + i] = x[r * dim + i] / std::sqrt(ms + 1e-5) * w[i];
  }
  EXPECT_LT(test::max_rel_err(y, ref), 1e-6);
  // In place gives the same.
  rms_norm(x.data(), w.data(), rows, dim, 1e-5f, x.data());
  EXPECT_EQ(x, y);
}

TEST(RmsNorm, EpsilonMattersForTinyRows) {
  std::vector<float> x = {1e-4f, -1e-4f}, w = {1, 1}, y(2);
  rms_norm(x.data(), w.data(), 1, 2, 1e-6f, y.data());
  EXPECT_NEAR(y[0], 1e-4 / std::sqrt(1e-8 + 1e-6), 1e-6);
}

TEST(SiluMul, MatchesFormula) {
  auto g = test::random_vec(100, 13, 4.0f), u = test::random_vec(100, 14);
  std::vector<float> y(100);
  silu_mul(g.data(), u.data(), 100, y.data());
  for (size_t i = 0; i < 100; ++i) {
    double s = g[i] / (1.0 + std::exp(-double(g[i])));
    EXPECT_NEAR(y[i], s * u[i], 1e-5 * (1 + std::abs(s * u[i])));
  }
  EXPECT_NEAR(silu(0.0f), 0.0f, 0);
  EXPECT_NEAR(silu(-100.0f), 0.0f, 1e-30);
  EXPECT_FLOAT_EQ(silu(100.0f), 100.0f);
}

// The vector kernel over the whole float range (the −88 cap, +104 Exp limit,
// ±FLT_MAX), every tail length and the threaded path (> 2^16 values).
TEST(SiluMul, VectorKernelMatchesFormulaEverywhere) {
  const std::vector<float> special = {-3.4e38f, -1e5f, -104.0f, -88.5f, -88.0f, -87.0f, -20.0f, -1e-20f, 0.0f,
                                      1e-20f,   20.0f, 88.0f,   104.0f, 1e5f,   3.4e38f};
  for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{17}, int64_t{33}, int64_t{70001}}) {
    auto g = test::random_vec(static_cast<size_t>(n), 21, 30.0f), u = test::random_vec(static_cast<size_t>(n), 22);
    for (size_t i = 0; i < special.size() && i < g.size(); ++i) g[i * 7 % g.size()] = special[i];
    std::vector<float> y(static_cast<size_t>(n));
    silu_mul(g.data(), u.data(), n, y.data());
    for (size_t i = 0; i < y.size(); ++i) {
      const double gi = g[i], s = gi / (1.0 + std::exp(-gi)), want = s * u[i];
      ASSERT_TRUE(std::isfinite(y[i])) << n << " " << i << " g=" << gi;
      EXPECT_NEAR(y[i], want, 2e-6 * std::abs(want) + 1e-30) << n << " " << i << " g=" << gi;
    }
  }
}

TEST(AddInplace, Adds) {
  std::vector<float> y = {1, 2, 3}, x = {10, 20, 30};
  add_inplace(y.data(), x.data(), 3);
  EXPECT_EQ(y, (std::vector<float>{11, 22, 33}));
}

TEST(LayerNorm, MatchesFormulaWithAndWithoutAffine) {
  const int64_t rows = 4, dim = 12;
  auto x = test::random_vec(rows * dim, 15, 3.0f), w = test::random_vec(dim, 16), b = test::random_vec(dim, 17);
  std::vector<float> y(rows * dim), plain(rows * dim);
  layer_norm(x.data(), rows, dim, 1e-6f, w.data(), b.data(), y.data());
  layer_norm(x.data(), rows, dim, 1e-6f, nullptr, nullptr, plain.data());
  std::vector<double> ref(rows * dim), ref_plain(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < dim; ++i) m += x[r * dim + i] / double(dim);
    for (int64_t i = 0; i < dim; ++i) v += (x[r * dim + i] - m) * (x[r * dim + i] - m) / dim;
    for (int64_t i = 0; i < dim; ++i) {
      ref_plain[r * dim + i] = (x[r * dim + i] - m) / std::sqrt(v + 1e-6);
      ref[r * dim + i] = ref_plain[r * dim + i] * w[i] + b[i];
    }
  }
  EXPECT_LT(test::max_rel_err(y, ref), 1e-6);
  EXPECT_LT(test::max_rel_err(plain, ref_plain), 1e-6);
}

TEST(Gelu, TanhAndErfForms) {
  for (double x : {-3.0, -0.5, 0.0, 0.7, 2.5}) {
    EXPECT_NEAR(gelu_erf(float(x)), 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))), 1e-6);
    EXPECT_NEAR(gelu_tanh(float(x)), 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))), 1e-6);
  }
  EXPECT_GT(std::abs(gelu_tanh(-1.5f) - gelu_erf(-1.5f)), 1e-5);  // the two forms differ
}

}  // namespace
}  // namespace lwq
