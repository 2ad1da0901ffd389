// The shipped practice files (configs/) and the msModelSlim-style test
// configs (tests/data/configs/) parse into what they say.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "config/module_matcher.h"
#include "config/quant_config.h"

namespace lwq {
namespace {

const std::filesystem::path kRepo = LWQ_SOURCE_DIR;

ServiceConfig load(const std::string& rel) { return load_service_config(kRepo / rel); }

void expect_metadata(const ServiceConfig& c, const std::string& id, int w_bit, int a_bit) {
  EXPECT_EQ(c.apiversion, "modelslim_v1");
  EXPECT_EQ(c.metadata.config_id, id);
  EXPECT_EQ(c.metadata.label.w_bit, w_bit);
  EXPECT_EQ(c.metadata.label.a_bit, a_bit);
}

void expect_single_ascend_saver(const ServiceConfig& c, int64_t part) {
  ASSERT_EQ(c.save.size(), 1u);
  EXPECT_EQ(c.save[0].type, "ascendv1_saver");
  EXPECT_EQ(c.save[0].part_file_size, part);
}

TEST(PracticeConfigs, W8A8Static) {
  ServiceConfig c = load("configs/w8a8.yaml");
  expect_metadata(c, "w8a8", 8, 8);
  EXPECT_EQ(c.runner, RunnerType::LayerWise);
  EXPECT_EQ(c.dataset, "calib_zh_en.jsonl");
  expect_single_ascend_saver(c, 4);
  ASSERT_EQ(c.process.size(), 2u);
  // iter_smooth first, with msModelSlim's defaults (spec §1.6), as the reference W8A8 practices.
  EXPECT_EQ(c.process[0].type, "iter_smooth");
  EXPECT_EQ(c.process[0].smooth.alpha, 0.9);
  EXPECT_EQ(c.process[0].smooth.scale_min, 1e-5);
  EXPECT_TRUE(c.process[0].smooth.symmetric);
  EXPECT_EQ(c.process[0].smooth.enable_subgraph_type.size(), 4u);
  const LinearQConfig& q = c.process[1].qconfig;
  EXPECT_EQ(export_type_of(q), "W8A8");
  EXPECT_EQ(q.act.scope, QScope::PerTensor);
  EXPECT_FALSE(q.act.symmetric);  // msModelSlim's static W8A8 practices use asymmetric activations
  EXPECT_TRUE(q.weight.symmetric);
  EXPECT_FALSE(is_data_free(q));
  EXPECT_TRUE(c.warnings.empty());
}

TEST(PracticeConfigs, W8A8Dynamic) {
  ServiceConfig c = load("configs/w8a8_dynamic.yaml");
  expect_metadata(c, "w8a8_dynamic", 8, 8);
  EXPECT_EQ(c.runner, RunnerType::LayerWise);
  EXPECT_EQ(c.dataset, "calib_zh_en.jsonl");
  expect_single_ascend_saver(c, 4);
  ASSERT_EQ(c.process.size(), 1u);
  EXPECT_EQ(export_type_of(c.process[0].qconfig), "W8A8_DYNAMIC");
  EXPECT_TRUE(is_data_free(c.process[0].qconfig));
  EXPECT_TRUE(c.warnings.empty());
}

TEST(PracticeConfigs, W8A16) {
  ServiceConfig c = load("configs/w8a16.yaml");
  expect_metadata(c, "w8a16", 8, 16);
  expect_single_ascend_saver(c, 4);
  ASSERT_EQ(c.process.size(), 1u);
  EXPECT_EQ(export_type_of(c.process[0].qconfig), "W8A16");
  EXPECT_TRUE(c.process[0].qconfig.weight.symmetric);
  EXPECT_TRUE(is_data_free(c.process[0].qconfig));
  EXPECT_TRUE(c.warnings.empty());
}

TEST(PracticeConfigs, ConfigIdEqualsFileStem) {
  for (const char* stem : {"w8a8", "w8a8_dynamic", "w8a16", "w4a8", "w8a8_mxfp8"})
    EXPECT_EQ(load(std::string("configs/") + stem + ".yaml").metadata.config_id, stem);
}

// The first child whose include/exclude selects `name` (first match wins).
const ProcessorConfig* first_match(const std::vector<ProcessorConfig>& procs, const std::string& name) {
  for (const auto& p : procs) {
    if (p.type == "group") {
      if (const ProcessorConfig* c = first_match(p.configs, name)) return c;
    } else if (is_selected(p.include, p.exclude, name)) {
      return &p;
    }
  }
  return nullptr;
}

std::string type_for(const ServiceConfig& c, const std::string& name) {
  const ProcessorConfig* p = first_match(c.process, name);
  return p ? export_type_of(p->qconfig) : "FLOAT";
}

TEST(PracticeConfigs, W4A8Experts) {
  ServiceConfig c = load("configs/w4a8.yaml");
  expect_metadata(c, "w4a8", 4, 8);
  expect_single_ascend_saver(c, 4);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(type_for(c, "model.layers.3.mlp.experts.17.down_proj"), "W4A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.3.mlp.experts.0.gate_proj"), "W4A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.3.mlp.shared_expert.up_proj"), "W8A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.3.self_attn.o_proj"), "W8A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.3.mlp.gate_proj"), "W8A8_DYNAMIC");  // dense MLP
  EXPECT_EQ(type_for(c, "model.layers.3.mlp.gate"), "FLOAT");             // the router
  EXPECT_EQ(type_for(c, "model.layers.1.block_sparse_moe.experts.2.w2"), "W4A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.1.block_sparse_moe.gate"), "FLOAT");
  const ProcessorConfig* p = first_match(c.process, "model.layers.0.mlp.experts.1.up_proj");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->qconfig.weight.method, "ssz");
  EXPECT_TRUE(is_data_free(p->qconfig));
}

