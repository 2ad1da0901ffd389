#include "models/quarot.h"

#include <gtest/gtest.h>

#include <cmath>

#include "util/error.h"

namespace lwq {
namespace {

// H·Hᵀ = n·I with ±1 entries.
void expect_hadamard(int64_t n) {
  auto h = hadamard_matrix(n);
  ASSERT_EQ(h.size(), static_cast<size_t>(n * n));
  for (int8_t v : h) ASSERT_TRUE(v == 1 || v == -1) << n;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += h[static_cast<size_t>(i * n + k)] * h[static_cast<size_t>(j * n + k)];
      ASSERT_EQ(dot, i == j ? n : 0) << "order " << n << " rows " << i << "," << j;
    }
}

TEST(Hadamard, SylvesterAndPaleyOrdersAreOrthogonal) {
  // Powers of two; Paley I (12 = 11+1, 20, 44, 60); Paley II (36 = 2·18, 28 = 2·14,
  // 52 = 2·26? 25 is not prime, so 52 has no base here); ×2^k.
  for (int64_t n : {1, 2, 4, 8, 16, 64, 128, 12, 20, 24, 28, 36, 40, 44, 48, 60, 72, 96, 576})
    expect_hadamard(n);
}

TEST(Hadamard, SylvesterOrderFour) {
  // [[1,1,1,1],[1,-1,1,-1],[1,1,-1,-1],[1,-1,-1,1]] (hand-worked).
  EXPECT_EQ(hadamard_matrix(4), (std::vector<int8_t>{1, 1, 1, 1, 1, -1, 1, -1, 1, 1, -1, -1, 1, -1, -1, 1}));
}

TEST(Hadamard, UnsupportedOrdersThrow) {
  EXPECT_FALSE(hadamard_order_supported(6));
  EXPECT_FALSE(hadamard_order_supported(52));
  EXPECT_THROW(hadamard_matrix(6), Error);
  EXPECT_THROW(hadamard_matrix(0), Error);
}

TEST(Hadamard, RandomHadamardIsOrthogonalAndDeterministic) {
  const int64_t n = 32;
  auto r = random_hadamard(n, 1234);
  EXPECT_EQ(r, random_hadamard(n, 1234));
  EXPECT_NE(r, random_hadamard(n, 1));
  for (float v : r) EXPECT_NEAR(std::fabs(v), 1.0 / std::sqrt(32.0), 1e-7);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < n; ++k) dot += double(r[static_cast<size_t>(i * n + k)]) * r[static_cast<size_t>(j * n + k)];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6);
    }
}

TEST(BlockRotation, DenseIsBlockDiagonalAndProductsMatchIt) {
  const int64_t n = 16, b = 4;
  BlockRotation rot(n, random_hadamard(b, 7));
  auto d = rot.dense();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      if (i / b != j / b) EXPECT_EQ(d[static_cast<size_t>(i * n + j)], 0.0f);
      else EXPECT_EQ(d[static_cast<size_t>(i * n + j)], rot.block()[static_cast<size_t>((i % b) * b + j % b)]);
    }
  // right: W[3, 16]·D; left: Dᵀ·W[16, 3]; against an f64 reference.
  std::vector<float> w(48);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i)) + 0.1f;
  auto wr = w;
  rot.right(wr.data(), 3, n);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < n; ++c) {
      double acc = 0;
      for (int64_t k = 0; k < n; ++k) acc += double(w[static_cast<size_t>(r * n + k)]) * d[static_cast<size_t>(k * n + c)];
      EXPECT_NEAR(wr[static_cast<size_t>(r * n + c)], acc, 1e-6);
    }
  auto wl = w;
  rot.left(wl.data(), n, 3);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < 3; ++c) {
      double acc = 0;
      for (int64_t k = 0; k < n; ++k) acc += double(d[static_cast<size_t>(k * n + r)]) * w[static_cast<size_t>(k * 3 + c)];
      EXPECT_NEAR(wl[static_cast<size_t>(r * 3 + c)], acc, 1e-6);
    }
}

