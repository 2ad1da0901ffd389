#include "tensor/dtype.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <cmath>

#include "tensor/tensor.h"

namespace lwq {
namespace {

TEST(DType, NamesRoundTrip) {
  for (auto t : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2,
                 DType::I64, DType::I32, DType::I16, DType::I8, DType::U8, DType::BOOL}) {
    auto parsed = parse_dtype(dtype_name(t));
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, t);
  }
  EXPECT_FALSE(parse_dtype("F4").has_value());
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_size(DType::I64), 8u);
}

TEST(DType, Bf16RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);
  EXPECT_FLOAT_EQ(bf16_to_f32(0xc040), -3.0f);
}

TEST(DType, Bf16ArrayConversionEqualsTheScalarOne) {
  // ties both ways, the largest finite values, infinities, NaNs (signalling
  // ones quieted), denormals, signed zeros, and every 7th bit pattern besides.
  std::vector<uint32_t> bits = {0x3f808000u, 0x3f818000u, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u,
                                0x7fc00000u, 0x7f800001u, 0xffbfffffu, 0x00000001u, 0x807fffffu, 0x00000000u,
                                0x80000000u, 0x3f80ffffu};
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 7 * 65537) bits.push_back(static_cast<uint32_t>(b));
  std::vector<float> x(bits.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = f32_from_bits(bits[i]);
  std::vector<uint16_t> got(x.size());
  f32_to_bf16(x.data(), got.data(), x.size());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(got[i], f32_to_bf16(x[i])) << std::hex << bits[i];
  EXPECT_EQ(got[0], 0x3f80);  // 1.00390625 (a tie) to even
  EXPECT_EQ(got[1], 0x3f82);  // the next tie, up to even
  EXPECT_EQ(got[7], 0x7fc0);  // signalling NaN quieted, still a NaN
}

TEST(DType, Bf16ToF32ArrayWidensEveryPattern) {
  // All 65 536 bf16 patterns (NaNs keep their payload bits), at odd offsets
  // and lengths so that the vector clones' tails run too.
  std::vector<uint16_t> h(65536 + 5);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i * 40503u);
  for (size_t off : {size_t{0}, size_t{3}}) {
    std::vector<float> got(h.size() - off, -1.0f);
    bf16_to_f32(h.data() + off, got.data(), got.size());
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_EQ(bits_from_f32(got[i]), uint32_t{h[i + off]} << 16) << std::hex << h[i + off];
  }
  std::vector<float> f(3);
  const uint16_t v[3] = {0x3f80, 0xc000, 0x7f80};
  convert_to_f32(DType::BF16, v, f.data(), 3);
  EXPECT_EQ(f, (std::vector<float>{1.0f, -2.0f, std::numeric_limits<float>::infinity()}));
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_FLOAT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  for (uint32_t h = 0; h < 0x7c00; ++h) EXPECT_EQ(f32_to_f16(f16_to_f32(h)), h);
}

TEST(DType, F8E4M3AllCodesRoundTrip) {
  EXPECT_FLOAT_EQ(f8e4m3_to_f32(0x7e), 448.0f);
  EXPECT_TRUE(std::isnan(f8e4m3_to_f32(0x7f)));
  EXPECT_EQ(f32_to_f8e4m3(1000.0f), 0x7e);  // saturates
  EXPECT_EQ(f32_to_f8e4m3(-1000.0f), 0xfe);
  for (uint32_t v = 0; v < 256; ++v) {
    if ((v & 0x7f) == 0x7f) continue;
    EXPECT_EQ(f32_to_f8e4m3(f8e4m3_to_f32(v)), v) << v;
  }
  EXPECT_FLOAT_EQ(f8e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
}

TEST(DType, F8E5M2AllFiniteCodesRoundTrip) {
  for (uint32_t v = 0; v < 256; ++v) {
    if ((v & 0x7c) == 0x7c) continue;
    EXPECT_EQ(f32_to_f8e5m2(f8e5m2_to_f32(v)), v) << v;
  }
  EXPECT_FLOAT_EQ(f8e5m2_to_f32(0x7b), 57344.0f);
}

TEST(Tensor, ConvertsThroughF32) {
  Tensor t = tensor_from_f32(DType::BF16, {2, 2}, std::vector<float>{1.f, -2.f, 0.5f, 3.f});
  EXPECT_EQ(t.nbytes(), 8u);
  EXPECT_EQ(to_f32(t), (std::vector<float>{1.f, -2.f, 0.5f, 3.f}));
  EXPECT_EQ(shape_str(t.shape), "[2, 2]");
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {

// The block screen and the scalar scan agree wherever the bad value sits:
// first block, block edges, the tail, and with two bad values the first wins.
TEST(Tensor, FirstNonFiniteFindsEveryPosition) {
  const int64_t n = 3 * 4096 + 77;
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t at : {int64_t{0}, int64_t{4095}, int64_t{4096}, int64_t{8191}, int64_t{12287}, n - 1}) {
      for (float bad : {std::nanf(""), std::numeric_limits<float>::infinity()}) {
        std::vector<float> v(static_cast<size_t>(n), 1.5f);
        v[static_cast<size_t>(at)] = bad;
        if (at + 5000 < n) v[static_cast<size_t>(at + 5000)] = bad;
        Tensor x = tensor_from_f32(t, {n}, v);
        EXPECT_EQ(first_non_finite(x), at) << dtype_name(t) << " at " << at;
      }
    }
    Tensor clean = tensor_from_f32(t, {n}, std::vector<float>(static_cast<size_t>(n), -2.0f));
    EXPECT_EQ(first_non_finite(clean), -1);
  }
}

}  // namespace
}  // namespace lwq
