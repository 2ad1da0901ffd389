// The layer_wise runner on mixture-of-experts models: the tiny Qwen3-MoE
// golden (per-expert and fused layouts, a dense mlp_only layer) and the
// upcycled stories260K-mixtral, with msModelSlim-style mixed practices, with
// and without offline quarot (router and streamed experts rotated).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>

#include "eval/evaluator.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "runner/quant_runner.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;


// The same model with every MoE layer's experts fused output-major ([E, 2I, H], [E, H, I]).
fs::path fused_copy(const fs::path& model, const fs::path& to) {
  with_tokenizer(model, to);
  fs::remove(to / "model.safetensors");
  Checkpoint ckpt = Checkpoint::open(model);
  auto cfg = read_json(model / "config.json");
  const int64_t E = cfg["num_experts"], I = cfg["moe_intermediate_size"], H = cfg["hidden_size"];
  SafetensorsWriter w(to / "model.safetensors");
  std::set<std::string> done;
  for (const auto& n : ckpt.tensor_names()) {
    const auto at = n.find(".mlp.experts.");
    if (at == std::string::npos) {
      w.add(n, ckpt.read(n));
      continue;
    }
    const std::string p = n.substr(0, at) + ".mlp.experts.";
    if (!done.insert(p).second) continue;
    Tensor gate_up(DType::F32, {E, 2 * I, H}), down(DType::F32, {E, H, I});
    const size_t blk = static_cast<size_t>(I * H) * 4;
    for (int64_t e = 0; e < E; ++e) {
      const std::string q = p + std::to_string(e) + ".";
      std::memcpy(gate_up.bytes.data() + 2 * e * blk, ckpt.read(q + "gate_proj.weight").bytes.data(), blk);
      std::memcpy(gate_up.bytes.data() + (2 * e + 1) * blk, ckpt.read(q + "up_proj.weight").bytes.data(), blk);
      std::memcpy(down.bytes.data() + e * blk, ckpt.read(q + "down_proj.weight").bytes.data(), blk);
    }
    w.add(p + "gate_up_proj", gate_up);
    w.add(p + "down_proj", down);
  }
  w.finish();
  return to;
}

const char* kQconfigs = R"(
static: &static
  act: {scope: per_tensor, dtype: int8, symmetric: False, method: minmax}
  weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
dynamic: &dynamic
  act: {scope: per_token, dtype: int8, symmetric: True, method: minmax}
  weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
w8a16: &w8a16
  weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
)";

// Attention (and the dense layer's MLP) W8A8 static, experts W8A8_DYNAMIC, the
// router FLOAT, and the last layer's experts overridden by a processor listed
// first (first match wins), as msModelSlim's Qwen3-MoE practices do.
std::string mixed_practice() {
  return std::string("apiversion: modelslim_v1\n") + kQconfigs + R"(
spec:
  process:
    - {type: linear_quant, qconfig: *w8a16, include: ["*layers.3.mlp.experts*"]}
    - {type: linear_quant, qconfig: *static, include: ["*"], exclude: ["*mlp.gate", "*experts*"]}
    - {type: linear_quant, qconfig: *dynamic, include: ["*experts*"]}
  save:
    - {type: ascendv1_saver, part_file_size: 0}
  dataset: calib_zh_en.jsonl
)";
}

std::string static_experts_practice() {
  return std::string("apiversion: modelslim_v1\n") + kQconfigs + R"(
spec:
  process:
    - {type: linear_quant, qconfig: *static, include: ["*experts*"]}
  save:
    - {type: ascendv1_saver, part_file_size: 0}
  dataset: calib_zh_en.jsonl
)";
}

// Attention and the dense layer's MLP static W8A8, routed experts
// W8A8_DYNAMIC, the router FLOAT (configs/moe/w8a8.yaml's split), after
// quarot with the block size of msModelSlim's MoE practices when asked
// (`quarot_extra`: more of its settings, e.g. online rotation).
std::string moe_w8a8_practice(bool quarot, const std::string& quarot_extra = "") {
  return std::string("apiversion: modelslim_v1\n") + kQconfigs + "spec:\n  process:\n" +
         (quarot ? "    - {type: quarot, block_size: 32" + quarot_extra + "}\n" : "") + R"(    - {type: linear_quant, qconfig: *static, include: ["*"], exclude: ["*.gate", "*experts*"]}
    - {type: linear_quant, qconfig: *dynamic, include: ["*experts*"]}
  save:
    - {type: ascendv1_saver, part_file_size: 0}
  dataset: calib_zh_en.jsonl
)";
}

