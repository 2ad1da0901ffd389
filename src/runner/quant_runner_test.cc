// End-to-end runs of the layer_wise runner on the bundled stories260K model
// and its qwen2 variant, checked against the ascendV1 format (spec §3, §10).
#include "runner/quant_runner.h"

#include <algorithm>
#include <gtest/gtest.h>

#include <cstring>
#include <set>

#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "quant/w8a8_export.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

const std::vector<std::string> kLinears = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                           "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                           "mlp.down_proj"};

struct Output {
  nlohmann::ordered_json description;
  Checkpoint weights;
};

Output open_output(const fs::path& dir) {
  fs::path index = dir / "quant_model_weights.safetensors.index.json";
  fs::path single = dir / "quant_model_weights.safetensors";
  return {read_json(dir / "quant_model_description.json"), Checkpoint::open(fs::exists(index) ? index : single)};
}

void expect_tensor(const Checkpoint& w, const std::string& name, DType dtype, Shape shape) {
  ASSERT_TRUE(w.contains(name)) << name;
  EXPECT_EQ(w.info(name).dtype, dtype) << name;
  EXPECT_EQ(w.info(name).shape, shape) << name;
}

// Every stored tensor is described and vice versa; the global keys close the
// description in msModelSlim's order.
void expect_consistent_description(const Output& out, const std::string& quant_type) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : out.description.items()) keys.push_back(k);
  ASSERT_GE(keys.size(), 5u);
  std::vector<std::string> tail(keys.end() - 5, keys.end());
  EXPECT_EQ(tail, (std::vector<std::string>{"version", "model_quant_type", "metadata", "group_size", "optional"}));
  EXPECT_EQ(out.description["version"], "1.0.0");
  EXPECT_EQ(out.description["model_quant_type"], quant_type);
  EXPECT_EQ(out.description["group_size"], 0);
  std::set<std::string> described(keys.begin(), keys.end() - 5);
  auto stored = out.weights.tensor_names();
  EXPECT_EQ(described, std::set<std::string>(stored.begin(), stored.end()));
  // Description order is write order, which is also the order of the shards.
  EXPECT_EQ(std::vector<std::string>(keys.begin(), keys.end() - 5), stored);
}

