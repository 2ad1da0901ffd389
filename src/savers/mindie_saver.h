// msModelSlim's mindie_format_saver (spec §3.10, multimodal.md B.3.4/B.4), the
// format MindIE-SD loads diffusion transformers from: one
// `quant_model_weight_<type>.safetensors` (part_file_size 0; shards keep the
// un-renamed `quant_model_weight-0000i-of-0000N` names, spec quirk 12, which
// MindIE-SD cannot load) and `quant_model_description_<type>.json` — tensor
// entries in write order and `model_quant_type` (the last quantized Linear's
// type) last, indent 4, no version/metadata/group_size. deq_scale is always
// float32. Types: FLOAT, W8A8 (static), per-channel W8A8_DYNAMIC, W8A8_MXFP8
// and W4A4_MXFP4; the config check refuses the others at load, naming the
// processor (mindie_format_accepts in config/quant_schemes.h), and save_linear refuses them too.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "savers/described_saver.h"

namespace lwq {

class MindieSaver : public DescribedSaver {
 public:
  // `out_dir` must exist and be empty.
  MindieSaver(std::filesystem::path out_dir, int64_t part_file_size_gb);

  void save_float(const std::string& name, const Tensor& t) override;
  void save_linear(const QuantizedLinear& q) override;
  void note_float_linear() override {}  // model_quant_type is the last quantized Linear's type
  void set_description_optional(const nlohmann::ordered_json& optional) override;
  void untie_word_embeddings() override { untie_word_embeddings_ = true; }
  void save_online_rotation(const std::string& linear, const KroneckerRotation&, int64_t) override;
  // Writes the description, renames the single weight file by type and copies
  // `*.json` / `*.py` (not `*index.json`) from `model_dir` unchanged.
  SaveSummary finish(const std::filesystem::path& model_dir) override;

 private:
  void save_state(nlohmann::json& state) const override;
  void load_state(const nlohmann::json& state) override;

  bool sharded_;
  std::string last_quantized_type_;
  bool untie_word_embeddings_ = false;
};

}  // namespace lwq
