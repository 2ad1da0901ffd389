// The layer_wise runner on Wan2.1 DiTs (issue 10): msModelSlim's
// wan2_1_w8a8_dynamic practice unchanged on the tiny diffusers-layout golden
// (tests/data/goldens/wan_tiny) and on the same model in the original Wan
// layout, the mindie_format_saver output tensor for tensor as multimodal.md
// B.3.4 lists it, static W8A8 from captured block inputs, resume, and bad
// inputs that leave no output.
#include <gtest/gtest.h>

#include <map>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <fstream>
#include <span>

#include "eval/dit_evaluator.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/wan.h"
#include "models/wan_test_util.h"
#include "runner/quant_runner.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

fs::path wan_golden() { return repo() / "tests/data/goldens/wan_tiny"; }
fs::path wan_practice() { return repo() / "tests/data/configs/wan2_1_w8a8_dynamic.yaml"; }

// The golden's transformer without its reference outputs (diffusers layout).
fs::path diffusers_model(const fs::path& to) {
  fs::create_directories(to);
  for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"}) fs::copy_file(wan_golden() / f, to / f);
  return to;
}

// The same weights under the original Wan names and config.json, as Wan2.1's
// own releases store them. `dtype` converts the float tensors.
fs::path original_model(const fs::path& to, DType dtype = DType::F32, int num_layers = 2) {
  fs::create_directories(to);
  WanConfig diff = load_wan_config(wan_golden());
  Checkpoint ckpt = Checkpoint::open(wan_golden() / "diffusion_pytorch_model.safetensors");
  SafetensorsWriter w(to / "diffusion_pytorch_model.safetensors");
  auto add = [&](const std::string& name) {
    Tensor t = ckpt.read(wan_checkpoint_name(diff, name));
    w.add(name, dtype == DType::F32 ? t : tensor_from_f32(dtype, t.shape, to_f32(t)));
  };
  for (int n = 0; n < diff.num_layers; ++n) {
    LayerDesc d = wan_block_desc(diff, n);
    for (const auto& t : d.tensors) add(d.prefix + "." + t.name);
  }
  diff.text_dim = 32;
  for (const auto& t : wan_outer_tensors(diff)) add(t.name);
  w.finish();
  std::ofstream(to / "config.json") << nlohmann::json{{"_class_name", "WanModel"}, {"model_type", "t2v"},
                                                       {"dim", 48}, {"ffn_dim", 96}, {"num_heads", 2},
                                                       {"num_layers", num_layers}, {"in_dim", 4}, {"out_dim", 4},
                                                       {"freq_dim", 32}, {"text_len", 5}, {"eps", 1e-6}}
                                            .dump(2);
  return to;
}

// The image-to-video golden's blocks (tests/data/goldens/wan_tiny_i2v holds
// only those) under the original names, with seeded random tensors outside
// the blocks (CLIP image embedder included), config.json model_type i2v.
fs::path original_i2v_model(const fs::path& to) {
  fs::create_directories(to);
  const fs::path golden = repo() / "tests/data/goldens/wan_tiny_i2v";
  WanConfig diff = load_wan_config(golden);
  Checkpoint ckpt = Checkpoint::open(golden / "blocks.safetensors");
  SafetensorsWriter w(to / "diffusion_pytorch_model.safetensors");
  for (int n = 0; n < diff.num_layers; ++n) {
    LayerDesc d = wan_block_desc(diff, n);
    for (const auto& t : d.tensors) w.add(d.prefix + "." + t.name, ckpt.read(wan_checkpoint_name(diff, d.prefix + "." + t.name)));
  }
  diff.text_dim = 32;
  uint32_t seed = 5;
  for (const auto& t : wan_outer_tensors(diff)) {
    Tensor r(DType::F32, t.shape);
    for (int64_t i = 0; i < r.numel(); ++i) {
      seed = seed * 1664525u + 1013904223u;
      r.data<float>()[i] = static_cast<float>(seed >> 8) / 16777216.0f * 0.2f - 0.1f;
    }
    w.add(t.name, r);
  }
  w.finish();
  std::ofstream(to / "config.json") << nlohmann::json{{"_class_name", "WanModel"}, {"model_type", "i2v"},
                                                       {"dim", 48}, {"ffn_dim", 96}, {"num_heads", 2},
                                                       {"num_layers", 2}, {"in_dim", 4}, {"out_dim", 4},
                                                       {"freq_dim", 32}, {"text_len", 512}, {"eps", 1e-6}}
                                            .dump(2);
  return to;
}

