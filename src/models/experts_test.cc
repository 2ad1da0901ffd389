// Mixture-of-experts models: config keys, the two on-disk expert layouts,
// streaming, routing and the "bad checkpoint" messages.
#include "models/experts.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/causal_lm.h"
#include "models/models_test_util.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;

ModelConfig parse(const std::string& json) { return parse_model_config(json, "dir/config.json"); }

std::string qwen3_moe_config(const std::string& extra) {
  return R"({"model_type": "qwen3_moe", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
             "moe_intermediate_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(MoeConfig, Qwen3MoeKeysAndDefaults) {
  ModelConfig c = parse(qwen3_moe_config(R"("decoder_sparse_step": 2, "mlp_only_layers": [3])"));
  EXPECT_EQ(c.moe.num_experts, 128);  // Qwen3MoeConfig defaults
  EXPECT_EQ(c.moe.experts_per_token, 8);
  EXPECT_EQ(c.moe.expert_intermediate, 16);
  EXPECT_FALSE(c.moe.renormalize_top_k);  // norm_topk_prob defaults to false
  // (k + 1) % decoder_sparse_step == 0 and k not in mlp_only_layers
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_FALSE(c.is_moe_layer(2));
  EXPECT_FALSE(c.is_moe_layer(3));
  LayerDesc moe = layer_desc(c, 1), dense = layer_desc(c, 0);
  EXPECT_EQ(moe.num_experts, 128);
  EXPECT_EQ(moe.linears.size(), 4u + 1u + 128u * 3u);  // attention, router, experts
  EXPECT_EQ(moe.expert_linears(5).at(2)->name, "mlp.experts.5.down_proj");
  EXPECT_EQ(dense.num_experts, 0);
  EXPECT_EQ(dense.linears.size(), 7u);
}

TEST(MoeConfig, MixtralKeys) {
  ModelConfig c = parse(R"({"model_type": "mixtral", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48,
                            "num_hidden_layers": 2, "num_attention_heads": 2, "num_local_experts": 4})");
  EXPECT_EQ(c.moe.num_experts, 4);
  EXPECT_EQ(c.moe.experts_per_token, 2);
  EXPECT_EQ(c.moe.expert_intermediate, 48);
  EXPECT_TRUE(c.moe.renormalize_top_k);
  EXPECT_EQ(c.sliding_window(0), 0);  // MixtralConfig: sliding_window defaults to none
  EXPECT_EQ(layer_desc(c, 0).expert_linears(3).at(1)->name, "block_sparse_moe.experts.3.w3");
}

TEST(MoeConfig, BadKeys) {
  EXPECT_NE(error_of([] { parse(qwen3_moe_config(R"("num_experts": 4, "num_experts_per_tok": 5)")); })
                .find("num_experts_per_tok (5) is larger than num_experts (4)"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse(qwen3_moe_config(R"("mlp_only_layers": [7])")); }).find("mlp_only_layers"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse(qwen3_moe_config(R"("mlp_only_layers": 1)")); }).find("must be a list"),
            std::string::npos);
}

// A copy of a golden model folder whose safetensors is rewritten by `edit`
// (name → tensor map in, out).
template <typename Edit>
fs::path rewrite_model(const fs::path& from, const fs::path& to, Edit edit) {
  fs::create_directories(to);
  fs::copy_file(from / "config.json", to / "config.json");
  Checkpoint ckpt = Checkpoint::open(from);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : ckpt.tensor_names()) tensors.emplace_back(n, ckpt.read(n));
  edit(tensors);
  SafetensorsWriter w(to / "model.safetensors");
  for (auto& [n, t] : tensors) w.add(n, t);
  w.finish();
  return to;
}

Tensor find(std::vector<std::pair<std::string, Tensor>>& ts, const std::string& name) {
  for (auto& [n, t] : ts)
    if (n == name) return t;
  ADD_FAILURE() << name << " not found";
  return {};
}

void erase_prefix(std::vector<std::pair<std::string, Tensor>>& ts, const std::string& prefix) {
  std::erase_if(ts, [&](const auto& p) { return p.first.rfind(prefix, 0) == 0; });
}