TEST(QuantRunner, W8A8StaticOnStories260K) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a8.yaml").string());
  QuantOutcome outcome = run_quantization(job);
  EXPECT_EQ(outcome.model_quant_type, "W8A8");
  Output out = open_output(tmp / "out");
  expect_consistent_description(out, "W8A8");
  // Loaders refuse group-write or "other" bits (ascend_loaders.md §10 rule 1): every file is 0640.
  for (const auto& e : fs::directory_iterator(tmp / "out"))
    EXPECT_EQ(fs::status(e.path()).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read)
        << e.path();
  for (int k = 0; k < 5; ++k)
    for (const auto& lin : kLinears) {
      std::string p = "model.layers." + std::to_string(k) + "." + lin;
      const Shape w_shape = out.weights.info(p + ".weight").shape;
      const int64_t o = w_shape[0];
      expect_tensor(out.weights, p + ".weight", DType::I8, w_shape);
      expect_tensor(out.weights, p + ".quant_bias", DType::I32, {o});
      expect_tensor(out.weights, p + ".input_scale", DType::F32, {1});
      expect_tensor(out.weights, p + ".input_offset", DType::F32, {1});
      expect_tensor(out.weights, p + ".deq_scale", DType::I64, {o});  // f32 model: int64 bit patterns
      EXPECT_FALSE(out.weights.contains(p + ".weight_scale")) << "W8A8 writes no weight_scale";
      for (const char* suffix : {".weight", ".quant_bias", ".input_scale", ".input_offset", ".deq_scale"})
        EXPECT_EQ(out.description[p + suffix], "W8A8") << p << suffix;
      // quant_bias = round(0/deq − offset·ΣWq) for these bias-free Linears.
      Tensor wq = out.weights.read(p + ".weight");
      float offset = to_f32(out.weights.read(p + ".input_offset"))[0];
      EXPECT_EQ(offset, std::nearbyint(offset));
      EXPECT_GE(offset, -128.0f);
      EXPECT_LE(offset, 127.0f);
      Tensor qb = out.weights.read(p + ".quant_bias");
      for (int64_t r = 0; r < o; ++r) {
        float sum = 0;
        for (int64_t i = 0; i < w_shape[1]; ++i) sum += static_cast<float>(wq.data<int8_t>()[r * w_shape[1] + i]);
        ASSERT_EQ(qb.data<int32_t>()[r], static_cast<int32_t>(std::nearbyint(-sum * offset))) << p << " row " << r;
      }
      // deq_scale decodes to positive float32 values.
      Tensor dq = out.weights.read(p + ".deq_scale");
      auto deq = deq_scale_from_int64_bits({dq.data<int64_t>(), static_cast<size_t>(o)});
      for (float d : deq) ASSERT_GT(d, 0.0f);
    }
  // Non-layer tensors and norms are FLOAT in their original dtype; the tied head is written (fact 16).
  for (const char* name : {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                           "model.layers.0.input_layernorm.weight"}) {
    EXPECT_EQ(out.description[name], "FLOAT") << name;
    EXPECT_EQ(out.weights.info(name).dtype, DType::F32) << name;
  }
  Checkpoint source = Checkpoint::open(stories());
  EXPECT_EQ(out.weights.read("lm_head.weight").bytes, source.read("model.embed_tokens.weight").bytes);
  // Copied files, the report, and nothing a loader would trip over.
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json",
                        "tokenizer.model", "quant_report.json"})
    EXPECT_TRUE(fs::exists(tmp / "out" / f)) << f;
  EXPECT_FALSE(fs::exists(tmp / "out" / "model.safetensors"));
  EXPECT_FALSE(out.description.contains("quant_report.json"));
  auto report = read_json(tmp / "out" / "quant_report.json");
  ASSERT_EQ(report["layers"].size(), 5u);
  EXPECT_TRUE(report["measured"].get<bool>());
  for (const auto& layer : report["layers"]) {
    EXPECT_GT(layer["cosine"].get<double>(), 0.99);
    EXPECT_LT(layer["relative_l2"].get<double>(), 0.2);
    EXPECT_EQ(layer["linears"].size(), 7u);
    // Each static Linear's calibration input range, the one its exported scale was made from.
    for (const auto& lin : layer["linears"]) {
      const std::string name = lin["name"].get<std::string>();
      ASSERT_TRUE(lin.contains("input_range")) << name;
      const float lo = lin["input_range"][0].get<float>(), hi = lin["input_range"][1].get<float>();
      EXPECT_LT(lo, hi) << name;
      const std::vector<float> scale = to_f32(out.weights.read(name + ".input_scale"));
      ASSERT_EQ(scale.size(), 1u);
      const float expected = (std::max(hi, 0.0f) - std::min(lo, 0.0f)) / 255.0f;
      EXPECT_NEAR(scale[0], expected, 1e-3f * expected) << name;  // input_scale is rounded to f16 (serving dtype)
    }
  }
}

TEST(QuantRunner, W8A8DynamicIsDataFreeAndWritesPerChannelScales) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a8_dynamic.yaml").string());
  job.builtin_calib_dir = tmp / "nowhere";  // proves no dataset is read
  job.config.dataset = "missing.jsonl";
  EXPECT_EQ(run_quantization(job).model_quant_type, "W8A8_DYNAMIC");
  Output out = open_output(tmp / "out");
  expect_consistent_description(out, "W8A8_DYNAMIC");
  std::string p = "model.layers.2.mlp.down_proj";
  expect_tensor(out.weights, p + ".weight", DType::I8, {64, 172});
  expect_tensor(out.weights, p + ".weight_scale", DType::F32, {64, 1});
  expect_tensor(out.weights, p + ".weight_offset", DType::F32, {64, 1});
  for (float v : to_f32(out.weights.read(p + ".weight_offset"))) EXPECT_EQ(v, 0.0f);
  EXPECT_FALSE(out.weights.contains(p + ".input_scale"));
  // Dequantized weights are within half a step of the float ones.
  Checkpoint source = Checkpoint::open(stories());
  auto w = to_f32(source.read(p + ".weight"));
  auto s = to_f32(out.weights.read(p + ".weight_scale"));
  Tensor q = out.weights.read(p + ".weight");
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t i = 0; i < 172; ++i)
      ASSERT_NEAR(q.data<int8_t>()[r * 172 + i] * s[r], w[r * 172 + i], 0.5f * s[r] + 1e-7f);
  // No static activation, no input range in the report.
  for (const auto& layer : read_json(tmp / "out" / "quant_report.json")["layers"])
    for (const auto& lin : layer["linears"]) EXPECT_FALSE(lin.contains("input_range")) << lin["name"];
}

