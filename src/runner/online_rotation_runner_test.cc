// quarot `online` in the layer-wise runner, end to end through
// run_quantization and scored by evaluate (which applies the exported
// rotations as a serving engine does):
//  * the rotation alone keeps the function (heads rotation on stories260K,
//    heads + Kronecker on the dense layer of the qwen3_moe golden);
//  * the files: <o_proj>.heads_rotation / <down_proj>.kronecker_rotation_m/_n
//    float32 right after their Linear's tensors, without description entries,
//    and the description's metadata.quarot (spec §3.3, §3.4);
//  * msModelSlim's LAOS order (iter_smooth ov/up-down → quarot online →
//    iter_smooth norm-linear → static W8A8) quantizes and scores;
//  * eval refuses a folder whose rotation tensors are not what the metadata says.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/evaluator.h"
#include "eval/quantized_folder.h"
#include "io/checkpoint.h"
#include "runner/runner_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

using namespace testing_util;

EvalResult eval(const fs::path& model, const fs::path& out) {
  EvalOptions eo;
  eo.float_dir = model;
  eo.quantized_dir = out;
  eo.text = repo() / "tests/data/text/tinystories_sample.txt";
  eo.ctx = 64;
  eo.max_tokens = 512;
  return evaluate(eo);
}

double rel_dppl(const EvalResult& r) { return r.delta_ppl() / r.ppl_float; }

const std::string kStatic = std::string(kW8A8Static) + "      exclude: [\"*.gate\"]\n";

void quantize(const fs::path& model, const fs::path& out, const std::string& processors, bool float_copy = false) {
  QuantJob job = make_job_yaml(model, out,
                               "apiversion: modelslim_v1\nspec:\n  dataset: calib_zh_en.jsonl\n  save:\n    - "
                               "{type: ascendv1_saver, part_file_size: 0}\n  process:\n" + processors,
                               6);
  job.allow_float_copy = float_copy;
  run_quantization(job);
}

// qwen3_moe golden: 4 layers, layer 1 dense (intermediate 96 = 8 × 12), 4 heads.
const char* kOnline = "    - {type: quarot, online: true, max_tp_size: 2, down_proj_online_layers: [1]}\n";

TEST(OnlineQuarotRunner, RotationAloneKeepsTheFunction) {
  TempDir tmp;
  const fs::path moe = with_tokenizer(golden("qwen3_moe"), tmp / "moe");
  for (const auto& [model, list] :
       {std::pair<fs::path, std::string>{stories(), "    - {type: quarot, online: true, max_tp_size: 4}\n"},
        {moe, kOnline}}) {
    const fs::path out = tmp / ("out_" + model.filename().string());
    quantize(model, out, list, /*float_copy=*/true);
    const EvalResult r = eval(model, out);
    EXPECT_LT(std::abs(rel_dppl(r)), 1e-4) << model << ": ppl " << r.ppl_float << " → " << r.ppl_quantized;
    EXPECT_EQ(r.top1_agreement, 1.0) << model;
    // Without its rotations the folder is another model: dropping the metadata
    // makes the rotation tensors undescribed, which eval refuses.
    auto desc = read_json(out / "quant_model_description.json");
    desc["metadata"] = nlohmann::ordered_json::object();
    std::ofstream(out / "quant_model_description.json") << desc.dump(4);
    expect_error([&] { QuantizedFolder::open(out); }, {"heads_rotation", "is not listed", "metadata.quarot"});
  }
}

TEST(OnlineQuarotRunner, ExportsRotationsAfterTheirLinearsWithMetadata) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "moe");
  quantize(model, tmp / "out", kOnline + kStatic);
  const auto desc = read_json(tmp / "out" / "quant_model_description.json");
  nlohmann::ordered_json want = nlohmann::ordered_json::parse(R"({"quarot": {"max_tp_size": 2,
      "heads_rotation": {"layers": ["model.layers.0.self_attn.o_proj", "model.layers.1.self_attn.o_proj",
                                    "model.layers.2.self_attn.o_proj", "model.layers.3.self_attn.o_proj"]},
      "kronecker_rotation": {"layers": ["model.layers.1.mlp.down_proj"]}}})");
  EXPECT_EQ(desc["metadata"], want);
  for (const auto& [key, value] : desc.items()) EXPECT_EQ(key.find("rotation"), std::string::npos) << key;
  // In the shard: F32 squares, each right after its Linear's tensors (the
  // wrapper is saved after the Linear it wraps).
  Checkpoint ckpt = Checkpoint::open(tmp / "out" / "quant_model_weights.safetensors");
  std::vector<std::pair<uint64_t, std::string>> order;
  for (const auto& n : ckpt.tensor_names()) order.emplace_back(ckpt.info(n).offset, n);
  std::sort(order.begin(), order.end());
  auto next_after = [&](const std::string& name) {
    for (size_t i = 0; i + 1 < order.size(); ++i)
      if (order[i].second == name) return order[i + 1].second;
    return std::string();
  };
  EXPECT_EQ(next_after("model.layers.1.self_attn.o_proj.deq_scale"), "model.layers.1.self_attn.o_proj.heads_rotation");
  EXPECT_EQ(next_after("model.layers.1.mlp.down_proj.deq_scale"), "model.layers.1.mlp.down_proj.kronecker_rotation_m");
  EXPECT_EQ(next_after("model.layers.1.mlp.down_proj.kronecker_rotation_m"),
            "model.layers.1.mlp.down_proj.kronecker_rotation_n");
  EXPECT_EQ(ckpt.info("model.layers.2.self_attn.o_proj.heads_rotation").dtype, DType::F32);
  EXPECT_EQ(ckpt.info("model.layers.2.self_attn.o_proj.heads_rotation").shape, (Shape{4, 4}));
  EXPECT_EQ(ckpt.info("model.layers.1.mlp.down_proj.kronecker_rotation_m").shape, (Shape{8, 8}));
  EXPECT_EQ(ckpt.info("model.layers.1.mlp.down_proj.kronecker_rotation_n").shape, (Shape{12, 12}));
  EXPECT_FALSE(ckpt.contains("model.layers.0.mlp.down_proj.kronecker_rotation_m"));  // not listed (a MoE layer)
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "out"))), 0.05);
}