// Only the rotation (every tensor written FLOAT).
std::string quarot_only_practice(int64_t block_size) {
  return "apiversion: modelslim_v1\nspec:\n  process:\n    - {type: quarot, block_size: " + std::to_string(block_size) +
         "}\n  save:\n    - {type: ascendv1_saver, part_file_size: 0}\n  dataset: calib_zh_en.jsonl\n";
}

fs::path eval_text() {
  fs::path t = repo() / "../shared/data/tinystories-sample/tinystories_sample.txt";
  return fs::exists(t) ? t : stories() / "README.md";
}

EvalResult eval_moe(const fs::path& model, const fs::path& out) {
  EvalOptions eo;
  eo.float_dir = model;
  eo.quantized_dir = out;
  eo.text = eval_text();
  eo.ctx = 64;
  eo.max_tokens = 512;
  return evaluate(eo);
}

float input_scale(const Checkpoint& w, const std::string& linear) {
  Tensor t = w.read(linear + ".input_scale");
  return t.data<float>()[0];
}

TEST(MoeRunner, MixedPracticeOnQwen3Moe) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "model");
  QuantJob job = make_job_yaml(model, tmp / "out", mixed_practice(), 4);
  QuantOutcome out = run_quantization(job);
  EXPECT_EQ(out.model_quant_type, "W8A8");
  auto d = read_json(tmp / "out/quant_model_description.json");
  Checkpoint w = Checkpoint::open(tmp / "out/quant_model_weights.safetensors");
  for (int k : {0, 2}) {
    const std::string p = "model.layers." + std::to_string(k) + ".";
    EXPECT_EQ(d[p + "mlp.gate.weight"], "FLOAT");
    EXPECT_EQ(d[p + "self_attn.q_proj.weight"], "W8A8");
    for (int e : {0, 7})
      for (const char* which : {"gate_proj", "up_proj", "down_proj"}) {
        const std::string n = p + "mlp.experts." + std::to_string(e) + "." + which;
        EXPECT_EQ(d[n + ".weight"], "W8A8_DYNAMIC") << n;
        EXPECT_EQ(w.info(n + ".weight_scale").shape, (Shape{which == std::string("down_proj") ? 64 : 32, 1}));
      }
  }
  EXPECT_EQ(d["model.layers.1.mlp.gate_proj.weight"], "W8A8");  // mlp_only_layers: a dense MLP
  EXPECT_FALSE(d.contains("model.layers.1.mlp.gate.weight"));
  EXPECT_EQ(d["model.layers.3.mlp.experts.5.down_proj.weight"], "W8A16");  // listed first: first match wins
  EXPECT_EQ(d["model.layers.3.mlp.gate.weight"], "FLOAT");
  // Per-expert routed-token counts: each token goes to num_experts_per_tok = 2 experts.
  auto report = read_json(tmp / "out/quant_report.json");
  int64_t tokens = -1;
  for (const auto& layer : report["layers"]) {
    if (layer["layer"] == 1) {
      EXPECT_FALSE(layer.contains("expert_tokens"));
      continue;
    }
    ASSERT_EQ(layer["expert_tokens"].size(), 8u);
    int64_t sum = 0;
    for (const auto& c : layer["expert_tokens"]) sum += c.get<int64_t>();
    if (tokens < 0) tokens = sum;
    EXPECT_EQ(sum, tokens);  // the same calibration tokens reach every layer
    EXPECT_EQ(sum % 2, 0);
  }
  EXPECT_GT(tokens, 0);
  // Scored with the deployed integer arithmetic.
  EvalOptions eo;
  eo.float_dir = model;
  eo.quantized_dir = tmp / "out";
  eo.text = repo() / "../shared/data/tinystories-sample/tinystories_sample.txt";
  if (!fs::exists(eo.text)) eo.text = stories() / "README.md";
  eo.ctx = 64;
  eo.max_tokens = 256;
  EvalResult r = evaluate(eo);
  EXPECT_GT(r.top1_agreement, 0.8);
  EXPECT_LT(std::abs(r.delta_ppl()) / r.ppl_float, 0.05);
}

