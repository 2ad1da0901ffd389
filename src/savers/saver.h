// What the runner writes through: one interface over the output formats of
// `spec.save` (ascendv1_saver, mindie_format_saver), and a list that fans one
// stream of tensors out to several of them, so several savers in one config
// write several outputs from one run. Every saver is a thin view over the one
// internal record of a quantized Linear (QuantizedLinear); the tensors each
// type becomes are listed once, in linear_tensors.h.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors_writer.h"
#include "ops/kronecker_rotation.h"
#include "savers/quantized_linear.h"
#include "tensor/tensor.h"

namespace lwq {

struct SaverConfig;

struct SaveSummary {
  size_t tensors = 0;
  uint64_t bytes = 0;
  size_t files = 0;
  std::string model_quant_type;
};

class Saver {
 public:
  virtual ~Saver() = default;

  virtual void save_float(const std::string& name, const Tensor& t) = 0;
  // The same for a tensor too big to hold whole (embeddings, heads): its
  // rows come from `source` a block at a time.
  virtual void save_float_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source) = 0;
  virtual void save_linear(const QuantizedLinear& q) = 0;
  // A Linear left in float (its parameters go through save_float).
  virtual void note_float_linear() = 0;

  // quarot's description entry and untied config.json (ascendv1 only; the
  // config check refuses quarot's extra info for the other formats).
  virtual void set_description_optional(const nlohmann::ordered_json& optional) = 0;
  virtual void untie_word_embeddings() = 0;
  // quarot `online` (spec §3.3, §3.4): the input rotation of Linear `linear`
  // (full name) written as `<linear>.heads_rotation` (an identity right
  // factor) or `<linear>.kronecker_rotation_m` / `_n`, float32, without
  // description entries, and `linear` listed in the description's
  // metadata.quarot with max_tp_size. Call right after the Linear's tensors
  // (ascendv1 only; the config check refuses online rotation for the others).
  virtual void save_online_rotation(const std::string& linear, const KroneckerRotation& r, int64_t max_tp_size) = 0;

  // Closes the weight files, writes the description and copies the model's
  // small files from `model_dir`.
  virtual SaveSummary finish(const std::filesystem::path& model_dir) = 0;

  // Resume support: everything written so far made durable and the saver's
  // state as JSON; resume() restores it into a fresh saver over the same
  // folder. Files stay in place when a saver is destroyed unfinished.
  virtual nlohmann::json checkpoint() = 0;
  virtual void resume(const nlohmann::json& state) = 0;
  virtual void keep_files_for_resume() = 0;
  // The O_DIRECT write size of the shards written from now on (SafetensorsWriterOptions).
  virtual void set_write_stage_bytes(uint64_t) {}
};

// The savers of `spec.save`, in order, writing into `out_dir` (which must
// exist and be empty); `model_dtype` is the checkpoint's float dtype. An
// empty list means the default ascendv1_saver (part_file_size 4), as the
// runner has always written. More than one: a saver that fans out.
std::unique_ptr<Saver> make_saver(const std::vector<SaverConfig>& configs, const std::filesystem::path& out_dir,
                                  DType model_dtype);

}  // namespace lwq