TEST(OnlineQuarotRunner, LaosOrderSmoothsAroundTheRotation) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "moe");
  const std::string list = std::string("    - {type: iter_smooth, enable_subgraph_type: [ov, up-down]}\n") + kOnline +
                           "    - {type: iter_smooth, enable_subgraph_type: [norm-linear]}\n";
  quantize(model, tmp / "float", list, /*float_copy=*/true);
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "float"))), 1e-4);
  quantize(model, tmp / "w8a8", list + kStatic);
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "w8a8"))), 0.05);
  // Every subgraph type after the rotation: the ones crossing it are left
  // alone (a warning), so the function still holds.
  quantize(model, tmp / "after", std::string(kOnline) + "    - {type: iter_smooth}\n", /*float_copy=*/true);
  EXPECT_LT(std::abs(rel_dppl(eval(model, tmp / "after"))), 1e-4);
}

// A folder whose rotation tensors break the contract: eval says which and why.
TEST(OnlineQuarotRunner, EvalRefusesBrokenRotations) {
  TempDir tmp;
  const fs::path model = with_tokenizer(golden("qwen3_moe"), tmp / "moe");
  quantize(model, tmp / "good", kOnline, /*float_copy=*/true);
  auto rewrite = [&](const std::string& name, const std::function<void(nlohmann::ordered_json&, Checkpoint&,
                                                                         SafetensorsWriter&)>& edit) {
    const fs::path dir = tmp / name;
    fs::create_directories(dir);
    for (const auto& e : fs::directory_iterator(tmp / "good"))
      if (e.is_regular_file() && e.path().extension() != ".safetensors") fs::copy_file(e.path(), dir / e.path().filename());
    auto desc = read_json(tmp / "good" / "quant_model_description.json");
    Checkpoint ckpt = Checkpoint::open(tmp / "good" / "quant_model_weights.safetensors");
    SafetensorsWriter w(dir / "quant_model_weights.safetensors");
    edit(desc, ckpt, w);
    w.finish();
    std::ofstream(dir / "quant_model_description.json") << desc.dump(4);
    return dir;
  };
  const std::string o1 = "model.layers.1.self_attn.o_proj.heads_rotation";
  auto copy_all_but = [](Checkpoint& c, SafetensorsWriter& w, const std::string& skip, const Tensor* replacement) {
    for (const auto& n : c.tensor_names())
      if (n != skip) w.add(n, c.read(n));
      else if (replacement) w.add(n, *replacement);
  };
  Tensor skewed = tensor_f32({4, 4}, std::vector<float>(16, 0.5f));
  const fs::path bad = rewrite("skewed", [&](auto&, Checkpoint& c, SafetensorsWriter& w) { copy_all_but(c, w, o1, &skewed); });
  expect_error([&] { QuantizedFolder::open(bad); }, {o1, "not orthogonal"});
  Tensor f16 = tensor_from_f32(DType::F16, {4, 4}, to_f32(Checkpoint::open(tmp / "good").read(o1)));
  const fs::path half = rewrite("half", [&](auto&, Checkpoint& c, SafetensorsWriter& w) { copy_all_but(c, w, o1, &f16); });
  expect_error([&] { QuantizedFolder::open(half); }, {o1, "F32 square matrix"});
  const fs::path missing = rewrite("missing", [&](auto&, Checkpoint& c, SafetensorsWriter& w) { copy_all_but(c, w, o1, nullptr); });
  expect_error([&] { QuantizedFolder::open(missing); }, {o1, "not in the safetensors files"});
  const fs::path described = rewrite("described", [&](auto& d, Checkpoint& c, SafetensorsWriter& w) {
    copy_all_but(c, w, "", nullptr);
    d[o1] = "FLOAT";
  });
  expect_error([&] { QuantizedFolder::open(described); }, {o1, "without a description entry"});
  const fs::path bad_meta = rewrite("meta", [&](auto& d, Checkpoint& c, SafetensorsWriter& w) {
    copy_all_but(c, w, "", nullptr);
    d["metadata"]["quarot"]["max_tp_size"] = 3;
  });
  expect_error([&] { QuantizedFolder::open(bad_meta); }, {"metadata.quarot.max_tp_size", "power of two"});
}

}  // namespace
}  // namespace lwq
