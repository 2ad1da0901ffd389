// `lwquant eval --images` on Qwen3-VL-MoE outputs written by the runner (the
// tiny random golden and its two images): an all-FLOAT copy and a QuaRot-only
// output score as the float model (the quantized chain is built from the
// folder alone, rotated embedding / tower outputs / head included), the
// reference practice's output scores close to it, and bad inputs are refused.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "eval/evaluator.h"
#include "runner/quant_runner.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

void expect_error(const std::function<void()>& body, std::initializer_list<std::string> parts) {
  try {
    body();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

fs::path tiny() { return repo() / "tests/data/goldens/qwen3_vl_moe_tiny"; }

std::string vlm_practice(const std::string& process) {
  return "apiversion: multimodal_vlm_modelslim_v1\nspec:\n  process:" + process +
         "\n  save:\n    - {type: ascendv1_saver, part_file_size: 0}\n  dataset: calibImages\n";
}

fs::path quantize(const fs::path& out, const std::string& process) {
  QuantJob job = make_job_yaml(tiny(), out, vlm_practice(process), 0);
  job.calib_data = (tiny() / "images").string();
  job.allow_float_copy = true;
  run_quantization(job);
  return out;
}

EvalResult eval_images(const fs::path& out, const fs::path& images = tiny() / "images") {
  EvalOptions eo;
  eo.float_dir = tiny();
  eo.quantized_dir = out;
  eo.images = images;
  return evaluate(eo);
}

TEST(VlmEval, FloatCopyAndQuarotOnlyScoreAsTheFloatModel) {
  TempDir tmp;
  for (const auto& [name, process] : {std::pair<std::string, std::string>{"float", " []"},
                                      {"quarot", "\n    - {type: quarot, block_size: 32}"}}) {
    const fs::path out = quantize(tmp / name, process);
    const EvalResult r = eval_images(out);
    EXPECT_EQ(r.samples, 2) << name;
    EXPECT_EQ(r.images, 2) << name;
    EXPECT_GT(r.tokens, 20) << name;
    EXPECT_GT(r.nll_tokens, 10) << name;
    EXPECT_LT(r.nll_tokens, r.tokens) << name;  // image-pad targets and the last row carry no NLL
    EXPECT_LT(r.kl, name == "float" ? 1e-9 : 1e-4) << name;
    EXPECT_EQ(r.top1_agreement, 1.0) << name;
    EXPECT_NEAR(r.nll_quantized, r.nll_float, name == "float" ? 1e-9 : 1e-3) << name;
    EXPECT_EQ(r.model_quant_type, "FLOAT") << name;
    if (name == "quarot") EXPECT_TRUE(fs::exists(out / "optional/quarot.safetensors"));
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
