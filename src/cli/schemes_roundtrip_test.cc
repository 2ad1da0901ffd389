// Every scheme lwquant runs, through the whole path: LinearQuantizer
// (calibration forward, freeze) → ascendv1 saver → QuantizedFolder (all
// format checks) → deployed arithmetic. The deployed output must equal the
// quantizer's own fake-quantized output (the saver and reader agree with the
// quantizer on every tensor, layout and scale), and be a sane approximation
// of the float Linear. Also the shape errors each scheme must report.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "config/quant_schemes.h"
#include "eval/deployed_linear.h"
#include "eval/quantized_folder.h"
#include "processors/linear_quantizer.h"
#include "savers/ascendv1_saver.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {
namespace fs = std::filesystem;

QConfig qc(QDtype d, QScope s, bool sym, std::string method, nlohmann::json ext = nlohmann::json::object()) {
  return {d, s, sym, std::move(method), std::move(ext)};
}

struct Case {
  std::string label;
  LinearQConfig q;
  double max_rel_error;  // against the float Linear
};

std::vector<Case> cases() {
  const QConfig tok8 = qc(QDtype::Int8, QScope::PerToken, true, "minmax");
  const QConfig tok4 = qc(QDtype::Int4, QScope::PerToken, true, "minmax");
  const QConfig none = qc(QDtype::Float, QScope::PerTensor, true, "none");
  const QConfig stat = qc(QDtype::Int8, QScope::PerTensor, false, "minmax");
  const QConfig mx8 = qc(QDtype::MxFp8, QScope::PerBlock, true, "minmax");
  const QConfig mx4 = qc(QDtype::MxFp4, QScope::PerBlock, true, "minmax");
  auto dual = [](int64_t block) {
    return qc(QDtype::MxFp4, QScope::DualScale, true, "dualscale", {{"dual_block_size", block}});
  };
  auto w = [](QDtype d, QScope s, bool sym, const char* m) {
    return qc(d, s, sym, m, s == QScope::PerGroup ? nlohmann::json{{"group_size", 32}} : nlohmann::json::object());
  };
  return {
      {"w8a8_minmax", {stat, w(QDtype::Int8, QScope::PerChannel, true, "minmax")}, 0.05},
      {"w8a8_histogram", {qc(QDtype::Int8, QScope::PerTensor, false, "histogram"), w(QDtype::Int8, QScope::PerChannel, true, "ssz")}, 0.08},
      {"w8a8_gptq", {stat, w(QDtype::Int8, QScope::PerChannel, true, "gptq")}, 0.05},
      {"w8a8_dynamic_ssz", {tok8, w(QDtype::Int8, QScope::PerChannel, true, "ssz")}, 0.03},
      {"w8a8_dynamic_group", {tok8, w(QDtype::Int8, QScope::PerGroup, true, "gptq")}, 0.03},
      {"w8a16_group_asym", {none, w(QDtype::Int8, QScope::PerGroup, false, "gptq")}, 0.01},
      {"w8a16_gptq_asym", {none, w(QDtype::Int8, QScope::PerChannel, false, "gptq")}, 0.01},
      {"w4a8_ssz", {tok8, w(QDtype::Int4, QScope::PerChannel, true, "ssz")}, 0.2},
      {"w4a8_gptq", {tok8, w(QDtype::Int4, QScope::PerChannel, true, "gptq")}, 0.2},
      {"w4a4_minmax", {tok4, w(QDtype::Int4, QScope::PerChannel, true, "minmax")}, 0.35},
      {"w4a4_group_asym", {tok4, w(QDtype::Int4, QScope::PerGroup, false, "gptq")}, 0.35},
      {"wfp8afp8", {qc(QDtype::Fp8E4M3, QScope::PerToken, true, "minmax"), w(QDtype::Fp8E4M3, QScope::PerChannel, true, "minmax")}, 0.08},
      {"w8a8_mxfp8", {mx8, mx8}, 0.1},
      {"w4a8_mxfp", {mx8, mx4}, 0.2},
      {"w4a4_mxfp4", {mx4, mx4}, 0.35},
      {"w8a8_mix", {qc(QDtype::Int8, QScope::PdMix, false, "minmax"), w(QDtype::Int8, QScope::PerChannel, true, "ssz")}, 0.03},
      {"w8a8_mxfp8_mse_round", {mx8, w(QDtype::MxFp8, QScope::PerBlock, true, "mse_round")}, 0.1},
      {"w4a8_mxfp_ceil_x", {mx8, w(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x")}, 0.2},
      {"w4a4_mxfp4_fouroversix", {mx4, w(QDtype::MxFp4, QScope::PerBlock, true, "fouroversix")}, 0.35},
      // Dual blocks of 32 (three per 96-input row) and one covering the row (512 ≥ 96).
      {"w4a4_mxfp4_dualscale_32", {dual(32), dual(32)}, 0.35},
      {"w4a4_mxfp4_dualscale_512", {dual(512), dual(512)}, 0.35},
      {"w8a8_mix_mean", {qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "mean"}}), w(QDtype::Int8, QScope::PerChannel, true, "minmax")}, 0.03},
  };
}

