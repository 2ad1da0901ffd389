// The runner refuses what would destroy input or hide garbage: a save path
// that is, contains or lies inside the model folder; non-finite weights and
// activations; a configuration that quantizes nothing. Calibration data in the
// common shapes is read as users expect (empty prompts skipped, long ones cut).
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "processors/linear_quantizer.h"
#include "runner/quant_runner.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;


std::string digest_of_folder(const fs::path& dir) {
  std::string all;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) all += e.path().string() + read_text_file(e.path());
  return all;
}

TEST(Hardening, SavePathNeverTheModelItsParentOrInsideIt) {
  TempDir tmp;
  fs::path model = copy_model(stories(), tmp / "models" / "m", [](auto&) {});
  const std::string before = digest_of_folder(tmp / "models");
  fs::create_directory_symlink(model, tmp / "link");
  for (bool overwrite : {false, true}) {
    for (const fs::path& save : {model, tmp / "models", fs::path(tmp.path()), model / "out", tmp / "link",
                                 tmp / "link" / "sub", fs::path(model.string() + "/./")}) {
      QuantJob job = make_job(model, save, (repo() / "configs/w8a16.yaml").string());
      job.overwrite = overwrite;
      expect_error([&] { run_quantization(job); }, {"--save_path"});
    }
  }
  EXPECT_EQ(digest_of_folder(tmp / "models"), before);
  EXPECT_FALSE(fs::exists(model / "out"));
}