TEST(PracticeConfigs, W8A8Mxfp8) {
  ServiceConfig c = load("configs/w8a8_mxfp8.yaml");
  expect_metadata(c, "w8a8_mxfp8", 8, 8);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(type_for(c, "model.layers.0.self_attn.q_proj"), "W8A8_MXFP8");
  EXPECT_EQ(type_for(c, "model.layers.0.mlp.gate"), "FLOAT");
  EXPECT_TRUE(is_data_free(c.process[0].qconfig));
}

// Every scheme configuration of tests/cli/schemes.sh loads.
TEST(PracticeConfigs, SchemeTestConfigs) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(kRepo / "tests/data/configs/schemes")) {
    SCOPED_TRACE(e.path().string());
    ServiceConfig c = load_service_config(e.path());
    EXPECT_FALSE(c.process.empty());
    ++n;
  }
  EXPECT_GE(n, 19);
}

TEST(TestConfigs, MoeGroupWithAnchorsAndBraces) {
  ServiceConfig c = load("tests/data/configs/moe_w8a8_dynamic_group.yaml");
  expect_metadata(c, "moe_w8a8_dynamic_group", 8, 8);
  EXPECT_EQ(c.metadata.verified_model_types.size(), 2u);
  EXPECT_EQ(c.metadata.verified_tags.at("Qwen3-30B")[0][0], "vLLM_Ascend");
  EXPECT_EQ(c.runner, RunnerType::Auto);
  ASSERT_EQ(c.process.size(), 1u);
  ASSERT_EQ(c.process[0].configs.size(), 3u);
  EXPECT_TRUE(c.warnings.empty());
  EXPECT_EQ(type_for(c, "model.layers.3.self_attn.q_proj"), "W8A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.47.mlp.experts.5.up_proj"), "W8A16");
  EXPECT_EQ(type_for(c, "model.layers.1.mlp.experts.0.down_proj"), "W8A16");
  EXPECT_EQ(type_for(c, "model.layers.4.mlp.experts.0.down_proj"), "W8A8_DYNAMIC");
  EXPECT_EQ(type_for(c, "model.layers.4.mlp.gate"), "FLOAT");  // router excluded
  EXPECT_EQ(type_for(c, "model.layers.4.mlp.shared_expert_gate"), "FLOAT");
}

