// `lwquant eval` on a Wan2.1 DiT (issue 10 item 6): the tiny random Wan golden
// (tests/data/goldens/wan_tiny, diffusers layout) quantized by the lwquant
// binary with msModelSlim's wan2_1_w8a8_dynamic practice and with the static
// configs/wan/w8a8.yaml from captured block inputs, then scored: small,
// non-zero errors; exactly zero for an all-FLOAT copy; damaged mindie_format
// folders refused with a message naming the file or tensor, or (a scaled
// weight_scale, which no format rule can catch) scored clearly worse.
#include "eval/dit_evaluator.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "models/wan_test_util.h"

#include <cstdlib>
#include <map>
#include <stdexcept>

#include "eval/quantized_folder.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "runner/runner_test_util.h"  // TempDir, read_json (header-only parts)
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

using namespace testing_util;

fs::path golden() { return repo() / "tests/data/goldens/wan_tiny"; }
constexpr const char* kDynDesc = "quant_model_description_w8a8_dynamic.json";
constexpr const char* kDynWeights = "quant_model_weight_w8a8_dynamic.safetensors";

// Runs `lwquant quant`; throws with its stderr otherwise.
void quantize(const fs::path& model, const fs::path& save, const std::string& args) {
  const fs::path err = save.string() + ".stderr";
  const std::string cmd = fmt::format("'{}' quant --model_path '{}' --save_path '{}' {} >/dev/null 2>'{}'", LWQ_BINARY,
                                      model.string(), save.string(), args, err.string());
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error(fmt::format("{} failed:\n{}", cmd, fs::exists(err) ? read_text_file(err) : ""));
}

// Block 0's captured inputs in the capture format (models/wan_model.h): the
// golden's and the same rows scaled by 1.5.
fs::path captured_inputs(const fs::path& file) { return test::write_wan_captured_inputs(golden(), file); }

// The model, captured inputs and quantized folders, made once for all tests.
class Shared {
 public:
  static Shared& get() {
    static Shared s;
    return s;
  }
  fs::path model, captured, dynamic, static_w8a8, float_copy;
  const TempDir& tmp() const { return tmp_; }

