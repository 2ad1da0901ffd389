// ssz, GPTQ and the histogram observer against hand-worked values and exact
// float64 reference implementations written independently here.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "quant/gptq.h"
#include "quant/histogram.h"
#include "quant/ssz.h"
#include "util/error.h"

namespace lwq {
namespace {

TEST(Ssz, HandWorkedRowConverges) {
  // int4: minmax s0 = 1/7, codes (7, 4); least squares s = (7 + 0.6·4)/(49 + 16)
  // = 9.4/65 keeps the codes, so the second iteration changes nothing.
  const std::vector<float> w = {1.0f, 0.6f};
  SszResult r = quantize_weight_ssz(w.data(), 1, 2, 4, 50);
  EXPECT_FLOAT_EQ(r.weight.scale[0], 9.4f / 65.0f);
  EXPECT_EQ(std::vector<int8_t>(r.weight.q.begin(), r.weight.q.end()), (std::vector<int8_t>{7, 4}));
  EXPECT_EQ(r.iterations, 2);
  const double s = 9.4 / 65.0;
  EXPECT_NEAR(r.mse_final, ((1 - 7 * s) * (1 - 7 * s) + (0.6 - 4 * s) * (0.6 - 4 * s)) / 2, 1e-9);
  EXPECT_NEAR(r.mse_minmax, std::pow(0.6 - 4.0 / 7.0, 2) / 2, 1e-9);
  // step 1 stops after the first iteration with the same answer here.
  EXPECT_EQ(quantize_weight_ssz(w.data(), 1, 2, 4, 1).iterations, 1);
  EXPECT_THROW(quantize_weight_ssz(w.data(), 1, 2, 4, 0), Error);
}

TEST(Ssz, NeverWorseThanMinmaxAndAFixedPoint) {
  std::mt19937 rng(3);
  std::student_t_distribution<float> heavy(3.0f);
  const int64_t out = 64, in = 256;
  std::vector<float> w(out * in);
  for (auto& v : w) v = heavy(rng);
  for (int bits : {8, 4}) {
    SszResult r = quantize_weight_ssz(w.data(), out, in, bits, 50);
    QuantizedWeight mm = quantize_weight_per_channel_minmax(w.data(), out, in, bits, true);
    EXPECT_LT(r.mse_final, r.mse_minmax);
    EXPECT_LE(r.iterations, 50);
    for (int64_t o = 0; o < out; ++o) {
      double e_ssz = 0, e_mm = 0, num = 0, den = 0;
      for (int64_t i = 0; i < in; ++i) {
        const double x = w[o * in + i];
        e_ssz += std::pow(x - dequantized_value(r.weight, o, i), 2);
        e_mm += std::pow(x - dequantized_value(mm, o, i), 2);
        num += x * r.weight.q[o * in + i];
        den += static_cast<double>(r.weight.q[o * in + i]) * r.weight.q[o * in + i];
      }
      EXPECT_LE(e_ssz, e_mm * (1 + 1e-6)) << o;
      // Converged: the least-squares scale of the final codes is (nearly) the scale itself.
      EXPECT_NEAR(num / den, r.weight.scale[o], 1e-3 * r.weight.scale[o]) << o;
    }
  }
}

// ---- GPTQ reference: textbook column-by-column sweep in float64 ----

// Inverse by Gauss-Jordan, then the upper Cholesky factor U with A = UᵀU.
std::vector<double> reference_hinv(std::vector<double> h, int n) {
  std::vector<double> inv(n * n, 0.0);
  for (int i = 0; i < n; ++i) inv[i * n + i] = 1.0;
  for (int c = 0; c < n; ++c) {
    const double p = h[c * n + c];
    for (int j = 0; j < n; ++j) {
      h[c * n + j] /= p;
      inv[c * n + j] /= p;
    }
    for (int r = 0; r < n; ++r)
      if (r != c) {
        const double f = h[r * n + c];
        for (int j = 0; j < n; ++j) {
          h[r * n + j] -= f * h[c * n + j];
          inv[r * n + j] -= f * inv[c * n + j];
        }
      }
  }
  std::vector<double> u(n * n, 0.0);
  for (int i = 0; i < n; ++i) {
    double d = inv[i * n + i];
    for (int k = 0; k < i; ++k) d -= u[k * n + i] * u[k * n + i];
    u[i * n + i] = std::sqrt(d);
    for (int j = i + 1; j < n; ++j) {
      double s = inv[i * n + j];
      for (int k = 0; k < i; ++k) s -= u[k * n + i] * u[k * n + j];
      u[i * n + j] = s / u[i * n + i];
    }
  }
  return u;
}

struct RefParams {
  double scale, offset;
};

RefParams ref_params(const double* row, int len, int bits, bool sym) {
  double mn = 0, mx = 0;
  for (int i = 0; i < len; ++i) {
    mn = std::min(mn, row[i]);
    mx = std::max(mx, row[i]);
  }
  if (sym) return {std::max(std::max(-mn, mx) / ((1 << (bits - 1)) - 1), 1.1920929e-07), 0.0};
  const double s = std::max((mx - mn) / ((1 << bits) - 1), 1.1920929e-07);
  return {s, std::nearbyint(-mn / s) - (1 << (bits - 1))};
}

std::vector<double> reference_gptq(std::vector<double> w, int out, int in, std::vector<double> h, int bits, bool sym,
                                   int g, double percdamp) {
  double mean = 0;
  for (int i = 0; i < in; ++i) mean += h[i * in + i] / in;
  for (int i = 0; i < in; ++i) h[i * in + i] += percdamp * mean;
  std::vector<double> u = reference_hinv(h, in);
  std::vector<RefParams> p(out);
  if (g == 0)
    for (int o = 0; o < out; ++o) p[o] = ref_params(&w[o * in], in, bits, sym);
  std::vector<double> deq(out * in);
  const double lo = -(1 << (bits - 1)), hi = (1 << (bits - 1)) - 1;
  for (int j = 0; j < in; ++j) {
    if (g > 0 && j % g == 0)
      for (int o = 0; o < out; ++o) p[o] = ref_params(&w[o * in + j], g, bits, sym);
    for (int o = 0; o < out; ++o) {
      const double x = w[o * in + j];
      const double q = std::clamp(std::nearbyint(x / p[o].scale + p[o].offset), lo, hi);
      deq[o * in + j] = (q - p[o].offset) * p[o].scale;
      const double err = (x - deq[o * in + j]) / u[j * in + j];
      for (int k = j + 1; k < in; ++k) w[o * in + k] -= err * u[j * in + k];
    }
  }
  return deq;
}

struct Problem {
  int out, in, rows;
  std::vector<float> w, x;
  std::vector<double> h;
};

Problem make_problem(int out, int in, int rows, unsigned seed) {
  Problem p{out, in, rows, {}, {}, {}};
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  p.w.resize(out * in);
  for (auto& v : p.w) v = nd(rng);
  p.x.resize(rows * in);
  // Correlated inputs with a few outlier channels: where GPTQ helps.
  for (int r = 0; r < rows; ++r) {
    const float common = nd(rng);
    for (int i = 0; i < in; ++i) p.x[r * in + i] = nd(rng) + 0.8f * common + (i % 7 == 0 ? 4.0f * nd(rng) : 0.0f);
  }
  HessianAccumulator acc(in);
  acc.add(p.x.data(), rows / 2);
  acc.add(p.x.data() + (rows / 2) * in, rows - rows / 2);
  p.h = acc.hessian();
  return p;
}

TEST(Gptq, HessianIsTwoOverNXtX) {
  Problem p = make_problem(2, 5, 40, 1);
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) {
      double s = 0;
      for (int r = 0; r < 40; ++r) s += static_cast<double>(p.x[r * 5 + i]) * p.x[r * 5 + j];
      EXPECT_NEAR(p.h[i * 5 + j], 2.0 * s / 40.0, 1e-4 * (1 + std::fabs(s))) << i << "," << j;
    }
  HessianAccumulator empty(3);
  EXPECT_THROW(empty.hessian(), Error);
}

TEST(Gptq, InverseCholeskyUpper) {
  Problem p = make_problem(2, 12, 100, 2);
  std::vector<double> u;
  ASSERT_TRUE(inverse_cholesky_upper(p.h, 12, u));
  std::vector<double> ref = reference_hinv(p.h, 12);
  for (int k = 0; k < 144; ++k) EXPECT_NEAR(u[k], ref[k], 1e-9 * (1 + std::fabs(ref[k])));
  std::vector<double> neg(9, 0.0);
  for (int i = 0; i < 3; ++i) neg[i * 3 + i] = -1.0;
  EXPECT_FALSE(inverse_cholesky_upper(neg, 3, u));
}

void expect_matches_reference(int bits, bool sym, int g, int block) {
  SCOPED_TRACE(testing::Message() << "bits " << bits << " sym " << sym << " group " << g << " block " << block);
  Problem p = make_problem(16, 64, 256, 5 + bits + g);
  GptqOptions opt{bits, sym, g, 0.01, block};
  QuantizedWeight qw = gptq_quantize(p.w, p.out, p.in, p.h, opt, "layers.0.mlp.up_proj");
  std::vector<double> wd(p.w.begin(), p.w.end());
  std::vector<double> ref = reference_gptq(wd, p.out, p.in, p.h, bits, sym, g, 0.01);
  int mismatched = 0;
  double max_step = 0;
  for (int o = 0; o < p.out; ++o)
    for (int i = 0; i < p.in; ++i) {
      const double d = std::fabs(dequantized_value(qw, o, i) - ref[o * p.in + i]);
      const double step = qw.scale[qw.param_index(o, i)];
      max_step = std::max(max_step, step);
      if (d > 1e-4 * step) ++mismatched;
    }
  // float32 sweeps may flip a rare rounding tie; anything more is a real difference.
  EXPECT_LE(mismatched, 2) << "of " << p.out * p.in;
  // Layer-output error on the calibration inputs: GPTQ beats round-to-nearest.
  QuantizedWeight rtn = g ? quantize_weight_per_group_minmax(p.w.data(), p.out, p.in, bits, sym, g)
                          : quantize_weight_per_channel_minmax(p.w.data(), p.out, p.in, bits, sym);
  double e_gptq = 0, e_rtn = 0;
  for (int r = 0; r < p.rows; ++r)
    for (int o = 0; o < p.out; ++o) {
      double y = 0, yg = 0, yr = 0;
      for (int i = 0; i < p.in; ++i) {
        const double x = p.x[r * p.in + i];
        y += x * p.w[o * p.in + i];
        yg += x * dequantized_value(qw, o, i);
        yr += x * dequantized_value(rtn, o, i);
      }
      e_gptq += (yg - y) * (yg - y);
      e_rtn += (yr - y) * (yr - y);
    }
  EXPECT_LT(e_gptq, e_rtn);
}

TEST(Gptq, MatchesTextbookReference) {
  expect_matches_reference(8, true, 0, 128);
  expect_matches_reference(4, true, 0, 16);
  expect_matches_reference(4, false, 0, 7);  // block not dividing in
  expect_matches_reference(4, true, 16, 32);
  expect_matches_reference(4, false, 32, 16);
  expect_matches_reference(8, false, 16, 16);
}

TEST(Gptq, DeadColumnsAndBadInput) {
  Problem p = make_problem(4, 8, 64, 9);
  for (int r = 0; r < 64; ++r) p.x[r * 8 + 3] = 0.0f;
  HessianAccumulator acc(8);
  acc.add(p.x.data(), 64);
  GptqStats st;
  QuantizedWeight qw = gptq_quantize(p.w, 4, 8, acc.hessian(), {4, true, 0, 0.01, 4}, "x", &st);
  EXPECT_EQ(st.dead_columns, 1);
  for (int o = 0; o < 4; ++o) EXPECT_EQ(qw.q[o * 8 + 3], 0);
  EXPECT_THROW(gptq_quantize(p.w, 4, 8, p.h, {4, true, 3, 0.01, 4}, "x"), Error);  // 3 does not divide 8
  // Not positive definite even after damping: fails naming the Linear.
  std::vector<double> neg(64, 0.0);
  for (int i = 0; i < 8; ++i) neg[i * 8 + i] = -1.0;
  try {
    gptq_quantize(p.w, 4, 8, neg, {8, true, 0, 0.01, 4}, "model.layers.3.self_attn.o_proj");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.3.self_attn.o_proj"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("not positive definite"), std::string::npos) << e.what();
  }
}

TEST(Gptq, DampingRetryRescuesASingularHessian) {
  // Rank-1 H (one repeated input direction): percdamp 0 fails, the retry adds damping.
  std::vector<double> h(16);
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) h[i * 4 + j] = 1.0;
  std::vector<float> w = {1, 2, 3, 4, -1, -2, -3, -4};
  GptqStats st;
  gptq_quantize(w, 2, 4, h, {8, true, 0, 0.0, 4}, "x", &st);
  EXPECT_GE(st.damp_retries, 1);
  EXPECT_GT(st.damp, 0.0);
}

