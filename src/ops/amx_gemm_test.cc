#include "ops/amx_gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "ops/ops_test_util.h"
#include "tensor/dtype.h"

namespace lwq {
namespace {

using Shape = std::tuple<int64_t, int64_t, int64_t>;  // rows, in, out

// Shapes at the kernel's edges: a single 16-row block, rows past a 32-row
// block by 1 and by 17, an odd last 16-column tile, panels of several threads.
const std::vector<Shape> kEdgeShapes = {{16, 64, 16},   {17, 64, 48},    {33, 192, 80},
                                        {63, 128, 528}, {100, 2048, 96}, {311, 5632, 64}};

using test::random_s8;

int64_t count_inexact_s8(const std::vector<int8_t>& x, const std::vector<int8_t>& w, Shape s) {
  const auto [rows, in, out] = s;
  std::vector<int32_t> y(static_cast<size_t>(rows * out), 12345);
  EXPECT_TRUE(amx_matmul_nt_s8(x.data(), rows, in, w.data(), out, y.data()));
  const std::vector<int64_t> want = test::naive_s8(x, rows, in, w, out);
  int64_t bad = 0;
  for (size_t i = 0; i < want.size(); ++i) bad += y[i] != want[i];
  return bad;
}

TEST(AmxGemm, Int8ProductsAreExactAtEveryEdge) {
  if (!amx_int8_usable()) GTEST_SKIP() << "no AMX-INT8 here";
  for (const Shape& s : kEdgeShapes) {
    const auto [rows, in, out] = s;
    SCOPED_TRACE(testing::Message() << rows << "x" << in << "x" << out);
    EXPECT_EQ(count_inexact_s8(random_s8(rows * in, 1), random_s8(out * in, 2), s), 0);
  }
}

// −128·−128 sums past 2^24 with an odd term: a path through float would round.
TEST(AmxGemm, Int8SumsPastTwoToThe24AreExact) {
  if (!amx_int8_usable()) GTEST_SKIP() << "no AMX-INT8 here";
  const Shape s{40, 4096, 32};
  std::vector<int8_t> x(40 * 4096, -128), w(32 * 4096, -128);
  for (int64_t r = 0; r < 40; ++r) x[r * 4096 + r] = 1;
  EXPECT_EQ(count_inexact_s8(x, w, s), 0);
}

// Exact products in double against the kernel's f32 sums: the difference is
// f32 rounding of k terms, bounded by k · 2^-23 · Σ|products|.
TEST(AmxGemm, Bf16ProductsWithBiasAndRowStrideMatchDoubleSums) {
  if (!amx_bf16_usable()) GTEST_SKIP() << "no AMX-BF16 here";
  std::mt19937 rng(7);
  std::normal_distribution<float> dist;
  for (const Shape& s : kEdgeShapes) {
    const auto [rows, in, out] = s;
    SCOPED_TRACE(testing::Message() << rows << "x" << in << "x" << out);
    std::vector<uint16_t> x(static_cast<size_t>(rows * in)), w(static_cast<size_t>(out * in));
    for (auto& v : x) v = f32_to_bf16(dist(rng));
    for (auto& v : w) v = f32_to_bf16(dist(rng));
    std::vector<float> bias(static_cast<size_t>(out));
    for (auto& b : bias) b = dist(rng);
    const int64_t ldy = out + 16;  // columns past out must stay untouched
    std::vector<float> y(static_cast<size_t>(rows * ldy), -7.0f);
    ASSERT_TRUE(amx_matmul_nt_bf16(x.data(), rows, in, w.data(), out, y.data(), ldy, bias.data()));
    int64_t bad = 0;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t o = 0; o < out; ++o) {
        double sum = bias[o], mag = std::fabs(bias[o]);
        for (int64_t i = 0; i < in; ++i) {
          const double p = double{bf16_to_f32(x[r * in + i])} * bf16_to_f32(w[o * in + i]);
          sum += p, mag += std::fabs(p);
        }
        bad += std::fabs(y[r * ldy + o] - sum) > static_cast<double>(in) * 0x1p-23 * mag;
      }
      for (int64_t o = out; o < ldy; ++o) bad += y[r * ldy + o] != -7.0f;
    }
    EXPECT_EQ(bad, 0);
  }
}

// Rows packed once from f32 (rounded to bf16 on the way) give the bits of
// the product on the rounded rows, block after block of w.
TEST(AmxGemm, RowsPackedOnceGiveTheSameBitsForEveryBlock) {
  if (!amx_bf16_usable()) GTEST_SKIP() << "no AMX-BF16 here";
  const int64_t rows = 45, in = 256, out = 96, block = 32;
  std::vector<float> x(static_cast<size_t>(rows * in));
  std::vector<uint16_t> xb(x.size()), w(static_cast<size_t>(out * in));
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * 3.0f;
  for (size_t i = 0; i < w.size(); ++i) w[i] = f32_to_bf16(std::cos(0.11f * static_cast<float>(i)));
  f32_to_bf16(x.data(), xb.data(), x.size());
  std::vector<float> whole(static_cast<size_t>(rows * out)), blocked(whole.size(), -1.0f);
  ASSERT_TRUE(amx_matmul_nt_bf16(xb.data(), rows, in, w.data(), out, whole.data(), out, nullptr));
  const AmxRows packed = amx_pack_rows_bf16(x.data(), rows, in);
  ASSERT_EQ(packed.m, rows);
  for (int64_t b = 0; b < out; b += block)
    ASSERT_TRUE(amx_matmul_nt_bf16(packed, w.data() + b * in, block, blocked.data() + b, out, nullptr));
  EXPECT_EQ(whole, blocked);
  EXPECT_FALSE(amx_matmul_nt_bf16(packed, w.data(), 24, blocked.data(), out, nullptr));  // n not a multiple of 16
  EXPECT_EQ(amx_pack_rows_bf16(x.data(), rows, 48).m, 0);                               // k not a multiple of 32
}

TEST(AmxGemm, RefusesShapesItDoesNotTake) {
  std::vector<int8_t> x(64 * 128, 1), w(64 * 128, 1);
  std::vector<int32_t> y(64 * 64, 5);
  EXPECT_FALSE(amx_matmul_nt_s8(x.data(), 64, 96, w.data(), 64, y.data()));  // depth not a multiple of 64
  EXPECT_FALSE(amx_matmul_nt_s8(x.data(), 64, 64, w.data(), 24, y.data()));  // out not a multiple of 16
  EXPECT_FALSE(amx_matmul_nt_s8(x.data(), 15, 64, w.data(), 64, y.data()));  // fewer than 16 rows
  std::vector<uint16_t> xb(64 * 128), wb(64 * 128);
  std::vector<float> yf(64 * 64, 5.0f);
  EXPECT_FALSE(amx_matmul_nt_bf16(xb.data(), 64, 48, wb.data(), 64, yf.data(), 64, nullptr));
  EXPECT_FALSE(amx_matmul_nt_bf16(xb.data(), 8, 64, wb.data(), 64, yf.data(), 64, nullptr));
  EXPECT_EQ(y, std::vector<int32_t>(64 * 64, 5));  // untouched when refused
  EXPECT_EQ(yf, std::vector<float>(64 * 64, 5.0f));
}

}  // namespace
}  // namespace lwq
