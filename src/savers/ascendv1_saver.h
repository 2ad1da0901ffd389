// msModelSlim's ascendv1_saver format (spec §3.1–3.8, §10): sharded
// `quant_model_weights*.safetensors`, its index, and
// `quant_model_description.json` mapping every written tensor to its type.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "savers/model_quant_type.h"
#include "savers/quantized_linear.h"
#include "tensor/tensor.h"

namespace lwq {

class ShardedSafetensorsWriter;

struct SaveSummary {
  size_t tensors = 0;
  uint64_t bytes = 0;
  size_t files = 0;
  std::string model_quant_type;
};

class AscendV1Saver {
 public:
  // `out_dir` must exist and be empty (the runner's temporary folder).
  // `part_file_size_gb` 0 writes one file without index. `model_dtype` is
  // config.json's torch_dtype: deq_scale is int64 bits unless it is BF16.
  AscendV1Saver(std::filesystem::path out_dir, int64_t part_file_size_gb, DType model_dtype);
  ~AscendV1Saver();

  void save_float(const std::string& name, const Tensor& t);
  void save_linear(const QuantizedLinear& q);
  // A Linear left in float: its parameters are saved FLOAT and it counts as
  // FLOAT for model_quant_type.
  void note_float_linear() { quant_type_.update("FLOAT"); }

  // Outlier suppression (quarot, spec §3.3/§3.12): the description's
  // "optional" object, and config.json written with tie_word_embeddings:
  // false (a rotated tied model gets its own lm_head). Call before finish().
  void set_description_optional(const nlohmann::ordered_json& optional);
  void untie_word_embeddings() { untie_word_embeddings_ = true; }

  // Closes the shards, writes the index and the description JSON, and copies
  // config/tokenizer files from `model_dir` (quantization_config stripped).
  SaveSummary finish(const std::filesystem::path& model_dir);

  // Resume support: everything written so far made durable, and the saver's
  // state (shards, description, counters) as JSON; resume() restores it into
  // a fresh saver over the same folder (see ShardedSafetensorsWriter::resume).
  nlohmann::json checkpoint();
  void resume(const nlohmann::json& state);
  // Files written stay in place when the saver is destroyed unfinished (and
  // after a failed write), so a later run can resume() them.
  void keep_files_for_resume();

 private:
  void add(const std::string& name, const Tensor& t, const std::string& type);
  // The same from bytes the caller holds (int8 codes), with no Tensor copy.
  void add(const std::string& name, DType dtype, const Shape& shape, const void* data, const std::string& type);

  std::filesystem::path out_dir_;
  DType model_dtype_;
  std::unique_ptr<ShardedSafetensorsWriter> writer_;
  std::vector<std::pair<std::string, std::string>> description_;  // write order
  ModelQuantType quant_type_;
  int64_t group_size_ = 0;
  SaveSummary summary_;
  std::string optional_json_ = "{}";  // the description's "optional" object, serialized
  bool untie_word_embeddings_ = false;
};

// Encodes deq_scale as msModelSlim does (spec §3.5): float32 values for
// bfloat16 models, else the float32 bit patterns widened to int64.
Tensor encode_deq_scale(const std::vector<float>& deq_scale, DType model_dtype);

// Copies `*.json/*.py/*.txt/*.jinja` (not `*index.json`) and `tokenizer.model`
// from `model_dir` to `out_dir`, dropping "quantization_config" from
// config.json (top level and text_config).
void copy_model_files(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir);

}  // namespace lwq
