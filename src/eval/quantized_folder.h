// A quantized output folder read from its files alone, in one of msModelSlim's
// two described formats:
//  * ascendV1 (vLLM-Ascend, MindIE LLM): the description JSON, the
//    safetensors shards and their index, and the folder's own config.json
//    (msmodelslim_v1.md §3, ascend_loaders.md §4 and §10);
//  * mindie_format (MindIE-SD, diffusion transformers): one
//    quant_model_description_<type>.json and the single
//    quant_model_weight_<type>.safetensors MindIE-SD derives from its
//    model_quant_type (msmodelslim_v1.md §3.10, multimodal.md B.3.4/B.4).
// Used by `lwquant eval`, which is thereby an independent check that the
// files mean what the spec says and hold what the serving engines read.
//
// Every check throws lwq::Error naming the file, the key or tensor, and what
// was expected; no other exception type escapes for malformed input.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "eval/deployed_linear.h"
#include "io/checkpoint.h"
#include "ops/kronecker_rotation.h"

namespace lwq {

enum class QuantFormat { AscendV1, Mindie };

class QuantizedFolder {
 public:
  // Checks what needs no float model:
  //  * folder files: quant_model_description.json and config.json present;
  //    no stray *.safetensors (engines load every one), no
  //    model.safetensors.index.json, no second *quant_model_description*.json;
  //    every tensor of every shard listed by the index;
  //  * description JSON: an object; every tensor entry a known type string;
  //    the global keys of their JSON types (model_quant_type a string, equal
  //    to the highest-priority Linear type, spec §3.8); every described
  //    tensor stored and every stored tensor described;
  //  * config.json: a JSON object without quantization_config /
  //    compression_config; its dtype decides the serving dtype;
  //  * per quantized Linear (a `<p>.weight` of a known quantized type):
  //    exactly the tensors of its type, each tagged with it (its float bias
  //    FLOAT), with the dtypes and shapes of spec §3.4 (deq_scale I64 or F32
  //    as config.json's dtype requires; packed int4 / FP4 weights; per-group
  //    scales [out, in/G] with G the description's group_size; MX uint8
  //    exponents with group_size 32; W4A8 scale_bias); no quantization
  //    parameter outside a Linear of its type; FLOAT tensors of a float dtype.
  // Values are checked by load_linear().
  //
  // QuantFormat::Mindie checks what mindie_format_saver writes and MindIE-SD
  // reads instead (spec §3.10, multimodal.md B.4): exactly one description,
  // quant_model_description_<model_quant_type lower-cased>.json (or
  // quant_model_description.json with model_quant_type FLOAT when nothing is
  // quantized), holding only tensor entries and model_quant_type, which is the
  // type of the LAST quantized Linear described; the one weight file
  // quant_model_weight_<same>.safetensors (shards are refused: MindIE-SD
  // cannot load them); both regular files of mode 0640 or stricter; only the
  // types the format stores (FLOAT, W8A8, per-channel W8A8_DYNAMIC,
  // W8A8_MXFP8, W4A4_MXFP4); deq_scale always float32; config.json optional
  // (MindIE-SD builds the model from the float checkpoint). Scales are held in
  // bfloat16, MindIE-SD's default runtime dtype. Other files are not read, as
  // MindIE-SD opens only these two (an ascendV1 output written beside it by the
  // same run may share the folder).
  static QuantizedFolder open(const std::filesystem::path& dir, QuantFormat format = QuantFormat::AscendV1);

  const std::filesystem::path& dir() const { return dir_; }
  QuantFormat format() const { return format_; }
  // The description file read (its path), for messages.
  const std::filesystem::path& description_path() const { return description_path_; }
  const std::string& model_quant_type() const { return model_quant_type_; }
  // The folder's config.json, parsed.
  const nlohmann::ordered_json& config() const { return config_; }
  // The dtype engines hold activations and scales in: BF16 for bfloat16
  // models, F16 for float16 and float32 ones (ascend_loaders.md §1).
  DType serving_dtype() const { return serving_dtype_; }
  // The description's group_size (0 when absent).
  int64_t group_size() const { return group_size_; }

