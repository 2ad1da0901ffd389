#include "quant/w8a8_export.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "quant/qparams.h"
#include "util/error.h"

namespace lwq {
namespace {

TEST(DeqScale, ProductAndBitPattern) {
  std::vector<float> ws = {0.5f, 0.25f, 3.0f};
  std::vector<float> deq = deq_scale_f32(0.125f, ws);
  EXPECT_EQ(deq, (std::vector<float>{0.0625f, 0.03125f, 0.375f}));

  std::vector<float> values = {1.0f, 0.5f, 3.4e-5f, 1e-38f, -1.0f};
  std::vector<int64_t> bits = deq_scale_as_int64_bits(values);
  EXPECT_EQ(bits[0], 0x3F800000);  // 1065353216
  EXPECT_EQ(bits[1], 0x3F000000);
  EXPECT_EQ(bits[4], -1082130432);  // 0xBF800000 as int32, sign-extended
  EXPECT_EQ(deq_scale_from_int64_bits(bits), values);  // exact round trip
  for (size_t i = 0; i < 4; ++i) EXPECT_GT(bits[i], 0);
}

QuantizedWeight weight_2x3() {
  QuantizedWeight qw;
  qw.out = 2;
  qw.in = 3;
  qw.q = {1, 2, 3,     // row sum 6
          -4, 0, 5};   // row sum 1
  qw.scale = {0.5f, 1.0f};
  qw.offset = {0, 0};
  return qw;
}

TEST(QuantBias, HandWorked) {
  QuantizedWeight qw = weight_2x3();
  std::vector<float> bias = {1.0f, -2.0f}, deq = {0.25f, 0.5f};
  // row 0: 1/0.25 − 6·(−3) = 4 + 18 = 22;  row 1: −2/0.5 − 1·(−3) = −4 + 3 = −1
  EXPECT_EQ(quant_bias(qw, bias, deq, -3.0f), (std::vector<int32_t>{22, -1}));
  // No bias: just the offset correction.
  EXPECT_EQ(quant_bias(qw, {}, deq, -3.0f), (std::vector<int32_t>{18, 3}));
  // Symmetric activations (offset 0) without bias give zeros.
  EXPECT_EQ(quant_bias(qw, {}, deq, 0.0f), (std::vector<int32_t>{0, 0}));
  // Ties round to even: 0.625/0.25 = 2.5 → 2, 0.75/0.5 = 1.5 → 2.
  std::vector<float> tie_bias = {0.625f, 0.75f};
  EXPECT_EQ(quant_bias(qw, tie_bias, deq, 0.0f), (std::vector<int32_t>{2, 2}));
}

TEST(QuantBias, RejectsBadInput) {
  QuantizedWeight qw = weight_2x3();
  std::vector<float> deq = {0.25f, 0.5f}, short_bias = {1.0f}, short_deq = {1.0f};
  EXPECT_THROW(quant_bias(qw, short_bias, deq, 0.0f), Error);
  EXPECT_THROW(quant_bias(qw, {}, short_deq, 0.0f), Error);
  std::vector<float> huge_bias = {1.0f, 1e6f}, tiny_deq = {0.25f, 1e-7f};
  EXPECT_THROW(quant_bias(qw, huge_bias, tiny_deq, 0.0f), Error);
}

TEST(RoundToDtype, ServingDtypes) {
  const float third = 1.0f / 3.0f;
  EXPECT_EQ(round_to_dtype(third, DType::BF16), 0.333984375f);     // bf16 0x3EAB
  EXPECT_EQ(round_to_dtype(third, DType::F16), 0.333251953125f);   // f16 0x3555
  EXPECT_EQ(round_to_dtype(third, DType::F32), third);
  EXPECT_EQ(round_to_dtype(0.5f, DType::BF16), 0.5f);
  EXPECT_THROW(round_to_dtype(third, DType::I8), Error);
  EXPECT_EQ(serving_dtype_of(DType::BF16), DType::BF16);
  EXPECT_EQ(serving_dtype_of(DType::F16), DType::F16);
  EXPECT_EQ(serving_dtype_of(DType::F32), DType::F16);
  EXPECT_THROW(serving_dtype_of(DType::I32), Error);
}

// (q_x·Wqᵀ + quant_bias)·deq_scale must reproduce x·Wᵀ + b up to the
// quantization error of x and W, with an independent double-precision check.
void check_inference_identity(bool asym_act, DType serving) {
  const int64_t rows = 16, in = 64, out = 24;
  std::mt19937 rng(asym_act ? 11 : 12);
  std::uniform_real_distribution<float> xd(asym_act ? -1.0f : -3.0f, 3.0f), wd(-0.5f, 0.5f), bd(-1.0f, 1.0f);
  std::vector<float> x(rows * in), w(out * in), b(out);
  for (auto& v : x) v = xd(rng);
  for (auto& v : w) v = wd(rng);
  for (auto& v : b) v = bd(rng);

  float mn = *std::min_element(x.begin(), x.end()), mx = *std::max_element(x.begin(), x.end());
  QParams ap = int_qparams({&mn, 1}, {&mx, 1}, 8, !asym_act);
  const float in_scale = round_to_dtype(ap.scale[0], serving), in_offset = ap.offset[0];
  QuantizedWeight qw = quantize_weight_per_channel_minmax(w.data(), out, in, 8, true);
  std::vector<float> deq = deq_scale_f32(in_scale, qw.scale);
  std::vector<int32_t> qb = quant_bias(qw, b, deq, in_offset);

  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int8_t> qx(in);
    std::vector<double> x_err(in);
    for (int64_t i = 0; i < in; ++i) {
      qx[i] = quantize_int(x[r * in + i], in_scale, in_offset, 8);
      x_err[i] = std::fabs(x[r * in + i] - (qx[i] - in_offset) * double(in_scale));
      EXPECT_LE(x_err[i], in_scale * 0.5 * 1.01 + std::fabs(in_scale - ap.scale[0]) * 256);
    }
    for (int64_t o = 0; o < out; ++o) {
      int64_t acc = qb[o];
      double exact = b[o], bound = deq[o] * 0.5 + 1e-5;
      for (int64_t i = 0; i < in; ++i) {
        acc += int64_t{qx[i]} * qw.q[o * in + i];
        exact += double(x[r * in + i]) * w[o * in + i];
        double w_err = std::fabs(w[o * in + i] - qw.q[o * in + i] * double(qw.scale[o]));
        bound += std::fabs(w[o * in + i]) * x_err[i] + std::fabs(x[r * in + i]) * w_err + x_err[i] * w_err;
      }
      double served = double(acc) * deq[o];
      EXPECT_NEAR(served, exact, bound) << "row " << r << " out " << o;
      // The bound is meaningful: far below the output magnitude scale.
      EXPECT_LT(bound, 0.5);
    }
  }
}

TEST(W8A8Export, InferenceIdentityAsymmetricActivations) { check_inference_identity(true, DType::F32); }
TEST(W8A8Export, InferenceIdentitySymmetricActivations) { check_inference_identity(false, DType::F32); }
TEST(W8A8Export, InferenceIdentityWithBf16RoundedInputScale) { check_inference_identity(true, DType::BF16); }
TEST(W8A8Export, InferenceIdentityWithF16RoundedInputScale) { check_inference_identity(true, DType::F16); }

}  // namespace
}  // namespace lwq