// Block 0's captured inputs: the golden's (sample 0) and a second sample with
// the rows scaled, in the layout tools/capture_wan_inputs.py writes.
fs::path captured_inputs(const fs::path& file, const fs::path& golden = wan_golden()) {
  return test::write_wan_captured_inputs(golden, file);
}

std::vector<std::string> keys(const nlohmann::ordered_json& j) {
  std::vector<std::string> k;
  for (const auto& [key, v] : j.items()) k.push_back(key);
  return k;
}

// What msModelSlim's mindie_format_saver writes for this model under the
// reference practice (multimodal.md B.3.4), in write order.
std::vector<std::pair<std::string, std::string>> expected_description() {
  std::vector<std::pair<std::string, std::string>> d;
  auto quantized = [&](const std::string& p) {
    for (const char* s : {".weight", ".weight_scale", ".weight_offset"}) d.emplace_back(p + s, "W8A8_DYNAMIC");
    d.emplace_back(p + ".bias", "FLOAT");
  };
  for (int n = 0; n < 2; ++n) {
    const std::string b = "blocks." + std::to_string(n) + ".";
    d.emplace_back(b + "modulation", "FLOAT");
    for (const char* l : {"q", "k", "v", "o"}) quantized(b + "self_attn." + l);
    d.emplace_back(b + "self_attn.norm_q.weight", "FLOAT");
    d.emplace_back(b + "self_attn.norm_k.weight", "FLOAT");
    d.emplace_back(b + "norm3.weight", "FLOAT");
    d.emplace_back(b + "norm3.bias", "FLOAT");
    for (const char* l : {"q", "k", "v", "o"}) quantized(b + "cross_attn." + l);
    d.emplace_back(b + "cross_attn.norm_q.weight", "FLOAT");
    d.emplace_back(b + "cross_attn.norm_k.weight", "FLOAT");
    quantized(b + "ffn.0");
    d.emplace_back(b + "ffn.2.weight", "FLOAT");
    d.emplace_back(b + "ffn.2.bias", "FLOAT");
  }
  for (const char* t : {"patch_embedding.weight", "patch_embedding.bias", "text_embedding.0.weight",
                        "text_embedding.0.bias", "text_embedding.2.weight", "text_embedding.2.bias",
                        "time_embedding.0.weight", "time_embedding.0.bias", "time_embedding.2.weight",
                        "time_embedding.2.bias", "time_projection.1.weight", "time_projection.1.bias",
                        "head.modulation", "head.head.weight", "head.head.bias"})
    d.emplace_back(t, "FLOAT");
  d.emplace_back("model_quant_type", "W8A8_DYNAMIC");
  return d;
}

