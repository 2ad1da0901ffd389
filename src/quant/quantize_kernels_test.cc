// The vector kernels against the scalar definitions in qparams.h, value by
// value, on lengths that exercise both the vector body and the tail.
#include "quant/quantize_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "quant/qparams.h"
#include "tensor/dtype.h"

namespace lwq {
namespace {

TEST(QuantizeKernels, QuantizeRowEqualsQuantizeInt) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (int64_t n : {1, 3, 7, 8, 15, 16, 17, 64, 100, 1031}) {
    for (int bits : {8, 4}) {
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = nd(rng);
      const float scale = 0.0371f, offset = bits == 8 ? -7.0f : 0.0f;
      // Exact ties (k + 0.5) · scale − offset·scale land on .5 after the division: round half to even.
      for (int64_t i = 0; i < n; i += 3) x[static_cast<size_t>(i)] = (static_cast<float>(i % 9) - 4.5f) * scale;
      std::vector<int8_t> q(static_cast<size_t>(n));
      quantize_row(x.data(), n, scale, offset, qmin_of(bits), qmax_of(bits), q.data());
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(q[static_cast<size_t>(i)], quantize_int(x[static_cast<size_t>(i)], scale, offset, bits))
            << "n " << n << " i " << i << " x " << x[static_cast<size_t>(i)];
    }
  }
}

TEST(QuantizeKernels, SaturatesAtTheIntegerRange) {
  std::vector<float> x = {1e9f, -1e9f, 127.49f, 127.5f, -128.5f, -128.51f, 0.5f, 1.5f, 2.5f, -0.5f, 0.0f, 3.0f,
                          -3.0f, 126.5f, -127.5f, 9.0f, -9.0f};
  std::vector<int8_t> q(x.size());
  quantize_row(x.data(), static_cast<int64_t>(x.size()), 1.0f, 0.0f, -128, 127, q.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(q[i], quantize_int(x[i], 1.0f, 0.0f, 8)) << x[i];
  quantize_row(x.data(), static_cast<int64_t>(x.size()), 1.0f, 0.0f, -8, 7, q.data());
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(q[i], quantize_int(x[i], 1.0f, 0.0f, 4)) << x[i];
}

TEST(QuantizeKernels, RowMinMaxFindsExtremesAndNonFiniteValues) {
  for (int64_t n : {1, 5, 8, 16, 33, 257}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = std::sin(static_cast<float>(i) * 1.3f) * 5.0f;
    float lo = 0, hi = 0;
    EXPECT_TRUE(row_min_max(x.data(), n, &lo, &hi));
    EXPECT_EQ(lo, *std::min_element(x.begin(), x.end()));
    EXPECT_EQ(hi, *std::max_element(x.begin(), x.end()));
    for (int64_t at : {int64_t{0}, n / 2, n - 1})
      for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
        std::vector<float> y = x;
        y[static_cast<size_t>(at)] = bad;
        EXPECT_FALSE(row_min_max(y.data(), n, &lo, &hi)) << "n " << n << " at " << at << " " << bad;
      }
  }
}

// The bf16 kernels read the stored bits and widen them in registers: equal
// to the f32 kernels on the converted values, tails included.
TEST(QuantizeKernels, Bf16KernelsEqualF32OnConvertedValues) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (int64_t n : {1, 7, 16, 31, 64, 100, 4096, 4099}) {
    std::vector<uint16_t> b(static_cast<size_t>(n));
    std::vector<float> f(b.size());
    for (size_t i = 0; i < b.size(); ++i) {
      b[i] = f32_to_bf16(nd(rng));
      f[i] = bf16_to_f32(b[i]);
    }
    float lo = 0, hi = 0, lo16 = 0, hi16 = 0;
    ASSERT_TRUE(row_min_max(f.data(), n, &lo, &hi));
    ASSERT_TRUE(row_min_max_bf16(b.data(), n, &lo16, &hi16));
    EXPECT_EQ(lo, lo16);
    EXPECT_EQ(hi, hi16);
    std::vector<int8_t> q(b.size()), q16(b.size());
    quantize_row(f.data(), n, 0.037f, -3.0f, -128, 127, q.data());
    quantize_row_bf16(b.data(), n, 0.037f, -3.0f, -128, 127, q16.data());
    EXPECT_EQ(q, q16) << n;
    for (int64_t at : {int64_t{0}, n - 1})
      for (uint16_t bad : {uint16_t{0x7fc0}, uint16_t{0x7f80}, uint16_t{0xff80}}) {
        std::vector<uint16_t> y = b;
        y[static_cast<size_t>(at)] = bad;
        EXPECT_FALSE(row_min_max_bf16(y.data(), n, &lo16, &hi16)) << n << " " << at;
      }
  }
}

}  // namespace
}  // namespace lwq
