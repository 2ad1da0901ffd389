#include "models/architecture.h"

#include <gtest/gtest.h>

#include "io/checkpoint.h"
#include "models/models_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

std::map<std::string, Shape> shapes(const LayerDesc& d) {
  std::map<std::string, Shape> m;
  for (const auto& t : d.tensors) m[t.name] = t.shape;
  return m;
}

TEST(Architecture, LlamaLayerOfStories260K) {
  ModelConfig cfg = load_model_config(test::stories_dir());
  LayerDesc d = layer_desc(cfg, 3);
  EXPECT_EQ(d.prefix, "model.layers.3");
  ASSERT_EQ(d.linears.size(), 7u);
  std::vector<std::string> order;
  for (const auto& l : d.linears) order.push_back(l.name);
  EXPECT_EQ(order, (std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                             "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}));
  auto s = shapes(d);
  EXPECT_EQ(s.size(), 9u);  // 7 weights + 2 norms, no biases
  EXPECT_EQ(s["self_attn.q_proj.weight"], (Shape{64, 64}));
  EXPECT_EQ(s["self_attn.k_proj.weight"], (Shape{32, 64}));
  EXPECT_EQ(s["self_attn.o_proj.weight"], (Shape{64, 64}));
  EXPECT_EQ(s["mlp.down_proj.weight"], (Shape{64, 172}));
  EXPECT_EQ(s["mlp.up_proj.weight"], (Shape{172, 64}));
  EXPECT_EQ(s["input_layernorm.weight"], (Shape{64}));
  EXPECT_EQ(s["post_attention_layernorm.weight"], (Shape{64}));
  EXPECT_THROW(layer_desc(cfg, 5), Error);
  EXPECT_THROW(layer_desc(cfg, -1), Error);
  // Every described tensor exists in the real checkpoint with that shape.
  Checkpoint ckpt = Checkpoint::open(test::stories_dir());
  for (int k = 0; k < cfg.num_hidden_layers; ++k) {
    LayerDesc dk = layer_desc(cfg, k);
    for (const auto& t : dk.tensors) EXPECT_EQ(ckpt.info(dk.prefix + "." + t.name).shape, t.shape);
  }
}

TEST(Architecture, BiasRulesPerFamily) {
  auto biases = [](const char* golden) {
    std::vector<std::string> with;
    for (const auto& l : layer_desc(load_model_config(test::golden_dir(golden)), 0).linears)
      if (l.has_bias) with.push_back(l.name);
    return with;
  };
  EXPECT_EQ(biases("qwen2"), (std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}));
  EXPECT_EQ(biases("llama_rope_llama3"), (std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj",
                                                                   "self_attn.v_proj", "self_attn.o_proj"}));
  EXPECT_TRUE(biases("llama").empty());
  EXPECT_TRUE(biases("mistral").empty());
  EXPECT_TRUE(biases("qwen3").empty());
}

TEST(Architecture, Qwen3HasPerHeadNorms) {
  ModelConfig cfg = load_model_config(test::golden_dir("qwen3"));
  auto s = shapes(layer_desc(cfg, 1));
  EXPECT_EQ(s["self_attn.q_norm.weight"], (Shape{32}));
  EXPECT_EQ(s["self_attn.k_norm.weight"], (Shape{32}));
  EXPECT_EQ(s["self_attn.q_proj.weight"], (Shape{128, 64}));
  EXPECT_EQ(s["self_attn.o_proj.weight"], (Shape{64, 128}));
  EXPECT_EQ(architecture_for(cfg).roles.q_norm, "self_attn.q_norm");
}

