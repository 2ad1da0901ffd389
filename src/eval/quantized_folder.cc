#include "eval/quantized_folder.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <set>

#include "quant/w8a8_export.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

const std::set<std::string> kGlobalKeys = {"version",       "model_quant_type", "metadata",     "group_size",
                                           "optional",      "kv_cache_type",    "kv_quant_type", "fa_quant_type"};
const std::set<std::string> kKnownTypes = {"FLOAT", "W8A8", "W8A8_DYNAMIC", "W8A16"};

std::vector<float> read_f32(const Checkpoint& ckpt, const std::string& name, const Shape& shape) {
  const TensorInfo& info = ckpt.info(name);
  if (info.shape != shape)
    fail("tensor '{}' has shape {}, expected {}", name, shape_str(info.shape), shape_str(shape));
  if (info.dtype != DType::F32) fail("tensor '{}' has dtype {}, expected F32", name, dtype_name(info.dtype));
  return to_f32(ckpt.read(name));
}

}  // namespace

QuantizedFolder QuantizedFolder::open(const fs::path& dir) {
  fs::path desc_path = dir / "quant_model_description.json";
  if (!fs::is_directory(dir)) fail("quantized folder {} does not exist", dir.string());
  if (!fs::exists(desc_path)) fail("{} is not an ascendV1 folder: quant_model_description.json is missing", dir.string());
  nlohmann::json desc;
  try {
    desc = nlohmann::json::parse(read_text_file(desc_path));
  } catch (const nlohmann::json::exception& e) {
    fail("{} is not valid JSON: {}", desc_path.string(), e.what());
  }
  if (!desc.is_object()) fail("{} must be a JSON object", desc_path.string());
  fs::path weights = fs::exists(dir / "quant_model_weights.safetensors.index.json")
                         ? dir / "quant_model_weights.safetensors.index.json"
                         : dir / "quant_model_weights.safetensors";
  if (!fs::exists(weights)) fail("{}: neither quant_model_weights.safetensors nor its index exists", dir.string());
  QuantizedFolder folder(dir, Checkpoint::open(weights));
  for (const auto& [key, value] : desc.items()) {
    if (kGlobalKeys.count(key) || key.ends_with(".quant_type")) continue;
    if (!value.is_string()) fail("{}: entry '{}' must be a type string", desc_path.string(), key);
    std::string type = value.get<std::string>();
    if (!kKnownTypes.count(type))
      fail("{}: tensor '{}' has type '{}', which lwquant eval does not know (known: FLOAT, W8A8, W8A8_DYNAMIC, W8A16)",
           desc_path.string(), key, type);
    if (!folder.ckpt_.contains(key)) fail("{} lists tensor '{}', which is not in the safetensors files", desc_path.string(), key);
    folder.types_[key] = type;
  }
  for (const auto& name : folder.ckpt_.tensor_names())
    if (!folder.types_.count(name)) fail("tensor '{}' in {} is not listed in {}", name, dir.string(), desc_path.string());
  folder.model_quant_type_ = desc.value("model_quant_type", std::string("Unknown"));
  return folder;
}

std::string QuantizedFolder::linear_type(const std::string& prefix) const {
  auto it = types_.find(prefix + ".weight");
  return it == types_.end() ? "FLOAT" : it->second;
}

DeployedLinear QuantizedFolder::load_linear(const std::string& prefix) const {
  DeployedLinear lin;
  lin.name = prefix;
  lin.type = linear_type(prefix);
  const TensorInfo& w = ckpt_.info(prefix + ".weight");
  if (w.dtype != DType::I8 || w.shape.size() != 2)
    fail("tensor '{}.weight' of type {} must be I8 [out, in], found {} {}", prefix, lin.type, dtype_name(w.dtype),
         shape_str(w.shape));
  lin.out = w.shape[0];
  lin.in = w.shape[1];
  Tensor wt = ckpt_.read(prefix + ".weight");
  lin.weight.assign(wt.data<int8_t>(), wt.data<int8_t>() + wt.numel());
  if (ckpt_.contains(prefix + ".bias")) lin.bias = read_f32(ckpt_, prefix + ".bias", {lin.out});
  if (lin.type == "W8A8") {
    lin.input_scale = read_f32(ckpt_, prefix + ".input_scale", {1})[0];
    lin.input_offset = read_f32(ckpt_, prefix + ".input_offset", {1})[0];
    // Engines copy input_offset into an int8 parameter and multiply by 1/input_scale (ascend_loaders.md §W8A8):
    // values they would silently change cannot be scored as written.
    if (!(std::isfinite(lin.input_scale) && lin.input_scale > 0.0f))
      fail("tensor '{}.input_scale' is {}, expected a positive finite scale", prefix, lin.input_scale);
    if (!(lin.input_offset == std::nearbyint(lin.input_offset) && lin.input_offset >= -128.0f && lin.input_offset <= 127.0f))
      fail("tensor '{}.input_offset' is {}, expected an integer in [-128, 127] (engines store it as int8)", prefix,
           lin.input_offset);
    const TensorInfo& qb = ckpt_.info(prefix + ".quant_bias");
    if (qb.dtype != DType::I32 || qb.shape != Shape{lin.out})
      fail("tensor '{}.quant_bias' must be I32 [{}], found {} {}", prefix, lin.out, dtype_name(qb.dtype), shape_str(qb.shape));
    Tensor qbt = ckpt_.read(prefix + ".quant_bias");
    lin.quant_bias.assign(qbt.data<int32_t>(), qbt.data<int32_t>() + lin.out);
    const TensorInfo& dq = ckpt_.info(prefix + ".deq_scale");
    if (dq.shape != Shape{lin.out}) fail("tensor '{}.deq_scale' must have shape [{}]", prefix, lin.out);
    Tensor dqt = ckpt_.read(prefix + ".deq_scale");
    if (dq.dtype == DType::I64) lin.deq_scale = deq_scale_from_int64_bits({dqt.data<int64_t>(), static_cast<size_t>(lin.out)});
    else if (dq.dtype == DType::F32) lin.deq_scale = to_f32(dqt);
    else fail("tensor '{}.deq_scale' must be I64 (float32 bits) or F32, found {}", prefix, dtype_name(dq.dtype));
  } else {
    lin.weight_scale = read_f32(ckpt_, prefix + ".weight_scale", {lin.out, 1});
    lin.weight_offset = read_f32(ckpt_, prefix + ".weight_offset", {lin.out, 1});
  }
  return lin;
}

}  // namespace lwq