struct Data {
  int64_t out = 48, in = 96, rows = 40;
  std::vector<float> w, bias, x;
};

Data make_data(unsigned seed) {
  Data d;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  d.w.resize(static_cast<size_t>(d.out * d.in));
  for (auto& v : d.w) v = 0.05f * nd(rng);
  d.bias.resize(static_cast<size_t>(d.out));
  for (auto& v : d.bias) v = 0.1f * nd(rng);
  d.x.resize(static_cast<size_t>(d.rows * d.in));
  for (int64_t r = 0; r < d.rows; ++r)
    for (int64_t i = 0; i < d.in; ++i) d.x[static_cast<size_t>(r * d.in + i)] = nd(rng) * (i % 17 == 3 ? 6.0f : 1.0f);
  return d;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& ref) {
  double e = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    e += (static_cast<double>(a[i]) - ref[i]) * (static_cast<double>(a[i]) - ref[i]);
    n += static_cast<double>(ref[i]) * ref[i];
  }
  return std::sqrt(e / n);
}

class SchemesRoundTrip : public testing::TestWithParam<Case> {};

TEST_P(SchemesRoundTrip, DeployedEqualsFakeQuant) {
  const Case& c = GetParam();
  const std::string name = "model.layers.0.mlp.up_proj";
  const Data d = make_data(17);
  LinearQuantizer lq(name, c.q, d.w.data(), d.bias.data(), d.out, d.in);
  std::vector<float> y_fake(static_cast<size_t>(d.rows * d.out)), y_dep(y_fake.size()), y_ref(y_fake.size());
  lq.forward(d.x.data(), d.rows, y_fake.data());  // calibration
  lq.freeze();
  lq.forward(d.x.data(), d.rows, y_fake.data());

  const fs::path root = fs::temp_directory_path() / ("lwq_schemes_" + std::to_string(::getpid()) + "_" + c.label);
  fs::remove_all(root);
  fs::create_directories(root / "model");
  fs::create_directories(root / "out");
  write_text_file_atomic(root / "model" / "config.json", R"({"model_type": "llama", "torch_dtype": "float16"})");
  AscendV1Saver saver(root / "out", 0, DType::F16);
  saver.save_linear(lq.export_linear(DType::F16));
  SaveSummary sum = saver.finish(root / "model");
  QuantizedFolder folder = parse_quantized_folder(root / "out");
  ASSERT_EQ(folder.quantized_linears(), std::vector<std::string>{name});
  EXPECT_EQ(folder.linear_type(name), lq.type());
  EXPECT_EQ(sum.model_quant_type, lq.type() == "W4A8_DYNAMIC" ? "Unknown" : lq.type());
  DeployedLinear lin = folder.load_linear(name);
  EXPECT_EQ(lin.out, d.out);
  EXPECT_EQ(lin.in, d.in);
  deployed_linear_forward(lin, d.x.data(), d.rows, y_dep.data());
  fs::remove_all(root);

  for (int64_t r = 0; r < d.rows; ++r)
    for (int64_t o = 0; o < d.out; ++o) {
      double s = d.bias[static_cast<size_t>(o)];
      for (int64_t i = 0; i < d.in; ++i)
        s += static_cast<double>(d.x[static_cast<size_t>(r * d.in + i)]) * d.w[static_cast<size_t>(o * d.in + i)];
      y_ref[static_cast<size_t>(r * d.out + o)] = static_cast<float>(s);
    }
  // W8A8 deploys input_scale rounded to float16 (fact 18) while calibration used the float32 value, so
  // activation codes may move by one step; the histogram method also clamps calibration inputs to its clip
  // range, a hair inside the int8 grid's. Every other type must agree to float32 rounding.
  const double agree = lq.type() == "W8A8" ? 1e-2 : 1e-5;
  EXPECT_LT(rel_l2(y_dep, y_fake), agree) << c.label;
  EXPECT_LT(rel_l2(y_dep, y_ref), c.max_rel_error) << c.label;
  EXPECT_GT(rel_l2(y_dep, y_ref), 0.0) << c.label;
}