TEST(WanRunner, ReferencePracticeWritesWhatMindieSdLoads) {
  TempDir tmp;
  const fs::path model = diffusers_model(tmp / "model");
  QuantOutcome out = run_quantization(make_job(model, tmp / "out", wan_practice().string()));
  EXPECT_EQ(out.model_quant_type, "W8A8_DYNAMIC");
  const fs::path desc_file = tmp / "out/quant_model_description_w8a8_dynamic.json";
  const fs::path weights_file = tmp / "out/quant_model_weight_w8a8_dynamic.safetensors";
  ASSERT_TRUE(fs::exists(desc_file));
  ASSERT_TRUE(fs::exists(weights_file));
  EXPECT_TRUE(fs::exists(tmp / "out/config.json"));
  EXPECT_FALSE(fs::exists(tmp / "out/quant_model_weight.safetensors"));
  for (const fs::path& f : {desc_file, weights_file}) {  // MindIE-SD refuses anything looser than 0640
    struct stat st {};
    ASSERT_EQ(::stat(f.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0640u) << f;
  }
  const std::string text = read_text_file(desc_file);
  EXPECT_NE(text.find("\n    \"blocks.0.modulation\": \"FLOAT\""), std::string::npos);  // indent 4
  auto desc = nlohmann::ordered_json::parse(text);
  std::vector<std::pair<std::string, std::string>> got;
  for (const auto& [k, v] : desc.items()) got.emplace_back(k, v.get<std::string>());
  EXPECT_EQ(got, expected_description());

  // Every tensor in the weight file in the description's order, with the dtypes and shapes of B.3.4, and the
  // int8 weights are round(W / (max|W_row| / 127)) of the checkpoint's own weights.
  Checkpoint q = Checkpoint::open(weights_file);
  Checkpoint src = Checkpoint::open(model);
  WanConfig cfg = load_wan_config(model);
  std::vector<std::string> names = q.tensor_names();
  std::vector<std::string> described = keys(desc);
  described.pop_back();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()), std::set<std::string>(described.begin(), described.end()));
  for (const auto& [name, type] : expected_description()) {
    if (name == "model_quant_type") continue;
    const TensorInfo& info = q.info(name);
    const bool quantized = type == "W8A8_DYNAMIC";
    const std::string base = name.substr(0, name.rfind('.'));
    const std::string suffix = name.substr(name.rfind('.') + 1);
    if (quantized && suffix == "weight") {
      EXPECT_EQ(info.dtype, DType::I8) << name;
      std::vector<float> w = to_f32(src.read(wan_checkpoint_name(cfg, name)));
      const int64_t out = info.shape[0], in = info.shape[1];
      const Tensor codes = q.read(name);
      const std::vector<float> scale = to_f32(q.read(base + ".weight_scale"));
      for (int64_t r = 0; r < out; ++r) {
        float m = 0.0f;
        for (int64_t c = 0; c < in; ++c) m = std::max(m, std::fabs(w[static_cast<size_t>(r * in + c)]));
        EXPECT_FLOAT_EQ(scale[static_cast<size_t>(r)], m / 127.0f) << name << " row " << r;
        for (int64_t c = 0; c < in; ++c) {
          const float expect = std::nearbyint(w[static_cast<size_t>(r * in + c)] / (m / 127.0f));
          ASSERT_NEAR(codes.data<int8_t>()[r * in + c], expect, 1.0f) << name;  // ties may round either way
        }
      }
    } else if (quantized) {
      EXPECT_EQ(info.dtype, DType::F32) << name;
      EXPECT_EQ(info.shape, (Shape{q.info(base + ".weight").shape[0], 1})) << name;
      if (suffix == "weight_offset")
        for (float z : to_f32(q.read(name))) EXPECT_EQ(z, 0.0f);
    } else if (suffix == "bias" && desc.contains(base + ".weight_scale")) {
      EXPECT_EQ(info.dtype, DType::F32) << name;  // MindIE-SD requires it beside every quantized Linear
    } else {
      // FLOAT tensors: the checkpoint's own, byte for byte, under the original Wan name.
      const std::string stored = wan_checkpoint_name(cfg, name);
      EXPECT_EQ(info.dtype, src.info(stored).dtype) << name;
      EXPECT_EQ(q.read(name).bytes, src.read(stored).bytes) << name;
    }
  }
}

TEST(WanRunner, OriginalAndDiffusersLayoutsGiveTheSameOutput) {
  TempDir tmp;
  run_quantization(make_job(diffusers_model(tmp / "diffusers"), tmp / "a", wan_practice().string()));
  run_quantization(make_job(original_model(tmp / "original"), tmp / "b", wan_practice().string()));
  for (const char* f : {"quant_model_weight_w8a8_dynamic.safetensors", "quant_model_description_w8a8_dynamic.json"})
    EXPECT_EQ(read_text_file(tmp / "a" / f), read_text_file(tmp / "b" / f)) << f;
}