TEST(Histogram, OutlierIsClippedAndHistogramMerges) {
  HistogramObserver obs;
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(4096);
  for (auto& v : x) v = nd(rng);
  obs.update(x);
  x[17] = 60.0f;  // one outlier in the second call widens the range
  obs.update(x);
  double total = 0;
  for (double c : obs.histogram()) total += c;
  EXPECT_NEAR(total, 8192.0, 1e-6);  // merging keeps every count
  EXPECT_EQ(obs.max_val(), 60.0f);
  EXPECT_LT(obs.clip_max(), 60.0f);
  EXPECT_GT(obs.clip_max(), 2.0f);
  EXPECT_LT(obs.clip_min(), -2.0f);
  QParams p = obs.qparams(8, false);
  EXPECT_LT(p.scale[0], 60.0f / 255.0f);
  // NaN/Inf are dropped; a constant tensor uses min == max directly.
  HistogramObserver c;
  std::vector<float> k = {2.0f, 2.0f, NAN, INFINITY};
  c.update(k);
  EXPECT_EQ(c.dropped(), 2);
  EXPECT_EQ(c.clip_min(), 2.0f);
  EXPECT_EQ(c.clip_max(), 2.0f);
  HistogramObserver none;
  EXPECT_THROW(none.qparams(8, true), Error);
}

TEST(Histogram, UniformDataKeepsNearlyTheFullRange) {
  HistogramObserver obs;
  std::vector<float> x(20000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -1.0f + 2.0f * static_cast<float>(i) / (x.size() - 1);
  obs.update(x);
  // Clipping a uniform distribution only adds error: the search keeps ≥ 95% of the range.
  EXPECT_LT(obs.clip_min(), -0.95f);
  EXPECT_GT(obs.clip_max(), 0.95f);
}

}  // namespace
}  // namespace lwq