TEST(QuantRunner, W8A16AsymmetricSingleFileWithExclude) {
  TempDir tmp;
  const std::string yaml = R"(apiversion: modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        weight: {dtype: int8, scope: per_channel, symmetric: false, method: minmax}
      include: ["*"]
      exclude: ["*down_proj", "model.layers.{0,4}.self_attn.o_proj"]
  save:
    - type: ascendv1_saver
      part_file_size: 0
)";
  QuantJob job = make_job_yaml(stories(), tmp / "out", yaml);
  EXPECT_EQ(run_quantization(job).model_quant_type, "W8A16");
  EXPECT_TRUE(fs::exists(tmp / "out" / "quant_model_weights.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "out" / "quant_model_weights.safetensors.index.json"));
  Output out = open_output(tmp / "out");
  expect_consistent_description(out, "W8A16");
  EXPECT_EQ(out.description["model.layers.1.mlp.down_proj.weight"], "FLOAT");
  EXPECT_EQ(out.weights.info("model.layers.1.mlp.down_proj.weight").dtype, DType::F32);
  EXPECT_EQ(out.description["model.layers.0.self_attn.o_proj.weight"], "FLOAT");
  EXPECT_EQ(out.description["model.layers.1.self_attn.o_proj.weight"], "W8A16");
  auto offsets = to_f32(out.weights.read("model.layers.1.mlp.up_proj.weight_offset"));
  bool any_nonzero = false;
  for (float v : offsets) {
    EXPECT_EQ(v, std::nearbyint(v));
    any_nonzero = any_nonzero || v != 0.0f;
  }
  EXPECT_TRUE(any_nonzero) << "asymmetric weights keep their offsets";
}

TEST(QuantRunner, Qwen2BiasesAreFoldedIntoQuantBiasAndKeptAsFloat) {
  TempDir tmp;
  fs::path qwen2 = repo() / "tests" / "data" / "models" / "stories260K-qwen2";
  if (!fs::exists(qwen2)) qwen2 = fs::path(LWQ_SHARED_DIR) / "models" / "stories260K-qwen2";
  QuantJob job = make_job(qwen2, tmp / "out", (repo() / "configs/w8a8.yaml").string());
  run_quantization(job);
  Output out = open_output(tmp / "out");
  expect_consistent_description(out, "W8A8");
  std::string p = "model.layers.0.self_attn.q_proj";
  expect_tensor(out.weights, p + ".bias", DType::F32, {64});
  EXPECT_EQ(out.description[p + ".bias"], "FLOAT");
  EXPECT_EQ(out.description[p + ".quant_bias"], "W8A8");
}

TEST(QuantRunner, Bf16ModelsGetFloatDeqScale) {
  TempDir tmp;
  fs::path model = copy_model(stories(), tmp / "model", [](auto& cfg) { cfg["torch_dtype"] = "bfloat16"; });
  QuantJob job = make_job(model, tmp / "out", (repo() / "configs/w8a8.yaml").string(), 2);
  run_quantization(job);
  Output out = open_output(tmp / "out");
  expect_tensor(out.weights, "model.layers.0.mlp.up_proj.deq_scale", DType::F32, {172});
  // input_scale is rounded to bf16 (the serving dtype), fact 18.
  float s = to_f32(out.weights.read("model.layers.0.mlp.up_proj.input_scale"))[0];
  EXPECT_EQ(round_to_dtype(s, DType::BF16), s);
}

TEST(QuantRunner, ShardsFollowPartFileSize) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a8_dynamic.yaml").string());
  job.config.save.front().part_file_size = 0;
  run_quantization(job);
  EXPECT_TRUE(fs::exists(tmp / "out" / "quant_model_weights.safetensors"));
  job.save_path = tmp / "out4";
  job.config.save.front().part_file_size = 4;
  run_quantization(job);
  EXPECT_TRUE(fs::exists(tmp / "out4" / "quant_model_weights-00001-of-00001.safetensors"));
  auto index = read_json(tmp / "out4" / "quant_model_weights.safetensors.index.json");
  uint64_t total = 0;
  Checkpoint w = Checkpoint::open(tmp / "out4" / "quant_model_weights.safetensors.index.json");
  for (const auto& name : w.tensor_names()) total += w.info(name).nbytes;
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
}

