#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/quant_config.h"
#include "util/error.h"

namespace lwq {
namespace {

ServiceConfig parse(const std::string& yaml) { return parse_service_config(yaml, "test.yaml"); }

std::string error_of(const std::string& yaml) {
  try {
    parse(yaml);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected lwq::Error for:\n" << yaml;
  return "";
}

void expect_error(const std::string& yaml, const std::vector<std::string>& parts) {
  std::string msg = error_of(yaml);
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

bool has_warning(const ServiceConfig& c, const std::vector<std::string>& parts) {
  for (const auto& w : c.warnings) {
    bool all = true;
    for (const auto& p : parts) all = all && w.find(p) != std::string::npos;
    if (all) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

const std::string kW8A8Dyn = R"(
        act: {scope: per_token, dtype: int8, symmetric: true, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax})";

// One linear_quant with the given qconfig body (indented under `qconfig:`).
std::string one_processor(const std::string& qconfig_body, const std::string& extra_spec = "") {
  return "apiversion: modelslim_v1\nspec:\n  process:\n    - type: linear_quant\n      qconfig:" + qconfig_body +
         "\n  save:\n    - type: ascendv1_saver\n" + extra_spec;
}

TEST(ServiceConfig, MinimalWeightOnlyDefaults) {
  ServiceConfig c = parse(R"(apiversion: modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
)");
  EXPECT_EQ(c.apiversion, "modelslim_v1");
  EXPECT_EQ(c.runner, RunnerType::Auto);
  EXPECT_EQ(c.dataset, "mix_calib.jsonl");
  ASSERT_EQ(c.process.size(), 1u);
  const ProcessorConfig& p = c.process[0];
  EXPECT_EQ(p.type, "linear_quant");
  EXPECT_EQ(p.yaml_path, "spec.process[0]");
  EXPECT_EQ(p.include, std::vector<std::string>{"*"});
  EXPECT_TRUE(p.exclude.empty());
  EXPECT_EQ(p.qconfig.act.dtype, QDtype::Float);
  EXPECT_EQ(p.qconfig.act.method, "none");
  EXPECT_EQ(p.qconfig.weight.dtype, QDtype::Int8);
  EXPECT_EQ(p.qconfig.weight.scope, QScope::PerChannel);
  EXPECT_EQ(export_type_of(p.qconfig), "W8A16");
  EXPECT_TRUE(is_data_free(p.qconfig));
  EXPECT_TRUE(c.save.empty());
  EXPECT_TRUE(has_warning(c, {"spec.save", "nothing will be written"})) << joined(c.warnings);
  EXPECT_EQ(c.metadata.config_id, "Unknown");
}

TEST(ServiceConfig, FullSpecFields) {
  ServiceConfig c = parse(one_processor(kW8A8Dyn, "    - {type: mindie_format_saver, part_file_size: 0}\n  runner: dp_layer_wise\n  dataset: /data/calib.jsonl\n  prior: []\n"));
  EXPECT_EQ(c.runner, RunnerType::DpLayerWise);
  EXPECT_EQ(c.dataset, "/data/calib.jsonl");
  ASSERT_EQ(c.save.size(), 2u);
  EXPECT_EQ(c.save[0].type, "ascendv1_saver");
  EXPECT_EQ(c.save[0].part_file_size, 4);
  EXPECT_EQ(c.save[0].yaml_path, "spec.save[0]");
  EXPECT_EQ(c.save[1].type, "mindie_format_saver");
  EXPECT_EQ(c.save[1].part_file_size, 0);
  EXPECT_EQ(export_type_of(c.process[0].qconfig), "W8A8_DYNAMIC");
  EXPECT_TRUE(c.warnings.empty()) << joined(c.warnings);
}

TEST(ServiceConfigErrors, BadApiversion) {
  expect_error("apiversion: modelslim_v0\nspec: {}\n", {"test.yaml:1: apiversion", "modelslim_v0",
                                                        "lwquant supports modelslim_v1, multimodal_vlm"});
  expect_error("apiversion: v2\nspec: {}\n", {"unknown value 'v2'", "multimodal_sd_modelslim_v1",
                                              "modelslim_convert"});
  expect_error("spec: {}\n", {"test.yaml", "missing 'apiversion'", "modelslim_v1"});
}

TEST(ServiceConfigErrors, UnknownProcessorType) {
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - type: foo_quant\n",
               {"test.yaml:4: spec.process[0].type", "unknown processor type 'foo_quant'",
                "valid: linear_quant, group", "iter_smooth"});
}

TEST(ServiceConfigErrors, UnsupportedProcessorType) {
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - type: awq\n",
               {"spec.process[0].type", "processor type 'awq' is not supported by lwquant yet (supported: "
                "linear_quant, group, iter_smooth, smooth_quant, flex_smooth_quant, quarot)"});
}

TEST(ServiceConfigErrors, BadScopeValueNamesPathAndAllowedValues) {
  std::string yaml = R"(apiversion: modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
    - type: linear_quant
      qconfig:
        act:
          scope: per_row
          dtype: int8
          symmetric: true
          method: minmax
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
)";
  expect_error(yaml, {"test.yaml:10: spec.process[1].qconfig.act.scope", "invalid value 'per_row'",
                      "allowed: per_tensor, per_channel, per_group, per_block, per_token, pd_mix, per_head, "
                      "dual_scale"});
}

TEST(ServiceConfigErrors, BadDtypeValue) {
  expect_error(one_processor("\n        weight: {scope: per_channel, dtype: int16, symmetric: true, method: minmax}"),
               {"spec.process[0].qconfig.weight.dtype", "'int16'", "int8, int4, fp8_e4m3, mxfp8, mxfp4, float"});
  // "placeholder" exists only inside msModelSlim.
  expect_error(one_processor("\n        weight: {scope: per_channel, dtype: placeholder, symmetric: true, method: minmax}"),
               {"spec.process[0].qconfig.weight.dtype"});
}

TEST(ServiceConfigErrors, MissingWeight) {
  expect_error(one_processor("\n        act: {scope: per_token, dtype: int8, symmetric: true, method: minmax}"),
               {"spec.process[0].qconfig", "missing required key 'weight'"});
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - type: linear_quant\n      include: ['*']\n",
               {"spec.process[0]", "qconfig"});
}

TEST(ServiceConfigErrors, MissingMethod) {
  expect_error(one_processor("\n        weight: {scope: per_channel, dtype: int8, symmetric: true}"),
               {"test.yaml:6: spec.process[0].qconfig.weight", "missing required key 'method'"});
  expect_error(one_processor("\n        weight: {scope: per_channel, dtype: int8, method: minmax}"),
               {"spec.process[0].qconfig.weight", "'symmetric'"});
}

TEST(ServiceConfigErrors, UnsupportedCombination) {
  expect_error(one_processor(R"(
        act: {scope: per_token, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax})"),
               {"test.yaml:6: spec.process[0].qconfig", "act int8/per_token/asym/minmax + weight int8/per_channel/sym/minmax",
                "no export type", "W8A8: act int8/per_tensor/sym|asym/minmax", "W8A8_DYNAMIC:", "W8A16:"});
  // A valid msModelSlim scheme with an ext lwquant refuses (dual blocks must hold whole MX blocks).
  expect_error(one_processor(R"(
        act: {scope: dual_scale, dtype: mxfp4, symmetric: true, method: dualscale, ext: {dual_block_size: 100}}
        weight: {scope: dual_scale, dtype: mxfp4, symmetric: true, method: dualscale, ext: {dual_block_size: 100}})"),
               {"spec.process[0].qconfig", "dual_block_size must be a positive multiple of 32", "got 100"});
  // Static activations need symmetric weights.
  expect_error(one_processor(R"(
        act: {scope: per_tensor, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: false, method: minmax})"),
               {"act int8/per_tensor/asym/minmax + weight int8/per_channel/asym/minmax"});
}

TEST(ServiceConfigErrors, Savers) {
  expect_error("apiversion: modelslim_v1\nspec:\n  save:\n    - type: foo_saver\n",
               {"test.yaml:4: spec.save[0].type", "unknown save type 'foo_saver'", "ascendv1_saver"});
  expect_error("apiversion: modelslim_v1\nspec:\n  save:\n    - type: compressed_tensors\n",
               {"spec.save[0].type", "'compressed_tensors' is not supported by lwquant yet"});
  expect_error("apiversion: modelslim_v1\nspec:\n  save:\n    - {type: mindie_format_saver}\n    - {type: mindie_format_saver}\n",
               {"spec.save[0] and spec.save[1] are both 'mindie_format_saver'", "same files"});
  expect_error("apiversion: modelslim_v1\nspec:\n  save:\n    - type: ascendv1_saver\n      part_file_size: -1\n",
               {"test.yaml:5: spec.save[0].part_file_size", "must be >= 0", "-1"});
  expect_error("apiversion: modelslim_v1\nspec:\n  save:\n    - type: ascendv1_saver\n      part_file_size: 2.5\n",
               {"spec.save[0].part_file_size", "expected an integer"});
  expect_error("apiversion: modelslim_v1\nspec:\n  save:\n    - part_file_size: 2\n", {"spec.save[0]", "missing 'type'"});
}

TEST(ServiceConfigErrors, YamlSyntaxErrorNamesFileAndLine) {
  std::string msg = error_of("apiversion: modelslim_v1\nspec:\n  process:\n    - type: linear_quant\n"
                             "      include: [\"*mlp*\"\n  save: []\n");
  EXPECT_NE(msg.find("test.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("test.yaml:5:") != std::string::npos || msg.find("test.yaml:6:") != std::string::npos) << msg;
  std::string tab = error_of("apiversion: modelslim_v1\nspec:\n\truntime: x\n");
  EXPECT_NE(tab.find("test.yaml:3:"), std::string::npos) << tab;
}

TEST(ServiceConfigErrors, OtherSpecValues) {
  expect_error("apiversion: modelslim_v1\nspec:\n  runner: fast\n",
               {"spec.runner", "'fast'", "auto, layer_wise, model_wise, dp_layer_wise"});
  expect_error("apiversion: modelslim_v1\nspec:\n  dataset: " + std::string(4097, 'a') + "\n",
               {"spec.dataset", "4097 characters", "4096"});
  EXPECT_EQ(parse("apiversion: modelslim_v1\nspec:\n  dataset: " + std::string(4096, 'a') + "\n").dataset.size(), 4096u);
  expect_error("apiversion: modelslim_v1\nspec:\n  prior:\n    - process: []\n", {"spec.prior", "not supported"});
  expect_error(one_processor("\n        weight: {scope: per_channel, dtype: int8, symmetric: maybe, method: minmax}"),
               {"spec.process[0].qconfig.weight.symmetric", "expected a boolean", "'maybe'"});
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - type: linear_quant\n      include: '*'\n"
               "      qconfig: {weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}}\n",
               {"spec.process[0].include", "list of strings"});
  expect_error("apiversion: modelslim_v1\nspec:\n  process: {type: linear_quant}\n", {"spec.process", "list"});
  expect_error("", {"test.yaml", "empty"});
  expect_error("- a\n- b\n", {"test.yaml", "mapping"});
  expect_error("apiversion: modelslim_v1\n---\napiversion: modelslim_v1\n", {"2 YAML documents"});
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - type: group\n",
               {"spec.process[0]", "configs"});
}

TEST(ServiceConfig, UnknownKeysWarnWithPaths) {
  ServiceConfig c = parse(R"(apiversion: modelslim_v1
anchors_live_here: {a: 1}
metadata: {config_id: x, extra_meta: 1}
spec:
  runer: layer_wise
  process:
    - type: linear_quant
      includes: ["*mlp*"]
      qconfig:
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax, granularity: 2}
        bias: {}
  save:
    - type: ascendv1_saver
      compress: true
)");
  EXPECT_TRUE(has_warning(c, {"test.yaml:5: spec", "'runer'"})) << joined(c.warnings);
  EXPECT_TRUE(has_warning(c, {"spec.process[0]", "'includes'"})) << joined(c.warnings);
  EXPECT_TRUE(has_warning(c, {"spec.process[0].qconfig.weight", "'granularity'"})) << joined(c.warnings);
  EXPECT_TRUE(has_warning(c, {"spec.process[0].qconfig", "'bias'"})) << joined(c.warnings);
  EXPECT_TRUE(has_warning(c, {"spec.save[0]", "'compress'"})) << joined(c.warnings);
  EXPECT_FALSE(has_warning(c, {"anchors_live_here"})) << joined(c.warnings);
  EXPECT_FALSE(has_warning(c, {"extra_meta"})) << joined(c.warnings);
  EXPECT_EQ(c.warnings.size(), 5u) << joined(c.warnings);
  EXPECT_EQ(c.runner, RunnerType::Auto);  // the misspelt key had no effect
}

