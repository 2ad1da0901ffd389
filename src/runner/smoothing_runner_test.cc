// Outlier suppression inside the layer-wise runner (issue 9, phase 2): the
// smoothing processors as data-requiring units and quarot at load, end to end
// through `run_quantization` and scored by `evaluate` (the deployed model's
// arithmetic against the float model).
//
//  * smoothing alone / rotation alone (an all-FLOAT output) keep the model's
//    function: eval's perplexity equals the float one to f32 rounding (tied,
//    untied, qwen2 biases), and to bf16 rounding for a bf16 checkpoint;
//  * the exported tensors: <norm>.bias FLOAT float32, optional/quarot.safetensors,
//    the description's "optional" entry, an untied config.json with its own lm_head;
//  * iter_smooth + static W8A8 beats plain static W8A8 on a copy of
//    stories260K with injected outlier channels (function-preserving, so the
//    float perplexities are equal and the difference is quantization error);
//  * the processor list of msModelSlim's qwen3_vl_moe_w8a8.yaml runs unchanged on a dense model;
//  * MoE layers (mixtral) still quantize with smoothing before them, and after quarot.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "eval/evaluator.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

fs::path shared_model(const std::string& name) { return repo() / ".." / "shared" / "models" / name; }

fs::path eval_text() {
  fs::path t = repo() / "../shared/data/tinystories-sample/tinystories_sample.txt";
  return fs::exists(t) ? t : stories() / "README.md";
}

EvalResult eval(const fs::path& model, const fs::path& out, int64_t tokens = 1024) {
  EvalOptions eo;
  eo.float_dir = model;
  eo.quantized_dir = out;
  eo.text = eval_text();
  eo.ctx = 128;
  eo.max_tokens = tokens;
  return evaluate(eo);
}

std::string practice(const std::string& processors) {
  return "apiversion: modelslim_v1\nspec:\n  dataset: calib_zh_en.jsonl\n  process:\n" + processors;
}

// Runs `processors` on `model` into `out` (allow_float_copy for the transform-only lists).
void quantize(const fs::path& model, const fs::path& out, const std::string& processors, bool float_copy = false,
              int samples = 8) {
  QuantJob job = make_job_yaml(model, out, practice(processors), samples);
  job.allow_float_copy = float_copy;
  run_quantization(job);
}

double rel_dppl(const EvalResult& r) { return r.delta_ppl() / r.ppl_float; }

TEST(SmoothingRunner, TransformsAloneKeepTheFunction) {
  // Every processor type alone (no Linear quantized): eval's quantized
  // perplexity is the float one. llama (tied, GQA) and its qwen2 variant
  // (q/k/v biases).
  const std::vector<std::pair<std::string, std::string>> lists = {
      {"iter_smooth", "    - type: iter_smooth\n"},
      {"iter_smooth asymmetric", "    - type: iter_smooth\n      symmetric: false\n"},
      {"smooth_quant", "    - type: smooth_quant\n"},
      {"flex_smooth_quant", "    - type: flex_smooth_quant\n"},
      {"quarot", "    - type: quarot\n"},
      {"quarot block 32 + iter_smooth", "    - type: quarot\n      block_size: 32\n    - type: iter_smooth\n"}};
  std::vector<fs::path> models = {stories()};
  if (fs::exists(shared_model("stories260K-qwen2"))) models.push_back(shared_model("stories260K-qwen2"));
  for (const auto& model : models) {
    for (const auto& [name, list] : lists) {
      TempDir tmp;
      quantize(model, tmp / "out", list, /*float_copy=*/true);
      EvalResult r = eval(model, tmp / "out", 512);
      EXPECT_LT(std::abs(rel_dppl(r)), 1e-4) << model.filename() << " " << name << ": ppl " << r.ppl_float << " → "
                                             << r.ppl_quantized;
      EXPECT_EQ(r.top1_agreement, 1.0) << name;
    }
  }
}

// stories260K with its own lm_head (untied), optionally every tensor bf16.
fs::path variant(const fs::path& dir, bool bf16) {
  copy_model(stories(), dir, [bf16](auto& cfg) {
    cfg["tie_word_embeddings"] = false;
    if (bf16) cfg["torch_dtype"] = "bfloat16";
  });
  Checkpoint ckpt = Checkpoint::open(stories() / "model.safetensors");
  fs::remove(dir / "model.safetensors");
  SafetensorsWriter w(dir / "model.safetensors");
  auto add = [&](const std::string& name, const Tensor& t) {
    w.add(name, bf16 ? tensor_from_f32(DType::BF16, t.shape, to_f32(t)) : t);
  };
  for (const auto& n : ckpt.tensor_names()) add(n, ckpt.read(n));
  add("lm_head.weight", ckpt.read("model.embed_tokens.weight"));
  w.finish();
  return dir;
}

