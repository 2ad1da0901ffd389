#include "ops/gemm.h"

#include <gtest/gtest.h>

#include "ops/ops_test_util.h"
#include "tensor/dtype.h"
#include "util/error.h"

#include <cmath>

namespace lwq {
namespace {

using test::max_rel_err;
using test::random_vec;

std::vector<double> naive_nt(const std::vector<float>& x, int64_t rows, int64_t in, const std::vector<float>& w,
                             int64_t out, const float* bias) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) s += static_cast<double>(x[r * in + i]) * w[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

TEST(Gemm, MatmulNtMatchesNaiveLoops) {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 13, 5}, {33, 64, 96}, {130, 70, 3}}) {
    auto x = random_vec(static_cast<size_t>(rows * in), 1);
    auto w = random_vec(static_cast<size_t>(out * in), 2);
    std::vector<float> y(static_cast<size_t>(rows * out), 123.0f);  // garbage must be overwritten
    matmul_nt(x.data(), rows, in, w.data(), out, y.data());
    EXPECT_LT(max_rel_err(y, naive_nt(x, rows, in, w, out, nullptr)), 1e-5) << rows << "x" << in << "x" << out;
  }
}

TEST(Gemm, MatmulNtAddsBiasToEveryRow) {
  const int64_t rows = 9, in = 17, out = 11;
  auto x = random_vec(rows * in, 3), w = random_vec(out * in, 4), b = random_vec(out, 5, 10.0f);
  std::vector<float> y(rows * out, -7.0f);
  matmul_nt(x.data(), rows, in, w.data(), out, y.data(), b.data());
  EXPECT_LT(max_rel_err(y, naive_nt(x, rows, in, w, out, b.data())), 1e-5);
}

TEST(Gemm, EmptyInnerDimensionGivesBias) {
  std::vector<float> b = {1, 2}, y(4, 9.0f);
  matmul_nt(nullptr, 2, 0, nullptr, 2, y.data(), b.data());
  EXPECT_EQ(y, (std::vector<float>{1, 2, 1, 2}));
  matmul_nt(nullptr, 2, 0, nullptr, 2, y.data());
  EXPECT_EQ(y, (std::vector<float>(4, 0.0f)));
}

TEST(Gemm, MatmulNnMatchesNaiveLoops) {
  const int64_t m = 5, k = 19, n = 8;
  auto a = random_vec(m * k, 6), b = random_vec(k * n, 7);
  std::vector<float> y(m * n);
  matmul_nn(a.data(), m, k, b.data(), n, y.data());
  std::vector<double> ref(m * n);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t t = 0; t < k; ++t) ref[i * n + j] += static_cast<double>(a[i * k + t]) * b[t * n + j];
  EXPECT_LT(max_rel_err(y, ref), 1e-5);
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {

// Computing a Linear a block of output channels at a time into a wider
// output equals the whole product.
TEST(MatmulNtStrided, BlocksOfOutputChannelsEqualTheWholeProduct) {
  const int64_t rows = 5, in = 7, out = 11;
  std::vector<float> x(rows * in), w(out * in), bias(out), whole(rows * out), blocked(rows * out, -1.0f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.3f * static_cast<float>(i));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.7f * static_cast<float>(i));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i);
  matmul_nt(x.data(), rows, in, w.data(), out, whole.data(), bias.data());
  for (int64_t begin = 0; begin < out; begin += 4) {
    const int64_t n = std::min<int64_t>(4, out - begin);
    matmul_nt_strided(x.data(), rows, in, w.data() + begin * in, n, blocked.data() + begin, out, bias.data() + begin);
  }
  for (size_t i = 0; i < whole.size(); ++i) EXPECT_NEAR(blocked[i], whole[i], 1e-5f) << i;
  EXPECT_THROW(matmul_nt_strided(x.data(), rows, in, w.data(), out, blocked.data(), out - 1), Error);
}