// W8A8_MIX against float64 references computed here: calibration output
// fake-quantized per token as the prefill path deploys it, exported static params
// from the running asymmetric range over every call, the static (decode)
// tensors deploying as W8A8, and the prefill path as per-token int8.
TEST(SchemesW8A8Mix, CalibrationExportAndBothDeployedPaths) {
  const std::string name = "model.layers.0.mlp.up_proj";
  const Data d = make_data(23);
  const LinearQConfig q{qc(QDtype::Int8, QScope::PdMix, false, "minmax"),
                        qc(QDtype::Int8, QScope::PerChannel, true, "minmax")};
  LinearQuantizer lq(name, q, d.w.data(), d.bias.data(), d.out, d.in);
  EXPECT_EQ(lq.type(), "W8A8_MIX");
  EXPECT_TRUE(lq.needs_data());
  // Reference weight: per-channel symmetric int8 minmax, in double.
  std::vector<double> wq(d.w.size()), ws(static_cast<size_t>(d.out));
  for (int64_t o = 0; o < d.out; ++o) {
    double amax = 0;
    for (int64_t i = 0; i < d.in; ++i) amax = std::max(amax, std::fabs(static_cast<double>(d.w[o * d.in + i])));
    ws[o] = static_cast<float>(amax) / 127.0f;
    for (int64_t i = 0; i < d.in; ++i) wq[o * d.in + i] = std::nearbyint(d.w[o * d.in + i] / ws[o]);
  }
  auto linear = [&](const std::vector<double>& xq, int64_t rows) {
    std::vector<float> y(static_cast<size_t>(rows * d.out));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < d.out; ++o) {
        double s = d.bias[o];
        for (int64_t i = 0; i < d.in; ++i) s += xq[r * d.in + i] * wq[o * d.in + i] * ws[o];
        y[r * d.out + o] = static_cast<float>(s);
      }
    return y;
  };
  // Per-token symmetric int8 fake quant of x[rows, in] (the prefill path).
  auto per_token = [&](const std::vector<float>& x, int64_t rows) {
    std::vector<double> xt(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double amax = 0;
      for (int64_t i = 0; i < d.in; ++i) amax = std::max(amax, std::fabs(static_cast<double>(x[r * d.in + i])));
      const double s = amax / 127.0;
      for (int64_t i = 0; i < d.in; ++i) xt[r * d.in + i] = std::nearbyint(x[r * d.in + i] / s) * s;
    }
    return xt;
  };
  // Two calibration calls (rows 0..19 scaled ×3, rows 20..39 as they are): the exported range spans both; each
  // call's output is the prefill arithmetic.
  const int64_t half = d.rows / 2;
  std::vector<float> x1(d.x.begin(), d.x.begin() + half * d.in), x2(d.x.begin() + half * d.in, d.x.end());
  for (float& v : x1) v *= 3.0f;
  double lo = 0, hi = 0;
  for (int call = 0; call < 2; ++call) {
    const std::vector<float>& x = call == 0 ? x1 : x2;
    for (float v : x) {
      lo = std::min(lo, static_cast<double>(v));
      hi = std::max(hi, static_cast<double>(v));
    }
    std::vector<float> y(static_cast<size_t>(half * d.out));
    lq.forward(x.data(), half, y.data());
    EXPECT_LT(rel_l2(y, linear(per_token(x, half), half)), 1e-5) << "calibration call " << call;
  }
  lq.freeze();
  const QuantizedLinear ex = lq.export_linear(DType::F32);
  const double scale = (hi - lo) / 255.0;
  EXPECT_NEAR(ex.input_scale, scale, 1e-6 * scale);
  EXPECT_EQ(ex.input_offset, std::nearbyint(-lo / scale) - 128.0);

  const fs::path root = fs::temp_directory_path() / ("lwq_schemes_mix_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "model");
  write_text_file_atomic(root / "model" / "config.json", R"({"model_type": "llama", "torch_dtype": "bfloat16"})");
  AscendV1Saver saver(root / "out", 0, DType::BF16);
  saver.save_linear(lq.export_linear(DType::BF16));
  EXPECT_EQ(saver.finish(root / "model").model_quant_type, "W8A8_MIX");
  QuantizedFolder folder = parse_quantized_folder(root / "out");
  for (const char* s : {".weight", ".quant_bias", ".input_scale", ".input_offset", ".deq_scale", ".weight_scale",
                        ".weight_offset"})
    EXPECT_EQ(folder.type_of(name + s), "W8A8_MIX") << s;
  EXPECT_EQ(folder.type_of(name + ".bias"), "FLOAT");
  EXPECT_EQ(folder.info(name + ".weight_scale").shape, (Shape{d.out, 1}));
  EXPECT_EQ(folder.info(name + ".weight_offset").shape, (Shape{d.out, 1}));
  EXPECT_EQ(folder.info(name + ".deq_scale").dtype, DType::F32);  // bfloat16 model
  DeployedLinear lin = folder.load_linear(name);
  for (int64_t o = 0; o < d.out; ++o) {
    EXPECT_FLOAT_EQ(lin.weight_scale[o], static_cast<float>(ws[o]));
    EXPECT_EQ(lin.weight_offset[o], 0.0f);
  }
  fs::remove_all(root);

  // Prefill path: per-token symmetric int8 activations.
  std::vector<float> y_dep(static_cast<size_t>(d.rows * d.out));
  deployed_linear_forward(lin, d.x.data(), d.rows, y_dep.data());
  EXPECT_LT(rel_l2(y_dep, linear(per_token(d.x, d.rows), d.rows)), 1e-5);
  // Decode path: the static tensors are a W8A8 Linear with the exported (bfloat16-rounded) input params.
  const double s_bf = lin.input_scale;
  std::vector<double> xs(d.x.size());
  for (size_t k = 0; k < d.x.size(); ++k)
    xs[k] = (std::clamp(std::nearbyint(d.x[k] / s_bf + lin.input_offset), -128.0, 127.0) - lin.input_offset) * s_bf;
  DeployedLinear as_w8a8 = lin;
  as_w8a8.type = "W8A8";
  deployed_linear_forward(as_w8a8, d.x.data(), d.rows, y_dep.data());
  EXPECT_LT(rel_l2(y_dep, linear(xs, d.rows)), 1e-2);  // quant_bias rounding and the bfloat16 deq_scale
}

