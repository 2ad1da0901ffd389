// The §2.8 formulas against hand-worked values.
#include "processors/smoothing.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tensor/tensor.h"
#include "util/error.h"

namespace lwq {
namespace {

TEST(SmoothScale, HandWorkedAlphas) {
  const std::vector<float> a{2.0f, 0.5f, 8.0f}, w{4.0f, 1.0f, 2.0f};
  // α = 0.5: √(a/w) = √0.5, √0.5, 2.
  auto s = smooth_scale(a, w, 0.5, 0.5, 1e-5);
  EXPECT_NEAR(s[0], 0.70710678, 1e-6);
  EXPECT_NEAR(s[1], 0.70710678, 1e-6);
  EXPECT_NEAR(s[2], 2.0, 1e-6);
  // α = 1: s = a; α = 0: s = 1/w.
  EXPECT_EQ(smooth_scale(a, w, 1.0, 0.0, 1e-5), a);
  auto inv = smooth_scale(a, w, 0.0, 1.0, 1e-5);
  EXPECT_FLOAT_EQ(inv[0], 0.25f);
  EXPECT_FLOAT_EQ(inv[2], 0.5f);
  // A dead channel is clamped to scale_min.
  EXPECT_FLOAT_EQ(smooth_scale({0.0f}, {1.0f}, 0.9, 0.1, 1e-3)[0], 1e-3f);
  // flex β independent of α: a^0.5 / w^0.25 = 2^0.5 / 4^0.25 = 1.
  EXPECT_NEAR(smooth_scale({2.0f}, {4.0f}, 0.5, 0.25, 1e-5)[0], 1.0, 1e-6);
}

TEST(SmoothScale, ActivationAndWeightScales) {
  ChannelStats st;
  st.max = {3.0f, -1.0f, 0.5f};
  st.min = {-1.0f, -4.0f, 0.5f};
  EXPECT_EQ(activation_scale(st, true), (std::vector<float>{3.0f, 4.0f, 0.5f}));
  // shift (max+min)/2 = 1, −2.5, 0.5; max|x − shift| = 2, 1.5, 0.
  EXPECT_EQ(activation_shift(st), (std::vector<float>{1.0f, -2.5f, 0.5f}));
  EXPECT_EQ(activation_scale(st, false), (std::vector<float>{2.0f, 1.5f, 0.0f}));
  // w: max over both matrices and their rows of |W[:, c]|, ≥ 1e-5.
  std::vector<float> w1{1, -5, 0, 2, 1, 0}, w2{-3, 0, 0};
  auto ws = weight_scale({{w1.data(), 2}, {w2.data(), 1}}, 3);
  EXPECT_EQ(ws, (std::vector<float>{3.0f, 5.0f, 1e-5f}));
}

// A layer's weight read a block of rows at a time, its recorded scalings
// applied, gives the column maxima of the whole scaled matrix: a stored
// bf16 weight is never converted whole.
TEST(SmoothScale, WeightScaleOfALayerWeightReadsBlocksWithScalings) {
  const int64_t out = 700, in = 3000;  // blocks of (1 << 20) / 3000 = 349 rows: three
  std::vector<float> w(static_cast<size_t>(out * in));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i)) * (1 + static_cast<float>(i % 7));
  w[static_cast<size_t>(650 * in + 5)] = -4000.0f;  // in the last block, exact in bf16
  LayerWeights lw;
  lw.stored["proj.weight"] = tensor_from_f32(DType::BF16, {out, in}, w);
  std::vector<float> cols(static_cast<size_t>(in)), rows(static_cast<size_t>(out));
  for (size_t c = 0; c < cols.size(); ++c) cols[c] = 0.5f + 0.001f * static_cast<float>(c);
  for (size_t r = 0; r < rows.size(); ++r) rows[r] = 1.0f + 0.01f * static_cast<float>(r);
  lw.scale_columns("proj.weight", cols);
  lw.divide_rows("proj.weight", rows);
  std::vector<float> scratch;
  const float* whole = lw.f32("proj.weight", scratch);
  EXPECT_EQ(weight_scale(lw, "proj.weight", in), weight_scale({{whole, out}}, in));
  EXPECT_FLOAT_EQ(weight_scale(lw, "proj.weight", in)[5], 4000.0f * cols[5] / rows[650]);
}

TEST(SmoothScale, OvGroupsMeanAndMax) {
  // 4 heads, 2 KV heads, head_dim 2: heads 0,1 read KV head 0; heads 2,3 KV head 1.
  auto m = ov_scales_mean({1, 2, 3, 4, 5, 6, 7, 8}, 4, 2, 2);
  EXPECT_EQ(m.v, (std::vector<float>{2, 3, 6, 7}));
  EXPECT_EQ(m.o, (std::vector<float>{2, 3, 2, 3, 6, 7, 6, 7}));
  // max: a maxed over the group (α = 1, β = 0 → s = group max of a).
  auto x = ov_scales_max({1, 9, 3, 4, 5, 6, 7, 2}, {1, 1, 1, 1, 1, 1, 1, 1}, 1.0, 0.0, 4, 2, 2);
  EXPECT_EQ(x.v, (std::vector<float>{3, 9, 7, 6}));
  EXPECT_EQ(x.o, (std::vector<float>{3, 9, 3, 9, 7, 6, 7, 6}));
}