// Stacks the per-expert Linears of the qwen3_moe golden into the output-major
// fused tensors transformers 5 writes: the same model in the other layout.
void fuse_experts(std::vector<std::pair<std::string, Tensor>>& ts, const ModelConfig& c) {
  const int64_t E = c.moe.num_experts, I = c.moe.expert_intermediate, H = c.hidden_size;
  for (int k = 0; k < c.num_hidden_layers; ++k) {
    if (!c.is_moe_layer(k)) continue;
    const std::string p = "model.layers." + std::to_string(k) + ".mlp.experts.";
    Tensor gate_up(DType::F32, {E, 2 * I, H}), down(DType::F32, {E, H, I});
    const size_t blk = static_cast<size_t>(I * H) * 4;
    for (int64_t e = 0; e < E; ++e) {
      const std::string q = p + std::to_string(e) + ".";
      std::memcpy(gate_up.bytes.data() + 2 * e * blk, find(ts, q + "gate_proj.weight").bytes.data(), blk);
      std::memcpy(gate_up.bytes.data() + (2 * e + 1) * blk, find(ts, q + "up_proj.weight").bytes.data(), blk);
      std::memcpy(down.bytes.data() + e * blk, find(ts, q + "down_proj.weight").bytes.data(), blk);
    }
    erase_prefix(ts, p);
    ts.emplace_back(p + "gate_up_proj", std::move(gate_up));
    ts.emplace_back(p + "down_proj", std::move(down));
  }
}

TEST(Experts, FusedAndPerExpertLayoutsComputeTheSameModel) {
  test::ScratchDir dir;
  const fs::path per_expert = test::golden_dir("qwen3_moe");
  const ModelConfig c = load_model_config(per_expert);
  const fs::path fused = rewrite_model(per_expert, dir.path / "fused", [&](auto& ts) { fuse_experts(ts, c); });
  Checkpoint a = Checkpoint::open(per_expert), b = Checkpoint::open(fused);
  EXPECT_EQ(expert_storage(a, c, 0), ExpertStorage::PerExpert);
  EXPECT_EQ(expert_storage(b, c, 0), ExpertStorage::Fused);
  for (int e : {0, 3, 7}) {
    LayerWeights wa = read_expert(a, c, 2, e, ExpertStorage::PerExpert);
    LayerWeights wb = read_expert(b, c, 2, e, ExpertStorage::Fused);
    for (const char* which : {"gate_proj", "up_proj", "down_proj"}) {
      const std::string n = "mlp.experts." + std::to_string(e) + "." + which + ".weight";
      EXPECT_EQ(wa.get(n), wb.get(n)) << n;
    }
  }
  std::vector<int32_t> ids = {1, 5, 9, 200, 17, 3, 44, 311};
  EXPECT_EQ(CausalLM::load(per_expert).logits(ids), CausalLM::load(fused).logits(ids));
}

// The mapped views of an expert hold exactly what read_expert copies, in
// both mappable layouts (f32 golden: read_expert keeps it in `tensors`).
TEST(Experts, MappedExpertEqualsTheReadOne) {
  test::ScratchDir dir;
  const fs::path per_expert = test::golden_dir("qwen3_moe");
  const ModelConfig c = load_model_config(per_expert);
  const fs::path fused = rewrite_model(per_expert, dir.path / "fused", [&](auto& ts) { fuse_experts(ts, c); });
  for (const fs::path& path : {per_expert, fused}) {
    Checkpoint ck = Checkpoint::open(path);
    const ExpertStorage st = expert_storage(ck, c, 2);
    ASSERT_TRUE(expert_mappable(c, 2, st));
    for (int e : {0, 5, 7}) {
      LayerWeights w = read_expert(ck, c, 2, e, st);
      ExpertView v = map_expert(ck, c, 2, e, st);
      ASSERT_EQ(v.weights.size(), 3u);
      for (const auto& [name, view] : v.weights) {
        const Tensor t = copy_view(view);
        EXPECT_EQ(to_f32(t), w.get(name)) << path << " " << name;
        const std::vector<float>& ref = w.get(name);
        EXPECT_EQ(t.numel(), static_cast<int64_t>(ref.size()));
      }
    }
  }
}

