// mindie_format_saver output for a Wan-like block (multimodal.md B.3.4): file
// names by type, description in write order with model_quant_type last,
// tensor dtypes and shapes, float32 deq_scale, refused types.
#include "savers/mindie_saver.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <fstream>

#include "io/checkpoint.h"
#include "quant/fp_formats.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {
namespace fs = std::filesystem;

struct Tmp {
  fs::path path = fs::temp_directory_path() / ("lwq_mindie_" + std::to_string(::getpid()) + "_" +
                                                 std::to_string(counter++));
  static inline int counter = 0;
  Tmp() { fs::create_directories(path / "out"), fs::create_directories(path / "model"); }
  ~Tmp() { fs::remove_all(path); }
};

QuantizedLinear linear(const std::string& name, const std::string& type, int64_t out, int64_t in, bool bias) {
  std::vector<float> w(static_cast<size_t>(out * in));
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((static_cast<int>(i) * 7) % 11 - 5) * 0.1f;
  QuantizedLinear q;
  q.name = name;
  q.type = type;
  q.weight = quantize_weight_per_channel_minmax(w.data(), out, in, 8, true);
  if (bias) q.bias.assign(static_cast<size_t>(out), 0.5f);
  q.input_scale = 0.02f;
  q.input_offset = -3.0f;
  return q;
}

TEST(MindieSaver, WanBlockW8A8Dynamic) {
  Tmp t;
  std::ofstream(t.path / "model/config.json") << R"({"_class_name": "WanModel"})";
  std::ofstream(t.path / "model/diffusion_pytorch_model.safetensors.index.json") << "{}";
  std::ofstream(t.path / "model/notes.md") << "x";
  MindieSaver s(t.path / "out", 0);
  s.save_float("blocks.0.modulation", tensor_f32({1, 6, 4}, std::vector<float>(24, 0.25f)));
  s.save_linear(linear("blocks.0.self_attn.q", "W8A8_DYNAMIC", 4, 4, true));
  s.save_float("blocks.0.ffn.2.weight", tensor_f32({4, 8}, std::vector<float>(32, 1.0f)));
  SaveSummary sum = s.finish(t.path / "model");
  EXPECT_EQ(sum.model_quant_type, "W8A8_DYNAMIC");
  EXPECT_TRUE(fs::exists(t.path / "out/quant_model_weight_w8a8_dynamic.safetensors"));
  EXPECT_FALSE(fs::exists(t.path / "out/quant_model_weight.safetensors"));
  EXPECT_TRUE(fs::exists(t.path / "out/config.json"));
  EXPECT_FALSE(fs::exists(t.path / "out/diffusion_pytorch_model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(t.path / "out/notes.md"));
  const std::string text = read_text_file(t.path / "out/quant_model_description_w8a8_dynamic.json");
  EXPECT_NE(text.find("\n    \"blocks.0.modulation\": \"FLOAT\""), std::string::npos) << text;  // indent 4
  auto d = nlohmann::ordered_json::parse(text);
  std::vector<std::string> keys;
  for (const auto& [k, v] : d.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"blocks.0.modulation", "blocks.0.self_attn.q.weight",
                                            "blocks.0.self_attn.q.weight_scale", "blocks.0.self_attn.q.weight_offset",
                                            "blocks.0.self_attn.q.bias", "blocks.0.ffn.2.weight",
                                            "model_quant_type"}));
  EXPECT_EQ(d["blocks.0.self_attn.q.bias"], "FLOAT");
  EXPECT_EQ(d["blocks.0.self_attn.q.weight"], "W8A8_DYNAMIC");
  Checkpoint w = Checkpoint::open(t.path / "out/quant_model_weight_w8a8_dynamic.safetensors");
  EXPECT_EQ(w.info("blocks.0.self_attn.q.weight").dtype, DType::I8);
  EXPECT_EQ(w.info("blocks.0.self_attn.q.weight_scale").shape, (Shape{4, 1}));
  EXPECT_EQ(w.info("blocks.0.self_attn.q.weight_offset").dtype, DType::F32);
  for (float z : to_f32(w.read("blocks.0.self_attn.q.weight_offset"))) EXPECT_EQ(z, 0.0f);
  EXPECT_EQ(w.info("blocks.0.self_attn.q.bias").dtype, DType::F32);
}

TEST(MindieSaver, W8A8HasFloatDeqScaleAndShardsKeepTheirNames) {
  Tmp t;
  MindieSaver s(t.path / "out", 1);
  s.save_linear(linear("blocks.1.cross_attn.o", "W8A8", 4, 4, true));
  s.finish(t.path / "model");
  EXPECT_TRUE(fs::exists(t.path / "out/quant_model_weight-00001-of-00001.safetensors"));  // not renamed (quirk 12)
  EXPECT_TRUE(fs::exists(t.path / "out/quant_model_weight.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(t.path / "out/quant_model_description_w8a8.json"));
  Checkpoint w = Checkpoint::open(t.path / "out/quant_model_weight.safetensors.index.json");
  EXPECT_EQ(w.info("blocks.1.cross_attn.o.deq_scale").dtype, DType::F32);
  EXPECT_EQ(w.info("blocks.1.cross_attn.o.quant_bias").dtype, DType::I32);
}

// W4A4_MXFP4_DUALSCALE (the reference's qwen-image-edit practice saves it this
// way): weight, weight_scale, weight_dual_scale tagged with the type, the bias
// FLOAT (msModelSlim's ascendv1 saver tags it with the type instead).
TEST(MindieSaver, DualScaleTensorsAndFloatBias) {
  Tmp t;
  MindieSaver s(t.path / "out", 0);
  std::vector<float> w(4 * 64);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((static_cast<int>(i) * 7) % 11 - 5) * 0.1f;
  QuantizedLinear q;
  q.name = "blocks.0.ffn.0";
  q.type = "W4A4_MXFP4_DUALSCALE";
  q.weight = quantize_weight_mxfp4_dualscale(w.data(), 4, 64, 512);
  q.bias.assign(4, 0.5f);
  s.save_linear(q);
  s.finish(t.path / "model");
  Checkpoint c = Checkpoint::open(t.path / "out/quant_model_weight_w4a4_mxfp4_dualscale.safetensors");
  EXPECT_EQ(c.info("blocks.0.ffn.0.weight").shape, (Shape{4, 32}));
  EXPECT_EQ(c.info("blocks.0.ffn.0.weight_scale").shape, (Shape{4, 2}));
  EXPECT_EQ(c.info("blocks.0.ffn.0.weight_dual_scale").shape, (Shape{4, 1, 1}));
  std::ifstream f(t.path / "out/quant_model_description_w4a4_mxfp4_dualscale.json");
  const nlohmann::json d = nlohmann::json::parse(f);
  EXPECT_EQ(d["blocks.0.ffn.0.weight_dual_scale"], "W4A4_MXFP4_DUALSCALE");
  EXPECT_EQ(d["blocks.0.ffn.0.bias"], "FLOAT");
  EXPECT_EQ(d["model_quant_type"], "W4A4_MXFP4_DUALSCALE");
}

TEST(MindieSaver, RefusesTypesTheFormatCannotHold) {
  Tmp t;
  MindieSaver s(t.path / "out", 0);
  QuantizedLinear q = linear("blocks.0.ffn.0", "W8A16", 4, 4, false);
  try {
    s.save_linear(q);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.0.ffn.0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("use ascendv1_saver"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lwq
