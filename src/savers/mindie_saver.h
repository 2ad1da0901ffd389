// msModelSlim's mindie_format_saver (spec §3.10, multimodal.md B.3.4/B.4), the
// format MindIE-SD loads diffusion transformers from: one
// `quant_model_weight_<type>.safetensors` (part_file_size 0; shards keep the
// un-renamed `quant_model_weight-0000i-of-0000N` names, spec quirk 12, which
// MindIE-SD cannot load) and `quant_model_description_<type>.json` — tensor
// entries in write order and `model_quant_type` (the last quantized Linear's
// type) last, indent 4, no version/metadata/group_size. deq_scale is always
// float32. Types: FLOAT, W8A8 (static) and per-channel W8A8_DYNAMIC; others
// are refused naming the Linear ("use ascendv1_saver"), as msModelSlim does.
//
// Standalone for now: the runner writes ascendV1 only; wiring the saver
// choice (spec.save[].type) through the runner comes with the Wan2.1 units.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "savers/ascendv1_saver.h"  // SaveSummary
#include "savers/quantized_linear.h"
#include "tensor/tensor.h"

namespace lwq {

class ShardedSafetensorsWriter;

class MindieSaver {
 public:
  // `out_dir` must exist and be empty.
  MindieSaver(std::filesystem::path out_dir, int64_t part_file_size_gb);
  ~MindieSaver();

  void save_float(const std::string& name, const Tensor& t);
  void save_linear(const QuantizedLinear& q);
  // Writes the description, renames the single weight file by type and copies
  // `*.json` / `*.py` (not `*index.json`) from `model_dir` unchanged.
  SaveSummary finish(const std::filesystem::path& model_dir);

 private:
  void add(const std::string& name, const Tensor& t, const std::string& type);

  std::filesystem::path out_dir_;
  bool sharded_;
  std::unique_ptr<ShardedSafetensorsWriter> writer_;
  std::vector<std::pair<std::string, std::string>> description_;  // write order
  std::string last_quantized_type_;
  SaveSummary summary_;
};

}  // namespace lwq
