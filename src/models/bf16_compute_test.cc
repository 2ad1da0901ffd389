// quant --compute_dtype bf16 at the Linear (run_linear, docs/design.md
// "Compute dtype"): bfloat16-rounded inputs against the stored bf16 weight,
// float32 accumulation, the output rounded to bfloat16.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "models/decoder_layer.h"
#include "ops/gemm.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace lwq {
namespace {

constexpr int64_t kRows = 7, kIn = 96, kOut = 40;

// A layer holding one Linear "proj" with a bf16 weight and bias, kept as stored.
LayerWeights bf16_layer(std::vector<float>& w, std::vector<float>& b) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.0f, 0.5f);
  w.resize(kOut * kIn);
  b.resize(kOut);
  for (auto& v : w) v = round_to_bf16(n(rng));
  for (auto& v : b) v = round_to_bf16(n(rng));
  LayerWeights lw;
  lw.stored.emplace("proj.weight", tensor_from_f32(DType::BF16, {kOut, kIn}, w));
  lw.tensors["proj.bias"] = b;
  return lw;
}

std::vector<float> inputs(bool representable) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.0f, 3.0f);
  std::vector<float> x(kRows * kIn);
  for (auto& v : x) v = representable ? round_to_bf16(n(rng)) : n(rng);
  return x;
}

// Records what the executor was handed.
class Recording : public LinearExecutor {
 public:
  std::vector<float> seen;
  bool needs_float_weight(const std::string&) const override { return true; }
  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight, const float* bias,
           int64_t out, float* y) override {
    seen.assign(x, x + rows * in);
    LinearExecutor::run(name, x, rows, in, weight, bias, out, y);
  }
};

std::vector<float> run(const LayerWeights& lw, const std::vector<float>& x, ComputeDType d,
                       std::vector<float>* seen = nullptr) {
  Recording exec;
  exec.set_compute_dtype(d);
  std::vector<float> y(kRows * kOut);
  run_linear(lw, &exec, "proj", x.data(), kRows, kIn, lw.get("proj.bias").data(), kOut, y.data());
  if (seen) *seen = exec.seen;
  return y;
}

TEST(Bf16Compute, RoundsToNearestEven) {
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f), 1.0f);                   // tie: to the even 1.0
  EXPECT_EQ(round_to_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);     // tie: to the even neighbour above
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);  // above the tie
  EXPECT_EQ(round_to_bf16(-3.0f), -3.0f);
  EXPECT_TRUE(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(round_to_bf16(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  std::vector<float> v{1.0f + 0x1p-8f, 2.5f, 1e-3f};
  round_to_bf16(v.data(), v.size());
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], 2.5f);
  EXPECT_EQ(v[2], round_to_bf16(1e-3f));
}

// On bf16-representable inputs the bf16 path computes the same product as the
// f32 one (bf16 weights convert exactly; the same f32 kernel accumulates):
// its output is the f32 output rounded to bf16, bit for bit.
TEST(Bf16Compute, EqualsF32OnBf16RepresentableInputs) {
  std::vector<float> w, b;
  LayerWeights lw = bf16_layer(w, b);
  const std::vector<float> x = inputs(true);
  std::vector<float> seen;
  const std::vector<float> y32 = run(lw, x, ComputeDType::F32);
  const std::vector<float> y16 = run(lw, x, ComputeDType::BF16, &seen);
  EXPECT_EQ(seen, x);
  for (size_t i = 0; i < y32.size(); ++i) ASSERT_EQ(y16[i], round_to_bf16(y32[i])) << i;
}

// Otherwise the executor sees the inputs rounded to bf16 (so observers and
// fake quantization do), and the output differs from f32 by at most what
// rounding the inputs and the output to bf16 can make (unit roundoff 2^-8).
TEST(Bf16Compute, DiffersFromF32ByAtMostBf16Rounding) {
  std::vector<float> w, b;
  LayerWeights lw = bf16_layer(w, b);
  const std::vector<float> x = inputs(false);
  std::vector<float> seen;
  const std::vector<float> y32 = run(lw, x, ComputeDType::F32);
  const std::vector<float> y16 = run(lw, x, ComputeDType::BF16, &seen);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(seen[i], round_to_bf16(x[i])) << i;
  size_t differing = 0;
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t o = 0; o < kOut; ++o) {
      double abs_sum = std::fabs(b[o]);
      for (int64_t i = 0; i < kIn; ++i) abs_sum += std::fabs(double(w[o * kIn + i]) * x[r * kIn + i]);
      const size_t at = static_cast<size_t>(r * kOut + o);
      const double bound = 0x1p-8 * abs_sum + 0x1p-8 * std::fabs(y32[at]) + 1e-6 * abs_sum;
      EXPECT_LE(std::fabs(double(y16[at]) - y32[at]), bound) << r << "," << o;
      EXPECT_EQ(y16[at], round_to_bf16(y16[at]));  // a bf16 model's Linear output
      differing += y16[at] != y32[at];
    }
  EXPECT_GT(differing, y32.size() / 2) << "bf16 rounding is visible in the output";
}