TEST(SmoothingRunner, UntiedAndBf16CheckpointsKeepTheFunction) {
  TempDir tmp;
  const std::string list = "    - type: quarot\n      block_size: 32\n    - type: iter_smooth\n";
  // Untied f32: the head is rotated from its own tensor; nothing to untie.
  const fs::path untied = variant(tmp / "untied", false);
  quantize(untied, tmp / "u", list, /*float_copy=*/true);
  EXPECT_EQ(read_json(tmp / "u" / "config.json")["tie_word_embeddings"], false);
  EXPECT_LT(std::abs(rel_dppl(eval(untied, tmp / "u", 512))), 1e-4);
  // bf16 (untied): transformed tensors are written back in bf16, so the
  // function holds to bf16 rounding of the weights, not to f32's.
  const fs::path bf16 = variant(tmp / "bf16", true);
  quantize(bf16, tmp / "b", list, /*float_copy=*/true);
  Checkpoint out = Checkpoint::open(tmp / "b");
  EXPECT_EQ(out.info("model.layers.0.self_attn.q_proj.weight").dtype, DType::BF16);
  EXPECT_EQ(out.info("lm_head.weight").dtype, DType::BF16);
  EvalResult r = eval(bf16, tmp / "b", 512);
  std::cout << "bf16 quarot + iter_smooth, all FLOAT: Δppl " << 100 * rel_dppl(r) << " %, top-1 " << r.top1_agreement
            << "\n";
  EXPECT_LT(std::abs(rel_dppl(r)), 0.01);
  EXPECT_GT(r.top1_agreement, 0.97);
}

TEST(SmoothingRunner, ExportsNormBiasFloat32AndQuarotExtras) {
  TempDir tmp;
  // smooth_quant always replaces the norm by one with a bias (zeros when symmetric, spec §2.8).
  quantize(stories(), tmp / "sq", std::string("    - type: smooth_quant\n") + kW8A8Static);
  auto desc = read_json(tmp / "sq" / "quant_model_description.json");
  Checkpoint sq = Checkpoint::open(tmp / "sq");
  for (int k = 0; k < 5; ++k)
    for (const char* norm : {"input_layernorm", "post_attention_layernorm"}) {
      const std::string name = fmt::format("model.layers.{}.{}.bias", k, norm);
      ASSERT_TRUE(desc.contains(name)) << name;
      EXPECT_EQ(desc[name], "FLOAT");
      EXPECT_EQ(sq.info(name).dtype, DType::F32);
      EXPECT_EQ(sq.info(name).shape, (Shape{64}));
    }
  EXPECT_EQ(desc["optional"], nlohmann::ordered_json::object());
  EXPECT_FALSE(fs::exists(tmp / "sq" / "optional"));
  EXPECT_LT(std::abs(rel_dppl(eval(stories(), tmp / "sq"))), 0.05);

  // Asymmetric iter_smooth: the shifted norms' biases, and biases on the
  // quantized Linears that read them (which had none), scored by eval.
  quantize(stories(), tmp / "asym", std::string("    - type: iter_smooth\n      symmetric: false\n") + kW8A8Static);
  desc = read_json(tmp / "asym" / "quant_model_description.json");
  Checkpoint asym = Checkpoint::open(tmp / "asym");
  EXPECT_EQ(desc["model.layers.1.input_layernorm.bias"], "FLOAT");
  EXPECT_EQ(asym.info("model.layers.1.input_layernorm.bias").dtype, DType::F32);
  EXPECT_TRUE(asym.contains("model.layers.1.self_attn.q_proj.bias"));
  EXPECT_TRUE(asym.contains("model.layers.1.mlp.up_proj.bias"));
  EXPECT_LT(std::abs(rel_dppl(eval(stories(), tmp / "asym"))), 0.05);

  // quarot: the rotation written for consumers, the tied model untied.
  quantize(stories(), tmp / "qr", std::string("    - type: quarot\n      block_size: 32\n") + kW8A8Static);
  desc = read_json(tmp / "qr" / "quant_model_description.json");
  EXPECT_EQ(desc["optional"]["quarot"]["rotation_map"]["global_rotation"], "optional/quarot.safetensors");
  EXPECT_EQ(desc["metadata"], nlohmann::ordered_json::object());
  Checkpoint rot = Checkpoint::open(tmp / "qr" / "optional" / "quarot.safetensors");
  Tensor r = rot.read("global_rotation");
  ASSERT_EQ(r.shape, (Shape{64, 64}));
  // R is block-diagonal (32) and orthogonal.
  std::vector<float> R = to_f32(r);
  for (int i = 0; i < 64; ++i)
    for (int j = 0; j < 64; ++j) {
      double dot = 0;
      for (int c = 0; c < 64; ++c) dot += double(R[i * 64 + c]) * R[j * 64 + c];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-5);
      if (i / 32 != j / 32) {
        EXPECT_EQ(R[i * 64 + j], 0.0f);
      }
    }
  EXPECT_EQ(read_json(tmp / "qr" / "config.json")["tie_word_embeddings"], false);
  Checkpoint out = Checkpoint::open(tmp / "qr");
  ASSERT_TRUE(out.contains("lm_head.weight"));
  // Norms fused into the Linears: written as ones.
  for (float v : to_f32(out.read("model.norm.weight"))) EXPECT_EQ(v, 1.0f);
  for (float v : to_f32(out.read("model.layers.2.input_layernorm.weight"))) EXPECT_EQ(v, 1.0f);
  // The embedding is E·R.
  Checkpoint in = Checkpoint::open(stories());
  std::vector<float> e = to_f32(in.read("model.embed_tokens.weight")), er = to_f32(out.read("model.embed_tokens.weight"));
  for (int row : {0, 7, 511})
    for (int j = 0; j < 64; ++j) {
      double v = 0;
      for (int c = 0; c < 64; ++c) v += double(e[row * 64 + c]) * R[c * 64 + j];
      EXPECT_NEAR(er[row * 64 + j], v, 1e-5);
    }
  EvalResult q = eval(stories(), tmp / "qr");
  EXPECT_LT(std::abs(rel_dppl(q)), 0.05);
}

