#include "savers/ascendv1_saver.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

#include "io/safetensors_writer.h"
#include "quant/fp_formats.h"
#include "quant/int4_pack.h"
#include "quant/w8a8_export.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kGiB = 1073741824ull;

Tensor int8_tensor(const std::vector<int8_t>& v, Shape shape) {
  Tensor t(DType::I8, std::move(shape));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), v.size());
  return t;
}

Tensor vector_f32(const std::vector<float>& v) {
  return tensor_f32({static_cast<int64_t>(v.size())}, v);
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_copied_file(const std::string& name) {
  if (ends_with(name, "index.json")) return false;
  return ends_with(name, ".json") || ends_with(name, ".py") || ends_with(name, ".txt") ||
         ends_with(name, ".jinja") || name == "tokenizer.model";
}

}  // namespace

AscendV1Saver::AscendV1Saver(fs::path out_dir, int64_t part_file_size_gb, DType model_dtype)
    : out_dir_(std::move(out_dir)), model_dtype_(model_dtype) {
  if (part_file_size_gb < 0) fail("part_file_size must be >= 0, got {}", part_file_size_gb);
  ShardedWriterOptions opts;
  opts.stem = "quant_model_weights";
  opts.max_shard_bytes = static_cast<uint64_t>(part_file_size_gb) * kGiB;
  writer_ = std::make_unique<ShardedSafetensorsWriter>(out_dir_, opts);
}

AscendV1Saver::~AscendV1Saver() = default;

void AscendV1Saver::add(const std::string& name, const Tensor& t, const std::string& type) {
  writer_->add(name, t);
  description_.emplace_back(name, type);
  summary_.tensors += 1;
  summary_.bytes += t.nbytes();
}

void AscendV1Saver::add(const std::string& name, DType dtype, const Shape& shape, const void* data,
                        const std::string& type) {
  writer_->add(name, dtype, shape, data);
  description_.emplace_back(name, type);
  summary_.tensors += 1;
  summary_.bytes += static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
}

void AscendV1Saver::save_float(const std::string& name, const Tensor& t) { add(name, t, "FLOAT"); }

void AscendV1Saver::save_linear(const QuantizedLinear& q) {
  const std::string& p = q.name;
  const QuantizedWeight& w = q.weight;
  const int64_t out = w.out, groups = w.groups();
  const std::string& t = q.type;
  // msModelSlim lets the last writer win (spec §3.3); engines split every per-group / MX Linear by that one
  // value, so a second size would deploy wrong weights.
  if (w.group_size > 0 && group_size_ > 0 && w.group_size != group_size_)
    fail("ascendv1_saver: {} uses group_size {} but an earlier Linear used {}: quant_model_description.json holds "
         "one group_size for the whole model (MX types use 32), so all per-group and MX Linears must share it",
         p, w.group_size, group_size_);
  if (t == "W8A8" || t == "W8A8_MIX") {
    add(p + ".weight", DType::I8, {out, w.in}, w.q.data(), t);
    std::vector<float> deq = deq_scale_f32(q.input_scale, w.scale);
    std::vector<int32_t> qbias = quant_bias(w, q.bias, deq, q.input_offset);
    Tensor qb(DType::I32, {out});
    if (!qbias.empty()) std::memcpy(qb.bytes.data(), qbias.data(), qbias.size() * 4);
    add(p + ".quant_bias", qb, t);
    add(p + ".input_scale", tensor_f32({1}, {q.input_scale}), t);
    add(p + ".input_offset", tensor_f32({1}, {q.input_offset}), t);
    add(p + ".deq_scale", encode_deq_scale(deq, model_dtype_), t);
    if (t == "W8A8_MIX") {
      // The prefill (dynamic) path's per-channel weight scale; the registry admits symmetric weights only, so
      // the offsets are zeros (spec §3.4, ascend_loaders §4.2).
      add(p + ".weight_scale", tensor_f32({out, 1}, w.scale), t);
      add(p + ".weight_offset", tensor_f32({out, 1}, std::vector<float>(w.scale.size(), 0.0f)), t);
    }
  } else if (t == "W8A8_DYNAMIC" || t == "W8A16" || t == "W4A4_DYNAMIC" || t == "WFP8AFP8_DYNAMIC") {
    // W4A4 weights stay unpacked int8 (spec §9 quirk 6); FP8 ones are e4m3 bytes.
    // The codes are written from where they lie (no Tensor copy).
    add(p + ".weight", t == "WFP8AFP8_DYNAMIC" ? DType::F8_E4M3 : DType::I8, {out, w.in}, w.q.data(), t);
    add(p + ".weight_scale", tensor_f32({out, groups}, w.scale), t);
    // W8A8_DYNAMIC and FP8 kernels ignore offsets: msModelSlim writes zeros (the registry admits only symmetric
    // weights for them). W8A16 and W4A4 keep the signed-domain zero point.
    const bool keep_offset = t == "W8A16" || t == "W4A4_DYNAMIC";
    add(p + ".weight_offset",
        tensor_f32({out, groups}, keep_offset ? w.offset : std::vector<float>(w.scale.size(), 0.0f)), t);
  } else if (t == "W4A8_DYNAMIC") {
    std::vector<int8_t> packed = pack_int4_w4a8(w.q.data(), out, w.in);
    add(p + ".weight", int8_tensor(packed, {out / 2, w.in}), t);
    add(p + ".weight_scale", tensor_f32({out, groups}, w.scale), t);
    add(p + ".weight_offset", tensor_f32({out, groups}, std::vector<float>(w.scale.size(), 0.0f)), t);
    int64_t cols = 0;
    std::vector<float> scale_bias = w4a8_scale_bias(w, p, cols);
    add(p + ".scale_bias", tensor_f32({out, cols}, scale_bias), t);
  } else if (t == "W8A8_MXFP8" || t == "W4A8_MXFP" || t == "W4A4_MXFP4") {
    if (w.code == WeightCode::MxFp8) {
      Tensor weight = int8_tensor(w.q, {out, w.in});
      weight.dtype = DType::F8_E4M3;
      add(p + ".weight", weight, t);
    } else {
      std::vector<uint8_t> codes(w.q.begin(), w.q.end());
      std::vector<uint8_t> packed = pack_fp4(codes, out, w.in);
      Tensor weight(DType::U8, {out, w.in / 2});
      if (!packed.empty()) std::memcpy(weight.bytes.data(), packed.data(), packed.size());
      add(p + ".weight", weight, t);
    }
    Tensor scale(DType::U8, {out, groups});
    for (size_t k = 0; k < w.scale.size(); ++k) scale.bytes[k] = mx_biased_exponent(w.scale[k]);
    add(p + ".weight_scale", scale, t);
  } else {
    fail("ascendv1_saver: cannot save {} as type '{}'", p, t);
  }
  if (w.group_size > 0) group_size_ = w.group_size;
  if (!q.bias.empty()) add(p + ".bias", vector_f32(q.bias), "FLOAT");
  quant_type_.update(t);
}