TEST(MoeRunner, FusedCheckpointGivesTheSameOutputAsPerExpert) {
  TempDir tmp;
  const fs::path a = with_tokenizer(golden("qwen3_moe"), tmp / "per_expert");
  const fs::path b = fused_copy(golden("qwen3_moe"), tmp / "fused");
  run_quantization(make_job_yaml(a, tmp / "out_a", mixed_practice(), 3));
  run_quantization(make_job_yaml(b, tmp / "out_b", mixed_practice(), 3));
  for (const char* f : {"quant_model_description.json", "quant_model_weights.safetensors", "quant_report.json"})
    EXPECT_TRUE(read_text_file(tmp / "out_a" / f) == read_text_file(tmp / "out_b" / f)) << f;
  // Data-free too (experts read, quantized and saved one at a time).
  QuantJob ja = make_job(a, tmp / "df_a", (repo() / "configs/moe/w8a16.yaml").string());
  QuantJob jb = make_job(b, tmp / "df_b", (repo() / "configs/moe/w8a16.yaml").string());
  run_quantization(ja);
  run_quantization(jb);
  for (const auto& e : fs::directory_iterator(tmp / "df_a"))
    if (e.path().extension() == ".safetensors" || e.path().extension() == ".json")
      EXPECT_TRUE(read_text_file(e.path()) == read_text_file(tmp / "df_b" / e.path().filename())) << e.path();
}

// quarot alone (every tensor FLOAT): eval's quantized model is the float one.
// Per-expert and fused f32 goldens (untied and tied), the upcycled mixtral
// (tied); the bf16 mixtral golden holds to bf16 rounding of the rotated weights.
TEST(MoeRunner, QuarotAloneKeepsTheFunction) {
  TempDir tmp;
  std::vector<std::pair<fs::path, double>> models = {
      {with_tokenizer(golden("qwen3_moe"), tmp / "qwen3_moe"), 1e-4},
      {with_tokenizer(golden("qwen3_moe_fused"), tmp / "qwen3_moe_fused"), 1e-4},
      {with_tokenizer(golden("mixtral"), tmp / "mixtral"), 1e-2}};
  const fs::path upcycled = repo() / "../shared/models/stories260K-mixtral";
  if (fs::exists(upcycled)) models.emplace_back(upcycled, 1e-4);
  for (const auto& [model, bound] : models)
    for (int64_t block : {-1, 32}) {
      const fs::path out = tmp / (model.filename().string() + "_out" + std::to_string(block));
      QuantJob job = make_job_yaml(model, out, quarot_only_practice(block), 3);
      job.allow_float_copy = true;
      run_quantization(job);
      EvalResult r = eval_moe(model, out);
      EXPECT_LT(std::abs(r.delta_ppl()) / r.ppl_float, bound) << model.filename() << " block " << block;
      EXPECT_GT(r.top1_agreement, bound < 1e-3 ? 0.999 : 0.97) << model.filename() << " block " << block;
      EXPECT_TRUE(fs::exists(out / "optional/quarot.safetensors"));
    }
}