TEST(Hardening, NonFiniteWeightsAreRefusedNamingTensorAndFile) {
  TempDir tmp;
  // Data-free runs map Linear weights and check them where they are used
  // (the quantizer's own pass, or the FLOAT save): every path must still give
  // the read error. Configs: configs/<name>.yaml, or a path under the repo.
  const fs::path excluded = tmp / "w8a16_down_float.yaml";
  {
    std::ifstream in(repo() / "configs/w8a16.yaml");
    std::string yaml((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::string include = "include: [\"*\"]";
    ASSERT_NE(yaml.find(include), std::string::npos);
    yaml.replace(yaml.find(include), include.size(), include + "\n      exclude: [\"*down_proj\"]");
    std::ofstream(excluded) << yaml;
  }
  struct Case {
    const char* tensor;
    float value;
    std::string config;
  };
  for (const Case& c : {Case{"model.layers.1.post_attention_layernorm.weight", std::nanf(""), "w8a8"},
                        Case{"model.layers.3.mlp.down_proj.weight", std::nanf(""), "w8a8"},
                        Case{"model.layers.3.mlp.down_proj.weight", -std::numeric_limits<float>::infinity(), "w8a16"},
                        Case{"model.layers.3.mlp.down_proj.weight", std::nanf(""), "w8a8_dynamic"},
                        Case{"model.layers.3.mlp.down_proj.weight", std::nanf(""), excluded.string()},
                        Case{"model.layers.2.self_attn.q_proj.weight", std::numeric_limits<float>::infinity(),
                             "tests/data/configs/schemes/w8a16_ssz.yaml"},
                        Case{"model.layers.2.self_attn.q_proj.weight", std::nanf(""),
                             "tests/data/configs/schemes/wfp8afp8_dynamic.yaml"},
                        Case{"model.norm.weight", std::numeric_limits<float>::infinity(), "w8a16"},
                        Case{"model.embed_tokens.weight", std::nanf(""), "w8a8"}}) {
    SCOPED_TRACE(c.tensor + std::string(" ") + c.config);
    fs::path model = tmp / "m";
    fs::remove_all(model);
    copy_model_with_tensor(stories(), model, c.tensor, [&c](Tensor t) {
      t.data<float>()[t.numel() / 2] = c.value;
      return t;
    });
    const fs::path config = c.config.find('/') == std::string::npos ? repo() / "configs" / (c.config + ".yaml")
                            : fs::path(c.config).is_absolute()     ? fs::path(c.config)
                                                                   : repo() / c.config;
    QuantJob job = make_job(model, tmp / "out", config.string(), 2);
    std::ostringstream log;
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
    spdlog::default_logger()->sinks().push_back(sink);
    expect_error([&] { run_quantization(job); },
                 {c.tensor, "model.safetensors", std::isnan(c.value) ? "NaN" : "infinity", "element"});
    spdlog::default_logger()->sinks().pop_back();
    EXPECT_FALSE(fs::exists(tmp / "out"));
    // The embedding, final norm and head are written last but checked before any layer's work.
    if (!std::string(c.tensor).starts_with("model.layers.")) EXPECT_EQ(log.str().find("layer 1/"), std::string::npos);
  }
}

// A weight so large the layer's float output overflows: the run stops naming
// the layer and the sample instead of deriving scales from Inf/NaN.
TEST(Hardening, NonFiniteActivationsNameLayerAndSample) {
  TempDir tmp;
  fs::path model = copy_model_with_tensor(stories(), tmp / "m", "model.layers.2.mlp.down_proj.weight", [](Tensor t) {
    for (auto& v : t.span<float>()) v = 3e38f;  // finite, but 172-term dot products overflow
    return t;
  });
  QuantJob job = make_job(model, tmp / "out", (repo() / "configs/w8a8.yaml").string(), 2);
  // With the report, iter_smooth's forward computes the down projection of the
  // report's sample (the shortest of two) first; without, linear_quant's forward meets sample 0 first.
  expect_error([&] { run_quantization(job); }, {"layer 2", "calibration sample", "non-finite"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
  job.report = false;
  expect_error([&] { run_quantization(job); }, {"layer 2", "calibration sample 0", "non-finite"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
}

TEST(Hardening, AConfigThatQuantizesNothingIsAnErrorUnlessAFloatCopyIsAsked) {
  TempDir tmp;
  const std::string yaml = R"(apiversion: modelslim_v1
spec:
  process:
    - type: linear_quant
      qconfig:
        act: {scope: per_token, dtype: int8, symmetric: true, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
      include: ["*.no_such_proj"]
)";
  QuantJob job = make_job_yaml(stories(), tmp / "out", yaml);
  expect_error([&] { run_quantization(job); }, {"quantizes no Linear", "--allow_float_copy"});
  EXPECT_FALSE(fs::exists(tmp / "out"));
  job.allow_float_copy = true;
  QuantOutcome out = run_quantization(job);
  EXPECT_EQ(out.model_quant_type, "FLOAT");
}

TEST(Hardening, EmptyPromptsAreSkippedAndLongOnesCutToTheContext) {
  TempDir tmp;
  std::string story = read_text_file(repo() / "tests/data/text/tinystories_sample.txt");
  ASSERT_GT(story.size(), 3000u);  // over 512 tokens of this 512-symbol vocabulary
  nlohmann::json long_line = {{"text", story}};
  {
    std::ofstream f(tmp / "calib.jsonl");
    f << R"({"text": ""})" << "\n" << R"({"text": "   "})" << "\n" << long_line.dump() << "\n"
      << R"({"text": "Once upon a time"})" << "\n";
  }
  QuantJob job = make_job(stories(), tmp / "out", (repo() / "configs/w8a8.yaml").string(), 0);
  job.calib_data = (tmp / "calib.jsonl").string();
  run_quantization(job);
  auto report = read_json(tmp / "out" / "quant_report.json");
  EXPECT_EQ(report["calibration_samples"].get<int>(), 2);

  std::ofstream(tmp / "empty.jsonl") << R"({"text": ""})" << "\n" << R"({"inputs_pretokenized": " "})" << "\n";
  job.calib_data = (tmp / "empty.jsonl").string();
  job.save_path = tmp / "out2";
  expect_error([&] { run_quantization(job); }, {"empty.jsonl", "no tokens"});
}

// A report figure can never call a NaN layer perfect.
TEST(Hardening, ErrorStatsOfNonFiniteOutputsAreNaN) {
  OutputErrorStats s;
  float ref[2] = {1.0f, std::nanf("")}, out[2] = {1.0f, 2.0f};
  s.add(ref, out, 2);
  EXPECT_TRUE(std::isnan(s.relative_l2()));
  EXPECT_TRUE(std::isnan(s.cosine()));
}

}  // namespace
}  // namespace lwq
