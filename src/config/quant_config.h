// The modelslim_v1 practice schema (msModelSlim YAML configs, spec §1) as
// plain structs, and the parser that validates a YAML file into them.
//
// lwquant accepts msModelSlim practice files unchanged. Deliberate
// differences from msModelSlim (all documented in the messages themselves):
//  * unknown keys inside spec / processors / qconfig / save entries produce a
//    warning in ServiceConfig::warnings (msModelSlim ignores them silently);
//  * a duplicate mapping key is resolved last-wins like PyYAML, with a warning;
//  * only the schemes in quant_schemes.h are accepted; other valid msModelSlim
//    combinations (pairs without an IR) are rejected up front instead of
//    failing late at deploy; dual-scale MXFP4 needs equal act/weight
//    dual_block_size, a multiple of 32 (docs/design.md);
//  * W8A16 with asymmetric minmax weights is accepted (msModelSlim registers
//    asymmetric per-channel weights only for gptq), with a portability warning;
//  * W8A8_DYNAMIC per-group weights must be symmetric (msModelSlim exports
//    zero offsets for asymmetric ones, spec §9 quirk 5: wrong weights);
//  * W4A4_DYNAMIC's activation is int4/per_token/sym/minmax, which the IR
//    table names but msModelSlim's registry lacks.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lwq {

enum class QDtype { Int8, Int4, Fp8E4M3, MxFp8, MxFp4, Float };
enum class QScope { PerTensor, PerChannel, PerGroup, PerBlock, PerToken, PdMix, PerHead, DualScale };

// YAML spellings ("int8", "per_token", ...).
std::string_view to_string(QDtype d);
std::string_view to_string(QScope s);
std::optional<QDtype> parse_qdtype(std::string_view s);
std::optional<QScope> parse_qscope(std::string_view s);
std::string qdtype_names();  // "int8, int4, ..." for error messages
std::string qscope_names();

struct QConfig {
  QDtype dtype = QDtype::Float;
  QScope scope = QScope::PerTensor;
  bool symmetric = true;
  std::string method = "none";
  nlohmann::json ext = nlohmann::json::object();  // free-form quantizer options

  bool operator==(const QConfig&) const = default;
};

// "int8/per_token/sym/minmax" — how messages name a QConfig.
std::string describe(const QConfig& q);

struct LinearQConfig {
  QConfig act;  // default: float/per_tensor/sym/none (weight-only)
  QConfig weight;

  bool operator==(const LinearQConfig&) const = default;
};
// "act int8/per_tensor/asym/minmax + weight int8/per_channel/sym/minmax"
std::string describe(const LinearQConfig& q);

// iter_smooth / smooth_quant / flex_smooth_quant fields (spec §1.6), with
// each type's defaults filled in by the parser.
struct SmoothProcessorConfig {
  std::optional<double> alpha;  // iter_smooth 0.9, smooth_quant 0.5; flex: nullopt = grid search
  std::optional<double> beta;   // flex_smooth_quant only; nullopt = grid search
  double scale_min = 1e-5;      // iter_smooth only (> 0)
  bool symmetric = true;        // iter_smooth, smooth_quant
  std::vector<std::string> enable_subgraph_type{"norm-linear", "linear-linear", "ov", "up-down"};

  bool operator==(const SmoothProcessorConfig&) const = default;
};

// quarot fields (spec §1.6); models/quarot.h says what online rotation does.
struct QuarotProcessorConfig {
  bool online = false;
  int64_t block_size = -1;  // -1 or a power of two
  std::vector<int64_t> down_proj_online_layers;  // needs online; indices checked against the model at setup
  int64_t max_tp_size = 4;  // power of two ≥ 1; the block of online rotations, written in metadata
  bool export_extra_info = true;

  bool operator==(const QuarotProcessorConfig&) const = default;
};