TEST(ServiceConfig, AnchorsAliasesAndMergeKeys) {
  ServiceConfig c = parse(R"(apiversion: modelslim_v1
w8a8_dyn: &w8a8_dyn
  act: &dyn_act {scope: per_token, dtype: int8, symmetric: True, method: minmax}
  weight: &w8 {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
static_act: &static_act
  <<: *dyn_act
  scope: per_tensor
  symmetric: False
lq: &lq {type: linear_quant}
spec:
  process:
    - type: group
      configs:
        - {type: linear_quant, qconfig: *w8a8_dyn, include: ["*self_attn*"]}
        - <<: *lq
          qconfig: {act: *static_act, weight: *w8}
          include: ["model.layers.{1,2,8}.mlp.up_proj"]
          exclude: ["*gate*", "*mlp.experts.*"]
        - <<: [*lq, {include: ["ignored"], exclude: ["*x*"]}]
          include: ["*"]
          qconfig:
            <<: *w8a8_dyn
            act: {<<: *dyn_act, method: minmax}
)");
  ASSERT_EQ(c.process.size(), 1u);
  const auto& g = c.process[0];
  EXPECT_EQ(g.type, "group");
  ASSERT_EQ(g.configs.size(), 3u);
  EXPECT_EQ(g.configs[0].qconfig.act.scope, QScope::PerToken);
  EXPECT_EQ(export_type_of(g.configs[0].qconfig), "W8A8_DYNAMIC");
  EXPECT_EQ(g.configs[1].type, "linear_quant");
  EXPECT_EQ(g.configs[1].yaml_path, "spec.process[0].configs[1]");
  EXPECT_EQ(g.configs[1].qconfig.act.scope, QScope::PerTensor);  // explicit key beats merged
  EXPECT_FALSE(g.configs[1].qconfig.act.symmetric);
  EXPECT_EQ(g.configs[1].qconfig.act.method, "minmax");           // merged
  EXPECT_EQ(export_type_of(g.configs[1].qconfig), "W8A8");
  EXPECT_EQ(g.configs[1].include, std::vector<std::string>{"model.layers.{1,2,8}.mlp.up_proj"});
  EXPECT_EQ(g.configs[1].exclude, (std::vector<std::string>{"*gate*", "*mlp.experts.*"}));
  EXPECT_EQ(g.configs[2].include, std::vector<std::string>{"*"});  // explicit beats merged list
  EXPECT_EQ(g.configs[2].exclude, std::vector<std::string>{"*x*"});  // from the second merged map
  EXPECT_EQ(g.configs[2].qconfig.act.scope, QScope::PerToken);
  EXPECT_TRUE(is_data_free(g.configs[2].qconfig));
  // The anchor itself is unchanged by the merge that overrode it.
  EXPECT_EQ(g.configs[0].qconfig.act.scope, QScope::PerToken);
}

TEST(ServiceConfig, GroupNestingAndErrorPaths) {
  ServiceConfig c = parse(R"(apiversion: modelslim_v1
spec:
  process:
    - type: group
      configs:
        - type: group
          configs:
            - type: linear_quant
              qconfig: {weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}}
        - type: linear_quant
          qconfig: {weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}}
    - type: group
      configs: []
)");
  ASSERT_EQ(c.process.size(), 2u);
  ASSERT_EQ(c.process[0].configs.size(), 2u);
  ASSERT_EQ(c.process[0].configs[0].configs.size(), 1u);
  EXPECT_EQ(c.process[0].configs[0].configs[0].yaml_path, "spec.process[0].configs[0].configs[0]");
  EXPECT_TRUE(has_warning(c, {"spec.process[1].configs", "empty group"})) << joined(c.warnings);

  expect_error(R"(apiversion: modelslim_v1
spec:
  process:
    - type: group
      configs:
        - type: linear_quant
          qconfig: {weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}}
        - type: linear_quant
          qconfig:
            act: {scope: per_sample, dtype: int8, symmetric: true, method: minmax}
            weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
)",
               {"test.yaml:10: spec.process[0].configs[1].qconfig.act.scope", "'per_sample'"});
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - type: group\n      configs:\n        - type: awq\n",
               {"spec.process[0].configs[0].type", "'awq' is not supported by lwquant yet"});
}