// Every tensor of every golden checkpoint is described exactly once.
TEST(Architecture, DescriptorsCoverGoldenCheckpoints) {
  for (const char* name : {"llama", "llama_rope_llama3", "llama_rope_yarn", "qwen2", "qwen3", "mistral"}) {
    SCOPED_TRACE(name);
    ModelConfig cfg = load_model_config(test::golden_dir(name));
    Checkpoint ckpt = Checkpoint::open(test::golden_dir(name));
    std::set<std::string> described;
    for (const auto& t : non_layer_tensors(cfg, ckpt))
      if (ckpt.contains(t.name)) described.insert(t.name);
    for (int k = 0; k < cfg.num_hidden_layers; ++k) {
      LayerDesc d = layer_desc(cfg, k);
      for (const auto& t : d.tensors) {
        EXPECT_EQ(ckpt.info(d.prefix + "." + t.name).shape, t.shape) << t.name;
        described.insert(d.prefix + "." + t.name);
      }
    }
    auto names = ckpt.tensor_names();
    EXPECT_EQ(described, std::set<std::string>(names.begin(), names.end()));
  }
}

TEST(Architecture, NonLayerTensorsTiedAndUntied) {
  ModelConfig tied = load_model_config(test::golden_dir("qwen2"));
  auto t = non_layer_tensors(tied, Checkpoint::open(test::golden_dir("qwen2")));
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(t[0].shape, (Shape{256, 64}));
  EXPECT_EQ(t[1].name, "model.norm.weight");
  EXPECT_EQ(t[2].name, "lm_head.weight");  // listed although the file has none
  ModelConfig untied = load_model_config(test::golden_dir("llama"));
  EXPECT_EQ(non_layer_tensors(untied, Checkpoint::open(test::golden_dir("llama"))).size(), 3u);
  // An untied config over a tied checkpoint: lm_head.weight is missing.
  tied.tie_word_embeddings = false;
  try {
    non_layer_tensors(tied, Checkpoint::open(test::golden_dir("qwen2")));
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'lm_head.weight'"), std::string::npos) << e.what();
  }
}

TEST(Architecture, SmoothingSubgraphsAndFusedGroups) {
  for (const char* family : {"llama", "mistral", "qwen2", "qwen3"}) {
    const Architecture* a = find_architecture(family);
    ASSERT_NE(a, nullptr);
    ASSERT_EQ(a->smooth_subgraphs.size(), 4u);
    EXPECT_EQ(a->smooth_subgraphs[0].type, "norm-linear");
    EXPECT_EQ(a->smooth_subgraphs[0].source, "input_layernorm");
    EXPECT_EQ(a->smooth_subgraphs[0].targets,
              (std::vector<std::string>{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"}));
    EXPECT_EQ(a->smooth_subgraphs[1].source, "post_attention_layernorm");
    EXPECT_EQ(a->smooth_subgraphs[1].targets, (std::vector<std::string>{"mlp.gate_proj", "mlp.up_proj"}));
    EXPECT_EQ(a->smooth_subgraphs[2].type, "ov");
    EXPECT_EQ(a->smooth_subgraphs[2].source, "self_attn.v_proj");
    EXPECT_EQ(a->smooth_subgraphs[2].targets, (std::vector<std::string>{"self_attn.o_proj"}));
    EXPECT_EQ(a->smooth_subgraphs[3].type, "up-down");
    EXPECT_EQ(a->smooth_subgraphs[3].source, "mlp.up_proj");
    EXPECT_EQ(a->fused_groups.size(), 2u);
    // Every name a subgraph mentions is a linear or a norm of the family.
    for (const auto& sg : a->smooth_subgraphs) {
      std::vector<std::string> names = sg.targets;
      names.push_back(sg.source);
      for (const auto& n : names) {
        bool known = std::any_of(a->linears.begin(), a->linears.end(), [&](auto& l) { return l.name == n; }) ||
                     std::any_of(a->norms.begin(), a->norms.end(), [&](auto& x) { return x.name == n; });
        EXPECT_TRUE(known) << family << ": " << n;
      }
    }
  }
  EXPECT_EQ(find_architecture("gpt2"), nullptr);
}

}  // namespace
}  // namespace lwq