// A copy of stories260K with outlier channels: ×50 on a few norm channels
// (÷50 on the columns of the Linears reading them) and on a few up_proj rows
// (÷50 on down_proj's columns). Same float function, hard for per-tensor int8.
fs::path outlier_model(const fs::path& dir) {
  copy_model(stories(), dir, [](auto&) {});
  Checkpoint ckpt = Checkpoint::open(stories() / "model.safetensors");
  std::map<std::string, std::vector<float>> t;
  for (const auto& n : ckpt.tensor_names()) t[n] = to_f32(ckpt.read(n));
  const float f = 50.0f;
  const int64_t H = 64, I = 172;
  for (int k = 0; k < 5; ++k) {
    const std::string p = fmt::format("model.layers.{}.", k);
    for (int64_t c : {3, 17, 42}) {
      t[p + "input_layernorm.weight"][c] *= f;
      t[p + "post_attention_layernorm.weight"][c] *= f;
      for (const char* l : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"}) {
        auto& w = t[p + l + ".weight"];
        for (size_t r = 0; r < w.size() / H; ++r) w[r * H + c] /= f;
      }
    }
    for (int64_t c : {5, 99}) {
      for (int64_t j = 0; j < H; ++j) t[p + "mlp.up_proj.weight"][c * H + j] *= f;
      for (int64_t r = 0; r < H; ++r) t[p + "mlp.down_proj.weight"][r * I + c] /= f;
    }
  }
  fs::remove(dir / "model.safetensors");
  SafetensorsWriter w(dir / "model.safetensors");
  for (const auto& n : ckpt.tensor_names()) w.add(n, tensor_f32(ckpt.info(n).shape, t[n]));
  w.finish();
  return dir;
}

TEST(SmoothingRunner, IterSmoothBeatsPlainStaticW8A8OnOutlierChannels) {
  TempDir tmp;
  const fs::path model = outlier_model(tmp / "model");
  quantize(model, tmp / "plain", kW8A8Static);
  quantize(model, tmp / "smooth", std::string("    - type: iter_smooth\n") + kW8A8Static);
  EvalResult plain = eval(model, tmp / "plain"), smooth = eval(model, tmp / "smooth");
  std::cout << "outlier stories260K static W8A8: Δppl " << 100 * rel_dppl(plain) << " % plain, "
            << 100 * rel_dppl(smooth) << " % with iter_smooth\n";
  EXPECT_GT(rel_dppl(plain), 0.10);                  // the outliers ruin per-tensor int8
  EXPECT_LT(rel_dppl(smooth), rel_dppl(plain) / 5);  // smoothing takes most of that back
  EXPECT_LT(std::abs(rel_dppl(smooth)), 0.05);
}

TEST(SmoothingRunner, BuiltInW8A8PracticeSmoothsFirst) {
  TempDir tmp;
  const fs::path model = outlier_model(tmp / "model");
  run_quantization(make_job(model, tmp / "out", (repo() / "configs/w8a8.yaml").string(), 8));
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "out"))), 0.05);
}