// aggregation_type mean (msModelSlim's _MeanMinMaxObserver): the exported
// static params come from the mean of the per-call minimums and maximums
// (float64 sums), not from the range over all calls; the prefill path is unchanged.
TEST(SchemesW8A8Mix, MeanAggregationAveragesEachCallsRange) {
  const std::string name = "model.layers.0.mlp.up_proj";
  const Data d = make_data(29);
  const QConfig w8 = qc(QDtype::Int8, QScope::PerChannel, true, "minmax");
  LinearQuantizer mean(name, {qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "mean"}}), w8},
                       d.w.data(), d.bias.data(), d.out, d.in);
  LinearQuantizer max(name, {qc(QDtype::Int8, QScope::PdMix, false, "minmax"), w8}, d.w.data(), d.bias.data(), d.out,
                      d.in);
  // Three calls by hand: ranges [−2, 1], [−1, 5], [0.5, 3] (the third wholly positive).
  const std::vector<std::vector<float>> calls = {{-2.0f, 1.0f, 0.0f}, {5.0f, -1.0f, 2.0f}, {0.5f, 3.0f, 1.0f}};
  std::vector<float> x(static_cast<size_t>(d.in)), y_mean(static_cast<size_t>(d.out)), y_max(y_mean.size());
  for (const auto& c : calls) {
    std::fill(x.begin(), x.end(), c[2]);
    std::copy(c.begin(), c.begin() + 2, x.begin());
    mean.forward(x.data(), 1, y_mean.data());
    max.forward(x.data(), 1, y_max.data());
    EXPECT_EQ(y_mean, y_max);  // the calibration output is the prefill (per-token) arithmetic either way
  }
  mean.freeze();
  max.freeze();
  // mean min = (−2 − 1 + 0.5)/3 = −5/6, mean max = (1 + 5 + 3)/3 = 3: scale (3 + 5/6)/255, offset
  // round((5/6)/scale) − 128. max: [−2, 5].
  const QuantizedLinear qm = mean.export_linear(DType::F32), qx = max.export_linear(DType::F32);
  const float mn = static_cast<float>((-2.0 - 1.0 + 0.5) / 3.0), mx = 3.0f;
  const float scale = mx / 255.0f - mn / 255.0f;
  EXPECT_FLOAT_EQ(qm.input_scale, scale);
  EXPECT_EQ(qm.input_offset, std::nearbyint(-mn / scale) - 128.0f);
  EXPECT_FLOAT_EQ(qx.input_scale, 7.0f / 255.0f);
  // The widest range seen stays what observed_range() reports (the routed-expert data-free rule uses it).
  EXPECT_EQ(mean.observed_range(), (std::pair<float, float>{-2.0f, 5.0f}));
}

