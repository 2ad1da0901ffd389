// quant --compute_dtype bf16 through the runner (docs/design.md "Compute
// dtype"): end to end on the bf16 goldens of every family kind the runner
// serves (dense, MoE, Qwen3-VL-MoE), scales close to the f32 run's, data-free
// runs unchanged, and the refusal on checkpoints that are not bfloat16.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>

#include "io/checkpoint.h"
#include "runner/runner_test_util.h"
#include "tensor/tensor.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

fs::path golden(const std::string& name) { return repo() / "tests/data/goldens" / name; }

// The golden's weights and config with a tokenizer of its vocabulary size.
fs::path with_tokenizer(const fs::path& model, const fs::path& tokenizer_dir, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(model))
    if (e.is_regular_file() && e.path().filename() != "reference.safetensors")
      fs::copy_file(e.path(), to / e.path().filename());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(tokenizer_dir / f) && !fs::exists(to / f)) fs::copy_file(tokenizer_dir / f, to / f);
  return to;
}

// Every tensor named *.input_scale of an output folder, as f32.
std::map<std::string, float> input_scales(const fs::path& out) {
  const fs::path index = out / "quant_model_weights.safetensors.index.json";
  Checkpoint ckpt = Checkpoint::open(fs::exists(index) ? index : out / "quant_model_weights.safetensors");
  std::map<std::string, float> s;
  for (const auto& n : ckpt.tensor_names())
    if (n.size() > 12 && n.ends_with(".input_scale")) s[n] = to_f32(ckpt.read(n))[0];
  return s;
}

// Runs `job` with f32 and bf16 compute into out_f32 / out_bf16 of `tmp`.
void run_both(QuantJob job, const TempDir& tmp) {
  job.save_path = tmp / "out_f32";
  run_quantization(job);
  job.save_path = tmp / "out_bf16";
  job.compute_dtype = ComputeDType::BF16;
  run_quantization(job);
}

// Static scales of the bf16 run within `tol` relative of the f32 run's, and
// returns the largest relative change.
double compare_scales(const TempDir& tmp, double tol) {
  auto f32 = input_scales(tmp / "out_f32"), bf16 = input_scales(tmp / "out_bf16");
  EXPECT_FALSE(f32.empty());
  EXPECT_EQ(f32.size(), bf16.size());
  double worst = 0.0;
  for (const auto& [name, s] : f32) {
    if (!bf16.count(name)) {
      ADD_FAILURE() << name << " has no input_scale in the bf16 run";
      continue;
    }
    const double rel = std::fabs(double(bf16[name]) - s) / s;
    EXPECT_LE(rel, tol) << name << ": f32 " << s << ", bf16 " << bf16[name];
    worst = std::max(worst, rel);
  }
  return worst;
}

TEST(ComputeDtype, Bf16RunsEndToEndOnTheQwen3GoldenWithScalesCloseToF32) {
  TempDir tmp;
  // The Qwen3-VL-MoE golden's tokenizer has the qwen3 golden's vocabulary (256).
  fs::path model = with_tokenizer(golden("qwen3"), golden("qwen3_vl_moe_tiny"), tmp / "model");
  run_both(make_job(model, {}, (repo() / "configs/w8a8.yaml").string(), 4), tmp);  // iter_smooth + static W8A8
  const double worst = compare_scales(tmp, 0.03);
  EXPECT_GT(worst, 0.0) << "bf16 compute changed no scale at all";
  auto report = read_json(tmp / "out_bf16" / "quant_report.json");
  EXPECT_EQ(report["compute_dtype"], "bf16");
  EXPECT_EQ(read_json(tmp / "out_f32" / "quant_report.json")["compute_dtype"], "f32");
  // The report's float reference computes in bf16 too: errors stay of the f32 run's size.
  for (const auto& layer : report["layers"]) EXPECT_LT(layer["relative_l2"].get<double>(), 0.2);
}

TEST(ComputeDtype, Bf16RunsOnMoeLayers) {
  TempDir tmp;
  fs::path model = with_tokenizer(golden("mixtral"), stories(), tmp / "model");  // bf16, vocab 512
  QuantJob job = make_job(model, {}, (repo() / "configs/moe/w8a8.yaml").string(), 4);
  run_both(job, tmp);
  compare_scales(tmp, 0.03);
}