Tensor encode_deq_scale(const std::vector<float>& deq_scale, DType model_dtype) {
  const auto n = static_cast<int64_t>(deq_scale.size());
  if (model_dtype == DType::BF16) return tensor_f32({n}, deq_scale);
  std::vector<int64_t> bits = deq_scale_as_int64_bits(deq_scale);
  Tensor t(DType::I64, {n});
  if (!bits.empty()) std::memcpy(t.bytes.data(), bits.data(), bits.size() * 8);
  return t;
}

void copy_model_files(const fs::path& model_dir, const fs::path& out_dir) {
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    if (!entry.is_regular_file()) continue;
    std::string name = entry.path().filename().string();
    if (!is_copied_file(name)) continue;
    if (name != "config.json") {
      write_text_file_atomic(out_dir / name, read_text_file(entry.path()));
      continue;
    }
    std::string text = read_text_file(entry.path());
    nlohmann::ordered_json config;
    try {
      config = nlohmann::ordered_json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail("{} is not valid JSON: {}", entry.path().string(), e.what());
    }
    bool stripped = config.erase("quantization_config") > 0;
    if (config.contains("text_config") && config["text_config"].is_object())
      stripped = config["text_config"].erase("quantization_config") > 0 || stripped;
    // Unchanged files are copied byte for byte; msModelSlim rewrites them with indent 2.
    write_text_file_atomic(out_dir / name, stripped ? config.dump(2, ' ', true) : text);
  }
}

nlohmann::json AscendV1Saver::checkpoint() {
  nlohmann::json state;
  state["writer"] = writer_->checkpoint();
  state["description"] = description_;
  state["model_quant_type"] = quant_type_.value();
  state["group_size"] = group_size_;
  state["tensors"] = summary_.tensors;
  state["bytes"] = summary_.bytes;
  return state;
}

void AscendV1Saver::keep_files_for_resume() { writer_->keep_files(); }

void AscendV1Saver::resume(const nlohmann::json& state) {
  try {
    writer_->resume(state.at("writer"));
    description_ = state.at("description").get<std::vector<std::pair<std::string, std::string>>>();
    quant_type_.update(state.at("model_quant_type").get<std::string>());
    group_size_ = state.at("group_size").get<int64_t>();
    summary_.tensors = state.at("tensors").get<size_t>();
    summary_.bytes = state.at("bytes").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed saver state: {}", out_dir_.string(), e.what());
  }
}

void AscendV1Saver::set_description_optional(const nlohmann::ordered_json& optional) {
  if (!optional.is_object()) fail("the description's 'optional' entry must be a JSON object");
  optional_json_ = optional.dump();
}

SaveSummary AscendV1Saver::finish(const fs::path& model_dir) {
  auto weight_map = writer_->finish();
  std::vector<std::string> files;
  for (const auto& [tensor, file] : weight_map)
    if (files.empty() || files.back() != file) files.push_back(file);
  summary_.files = files.size();

  nlohmann::ordered_json description = nlohmann::ordered_json::object();
  for (const auto& [name, type] : description_) description[name] = type;
  description["version"] = "1.0.0";
  description["model_quant_type"] = quant_type_.value();
  description["metadata"] = nlohmann::ordered_json::object();
  description["group_size"] = group_size_;
  description["optional"] = nlohmann::ordered_json::parse(optional_json_);
  write_text_file_atomic(out_dir_ / "quant_model_description.json", description.dump(4, ' ', true));

  copy_model_files(model_dir, out_dir_);
  if (untie_word_embeddings_) {
    nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(out_dir_ / "config.json"));
    bool set = false;
    if (config.contains("text_config") && config["text_config"].is_object() &&
        config["text_config"].contains("tie_word_embeddings")) {
      config["text_config"]["tie_word_embeddings"] = false;
      set = true;
    }
    if (config.contains("tie_word_embeddings") || !set) config["tie_word_embeddings"] = false;
    write_text_file_atomic(out_dir_ / "config.json", config.dump(2, ' ', true));
  }
  summary_.model_quant_type = quant_type_.value();
  return summary_;
}

}  // namespace lwq
