// The serving arithmetic of deployed_linear.h against references that share
// no code with it: a hand-computed W8A8 example (every value a binary
// fraction, so the result is exact), and a double-precision x·Wᵀ + b with a
// per-element bound on the quantization error.
#include "eval/deployed_linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quant/qparams.h"
#include "quant/w8a8_export.h"
#include "quant/weight_quant.h"
#include "util/error.h"

namespace lwq {
namespace {

// W rows have max |w| = 127/64 and 127/128, so the symmetric per-channel
// scales are 1/64 and 1/128 and Wq = [[127, -64, 32], [-127, 32, 0]].
// input_scale 1/32, input_offset -32: q_x = round_half_even(32·x) - 32.
DeployedLinear tiny_w8a8() {
  const float w[] = {127.0f / 64, -1.0f, 0.5f, -127.0f / 128, 0.25f, 0.0f};
  const std::vector<float> bias = {0.5f, -0.25f};
  QuantizedWeight qw = quantize_weight_per_channel_minmax(w, 2, 3, 8, /*symmetric=*/true);
  EXPECT_EQ(std::vector<int8_t>(qw.q.begin(), qw.q.end()), (std::vector<int8_t>{127, -64, 32, -127, 32, 0}));
  EXPECT_EQ(qw.scale, (std::vector<float>{1.0f / 64, 1.0f / 128}));
  DeployedLinear lin;
  lin.name = "tiny";
  lin.type = "W8A8";
  lin.out = 2;
  lin.in = 3;
  lin.weight.assign(qw.q.begin(), qw.q.end());
  lin.input_scale = 1.0f / 32;
  lin.input_offset = -32.0f;
  std::vector<float> deq = deq_scale_f32(lin.input_scale, qw.scale);
  EXPECT_EQ(deq, (std::vector<float>{1.0f / 2048, 1.0f / 4096}));
  // quant_bias = bias/deq - offset·ΣWq: 0.5·2048 + 32·95 = 4064; -0.25·4096 + 32·(-95) = -4064.
  lin.quant_bias = quant_bias(qw, bias, deq, lin.input_offset);
  EXPECT_EQ(lin.quant_bias, (std::vector<int32_t>{4064, -4064}));
  // Through the int64 encoding the folder stores (spec §3.5).
  lin.deq_scale = deq_scale_from_int64_bits(deq_scale_as_int64_bits(deq));
  lin.bias = bias;  // stored as FLOAT beside quant_bias; the kernel must not add it again
  return lin;
}

TEST(DeployedLinear, W8A8TinyExampleExact) {
  DeployedLinear lin = tiny_w8a8();
  const float x[] = {
      1.0f, -0.5f, 0.25f,    // q_x = [0, -48, -24], inside the range
      8.0f, -8.0f, 0.0f,     // 256-32 and -256-32 saturate: q_x = [127, -128, -32]
      0.046875f, 0.0f, 0.0f  // 1.5 - 32 = -30.5 rounds half to even: q_x = [-30, -32, -32]
  };
  float y[6];
  deployed_linear_forward(lin, x, 3, y);
  // Row 0: acc = [2304, -1536]; (2304+4064)/2048, (-1536-4064)/4096. Equals the float
  // product x·Wᵀ + b exactly (3.109375, -1.3671875) since nothing is rounded.
  EXPECT_EQ(y[0], 3.109375f);
  EXPECT_EQ(y[1], -1.3671875f);
  // Row 1: acc = [127·127 + 128·64 - 32·32, -127·127 - 128·32] = [23297, -20225].
  EXPECT_EQ(y[2], (23297.0f + 4064.0f) / 2048.0f);
  EXPECT_EQ(y[3], (-20225.0f - 4064.0f) / 4096.0f);
  // Row 2: acc = [-30·127 + 32·64 - 32·32, 30·127 - 32·32] = [-2786, 2786].
  EXPECT_EQ(y[4], (-2786.0f + 4064.0f) / 2048.0f);
  EXPECT_EQ(y[5], (2786.0f - 4064.0f) / 4096.0f);
}

TEST(DeployedLinear, W8A8TinyExampleReactsToEachParameter) {
  const float x[] = {1.0f, -0.5f, 0.25f};
  float y[2];
  DeployedLinear lin = tiny_w8a8();
  lin.input_offset = 0.0f;  // q_x = [32, -16, 8]: acc0 = 4064 + 1024 + 256; quant_bias still corrects for -32
  deployed_linear_forward(lin, x, 1, y);
  EXPECT_EQ(y[0], (5344.0f + 4064.0f) / 2048.0f);
  lin = tiny_w8a8();
  lin.deq_scale[1] = -lin.deq_scale[1];
  deployed_linear_forward(lin, x, 1, y);
  EXPECT_EQ(y[1], 1.3671875f);
  lin = tiny_w8a8();
  lin.quant_bias[0] += 2048;  // one unit of the output
  deployed_linear_forward(lin, x, 1, y);
  EXPECT_EQ(y[0], 4.109375f);
}

// ---- random layers against a double-precision reference ----

struct Problem {
  int64_t out, in, rows;
  std::vector<float> w, bias, x;
};

Problem random_problem(int64_t out, int64_t in, int64_t rows, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.0f);
  Problem p{out, in, rows, {}, {}, {}};
  p.w.resize(static_cast<size_t>(out * in));
  for (auto& v : p.w) v = 0.05f * n(rng);
  p.w[3] = 0.6f;  // an outlier weight makes row 0's scale coarse
  p.bias.resize(static_cast<size_t>(out));
  for (auto& v : p.bias) v = 0.3f * n(rng);
  p.x.resize(static_cast<size_t>(rows * in));
  for (auto& v : p.x) v = n(rng) + 0.5f;  // asymmetric activations: a non-zero input_offset
  p.x[7] = 6.0f;                          // an activation outlier
  return p;
}

// y_ref = x·Wᵀ + b in double.
std::vector<double> reference(const Problem& p) {
  std::vector<double> y(static_cast<size_t>(p.rows * p.out));
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t o = 0; o < p.out; ++o) {
      double acc = p.bias[static_cast<size_t>(o)];
      for (int64_t i = 0; i < p.in; ++i)
        acc += static_cast<double>(p.x[static_cast<size_t>(r * p.in + i)]) * p.w[static_cast<size_t>(o * p.in + i)];
      y[static_cast<size_t>(r * p.out + o)] = acc;
    }
  return y;
}