// The Walsh–Hadamard path against the dense matrix, for Sylvester and Paley blocks.
TEST(BlockRotation, FastHadamardMatchesDenseProducts) {
  for (auto [n, b] : std::vector<std::pair<int64_t, int64_t>>{{16, 16}, {64, 16}, {24, 24}, {48, 12}, {72, 36}}) {
    BlockRotation fast = BlockRotation::hadamard(n, b, 1234);
    BlockRotation slow(n, random_hadamard(b, 1234));
    EXPECT_EQ(fast.dense(), slow.dense());
    std::vector<float> w(static_cast<size_t>(3 * n));
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.91f * static_cast<float>(i)) * (i % 7 == 0 ? 40.0f : 1.0f);
    auto a = w, c = w;
    fast.right(a.data(), 3, n);
    slow.right(c.data(), 3, n);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], c[i], 2e-5) << n << "/" << b << " right " << i;
    a = w, c = w;
    fast.left(a.data(), n, 3);
    slow.left(c.data(), n, 3);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], c[i], 2e-5) << n << "/" << b << " left " << i;
  }
  // right() works on tiles of 16 rows: whole tiles and a partial one.
  for (auto [n, b] : std::vector<std::pair<int64_t, int64_t>>{{64, 16}, {72, 36}, {2048, 2048}}) {
    BlockRotation fast = BlockRotation::hadamard(n, b, 7);
    BlockRotation slow(n, random_hadamard(b, 7));
    const int64_t rows = 37;
    std::vector<float> w(static_cast<size_t>(rows * n));
    for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.37f * static_cast<float>(i));
    auto a = w, c = w;
    fast.right(a.data(), rows, n);
    slow.right(c.data(), rows, n);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], c[i], 2e-5) << n << "/" << b << " right " << i;
  }
  // Wide rows cross the 256-column chunks of left().
  BlockRotation fast = BlockRotation::hadamard(8, 8, 3);
  BlockRotation slow(8, random_hadamard(8, 3));
  std::vector<float> w(8 * 600);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(0.13f * static_cast<float>(i));
  auto a = w, c = w;
  fast.left(a.data(), 8, 600);
  slow.left(c.data(), 8, 600);
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], c[i], 1e-5) << i;
}

ModelConfig tiny_config(bool tied) {
  ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 64;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.head_dim = 8;
  c.tie_word_embeddings = tied;
  return c;
}

TEST(QuarotPlan, BlockSizeValidation) {
  QuarotSettings s;
  s.block_size = 24;
  EXPECT_THROW(make_quarot_plan(tiny_config(false), s), Error);
  s.block_size = 128;
  try {
    make_quarot_plan(tiny_config(false), s, "w8a8.yaml: spec.process[0]");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("w8a8.yaml: spec.process[0]: block_size 128 does not divide hidden_size 64"),
              std::string::npos)
        << e.what();
  }
  s.block_size = 32;  // the head rotation falls back to head_dim 8
  QuarotPlan p = make_quarot_plan(tiny_config(false), s);
  EXPECT_EQ(p.hidden.block_size(), 32);
  EXPECT_EQ(p.head.block_size(), 8);
  s.block_size = -1;
  p = make_quarot_plan(tiny_config(false), s);
  EXPECT_EQ(p.hidden.block_size(), 64);
}

// msModelSlim's get_decompose_dim: (a − b, a + b), a² − b² = n, both 1, 2 or 4i ≤ 256.
TEST(QuarotOnline, KroneckerFactorsAreTheReferences) {
  EXPECT_EQ(kronecker_factors(1536), std::make_pair(int64_t{32}, int64_t{48}));   // SmolLM2-135M
  EXPECT_EQ(kronecker_factors(5632), std::make_pair(int64_t{64}, int64_t{88}));   // TinyLlama-1.1B
  EXPECT_EQ(kronecker_factors(25600), std::make_pair(int64_t{160}, int64_t{160}));  // Qwen3-32B
  EXPECT_EQ(kronecker_factors(12288), std::make_pair(int64_t{96}, int64_t{128}));   // Qwen3-8B
  EXPECT_EQ(kronecker_factors(128), std::make_pair(int64_t{8}, int64_t{16}));
  EXPECT_EQ(kronecker_factors(96), std::make_pair(int64_t{8}, int64_t{12}));
  EXPECT_EQ(kronecker_factors(4), std::make_pair(int64_t{2}, int64_t{2}));
  EXPECT_THROW(kronecker_factors(172), Error);  // stories260K: 2 × 86 only
  EXPECT_THROW(kronecker_factors(0), Error);
  EXPECT_THROW(kronecker_factors(300000), Error);  // beyond 256 × 256
}

ModelConfig online_config() {
  ModelConfig c = tiny_config(false);
  c.num_hidden_layers = 3;
  c.intermediate_size = 96;  // 8 × 12
  return c;
}

void expect_plan_error(const ModelConfig& c, const QuarotSettings& s, const std::string& want) {
  try {
    make_quarot_plan(c, s, "p.yaml: spec.process[0]");
    ADD_FAILURE() << "no error; wanted " << want;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("p.yaml: spec.process[0]"), std::string::npos) << e.what();
  }
}