// Several calibration samples in one call (the batched layer forward) are
// observed and fake-quantized sample by sample, in order: the outputs and the
// exported parameters equal those of one call per sample, for the running
// range, the mean of per-call ranges, the histogram and gptq.
TEST(SchemesBatchedSamples, OneCallOfSeveralSamplesEqualsOneCallEach) {
  const std::string name = "model.layers.0.mlp.up_proj";
  const Data d = make_data(31);
  const QConfig w8 = qc(QDtype::Int8, QScope::PerChannel, true, "minmax");
  const std::vector<LinearQConfig> configs = {
      {qc(QDtype::Int8, QScope::PerTensor, false, "minmax"), w8},
      {qc(QDtype::Int8, QScope::PerTensor, false, "minmax", {{"aggregation_type", "mean"}}), w8},
      {qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "mean"}}), w8},
      {qc(QDtype::Int8, QScope::PerTensor, false, "histogram"), w8},
      {qc(QDtype::Int8, QScope::PerToken, true, "minmax"), qc(QDtype::Int8, QScope::PerChannel, true, "gptq")},
  };
  const std::vector<int64_t> samples = {5, 1, 9, 3};  // rows of d.x, in order
  int64_t total = 0;
  for (int64_t n : samples) total += n;
  ASSERT_LE(total, d.rows);
  for (size_t c = 0; c < configs.size(); ++c) {
    SCOPED_TRACE(c);
    LinearQuantizer batched(name, configs[c], d.w.data(), d.bias.data(), d.out, d.in);
    LinearQuantizer single(name, configs[c], d.w.data(), d.bias.data(), d.out, d.in);
    std::vector<float> yb(static_cast<size_t>(total * d.out)), ys(yb.size());
    batched.forward(d.x.data(), samples, yb.data());
    int64_t at = 0;
    for (int64_t n : samples) {
      single.forward(d.x.data() + at * d.in, n, ys.data() + at * d.out);
      at += n;
    }
    EXPECT_LT(rel_l2(yb, ys), 1e-6);
    batched.freeze();
    single.freeze();
    const QuantizedLinear qb = batched.export_linear(DType::F32), qs = single.export_linear(DType::F32);
    EXPECT_EQ(qb.input_scale, qs.input_scale);
    EXPECT_EQ(qb.input_offset, qs.input_offset);
    EXPECT_EQ(qb.weight.q, qs.weight.q);
    EXPECT_EQ(qb.weight.scale, qs.weight.scale);
    if (c == 1) {  // the mean of per-call ranges: one call over all rows would be another figure
      LinearQuantizer whole(name, configs[c], d.w.data(), d.bias.data(), d.out, d.in);
      whole.forward(d.x.data(), total, yb.data());
      whole.freeze();
      EXPECT_NE(whole.export_linear(DType::F32).input_scale, qb.input_scale);
    }
  }
}