 private:
  Shared() {
    model = tmp_ / "model";
    fs::create_directories(model);
    for (const char* f : {"config.json", "diffusion_pytorch_model.safetensors"})
      fs::copy_file(golden() / f, model / f);
    captured = captured_inputs(tmp_ / "captured.safetensors");
    dynamic = tmp_ / "dynamic";
    quantize(model, dynamic,
             "--model_type Wan2.1 --config_path '" + (repo() / "tests/data/configs/wan2_1_w8a8_dynamic.yaml").string() + "'");
    static_w8a8 = tmp_ / "static";
    quantize(model, static_w8a8,
             "--config_path '" + (repo() / "configs/wan/w8a8.yaml").string() + "' --calib_data '" + captured.string() + "'");
    float_copy = tmp_ / "float";
    const fs::path yaml = tmp_ / "float.yaml";
    write_text_file_atomic(yaml, R"(apiversion: multimodal_sd_modelslim_v1
spec:
  process:
    - type: "linear_quant"
      qconfig:
        act: {scope: per_token, dtype: int8, symmetric: True, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
      include: ["*"]
      exclude: ["*"]
  save:
    - type: "mindie_format_saver"
      part_file_size: 0
)");
    quantize(model, float_copy, "--allow_float_copy --config_path '" + yaml.string() + "'");
  }
  TempDir tmp_;
};

DitEvalResult eval(const fs::path& quantized, const fs::path& calib = {}, uint64_t seed = 0) {
  DitEvalOptions o;
  o.float_dir = Shared::get().model;
  o.quantized_dir = quantized;
  o.calib_data = calib;
  o.seed = seed;
  return evaluate_dit(o);
}

void expect_small_nonzero(const DitEvalResult& r) {
  ASSERT_EQ(r.blocks.size(), 2u);
  for (const auto& b : r.blocks) {
    EXPECT_GT(b.rel_l2, 0.0);
    EXPECT_LT(b.rel_l2, 0.05);
    EXPECT_GT(b.cosine, 0.99);
    EXPECT_LE(b.cosine, 1.0 + 1e-12);
  }
  EXPECT_EQ(r.final_output.rel_l2, r.blocks.back().rel_l2);
  EXPECT_EQ(r.final_output.cosine, r.blocks.back().cosine);
}

TEST(DitEval, DynamicPracticeOnRandomInputs) {
  DitEvalResult r = eval(Shared::get().dynamic);
  EXPECT_EQ(r.model_quant_type, "W8A8_DYNAMIC");
  EXPECT_EQ(r.inputs, "random");
  EXPECT_EQ(r.samples, 2);
  EXPECT_EQ(r.tokens, 64);  // two samples of a 2×4×4 grid
  expect_small_nonzero(r);
}

TEST(DitEval, RandomInputsAreSeeded) {
  DitEvalResult a = eval(Shared::get().dynamic, {}, 7), b = eval(Shared::get().dynamic, {}, 7),
                c = eval(Shared::get().dynamic, {}, 8);
  EXPECT_EQ(a.final_output.rel_l2, b.final_output.rel_l2);
  EXPECT_NE(a.final_output.rel_l2, c.final_output.rel_l2);
}

TEST(DitEval, DynamicPracticeOnCapturedInputs) {
  DitEvalResult r = eval(Shared::get().dynamic, Shared::get().captured);
  EXPECT_EQ(r.inputs, "captured");
  EXPECT_EQ(r.samples, 2);
  expect_small_nonzero(r);
}

TEST(DitEval, StaticW8A8FromCapturedInputs) {
  DitEvalResult r = eval(Shared::get().static_w8a8, Shared::get().captured);
  EXPECT_EQ(r.model_quant_type, "W8A8");
  expect_small_nonzero(r);
}

TEST(DitEval, FloatCopyScoresExactlyZero) {
  for (const fs::path& calib : {fs::path(), Shared::get().captured}) {
    DitEvalResult r = eval(Shared::get().float_copy, calib);
    EXPECT_EQ(r.model_quant_type, "FLOAT");
    for (const auto& b : r.blocks) {
      EXPECT_EQ(b.rel_l2, 0.0);
      EXPECT_EQ(b.cosine, 1.0);
    }
  }
}

// ---- damaged folders ----

// A copy of a mindie_format folder (modes kept) whose weights and description
// `edit` changes; rewritten files get mode 0640 as the saver writes them.
template <typename Edit>
fs::path edited(const fs::path& from, const std::string& name, Edit edit, const std::string& desc_name = kDynDesc,
                const std::string& weights_name = kDynWeights) {
  const fs::path to = Shared::get().tmp() / name;
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    fs::copy_file(e.path(), to / e.path().filename(), fs::copy_options::overwrite_existing);
  Checkpoint ckpt = Checkpoint::open(from / weights_name);
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& n : ckpt.tensor_names()) tensors.emplace_back(n, ckpt.read(n));
  nlohmann::ordered_json desc = read_json(from / desc_name);
  edit(tensors, desc);
  fs::remove(to / weights_name);
  {
    SafetensorsWriter w(to / weights_name);
    for (const auto& [n, t] : tensors) w.add(n, t);
    w.finish();
  }
  write_text_file_atomic(to / desc_name, desc.dump(4));
  for (const char* f : {desc_name.c_str(), weights_name.c_str()})
    fs::permissions(to / f, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  return to;
}

using Tensors = std::vector<std::pair<std::string, Tensor>>;
using Json = nlohmann::ordered_json;

void expect_error(const fs::path& quantized, const std::vector<std::string>& want) {
  try {
    eval(quantized);
    FAIL() << "no error for " << quantized;
  } catch (const Error& e) {
    for (const auto& s : want) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

TEST(DitEval, ScaledWeightScaleScoresClearlyWorse) {
  // Nothing in the format ties a dynamic Linear's weight_scale to anything
  // else: the figures must show it.
  const fs::path dir = edited(Shared::get().dynamic, "scaled", [](Tensors& ts, Json&) {
    for (auto& [n, t] : ts)
      if (n == "blocks.0.self_attn.o.weight_scale")
        for (float& v : t.span<float>()) v *= 2.0f;
  });
  DitEvalResult clean = eval(Shared::get().dynamic), bad = eval(dir);
  EXPECT_GT(bad.blocks[0].rel_l2, 5 * clean.blocks[0].rel_l2);  // 8.8× on the tiny model
  EXPECT_LT(bad.final_output.cosine, clean.final_output.cosine);
}

TEST(DitEval, ScaledDeqScaleIsRefused) {
  // Static W8A8: quant_bias = round(bias/deq_scale) ties deq_scale to the bias.
  const fs::path dir = edited(
      Shared::get().static_w8a8, "deq",
      [](Tensors& ts, Json&) {
        for (auto& [n, t] : ts)
          if (n == "blocks.1.cross_attn.v.deq_scale")
            for (float& v : t.span<float>()) v *= 4.0f;
      },
      "quant_model_description_w8a8.json", "quant_model_weight_w8a8.safetensors");
  expect_error(dir, {"blocks.1.cross_attn.v.quant_bias", "do not belong together"});
}

TEST(DitEval, MissingBiasIsRefused) {
  const fs::path dir = edited(Shared::get().dynamic, "nobias", [](Tensors& ts, Json& d) {
    std::erase_if(ts, [](const auto& p) { return p.first == "blocks.1.ffn.0.bias"; });
    d.erase("blocks.1.ffn.0.bias");
  });
  expect_error(dir, {kDynDesc, "'blocks.1.ffn.0'", "blocks.1.ffn.0.bias", "MindIE-SD refuses"});
}

TEST(DitEval, WrongDescriptionNameIsRefused) {
  const fs::path dir = edited(Shared::get().dynamic, "badname", [](Tensors&, Json&) {});
  fs::rename(dir / kDynDesc, dir / "quant_model_description_w8a8.json");
  expect_error(dir, {"quant_model_description_w8a8.json", "model_quant_type is \"W8A8_DYNAMIC\"", kDynDesc});
}

TEST(DitEval, FormatViolationsAreRefused) {
  const fs::path& dyn = Shared::get().dynamic;
  expect_error(edited(dyn, "undescribed", [](Tensors&, Json& d) { d.erase("blocks.0.norm3.bias"); }),
               {"blocks.0.norm3.bias", "is not listed in"});
  expect_error(edited(dyn, "unstored",
                      [](Tensors& ts, Json&) {
                        std::erase_if(ts, [](const auto& p) { return p.first == "head.modulation"; });
                      }),
               {"lists tensor 'head.modulation'", "not in the safetensors files"});
  expect_error(edited(dyn, "f16scale",
                      [](Tensors& ts, Json&) {
                        for (auto& [n, t] : ts)
                          if (n == "blocks.0.self_attn.k.weight_scale") t = tensor_from_f32(DType::F16, t.shape, to_f32(t));
                      }),
               {"blocks.0.self_attn.k.weight_scale", "must be F32"});
  expect_error(edited(dyn, "version", [](Tensors&, Json& d) { d["version"] = "1.0.0"; }),
               {"key 'version' does not belong in a mindie_format description"});
  expect_error(edited(dyn, "shape",
                      [](Tensors& ts, Json&) {
                        for (auto& [n, t] : ts)
                          if (n == "blocks.0.modulation") t = tensor_f32({6, 48}, std::vector<float>(6 * 48));
                      }),
               {"blocks.0.modulation", "[6, 48]", "float model"});
  // model_quant_type is the last quantized Linear's type: a FLOAT one is wrong.
  expect_error(edited(dyn, "mqt", [](Tensors&, Json& d) { d["model_quant_type"] = "FLOAT"; }),
               {"quant_model_description.json"});
  const fs::path w8a8 = edited(dyn, "mqt_w8a8", [](Tensors&, Json& d) { d["model_quant_type"] = "W8A8"; });
  fs::rename(w8a8 / kDynDesc, w8a8 / "quant_model_description_w8a8.json");
  fs::rename(w8a8 / kDynWeights, w8a8 / "quant_model_weight_w8a8.safetensors");
  expect_error(w8a8, {"model_quant_type is \"W8A8\" but the last quantized Linear described ('blocks.1.ffn.0') is "
                      "W8A8_DYNAMIC"});
  // MindIE-SD's file checks.
  const fs::path loose = edited(dyn, "loose", [](Tensors&, Json&) {});
  fs::permissions(loose / kDynWeights, fs::perms::others_read, fs::perm_options::add);
  expect_error(loose, {kDynWeights, "mode 0644", "0640"});
  // Not a mindie_format folder at all: the float model itself.
  expect_error(Shared::get().model, {"is not a mindie_format folder"});
}

TEST(DitEval, CapturedInputsOfAnotherModelAreRefused) {
  const fs::path file = Shared::get().tmp() / "narrow.safetensors";
  {
    SafetensorsWriter w(file);
    w.add("0.x", tensor_f32({4, 32}, std::vector<float>(4 * 32, 0.5f)));
    w.add("0.e0", tensor_f32({6, 32}, std::vector<float>(6 * 32)));
    w.add("0.context", tensor_f32({2, 32}, std::vector<float>(2 * 32)));
    const int64_t grid[3] = {1, 2, 2};
    w.add("0.grid", DType::I64, {3}, grid);
    w.finish();
  }
  try {
    eval(Shared::get().dynamic, file);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'0.x' has shape [4, 32], expected [rows, 48]"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace lwq
