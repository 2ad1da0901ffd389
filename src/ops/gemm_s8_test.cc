#include "ops/gemm_s8.h"

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <limits>
#include <random>
#include <tuple>
#include <vector>

#include "ops/ops_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using test::naive_s8;
using test::random_s8;

bool has_amx_kernels() { return s8_auto_kernel() == S8Kernel::kAmx || s8_auto_kernel() == S8Kernel::kOneDnnAmx; }

// The kernels to check on this CPU: the portable one always, oneDNN's where
// it is the exact one (AVX512-VNNI), oneDNN's AMX matmul and lwquant's tile
// kernel where the CPU has AMX-INT8.
std::vector<S8Kernel> kernels_here() {
  std::vector<S8Kernel> k = {S8Kernel::kPortable, S8Kernel::kAuto};
  if (s8_auto_kernel() != S8Kernel::kPortable) k.push_back(S8Kernel::kOneDnnVnni);
  if (has_amx_kernels()) k.push_back(S8Kernel::kOneDnnAmx);
  if (s8_auto_kernel() == S8Kernel::kAmx) k.push_back(S8Kernel::kAmx);
  return k;
}

void expect_exact(S8Kernel kernel, const std::vector<int8_t>& x, int64_t rows, int64_t in,
                  const std::vector<int8_t>& w, int64_t out) {
  std::vector<int32_t> y(static_cast<size_t>(rows * out), 12345);  // garbage must be overwritten
  matmul_nt_s8(kernel, x.data(), rows, in, w.data(), out, y.data());
  const auto ref = naive_s8(x, rows, in, w, out);
  int64_t bad = 0;
  for (size_t i = 0; i < ref.size(); ++i) bad += y[i] != ref[i];
  EXPECT_EQ(bad, 0) << s8_kernel_name(kernel) << " " << rows << "x" << in << "x" << out << " first y " << y[0]
                    << " ref " << ref[0];
}

TEST(GemmS8, HandWorkedProduct) {
  // [1 2 3]·[4 5 6]ᵀ = 32, [1 2 3]·[-1 0 1]ᵀ = 2; [-128 127 0] row: -512+635 = 123, 128+0 = 128.
  const std::vector<int8_t> x = {1, 2, 3, -128, 127, 0}, w = {4, 5, 6, -1, 0, 1};
  for (S8Kernel k : kernels_here()) {
    std::vector<int32_t> y(4, -1);
    matmul_nt_s8(k, x.data(), 2, 3, w.data(), 2, y.data());
    EXPECT_EQ(y, (std::vector<int32_t>{32, 2, 123, 128})) << s8_kernel_name(k);
  }
}

TEST(GemmS8, RandomShapesMatchInt64Reference) {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 896, 128}, {3, 7, 5},
                               {7, 13, 9}, {33, 64, 96}, {130, 70, 3}, {64, 4864, 37}, {257, 129, 66}}) {
    const auto x = random_s8(static_cast<size_t>(rows * in), 1), w = random_s8(static_cast<size_t>(out * in), 2);
    for (S8Kernel k : kernels_here()) expect_exact(k, x, rows, in, w, out);
  }
}

// Every pair at the extremes: −128·−128 pairs are where u8·s8 and int16
// pairwise kernels saturate (2·128·128 = 32768 > INT16_MAX), and 127·127
// pairs are where oneDNN without VNNI does (it adds 128 to x: 2·255·127 >
// INT16_MAX; measured: 32640 instead of 4129024 with ONEDNN_MAX_CPU_ISA=AVX2).
// rows = 1 takes oneDNN's matrix-vector path.
TEST(GemmS8, ExtremeValuesDoNotSaturate) {
  for (int64_t rows : {1, 5})
    for (int8_t xv : {int8_t{-128}, int8_t{127}})
      for (int8_t wv : {int8_t{-128}, int8_t{127}}) {
        const int64_t in = 300, out = 19;
        std::vector<int8_t> x(static_cast<size_t>(rows * in), xv), w(static_cast<size_t>(out * in), wv);
        for (S8Kernel k : kernels_here()) expect_exact(k, x, rows, in, w, out);
      }
}

// A sum past 2^24 that is odd: exact only if nothing goes through float.
TEST(GemmS8, LargeOddSumsAreExact) {
  const int64_t rows = 2, in = 4099, out = 3;
  std::vector<int8_t> x(static_cast<size_t>(rows * in), -128), w(static_cast<size_t>(out * in), -128);
  x[0] = 1, w[0] = 1;  // 16384·4098 + 1 = 67141633 for y[0, 0]
  for (S8Kernel k : kernels_here()) {
    std::vector<int32_t> y(static_cast<size_t>(rows * out));
    matmul_nt_s8(k, x.data(), rows, in, w.data(), out, y.data());
    EXPECT_EQ(y[0], 67141633) << s8_kernel_name(k);
    EXPECT_EQ(y[1], 16384 * 4098 - 128) << s8_kernel_name(k);
    EXPECT_EQ(y[3], 16384 * 4098 - 128) << s8_kernel_name(k);  // row 1 is all -128; w[0, 0] = 1
    EXPECT_EQ(y[4], 16384 * 4099) << s8_kernel_name(k);
  }
}