// The calibration forward of int-activation, int-weight schemes multiplies
// the codes with the exact int8 GEMM (LinearQuantizer::integer_forward): its
// outputs equal the dequantized f32 forward's up to f32 summation, and the
// observed parameters are the same, before and after freeze().
TEST(SchemesIntegerForward, EqualsTheDequantizedF32Forward) {
  const std::string name = "model.layers.0.mlp.up_proj";
  const Data d = make_data(31);
  const QConfig w8 = qc(QDtype::Int8, QScope::PerChannel, true, "minmax");
  const QConfig tok8 = qc(QDtype::Int8, QScope::PerToken, true, "minmax");
  const std::vector<LinearQConfig> integer = {
      {qc(QDtype::Int8, QScope::PerTensor, false, "minmax"), w8},
      {qc(QDtype::Int8, QScope::PerTensor, true, "minmax"), w8},
      {qc(QDtype::Int8, QScope::PerTensor, false, "histogram"), qc(QDtype::Int8, QScope::PerChannel, true, "ssz")},
      {qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "mean"}}), w8},
      {tok8, w8},
      {tok8, qc(QDtype::Int4, QScope::PerChannel, true, "ssz")},
      {qc(QDtype::Int4, QScope::PerToken, true, "minmax"), qc(QDtype::Int4, QScope::PerChannel, true, "minmax")},
      {tok8, qc(QDtype::Int8, QScope::PerChannel, true, "gptq")},  // integer once frozen
  };
  const std::vector<int64_t> samples = {5, 1, 9, 3};
  int64_t total = 0;
  for (int64_t n : samples) total += n;
  ASSERT_LE(total, d.rows);
  for (size_t c = 0; c < integer.size(); ++c) {
    SCOPED_TRACE(c);
    LinearQuantizer fast(name, integer[c], d.w.data(), d.bias.data(), d.out, d.in);
    LinearQuantizer f32(name, integer[c], d.w.data(), d.bias.data(), d.out, d.in);
    f32.set_integer_forward(false);
    const bool gptq = integer[c].weight.method == "gptq";
    EXPECT_EQ(fast.integer_forward(), !gptq);
    EXPECT_FALSE(f32.integer_forward());
    std::vector<float> yi(static_cast<size_t>(total * d.out)), yf(yi.size());
    fast.forward(d.x.data(), samples, yi.data());
    f32.forward(d.x.data(), samples, yf.data());
    EXPECT_LT(rel_l2(yi, yf), 1e-6);
    EXPECT_GT(rel_l2(yi, std::vector<float>(yi.size(), 0.0f)), 0.5);  // not an empty output
    fast.freeze();
    f32.freeze();
    EXPECT_TRUE(fast.integer_forward());
    std::vector<float> zi(static_cast<size_t>((d.rows - total) * d.out)), zf(zi.size());
    fast.forward(d.x.data() + total * d.in, d.rows - total, zi.data());
    f32.forward(d.x.data() + total * d.in, d.rows - total, zf.data());
    EXPECT_LT(rel_l2(zi, zf), 1e-6);
    const QuantizedLinear qi = fast.export_linear(DType::F32), qf = f32.export_linear(DType::F32);
    EXPECT_EQ(qi.input_scale, qf.input_scale);
    EXPECT_EQ(qi.input_offset, qf.input_offset);
    EXPECT_EQ(qi.weight.q, qf.weight.q);
  }
  // Not integer: asymmetric or per-group weights, float or fp8 activations.
  for (const LinearQConfig& q :
       {LinearQConfig{qc(QDtype::Int4, QScope::PerToken, true, "minmax"), qc(QDtype::Int4, QScope::PerChannel, false, "gptq")},
        LinearQConfig{tok8, qc(QDtype::Int8, QScope::PerGroup, true, "gptq", {{"group_size", 32}})},
        LinearQConfig{qc(QDtype::Float, QScope::PerTensor, true, "none"), w8},
        LinearQConfig{qc(QDtype::Fp8E4M3, QScope::PerToken, true, "minmax"), qc(QDtype::Fp8E4M3, QScope::PerChannel, true, "minmax")}}) {
    LinearQuantizer lq(name, q, d.w.data(), d.bias.data(), d.out, d.in);
    lq.forward(d.x.data(), d.rows, std::vector<float>(static_cast<size_t>(d.rows * d.out)).data());
    lq.freeze();
    EXPECT_FALSE(lq.integer_forward()) << q.weight.method;
  }
}