TEST(ServiceConfig, ScalarsExtAndWarnings) {
  ServiceConfig c = parse(R"(apiversion: modelslim_v1
metadata:
  config_id: demo
  score: 95.5
  label: {w_bit: 8, a_bit: 16, is_sparse: no, kv_cache: False}
  verified_model_types: [Llama-3-8B]
  verified_tags: {Llama-3-8B: [[vLLM_Ascend, Atlas_A2_Inference]]}
spec:
  runner: model_wise
  process:
    - type: linear_quant
      qconfig:
        weight:
          scope: per_channel
          dtype: int8
          symmetric: off
          method: minmax
          ext: {aggregation_type: mean, step: 50, ratio: 0.5, flag: yes, list: [1, "2"], none: ~}
  save:
    - type: ascendv1_saver
      save_directory: out/x
      ext: {anything: 1}
  dataset: boolq.jsonl
  dataset: calib_zh_en.jsonl
)");
  EXPECT_EQ(c.metadata.config_id, "demo");
  EXPECT_DOUBLE_EQ(c.metadata.score, 95.5);
  EXPECT_EQ(c.metadata.label.w_bit, 8);
  EXPECT_EQ(c.metadata.label.a_bit, 16);
  EXPECT_FALSE(c.metadata.label.is_sparse);
  EXPECT_EQ(c.metadata.verified_model_types, std::vector<std::string>{"Llama-3-8B"});
  ASSERT_EQ(c.metadata.verified_tags.at("Llama-3-8B").size(), 1u);
  EXPECT_EQ(c.metadata.verified_tags.at("Llama-3-8B")[0][1], "Atlas_A2_Inference");
  EXPECT_EQ(c.runner, RunnerType::ModelWise);
  const QConfig& w = c.process[0].qconfig.weight;
  EXPECT_FALSE(w.symmetric);
  EXPECT_EQ(w.ext["aggregation_type"], "mean");
  EXPECT_EQ(w.ext["step"], 50);
  EXPECT_EQ(w.ext["ratio"], 0.5);
  EXPECT_EQ(w.ext["flag"], true);
  EXPECT_EQ(w.ext["list"], nlohmann::json::parse(R"([1, "2"])"));
  EXPECT_TRUE(w.ext["none"].is_null());
  EXPECT_EQ(export_type_of(c.process[0].qconfig), "W8A16");
  EXPECT_TRUE(has_warning(c, {"spec.process[0].qconfig", "asymmetric W8A16"})) << joined(c.warnings);
  EXPECT_TRUE(has_warning(c, {"spec.save[0]", "save_directory"})) << joined(c.warnings);
  EXPECT_TRUE(has_warning(c, {"duplicate key 'dataset'"})) << joined(c.warnings);
  EXPECT_EQ(c.dataset, "calib_zh_en.jsonl");  // last wins, as PyYAML
}