// The shapes a calibration forward multiplies (hundreds of rows; tails of
// AMX's 16-row, 64-column tiles; K not a multiple of 4), at the extremes and
// with sums past 2^24 that are odd: oneDNN's AMX matmul must be exact on all
// of them, or kAuto must not have picked it.
TEST(GemmS8, CalibrationShapesAreExactPastTwoToThe24) {
  for (auto [rows, in, out] : {std::tuple<int64_t, int64_t, int64_t>{16, 2048, 64}, {17, 4099, 100}, {311, 2048, 736},
                               {64, 5632, 17}, {130, 1027, 513}, {100, 5632, 80}, {33, 192, 48}}) {
    std::vector<int8_t> x(static_cast<size_t>(rows * in), -128), w(static_cast<size_t>(out * in), -128);
    for (int64_t r = 0; r < rows; r += 3) x[static_cast<size_t>(r * in + r % in)] = 1;
    for (int64_t o = 0; o < out; o += 2) w[static_cast<size_t>(o * in + o % in)] = 1;
    for (S8Kernel k : kernels_here()) {
      if (k == S8Kernel::kPortable && rows * in * out > (int64_t{1} << 27)) continue;  // slow there, covered below
      expect_exact(k, x, rows, in, w, out);
    }
    const auto rx = random_s8(static_cast<size_t>(rows * in), 5), rw = random_s8(static_cast<size_t>(out * in), 6);
    for (S8Kernel k : kernels_here()) expect_exact(k, rx, rows, in, rw, out);
  }
}

TEST(GemmS8, AmxKernelsAreRefusedWithoutAmx) {
  if (has_amx_kernels()) GTEST_SKIP() << "this CPU has AMX-INT8";
  std::vector<int8_t> x(64 * 64, 1), w(64 * 64, 1);
  std::vector<int32_t> y(64 * 64);
  // Either absent (an error naming AMX) or present but not trusted by the probe (then it must still be exact).
  for (S8Kernel k : {S8Kernel::kOneDnnAmx, S8Kernel::kAmx}) {
    try {
      matmul_nt_s8(k, x.data(), 64, 64, w.data(), 64, y.data());
      EXPECT_EQ(y[0], 64) << s8_kernel_name(k);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("AMX"), std::string::npos) << e.what();
    }
  }
}

// The portable kernel on every SIMD target this CPU runs (AVX-512 with 4-row
// tiles, AVX2 / SSE4 with 2-row tiles, ...), odd shapes and extreme values.
TEST(GemmS8, PortableKernelIsExactOnEveryTarget) {
  const auto x = random_s8(37 * 301, 3), w = random_s8(23 * 301, 4);
  std::vector<int8_t> big_x(9 * 67, 127), big_w(6 * 67, -128);
  for (int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    SCOPED_TRACE(hwy::TargetName(target));
    expect_exact(S8Kernel::kPortable, x, 37, 301, w, 23);
    expect_exact(S8Kernel::kPortable, big_x, 9, 67, big_w, 6);
  }
  hwy::SetSupportedTargetsForTest(0);  // back to the real CPU
}

// The deepest product allowed, every term −128·−128: the sum is
// (2^17 − 1)·2^14 = INT32_MAX − 16383 on every kernel (one term more would
// reach 2^31 and wrap, so that depth is refused).
TEST(GemmS8, DeepestAllowedProductDoesNotOverflow) {
  const int64_t rows = 16, out = 16, in = kMaxS8Depth;
  const std::vector<int8_t> x(static_cast<size_t>(rows * in), -128), w(static_cast<size_t>(out * in), -128);
  const int64_t want = kMaxS8Depth * 16384;
  ASSERT_LE(want, int64_t{std::numeric_limits<int32_t>::max()}) << "kMaxS8Depth lets an int32 sum overflow";
  for (S8Kernel k : kernels_here()) {
    std::vector<int32_t> y(static_cast<size_t>(rows * out), 0);
    matmul_nt_s8(k, x.data(), rows, in, w.data(), out, y.data());
    int64_t bad = 0;
    for (int32_t v : y) bad += int64_t{v} != want;
    EXPECT_EQ(bad, 0) << s8_kernel_name(k) << ": y[0] " << y[0] << ", want " << want;
  }
  std::vector<int32_t> y(static_cast<size_t>(rows * out));
  EXPECT_THROW(matmul_nt_s8(x.data(), rows, in + 1, w.data(), out, y.data()), Error);
}

TEST(GemmS8, EmptyAndOversizedDepth) {
  std::vector<int32_t> y(4, 9);
  matmul_nt_s8(nullptr, 2, 0, nullptr, 2, y.data());
  EXPECT_EQ(y, (std::vector<int32_t>(4, 0)));
  EXPECT_THROW(matmul_nt_s8(nullptr, 1, kMaxS8Depth + 1, nullptr, 1, y.data()), Error);
  EXPECT_THROW(matmul_nt_s8(nullptr, -1, 1, nullptr, 1, y.data()), Error);
}

}  // namespace
}  // namespace lwq