// Bound of |y - y_ref| for an input error of at most x_err[r]·... per element
// and a weight error of at most w_err[o] per element:
//   Σ_i (x_err[r]·|W[o,i]| + (|x[r,i]| + x_err[r])·w_err[o]) + extra[o] + float rounding.
std::vector<double> error_bound(const Problem& p, const std::vector<double>& x_err, const std::vector<double>& w_err,
                                const std::vector<double>& extra) {
  std::vector<double> b(static_cast<size_t>(p.rows * p.out));
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t o = 0; o < p.out; ++o) {
      double s = extra[static_cast<size_t>(o)], mag = std::fabs(p.bias[static_cast<size_t>(o)]);
      for (int64_t i = 0; i < p.in; ++i) {
        double xa = std::fabs(p.x[static_cast<size_t>(r * p.in + i)]);
        double wa = std::fabs(p.w[static_cast<size_t>(o * p.in + i)]);
        s += x_err[static_cast<size_t>(r)] * wa + (xa + x_err[static_cast<size_t>(r)]) * w_err[static_cast<size_t>(o)];
        mag += (xa + x_err[static_cast<size_t>(r)]) * (wa + w_err[static_cast<size_t>(o)]);
      }
      b[static_cast<size_t>(r * p.out + o)] = s + 1e-5 * mag;
    }
  return b;
}

// Every element within its bound, and the layer not trivially exact: the
// total error is a sizeable part of the total bound (a broken kernel would
// typically exceed it by orders of magnitude).
void expect_within(const std::vector<float>& y, const std::vector<double>& ref, const std::vector<double>& bound,
                   const std::string& what) {
  double err_sum = 0, bound_sum = 0, ref_sum = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    double err = std::fabs(y[i] - ref[i]);
    ASSERT_LE(err, bound[i]) << what << " element " << i << ": y " << y[i] << " reference " << ref[i];
    err_sum += err;
    bound_sum += bound[i];
    ref_sum += std::fabs(ref[i]);
  }
  EXPECT_GT(err_sum, 0.01 * bound_sum) << what << ": suspiciously exact";
  EXPECT_LT(bound_sum, 0.5 * ref_sum) << what << ": the bound is too loose to test anything";
}