TEST(ServiceConfig, EmptyIncludeWarns) {
  ServiceConfig c = parse("apiversion: modelslim_v1\nspec:\n  process:\n    - type: linear_quant\n      include: []\n"
                          "      qconfig: {weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}}\n");
  EXPECT_TRUE(c.process[0].include.empty());
  EXPECT_TRUE(has_warning(c, {"spec.process[0].include", "selects nothing"})) << joined(c.warnings);
}

TEST(ServiceConfig, AliasBombIsRejected) {
  std::string yaml = "apiversion: modelslim_v1\na: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  std::string prev = "a";
  for (char name : std::string("bcdef")) {
    yaml += std::string(1, name) + ": &" + name + " [";
    for (int i = 0; i < 10; ++i) yaml += (i ? ", *" : "*") + prev;
    yaml += "]\n";
    prev = std::string(1, name);
  }
  yaml += "spec:\n  process:\n    - type: linear_quant\n      qconfig:\n        weight: {scope: per_channel, "
          "dtype: int8, symmetric: true, method: minmax, ext: {x: *f}}\n";
  expect_error(yaml, {"spec.process[0].qconfig.weight.ext", "too large"});
}

TEST(ServiceConfig, LoadFromFileNamesThePath) {
  EXPECT_THROW(load_service_config("/nonexistent/dir/x.yaml"), Error);
}