// iter_smooth alone (and after quarot) on Qwen3-MoE smooths every routed
// expert's up → down as the experts stream (spec §8), attention's subgraphs
// as before: the float function is kept, and the experts' weights did change.
TEST(MoeRunner, ExpertUpDownSmoothingKeepsTheFunction) {
  TempDir tmp;
  const std::string smooth = "    - {type: iter_smooth, alpha: 0.9, enable_subgraph_type: [up-down, ov, norm-linear]}\n";
  auto practice = [&](bool quarot) {
    return "apiversion: modelslim_v1\nspec:\n  process:\n" +
           std::string(quarot ? "    - {type: quarot, block_size: 32}\n" : "") + smooth +
           "  save:\n    - {type: ascendv1_saver, part_file_size: 0}\n  dataset: calib_zh_en.jsonl\n";
  };
  for (const char* name : {"qwen3_moe", "qwen3_moe_fused"}) {
    const fs::path model = with_tokenizer(golden(name), tmp / name);
    for (bool quarot : {false, true}) {
      const fs::path out = tmp / (std::string(name) + (quarot ? "_quarot" : "_plain"));
      QuantJob job = make_job_yaml(model, out, practice(quarot), 3);
      job.allow_float_copy = true;
      run_quantization(job);
      EvalResult r = eval_moe(model, out);
      EXPECT_LT(std::abs(r.delta_ppl()) / r.ppl_float, 1e-4) << name << (quarot ? " quarot" : "");
      EXPECT_GT(r.top1_agreement, 0.999) << name;
      if (quarot || std::string(name) != "qwen3_moe") continue;  // the fused checkpoint has no per-expert tensors
      // Expert 1's up rows were divided by the scales its down columns were multiplied by.
      const Checkpoint in = Checkpoint::open(golden("qwen3_moe"));
      const Checkpoint q = Checkpoint::open(out);
      for (const char* lin : {"up_proj", "down_proj"}) {
        const std::string t = std::string("model.layers.2.mlp.experts.1.") + lin + ".weight";
        EXPECT_NE(to_f32(q.read(t)), to_f32(in.read(t))) << t << " was not smoothed";
      }
      const std::string gate = "model.layers.2.mlp.experts.1.gate_proj.weight";
      EXPECT_EQ(to_f32(q.read(gate)), to_f32(in.read(gate))) << gate << " changed";
    }
  }
}

// quarot (block 32) → static W8A8 attention, W8A8_DYNAMIC experts: written,
// scored by eval with the deployed arithmetic, and close to the same practice
// without quarot (these tiny models have no outliers for it to remove).
TEST(MoeRunner, QuarotThenW8A8StaticAttentionAndDynamicExperts) {
  TempDir tmp;
  std::vector<fs::path> models = {with_tokenizer(golden("qwen3_moe"), tmp / "qwen3_moe")};
  const fs::path upcycled = repo() / "../shared/models/stories260K-mixtral";
  if (fs::exists(upcycled)) models.push_back(upcycled);
  for (const fs::path& model : models) {
    const fs::path plain = tmp / (model.filename().string() + "_plain");
    const fs::path rotated = tmp / (model.filename().string() + "_quarot");
    run_quantization(make_job_yaml(model, plain, moe_w8a8_practice(false), 6));
    run_quantization(make_job_yaml(model, rotated, moe_w8a8_practice(true), 6));
    auto d = read_json(rotated / "quant_model_description.json");
    EXPECT_EQ(d["model_quant_type"], "W8A8");
    const std::string p = "model.layers.0.";
    const bool mixtral = model.filename() != "qwen3_moe";
    const std::string experts = p + (mixtral ? "block_sparse_moe.experts.1.w2" : "mlp.experts.1.down_proj");
    EXPECT_EQ(d[p + "self_attn.o_proj.weight"], "W8A8");
    EXPECT_EQ(d[p + (mixtral ? "block_sparse_moe.gate.weight" : "mlp.gate.weight")], "FLOAT");
    EXPECT_EQ(d[experts + ".weight"], "W8A8_DYNAMIC");
    EXPECT_TRUE(d["optional"].contains("quarot"));
    EvalResult a = eval_moe(model, plain), b = eval_moe(model, rotated);
    std::cout << model.filename() << " W8A8 + dynamic experts: Δppl " << 100 * a.delta_ppl() / a.ppl_float
              << " %, KL " << a.kl << "; with quarot: Δppl " << 100 * b.delta_ppl() / b.ppl_float << " %, KL " << b.kl
              << ", top-1 " << b.top1_agreement << "\n";
    RecordProperty(model.filename().string() + "_kl_plain", std::to_string(a.kl));
    RecordProperty(model.filename().string() + "_kl_quarot", std::to_string(b.kl));
    EXPECT_LT(std::abs(b.delta_ppl()) / b.ppl_float, 0.05);
    EXPECT_LT(b.kl, 3 * a.kl + 0.01);
    EXPECT_GT(b.top1_agreement, 0.8);
  }
}