struct ProcessorConfig {
  std::string type;       // "linear_quant", "group", "iter_smooth", "smooth_quant", "flex_smooth_quant", "quarot"
  std::string yaml_path;  // "spec.process[1]", "spec.process[1].configs[0]"
  LinearQConfig qconfig;  // linear_quant only
  std::vector<std::string> include{"*"};  // smoothing: a YAML null means all
  std::vector<std::string> exclude;
  std::vector<ProcessorConfig> configs;  // group children, in order
  SmoothProcessorConfig smooth;          // the smoothing types only
  QuarotProcessorConfig quarot;          // quarot only

  bool is_smoothing() const {
    return type == "iter_smooth" || type == "smooth_quant" || type == "flex_smooth_quant";
  }
};

struct SaverConfig {
  std::string type;            // "ascendv1_saver" or "mindie_format_saver"
  int64_t part_file_size = 4;  // GiB per shard; 0 = one file
  std::string yaml_path;
};

enum class RunnerType { Auto, LayerWise, ModelWise, DpLayerWise };
std::string_view to_string(RunnerType r);

// `metadata` (spec §1.3): used only for best-practice selection.
struct PracticeLabel {
  std::optional<int64_t> w_bit, a_bit, fa_bit;
  bool is_sparse = false;
  bool kv_cache = false;
  bool fa_quant = false;
};
struct PracticeMetadata {
  std::string config_id = "Unknown";
  double score = 100.0;
  PracticeLabel label;
  std::vector<std::string> verified_model_types;
  std::map<std::string, std::vector<std::vector<std::string>>> verified_tags;
};

// spec.multimodal_sd_config of apiversion multimodal_sd_modelslim_v1 (spec
// §1.10): how msModelSlim dumps calibration data from its float pipeline and
// the pipeline's inference arguments. lwquant never runs the pipeline (data
// comes from tools/capture_wan_inputs.py through --calib_data); the values
// are validated and reported, not acted on.
struct MultimodalSdConfig {
  bool enable_dump = true;
  std::string capture_mode = "args";
  std::string dump_data_dir;
  std::string inference_key;  // "inference_config", "model_config" (legacy) or "" when neither is given
  nlohmann::ordered_json inference = nlohmann::ordered_json::object();
};

struct ServiceConfig {
  std::string apiversion;  // modelslim_v1, multimodal_vlm_modelslim_v1 or multimodal_sd_modelslim_v1
  PracticeMetadata metadata;
  RunnerType runner = RunnerType::Auto;
  std::vector<ProcessorConfig> process;
  std::vector<SaverConfig> save;
  std::string dataset = "mix_calib.jsonl";
  std::string default_text = "Describe this image in detail.";  // multimodal_vlm_modelslim_v1
  std::optional<MultimodalSdConfig> multimodal_sd;                // multimodal_sd_modelslim_v1
  std::vector<std::string> warnings;  // unknown keys etc., each naming file and YAML path
};

// Reserved for parse options (the outlier-suppression processors are now run
// by the layer-wise runner and always accepted).
struct ServiceConfigOptions {};

// Validates a practice document. `source_name` (usually the file path) prefixes
// every error and warning. Throws lwq::Error on any schema violation.
ServiceConfig parse_service_config(const std::string& yaml_text, const std::string& source_name,
                                   const ServiceConfigOptions& options = {});
ServiceConfig load_service_config(const std::filesystem::path& yaml_file, const ServiceConfigOptions& options = {});

// True when the processor (a group: every child) needs no calibration forward:
// linear_quant by its quantizers, quarot always, smoothing never.
bool processor_is_data_free(const ProcessorConfig& p);

// The export type a (act, weight) pair deploys as (spec §1.6.1 table):
// "W8A8", "W8A8_DYNAMIC", "W8A16", ... Throws for pairs with no IR.
std::string export_type_of(const LinearQConfig& q);
// True when neither quantizer needs a calibration forward (W8A8_DYNAMIC and
// W8A16 with minmax); false for static W8A8.
bool is_data_free(const LinearQConfig& q);

}  // namespace lwq