// A dual-scale folder holds weight_dual_scale F32 [out, dual blocks, 1] and,
// as msModelSlim's ascendv1 saver writes it, a bias tagged with the Linear's
// type; the reader refuses a dual-block count that hides the block size.
TEST(SchemesDualScale, FolderLayoutAndChecks) {
  const std::string name = "model.layers.0.mlp.up_proj";
  const Data d = make_data(31);
  const QConfig dual = qc(QDtype::MxFp4, QScope::DualScale, true, "dualscale", {{"dual_block_size", 32}});
  LinearQuantizer lq(name, {dual, dual}, d.w.data(), d.bias.data(), d.out, d.in);
  EXPECT_FALSE(lq.needs_data());
  const fs::path root = fs::temp_directory_path() / ("lwq_schemes_dual_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root / "model");
  write_text_file_atomic(root / "model" / "config.json", R"({"model_type": "llama", "torch_dtype": "bfloat16"})");
  AscendV1Saver saver(root / "out", 0, DType::BF16);
  saver.save_linear(lq.export_linear(DType::BF16));
  EXPECT_EQ(saver.finish(root / "model").model_quant_type, "W4A4_MXFP4_DUALSCALE");
  QuantizedFolder folder = parse_quantized_folder(root / "out");
  for (const char* s : {".weight", ".weight_scale", ".weight_dual_scale", ".bias"})
    EXPECT_EQ(folder.type_of(name + s), "W4A4_MXFP4_DUALSCALE") << s;
  EXPECT_EQ(folder.info(name + ".weight").shape, (Shape{d.out, d.in / 2}));
  EXPECT_EQ(folder.info(name + ".weight_scale").shape, (Shape{d.out, d.in / 32}));
  EXPECT_EQ(folder.info(name + ".weight_dual_scale").shape, (Shape{d.out, 3, 1}));
  EXPECT_EQ(folder.info(name + ".weight_dual_scale").dtype, DType::F32);
  EXPECT_EQ(folder.group_size(), 32);
  EXPECT_EQ(folder.load_linear(name).dual_block_size, 32);
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, SchemesRoundTrip, testing::ValuesIn(cases()),
                         [](const testing::TestParamInfo<Case>& i) { return i.param.label; });

std::string construction_error(const LinearQConfig& q, const std::string& name, int64_t out, int64_t in) {
  std::vector<float> w(static_cast<size_t>(out * in), 0.5f);
  try {
    LinearQuantizer lq(name, q, w.data(), nullptr, out, in);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SchemesBadShapes, ClearErrorsNamingTheLinear) {
  const QConfig tok8 = qc(QDtype::Int8, QScope::PerToken, true, "minmax");
  std::string m = construction_error(
      {tok8, qc(QDtype::Int8, QScope::PerGroup, true, "gptq", {{"group_size", 64}})}, "layers.1.mlp.down_proj", 8, 96);
  EXPECT_NE(m.find("layers.1.mlp.down_proj: group_size 64 does not divide in_features 96"), std::string::npos) << m;
  m = construction_error({tok8, qc(QDtype::Int4, QScope::PerChannel, true, "minmax")}, "layers.0.self_attn.k_proj", 5, 32);
  EXPECT_NE(m.find("out_features 5 is odd"), std::string::npos) << m;
  m = construction_error({tok8, qc(QDtype::Int4, QScope::PerChannel, true, "ssz")}, "layers.0.mlp.down_proj", 8, 172);
  EXPECT_NE(m.find("not divisible by 16"), std::string::npos) << m;
  const QConfig mx4 = qc(QDtype::MxFp4, QScope::PerBlock, true, "minmax");
  m = construction_error({mx4, mx4}, "layers.0.mlp.up_proj", 8, 33);
  EXPECT_NE(m.find("in_features 33 is odd"), std::string::npos) << m;
  // A partial last dual block with more than one block per row would hide the block size in the files.
  const QConfig dual = qc(QDtype::MxFp4, QScope::DualScale, true, "dualscale", {{"dual_block_size", 64}});
  m = construction_error({dual, dual}, "layers.0.mlp.down_proj", 8, 172);
  EXPECT_NE(m.find("layers.0.mlp.down_proj: dual_block_size 64 neither covers nor divides in_features 172"),
            std::string::npos) << m;
  EXPECT_EQ(construction_error({dual, dual}, "layers.0.mlp.up_proj", 8, 62), "");  // one (padded) block
  EXPECT_EQ(construction_error({dual, dual}, "layers.0.mlp.up_proj", 8, 128), "");
  // GPTQ without calibration data.
  std::vector<float> w(64, 0.5f);
  LinearQuantizer lq("layers.2.mlp.up_proj", {tok8, qc(QDtype::Int8, QScope::PerChannel, true, "gptq")}, w.data(),
                     nullptr, 8, 8);
  EXPECT_TRUE(lq.needs_data());
  try {
    lq.freeze();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layers.2.mlp.up_proj: no calibration data"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lwq