TEST(SmoothingRunner, Qwen3VlMoeW8A8ProcessListRunsUnchangedOnADenseModel) {
  // spec.process of msModelSlim's lab_practice/qwen3_vl_moe/qwen3_vl_moe_w8a8.yaml, verbatim.
  const std::string list = R"(    - type: "quarot"
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
    - type: "linear_quant"
      qconfig: *default_w8a8
      include:
        - "*"
      exclude:
        - "*experts*"
        - "*linear_fc2"
        - "*merger*"
        - "*deepstack_merger_list*"
        - "*mlp.gate"
    - type: "linear_quant"
      qconfig: *default_w8a8_dynamic
      include:
        - "*experts*"
      exclude:
        - "*linear_fc2"
        - "*merger*"
        - "*deepstack_merger_list*"
        - "*mlp.gate"
)";
  const std::string yaml = R"(apiversion: modelslim_v1
default_w8a8_dynamic: &default_w8a8_dynamic
  act: {scope: "per_token", dtype: "int8", symmetric: True, method: "minmax"}
  weight: {scope: "per_channel", dtype: "int8", symmetric: True, method: "minmax"}
default_w8a8: &default_w8a8
  act: {scope: "per_tensor", dtype: "int8", symmetric: False, method: "minmax"}
  weight: {scope: "per_channel", dtype: "int8", symmetric: True, method: "minmax"}
spec:
  dataset: calib_zh_en.jsonl
  process:
)" + list + R"(  save:
    - type: "ascendv1_saver"
      part_file_size: 4
)";
  TempDir tmp;
  const fs::path model = outlier_model(tmp / "model");
  QuantJob job = make_job_yaml(model, tmp / "out", yaml, 8);
  EXPECT_TRUE(job.config.warnings.empty());
  run_quantization(job);
  auto desc = read_json(tmp / "out" / "quant_model_description.json");
  EXPECT_EQ(desc["model_quant_type"], "W8A8");
  EXPECT_EQ(desc["model.layers.4.mlp.down_proj.weight"], "W8A8");
  EXPECT_TRUE(fs::exists(tmp / "out" / "optional" / "quarot.safetensors"));
  EvalResult r = eval(model, tmp / "out");
  std::cout << "qwen3_vl_moe_w8a8 list on outlier stories260K: Δppl " << 100 * rel_dppl(r) << " %\n";
  EXPECT_LT(std::abs(rel_dppl(r)), 0.05);
}

TEST(SmoothingRunner, MoeLayersQuantizeAfterSmoothing) {
  const fs::path model = shared_model("stories260K-mixtral");
  if (!fs::exists(model)) GTEST_SKIP() << "no " << model;
  TempDir tmp;
  // Smoothing on a MoE layer smooths the attention subgraphs (Mixtral's
  // reference adapter declares no expert up-down); experts W8A8_DYNAMIC.
  const std::string list = std::string("    - type: iter_smooth\n") + R"(    - type: linear_quant
      qconfig:
        act: {scope: per_tensor, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
      include: ["*self_attn*"]
    - type: linear_quant
      qconfig:
        act: {scope: per_token, dtype: int8, symmetric: true, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
      include: ["*experts*"]
)";
  quantize(model, tmp / "out", list);
  auto desc = read_json(tmp / "out" / "quant_model_description.json");
  EXPECT_EQ(desc["model.layers.0.self_attn.q_proj.weight"], "W8A8");
  EXPECT_EQ(desc["model.layers.0.block_sparse_moe.experts.0.w1.weight"], "W8A8_DYNAMIC");
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "out"))), 0.05);
  // Smoothing alone (data-requiring, no calibrated Linear): the experts are still written.
  quantize(model, tmp / "only", std::string("    - type: iter_smooth\n") + R"(    - type: linear_quant
      qconfig:
        act: {scope: per_token, dtype: int8, symmetric: true, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
      include: ["*experts*"]
)");
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "only"))), 0.05);
  // quarot → iter_smooth → W8A8 (the MoE practices' list): the smoothing
  // forward streams the rotated experts; without quantization it keeps the function.
  quantize(model, tmp / "rot", "    - type: quarot\n      block_size: 32\n    - type: iter_smooth\n", true);
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "rot"))), 1e-4);
  quantize(model, tmp / "rotq", std::string("    - type: quarot\n      block_size: 32\n    - type: iter_smooth\n") +
                                    kW8A8Static + "      exclude: [\"*.gate\"]\n");
  auto rotated = read_json(tmp / "rotq" / "quant_model_description.json");
  EXPECT_EQ(rotated["model.layers.0.block_sparse_moe.experts.0.w1.weight"], "W8A8");
  EXPECT_EQ(rotated["model.layers.0.block_sparse_moe.gate.weight"], "FLOAT");
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "rotq"))), 0.05);
}

}  // namespace
}  // namespace lwq