TEST(QuantRunner, RefusesNonEmptySavePathUnlessOverwrite) {
  TempDir tmp;
  fs::create_directories(tmp / "out");
  std::ofstream(tmp / "out" / "keep.txt") << "old";
  std::ofstream(tmp / "out" / "quant_model_description.json") << "{}";  // an earlier lwquant output
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a16.yaml").string());
  EXPECT_THROW(run_quantization(job), Error);
  EXPECT_TRUE(fs::exists(tmp / "out" / "keep.txt"));
  job.overwrite = true;
  run_quantization(job);
  EXPECT_FALSE(fs::exists(tmp / "out" / "keep.txt"));
  EXPECT_TRUE(fs::exists(tmp / "out" / "quant_model_weights.safetensors") ||
              fs::exists(tmp / "out" / "quant_model_weights-00001-of-00001.safetensors"));
  EXPECT_NE(read_text_file(tmp / "out" / "quant_model_description.json"), "{}");
}

// --overwrite replaces only what lwquant wrote: a folder of other files stays.
TEST(QuantRunner, OverwriteRefusesAFolderLwquantDidNotWrite) {
  TempDir tmp;
  fs::create_directories(tmp / "out");
  std::ofstream(tmp / "out" / "thesis.tex") << "precious";
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a16.yaml").string());
  job.overwrite = true;
  try {
    run_quantization(job);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("quant_model_description"), std::string::npos) << e.what();
  }
  EXPECT_EQ(read_text_file(tmp / "out" / "thesis.tex"), "precious");
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp.path()), fs::directory_iterator()), 1);
}

TEST(QuantRunner, DiskFullLeavesNoFinishedFolderAndKeepsOldContent) {
  TempDir tmp;
  fs::create_directories(tmp / "out");
  std::ofstream(tmp / "out" / "keep.txt") << "old";
  std::ofstream(tmp / "out" / "quant_model_description.json") << "{}";
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a16.yaml").string());
  job.overwrite = true;
  set_write_fault_after_bytes_for_testing(100000);
  EXPECT_THROW(run_quantization(job), Error);
  set_write_fault_after_bytes_for_testing(-1);
  EXPECT_TRUE(fs::exists(tmp / "out" / "keep.txt"));
  EXPECT_EQ(read_text_file(tmp / "out" / "quant_model_description.json"), "{}");
  for (const auto& e : fs::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().filename().string().find(".lwquant-tmp"), std::string::npos) << e.path();
}

TEST(QuantRunner, BadDatasetsAreReported) {
  TempDir tmp;
  std::ofstream(tmp / "empty.jsonl") << "\n";
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a8.yaml").string());
  job.calib_data = (tmp / "empty.jsonl").string();
  EXPECT_THROW(run_quantization(job), Error);
  std::ofstream(tmp / "bad.jsonl") << "{\"inputs_pretokenized\": \"ok\"}\n{oops\n";
  job.calib_data = (tmp / "bad.jsonl").string();
  try {
    run_quantization(job);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  job.calib_data = (tmp / "missing.jsonl").string();
  EXPECT_THROW(run_quantization(job), Error);
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

// The same weights and description in two single-shard outputs (their reports may differ).
void expect_same_checkpoint(const fs::path& a, const fs::path& b) {
  for (const char* f : {"quant_model_description.json", "quant_model_weights-00001-of-00001.safetensors"})
    EXPECT_EQ(read_text_file(a / f), read_text_file(b / f)) << f;
}

// The report's float forwards only measure: skipping them changes no byte of the checkpoint.
TEST(QuantRunner, NoReportWritesTheSameCheckpoint) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "with", (repo() / "configs/w8a8.yaml").string(), 3);
  run_quantization(job);
  job.save_path = tmp / "without";
  job.report = false;
  run_quantization(job);
  expect_same_checkpoint(tmp / "with", tmp / "without");
  auto report = read_json(tmp / "without" / "quant_report.json");
  EXPECT_FALSE(report["measured"].get<bool>());
  EXPECT_FALSE(report["layers"][0].contains("relative_l2"));
}