  // quarot online (spec §3.3/§3.4): the rotation a serving engine applies to
  // Linear `linear`'s input (full name), from metadata.quarot and its
  // `.heads_rotation` / `.kronecker_rotation_m/_n` tensors (checked at open:
  // F32, square, orthogonal); empty when the Linear has none.
  KroneckerRotation input_rotation(const std::string& linear) const;
  // The names of those tensors (none when the Linear has no online rotation).
  const std::vector<std::string>& input_rotation_tensors(const std::string& linear) const;
  // The type string of a module prefix ("FLOAT" when only FLOAT tensors, or
  // absent, exist under `prefix.weight`).
  std::string linear_type(const std::string& prefix) const;
  // The description's type of a tensor ("" when not described).
  std::string type_of(const std::string& tensor) const;
  // Prefixes of the quantized Linears, in description order.
  const std::vector<std::string>& quantized_linears() const { return linears_; }
  bool contains(const std::string& tensor) const { return ckpt_.contains(tensor); }
  std::vector<std::string> tensor_names() const { return ckpt_.tensor_names(); }
  const TensorInfo& info(const std::string& tensor) const { return ckpt_.info(tensor); }
  Tensor read(const std::string& tensor) const { return ckpt_.read(tensor); }
  // The folder's tensors as a checkpoint (row reads of a large FLOAT table).
  const Checkpoint& checkpoint() const { return ckpt_; }

  // Every suffix a Linear of `type` may store besides its float `.bias`
  // (required ones first); empty for FLOAT and unknown types.
  static const std::vector<std::string>& parameter_suffixes(const std::string& type);

  // A quantized Linear's tensors with every value checked: scales positive
  // and finite (input_scale also in the serving dtype, with a finite
  // reciprocal there), offsets in range, int64 deq_scale with zero upper
  // halves, deq_scale = input_scale·weight_scale where both are stored, and
  // (with the weight) quant_bias = round(bias/deq_scale − input_offset·ΣWq).
  // `with_weight` false leaves `weight` empty and skips the quant_bias check
  // (cheap: only per-channel tensors are read).
  DeployedLinear load_linear(const std::string& prefix, bool with_weight = true) const;

 private:
  QuantizedFolder(std::filesystem::path dir, Checkpoint ckpt) : dir_(std::move(dir)), ckpt_(std::move(ckpt)) {}
  std::filesystem::path dir_;
  QuantFormat format_ = QuantFormat::AscendV1;
  std::filesystem::path description_path_;
  Checkpoint ckpt_;
  std::map<std::string, std::string> types_;
  std::vector<std::string> linears_;
  std::string model_quant_type_;
  nlohmann::ordered_json config_;
  DType serving_dtype_ = DType::F16;
  int64_t group_size_ = 0;
  std::map<std::string, std::vector<std::string>> online_rotations_;  // Linear → its rotation tensors

  int64_t linear_in_features(const std::string& linear) const;  // of the stored weight
};

// Opens `dir` and loads every quantized Linear with all value checks: every
// check of the format that needs no float model. Throws lwq::Error for any
// malformed folder (std::bad_alloc aside), never another exception: the entry
// point for fuzzing the quantized-folder reader.
QuantizedFolder parse_quantized_folder(const std::filesystem::path& dir, QuantFormat format = QuantFormat::AscendV1);

// A float tensor of the model as the quantized folder stores it: present,
// tagged FLOAT, of a float dtype (open()) and of the float model's `shape`;
// throws naming the tensor otherwise.
const TensorInfo& check_float_tensor(const QuantizedFolder& q, const std::string& name, const Shape& shape);
// The same tensor read as f32 (checked finite).
std::vector<float> read_float_tensor(const QuantizedFolder& q, const std::string& name, const Shape& shape);

}  // namespace lwq