TEST(MoeRunner, FusedCheckpointGivesTheSameOutputAsPerExpertWithQuarot) {
  TempDir tmp;
  const fs::path a = with_tokenizer(golden("qwen3_moe"), tmp / "per_expert");
  const fs::path b = fused_copy(golden("qwen3_moe"), tmp / "fused");
  // Calibrated (experts rotated as each forward streams them) and data-free
  // (rotated experts quantized from their f32 copies, never from the mapped file).
  const std::string data_free = std::string("apiversion: modelslim_v1\n") + kQconfigs + R"(spec:
  process:
    - {type: quarot}
    - {type: linear_quant, qconfig: *w8a16, include: ["*"], exclude: ["*.gate"]}
  save:
    - {type: ascendv1_saver, part_file_size: 0}
)";
  for (const auto& [name, yaml] : {std::pair{"calibrated", moe_w8a8_practice(true)}, {"data_free", data_free}}) {
    const fs::path out_a = tmp / (std::string(name) + "_a"), out_b = tmp / (std::string(name) + "_b");
    run_quantization(make_job_yaml(a, out_a, yaml, 3));
    run_quantization(make_job_yaml(b, out_b, yaml, 3));
    SCOPED_TRACE(name);
    expect_same_folder(out_a, out_b);
  }
}

// One short prompt: few tokens, so top-2 routing leaves experts cold.
fs::path short_calibration(const fs::path& dir) {
  fs::path f = dir / "short.jsonl";
  std::ofstream(f) << R"({"text": "Once upon a time"})" << "\n";
  return f;
}

TEST(MoeRunner, EveryExpertIsCalibratedOnEveryToken) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "model");
  QuantJob job = make_job_yaml(model, tmp / "out", static_experts_practice(), 1);
  job.calib_data = short_calibration(tmp.path()).string();
  run_quantization(job);
  auto report = read_json(tmp / "out/quant_report.json");
  const auto& counts = report["layers"][0]["expert_tokens"];
  int zeros = 0;
  for (const auto& c : counts) zeros += c.get<int64_t>() == 0;
  ASSERT_GT(zeros, 0) << "precondition: the short prompt should leave an expert unrouted: " << counts.dump();
  // Every expert saw the same tokens (the layer's normed hidden states), so
  // gate and up of every expert share one static range.
  Checkpoint w = Checkpoint::open(tmp / "out/quant_model_weights.safetensors");
  const float s0 = input_scale(w, "model.layers.0.mlp.experts.0.gate_proj");
  for (int e = 0; e < 8; ++e) {
    const std::string p = "model.layers.0.mlp.experts." + std::to_string(e);
    EXPECT_EQ(input_scale(w, p + ".gate_proj"), s0) << e;
    EXPECT_EQ(input_scale(w, p + ".up_proj"), s0) << e;
    EXPECT_GT(input_scale(w, p + ".down_proj"), 0.0f) << e;
  }
}

TEST(MoeRunner, RoutedCalibrationGivesColdExpertsTheDataFreeRule) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "model");
  QuantJob all = make_job_yaml(model, tmp / "all", static_experts_practice(), 1);
  all.calib_data = short_calibration(tmp.path()).string();
  run_quantization(all);
  QuantJob routed = all;
  routed.save_path = tmp / "routed";
  routed.moe_calibration = MoeCalibration::Routed;
  run_quantization(routed);
  auto counts = read_json(tmp / "routed/quant_report.json")["layers"][0]["expert_tokens"];
  Checkpoint wa = Checkpoint::open(tmp / "all/quant_model_weights.safetensors");
  Checkpoint wr = Checkpoint::open(tmp / "routed/quant_model_weights.safetensors");
  const std::string p = "model.layers.0.mlp.experts.";
  float widest_down = 0.0f;
  int cold = 0, warm = 0;
  for (int e = 0; e < 8; ++e)
    if (counts[e] != 0) widest_down = std::max(widest_down, input_scale(wr, p + std::to_string(e) + ".down_proj"));
  for (int e = 0; e < 8; ++e) {
    const std::string q = p + std::to_string(e);
    if (counts[e] == 0) {
      ++cold;
      // gate/up: the MoE input's range over all tokens, which is what every expert sees under "all".
      EXPECT_EQ(input_scale(wr, q + ".gate_proj"), input_scale(wa, q + ".gate_proj")) << e;
      EXPECT_EQ(input_scale(wr, q + ".up_proj"), input_scale(wa, q + ".up_proj")) << e;
      EXPECT_GE(input_scale(wr, q + ".down_proj"), widest_down) << e;
    } else {
      ++warm;
      // Routed tokens are a subset of all tokens: the range can only shrink.
      EXPECT_LE(input_scale(wr, q + ".gate_proj"), input_scale(wa, q + ".gate_proj")) << e;
    }
    for (const char* which : {".gate_proj", ".up_proj", ".down_proj"}) {
      const float s = input_scale(wr, q + which);
      EXPECT_TRUE(std::isfinite(s) && s > 0.0f) << q << which;
    }
  }
  EXPECT_GT(cold, 0);
  EXPECT_GT(warm, 0);
}