// The default report measures a 1/16 sample of rows and tokens; its figures
// stay close to the full measurement, and neither touches the checkpoint.
TEST(QuantRunner, SampledReportIsCloseToTheFullOne) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "sampled", (repo() / "configs/w8a8.yaml").string(), 4);
  run_quantization(job);
  job.save_path = tmp / "full";
  job.full_report = true;
  run_quantization(job);
  expect_same_checkpoint(tmp / "sampled", tmp / "full");
  auto sampled = read_json(tmp / "sampled" / "quant_report.json"), full = read_json(tmp / "full" / "quant_report.json");
  EXPECT_TRUE(sampled["sampled"].get<bool>());
  EXPECT_FALSE(full["sampled"].get<bool>());
  // Sample 0 (every 16th of four) would be over 1/16 of the tokens: the shortest sample stands in.
  const auto tokens = sampled["sample_tokens"].get<std::vector<int64_t>>();
  ASSERT_EQ(tokens.size(), 4u);
  const auto shortest = static_cast<size_t>(std::min_element(tokens.begin(), tokens.end()) - tokens.begin());
  EXPECT_EQ(sampled["layer_reference_samples"].get<std::vector<size_t>>(), std::vector<size_t>{shortest});
  EXPECT_EQ(full["layer_reference_samples"].get<std::vector<size_t>>(), (std::vector<size_t>{0, 1, 2, 3}));
  for (size_t l = 0; l < 5; ++l) {
    double a = sampled["layers"][l]["relative_l2"].get<double>(), b = full["layers"][l]["relative_l2"].get<double>();
    EXPECT_GT(a, 0.0);
    EXPECT_NE(a, b);  // really a different measurement
    // One sample of four stands for the layer here: an estimate, within 2x.
    EXPECT_GT(a, 0.5 * b) << "layer " << l;
    EXPECT_LT(a, 2.0 * b) << "layer " << l;
    for (size_t i = 0; i < 7; ++i) {
      double la = sampled["layers"][l]["linears"][i]["relative_l2"].get<double>();
      double lb = full["layers"][l]["linears"][i]["relative_l2"].get<double>();
      EXPECT_NEAR(la, lb, 0.5 * lb) << "layer " << l << " linear " << i;
    }
  }
}

// The per-layer float reference taken from iter_smooth's forward (the report's
// samples last, their products complete) measures what a float forward of
// its own measures, and the checkpoint does not depend on where it came from.
TEST(QuantRunner, ReferenceFromTheSmoothingForwardEqualsAFloatForward) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "reused", (repo() / "configs/w8a8.yaml").string(), 4);
  run_quantization(job);
  job.save_path = tmp / "own";
  job.reference_from_smoothing = false;
  run_quantization(job);
  expect_same_checkpoint(tmp / "reused", tmp / "own");
  auto reused = read_json(tmp / "reused" / "quant_report.json"), own = read_json(tmp / "own" / "quant_report.json");
  for (size_t l = 0; l < 5; ++l) {
    const double a = reused["layers"][l]["relative_l2"].get<double>(), b = own["layers"][l]["relative_l2"].get<double>();
    EXPECT_GT(a, 0.0);
    EXPECT_NEAR(a, b, 1e-3 * b) << "layer " << l;
    EXPECT_EQ(reused["layers"][l]["reference"], "smoothing_forward");
    EXPECT_EQ(own["layers"][l]["reference"], "float_forward");
  }
}

// Calibrated runs stream their Linear weights from the page cache
// (LinearWeightHold::Streamed) instead of reading them into memory: every
// product, scaling and rotation reads the same values, so the checkpoint and
// the report are the same bytes. f32 and bf16 checkpoints (the latter with
// bf16 statistics products, which multiply the mapped bytes directly), and
// quarot, which moves mapped weights to rotated f32 copies.
TEST(QuantRunner, StreamedWeightsGiveTheCheckpointOfReadOnes) {
  TempDir tmp;
  const fs::path qwen3 = tmp / "qwen3";  // bfloat16 golden with a tokenizer of its vocabulary
  fs::create_directories(qwen3);
  for (const auto& e : fs::directory_iterator(repo() / "tests/data/goldens/qwen3"))
    if (e.path().filename() != "reference.safetensors") fs::copy_file(e.path(), qwen3 / e.path().filename());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    if (fs::exists(repo() / "tests/data/goldens/qwen3_vl_moe_tiny" / f))
      fs::copy_file(repo() / "tests/data/goldens/qwen3_vl_moe_tiny" / f, qwen3 / f);
  struct Case {
    fs::path model;
    fs::path config;
    bool bf16_statistics;
  };
  const Case cases[] = {{stories(), repo() / "configs/w8a8.yaml", false},
                        {qwen3, repo() / "configs/w8a8.yaml", true},
                        {qwen3, repo() / "tests/data/configs/qwen3_vl_moe_w8a8.yaml", false}};
  int n = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.model.filename().string() + " " + c.config.filename().string());
    const std::string tag = std::to_string(n++);
    QuantJob job = make_job(c.model, tmp / ("streamed" + tag), c.config.string(), 3);
    job.bf16_statistics_products = c.bf16_statistics;
    job.calib_data = "calib_zh_en.jsonl";  // text prompts for every case (the VLM practice names images)
    run_quantization(job);
    job.save_path = tmp / ("read" + tag);
    job.stream_calibrated_weights = false;
    run_quantization(job);
    expect_same_checkpoint(tmp / ("streamed" + tag), tmp / ("read" + tag));
    EXPECT_EQ(read_text_file(tmp / ("streamed" + tag) / "quant_report.json"),
              read_text_file(tmp / ("read" + tag) / "quant_report.json"));
  }
}