TEST(WanRunner, Bf16CheckpointKeepsItsFloatTensorsInBf16) {
  TempDir tmp;
  const fs::path model = original_model(tmp / "model", DType::BF16);
  run_quantization(make_job(model, tmp / "out", wan_practice().string()));
  Checkpoint q = Checkpoint::open(tmp / "out/quant_model_weight_w8a8_dynamic.safetensors");
  EXPECT_EQ(q.info("blocks.1.modulation").dtype, DType::BF16);
  EXPECT_EQ(q.info("head.head.weight").dtype, DType::BF16);
  EXPECT_EQ(q.info("blocks.1.ffn.2.weight").dtype, DType::BF16);
  EXPECT_EQ(q.info("blocks.1.ffn.0.bias").dtype, DType::F32);
  EXPECT_EQ(q.info("blocks.1.ffn.0.weight").dtype, DType::I8);
}

// --compute_dtype bf16 on a bf16 DiT (docs/design.md "Compute dtype"): the
// blocks' Linears and the stream between blocks in bf16; the static scales
// stay within bf16 rounding's reach of the f32 run's, and some move.
TEST(WanRunner, Bf16ComputeCalibratesABf16Dit) {
  TempDir tmp;
  const fs::path model = original_model(tmp / "model", DType::BF16);
  const std::string calib = captured_inputs(tmp / "captured.safetensors").string();
  std::map<std::string, float> scales[2];
  for (int bf16 = 0; bf16 < 2; ++bf16) {
    const fs::path out = tmp / (bf16 ? "bf16" : "f32");
    QuantJob job = make_job(model, out, (repo() / "configs/wan/w8a8.yaml").string());
    job.calib_data = calib;
    if (bf16) job.compute_dtype = ComputeDType::BF16;
    run_quantization(job);
    Checkpoint q = Checkpoint::open(out / "quant_model_weight_w8a8.safetensors");
    for (const auto& n : q.tensor_names())
      if (n.ends_with(".input_scale")) scales[bf16][n] = to_f32(q.read(n))[0];
  }
  ASSERT_FALSE(scales[0].empty());
  ASSERT_EQ(scales[0].size(), scales[1].size());
  for (const auto& [n, s] : scales[0]) EXPECT_NEAR(scales[1][n], s, 0.03 * s) << n;
}

// Beyond the reference: static W8A8 calibrated on captured block-0 inputs. The
// cross-attention k/v Linears of every block see the text context itself, so
// their activation range is the context's (the same in every block).
TEST(WanRunner, StaticW8A8CalibratesFromCapturedInputs) {
  TempDir tmp;
  const fs::path model = original_model(tmp / "model");
  QuantJob job = make_job(model, tmp / "out", (repo() / "configs/wan/w8a8.yaml").string());
  job.calib_data = captured_inputs(tmp / "captured.safetensors").string();
  QuantOutcome out = run_quantization(job);
  EXPECT_EQ(out.model_quant_type, "W8A8");
  Checkpoint q = Checkpoint::open(tmp / "out/quant_model_weight_w8a8.safetensors");
  const std::vector<float> ctx = to_f32(Checkpoint::open(wan_golden() / "reference.safetensors").read("context"));
  const auto [lo, hi] = std::minmax_element(ctx.begin(), ctx.end());
  const float scale = (std::max(*hi, 0.0f) - std::min(*lo, 0.0f)) / 255.0f;
  for (const char* b : {"blocks.0", "blocks.1"})
    for (const char* l : {".cross_attn.k", ".cross_attn.v"}) {
      const std::string p = std::string(b) + l;
      EXPECT_NEAR(to_f32(q.read(p + ".input_scale"))[0], scale, 1e-3 * scale) << p;
      EXPECT_EQ(q.info(p + ".deq_scale").dtype, DType::F32) << p;  // mindie: always float32
    }
  // The report measured each block's quantized output against float on the captured inputs.
  auto report = read_json(tmp / "out/quant_report.json");
  ASSERT_EQ(report["layers"].size(), 2u);
  for (const auto& l : report["layers"]) {
    EXPECT_GT(l["cosine"].get<double>(), 0.99) << l["name"];
    EXPECT_LT(l["relative_l2"].get<double>(), 0.1) << l["name"];
  }
}