// The w4a8 practice on a MoE model: experts int4 (ssz), packed [out/2, in] with scale_bias, the router FLOAT,
// attention int8; scored by eval.
TEST(MoeRunner, W4A8PracticeQuantizesExpertsToInt4) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "model");
  QuantJob job = make_job(model, tmp / "out", (repo() / "configs/w4a8.yaml").string(), 2);
  run_quantization(job);
  auto d = read_json(tmp / "out/quant_model_description.json");
  Checkpoint w = Checkpoint::open(tmp / "out");
  for (int e : {0, 7}) {
    const std::string p = "model.layers.2.mlp.experts." + std::to_string(e);
    EXPECT_EQ(d[p + ".down_proj.weight"], "W4A8_DYNAMIC");
    EXPECT_EQ(w.info(p + ".down_proj.weight").shape, (Shape{32, 32}));  // [H/2, I]: two int4 per byte
    EXPECT_TRUE(w.contains(p + ".gate_proj.scale_bias"));
  }
  EXPECT_EQ(d["model.layers.2.mlp.gate.weight"], "FLOAT");
  EXPECT_EQ(d["model.layers.1.mlp.down_proj.weight"], "W8A8_DYNAMIC");  // the dense layer's MLP
  EvalOptions eo;
  eo.float_dir = model;
  eo.quantized_dir = tmp / "out";
  eo.text = stories() / "README.md";
  eo.ctx = 64;
  eo.max_tokens = 128;
  EvalResult r = evaluate(eo);
  EXPECT_GT(r.top1_agreement, 0.5);
}

TEST(MoeRunner, UpcycledMixtralQuantizesLikeTheDenseModel) {
  const fs::path mixtral = repo() / "../shared/models/stories260K-mixtral";
  if (!fs::exists(mixtral)) GTEST_SKIP() << "shared/models not present";
  TempDir tmp;
  QuantJob job = make_job(mixtral, tmp / "out", (repo() / "configs/moe/w8a8.yaml").string(), 4);
  run_quantization(job);
  auto d = read_json(tmp / "out/quant_model_description.json");
  EXPECT_EQ(d["model.layers.4.block_sparse_moe.gate.weight"], "FLOAT");
  EXPECT_EQ(d["model.layers.4.block_sparse_moe.experts.3.w2.weight"], "W8A8_DYNAMIC");
  EXPECT_EQ(d["model.layers.4.self_attn.o_proj.weight"], "W8A8");
  EXPECT_EQ(d["lm_head.weight"], "FLOAT");
  // The 4 experts are identical copies: identical quantized weights.
  Checkpoint w = Checkpoint::open(tmp / "out/quant_model_weights.safetensors.index.json");
  EXPECT_EQ(w.read("model.layers.2.block_sparse_moe.experts.0.w1.weight").bytes,
            w.read("model.layers.2.block_sparse_moe.experts.3.w1.weight").bytes);
}