TEST(ComputeDtype, Bf16RunsOnQwen3VlMoe) {
  TempDir tmp;
  const fs::path m = golden("qwen3_vl_moe_tiny");
  // The reference practice: quarot, iter_smooth, static W8A8 (tower and attention), W8A8_DYNAMIC experts.
  run_both(make_job(m, {}, (repo() / "tests/data/configs/qwen3_vl_moe_w8a8.yaml").string(), 2), tmp);
  compare_scales(tmp, 0.03);
  EXPECT_EQ(read_json(tmp / "out_bf16" / "quant_report.json")["compute_dtype"], "bf16");
}

// A NaN in a bf16 weight's last rows, on the default path of a bf16
// checkpoint (iter_smooth's statistics from bf16 products of the streamed
// weight, checked block by block as it is mapped in): the error names the
// tensor, its file and the element, and nothing is written.
TEST(ComputeDtype, NonFiniteBf16WeightIsNamed) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3"), golden("qwen3_vl_moe_tiny"), tmp / "model");
  const std::string name = "model.layers.1.mlp.gate_proj.weight";
  std::map<std::string, Tensor> tensors;
  {
    Checkpoint ckpt = Checkpoint::open(model / "model.safetensors");
    for (const auto& n : ckpt.tensor_names()) tensors.emplace(n, ckpt.read(n));
  }
  Tensor& w = tensors.at(name);
  ASSERT_EQ(w.dtype, DType::BF16);
  w.data<uint16_t>()[w.numel() - 3] = 0x7fc0;  // bf16 quiet NaN
  fs::remove(model / "model.safetensors");
  SafetensorsWriter out(model / "model.safetensors");
  for (auto& [n, t] : tensors) out.add(n, t);
  out.finish();
  QuantJob job = make_job(model, tmp / "out", (repo() / "configs/w8a8.yaml").string(), 2);  // iter_smooth first
  job.bf16_statistics_products = true;
  expect_error([&] { run_quantization(job); }, {name, "model.safetensors", "NaN", "row"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

// --compute_dtype auto (the CLI's default): on a bf16 checkpoint only
// smoothing's statistics forward multiplies in bf16. The smoothing scales it
// yields move the static scales by about a bf16 step at most; without a
// smoothing processor the output is the f32 run's byte for byte (the
// quantization forward is untouched).
TEST(ComputeDtype, AutoTakesOnlySmoothingStatisticsFromBf16Products) {
  TempDir tmp;
  fs::path model = with_tokenizer(golden("qwen3"), golden("qwen3_vl_moe_tiny"), tmp / "model");  // bfloat16
  QuantJob job = make_job(model, tmp / "out_f32", (repo() / "configs/w8a8.yaml").string(), 4);  // iter_smooth first
  run_quantization(job);
  job.save_path = tmp / "out_bf16";
  job.bf16_statistics_products = true;
  run_quantization(job);
  EXPECT_GT(compare_scales(tmp, 0.03), 0.0) << "the statistics forward did not change a single scale";
  EXPECT_EQ(read_json(tmp / "out_bf16" / "quant_report.json")["statistics_products"], "bf16");
  EXPECT_EQ(read_json(tmp / "out_bf16" / "quant_report.json")["compute_dtype"], "f32");
  EXPECT_EQ(read_json(tmp / "out_f32" / "quant_report.json")["statistics_products"], "f32");

  std::string yaml = read_text_file(repo() / "configs/w8a8.yaml");
  const size_t from = yaml.find("    - type: \"iter_smooth\""), to = yaml.find("    - type: \"linear_quant\"");
  ASSERT_TRUE(from != std::string::npos && to != std::string::npos && from < to);
  yaml.erase(from, to - from);
  QuantJob plain = make_job_yaml(model, tmp / "plain_f32", yaml, 4);
  run_quantization(plain);
  plain.save_path = tmp / "plain_auto";
  plain.bf16_statistics_products = true;
  run_quantization(plain);
  expect_same_folder(tmp / "plain_f32", tmp / "plain_auto");
}

TEST(ComputeDtype, DataFreeRunsAreUnchanged) {
  TempDir tmp;
  fs::path model = with_tokenizer(golden("qwen3"), golden("qwen3_vl_moe_tiny"), tmp / "model");
  run_both(make_job(model, {}, (repo() / "configs/w8a8_dynamic.yaml").string()), tmp);
  expect_same_folder(tmp / "out_f32", tmp / "out_bf16");
}

TEST(ComputeDtype, Bf16IsRefusedOnCheckpointsThatAreNotBfloat16) {
  TempDir tmp;
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a8.yaml").string(), 2);  // float32
  job.compute_dtype = ComputeDType::BF16;
  try {
    run_quantization(job);
    FAIL() << "bf16 compute on a float32 checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--compute_dtype bf16 needs a bfloat16 checkpoint"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("F32"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

}  // namespace
}  // namespace lwq