// Image-to-video: k_img / v_img are Linears of the practice like the others
// (the reference's include "*" matches them), the CLIP image embedder outside
// the blocks stays FLOAT, and static W8A8 calibrates through the image
// cross-attention on captured inputs (image tokens before the text).
TEST(WanRunner, ImageToVideoModel) {
  TempDir tmp;
  const fs::path model = original_i2v_model(tmp / "model");
  run_quantization(make_job(model, tmp / "dyn", wan_practice().string()));
  auto desc = read_json(tmp / "dyn/quant_model_description_w8a8_dynamic.json");
  EXPECT_EQ(desc["blocks.1.cross_attn.k_img.weight"], "W8A8_DYNAMIC");
  EXPECT_EQ(desc["blocks.1.cross_attn.v_img.weight_scale"], "W8A8_DYNAMIC");
  EXPECT_EQ(desc["blocks.1.cross_attn.norm_k_img.weight"], "FLOAT");
  EXPECT_EQ(desc["img_emb.proj.1.weight"], "FLOAT");

  QuantJob job = make_job(model, tmp / "static", (repo() / "configs/wan/w8a8.yaml").string());
  job.calib_data = captured_inputs(tmp / "captured.safetensors", repo() / "tests/data/goldens/wan_tiny_i2v").string();
  run_quantization(job);
  Checkpoint q = Checkpoint::open(tmp / "static/quant_model_weight_w8a8.safetensors");
  // k_img sees the image tokens only (the first 257 context rows), k the text tokens only.
  const std::vector<float> ctx =
      to_f32(Checkpoint::open(repo() / "tests/data/goldens/wan_tiny_i2v/reference.safetensors").read("context"));
  auto scale_of = [](std::span<const float> v) {
    const auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    return (std::max(*hi, 0.0f) - std::min(*lo, 0.0f)) / 255.0f;
  };
  const float image_scale = scale_of(std::span<const float>(ctx).first(257 * 48));
  const float text_scale = scale_of(std::span<const float>(ctx).subspan(257 * 48));
  EXPECT_NEAR(to_f32(q.read("blocks.1.cross_attn.k_img.input_scale"))[0], image_scale, 1e-3 * image_scale);
  EXPECT_NEAR(to_f32(q.read("blocks.1.cross_attn.k.input_scale"))[0], text_scale, 1e-3 * text_scale);
  for (const auto& l : read_json(tmp / "static/quant_report.json")["layers"])
    EXPECT_GT(l["cosine"].get<double>(), 0.99) << l["name"];
  // eval's DiT mode scores both through the image cross-attention: random inputs and the captured ones.
  for (const char* out : {"dyn", "static"}) {
    DitEvalOptions o{model, tmp / out, std::string(out) == "static" ? fs::path(job.calib_data) : fs::path(), 0, 1};
    DitEvalResult r = evaluate_dit(o);
    ASSERT_EQ(r.blocks.size(), 2u) << out;
    EXPECT_GT(r.final_output.rel_l2, 0.0) << out;
    EXPECT_GT(r.final_output.cosine, 0.99) << out;
  }
}

// Over --calib_memory_limit the hidden states spill to a temporary file beside
// the output and run a sample at a time: the output is byte-identical and
// nothing is left behind.
TEST(WanRunner, SpilledCalibrationGivesTheSameOutput) {
  TempDir tmp;
  const fs::path model = original_model(tmp / "model");
  const fs::path calib = captured_inputs(tmp / "captured.safetensors");
  for (const char* name : {"memory", "spilled"}) {
    fs::create_directories(tmp / name);
    QuantJob job = make_job(model, tmp / name / "out", (repo() / "configs/wan/w8a8.yaml").string());
    job.calib_data = calib.string();
    job.full_report = true;
    if (std::string(name) == "spilled") job.calib_memory_limit = 4096;
    run_quantization(job);
  }
  for (const char* f : {"quant_model_weight_w8a8.safetensors", "quant_model_description_w8a8.json",
                        "quant_report.json"})
    EXPECT_EQ(read_text_file(tmp / "memory/out" / f), read_text_file(tmp / "spilled/out" / f)) << f;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp / "spilled")) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"out"});
}

