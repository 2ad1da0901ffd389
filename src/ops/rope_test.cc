#include "ops/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "ops/ops_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

double base_freq(double theta, int64_t i, int64_t d) { return std::pow(theta, -2.0 * i / d); }

TEST(RopeFrequencies, DefaultAndLinear) {
  RopeParams p;
  p.theta = 10000;
  auto f = rope_frequencies(p, 16, 24);
  ASSERT_EQ(f.inv_freq.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], base_freq(1e4, i, 16));
  EXPECT_EQ(f.attention_scale, 1.0f);
  p.type = RopeType::Linear;
  p.factor = 2;
  f = rope_frequencies(p, 16, 24);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], base_freq(1e4, i, 16) / 2);
}

TEST(RopeFrequencies, DynamicNtkUsesSequenceLength) {
  RopeParams p;
  p.type = RopeType::Dynamic;
  p.factor = 2;
  p.max_position_embeddings = 16;
  // Within max_position_embeddings: plain rope.
  auto f = rope_frequencies(p, 16, 16);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], base_freq(1e4, i, 16));
  // 24 positions: theta' = 1e4 · (2·24/16 − 1)^(16/14) = 22081.79 (goldens README).
  f = rope_frequencies(p, 16, 24);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], base_freq(22081.79, i, 16)) << i;
}

TEST(RopeFrequencies, Llama3Bands) {
  RopeParams p;
  p.type = RopeType::Llama3;
  p.theta = 5e5;
  p.factor = 8;
  p.low_freq_factor = 1;
  p.high_freq_factor = 4;
  p.original_max_position_embeddings = 64;
  auto f = rope_frequencies(p, 16, 24);
  // Wavelengths 6.3 (< 16: kept), 32.4 (between 16 and 64: blended), 167.. (> 64: / 8).
  EXPECT_FLOAT_EQ(f.inv_freq[0], 1.0f);
  const double f1 = base_freq(5e5, 1, 16);
  const double s = (64.0 / (2 * std::numbers::pi / f1) - 1.0) / 3.0;
  EXPECT_FLOAT_EQ(f.inv_freq[1], (1 - s) * f1 / 8 + s * f1);
  for (int i = 2; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], base_freq(5e5, i, 16) / 8);
  p.original_max_position_embeddings.reset();
  EXPECT_THROW(rope_frequencies(p, 16, 24), Error);
}

TEST(RopeFrequencies, YarnRampAndAttentionFactor) {
  RopeParams p;
  p.type = RopeType::Yarn;
  p.factor = 4;
  p.original_max_position_embeddings = 32;
  auto f = rope_frequencies(p, 16, 24);
  // low 0, high 2: frequency 0 kept, 1 half-blended, 2..7 divided by 4.
  EXPECT_FLOAT_EQ(f.inv_freq[0], 1.0f);
  const double f1 = base_freq(1e4, 1, 16);
  EXPECT_FLOAT_EQ(f.inv_freq[1], f1 / 4 * 0.5 + f1 * 0.5);
  for (int i = 2; i < 8; ++i) EXPECT_FLOAT_EQ(f.inv_freq[i], base_freq(1e4, i, 16) / 4);
  EXPECT_NEAR(f.attention_scale, 0.1 * std::log(4.0) + 1, 1e-6);
  p.attention_factor = 0.5;
  EXPECT_EQ(rope_frequencies(p, 16, 24).attention_scale, 0.5f);
  p.attention_factor.reset();
  p.mscale = 1.0;
  p.mscale_all_dim = 2.0;
  EXPECT_NEAR(rope_frequencies(p, 16, 24).attention_scale, (0.1 * std::log(4.0) + 1) / (0.2 * std::log(4.0) + 1), 1e-6);
}

TEST(RopeFrequencies, RejectsOddDimension) { EXPECT_THROW(rope_frequencies(RopeParams{}, 15, 1), Error); }

TEST(ApplyRope, RotatesEachHalfPairAndScales) {
  RopeFrequencies f;
  f.inv_freq = {0.5f, 0.25f};
  f.attention_scale = 1.5f;
  const int32_t pos[] = {0, 3, 7};
  RopeTable t = rope_table(f, pos, 3);
  const int64_t heads = 2, hd = 4, stride = 9;  // rows padded: only the heads are touched
  auto x = test::random_vec(3 * stride, 21);
  auto y = x;
  apply_rope(y.data(), 3, stride, heads, hd, t);
  for (int r = 0; r < 3; ++r) {
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < 2; ++i) {
        const double a = pos[r] * double(f.inv_freq[i]);
        const double x1 = x[r * stride + h * hd + i], x2 = x[r * stride + h * hd + i + 2];
        EXPECT_NEAR(y[r * stride + h * hd + i], 1.5 * (x1 * std::cos(a) - x2 * std::sin(a)), 1e-5);
        EXPECT_NEAR(y[r * stride + h * hd + i + 2], 1.5 * (x2 * std::cos(a) + x1 * std::sin(a)), 1e-5);
      }
    EXPECT_EQ(y[r * stride + 8], x[r * stride + 8]);
  }
}

// multimodal.md A.2.3 with mrope_section [4, 2, 2] (head_dim 16): h overwrites
// j = 1, 4 and w j = 2, 5 (j < 3·2); j = 0, 3, 6 and 7 keep the t angle.
TEST(Mrope, InterleavesTheAxesAsQwen3VlDoes) {
  RopeFrequencies f;
  f.inv_freq.assign(8, 1.0f);
  const int32_t pos[3] = {1, 2, 3};  // one row: t, h, w
  RopeTable t = mrope_table(f, {4, 2, 2}, pos, 1);
  const float expected[8] = {1, 2, 3, 1, 2, 3, 1, 1};
  for (int j = 0; j < 8; ++j) EXPECT_FLOAT_EQ(t.cos[j], static_cast<float>(std::cos(expected[j]))) << j;
  EXPECT_THROW(mrope_table(f, {4, 4}, pos, 1), Error);
}

TEST(Mrope, EqualAxesGivePlainRope) {
  RopeParams p;
  p.theta = 5e6;
  RopeFrequencies f = rope_frequencies(p, 16, 40);
  std::vector<int32_t> pos;
  for (int a = 0; a < 3; ++a)
    for (int r = 0; r < 40; ++r) pos.push_back(r);
  RopeTable m = mrope_table(f, {4, 2, 2}, pos.data(), 40);
  RopeTable plain = rope_table(f, pos.data(), 40);
  EXPECT_EQ(m.cos, plain.cos);
  EXPECT_EQ(m.sin, plain.sin);
}

}  // namespace
}  // namespace lwq
