// Packing vectors (spec §3.6), FP8 rounding, MX blocks, per-group and W4A8
// scale_bias: hand-worked values and independent references.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quant/fp_formats.h"
#include "quant/int4_pack.h"
#include "quant/weight_quant.h"
#include "util/error.h"

namespace lwq {
namespace {

TEST(Fp4Pack, SpecUnitVectors) {
  EXPECT_EQ(pack_fp4_values({0.0f, 0.5f, -1.0f, -6.0f}, 1, 4), (std::vector<uint8_t>{16, 250}));
  EXPECT_EQ(pack_fp4_values({0.75f, 1.25f, 2.6f, -3.4f}, 1, 4), (std::vector<uint8_t>{33, 213}));
  EXPECT_EQ(pack_fp4_values({4.2f, -0.4f, 1.49f, -1.51f, -0.1f, 6.1f, -2.2f, 2.9f}, 2, 4),
            (std::vector<uint8_t>{150, 179, 120, 92}));
  EXPECT_EQ(fp4_e2m1_code(-0.0f), 8);  // the sign bit of −0.0 counts
  EXPECT_THROW(pack_fp4_values({1.0f, 2.0f, 3.0f}, 1, 3), Error);
  std::vector<uint8_t> codes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  EXPECT_EQ(unpack_fp4(pack_fp4(codes, 2, 8).data(), 2, 8), codes);
  for (uint8_t c = 0; c < 16; ++c)
    if (c != 8) EXPECT_EQ(fp4_e2m1_code(fp4_e2m1_value(c)), c);
}

TEST(Int4Pack, W4A8ByHand) {
  // Wq [4, 2]; P[j, i] = (Wq[2j+1, i] << 4) | (Wq[2j, i] & 0xF).
  const std::vector<int8_t> q = {1, -2, 3, -8, 7, 0, -1, 5};
  std::vector<int8_t> p = pack_int4_w4a8(q.data(), 4, 2);
  EXPECT_EQ(p, (std::vector<int8_t>{0x31, static_cast<int8_t>(0x8E), static_cast<int8_t>(0xF7), 0x50}));
  EXPECT_EQ(unpack_int4_w4a8(p.data(), 4, 2), q);
  EXPECT_THROW(pack_int4_w4a8(q.data(), 3, 2), Error);  // odd out
  const std::vector<int8_t> bad = {8, 0};
  EXPECT_THROW(pack_int4_w4a8(bad.data(), 2, 1), Error);
}

TEST(Int4Pack, ScaleBiasByHand) {
  QuantizedWeight qw;
  qw.out = 2;
  qw.in = 32;
  qw.bits = 4;
  qw.q.assign(64, 1);
  qw.q[0] = 7;      // row 0, chunk 0
  qw.q[33] = -8;    // row 1, chunk 0 (second element)
  qw.scale = {0.5f, 0.25f};
  qw.offset = {0.0f, 0.0f};
  int64_t cols = 0;
  std::vector<float> sb = w4a8_scale_bias(qw, "model.layers.0.mlp.up_proj", cols);
  EXPECT_EQ(cols, 1);
  // row 0: (7 + 31)·0.5 = 19 → ·8 = 152; row 1: (−8 + 31)·0.25 = 5.75 → 46.
  EXPECT_EQ(sb, (std::vector<float>{152.0f, 46.0f}));
  sb = w4a8_scale_bias(qw, "model.layers.0.mlp.down_proj", cols);
  EXPECT_EQ(cols, 16);
  ASSERT_EQ(sb.size(), 32u);
  EXPECT_EQ(sb[0], 8.0f * (7 + 1) * 0.5f);
  EXPECT_EQ(sb[1], 8.0f * 2 * 0.5f);
  EXPECT_EQ(sb[16], 8.0f * (1 - 8) * 0.25f);
  sb = w4a8_scale_bias(qw, "model.layers.0.mlp.shared_expert_gate", cols);
  EXPECT_EQ(cols, 32);
  EXPECT_EQ(sb[0], 3.5f);  // quirk: the dequantized weight itself
  qw.in = 8;
  qw.q.resize(16);
  EXPECT_THROW(w4a8_scale_bias(qw, "x.o_proj", cols), Error);  // 8 inputs do not split in 16 chunks
}

// Independent E4M3 reference: the nearest of all finite codes, ties to the
// even code (even mantissa), saturating at ±448.
uint8_t e4m3_reference(float x) {
  const double a = std::min(std::fabs(static_cast<double>(x)), 448.0);
  int best = 0;
  double best_d = INFINITY;
  for (int c = 0; c < 0x7F; ++c) {
    const int e = c >> 3, m = c & 7;
    const double v = e == 0 ? m * std::ldexp(1.0, -9) : (1.0 + m / 8.0) * std::ldexp(1.0, e - 7);
    const double d = std::fabs(v - a);
    if (d < best_d || (d == best_d && (c & 1) == 0)) {
      best = c;
      best_d = d;
    }
  }
  return static_cast<uint8_t>(best | (std::signbit(x) ? 0x80 : 0));
}

TEST(Fp8, RoundToNearestEvenAndSaturation) {
  EXPECT_EQ(fp8_quantize_code(448.0f, 1.0f), 0x7E);
  EXPECT_EQ(fp8_quantize_code(1000.0f, 1.0f), 0x7E);   // saturates, never NaN
  EXPECT_EQ(fp8_quantize_code(-1000.0f, 1.0f), 0xFE);
  EXPECT_EQ(fp8_quantize_code(17.0f, 1.0f), e4m3_reference(16.0f));  // tie 16|18 → 16 (even mantissa)
  EXPECT_EQ(fp8_quantize_code(19.0f, 1.0f), e4m3_reference(20.0f));  // tie 18|20 → 20
  EXPECT_EQ(fp8_quantize_code(std::ldexp(1.0f, -10), 1.0f), 0x00);    // tie 0|2^-9 → 0
  EXPECT_EQ(fp8_quantize_code(3 * std::ldexp(1.0f, -10), 1.0f), 0x02);  // tie 2^-9|2^-8 → 2^-8
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> mag(-12.0f, 9.5f);
  for (int k = 0; k < 20000; ++k) {
    const float x = std::ldexp(1.0f, 0) * std::exp2(mag(rng)) * (k % 2 ? -1.0f : 1.0f);
    ASSERT_EQ(fp8_quantize_code(x, 1.0f), e4m3_reference(x)) << x;
  }
  // Per-channel weights: scale = amax/448, the largest element maps to 448.
  std::vector<float> w = {1.0f, -0.5f, 0.1f, 2.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  QuantizedWeight qw = quantize_weight_fp8_per_channel(w.data(), 2, 4);
  EXPECT_FLOAT_EQ(qw.scale[0], 2.0f / 448.0f);
  EXPECT_FLOAT_EQ(qw.scale[1], 1e-12f / 448.0f);
  EXPECT_EQ(static_cast<uint8_t>(qw.q[3]), 0x7E);
  EXPECT_FLOAT_EQ(dequantized_value(qw, 0, 0), 1.0f);
  EXPECT_EQ(dequantized_value(qw, 1, 2), 0.0f);
}

TEST(Mx, Fp8BlockByHand) {
  std::vector<float> x(40, 0.0f);
  x[0] = 1.0f;
  x[1] = 0.3f;   // v = 76.8 → p 6 → floor(9.6 + .5)/8·64 = 80 → 80/256 = 0.3125
  x[2] = -0.01f; // v = −2.56 → p 1 → floor(10.24+.5)/8·2 = 2.5 → −2.5/256
  x[35] = 3.0f;  // second (padded) block: e = 1 − 8 = −7
  std::vector<uint8_t> codes(40);
  std::vector<int> exps(2);
  mx_quantize_row(x.data(), 40, QDtype::MxFp8, codes.data(), exps.data());
  EXPECT_EQ(exps, (std::vector<int>{-8, -7}));
  EXPECT_EQ(codes[0], 0x78);  // 256 = 2^8: exponent field 15, mantissa 0
  EXPECT_EQ(f8e4m3_to_f32(codes[1]), 80.0f);
  EXPECT_EQ(f8e4m3_to_f32(codes[2]), -2.5f);
  EXPECT_EQ(f8e4m3_to_f32(codes[35]), 384.0f);
  QuantizedWeight qw = quantize_weight_mx(x.data(), 1, 40, QDtype::MxFp8);
  EXPECT_EQ(qw.group_size, 32);
  EXPECT_EQ(qw.groups(), 2);
  EXPECT_EQ(mx_biased_exponent(qw.scale[0]), 119);
  EXPECT_EQ(mx_biased_exponent(qw.scale[1]), 120);
  EXPECT_FLOAT_EQ(dequantized_value(qw, 0, 1), 0.3125f);
  // An all-zero block: e = −134 clipped to −127 (biased 0).
  std::vector<float> z(32, 0.0f);
  QuantizedWeight qz = quantize_weight_mx(z.data(), 1, 32, QDtype::MxFp8);
  EXPECT_EQ(mx_biased_exponent(qz.scale[0]), 0);
}

TEST(Mx, Fp4BlockByHand) {
  std::vector<float> x(32, 0.0f);
  // amax 6: e = floor(log2(6·8/7)) − 2 = 0; elements round half up on the E2M1 grid.
  const std::vector<float> in = {6.0f, 5.0f, 2.5f, 0.2f, 0.3f, -1.2f, -0.1f, 1.75f};
  const std::vector<float> want = {6.0f, 6.0f, 3.0f, 0.0f, 0.5f, -1.0f, -0.0f, 2.0f};
  std::copy(in.begin(), in.end(), x.begin());
  std::vector<uint8_t> codes(32);
  int e = 0;
  mx_quantize_row(x.data(), 32, QDtype::MxFp4, codes.data(), &e);
  EXPECT_EQ(e, 0);
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(fp4_e2m1_value(codes[i]), want[i]) << i;
  EXPECT_EQ(codes[6], 8);  // −0.0 keeps its sign bit
  // amax 7: 7·8/7 = 8 → e = 1; 7/2 = 3.5 → 4 → 8.
  x[0] = 7.0f;
  mx_quantize_row(x.data(), 32, QDtype::MxFp4, codes.data(), &e);
  EXPECT_EQ(e, 1);
  EXPECT_EQ(fp4_e2m1_value(codes[0]), 4.0f);
  std::vector<float> fq(x);
  fake_quant_mx(fq.data(), 1, 32, QDtype::MxFp4);
  EXPECT_EQ(fq[0], 8.0f);
  EXPECT_EQ(fq[1], 6.0f);  // 5/2 = 2.5 → 3 → 6
}

// W4A4_MXFP4_DUALSCALE by hand: dual blocks of 32 (one MX block each) over a
// 96-input row: amax 12 (dual 2), amax 0.9 (dual 0.15), all zeros (dual 0).
TEST(MxDualScale, WeightBlocksByHand) {
  std::vector<float> w(96, 0.0f);
  const std::vector<float> b0 = {12.0f, 5.0f, -3.0f, 0.7f}, b1 = {0.9f, 0.5f, -0.2f};
  std::copy(b0.begin(), b0.end(), w.begin());
  std::copy(b1.begin(), b1.end(), w.begin() + 32);
  const QuantizedWeight qw = quantize_weight_mxfp4_dualscale(w.data(), 1, 96, 32);
  ASSERT_EQ(qw.dual_scale.size(), 3u);
  EXPECT_EQ(qw.dual_scale[0], 2.0f);          // 12 / 6
  EXPECT_EQ(qw.dual_scale[1], 0.9f / 6.0f);   // float32, not a power of two
  EXPECT_EQ(qw.dual_scale[2], 0.0f);          // all-zero block (msModelSlim: 0, then 0/0 inside)
  // Block 0 / 2 = [6, 2.5, −1.5, 0.35]: exponent 0; 2.5 → 3 (half away), 0.35 → 0.5.
  // Block 1 / 0.15 = [6, 3.33, −1.33]: exponent 0; 3.33 → 3, −1.33 → −1.5.
  EXPECT_EQ(qw.scale[0], 1.0f);
  EXPECT_EQ(qw.scale[1], 1.0f);
  const std::vector<float> want0 = {12.0f, 6.0f, -3.0f, 1.0f};
  const std::vector<float> want1 = {0.9f, 0.45f, -0.225f};
  for (size_t i = 0; i < want0.size(); ++i) EXPECT_FLOAT_EQ(dequantized_value(qw, 0, i), want0[i]) << i;
  for (size_t i = 0; i < want1.size(); ++i) EXPECT_FLOAT_EQ(dequantized_value(qw, 0, 32 + i), want1[i]) << i;
  for (int64_t i = 64; i < 96; ++i) EXPECT_EQ(dequantized_value(qw, 0, i), 0.0f) << i;
  // Plain MXFP4 of block 1 (exponent −2, grid step 0.125 near 0.9) gives [1.0, 0.5, −0.25]: the dual scale puts
  // the block maximum on the grid's top value 6 exactly.
  const QuantizedWeight plain = quantize_weight_mx(w.data(), 1, 96, QDtype::MxFp4);
  EXPECT_FLOAT_EQ(dequantized_value(plain, 0, 32), 1.0f);
  EXPECT_FLOAT_EQ(dequantized_value(plain, 0, 34), -0.25f);
  // The activation path is the same arithmetic, per row.
  std::vector<float> x = w;
  fake_quant_mxfp4_dualscale(x.data(), 1, 96, 32);
  for (int64_t i = 0; i < 96; ++i) EXPECT_FLOAT_EQ(x[static_cast<size_t>(i)], dequantized_value(qw, 0, i)) << i;
  EXPECT_THROW(quantize_weight_mxfp4_dualscale(w.data(), 1, 96, 48), Error);  // not whole MX blocks
  w[5] = std::nanf("");
  EXPECT_THROW(quantize_weight_mxfp4_dualscale(w.data(), 1, 96, 32), Error);
}

// One dual block over two MX blocks: the dual scale comes from the whole
// dual block (12 / 6 = 2), then each inner block takes its own exponent.
TEST(MxDualScale, InnerBlocksNestInADualBlock) {
  std::vector<float> w(64, 0.0f);
  w[0] = 12.0f;
  w[32] = 0.9f;  // / 2 = 0.45: exponent floor(log2(0.45·8/7)) − 2 = −3; 0.45·8 = 3.6 → 4 → 0.5 → ×2 = 1.0
  w[33] = 0.3f;  // 0.15·8 = 1.2 → 1 → 0.125 → ×2 = 0.25
  const QuantizedWeight qw = quantize_weight_mxfp4_dualscale(w.data(), 1, 64, 64);
  ASSERT_EQ(qw.dual_scale, std::vector<float>{2.0f});
  EXPECT_EQ(qw.scale[1], 0.125f);
  EXPECT_FLOAT_EQ(dequantized_value(qw, 0, 0), 12.0f);
  EXPECT_FLOAT_EQ(dequantized_value(qw, 0, 32), 1.0f);
  EXPECT_FLOAT_EQ(dequantized_value(qw, 0, 33), 0.25f);
  // Rows quantized in two parts and appended equal the whole.
  std::vector<float> two(128);
  std::copy(w.begin(), w.end(), two.begin());
  std::copy(w.begin(), w.end(), two.begin() + 64);
  QuantizedWeight whole = quantize_weight_mxfp4_dualscale(two.data(), 2, 64, 64), parts;
  append_rows(parts, quantize_weight_mxfp4_dualscale(two.data(), 1, 64, 64));
  append_rows(parts, quantize_weight_mxfp4_dualscale(two.data() + 64, 1, 64, 64));
  EXPECT_EQ(parts.dual_scale, whole.dual_scale);
  EXPECT_EQ(parts.dual_block_size, 64);
  EXPECT_EQ(parts.q, whole.q);
}

// Dequantized value of element (o, i) of an MX weight.
double mx_value(const QuantizedWeight& qw, int64_t o, int64_t i) { return dequantized_value(qw, o, i); }

TEST(MxMethods, NearestE8M0ExponentByHand) {
  EXPECT_EQ(mx_nearest_exponent(1.0), 0);
  EXPECT_EQ(mx_nearest_exponent(std::pow(2.0, 0.25)), 0);
  EXPECT_EQ(mx_nearest_exponent(std::pow(2.0, 0.75)), 1);
  EXPECT_EQ(mx_nearest_exponent(std::pow(2.0, -2.3)), -2);
  // Ties (fractional part 0.5): floor + 1 when floor is even, floor when odd.
  EXPECT_EQ(mx_nearest_exponent(std::sqrt(2.0)), 1);          // floor 0
  EXPECT_EQ(mx_nearest_exponent(2.0 * std::sqrt(2.0)), 1);    // floor 1
  EXPECT_EQ(mx_nearest_exponent(std::sqrt(0.5)), -1);         // floor −1
  EXPECT_EQ(mx_nearest_exponent(std::sqrt(0.125)), -1);       // floor −2
  EXPECT_EQ(mx_nearest_exponent(0.0), 0);
}

TEST(MxMethods, CeilXExponentByHand) {
  // ceil(log2(amax/c + 9.6e-7)): the block maximum lands in (c/2, c].
  EXPECT_EQ(mx_ceil_x_exponent(7.25f, 7.25), 1);   // 1 + 9.6e-7 is just above 2^0
  EXPECT_EQ(mx_ceil_x_exponent(7.0f, 7.25), 0);
  EXPECT_EQ(mx_ceil_x_exponent(3.7f, 7.25), 0);
  EXPECT_EQ(mx_ceil_x_exponent(3.6f, 7.25), -1);
  EXPECT_EQ(mx_ceil_x_exponent(24.0f, 6.0), 3);    // 4 + 9.6e-7 is just above 2^2
  EXPECT_EQ(mx_ceil_x_exponent(23.9f, 6.0), 2);
  EXPECT_EQ(mx_ceil_x_exponent(0.0f, 7.25), -19);  // log2(9.6e-7) = −19.99
  EXPECT_EQ(mx_ceil_x_exponent(3.4e38f, 6.0), 125);  // clipped
  // One block [7, 1, 0.3, 0...] with c = 7.25: exponent 0, elements 6 (saturated), 1, 0.5.
  std::vector<float> w(32, 0.0f);
  w[0] = 7.0f;
  w[1] = 1.0f;
  w[2] = 0.3f;
  QuantizedWeight qw = quantize_weight_mx(w.data(), 1, 32, QDtype::MxFp4, {MxMethod::CeilX, 7.25});
  EXPECT_EQ(qw.scale, std::vector<float>{1.0f});
  EXPECT_EQ(mx_value(qw, 0, 0), 6.0);
  EXPECT_EQ(mx_value(qw, 0, 1), 1.0);
  EXPECT_EQ(mx_value(qw, 0, 2), 0.5);
  // minmax puts the same block at exponent 1 (7·8/7 = 8): 7 → 8, 1 → 1, 0.3 → 0.
  QuantizedWeight mm = quantize_weight_mx(w.data(), 1, 32, QDtype::MxFp4);
  EXPECT_EQ(mm.scale, std::vector<float>{2.0f});
  EXPECT_EQ(mx_value(mm, 0, 0), 8.0);
  EXPECT_EQ(mx_value(mm, 0, 2), 0.0);
  EXPECT_THROW(quantize_weight_mx(w.data(), 1, 32, QDtype::MxFp8, {MxMethod::CeilX, 7.25}), Error);
}

TEST(MxMethods, CeilXSearchByHand) {
  // Block [6, 3, 1.5, 0...]: c = 6 gives exponent 1 (6/6 + 9.6e-7 is above 2^0): 1.5 → 0.75 → 1.0 → 2, error 0.25;
  // every c in (6, 12) gives exponent 0, exact. The search takes the first exact candidate.
  std::vector<float> w(32, 0.0f);
  w[0] = 6.0f;
  w[1] = 3.0f;
  w[2] = 1.5f;
  EXPECT_EQ(mx_ceil_x_search(w.data(), 1, 32, 6.0, 7.0, 0.25), 6.25);
  EXPECT_EQ(mx_ceil_x_search(w.data(), 1, 32, 6.0, 6.1, 0.25), 6.0);  // a single (rounded) step: 6 only
  EXPECT_THROW(mx_ceil_x_search(w.data(), 1, 32, 7.0, 6.0, 0.25), Error);
}

TEST(MxMethods, FourOverSixByHand) {
  // Block 0 [4, 3, 0...]: to 6 → exponent −1 (4/6 = 2^−0.58), 4 → 3.0 (saturated at 6·2^−1), error 1;
  // to 4 → exponent 0, exact. Scale-to-4 wins.
  // Block 1 [12, 10, 0...]: to 6 → exponent 1: 12, 10 → 12 (5 rounds half away to 6), error 4; to 4 → 3 = 2^1.58 →
  // exponent 2: 12, 10 → 12 (2.5 → 3), error 4. A tie keeps scale-to-6.
  std::vector<float> w(64, 0.0f);
  w[0] = 4.0f;
  w[1] = 3.0f;
  w[32] = 12.0f;
  w[33] = 10.0f;
  QuantizedWeight qw = quantize_weight_mx(w.data(), 1, 64, QDtype::MxFp4, {MxMethod::FourOverSix});
  EXPECT_EQ(qw.scale, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(mx_value(qw, 0, 0), 4.0);
  EXPECT_EQ(mx_value(qw, 0, 1), 3.0);
  EXPECT_EQ(mx_value(qw, 0, 32), 12.0);
  EXPECT_EQ(mx_value(qw, 0, 33), 12.0);
}

TEST(MxMethods, MseRoundByHand) {
  // MXFP8, block 0 [500, 1, 0...]: floor exponent 0 saturates 500 at 448 (error 52²); ceil exponent 1 gives
  // 250 → 256 → 512 (error 12²) and 1 → 0.5 exact. Ceil wins.
  // Block 1 [300, 1, 0...]: floor exponent 0: 300 → 288 (error 144), 1 exact; ceil exponent 1: 150 → 144 → 288
  // (error 144), 0.5 exact. A tie keeps the floor exponent.
  std::vector<float> w(64, 0.0f);
  w[0] = 500.0f;
  w[1] = 1.0f;
  w[32] = 300.0f;
  w[33] = 1.0f;
  QuantizedWeight qw = quantize_weight_mx(w.data(), 1, 64, QDtype::MxFp8, {MxMethod::MseRound});
  EXPECT_EQ(qw.scale, (std::vector<float>{2.0f, 1.0f}));
  EXPECT_EQ(mx_value(qw, 0, 0), 512.0);
  EXPECT_EQ(mx_value(qw, 0, 1), 1.0);
  EXPECT_EQ(mx_value(qw, 0, 32), 288.0);
  QuantizedWeight mm = quantize_weight_mx(w.data(), 1, 64, QDtype::MxFp8);
  EXPECT_EQ(mx_value(mm, 0, 0), 448.0);
  EXPECT_THROW(quantize_weight_mx(w.data(), 1, 64, QDtype::MxFp4, {MxMethod::MseRound}), Error);
}

// On random weights with outliers every block's error is the smaller of the
// two candidates each method weighs, computed here from minmax-style
// quantizations at the candidate exponents (float64 sums).
TEST(MxMethods, SearchMethodsNeverWorseThanTheirCandidates) {
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t out = 16, in = 256;
  std::vector<float> w(static_cast<size_t>(out * in));
  for (size_t k = 0; k < w.size(); ++k) w[k] = nd(rng) * (k % 37 == 0 ? 20.0f : 1.0f);
  auto block_err = [&](const QuantizedWeight& qw, int64_t o, int64_t b) {
    double e = 0;
    for (int64_t i = b * 32; i < (b + 1) * 32; ++i) {
      const double d = w[static_cast<size_t>(o * in + i)] - mx_value(qw, o, i);
      e += d * d;
    }
    return e;
  };
  const QuantizedWeight mm8 = quantize_weight_mx(w.data(), out, in, QDtype::MxFp8);
  const QuantizedWeight mse = quantize_weight_mx(w.data(), out, in, QDtype::MxFp8, {MxMethod::MseRound});
  const QuantizedWeight mm4 = quantize_weight_mx(w.data(), out, in, QDtype::MxFp4);
  const QuantizedWeight fos = quantize_weight_mx(w.data(), out, in, QDtype::MxFp4, {MxMethod::FourOverSix});
  double t_mm8 = 0, t_mse = 0, t_mm4 = 0, t_fos = 0;
  int ceil_chosen = 0;
  for (int64_t o = 0; o < out; ++o)
    for (int64_t b = 0; b < in / 32; ++b) {
      EXPECT_LE(block_err(mse, o, b), block_err(mm8, o, b));  // floor exponent = minmax's for MXFP8
      const int64_t k = o * (in / 32) + b;
      EXPECT_TRUE(mse.scale[k] == mm8.scale[k] || mse.scale[k] == 2.0f * mm8.scale[k]);
      ceil_chosen += mse.scale[k] != mm8.scale[k];
      t_mm8 += block_err(mm8, o, b);
      t_mse += block_err(mse, o, b);
      t_mm4 += block_err(mm4, o, b);
      t_fos += block_err(fos, o, b);
    }
  EXPECT_GT(ceil_chosen, 0);
  EXPECT_LT(t_mse, t_mm8);
  EXPECT_LT(t_fos, t_mm4);
}

TEST(PerGroup, MinmaxByHand) {
  // One row, two groups of 2: sym int8 scales 2/127 and 4/127.
  std::vector<float> w = {2.0f, -1.0f, 0.5f, -4.0f};
  QuantizedWeight qw = quantize_weight_per_group_minmax(w.data(), 1, 4, 8, true, 2);
  EXPECT_EQ(qw.groups(), 2);
  EXPECT_EQ(qw.scale, (std::vector<float>{2.0f / 127.0f, 4.0f / 127.0f}));
  EXPECT_EQ(std::vector<int8_t>(qw.q.begin(), qw.q.end()), (std::vector<int8_t>{127, -64, 16, -127}));  // −63.5 → −64, 15.875 → 16
  // Asymmetric int4: group [0.5, −4] → scale 4.5/15, offset round(4/0.3) − 8 = 5.
  QuantizedWeight qa = quantize_weight_per_group_minmax(w.data(), 1, 4, 4, false, 2);
  EXPECT_FLOAT_EQ(qa.scale[1], 4.0f / 15.0f + 0.5f / 15.0f);
  EXPECT_EQ(qa.offset[1], 5.0f);
  EXPECT_NEAR(dequantized_value(qa, 0, 3), -4.0f, 0.15f);
  EXPECT_THROW(quantize_weight_per_group_minmax(w.data(), 1, 4, 8, true, 3), Error);
  std::vector<float> out(4);
  dequantize_weight(qw, out.data());
  EXPECT_FLOAT_EQ(out[3], -4.0f);
}

}  // namespace
}  // namespace lwq