TEST(WanRunner, BadInputsLeaveNoOutput) {
  TempDir tmp;
  auto error_of = [&](QuantJob job) {
    try {
      run_quantization(job);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string practice = wan_practice().string();
  // config.json says three blocks, the checkpoint has two.
  std::string e = error_of(make_job(original_model(tmp / "three", DType::F32, 3), tmp / "o1", practice));
  EXPECT_NE(e.find("'blocks.2.modulation' is missing"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(tmp / "o1"));
  // config.json says one block, the checkpoint has two.
  e = error_of(make_job(original_model(tmp / "one", DType::F32, 1), tmp / "o2", practice));
  EXPECT_NE(e.find("num_layers = 1"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(tmp / "o2"));
  // Captured inputs of another model width.
  const fs::path model = original_model(tmp / "model");
  {
    SafetensorsWriter w(tmp / "narrow.safetensors");
    w.add("0.x", tensor_f32({4, 8}, std::vector<float>(32, 0.5f)));
    w.add("0.e0", tensor_f32({6, 8}, std::vector<float>(48, 0.5f)));
    w.add("0.context", tensor_f32({2, 8}, std::vector<float>(16, 0.5f)));
    Tensor g(DType::I64, {3});
    for (int i = 0; i < 3; ++i) g.data<int64_t>()[i] = 1;
    w.add("0.grid", g);
    w.finish();
  }
  QuantJob job = make_job(model, tmp / "o3", (repo() / "configs/wan/w8a8.yaml").string());
  job.calib_data = (tmp / "narrow.safetensors").string();
  e = error_of(job);
  EXPECT_NE(e.find("'0.x' has shape [4, 8], expected [rows, 48]"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(tmp / "o3"));
  // A prompt file is no calibration for a DiT.
  job.calib_data = (repo() / "calib/calib_zh_en.jsonl").string();
  e = error_of(job);
  EXPECT_NE(e.find("tools/capture_wan_inputs.py"), std::string::npos) << e;
  // A type mindie_format_saver cannot store is refused when the config is read, naming the processor.
  try {
    parse_service_config(R"(apiversion: multimodal_sd_modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        act: {scope: per_token, dtype: int8, symmetric: True, method: minmax}
        weight: {scope: per_group, dtype: int8, symmetric: True, method: minmax, ext: {group_size: 16}}
  save:
    - type: mindie_format_saver
)", "t.yaml");
    ADD_FAILURE() << "per-group W8A8_DYNAMIC accepted for mindie_format_saver";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("spec.process[0]"), std::string::npos) << err.what();
  }
}

TEST(WanRunner, ResumesAfterAKill) {
  TempDir tmp;
  const fs::path model = original_model(tmp / "model");
  const fs::path calib = captured_inputs(tmp / "captured.safetensors");
  auto run = [&](const fs::path& save, const std::string& kill_at) {
    const std::string cmd = (kill_at.empty() ? std::string() : "LWQUANT_TEST_KILL_AT=" + kill_at + " ") + LWQ_BINARY +
                            " quant --model_path " + model.string() + " --save_path " + save.string() +
                            " --model_type Wan2.1 --quant_type w8a8 --commit_interval 0 --calib_data " + calib.string() + " >" +
                            (tmp / "log").string() + " 2>&1";
    return std::system(cmd.c_str());
  };
  ASSERT_EQ(run(tmp / "clean", ""), 0) << read_text_file(tmp / "log");
  const int killed = run(tmp / "resumed", "0:committed");
  EXPECT_TRUE((WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL) ||
              (WIFEXITED(killed) && WEXITSTATUS(killed) == 128 + SIGKILL));
  EXPECT_FALSE(fs::exists(tmp / "resumed"));
  ASSERT_EQ(run(tmp / "resumed", ""), 0) << read_text_file(tmp / "log");
  EXPECT_NE(read_text_file(tmp / "log").find("resuming an interrupted run: 1 of 2 layers"), std::string::npos)
      << read_text_file(tmp / "log");
  expect_same_folder(tmp / "clean", tmp / "resumed");
}

}  // namespace
}  // namespace lwq