TEST(QuarotOnline, PlanHoldsTheReferenceShapes) {
  QuarotSettings s;
  s.online = true;
  s.max_tp_size = 4;
  s.down_proj_online_layers = {0, 2};
  QuarotPlan p = make_quarot_plan(online_config(), s);
  EXPECT_EQ(p.online.heads.m(), 8);  // num_heads, blocks of max_tp_size
  EXPECT_EQ(p.online.heads.n(), 8);  // head_dim, identity
  EXPECT_TRUE(p.online.heads.right_is_identity());
  EXPECT_EQ(p.online.down.m(), 8);
  EXPECT_EQ(p.online.down.n(), 12);
  EXPECT_EQ(p.online.down_layers, (std::set<int>{0, 2}));
  EXPECT_LT(orthogonality_error(p.online.heads.left().data(), 8), 1e-6);
  EXPECT_LT(orthogonality_error(p.online.down.right().data(), 12), 1e-6);
  // The heads factor is block-diagonal in blocks of max_tp_size.
  for (int64_t i = 0; i < 8; ++i)
    for (int64_t j = 0; j < 8; ++j)
      if (i / 4 != j / 4) EXPECT_EQ(p.online.heads.left()[static_cast<size_t>(i * 8 + j)], 0.0f) << i << "," << j;
  // Offline plans have no online part.
  EXPECT_TRUE(make_quarot_plan(online_config(), {}).online.heads.empty());
}

TEST(QuarotOnline, PlanErrorsNameTheProblem) {
  QuarotSettings s;
  s.online = true;
  s.max_tp_size = 16;
  expect_plan_error(online_config(), s, "num_attention_heads 8 is not a multiple of it");
  s.max_tp_size = 2;
  s.down_proj_online_layers = {3};
  expect_plan_error(online_config(), s, "lists layer 3, but the model has layers 0 to 2");
  s.down_proj_online_layers = {1};
  ModelConfig c = online_config();
  c.intermediate_size = 172;
  expect_plan_error(c, s, "intermediate_size split into two factors");
  c.intermediate_size = 736;  // 8 × 92: no Paley construction of order 92 (msModelSlim's tables lack it too)
  expect_plan_error(c, s, "no Hadamard matrix of order 92");
  c.intermediate_size = 5632;  // 64 × 88: 88 = 44 · 2 (Paley I, q = 43), which msModelSlim's tables lack
  EXPECT_NO_THROW(make_quarot_plan(c, s));
  c = online_config();
  c.moe.num_experts = 4;
  c.moe.dense_layers = {0};
  expect_plan_error(c, s, "lists layer 1, a mixture-of-experts layer");
  s.down_proj_online_layers = {0};  // the dense layer of a MoE model is fine
  EXPECT_NO_THROW(make_quarot_plan(c, s));
}

TEST(QuarotExport, GlobalRotationAndDescriptionEntry) {
  QuarotSettings s;
  s.block_size = 16;
  QuarotPlan p = make_quarot_plan(tiny_config(true), s);
  QuarotExport e = quarot_export(tiny_config(true), p, s);
  EXPECT_TRUE(e.untie_word_embeddings);
  ASSERT_EQ(e.global_rotation.shape, (Shape{64, 64}));
  EXPECT_EQ(e.global_rotation.dtype, DType::F32);
  auto d = p.hidden.dense();
  EXPECT_TRUE(std::equal(d.begin(), d.end(), e.global_rotation.data<float>()));
  EXPECT_EQ(e.description_optional.dump(),
            R"({"quarot":{"rotation_map":{"global_rotation":"optional/quarot.safetensors"}}})");
  s.export_extra_info = false;
  QuarotExport none = quarot_export(tiny_config(false), p, s);
  EXPECT_EQ(none.global_rotation.nbytes(), 0u);
  EXPECT_TRUE(none.description_optional.empty());
  EXPECT_FALSE(none.untie_word_embeddings);
}

TEST(QuarotHead, FinalNormFusedThenRotated) {
  // Hand-sized: hidden 2, R = (1/√2)·diag(s)·[[1,1],[1,-1]]; lm_head [1, 2].
  ModelConfig c = tiny_config(false);
  c.hidden_size = 2;
  c.head_dim = 2;
  c.num_attention_heads = 1;
  c.num_key_value_heads = 1;
  QuarotPlan p = make_quarot_plan(c, {});
  std::vector<float> g{2.0f, 3.0f}, l{1.0f, 1.0f};
  quarot_rotate_head(p, g, l);
  EXPECT_EQ(g, (std::vector<float>{1.0f, 1.0f}));
  const auto& R = p.hidden.block();
  EXPECT_NEAR(l[0], 2 * R[0] + 3 * R[2], 1e-6);
  EXPECT_NEAR(l[1], 2 * R[1] + 3 * R[3], 1e-6);
}

}  // namespace
}  // namespace lwq