TEST(DeployedLinear, W8A8MatchesFloatWithinQuantizationError) {
  Problem p = random_problem(24, 96, 10, 1);
  float lo = *std::min_element(p.x.begin(), p.x.end()), hi = *std::max_element(p.x.begin(), p.x.end());
  QParams act = int_qparams(std::vector<float>{lo}, std::vector<float>{hi}, 8, /*symmetric=*/false);
  QuantizedWeight qw = quantize_weight_per_channel_minmax(p.w.data(), p.out, p.in, 8, true);
  DeployedLinear lin;
  lin.name = "random";
  lin.type = "W8A8";
  lin.out = p.out;
  lin.in = p.in;
  lin.weight.assign(qw.q.begin(), qw.q.end());
  // As the exporter does (fact 18): input_scale rounded to the serving dtype first.
  lin.input_scale = round_to_dtype(act.scale[0], serving_dtype_of(DType::F32));
  lin.input_offset = act.offset[0];
  lin.deq_scale = deq_scale_f32(lin.input_scale, qw.scale);
  lin.quant_bias = quant_bias(qw, p.bias, lin.deq_scale, lin.input_offset);
  std::vector<float> y(static_cast<size_t>(p.rows * p.out));
  deployed_linear_forward(lin, p.x.data(), p.rows, y.data());
  // Activation error: half a step, plus up to 2^-11 of 256 steps at the range ends
  // because the fp16-rounded scale may cut the calibrated range (saturation).
  std::vector<double> x_err(static_cast<size_t>(p.rows), 0.65 * lin.input_scale);
  std::vector<double> w_err(qw.scale.begin(), qw.scale.end()), bias_err(static_cast<size_t>(p.out));
  for (auto& e : w_err) e *= 0.5;
  for (int64_t o = 0; o < p.out; ++o) bias_err[static_cast<size_t>(o)] = 0.5 * lin.deq_scale[static_cast<size_t>(o)];
  expect_within(y, reference(p), error_bound(p, x_err, w_err, bias_err), "W8A8");
}

TEST(DeployedLinear, W8A8DynamicMatchesFloatWithinQuantizationError) {
  Problem p = random_problem(16, 80, 9, 2);
  QuantizedWeight qw = quantize_weight_per_channel_minmax(p.w.data(), p.out, p.in, 8, true);
  DeployedLinear lin;
  lin.name = "random";
  lin.type = "W8A8_DYNAMIC";
  lin.out = p.out;
  lin.in = p.in;
  lin.weight.assign(qw.q.begin(), qw.q.end());
  lin.weight_scale = qw.scale;
  lin.weight_offset.assign(static_cast<size_t>(p.out), 0.0f);
  lin.bias = p.bias;
  std::vector<float> y(static_cast<size_t>(p.rows * p.out));
  deployed_linear_forward(lin, p.x.data(), p.rows, y.data());
  std::vector<double> x_err(static_cast<size_t>(p.rows));  // half a per-token step: amax/127/2
  for (int64_t r = 0; r < p.rows; ++r) {
    double amax = 0;
    for (int64_t i = 0; i < p.in; ++i) amax = std::max(amax, std::fabs(double(p.x[static_cast<size_t>(r * p.in + i)])));
    x_err[static_cast<size_t>(r)] = 0.5 * amax / 127.0;
  }
  std::vector<double> w_err(qw.scale.begin(), qw.scale.end());
  for (auto& e : w_err) e *= 0.5;
  expect_within(y, reference(p), error_bound(p, x_err, w_err, std::vector<double>(static_cast<size_t>(p.out))),
                "W8A8_DYNAMIC");
}

