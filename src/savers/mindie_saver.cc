#include "savers/mindie_saver.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "config/quant_schemes.h"
#include "savers/ascendv1_saver.h"  // untie_config_json
#include "savers/linear_tensors.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

MindieSaver::MindieSaver(fs::path out_dir, int64_t part_file_size_gb)
    : DescribedSaver(std::move(out_dir), part_file_size_gb, "quant_model_weight"), sharded_(part_file_size_gb > 0) {}

void MindieSaver::save_float(const std::string& name, const Tensor& t) { add(name, t, "FLOAT"); }

void MindieSaver::save_linear(const QuantizedLinear& q) {
  // MX types carry 32-element blocks, not groups in the description's sense.
  const bool per_group = q.weight.groups() > 1 && q.weight.code == WeightCode::Int;
  if (!mindie_format_accepts(q.type, per_group))
    fail("mindie_format_saver cannot save {} as {}{} (it writes FLOAT, W8A8, per-channel W8A8_DYNAMIC, W8A8_MXFP8, "
         "W4A4_MXFP4 and W4A4_MXFP4_DUALSCALE); use ascendv1_saver instead", q.name, q.type,
         per_group ? " per group" : "");
  // deq_scale is always float32 in this format (spec §3.10). MindIE-SD requires the float32 bias of every
  // quantized Linear that has one (multimodal.md B.4): linear_tensors writes it.
  for (auto& t : linear_tensors(q, [](const std::vector<float>& deq) {
         return tensor_f32({static_cast<int64_t>(deq.size())}, deq);
       })) {
    // Every bias is FLOAT here, the dual-scale one included (msModelSlim's mindie saver; ascendv1 tags it).
    if (t.name == q.name + ".bias") t.type = "FLOAT";
    add(t);
  }
  last_quantized_type_ = q.type;
}

void MindieSaver::save_online_rotation(const std::string& linear, const KroneckerRotation&, int64_t) {
  fail("mindie_format_saver cannot store the online rotation of '{}' (MindIE-SD reads no rotation tensors)", linear);
}

void MindieSaver::set_description_optional(const nlohmann::ordered_json&) {
  fail("mindie_format_saver cannot store quarot's extra information (spec §3.10); set export_extra_info: false or "
       "use ascendv1_saver");
}

void MindieSaver::save_state(nlohmann::json& state) const { state["last_quantized_type"] = last_quantized_type_; }

void MindieSaver::load_state(const nlohmann::json& state) {
  last_quantized_type_ = state.at("last_quantized_type").get<std::string>();
}

SaveSummary MindieSaver::finish(const fs::path& model_dir) {
  finish_weights();
  const std::string type = last_quantized_type_.empty() ? "" : lower(last_quantized_type_);
  if (!sharded_ && !type.empty()) {
    std::error_code ec;
    fs::rename(out_dir_ / "quant_model_weight.safetensors", out_dir_ / ("quant_model_weight_" + type + ".safetensors"),
               ec);
    if (ec) fail("cannot rename the weight file in {}: {}", out_dir_.string(), ec.message());
  }
  nlohmann::ordered_json description = nlohmann::ordered_json::object();
  for (const auto& [name, t] : description_) description[name] = t;
  description["model_quant_type"] = last_quantized_type_.empty() ? "FLOAT" : last_quantized_type_;
  const std::string json_name =
      type.empty() ? "quant_model_description.json" : "quant_model_description_" + type + ".json";
  write_text_file_atomic(out_dir_ / json_name, description.dump(4, ' ', true));
  for (const auto& entry : fs::directory_iterator(model_dir)) {
    if (!entry.is_regular_file()) continue;
    const std::string name = entry.path().filename().string();
    if (ends_with(name, "index.json") || !(ends_with(name, ".json") || ends_with(name, ".py"))) continue;
    write_text_file_atomic(out_dir_ / name, read_text_file(entry.path()));
  }
  if (untie_word_embeddings_ && fs::exists(out_dir_ / "config.json")) untie_config_json(out_dir_ / "config.json");
  summary_.model_quant_type = last_quantized_type_.empty() ? "FLOAT" : last_quantized_type_;
  return summary_;
}

}  // namespace lwq