// Hand-worked: I = 2, H = 4 (so 2I = H, the case shapes cannot decide).
// Element values encode their [out, in] position in the engines' layout:
// gate(o, i) = 100 + 10·o + i, up(o, i) = 200 + 10·o + i, down(o, i) = 300 + 10·o + i.
TEST(Experts, SplitFusedExpertBothOrientations) {
  const int64_t I = 2, H = 4;
  auto f32 = [](Shape shape) { return Tensor(DType::F32, std::move(shape)); };
  auto expect = [&](const ExpertLinears& l) {
    for (int64_t o = 0; o < I; ++o)
      for (int64_t i = 0; i < H; ++i) {
        EXPECT_EQ(l.gate.data<float>()[o * H + i], 100 + 10 * o + i);
        EXPECT_EQ(l.up.data<float>()[o * H + i], 200 + 10 * o + i);
      }
    for (int64_t o = 0; o < H; ++o)
      for (int64_t i = 0; i < I; ++i) EXPECT_EQ(l.down.data<float>()[o * I + i], 300 + 10 * o + i);
    EXPECT_EQ(l.gate.shape, (Shape{I, H}));
    EXPECT_EQ(l.down.shape, (Shape{H, I}));
  };
  // Output-major (transformers 5): gate_up [2I, H] = [gate rows; up rows], down [H, I].
  Tensor gu = f32({2 * I, H}), dn = f32({H, I});
  for (int64_t o = 0; o < I; ++o)
    for (int64_t i = 0; i < H; ++i) {
      gu.data<float>()[o * H + i] = static_cast<float>(100 + 10 * o + i);
      gu.data<float>()[(I + o) * H + i] = static_cast<float>(200 + 10 * o + i);
    }
  for (int64_t o = 0; o < H; ++o)
    for (int64_t i = 0; i < I; ++i) dn.data<float>()[o * I + i] = static_cast<float>(300 + 10 * o + i);
  expect(split_fused_expert(gu, dn, FusedExperts::OutMajor, I, H));
  // Input-major (Qwen3-VL-MoE, multimodal.md A.1.1): gate_up [H, 2I] with gate = first half of the last dim
  // (x @ gate_up), down [I, H].
  Tensor gu_in = f32({H, 2 * I}), dn_in = f32({I, H});
  for (int64_t h = 0; h < H; ++h)
    for (int64_t o = 0; o < I; ++o) {
      gu_in.data<float>()[h * 2 * I + o] = static_cast<float>(100 + 10 * o + h);
      gu_in.data<float>()[h * 2 * I + I + o] = static_cast<float>(200 + 10 * o + h);
    }
  for (int64_t i = 0; i < I; ++i)
    for (int64_t h = 0; h < H; ++h) dn_in.data<float>()[i * H + h] = static_cast<float>(300 + 10 * h + i);
  expect(split_fused_expert(gu_in, dn_in, FusedExperts::InMajor, I, H));
  // bf16 (2-byte elements) goes through the same byte transpose.
  Tensor gu16(DType::BF16, {H, 2 * I}), dn16(DType::BF16, {I, H});
  for (int64_t j = 0; j < H * 2 * I; ++j) gu16.data<uint16_t>()[j] = f32_to_bf16(gu_in.data<float>()[j]);
  for (int64_t j = 0; j < I * H; ++j) dn16.data<uint16_t>()[j] = f32_to_bf16(dn_in.data<float>()[j]);
  ExpertLinears b = split_fused_expert(gu16, dn16, FusedExperts::InMajor, I, H);
  EXPECT_EQ(bf16_to_f32(b.gate.data<uint16_t>()[1 * H + 3]), 113.0f);
  EXPECT_EQ(bf16_to_f32(b.up.data<uint16_t>()[0 * H + 2]), 202.0f);
  EXPECT_EQ(bf16_to_f32(b.down.data<uint16_t>()[2 * I + 0]), 320.0f);  // values bf16 holds exactly
}

TEST(Experts, StreamedLayerEqualsTheResidentOne) {
  const fs::path dir = test::golden_dir("qwen3_moe");
  const ModelConfig c = load_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  LayerWeights whole = load_layer_weights(ckpt, c, 2);
  LayerWeights lean = load_layer_weights(ckpt, c, 2, /*with_experts=*/false);
  EXPECT_LT(lean.bytes(), whole.bytes() / 2);
  std::vector<float> h1(static_cast<size_t>(5 * c.hidden_size)), h2;
  for (size_t i = 0; i < h1.size(); ++i) h1[i] = std::sin(0.37f * static_cast<float>(i));
  std::vector<float> g1(static_cast<size_t>(3 * c.hidden_size), 0.25f);
  h2 = h1;
  std::vector<float> g2 = g1;
  const int32_t pos[5] = {0, 1, 2, 3, 4};
  SequenceRef a[2] = {{h1.data(), 5, pos}, {g1.data(), 3, pos}};
  SequenceRef b[2] = {{h2.data(), 5, pos}, {g2.data(), 3, pos}};
  std::vector<int64_t> tokens;
  decoder_layer_forward_batch(c, whole, 2, a);
  {
    ExpertStream stream(ckpt, c, 2, lean, /*prefetch=*/true);
    decoder_layer_forward_batch(c, lean, 2, b, nullptr, &stream, &tokens);
  }
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(g1, g2);
  int64_t total = 0;
  for (int64_t t : tokens) total += t;
  EXPECT_EQ(total, 8 * c.moe.experts_per_token);
  EXPECT_EQ(lean.bytes(), load_layer_weights(ckpt, c, 2, false).bytes());  // every expert released again
}

