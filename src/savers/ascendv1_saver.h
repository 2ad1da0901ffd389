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

#include "savers/described_saver.h"
#include "savers/model_quant_type.h"
#include "savers/quantized_linear.h"
#include "tensor/tensor.h"

namespace lwq {

class AscendV1Saver : public DescribedSaver {
 public:
  // `out_dir` must exist and be empty (the runner's temporary folder).
  // `part_file_size_gb` 0 writes one file without index. `model_dtype` is
  // config.json's torch_dtype: deq_scale is int64 bits unless it is BF16.
  AscendV1Saver(std::filesystem::path out_dir, int64_t part_file_size_gb, DType model_dtype);

  void save_float(const std::string& name, const Tensor& t) override;
  void save_linear(const QuantizedLinear& q) override;
  // A Linear left in float: its parameters are saved FLOAT and it counts as
  // FLOAT for model_quant_type.
  void note_float_linear() override { quant_type_.update("FLOAT"); }

  // Outlier suppression (quarot, spec §3.3/§3.12): the description's
  // "optional" object, and config.json written with tie_word_embeddings:
  // false (a rotated tied model gets its own lm_head). Call before finish().
  void set_description_optional(const nlohmann::ordered_json& optional) override;
  void untie_word_embeddings() override { untie_word_embeddings_ = true; }
  void save_online_rotation(const std::string& linear, const KroneckerRotation& r, int64_t max_tp_size) override;

  // Closes the shards, writes the index and the description JSON, and copies
  // config/tokenizer files from `model_dir` (quantization_config stripped).
  SaveSummary finish(const std::filesystem::path& model_dir) override;

 private:
  void save_state(nlohmann::json& state) const override;
  void load_state(const nlohmann::json& state) override;

  DType model_dtype_;
  ModelQuantType quant_type_;
  int64_t group_size_ = 0;
  std::string optional_json_ = "{}";  // the description's "optional" object, serialized
  bool untie_word_embeddings_ = false;
  // metadata.quarot of online rotation: max_tp_size (0: none saved) and the Linears listed.
  int64_t online_max_tp_size_ = 0;
  std::vector<std::string> heads_rotation_layers_, kronecker_rotation_layers_;
};

// Encodes deq_scale as msModelSlim does (spec §3.5): float32 values for
// bfloat16 models, else the float32 bit patterns widened to int64.
Tensor encode_deq_scale(const std::vector<float>& deq_scale, DType model_dtype);

// Copies `*.json/*.py/*.txt/*.jinja` (not `*index.json`) and `tokenizer.model`
// from `model_dir` to `out_dir`, dropping "quantization_config" from
// config.json (top level and text_config).
void copy_model_files(const std::filesystem::path& model_dir, const std::filesystem::path& out_dir);

// Rewrites a copied config.json with tie_word_embeddings: false (in
// text_config too when it has the key): a rotated tied model's own lm_head.
void untie_config_json(const std::filesystem::path& config_file);

}  // namespace lwq