// Without an executor (eval, plain forwards) and with an f32 one nothing is rounded.
TEST(Bf16Compute, F32IsUntouched) {
  std::vector<float> w, b;
  LayerWeights lw = bf16_layer(w, b);
  const std::vector<float> x = inputs(false);
  std::vector<float> seen, plain(kRows * kOut);
  const std::vector<float> y32 = run(lw, x, ComputeDType::F32, &seen);
  EXPECT_EQ(seen, x);
  run_linear(lw, nullptr, "proj", x.data(), kRows, kIn, b.data(), kOut, plain.data());
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(plain[i], y32[i], 1e-5f * (1 + std::fabs(y32[i])));
}

// The bf16×bf16→f32 kernel (oneDNN's where the CPU has AVX512-BF16) equals
// the f32 product of the same bf16 values up to summation order, and a float
// Linear of a bf16 forward (linear_from_layer with bf16 inputs) takes it.
TEST(Bf16Compute, Bf16GemmEqualsF32GemmUpToSummationOrder) {
  std::vector<float> w, b;
  LayerWeights lw = bf16_layer(w, b);
  for (int64_t rows : {int64_t{1}, kRows, int64_t{300}}) {  // 300 rows: a threaded product
    std::mt19937 rng(static_cast<unsigned>(rows));
    std::normal_distribution<float> n(0.0f, 3.0f);
    std::vector<float> x(rows * kIn);
    std::vector<uint16_t> xb(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = round_to_bf16(n(rng));
      xb[i] = f32_to_bf16(x[i]);
    }
    std::vector<float> y32(rows * kOut), y16(rows * kOut), yl(rows * kOut);
    matmul_nt(x.data(), rows, kIn, w.data(), kOut, y32.data(), b.data());
    matmul_nt_bf16(xb.data(), rows, kIn, lw.stored.at("proj.weight").data<uint16_t>(), kOut, y16.data(), b.data());
    linear_from_layer(lw, "proj.weight", x.data(), rows, kIn, b.data(), kOut, yl.data(), /*bf16_inputs=*/true);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < kOut; ++o) {
        double abs_sum = std::fabs(b[o]);
        for (int64_t i = 0; i < kIn; ++i) abs_sum += std::fabs(double(w[o * kIn + i]) * x[r * kIn + i]);
        const size_t at = static_cast<size_t>(r * kOut + o);
        ASSERT_NEAR(y16[at], y32[at], 2e-6 * abs_sum) << rows << ": " << r << "," << o;
        ASSERT_EQ(yl[at], y16[at]);
      }
  }
  RecordProperty("native_bf16_gemm", has_native_bf16_gemm() ? "yes" : "no");
}

// A weight held in f32 (as quarot or smoothing leave it) multiplied with both
// sides rounded to bf16, a block of rows at a time: the exact products of the
// rounded values, summed in f32 (the smoothing statistics under auto).
TEST(Bf16Compute, F32WeightRoundedToBf16ForStatistics) {
  const int64_t rows = 37, in = 2048, out = 2200;  // two blocks of weight rows (2048 + 152)
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::vector<float> w(out * in), x(rows * in), b(out);
  for (auto& v : w) v = n(rng);
  for (auto& v : x) v = 4.0f * n(rng);
  for (auto& v : b) v = n(rng);
  LayerWeights lw;
  lw.tensors["proj.weight"] = w;
  std::vector<float> y(rows * out);
  if (!has_native_bf16_gemm()) {
    EXPECT_FALSE(linear_bf16_rounded(lw, "proj.weight", x.data(), rows, in, b.data(), out, y.data()));
    GTEST_SKIP() << "no native bf16 GEMM here";
  }
  ASSERT_TRUE(linear_bf16_rounded(lw, "proj.weight", x.data(), rows, in, b.data(), out, y.data()));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double want = b[o], abs_sum = std::fabs(b[o]);
      for (int64_t i = 0; i < in; ++i) {
        const double p = double(round_to_bf16(w[o * in + i])) * round_to_bf16(x[r * in + i]);
        want += p, abs_sum += std::fabs(p);
      }
      ASSERT_NEAR(y[r * out + o], want, 2e-6 * abs_sum) << r << "," << o;
    }
  // Not held in f32: nothing done.
  LayerWeights stored = bf16_layer(w, b);
  EXPECT_FALSE(linear_bf16_rounded(stored, "proj.weight", x.data(), 1, kIn, nullptr, kOut, y.data()));
}

}  // namespace
}  // namespace lwq