TEST(TestConfigs, DenseW8A8WithMergeKeys) {
  ServiceConfig c = load("tests/data/configs/llama_w8a8_merge_keys.yaml");
  expect_metadata(c, "llama_w8a8_merge_keys", 8, 8);
  EXPECT_EQ(c.runner, RunnerType::LayerWise);
  expect_single_ascend_saver(c, 0);
  ASSERT_EQ(c.process.size(), 3u);
  for (const auto& p : c.process) {
    EXPECT_EQ(p.type, "linear_quant");  // merged from base_processor
    EXPECT_TRUE(p.exclude.empty());
  }
  EXPECT_TRUE(c.process[1].qconfig.act.symmetric);   // override inside the merged act
  EXPECT_FALSE(c.process[2].qconfig.act.symmetric);  // the anchor itself is untouched
  EXPECT_EQ(type_for(c, "model.layers.2.mlp.down_proj"), "W8A16");
  EXPECT_EQ(type_for(c, "model.layers.3.mlp.down_proj"), "W8A8");
  EXPECT_EQ(type_for(c, "model.layers.0.self_attn.k_proj"), "W8A8");
  EXPECT_EQ(type_for(c, "model.layers.0.self_attn.rotary_emb"), "FLOAT");
  EXPECT_TRUE(c.warnings.empty());
}

TEST(TestConfigs, NestedGroupsWeightOnly) {
  ServiceConfig c = load("tests/data/configs/default_w8a16_nested.yaml");
  expect_metadata(c, "default_w8a16_nested", 8, 16);
  EXPECT_EQ(c.runner, RunnerType::ModelWise);
  EXPECT_EQ(c.dataset, "mix_calib.jsonl");
  ASSERT_EQ(c.process.size(), 1u);
  ASSERT_EQ(c.process[0].configs.size(), 2u);
  EXPECT_EQ(c.process[0].configs[0].type, "group");
  const ProcessorConfig* sym = first_match(c.process, "model.layers.3.self_attn.q_proj");
  ASSERT_NE(sym, nullptr);
  EXPECT_TRUE(sym->qconfig.weight.symmetric);
  const ProcessorConfig* asym = first_match(c.process, "model.layers.12.mlp.down_proj");
  ASSERT_NE(asym, nullptr);
  EXPECT_FALSE(asym->qconfig.weight.symmetric);
  EXPECT_EQ(first_match(c.process, "model.layers.7.mlp.down_proj"), asym);
  EXPECT_EQ(first_match(c.process, "model.layers.20.mlp.down_proj"), sym);
  ASSERT_EQ(c.warnings.size(), 1u);  // asymmetric W8A16 portability warning
}

// The Wan2.1 practices (configs/wan/): the reference's wan2_1_w8a8_dynamic
// scheme and lwquant's static W8A8, both mindie_format_saver in one file.
TEST(PracticeConfigs, Wan) {
  for (const char* name : {"w8a8_dynamic", "w8a8"}) {
    ServiceConfig c = load(std::string("configs/wan/") + name + ".yaml");
    EXPECT_EQ(c.apiversion, "multimodal_sd_modelslim_v1");
    EXPECT_EQ(c.runner, RunnerType::LayerWise);
    ASSERT_EQ(c.save.size(), 1u);
    EXPECT_EQ(c.save[0].type, "mindie_format_saver");
    EXPECT_EQ(c.save[0].part_file_size, 0);
    ASSERT_EQ(c.process.size(), 1u);
    EXPECT_EQ(export_type_of(c.process[0].qconfig), std::string(name) == "w8a8" ? "W8A8" : "W8A8_DYNAMIC");
    EXPECT_EQ(c.process[0].exclude, std::vector<std::string>{"*ffn.2*"});
    ASSERT_TRUE(c.multimodal_sd.has_value());
    EXPECT_FALSE(c.multimodal_sd->enable_dump);
    EXPECT_TRUE(c.warnings.empty());
  }
}

}  // namespace
}  // namespace lwq
