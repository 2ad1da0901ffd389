#include "savers/mindie_saver.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "io/safetensors_writer.h"
#include "quant/w8a8_export.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

constexpr uint64_t kGiB = 1073741824ull;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

Tensor int8_tensor(const std::vector<int8_t>& v, Shape shape) {
  Tensor t(DType::I8, std::move(shape));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), v.size());
  return t;
}

}  // namespace

MindieSaver::MindieSaver(fs::path out_dir, int64_t part_file_size_gb)
    : out_dir_(std::move(out_dir)), sharded_(part_file_size_gb > 0) {
  if (part_file_size_gb < 0) fail("part_file_size must be >= 0, got {}", part_file_size_gb);
  ShardedWriterOptions opts;
  opts.stem = "quant_model_weight";
  opts.max_shard_bytes = static_cast<uint64_t>(part_file_size_gb) * kGiB;
  writer_ = std::make_unique<ShardedSafetensorsWriter>(out_dir_, opts);
}

MindieSaver::~MindieSaver() = default;

void MindieSaver::add(const std::string& name, const Tensor& t, const std::string& type) {
  writer_->add(name, t);
  description_.emplace_back(name, type);
  summary_.tensors += 1;
  summary_.bytes += t.nbytes();
}

void MindieSaver::save_float(const std::string& name, const Tensor& t) { add(name, t, "FLOAT"); }

void MindieSaver::save_linear(const QuantizedLinear& q) {
  const std::string& p = q.name;
  const QuantizedWeight& w = q.weight;
  const int64_t out = w.out;
  if (q.type == "W8A8_DYNAMIC" && w.groups() == 1) {
    add(p + ".weight", int8_tensor(w.q, {out, w.in}), q.type);
    add(p + ".weight_scale", tensor_f32({out, 1}, w.scale), q.type);
    add(p + ".weight_offset", tensor_f32({out, 1}, std::vector<float>(static_cast<size_t>(out), 0.0f)), q.type);
  } else if (q.type == "W8A8") {
    add(p + ".weight", int8_tensor(w.q, {out, w.in}), q.type);
    std::vector<float> deq = deq_scale_f32(q.input_scale, w.scale);
    std::vector<int32_t> qbias = quant_bias(w, q.bias, deq, q.input_offset);
    Tensor qb(DType::I32, {out});
    if (!qbias.empty()) std::memcpy(qb.bytes.data(), qbias.data(), qbias.size() * 4);
    add(p + ".quant_bias", qb, q.type);
    add(p + ".input_scale", tensor_f32({1}, {q.input_scale}), q.type);
    add(p + ".input_offset", tensor_f32({1}, {q.input_offset}), q.type);
    add(p + ".deq_scale", tensor_f32({out}, deq), q.type);  // always float32 in this format (spec §3.10)
  } else {
    fail("mindie_format_saver cannot save {} as {}{} (it writes FLOAT, W8A8 and per-channel W8A8_DYNAMIC); "
         "use ascendv1_saver instead", p, q.type, w.groups() > 1 ? " per group" : "");
  }
  // MindIE-SD requires the bias of every quantized Linear that has one, as float32 (multimodal.md B.4).
  if (!q.bias.empty()) add(p + ".bias", tensor_f32({out}, q.bias), "FLOAT");
  last_quantized_type_ = q.type;
}

SaveSummary MindieSaver::finish(const fs::path& model_dir) {
  auto weight_map = writer_->finish();
  summary_.files = 0;
  std::string last_file;
  for (const auto& [tensor, file] : weight_map)
    if (file != last_file) ++summary_.files, last_file = file;
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
  summary_.model_quant_type = last_quantized_type_.empty() ? "FLOAT" : last_quantized_type_;
  return summary_;
}

}  // namespace lwq
