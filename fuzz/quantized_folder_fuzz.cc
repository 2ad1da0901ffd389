// Fuzz target: quant_model_description.json of an ascendV1 folder
// (src/eval/quantized_folder.h). At start-up the harness writes one fixed,
// small quant_model_weights.safetensors into a scratch folder; each input is
// written beside it as the description, the folder is opened, and every
// Linear (every "<prefix>.weight") is loaded the way `lwquant eval` loads it.
//
// The fixed weights hold one Linear of each layout plus some that `eval` must
// refuse, so that the type strings the fuzzer writes reach the error paths:
//   layers.0.self_attn.q_proj  W8A8 layout (weight, quant_bias, input_scale, input_offset, deq_scale I64)
//   layers.0.self_attn.k_proj  W8A8_DYNAMIC / W8A16 layout (weight, weight_scale, weight_offset)
//   layers.0.self_attn.v_proj  W8A16 layout with a bias
//   layers.0.self_attn.o_proj  F32 weight (a FLOAT Linear)
//   layers.0.mlp.gate_proj     W8A8 layout, deq_scale F32, input_offset 200 (not storable as int8)
//   layers.0.mlp.up_proj       W8A8 layout, input_scale 0, quant_bias of the wrong length
//   layers.0.mlp.down_proj     I8 weight of rank 1
//   layers.0.input_layernorm.weight, model.norm.weight (F32), model.embed_tokens.weight (BF16)
// fuzz/corpus/quantized_folder/ holds descriptions of this folder.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "eval/quantized_folder.h"
#include "fuzz/fuzz_util.h"
#include "io/safetensors_writer.h"

namespace {

namespace fs = std::filesystem;

fs::path folder() { return lwq::fuzz::scratch_dir() / "quantized"; }

template <typename T>
lwq::Tensor make(lwq::DType dtype, lwq::Shape shape, std::vector<T> values) {
  lwq::Tensor t(dtype, std::move(shape));
  if (values.size() * sizeof(T) != t.nbytes()) std::abort();
  std::memcpy(t.bytes.data(), values.data(), t.nbytes());
  return t;
}

std::vector<int8_t> ramp_i8(size_t n) {
  std::vector<int8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<int8_t>(static_cast<int>(i * 37 % 255) - 127);
  return v;
}

int64_t f32_bits(float f) { return static_cast<int64_t>(lwq::bits_from_f32(f)); }

void write_weights(const fs::path& file) {
  using lwq::DType;
  const int64_t out = 4, in = 8;
  lwq::SafetensorsWriterOptions options;
  options.header_reserve = 0;
  lwq::SafetensorsWriter w(file, options);
  const std::string l0 = "model.layers.0.";
  auto w8a8 = [&](const std::string& p, float scale, float offset, size_t bias_len, bool deq_f32) {
    w.add(p + ".weight", make(DType::I8, {out, in}, ramp_i8(out * in)));
    w.add(p + ".quant_bias", make(DType::I32, {static_cast<int64_t>(bias_len)}, std::vector<int32_t>(bias_len, 7)));
    w.add(p + ".input_scale", make(DType::F32, {1}, std::vector<float>{scale}));
    w.add(p + ".input_offset", make(DType::F32, {1}, std::vector<float>{offset}));
    if (deq_f32)
      w.add(p + ".deq_scale", make(DType::F32, {out}, std::vector<float>(out, 0.01f)));
    else
      w.add(p + ".deq_scale", make(DType::I64, {out}, std::vector<int64_t>(out, f32_bits(0.01f))));
  };
  auto per_channel = [&](const std::string& p) {
    w.add(p + ".weight", make(DType::I8, {out, in}, ramp_i8(out * in)));
    w.add(p + ".weight_scale", make(DType::F32, {out, 1}, std::vector<float>(out, 0.02f)));
    w.add(p + ".weight_offset", make(DType::F32, {out, 1}, std::vector<float>(out, -3.0f)));
  };
  w.add("model.embed_tokens.weight", make(DType::BF16, {16, in}, std::vector<uint16_t>(16 * in, 0x3f80)));
  w.add(l0 + "input_layernorm.weight", make(DType::F32, {in}, std::vector<float>(in, 1.0f)));
  w8a8(l0 + "self_attn.q_proj", 0.05f, 3.0f, out, false);
  per_channel(l0 + "self_attn.k_proj");
  per_channel(l0 + "self_attn.v_proj");
  w.add(l0 + "self_attn.v_proj.bias", make(DType::F32, {out}, std::vector<float>(out, 0.5f)));
  w.add(l0 + "self_attn.o_proj.weight", make(DType::F32, {in, out}, std::vector<float>(in * out, 0.25f)));
  w8a8(l0 + "mlp.gate_proj", 0.05f, 200.0f, out, true);
  w8a8(l0 + "mlp.up_proj", 0.0f, 0.0f, out + 1, false);
  w.add(l0 + "mlp.down_proj.weight", make(DType::I8, {out * in}, ramp_i8(out * in)));
  w.add("model.norm.weight", make(DType::F32, {in}, std::vector<float>(in, 1.0f)));
  w.finish();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  lwq::fuzz::quiet();
  fs::create_directories(folder());
  write_weights(folder() / "quant_model_weights.safetensors");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lwq::fuzz::write_file(folder() / "quant_model_description.json", data, size);
  lwq::fuzz::expect_lwq_error_only([&] {
    auto q = lwq::QuantizedFolder::open(folder());
    (void)q.model_quant_type();
    for (const auto& name : q.tensor_names()) {
      if (!name.ends_with(".weight")) continue;
      const std::string prefix = name.substr(0, name.size() - 7);
      if (q.linear_type(prefix) == "FLOAT") continue;
      lwq::fuzz::expect_lwq_error_only([&] { (void)q.load_linear(prefix); });
    }
  });
  return 0;
}