// The bf16 product a block of output channels at a time (a streamed weight's
// blocks) into the wide output equals the whole one, bit for bit on a
// native bf16 kernel and within f32 rounding otherwise.
TEST(MatmulNtBf16, BlocksOfOutputChannelsEqualTheWholeProduct) {
  const int64_t rows = 6, in = 64, out = 40;
  std::vector<uint16_t> x(rows * in), w(out * in);
  for (size_t i = 0; i < x.size(); ++i) x[i] = f32_to_bf16(std::sin(0.3f * static_cast<float>(i)));
  for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(std::cos(0.7f * static_cast<float>(i)));
  std::vector<float> bias(out), whole(rows * out), blocked(rows * out, -1.0f);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.1f * static_cast<float>(i);
  matmul_nt_bf16(x.data(), rows, in, w.data(), out, whole.data(), bias.data());
  for (int64_t begin = 0; begin < out; begin += 16) {
    const int64_t n = std::min<int64_t>(16, out - begin);
    matmul_nt_bf16(x.data(), rows, in, w.data() + begin * in, n, blocked.data() + begin, bias.data() + begin, out);
  }
  for (size_t i = 0; i < whole.size(); ++i) EXPECT_NEAR(blocked[i], whole[i], 1e-5f * (1 + std::fabs(whole[i]))) << i;
  EXPECT_THROW(matmul_nt_bf16(x.data(), rows, in, w.data(), out, blocked.data(), nullptr, out - 1), Error);
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {

// Rows produced by a callback, in blocks, give the same product as the whole matrix.
TEST(MatmulNtRows, EqualsMatmulNtForManyBlocks) {
  // few rows: blocks of 2^21 floats, 64 rows → two blocks
  const int64_t rows = 3, in = 1 << 15, out = 100;
  std::vector<float> x(static_cast<size_t>(rows * in)), w(static_cast<size_t>(out * in)), bias(out);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.001f * static_cast<float>(i));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.003f * static_cast<float>(i));
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = static_cast<float>(i);
  std::vector<float> whole(rows * out), blocked(rows * out);
  matmul_nt(x.data(), rows, in, w.data(), out, whole.data(), bias.data());
  int calls = 0;
  matmul_nt_rows(
      x.data(), rows, in,
      [&](int64_t begin, int64_t n, float* dst) {
        ++calls;
        std::copy(w.begin() + begin * in, w.begin() + (begin + n) * in, dst);
      },
      out, blocked.data(), bias.data());
  EXPECT_EQ(calls, 2);
  for (size_t i = 0; i < whole.size(); ++i) EXPECT_NEAR(blocked[i], whole[i], 1e-2f) << i;
}

// A calibration batch (≥ 256 rows) gets wider blocks: rows × block ≥ 2M
// outputs, up to 2^22 floats (512 rows of 2048: 2048-row blocks, not 1024).
TEST(MatmulNtRows, CalibrationBatchesGetWiderBlocks) {
  const int64_t rows = 512, in = 2048, out = 4200;
  std::vector<float> x(static_cast<size_t>(rows * in)), w(static_cast<size_t>(out * in));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.001f * static_cast<float>(i));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.003f * static_cast<float>(i));
  std::vector<float> whole(rows * out), blocked(rows * out);
  matmul_nt(x.data(), rows, in, w.data(), out, whole.data());
  std::vector<int64_t> sizes;
  matmul_nt_rows(
      x.data(), rows, in,
      [&](int64_t begin, int64_t n, float* dst) {
        sizes.push_back(n);
        std::copy(w.begin() + begin * in, w.begin() + (begin + n) * in, dst);
      },
      out, blocked.data());
  EXPECT_EQ(sizes, (std::vector<int64_t>{2048, 2048, 104}));
  for (size_t i = 0; i < whole.size(); i += 97) EXPECT_NEAR(blocked[i], whole[i], 1e-2f) << i;
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {

// The documented thread semantics: products may be computed from inside an
// OpenMP region (each then runs on its calling thread) and match the same
// products computed one at a time.
TEST(Gemm, CallsFromInsideAnOpenMpRegionMatchSerialCalls) {
  const int64_t rows = 64, in = 96, out = 80, n = 6;  // 2·64·96·80 ≈ 1 MFLOP each
  std::vector<std::vector<float>> x(n), w(n), serial(n), inside(n);
  for (int64_t t = 0; t < n; ++t) {
    x[t] = random_vec(rows * in, 10 + static_cast<uint32_t>(t));
    w[t] = random_vec(out * in, 20 + static_cast<uint32_t>(t));
    serial[t].resize(rows * out);
    inside[t].resize(rows * out);
    matmul_nt(x[t].data(), rows, in, w[t].data(), out, serial[t].data());
  }
#pragma omp parallel for
  for (int64_t t = 0; t < n; ++t) matmul_nt(x[t].data(), rows, in, w[t].data(), out, inside[t].data());
  for (int64_t t = 0; t < n; ++t) {
    EXPECT_LT(max_rel_err(inside[t], naive_nt(x[t], rows, in, w[t], out, nullptr)), 1e-5) << t;
    EXPECT_EQ(inside[t], serial[t]) << t;  // both ran single-threaded: same kernel, same order
  }
}

}  // namespace
}  // namespace lwq