void check_w8a16(bool symmetric) {
  Problem p = random_problem(20, 64, 7, symmetric ? 3 : 4);
  if (!symmetric)
    for (auto& v : p.w) v += 0.03f;  // a skewed row range: the asymmetric offset matters
  QuantizedWeight qw = quantize_weight_per_channel_minmax(p.w.data(), p.out, p.in, 8, symmetric);
  DeployedLinear lin;
  lin.name = "random";
  lin.type = "W8A16";
  lin.out = p.out;
  lin.in = p.in;
  lin.weight.assign(qw.q.begin(), qw.q.end());
  lin.weight_scale = qw.scale;
  lin.weight_offset = qw.offset;
  lin.bias = p.bias;
  if (!symmetric) {
    bool any_offset = false;
    for (float o : qw.offset) any_offset = any_offset || o != 0.0f;
    ASSERT_TRUE(any_offset);
  }
  std::vector<float> y(static_cast<size_t>(p.rows * p.out));
  deployed_linear_forward(lin, p.x.data(), p.rows, y.data());
  std::vector<double> w_err(qw.scale.begin(), qw.scale.end());
  for (auto& e : w_err) e *= 0.5;
  expect_within(y, reference(p),
                error_bound(p, std::vector<double>(static_cast<size_t>(p.rows)), w_err,
                            std::vector<double>(static_cast<size_t>(p.out))),
                symmetric ? "W8A16 sym" : "W8A16 asym");
}

TEST(DeployedLinear, W8A16SymmetricMatchesFloatWithinQuantizationError) { check_w8a16(true); }
TEST(DeployedLinear, W8A16AsymmetricMatchesFloatWithinQuantizationError) { check_w8a16(false); }

// W4A4_MXFP4_DUALSCALE by hand, one output, 64 inputs: Ŵ[0] = e2m1(1)·2^0·3 = 3,
// Ŵ[32] = e2m1(1)·2^-1·3 = 1.5, others 0; bias 0.5. x[0] = 12, x[32] = 0.9,
// x[33] = 0.3. The activations take the weight's dual blocks.
TEST(DeployedLinear, W4A4Mxfp4DualScaleByHand) {
  DeployedLinear lin;
  lin.name = "dual";
  lin.type = "W4A4_MXFP4_DUALSCALE";
  lin.out = 1;
  lin.in = 64;
  lin.weight.assign(64, 0);
  lin.weight[0] = lin.weight[32] = 2;  // E2M1 code 2 = 1.0
  lin.weight_scale = {1.0f, 0.5f};
  lin.weight_offset = {0.0f, 0.0f};
  lin.group_size = 32;
  lin.bias = {0.5f};
  std::vector<float> x(64, 0.0f);
  x[0] = 12.0f;
  x[32] = 0.9f;
  x[33] = 0.3f;
  float y = 0.0f;
  // One dual block of 64: s = 2; x/2 in MX blocks: 6 → 6 (e 0), 0.45 → 0.5 and 0.15 → 0.125 (e −3);
  // x̂ = [12, …, 1.0, 0.25, …]; y = 12·3 + 1.0·1.5 + 0.5 = 38.
  lin.weight_dual_scale = {3.0f};
  lin.dual_block_size = 64;
  deployed_linear_forward(lin, x.data(), 1, &y);
  EXPECT_FLOAT_EQ(y, 38.0f);
  // Dual blocks of 32: the second block gets s = 0.15, so 0.9 and 0.3 are exact (6 and 2 on the grid);
  // y = 12·3 + 0.9·1.5 + 0.5 = 37.85.
  lin.weight_dual_scale = {3.0f, 3.0f};
  lin.dual_block_size = 32;
  deployed_linear_forward(lin, x.data(), 1, &y);
  EXPECT_NEAR(y, 37.85f, 1e-5);
}

TEST(DeployedLinear, UnknownTypeThrowsNamingTheLinear) {
  DeployedLinear lin;
  lin.name = "model.layers.0.mlp.up_proj";
  lin.type = "W4A4_FOO";
  lin.out = lin.in = 1;
  lin.weight = {1};
  float x = 1, y = 0;
  try {
    deployed_linear_forward(lin, &x, 1, &y);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("W4A4_FOO"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lwq