TEST(QuantRunner, ModelWiseMatchesLayerWise) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "lw", (repo() / "configs/w8a8.yaml").string(), 3);
  run_quantization(job);
  job.save_path = tmp / "mw";
  job.config.runner = RunnerType::ModelWise;
  run_quantization(job);
  expect_same_checkpoint(tmp / "lw", tmp / "mw");
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {
using namespace testing_util;

// Several savers in one spec.save list write several outputs from one run:
// ascendv1 exactly as when it is alone, mindie from the same records (dense
// LLMs too, spec §3.10), with float32 deq_scale where ascendv1 stores int64 bits.
TEST(QuantRunner, AscendV1AndMindieSaversFromOneRun) {
  TempDir tmp;
  const std::string process = R"(apiversion: modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        act: {scope: per_tensor, dtype: int8, symmetric: False, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
      include: ["*"]
  dataset: calib_zh_en.jsonl
  save:
    - {type: ascendv1_saver, part_file_size: 0}
)";
  run_quantization(make_job_yaml(stories(), tmp / "alone", process, 3));
  run_quantization(make_job_yaml(stories(), tmp / "both", process + "    - {type: mindie_format_saver, part_file_size: 0}\n", 3));
  for (const char* f : {"quant_model_weights.safetensors", "quant_model_description.json", "quant_report.json"})
    EXPECT_EQ(read_text_file(tmp / "alone" / f), read_text_file(tmp / "both" / f)) << f;
  Checkpoint a = Checkpoint::open(tmp / "both/quant_model_weights.safetensors");
  Checkpoint m = Checkpoint::open(tmp / "both/quant_model_weight_w8a8.safetensors");
  auto desc = read_json(tmp / "both/quant_model_description_w8a8.json");
  EXPECT_EQ(desc["model_quant_type"], "W8A8");
  EXPECT_FALSE(desc.contains("version"));
  const std::string p = "model.layers.2.mlp.down_proj";
  EXPECT_EQ(desc[p + ".weight"], "W8A8");
  EXPECT_EQ(a.info(p + ".deq_scale").dtype, DType::I64);
  EXPECT_EQ(m.info(p + ".deq_scale").dtype, DType::F32);
  const Tensor bits = a.read(p + ".deq_scale");
  const std::vector<float> f = to_f32(m.read(p + ".deq_scale"));
  for (size_t i = 0; i < f.size(); ++i) {
    float from_bits;
    const uint32_t low = static_cast<uint32_t>(bits.data<int64_t>()[i]);
    std::memcpy(&from_bits, &low, 4);
    EXPECT_EQ(from_bits, f[i]) << i;
  }
  for (const char* s : {".weight", ".quant_bias", ".input_scale", ".input_offset"})
    EXPECT_EQ(a.read(p + s).bytes, m.read(p + s).bytes) << s;
  EXPECT_EQ(a.tensor_names().size(), m.tensor_names().size());
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {
using namespace testing_util;

// A calibrated LLM run with its hidden states spilled (a limit of 1 KiB) and
// chunked a sample at a time gives the same bytes as in memory.
TEST(QuantRunner, SpilledCalibrationGivesTheSameOutput) {
  TempDir tmp;
  QuantJob a = make_job(stories(), tmp / "a", (repo() / "configs/w8a8.yaml").string(), 4);
  run_quantization(a);
  QuantJob b = make_job(stories(), tmp / "b", (repo() / "configs/w8a8.yaml").string(), 4);
  b.calib_memory_limit = 1024;
  run_quantization(b);
  expect_same_folder(tmp / "a", tmp / "b");
}

}  // namespace
}  // namespace lwq