TEST(MoeRunner, BadExpertCheckpointLeavesNoOutput) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "model");
  auto cfg = read_json(model / "config.json");
  cfg["num_experts"] = 9;  // the tensors hold 8
  std::ofstream(model / "config.json") << cfg.dump(2);
  QuantJob job = make_job_yaml(model, tmp / "out", mixed_practice(), 2);
  try {
    run_quantization(job);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_experts=9"), std::string::npos) << e.what();
    SUCCEED() << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

// Data-free experts are quantized from mapped bytes without a separate
// finiteness pass: a non-finite expert weight is still refused with the
// read-time error (tensor, file, kind, element), in both layouts.
TEST(MoeRunner, NonFiniteExpertWeightIsRefusedNamingIt) {
  TempDir tmp;
  const fs::path per_expert = with_tokenizer(golden("qwen3_moe"), tmp / "per_expert");
  const fs::path fused = fused_copy(golden("qwen3_moe"), tmp / "fused");
  struct Case {
    fs::path from;
    std::string tensor, named;
  };
  for (const Case& c : {Case{per_expert, "model.layers.3.mlp.experts.5.up_proj.weight", "experts.5.up_proj.weight"},
                        Case{fused, "model.layers.3.mlp.experts.down_proj", "experts.down_proj[6]"}}) {
    fs::path model = tmp / "m";
    fs::remove_all(model);
    copy_model_with_tensor(c.from, model, c.tensor, [&](Tensor t) {
      const int64_t at = c.named.back() == ']' ? t.numel() / t.dim(0) * 6 + 7 : t.numel() / 2;
      t.data<float>()[at] = std::nanf("");
      return t;
    });
    try {
      run_quantization(make_job(model, tmp / "out", (repo() / "configs/moe/w8a16.yaml").string()));
      ADD_FAILURE() << "no error for " << c.tensor;
    } catch (const Error& e) {
      const std::string what = e.what();
      for (const std::string& part : {c.named, std::string("model.safetensors"), std::string("NaN"),
                                      std::string("element")})
        EXPECT_NE(what.find(part), std::string::npos) << part << " not in: " << what;
    }
    EXPECT_FALSE(fs::exists(tmp / "out"));
  }
}

// kill -9 in the middle of the run (after layer 2's experts and attention are
// written but before its commit), then the same command: byte-identical to
// an uninterrupted run, the half-written layer discarded. With quarot the
// resumed run rotates layers 2 and 3 and their streamed experts afresh, and
// the calibration states committed with layer 1 are already rotated.
// With online rotation the rotations of the layers committed before the kill
// are in the description's metadata too (the saver's resume state).
void expect_resume_after_a_kill_in_a_moe_layer(bool quarot, const std::string& quarot_extra = "") {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "model");
  std::ofstream(tmp / "quarot.yaml") << moe_w8a8_practice(/*quarot=*/true, quarot_extra);
  const std::string how = quarot ? "--config_path " + (tmp / "quarot.yaml").string() : "--quant_type w8a8";
  auto run = [&](const fs::path& save, const std::string& kill_at) {
    const std::string cmd = (kill_at.empty() ? std::string() : "LWQUANT_TEST_KILL_AT=" + kill_at + " ") + LWQ_BINARY +
                            " quant --model_path " + model.string() + " --save_path " + save.string() + " " + how +
                            " --max_calib_samples 3 --commit_interval 0 >" + (tmp / "log").string() + " 2>&1";
    return std::system(cmd.c_str());
  };
  ASSERT_EQ(run(tmp / "clean", ""), 0) << read_text_file(tmp / "log");
  const int killed = run(tmp / "resumed", "2:saved");
  EXPECT_TRUE((WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL) ||
              (WIFEXITED(killed) && WEXITSTATUS(killed) == 128 + SIGKILL));
  EXPECT_FALSE(fs::exists(tmp / "resumed"));
  ASSERT_EQ(run(tmp / "resumed", ""), 0) << read_text_file(tmp / "log");
  EXPECT_NE(read_text_file(tmp / "log").find("resuming an interrupted run: 2 of 4 layers"), std::string::npos)
      << read_text_file(tmp / "log");
  expect_same_folder(tmp / "clean", tmp / "resumed");
}

TEST(MoeRunner, ResumesAfterAKillInAMoeLayer) { expect_resume_after_a_kill_in_a_moe_layer(false); }

TEST(MoeRunner, ResumesAfterAKillInAMoeLayerWithQuarot) { expect_resume_after_a_kill_in_a_moe_layer(true); }

TEST(MoeRunner, ResumesAfterAKillInAMoeLayerWithOnlineQuarot) {
  expect_resume_after_a_kill_in_a_moe_layer(true, ", online: true, max_tp_size: 2, down_proj_online_layers: [1]");
}

}  // namespace
}  // namespace lwq