// ---- outlier suppression processors (issue 9) ----

ServiceConfig parse_outlier(const std::string& yaml) {
  return parse_service_config(yaml, "test.yaml");
}

void expect_outlier_error(const std::string& yaml, const std::vector<std::string>& parts) {
  std::string msg;
  try {
    parse_outlier(yaml);
    ADD_FAILURE() << "expected lwq::Error for:\n" << yaml;
  } catch (const Error& e) {
    msg = e.what();
  }
  for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

const char* kW8A8 = R"(
    - type: linear_quant
      qconfig:
        act: {scope: per_tensor, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
)";

std::string doc(const std::string& processors) {
  return "apiversion: modelslim_v1\nspec:\n  process:\n" + processors;
}

TEST(OutlierProcessors, Qwen3VlMoeProcessListParsesWithDefaults) {
  // The process list of msModelSlim's qwen3_vl_moe_w8a8.yaml (on the text model).
  ServiceConfig c = parse_outlier(doc(std::string(R"(    - type: "quarot"
      block_size: 32
    - type: "iter_smooth"
      alpha: 0.9
      scale_min: 1e-5
      symmetric: True
      enable_subgraph_type:
        - 'norm-linear'
        - 'linear-linear'
        - 'ov'
        - 'up-down'
      include:
        - "*"
)") + kW8A8));
  ASSERT_EQ(c.process.size(), 3u);
  EXPECT_EQ(c.process[0].type, "quarot");
  EXPECT_EQ(c.process[0].quarot.block_size, 32);
  EXPECT_EQ(c.process[0].quarot.max_tp_size, 4);
  EXPECT_TRUE(c.process[0].quarot.export_extra_info);
  EXPECT_TRUE(processor_is_data_free(c.process[0]));
  EXPECT_TRUE(c.process[1].is_smoothing());
  EXPECT_DOUBLE_EQ(*c.process[1].smooth.alpha, 0.9);
  EXPECT_DOUBLE_EQ(c.process[1].smooth.scale_min, 1e-5);
  EXPECT_EQ(c.process[1].smooth.enable_subgraph_type.size(), 4u);
  EXPECT_FALSE(processor_is_data_free(c.process[1]));
  EXPECT_FALSE(has_warning(c, {"unknown key"})) << joined(c.warnings);
}

TEST(OutlierProcessors, DefaultsPerType) {
  ServiceConfig c = parse_outlier(doc("    - type: iter_smooth\n    - type: smooth_quant\n"
                                      "    - type: flex_smooth_quant\n      alpha: null\n      beta: 0.4\n"
                                      "    - type: flex_smooth_quant\n"));
  EXPECT_DOUBLE_EQ(*c.process[0].smooth.alpha, 0.9);
  EXPECT_TRUE(c.process[0].smooth.symmetric);
  EXPECT_DOUBLE_EQ(*c.process[1].smooth.alpha, 0.5);
  EXPECT_EQ(c.process[1].smooth.enable_subgraph_type, (std::vector<std::string>{"norm-linear"}));
  EXPECT_FALSE(c.process[2].smooth.alpha.has_value());
  EXPECT_DOUBLE_EQ(*c.process[2].smooth.beta, 0.4);
  EXPECT_FALSE(c.process[3].smooth.alpha.has_value());
  EXPECT_FALSE(c.process[3].smooth.beta.has_value());
  EXPECT_EQ(c.process[0].include, (std::vector<std::string>{"*"}));
}

TEST(OutlierProcessors, NullIncludeMeansAll) {
  ServiceConfig c = parse_outlier(doc("    - type: iter_smooth\n      include: null\n      exclude: null\n"));
  EXPECT_EQ(c.process[0].include, (std::vector<std::string>{"*"}));
  EXPECT_TRUE(c.process[0].exclude.empty());
}

TEST(OutlierProcessors, BadValuesNameTheYamlPath) {
  expect_outlier_error(doc("    - type: iter_smooth\n      alpha: 1.5\n"),
                       {"test.yaml:5: spec.process[0].alpha", "must be in [0, 1], got 1.5"});
  expect_outlier_error(doc("    - type: smooth_quant\n      alpha: -0.1\n"),
                       {"spec.process[0].alpha", "must be in [0, 1]"});
  expect_outlier_error(doc("    - type: flex_smooth_quant\n      beta: 2\n"), {"spec.process[0].beta", "[0, 1]"});
  expect_outlier_error(doc("    - type: iter_smooth\n      scale_min: 0\n"),
                       {"spec.process[0].scale_min", "must be > 0, got 0"});
  expect_outlier_error(doc("    - type: iter_smooth\n      scale_min: -1e-5\n"), {"spec.process[0].scale_min"});
  expect_outlier_error(doc("    - type: iter_smooth\n      enable_subgraph_type: [norm-linear, qkv]\n"),
                       {"spec.process[0].enable_subgraph_type[1]", "unknown subgraph type 'qkv'",
                        "norm-linear, linear-linear, ov, up-down"});
  expect_outlier_error(doc("    - type: quarot\n      block_size: 48\n"),
                       {"spec.process[0].block_size", "-1 or a positive power of two, got 48"});
  expect_outlier_error(doc("    - type: quarot\n      block_size: 0\n"), {"spec.process[0].block_size"});
  expect_outlier_error(doc("    - type: quarot\n      max_tp_size: 3\n"), {"spec.process[0].max_tp_size", "power of two"});
  // down_proj's online layers need online (msModelSlim ignores them without it).
  expect_outlier_error(doc("    - type: quarot\n      down_proj_online_layers: [0, 3]\n"),
                       {"spec.process[0].down_proj_online_layers", "needs online: true"});
  expect_outlier_error(doc("    - type: quarot\n      online: true\n      down_proj_online_layers: [0, -1]\n"),
                       {"spec.process[0].down_proj_online_layers[1]", "layer index >= 0, got -1"});
  expect_outlier_error(doc("    - type: quarot\n      online: true\n      down_proj_online_layers: 3\n"),
                       {"spec.process[0].down_proj_online_layers", "list of layer indices"});
}

TEST(OutlierProcessors, OnlineQuarotIsAccepted) {
  ServiceConfig c = parse_outlier(
      doc("    - type: quarot\n      online: true\n      max_tp_size: 2\n      down_proj_online_layers: [1, 3, 1]\n"));
  EXPECT_TRUE(c.process[0].quarot.online);
  EXPECT_EQ(c.process[0].quarot.max_tp_size, 2);
  EXPECT_EQ(c.process[0].quarot.down_proj_online_layers, (std::vector<int64_t>{1, 3, 1}));  // repeats are harmless
  // MindIE-SD reads no rotation tensors.
  expect_error("apiversion: modelslim_v1\nspec:\n  process:\n    - {type: quarot, online: true, export_extra_info: "
               "false}\n  save:\n    - type: mindie_format_saver\n",
               {"mindie_format_saver", "cannot store the online rotations", "spec.process[0]"});
}

TEST(OutlierProcessors, OrderRules) {
  expect_outlier_error(doc(std::string(kW8A8) + "    - type: quarot\n"),
                       {"spec.process[1].type", "'quarot' after a linear_quant", "already quantized"});
  expect_outlier_error(doc(std::string(kW8A8) + "    - type: iter_smooth\n"),
                       {"spec.process[1].type", "'iter_smooth' after a linear_quant"});
  expect_outlier_error(doc("    - type: group\n      configs:\n        - type: quarot\n"),
                       {"spec.process[0].configs[0].type", "inside a group"});
  // Empty online layer lists and the default flags are fine.
  ServiceConfig c = parse_outlier(doc("    - type: quarot\n      online: false\n      down_proj_online_layers: []\n"
                                      "      export_extra_info: false\n"));
  EXPECT_FALSE(c.process[0].quarot.export_extra_info);
}

TEST(OutlierProcessors, UnknownKeysWarn) {
  ServiceConfig c = parse_outlier(doc("    - type: smooth_quant\n      scale_min: 1e-3\n"));
  EXPECT_TRUE(has_warning(c, {"spec.process[0]", "unknown key 'scale_min'"})) << joined(c.warnings);
}

TEST(OutlierProcessors, AcceptedByDefault) {
  EXPECT_EQ(parse_service_config(doc("    - type: quarot\n"), "test.yaml").process.at(0).type, "quarot");
  expect_error(doc("    - type: quarot\n      block_size: 3\n"), {"spec.process[0].block_size"});
}

// apiversion multimodal_sd_modelslim_v1 (spec §1.10): the reference's Wan2.1
// practice unchanged, multimodal_sd_config validated, savers checked.
TEST(MultimodalSd, ReferenceWanPracticeParses) {
  ServiceConfig c = load_service_config(std::filesystem::path(LWQ_SOURCE_DIR) /
                                        "tests/data/configs/wan2_1_w8a8_dynamic.yaml");
  EXPECT_EQ(c.apiversion, "multimodal_sd_modelslim_v1");
  EXPECT_EQ(c.runner, RunnerType::LayerWise);
  ASSERT_EQ(c.process.size(), 1u);
  EXPECT_EQ(export_type_of(c.process[0].qconfig), "W8A8_DYNAMIC");
  EXPECT_EQ(c.process[0].exclude, std::vector<std::string>{"*ffn.2*"});
  ASSERT_EQ(c.save.size(), 1u);
  EXPECT_EQ(c.save[0].type, "mindie_format_saver");
  EXPECT_EQ(c.save[0].part_file_size, 0);
  ASSERT_TRUE(c.multimodal_sd.has_value());
  EXPECT_EQ(c.multimodal_sd->inference_key, "model_config");
  EXPECT_EQ(c.multimodal_sd->inference.at("frame_num"), 121);
  EXPECT_EQ(c.multimodal_sd->inference.at("offload_model"), true);
  EXPECT_TRUE(c.multimodal_sd->enable_dump);
  EXPECT_TRUE(c.warnings.empty()) << joined(c.warnings);
}

TEST(MultimodalSd, BadConfigs) {
  const std::string head = "apiversion: multimodal_sd_modelslim_v1\nspec:\n";
  const std::string dyn =
      "  process:\n    - type: linear_quant\n      qconfig:\n        act: {scope: per_token, dtype: int8, "
      "symmetric: true, method: minmax}\n        weight: {scope: per_channel, dtype: int8, symmetric: true, "
      "method: minmax}\n";
  expect_error(head + "  multimodal_sd_config:\n    dump_config: {capture_mode: kwargs}\n",
               {"spec.multimodal_sd_config.dump_config.capture_mode", "'kwargs'", "args"});
  expect_error(head + "  multimodal_sd_config:\n    model_config: {prompt: a}\n    inference_config: {prompt: b}\n",
               {"mutually exclusive"});
  expect_error(head + "  multimodal_sd_config:\n    inference_config: {fps: 16}\n",
               {"spec.multimodal_sd_config.inference_config.fps", "unknown inference argument 'fps'", "frame_num"});
  expect_error(head + "  multimodal_sd_config:\n    inference_config: [1]\n", {"expected a mapping"});
  // W8A16 cannot be stored by mindie_format_saver: refused at load, naming the processor.
  expect_error(head +
                   "  process:\n    - type: linear_quant\n      qconfig:\n        weight: {scope: per_channel, "
                   "dtype: int8, symmetric: true, method: minmax}\n  save:\n    - type: mindie_format_saver\n",
               {"spec.save[0] (mindie_format_saver) cannot store the W8A16 Linears of processor spec.process[0]",
                "use ascendv1_saver"});
  // The dense runner's choice is overridden, with a warning.
  ServiceConfig c = parse_service_config(head + "  runner: model_wise\n" + dyn, "t.yaml");
  EXPECT_EQ(c.runner, RunnerType::LayerWise);
  EXPECT_NE(joined(c.warnings).find("always runs layer_wise"), std::string::npos) << joined(c.warnings);
  ASSERT_TRUE(c.multimodal_sd.has_value());  // defaults when the section is absent
  EXPECT_EQ(c.multimodal_sd->inference_key, "");
  // multimodal_sd_config belongs to the sd service only.
  ServiceConfig plain = parse_service_config("apiversion: modelslim_v1\nspec:\n  multimodal_sd_config: {}\n" + dyn, "t.yaml");
  EXPECT_NE(joined(plain.warnings).find("unknown key 'multimodal_sd_config'"), std::string::npos);
}

TEST(MultimodalVlm, AcceptsDefaultTextAndPrior) {
  ServiceConfig c = parse_service_config(
      "apiversion: multimodal_vlm_modelslim_v1\nspec:\n  default_text: Describe it.\n  prior:\n    - {process: []}\n",
      "t.yaml");
  EXPECT_EQ(c.default_text, "Describe it.");
  EXPECT_EQ(c.runner, RunnerType::LayerWise);
  EXPECT_NE(joined(c.warnings).find("accepted but not run"), std::string::npos) << joined(c.warnings);
}

}  // namespace
}  // namespace lwq
