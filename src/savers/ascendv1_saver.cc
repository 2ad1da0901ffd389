#include "savers/ascendv1_saver.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

#include "quant/w8a8_export.h"
#include "savers/linear_tensors.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

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
    : DescribedSaver(std::move(out_dir), part_file_size_gb, "quant_model_weights"), model_dtype_(model_dtype) {}

void AscendV1Saver::save_float(const std::string& name, const Tensor& t) { add(name, t, "FLOAT"); }

void AscendV1Saver::save_linear(const QuantizedLinear& q) {
  const QuantizedWeight& w = q.weight;
  // msModelSlim lets the last writer win (spec §3.3); engines split every per-group / MX Linear by that one
  // value, so a second size would deploy wrong weights.
  if (w.group_size > 0 && group_size_ > 0 && w.group_size != group_size_)
    fail("ascendv1_saver: {} uses group_size {} but an earlier Linear used {}: quant_model_description.json holds "
         "one group_size for the whole model (MX types use 32), so all per-group and MX Linears must share it",
         q.name, w.group_size, group_size_);
  const DType dtype = model_dtype_;
  for (auto& t : linear_tensors(q, [dtype](const std::vector<float>& deq) { return encode_deq_scale(deq, dtype); }))
    add(t);
  if (w.group_size > 0) group_size_ = w.group_size;
  quant_type_.update(q.type);
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

void AscendV1Saver::save_online_rotation(const std::string& linear, const KroneckerRotation& r,
                                         int64_t max_tp_size) {
  if (online_max_tp_size_ != 0 && online_max_tp_size_ != max_tp_size)
    fail("ascendv1_saver: online rotations of max_tp_size {} and {} in one model", online_max_tp_size_, max_tp_size);
  online_max_tp_size_ = max_tp_size;
  if (r.right_is_identity()) {
    add_undescribed(linear + ".heads_rotation", tensor_f32({r.m(), r.m()}, r.left()));
    heads_rotation_layers_.push_back(linear);
  } else {
    add_undescribed(linear + ".kronecker_rotation_m", tensor_f32({r.m(), r.m()}, r.left()));
    add_undescribed(linear + ".kronecker_rotation_n", tensor_f32({r.n(), r.n()}, r.right()));
    kronecker_rotation_layers_.push_back(linear);
  }
}

void AscendV1Saver::save_state(nlohmann::json& state) const {
  state["model_quant_type"] = quant_type_.value();
  state["group_size"] = group_size_;
  state["online_max_tp_size"] = online_max_tp_size_;
  state["heads_rotation_layers"] = heads_rotation_layers_;
  state["kronecker_rotation_layers"] = kronecker_rotation_layers_;
}

void AscendV1Saver::load_state(const nlohmann::json& state) {
  quant_type_.update(state.at("model_quant_type").get<std::string>());
  group_size_ = state.at("group_size").get<int64_t>();
  online_max_tp_size_ = state.value("online_max_tp_size", int64_t{0});
  heads_rotation_layers_ = state.value("heads_rotation_layers", std::vector<std::string>{});
  kronecker_rotation_layers_ = state.value("kronecker_rotation_layers", std::vector<std::string>{});
}

void AscendV1Saver::set_description_optional(const nlohmann::ordered_json& optional) {
  if (!optional.is_object()) fail("the description's 'optional' entry must be a JSON object");
  optional_json_ = optional.dump();
}

SaveSummary AscendV1Saver::finish(const fs::path& model_dir) {
  finish_weights();

  nlohmann::ordered_json description = nlohmann::ordered_json::object();
  for (const auto& [name, type] : description_) description[name] = type;
  description["version"] = "1.0.0";
  description["model_quant_type"] = quant_type_.value();
  description["metadata"] = nlohmann::ordered_json::object();
  if (online_max_tp_size_ > 0) {  // msModelSlim's QuarotOnlineRotationInfo.get_quarot_save_info()
    nlohmann::ordered_json& q = description["metadata"]["quarot"];
    q["max_tp_size"] = online_max_tp_size_;
    q["heads_rotation"]["layers"] = heads_rotation_layers_;
    q["kronecker_rotation"]["layers"] = kronecker_rotation_layers_;
  }
  description["group_size"] = group_size_;
  description["optional"] = nlohmann::ordered_json::parse(optional_json_);
  write_text_file_atomic(out_dir_ / "quant_model_description.json", description.dump(4, ' ', true));

  copy_model_files(model_dir, out_dir_);
  if (untie_word_embeddings_) untie_config_json(out_dir_ / "config.json");
  summary_.model_quant_type = quant_type_.value();
  return summary_;
}

void untie_config_json(const fs::path& config_file) {
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(config_file));
  bool set = false;
  if (config.contains("text_config") && config["text_config"].is_object() &&
      config["text_config"].contains("tie_word_embeddings")) {
    config["text_config"]["tie_word_embeddings"] = false;
    set = true;
  }
  if (config.contains("tie_word_embeddings") || !set) config["tie_word_embeddings"] = false;
  write_text_file_atomic(config_file, config.dump(2, ' ', true));
}

}  // namespace lwq