TEST(FlexSearch, QuantErrorHandWorked) {
  // x = [127, 254], W = [2, 1], s = 1: x quantizes with step 2: 127 → 63.5 →
  // 64 (half to even) → 128, 254 → 254; W with step 2/127: 1 → 63.5 → 64 →
  // 128/127. y = 128·2 + 254·128/127 = 512 against 127·2 + 254 = 508.
  std::vector<float> x{127, 254}, w{2, 1};
  EXPECT_NEAR(flex_quant_error(x.data(), 1, 2, w.data(), 1, 0.0, 0.0), 4.0 / 508.0, 1e-6);
  // α = 1, β = 0: s = |x| → x/s = [1, 1] and W·s = [254, 254], both exact.
  EXPECT_NEAR(flex_quant_error(x.data(), 1, 2, w.data(), 1, 1.0, 0.0), 0.0, 1e-7);
}

TEST(FlexSearch, GivenValuesAreKeptAndSearchFindsTheExactOne) {
  std::vector<float> x{127, 254}, w{2, 1};
  FlexChoice c = flex_search(x.data(), 1, 2, w.data(), 1, 0.3, 0.2);
  EXPECT_DOUBLE_EQ(c.alpha, 0.3);
  EXPECT_DOUBLE_EQ(c.beta, 0.2);
  // Searched: some (α, β) reaches zero error; ties go to later grid points.
  FlexChoice s = flex_search(x.data(), 1, 2, w.data(), 1, std::nullopt, std::nullopt);
  EXPECT_LT(s.error, 1e-7);
  EXPECT_NEAR(flex_quant_error(x.data(), 1, 2, w.data(), 1, s.alpha, s.beta), s.error, 1e-12);
}

TEST(SmoothObserver, RunningMinMaxAndReservoir) {
  SmoothObserver o({"mlp.down_proj"}, 3);
  std::vector<float> a{1, -2, 3, 4}, b{-5, 0, 0, 1, 2, 2};
  o.observe("mlp.down_proj", a.data(), 2, 2);
  o.observe("mlp.down_proj", b.data(), 3, 2);
  o.observe("mlp.up_proj", b.data(), 3, 2);  // not watched
  EXPECT_FALSE(o.watches("mlp.up_proj"));
  const ChannelStats& st = o.stats("mlp.down_proj");
  EXPECT_EQ(st.rows, 5);
  EXPECT_EQ(st.max, (std::vector<float>{3, 4}));
  EXPECT_EQ(st.min, (std::vector<float>{-5, -2}));
  EXPECT_EQ(st.sample_rows, 3);
  EXPECT_EQ(st.sample.size(), 6u);
  EXPECT_THROW(o.stats("mlp.up_proj"), Error);
  EXPECT_THROW(o.observe("mlp.down_proj", a.data(), 1, 4), Error);
}

TEST(LayerSmoother, SubgraphSelectionAndOrder) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 8;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  const Architecture& arch = architecture_for(c);
  SmoothSettings s = default_smooth_settings(SmoothKind::IterSmooth);
  s.exclude = {"*.mlp.down_proj"};
  LayerSmoother sm(s, c, arch, "model.layers.0");
  std::vector<std::string> types;
  for (const auto& g : sm.subgraphs()) types.push_back(g.type);
  EXPECT_EQ(types, (std::vector<std::string>{"ov", "norm-linear", "norm-linear"}));
  EXPECT_TRUE(sm.observer().watches("self_attn.o_proj"));
  EXPECT_TRUE(sm.observer().watches("self_attn.q_proj"));
  EXPECT_TRUE(sm.observer().watches("mlp.gate_proj"));
  // smooth_quant: norm-linear only.
  LayerSmoother sq(default_smooth_settings(SmoothKind::SmoothQuant), c, arch, "model.layers.0");
  EXPECT_EQ(sq.subgraphs().size(), 2u);
  EXPECT_EQ(undeclared_subgraph_types(arch, {"ov", "linear-linear"}), (std::vector<std::string>{"linear-linear"}));
}

TEST(LayerSmoother, UpDownOnHandSizedWeights) {
  // intermediate 2: up rows divided by s, down columns multiplied by s.
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 1;
  c.intermediate_size = 2;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  c.head_dim = 1;
  SmoothSettings s = default_smooth_settings(SmoothKind::IterSmooth);
  s.enabled_types = {"up-down"};
  s.alpha = 0.5;
  LayerSmoother sm(s, c, architecture_for(c), "model.layers.0");
  std::vector<float> x{4, -1, -16, 0.25f};  // down_proj inputs: a = [16, 1]
  sm.observer().observe("mlp.down_proj", x.data(), 2, 2);
  LayerWeights w;
  w.tensors["mlp.up_proj.weight"] = {2, 3};
  w.tensors["mlp.down_proj.weight"] = {4, 0.25f};  // w = [4, 0.25]
  sm.apply(w);
  // s = √(a/w) = √(16/4) = 2, √(1/0.25) = 2.
  EXPECT_EQ(w.get("mlp.down_proj.weight"), (std::vector<float>{8, 0.5f}));
  EXPECT_EQ(w.get("mlp.up_proj.weight"), (std::vector<float>{1, 1.5f}));
}

TEST(SmoothSettingsFrom, ConfigFieldsReachTheSettings) {
  ProcessorConfig p;
  p.type = "flex_smooth_quant";
  p.smooth.alpha = std::nullopt;
  p.smooth.beta = 0.25;
  p.smooth.enable_subgraph_type = {"ov"};
  p.exclude = {"*down_proj"};
  SmoothSettings s = smooth_settings_from(p);
  EXPECT_EQ(s.kind, SmoothKind::FlexSmoothQuant);
  EXPECT_FALSE(s.alpha.has_value());
  EXPECT_DOUBLE_EQ(*s.beta, 0.25);
  EXPECT_EQ(s.enabled_types, (std::vector<std::string>{"ov"}));
  EXPECT_EQ(s.exclude, (std::vector<std::string>{"*down_proj"}));
  p.type = "linear_quant";
  EXPECT_THROW(smooth_settings_from(p), Error);
}

}  // namespace
}  // namespace lwq