TEST(Experts, TransformedStreamHandsOutTransformedExpertsOnly) {
  // QuaRot rotates each expert as it is read, prefetched ones included; such
  // a stream never hands out mapped checkpoint bytes.
  const fs::path dir = test::golden_dir("qwen3_moe");
  const ModelConfig c = load_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  LayerWeights lean = load_layer_weights(ckpt, c, 0, /*with_experts=*/false);
  std::vector<int> seen;  // written by one reader at a time: take() waits for the pending one
  {
    ExpertStream stream(ckpt, c, 0, lean, /*prefetch=*/true, [&seen](int e, LayerWeights& w) {
      seen.push_back(e);
      w.mutable_f32("mlp.experts." + std::to_string(e) + ".down_proj.weight")[0] = 100.0f + static_cast<float>(e);
    });
    EXPECT_FALSE(stream.mappable());
    EXPECT_NE(error_of([&] { stream.take_view(0); }).find("cannot be mapped"), std::string::npos);
    for (int e = 0; e < 3; ++e)
      EXPECT_EQ(stream.take(e).get("mlp.experts." + std::to_string(e) + ".down_proj.weight")[0], 100.0f + e);
  }  // waits for the prefetch of expert 3
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
}

TEST(Experts, BadCheckpointsAreNamed) {
  test::ScratchDir dir;
  const fs::path golden = test::golden_dir("qwen3_moe");
  const ModelConfig c = load_model_config(golden);
  auto error_for = [&](const std::string& name, auto edit) {
    const fs::path m = rewrite_model(golden, dir.path / name, edit);
    return error_of([&] { load_layer_weights(Checkpoint::open(m), c, 0, false); });
  };
  std::string e = error_for("missing", [](auto& ts) { erase_prefix(ts, "model.layers.0.mlp.experts.5.up_proj"); });
  EXPECT_NE(e.find("tensor 'model.layers.0.mlp.experts.5.up_proj.weight' is missing"), std::string::npos) << e;
  e = error_for("extra", [](auto& ts) {
    Tensor t = find(ts, "model.layers.0.mlp.experts.0.up_proj.weight");
    ts.emplace_back("model.layers.0.mlp.experts.8.up_proj.weight", t);
  });
  EXPECT_NE(e.find("belongs to expert 8"), std::string::npos) << e;
  EXPECT_NE(e.find("declares 8 experts"), std::string::npos) << e;
  // Fused, but input-major where qwen3_moe is output-major: refused by shape, not guessed. (This golden
  // has H = 2I = 64, so gate_up_proj alone could not tell; down_proj [E, I, H] can.)
  e = error_for("orientation", [&](auto& ts) {
    fuse_experts(ts, c);
    for (auto& [n, t] : ts)
      if (n == "model.layers.0.mlp.experts.down_proj") t.shape = {t.shape[0], t.shape[2], t.shape[1]};
  });
  EXPECT_NE(e.find("tensor 'model.layers.0.mlp.experts.down_proj' has shape [8, 32, 64]"), std::string::npos) << e;
  EXPECT_NE(e.find("output-major"), std::string::npos) << e;
  e = error_for("both", [&](auto& ts) {
    Tensor t = find(ts, "model.layers.0.mlp.experts.0.up_proj.weight");
    fuse_experts(ts, c);
    ts.emplace_back("model.layers.0.mlp.experts.0.up_proj.weight", t);
  });
  EXPECT_NE(e.find("both fused expert tensors"), std::string::npos) << e;
}

TEST(Experts, MixtralRefusesFusedTensors) {
  test::ScratchDir dir;
  const fs::path golden = test::golden_dir("mixtral");
  const ModelConfig c = load_model_config(golden);
  const fs::path m = rewrite_model(golden, dir.path / "m", [](auto& ts) {
    ts.emplace_back("model.layers.0.block_sparse_moe.experts.gate_up_proj", Tensor(DType::F32, {1}));
  });
  const std::string e = error_of([&] { expert_storage(Checkpoint::open(m), c, 0); });
  EXPECT_NE(e.find("not a layout of this family"), std::string::npos) << e;
}

TEST(Experts, UpcycledMixtralComputesStories260K) {
  // ../shared/models/stories260K-mixtral: the dense MLP copied into 4 identical
  // experts, top-2 renormalised: the same function as stories260K.
  const fs::path shared = fs::path(LWQ_SOURCE_DIR) / "../shared/models";
  if (!fs::exists(shared / "stories260K-mixtral")) GTEST_SKIP() << "shared/models not present";
  CausalLM dense = CausalLM::load(shared / "stories260K"), moe = CausalLM::load(shared / "stories260K-mixtral");
  std::vector<int32_t> ids = {1, 403, 407, 261, 378, 365, 1243 % 512, 259, 300, 411, 266, 392};
  EXPECT_LT(test::max_rel_err(moe.logits(ids), dense.logits(ids)), 1e-5);
  const int32_t bos = 1;
  EXPECT_EQ(moe.greedy({&bos, 1}, 40), dense.greedy({&bos, 1}, 40));
}

}  // namespace
}  // namespace lwq
