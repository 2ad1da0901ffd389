// `lwquant eval --images` on Qwen3-VL-MoE outputs written by the runner (the
// tiny random golden and its two images): an all-FLOAT copy and a QuaRot-only
// output score as the float model (the quantized chain is built from the
// folder alone, rotated embedding / tower outputs / head included), the
// reference practice's output scores close to it, and bad inputs are refused.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "eval/evaluator.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "runner/quant_runner.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;


fs::path tiny() { return repo() / "tests/data/goldens/qwen3_vl_moe_tiny"; }

// The golden in float32 (config.json's dtype too): a QuaRot-only output then
// holds its rotated tensors unrounded and must score as the float model
// within f32 arithmetic; in bfloat16 the rounding of rotated weights shows.
fs::path f32_copy(const fs::path& to) {
  copy_model(tiny(), to, [](nlohmann::ordered_json& c) {
    c["dtype"] = "float32";
  });
  fs::remove(to / "model.safetensors");
  Checkpoint ckpt = Checkpoint::open(tiny());
  SafetensorsWriter w(to / "model.safetensors");
  for (const auto& n : ckpt.tensor_names()) {
    Tensor t = ckpt.read(n);
    w.add(n, is_float(t.dtype) ? tensor_f32(t.shape, to_f32(t)) : t);
  }
  w.finish();
  return to;
}

std::string vlm_practice(const std::string& process) {
  return "apiversion: multimodal_vlm_modelslim_v1\nspec:\n  process:" + process +
         "\n  save:\n    - {type: ascendv1_saver, part_file_size: 0}\n  dataset: calibImages\n";
}

fs::path quantize(const fs::path& out, const std::string& process, const fs::path& model = tiny()) {
  QuantJob job = make_job_yaml(model, out, vlm_practice(process), 0);
  job.calib_data = (tiny() / "images").string();
  job.allow_float_copy = true;
  run_quantization(job);
  return out;
}

EvalResult eval_images(const fs::path& out, const fs::path& images = tiny() / "images",
                       const fs::path& model = tiny()) {
  EvalOptions eo;
  eo.float_dir = model;
  eo.quantized_dir = out;
  eo.images = images;
  return evaluate(eo);
}

TEST(VlmEval, FloatCopyAndQuarotOnlyScoreAsTheFloatModel) {
  TempDir tmp;
  const fs::path f32 = f32_copy(tmp / "f32");
  const std::string float_only = " []", quarot_only = "\n    - {type: quarot, block_size: 32}";
  struct Case {
    std::string name;
    fs::path model;
    std::string process;
    double kl, top1, nll;
  };
  for (const Case& c : {Case{"float", tiny(), float_only, 1e-9, 1.0, 1e-9},
                        Case{"quarot_f32", f32, quarot_only, 1e-9, 1.0, 1e-5},
                        Case{"quarot_bf16", tiny(), quarot_only, 2e-3, 0.98, 2e-2}}) {
    const fs::path out = quantize(tmp / c.name, c.process, c.model);
    const EvalResult r = eval_images(out, tiny() / "images", c.model);
    EXPECT_EQ(r.samples, 2) << c.name;
    EXPECT_EQ(r.images, 2) << c.name;
    EXPECT_GT(r.tokens, 20) << c.name;
    EXPECT_GT(r.nll_tokens, 10) << c.name;
    EXPECT_LT(r.nll_tokens, r.tokens) << c.name;  // image-pad targets and the last row carry no NLL
    EXPECT_LT(r.kl, c.kl) << c.name;
    EXPECT_GE(r.top1_agreement, c.top1) << c.name;
    EXPECT_NEAR(r.nll_quantized, r.nll_float, c.nll) << c.name;
    EXPECT_EQ(r.model_quant_type, "FLOAT") << c.name;
    if (c.process == quarot_only) EXPECT_TRUE(fs::exists(out / "optional/quarot.safetensors")) << c.name;
  }
}

TEST(VlmEval, W8A8PracticeScoresCloseAndBadInputsAreRefused) {
  TempDir tmp;
  const std::string process = R"(
    - {type: quarot, block_size: 32}
    - {type: linear_quant, qconfig: {act: {scope: per_tensor, dtype: int8, symmetric: False, method: minmax}, weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}}, include: ["*"], exclude: ["*experts*", "*linear_fc2", "*merger*", "*mlp.gate"]}
    - {type: linear_quant, qconfig: {act: {scope: per_token, dtype: int8, symmetric: True, method: minmax}, weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}}, include: ["*experts*"]})";
  const fs::path out = quantize(tmp / "w8a8", process);
  const EvalResult r = eval_images(out);
  EXPECT_EQ(r.model_quant_type, "W8A8");
  EXPECT_GT(r.kl, 0.0);  // the deployed integer arithmetic differs from float
  EXPECT_LT(r.kl, 0.05);
  EXPECT_GT(r.top1_agreement, 0.8);
  // One sample only.
  EvalOptions eo;
  eo.float_dir = tiny();
  eo.quantized_dir = out;
  eo.images = tiny() / "images";
  eo.max_samples = 1;
  EXPECT_EQ(evaluate(eo).samples, 1);
  // A missing image, a text-only set, a folder of another model, a text model given images.
  { std::ofstream(tmp / "missing.jsonl") << R"({"image": "nowhere.jpg"})" << "\n"; }
  expect_error([&] { eval_images(out, tmp / "missing.jsonl"); }, {"nowhere.jpg does not exist"});
  { std::ofstream(tmp / "text.jsonl") << R"({"text": "no image here"})" << "\n"; }
  expect_error([&] { eval_images(out, tmp / "text.jsonl"); }, {"entry 0 has no image", "--text"});
  QuantJob job = make_job_yaml(stories(), tmp / "stories_out", "apiversion: modelslim_v1\nspec:\n  process: []\n  save:\n    - {type: ascendv1_saver, part_file_size: 0}\n  dataset: calib_zh_en.jsonl\n", 2);
  job.allow_float_copy = true;
  run_quantization(job);
  expect_error([&] { eval_images(tmp / "stories_out"); }, {"is not a Qwen3-VL-MoE output", "model_type"});
  eo.float_dir = stories();
  eo.quantized_dir = tmp / "stories_out";
  expect_error([&] { evaluate(eo); }, {"--images scores Qwen3-VL-MoE models", "--text"});
}

}  // namespace
}  // namespace lwq
