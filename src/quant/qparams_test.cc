#include "quant/qparams.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "util/error.h"

namespace lwq {
namespace {

QParams one(float mn, float mx, int bits, bool sym) { return int_qparams({&mn, 1}, {&mx, 1}, bits, sym); }

TEST(IntQParams, SymmetricInt8) {
  QParams p = one(-100.0f, 100.0f, 8, true);
  ASSERT_EQ(p.scale.size(), 1u);
  ASSERT_EQ(p.offset.size(), 1u);
  EXPECT_FLOAT_EQ(p.scale[0], 100.0f / 127.0f);
  EXPECT_EQ(p.offset[0], 0.0f);
  // The larger magnitude side decides.
  EXPECT_FLOAT_EQ(one(-3.0f, 1.0f, 8, true).scale[0], 3.0f / 127.0f);
}

TEST(IntQParams, AsymmetricInt8ByHand) {
  // [-100, 200]: scale = 300/255 = 1.17647...; -min/scale = 100·255/300 = 85;
  // offset = 85 + qmin(-128) = -43.
  QParams p = one(-100.0f, 200.0f, 8, false);
  EXPECT_NEAR(p.scale[0], 300.0 / 255.0, 1e-6);
  EXPECT_EQ(p.offset[0], -43.0f);
  // The range endpoints land on the integer range endpoints.
  EXPECT_EQ(quantize_int(-100.0f, p.scale[0], p.offset[0], 8), -128);
  EXPECT_EQ(quantize_int(200.0f, p.scale[0], p.offset[0], 8), 127);
  EXPECT_EQ(quantize_int(0.0f, p.scale[0], p.offset[0], 8), -43);
  EXPECT_EQ(quantize_int(100.0f, p.scale[0], p.offset[0], 8), 42);  // 85 - 43
}

TEST(IntQParams, RangeIsWidenedToContainZero) {
  // Positive-only range: min becomes 0, so zero maps to qmin.
  QParams pos = one(5.0f, 10.0f, 8, false);
  EXPECT_NEAR(pos.scale[0], 10.0 / 255.0, 1e-7);
  EXPECT_EQ(pos.offset[0], -128.0f);
  // Negative-only range: max becomes 0, so zero maps to qmax.
  QParams neg = one(-10.0f, -5.0f, 8, false);
  EXPECT_NEAR(neg.scale[0], 10.0 / 255.0, 1e-7);
  EXPECT_EQ(neg.offset[0], 127.0f);
  EXPECT_FLOAT_EQ(one(5.0f, 10.0f, 8, true).scale[0], 10.0f / 127.0f);
}

TEST(IntQParams, ZeroRangeGivesEps) {
  EXPECT_EQ(one(0.0f, 0.0f, 8, true).scale[0], kEps);
  QParams a = one(0.0f, 0.0f, 8, false);
  EXPECT_EQ(a.scale[0], kEps);
  EXPECT_EQ(a.offset[0], -128.0f);
  EXPECT_EQ(kEps, std::numeric_limits<float>::epsilon());
  // Tiny but non-zero ranges are clamped too.
  EXPECT_EQ(one(-1e-9f, 1e-9f, 8, true).scale[0], kEps);
}

TEST(IntQParams, Int4) {
  EXPECT_FLOAT_EQ(one(-7.0f, 7.0f, 4, true).scale[0], 1.0f);
  QParams a = one(-8.0f, 7.0f, 4, false);  // scale 15/15 = 1, offset round(8) - 8 = 0
  EXPECT_FLOAT_EQ(a.scale[0], 1.0f);
  EXPECT_EQ(a.offset[0], 0.0f);
  QParams b = one(0.0f, 30.0f, 4, false);  // scale 2, offset -8
  EXPECT_FLOAT_EQ(b.scale[0], 2.0f);
  EXPECT_EQ(b.offset[0], -8.0f);
}

TEST(IntQParams, PerChannelShapes) {
  std::vector<float> mn = {-1.0f, 0.0f, -4.0f}, mx = {2.0f, 0.0f, 1.0f};
  QParams s = int_qparams(mn, mx, 8, true);
  ASSERT_EQ(s.scale.size(), 3u);
  ASSERT_EQ(s.offset.size(), 3u);
  EXPECT_FLOAT_EQ(s.scale[0], 2.0f / 127);
  EXPECT_EQ(s.scale[1], kEps);
  EXPECT_FLOAT_EQ(s.scale[2], 4.0f / 127);
  QParams a = int_qparams(mn, mx, 8, false);
  EXPECT_NEAR(a.scale[0], 3.0 / 255, 1e-7);
  EXPECT_EQ(a.offset[0], -43.0f);  // round(1·255/3 = 85) - 128
  EXPECT_EQ(a.offset[1], -128.0f);
  EXPECT_EQ(a.offset[2], 76.0f);  // round(4·255/5 = 204) - 128
}

TEST(IntQParams, RejectsBadInput) {
  std::vector<float> two = {0, 1}, three = {0, 1, 2};
  EXPECT_THROW(int_qparams(two, three, 8, true), Error);
  EXPECT_THROW(one(0.0f, std::numeric_limits<float>::infinity(), 8, true), Error);
  EXPECT_THROW(one(std::nanf(""), 1.0f, 8, false), Error);
  EXPECT_THROW(one(-1.0f, 1.0f, 9, true), Error);
  EXPECT_THROW(one(-1.0f, 1.0f, 1, true), Error);
}

TEST(Rounding, HalfToEven) {
  EXPECT_EQ(round_half_even(0.5f), 0.0f);
  EXPECT_EQ(round_half_even(1.5f), 2.0f);
  EXPECT_EQ(round_half_even(2.5f), 2.0f);
  EXPECT_EQ(round_half_even(-2.5f), -2.0f);
  EXPECT_EQ(round_half_even(-1.5f), -2.0f);
  EXPECT_EQ(round_half_even(-0.5f), 0.0f);
  EXPECT_EQ(round_half_even(2.4999998f), 2.0f);
  EXPECT_EQ(round_half_even(2.5000002f), 3.0f);
}

TEST(QuantizeInt, TiesAndClamping) {
  EXPECT_EQ(quantize_int(0.5f, 1.0f, 0.0f, 8), 0);
  EXPECT_EQ(quantize_int(1.5f, 1.0f, 0.0f, 8), 2);
  EXPECT_EQ(quantize_int(-2.5f, 1.0f, 0.0f, 8), -2);
  EXPECT_EQ(quantize_int(0.25f, 0.5f, 0.0f, 8), 0);  // 0.5 → 0
  EXPECT_EQ(quantize_int(1000.0f, 1.0f, 0.0f, 8), 127);
  EXPECT_EQ(quantize_int(-1000.0f, 1.0f, 0.0f, 8), -128);
  EXPECT_EQ(quantize_int(100.0f, 1.0f, 0.0f, 4), 7);
  EXPECT_EQ(quantize_int(-100.0f, 1.0f, 0.0f, 4), -8);
  EXPECT_EQ(quantize_int(1.0f, 1.0f, 126.5f, 8), 127);  // offset applies before rounding: 127.5 → 128 → clamp
  EXPECT_EQ(quantize_int(std::nanf(""), 1.0f, 0.0f, 8), 0);
  EXPECT_EQ(quantize_int(std::numeric_limits<float>::infinity(), 1.0f, 0.0f, 8), 127);
  EXPECT_FLOAT_EQ(dequantize_int(-128, 300.0f / 255, -43.0f), -(85.0f) * (300.0f / 255));
}

TEST(QuantizeInt, RoundTripErrorWithinHalfStep) {
  QParams p = one(-3.0f, 5.0f, 8, false);
  for (float x = -3.0f; x <= 5.0f; x += 0.0137f) {
    float back = dequantize_int(quantize_int(x, p.scale[0], p.offset[0], 8), p.scale[0], p.offset[0]);
    EXPECT_LE(std::fabs(back - x), p.scale[0] * 0.5f * (1 + 1e-5f)) << x;
  }
}

}  // namespace
}  // namespace lwq
