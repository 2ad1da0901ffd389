#include "eval/quantized_folder.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <system_error>
#include <tuple>

#include "io/json_strict.h"
#include "ops/kronecker_rotation.h"
#include "quant/fp_formats.h"
#include "quant/int4_pack.h"
#include "quant/w8a8_export.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

constexpr const char* kDescription = "quant_model_description.json";
constexpr const char* kIndex = "quant_model_weights.safetensors.index.json";
constexpr const char* kSingle = "quant_model_weights.safetensors";

// The types lwquant eval has deployed arithmetic for that take part in
// model_quant_type, in msModelSlim's priority order (spec §3.8; W16A16S of
// the full list is not known here).
const std::vector<std::string> kKnownTypes = {"FLOAT",      "W8A16",     "W8A8_DYNAMIC", "W8A8_MIX",   "W8A8",
                                              "WFP8AFP8_DYNAMIC", "W8A8_MXFP8", "W4A8_MXFP", "W4A4_DYNAMIC",
                                              "W4A4_MXFP4", "W4A4_MXFP4_DUALSCALE"};
// Known too, but outside the priority list: it never changes model_quant_type.
constexpr const char* kUnrankedType = "W4A8_DYNAMIC";

int priority_of(const std::string& type) {
  for (size_t i = 0; i < kKnownTypes.size(); ++i)
    if (kKnownTypes[i] == type) return static_cast<int>(i);
  return -1;
}

bool is_known_type(const std::string& type) { return priority_of(type) >= 0 || type == kUnrankedType; }

// What mindie_format_saver stores (spec §3.10; mindie_format_accepts in
// config/quant_schemes.h, which eval does not link).
const std::vector<std::string> kMindieTypes = {"FLOAT", "W8A8", "W8A8_DYNAMIC", "W8A8_MXFP8", "W4A4_MXFP4"};
bool is_mindie_type(const std::string& type) {
  return std::find(kMindieTypes.begin(), kMindieTypes.end(), type) != kMindieTypes.end();
}

// Every suffix a quantization parameter can have (spec §3.4).
const std::vector<std::string> kParameterSuffixes = {".weight",       ".quant_bias",    ".input_scale", ".input_offset",
                                                     ".deq_scale",    ".weight_scale",  ".weight_offset",
                                                     ".scale_bias",   ".weight_dual_scale"};

// Static int8 activations with input_scale / quant_bias / deq_scale: W8A8, and
// W8A8_MIX, which adds the dynamic path's weight_scale / weight_offset.
bool is_static_w8a8(const std::string& type) { return type == "W8A8" || type == "W8A8_MIX"; }

bool is_dualscale(const std::string& type) { return type == "W4A4_MXFP4_DUALSCALE"; }
bool is_mx(const std::string& type) {
  return type == "W8A8_MXFP8" || type == "W4A8_MXFP" || type == "W4A4_MXFP4" || is_dualscale(type);
}
bool is_fp4(const std::string& type) { return type == "W4A8_MXFP" || type == "W4A4_MXFP4" || is_dualscale(type); }

// How many of parameter_suffixes(type) are required (the rest are optional).
size_t required_count(const std::string& type) {
  if (type == "W8A8") return 5;
  if (type == "W8A8_MIX") return 7;
  if (type == "W4A8_DYNAMIC") return 4;
  if (is_dualscale(type)) return 3;
  return is_mx(type) ? 2 : 3;
}

// The stored dtype of `<p>.weight` (spec §3.4).
DType weight_dtype(const std::string& type) {
  if (type == "WFP8AFP8_DYNAMIC" || type == "W8A8_MXFP8") return DType::F8_E4M3;
  if (is_fp4(type)) return DType::U8;
  return DType::I8;
}

// [out, in] of the Linear from its stored weight shape: W4A8 packs two
// output channels per byte ([out/2, in]), FP4 two inputs ([out, in/2]).
std::pair<int64_t, int64_t> logical_shape(const std::string& type, const Shape& s) {
  if (type == "W4A8_DYNAMIC") return {2 * s[0], s[1]};
  if (is_fp4(type)) return {s[0], 2 * s[1]};
  return {s[0], s[1]};
}


// A JSON value for a message: its JSON text, shortened.
std::string brief(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

bool regular_file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// metadata.quarot of an online-rotated model (spec §3.3): {"max_tp_size": T,
// "heads_rotation": {"layers": [...]}, "kronecker_rotation": {"layers":
// [...]}}, the layers being full Linear names. Returns each Linear's rotation
// tensors (spec §3.4).
std::map<std::string, std::vector<std::string>> online_rotation_layers(const Json& q, const std::string& where) {
  const std::string at = where + ": metadata.quarot";
  if (!q.is_object()) fail("{} must be a JSON object, got {}", at, brief(q));
  const Json* tp = q.contains("max_tp_size") ? &q.at("max_tp_size") : nullptr;
  if (!tp || !tp->is_number_integer() || tp->get<int64_t>() < 1 || (tp->get<int64_t>() & (tp->get<int64_t>() - 1)))
    fail("{}.max_tp_size must be a power of two >= 1, got {}", at, tp ? brief(*tp) : "nothing");
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [key, suffixes] :
       {std::pair<std::string, std::vector<std::string>>{"heads_rotation", {".heads_rotation"}},
        {"kronecker_rotation", {".kronecker_rotation_m", ".kronecker_rotation_n"}}}) {
    if (!q.contains(key)) fail("{}.{} is missing (expected {{\"layers\": [...]}})", at, key);
    const Json& v = q.at(key);
    if (!v.is_object() || !v.contains("layers") || !v.at("layers").is_array())
      fail("{}.{} must be an object with a 'layers' list, got {}", at, key, brief(v));
    for (const Json& l : v.at("layers")) {
      if (!l.is_string()) fail("{}.{}.layers must hold Linear names, got {}", at, key, brief(l));
      const std::string name = l.get<std::string>();
      if (out.count(name)) fail("{}: Linear '{}' is listed twice (one online rotation per Linear)", at, name);
      for (const auto& s : suffixes) out[name].push_back(name + s);
    }
  }
  for (const auto& [key, value] : q.items())
    if (key != "max_tp_size" && key != "heads_rotation" && key != "kronecker_rotation")
      fail("{}: unknown key '{}' (expected max_tp_size, heads_rotation, kronecker_rotation)", at, key);
  return out;
}

// An online rotation tensor: float32, square, orthogonal (a serving engine
// multiplies activations by it; anything else changes the model).
void check_rotation_tensor(const Checkpoint& ckpt, const std::string& name) {
  const TensorInfo& info = ckpt.info(name);
  if (info.dtype != DType::F32 || info.shape.size() != 2 || info.shape[0] != info.shape[1] || info.shape[0] < 1)
    fail("tensor '{}' must be an F32 square matrix (an online rotation), found {} {}", name, dtype_name(info.dtype),
         shape_str(info.shape));
  const Tensor t = ckpt.read(name);
  const double e = orthogonality_error(t.data<float>(), info.shape[0]);
  if (!(e <= 1e-4))
    fail("tensor '{}' is not orthogonal (max |QᵀQ − I| = {:.3g}): an online rotation must keep the Linear's function",
         name, e);
}

std::string hex64(int64_t v) { return fmt::format("0x{:016x}", static_cast<uint64_t>(v)); }

// Half the spacing of the serving dtype's significand relative to a value's
// magnitude (unit roundoff): 2^-8 for bfloat16, 2^-11 for float16, 2^-24 for float32.
double unit_roundoff(DType serving) {
  switch (serving) {
    case DType::BF16: return std::ldexp(1.0, -8);
    case DType::F16: return std::ldexp(1.0, -11);
    default: return std::ldexp(1.0, -24);
  }
}

std::string serving_name(DType t) {
  switch (t) {
    case DType::BF16: return "bfloat16";
    case DType::F16: return "float16";
    default: return "float32";
  }
}

// The model dtype config.json declares: `dtype` (transformers 5) or
// `torch_dtype`, at the top level or else in text_config; float32 when absent
// (transformers' default). Sets `source` to a phrase for messages.
DType config_model_dtype(const Json& config, const std::string& where, std::string& source) {
  const Json* found = nullptr;
  std::string key;
  for (const Json* obj : {&config, config.contains("text_config") ? &config.at("text_config") : nullptr}) {
    if (!obj || !obj->is_object()) continue;
    for (const char* k : {"dtype", "torch_dtype"}) {
      auto it = obj->find(k);
      if (it != obj->end() && !it->is_null()) {
        found = &*it;
        key = obj == &config ? k : std::string("text_config.") + k;
        break;
      }
    }
    if (found) break;
  }
  if (!found) {
    source = "no dtype (float32)";
    return DType::F32;
  }
  if (!found->is_string()) fail("{}: key '{}' must be a string, got {}", where, key, brief(*found));
  std::string s = found->get<std::string>();
  source = fmt::format("{} \"{}\"", key, s);
  if (s.starts_with("torch.")) s = s.substr(6);
  if (s == "float32" || s == "float") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16" || s == "half") return DType::F16;
  fail("{}: key '{}' = \"{}\" is not a model dtype engines serve (float32, float16, bfloat16)", where, key, s);
}

void check_shape_dtype(const TensorInfo& info, const std::string& linear_type, DType dtype, const Shape& shape,
                       const std::string& why = "") {
  if (info.dtype != dtype || info.shape != shape)
    fail("tensor '{}' of the {} Linear must be {} {}, found {} {}{}", info.name, linear_type, dtype_name(dtype),
         shape_str(shape), dtype_name(info.dtype), shape_str(info.shape), why);
}

std::vector<float> read_f32(const Checkpoint& ckpt, const std::string& name) { return to_f32(ckpt.read(name)); }

// weight_dual_scale: F32 [out, D, 1] with D dual blocks per row. The block
// size is not stored anywhere, so it must follow from D: one block covering
// the row (D = 1), or in/D inputs, a multiple of the 32-input MX block.
void check_dual_scale_shape(const TensorInfo& info, const std::string& type, int64_t out, int64_t in) {
  const Shape& s = info.shape;
  const int64_t d = s.size() == 3 ? s[1] : 0;
  if (info.dtype != DType::F32 || s.size() != 3 || s[0] != out || s[2] != 1 || d < 1)
    fail("tensor '{}' of the {} Linear must be F32 [{}, dual blocks, 1], found {} {}", info.name, type, out,
         dtype_name(info.dtype), shape_str(s));
  if (d > 1 && (in % d != 0 || (in / d) % 32 != 0))
    fail("tensor '{}' holds {} dual blocks for {} inputs: the dual block size must be in/{} and a multiple of 32 "
         "(the MX block), or one block must cover the row",
         info.name, d, in, d);
}

// A scale engines divide or multiply by: positive and finite.
void check_scales(const std::string& name, std::span<const float> v) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!(std::isfinite(v[i]) && v[i] > 0.0f))
      fail("tensor '{}' entry {} is {} (float32 bits 0x{:08x}): expected a positive finite scale", name, i, v[i],
           bits_from_f32(v[i]));
}

// No file beside the shards that engines reading the whole folder would load
// too, and no second description.
void check_ascend_folder_files(const fs::path& dir, const Checkpoint& ckpt) {
  std::error_code ec;
  std::set<std::string> shards;
  for (const auto& f : ckpt.files()) shards.insert(f.path().filename().string());
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!regular_file_exists(it->path())) continue;
    if (name.ends_with(".safetensors") && !shards.count(name))
      fail("{}: stray weights file {}: vLLM and MindIE load every *.safetensors of the folder (expected only {})",
           dir.string(), name, fmt::join(shards, ", "));
    if (name == "model.safetensors.index.json")
      fail("{}: model.safetensors.index.json must be absent: vLLM would load only the shards it names",
           dir.string());
    if (name != kDescription && name.find("quant_model_description") != std::string::npos && name.ends_with(".json"))
      fail("{}: {} beside {}: SGLang and MindIE refuse several description files", dir.string(), name, kDescription);
  }
  if (ec) fail("cannot list quantized folder {}: {}", dir.string(), ec.message());
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// MindIE-SD's check_file_safety (multimodal.md B.4): a regular file, not a
// symlink, with no permission beyond 0640.
void check_mindie_file(const fs::path& p, const std::string& what) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(p, ec);
  if (ec || !fs::exists(st)) fail("{}: {} is missing", p.string(), what);
  if (fs::is_symlink(st) || !fs::is_regular_file(st))
    fail("{}: {} must be a regular file, not a symlink (MindIE-SD refuses it, multimodal.md B.4)", p.string(), what);
  const auto mode = static_cast<unsigned>(st.permissions()) & 0777u;
  if ((mode & ~0640u) != 0)
    fail("{}: {} has mode {:04o}; MindIE-SD refuses description and weight files with permissions beyond 0640 "
         "(multimodal.md B.4)",
         p.string(), what, mode);
}

// The quant_model_description_<type>.json files of `dir`, sorted.
std::vector<std::string> typed_descriptions(const fs::path& dir) {
  std::error_code ec;
  std::vector<std::string> typed;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.starts_with("quant_model_description_") && name.ends_with(".json")) typed.push_back(name);
  }
  if (ec) fail("cannot list quantized folder {}: {}", dir.string(), ec.message());
  std::sort(typed.begin(), typed.end());
  return typed;
}

// The one mindie_format description of `dir`: quant_model_description_<type>.json,
// or quant_model_description.json when nothing was quantized.
fs::path mindie_description(const fs::path& dir) {
  const std::vector<std::string> typed = typed_descriptions(dir);
  if (typed.size() > 1)
    fail("{}: several mindie_format descriptions ({}): MindIE-SD is given one, and eval cannot tell which",
         dir.string(), fmt::join(typed, ", "));
  const fs::path p = typed.empty() ? dir / kDescription : dir / typed.front();
  if (typed.empty() && !regular_file_exists(p))
    fail("{} is not a mindie_format folder: no quant_model_description_<type>.json (spec §3.10)", dir.string());
  check_mindie_file(p, "the description");
  return p;
}

// The weight file MindIE-SD derives from the description's model_quant_type
// (multimodal.md B.4), after checking the description's own name agrees with it.
fs::path mindie_weights(const fs::path& dir, const fs::path& desc, const std::string& model_quant_type) {
  const std::string type = model_quant_type == "FLOAT" ? "" : lower(model_quant_type);
  const std::string want = type.empty() ? kDescription : "quant_model_description_" + type + ".json";
  if (desc.filename() != want)
    fail("{}: model_quant_type is \"{}\" but the file is named {} (mindie_format_saver names it {}, and MindIE-SD "
         "derives the weight file name from model_quant_type, spec §3.10)",
         desc.string(), model_quant_type, desc.filename().string(), want);
  if (regular_file_exists(dir / "quant_model_weight.safetensors.index.json"))
    fail("{}: sharded weights (quant_model_weight.safetensors.index.json, part_file_size > 0): MindIE-SD loads "
         "only one quant_model_weight_<type>.safetensors; quantize with part_file_size: 0",
         dir.string());
  const fs::path weights = dir / (type.empty() ? "quant_model_weight.safetensors"
                                                : "quant_model_weight_" + type + ".safetensors");
  check_mindie_file(weights, fmt::format("the weight file MindIE-SD derives from model_quant_type \"{}\"",
                                         model_quant_type));
  return weights;
}

// mindie_format_saver's model_quant_type: the type of the last quantized
// Linear it wrote (spec §3.10), "FLOAT" when none; MindIE-SD picks its layer
// class and weight file by it.
void check_mindie_model_quant_type(const QuantizedFolder& folder, const std::string& desc_where) {
  const auto& linears = folder.quantized_linears();
  const std::string expected = linears.empty() ? "FLOAT" : folder.linear_type(linears.back());
  if (folder.model_quant_type() != expected)
    fail("{}: model_quant_type is \"{}\" but the last quantized Linear described{} is {} (mindie_format_saver "
         "writes the last quantized Linear's type, spec §3.10; MindIE-SD takes it as the model's quantization mode)",
         desc_where, folder.model_quant_type(), linears.empty() ? "" : " ('" + linears.back() + "')", expected);
}

}  // namespace

const std::vector<std::string>& QuantizedFolder::parameter_suffixes(const std::string& type) {
  // W8A8 (spec §3.4, ascend_loaders §4.1): no weight_scale is written, but
  // vLLM-Ascend has [O,1] parameters for weight_scale/weight_offset and loads
  // them when present (the W8A8_MIX layout), so they are allowed.
  static const std::vector<std::string> w8a8 = {".weight",    ".quant_bias",   ".input_scale",  ".input_offset",
                                                ".deq_scale", ".weight_scale", ".weight_offset"};
  static const std::vector<std::string> scaled = {".weight", ".weight_scale", ".weight_offset"};
  static const std::vector<std::string> w4a8 = {".weight", ".weight_scale", ".weight_offset", ".scale_bias"};
  static const std::vector<std::string> mx = {".weight", ".weight_scale"};
  static const std::vector<std::string> dual = {".weight", ".weight_scale", ".weight_dual_scale"};
  static const std::vector<std::string> none;
  if (is_static_w8a8(type)) return w8a8;
  if (is_dualscale(type)) return dual;
  if (type == "W4A8_DYNAMIC") return w4a8;
  if (is_mx(type)) return mx;
  if (is_known_type(type) && type != "FLOAT") return scaled;
  return none;
}

QuantizedFolder QuantizedFolder::open(const fs::path& dir, QuantFormat format) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail("quantized folder {} does not exist", dir.string());
  const bool mindie = format == QuantFormat::Mindie;
  const fs::path desc_path = mindie ? mindie_description(dir) : dir / kDescription;
  const std::string desc_where = desc_path.string();
  if (!mindie && !regular_file_exists(desc_path))
    fail("{} is not an ascendV1 folder: quant_model_description.json is missing{}", dir.string(),
         !typed_descriptions(dir).empty() ? " (it holds a mindie_format_saver output, which eval scores for Wan2.1 DiTs)"
                                     : "");
  const fs::path config_path = dir / "config.json";
  const bool has_config = regular_file_exists(config_path);
  if (!mindie && !has_config)
    fail("{}: config.json is missing (engines build the model from the quantized folder's own config.json)",
         dir.string());

  // ---- description JSON: types of every value ----
  Json desc = parse_json_strict(read_text_file(desc_path), desc_where);
  if (!desc.is_object()) fail("{} must be a JSON object, got {}", desc_where, brief(desc));
  std::vector<std::pair<std::string, std::string>> entries;  // tensor entries, file order
  std::map<std::string, std::vector<std::string>> online;     // quarot online: Linear → its rotation tensors
  const Json* model_quant_type = nullptr;
  int64_t group_size = 0;
  for (const auto& [key, value] : desc.items()) {
    if (mindie && (key == "version" || key == "metadata" || key == "optional" || key == "group_size"))
      fail("{}: key '{}' does not belong in a mindie_format description, which holds only tensor entries and "
           "model_quant_type (spec §3.10)",
           desc_where, key);
    if (key == "version" || key == "model_quant_type") {
      if (!value.is_string()) fail("{}: key '{}' must be a string, got {}", desc_where, key, brief(value));
      if (key == "model_quant_type") model_quant_type = &value;
      continue;
    }
    if (key == "metadata" || key == "optional") {
      if (!value.is_object()) fail("{}: key '{}' must be a JSON object, got {}", desc_where, key, brief(value));
      if (key == "metadata" && value.contains("quarot")) online = online_rotation_layers(value.at("quarot"), desc_where);
      continue;
    }
    if (key == "group_size") {
      if (!value.is_number_integer() || (!value.is_number_unsigned() && value.get<int64_t>() < 0))
        fail("{}: key 'group_size' must be a non-negative integer, got {}", desc_where, brief(value));
      group_size = value.get<int64_t>();
      continue;
    }
    if (key == "kv_cache_type" || key == "kv_quant_type" || key == "fa_quant_type" || key.ends_with(".quant_type"))
      fail("{}: key '{}' enables KV-cache or attention quantization, which lwquant eval does not compute "
           "(its scores would not be the deployed model's)",
           desc_where, key);
    if (!value.is_string())
      fail("{}: key '{}' must be a type string (\"FLOAT\", \"W8A8\", ...), got {}", desc_where, key, brief(value));
    const std::string& type = value.get_ref<const std::string&>();
    if (!is_known_type(type))
      fail("{}: tensor '{}' has type '{}', which lwquant eval does not know (known: {}, {})", desc_where, key, type,
           fmt::join(kKnownTypes, ", "), kUnrankedType);
    if (mindie && !is_mindie_type(type))
      fail("{}: tensor '{}' has type {}, which mindie_format_saver does not store (it writes {}; spec §3.10)",
           desc_where, key, type, fmt::join(kMindieTypes, ", "));
    entries.emplace_back(key, type);
  }
  if (!model_quant_type) fail("{}: key 'model_quant_type' is missing (expected a string, spec §3.3)", desc_where);
  const fs::path weights = mindie ? mindie_weights(dir, desc_path, model_quant_type->get<std::string>())
                           : regular_file_exists(dir / kIndex) ? dir / kIndex
                                                               : dir / kSingle;
  if (!mindie && !regular_file_exists(weights)) fail("{}: neither {} nor its index exists", dir.string(), kSingle);

  // ---- config.json ----
  const std::string config_where = config_path.string();
  Json config = has_config ? parse_json_strict(read_text_file(config_path), config_where) : Json::object();
  if (!config.is_object()) fail("{} must be a JSON object, got {}", config_where, brief(config));
  for (const Json* obj : {&config, config.contains("text_config") ? &config.at("text_config") : nullptr}) {
    if (mindie || !obj || !obj->is_object()) continue;  // MindIE-SD does not read the folder's config.json
    for (const char* k : {"quantization_config", "compression_config"})
      if (obj->contains(k))
        fail("{}: key '{}'{} must be absent: vLLM and SGLang use it instead of quant_model_description.json "
             "(ascend_loaders.md §1)",
             config_where, k, obj == &config ? "" : " in text_config");
  }
  std::string dtype_source = "mindie_format (MindIE-SD computes in bfloat16)";
  const DType model_dtype = mindie ? DType::BF16 : config_model_dtype(config, config_where, dtype_source);

  QuantizedFolder folder(dir, Checkpoint::open(weights));
  folder.format_ = format;
  folder.description_path_ = desc_path;
  folder.config_ = std::move(config);
  folder.serving_dtype_ = serving_dtype_of(model_dtype);
  folder.model_quant_type_ = model_quant_type->get<std::string>();
  folder.group_size_ = group_size;
  const Checkpoint& ckpt = folder.ckpt_;

  // ---- files engines would also read ----
  // MindIE-SD opens only the two files it is given or derives (checked by
  // mindie_description / mindie_weights); vLLM and MindIE LLM read the folder.
  if (!mindie) check_ascend_folder_files(dir, ckpt);
  // Engines read the shards, not the index: every tensor of a shard counts.
  for (const auto& f : ckpt.files())
    for (const auto& t : f.tensors()) {
      if (!ckpt.contains(t.name))
        fail("tensor '{}' is stored in {} but not listed in {}: engines load every tensor of every shard", t.name,
             f.path().filename().string(), weights.filename().string());
      if (ckpt.file_of(t.name) != f.path())
        fail("tensor '{}' is stored in both {} and {}", t.name, f.path().filename().string(),
             ckpt.file_of(t.name).filename().string());
    }

  // ---- description ↔ tensors ----
  for (const auto& [name, type] : entries) {
    if (!ckpt.contains(name)) fail("{} lists tensor '{}', which is not in the safetensors files", desc_where, name);
    folder.types_[name] = type;
  }
  std::set<std::string> rotation_tensors;
  for (const auto& [linear, tensors] : online) {
    if (!folder.types_.count(linear + ".weight"))
      fail("{}: metadata.quarot lists '{}', but no tensor '{}.weight' is described", desc_where, linear, linear);
    for (const auto& t : tensors) {
      if (!ckpt.contains(t))
        fail("{}: metadata.quarot lists Linear '{}', but its online rotation '{}' is not in the safetensors files",
             desc_where, linear, t);
      if (folder.types_.count(t))
        fail("{}: tensor '{}' is an online rotation, which msModelSlim writes without a description entry (spec §3.4)",
             desc_where, t);
      check_rotation_tensor(ckpt, t);
      rotation_tensors.insert(t);
    }
    folder.online_rotations_[linear] = tensors;
  }
  for (const auto& name : ckpt.tensor_names())
    if (!folder.types_.count(name) && !rotation_tensors.count(name))
      fail("tensor '{}' in {} is not listed in {}{}", name, dir.string(), desc_where,
           name.ends_with("_rotation") || name.ends_with("_rotation_m") || name.ends_with("_rotation_n")
               ? " (nor is its Linear in metadata.quarot's online rotation layers)"
               : "");

  // ---- quantized Linears: their tensors, tags, dtypes and shapes ----
  int highest = priority_of("FLOAT");
  for (const auto& [name, type] : entries)
    if (type != "FLOAT" && name.ends_with(".weight")) {
      folder.linears_.push_back(name.substr(0, name.size() - 7));
      highest = std::max(highest, priority_of(type));
    }
  for (const auto& p : folder.linears_) {
    const std::string type = folder.types_.at(p + ".weight");
    const auto& suffixes = parameter_suffixes(type);
    for (size_t i = 0; i < suffixes.size(); ++i) {
      const std::string name = p + suffixes[i];
      const std::string tag = folder.type_of(name);
      if (tag.empty() && i < required_count(type)) {
        std::string list;
        for (size_t j = 0; j < required_count(type); ++j) list += (j ? ", " : "") + suffixes[j].substr(1);
        fail("Linear '{}' is described as {} but '{}' is missing (a {} Linear stores {}; spec §3.4)", p, type, name,
             type, list);
      }
      if (!tag.empty() && tag != type)
        fail("{}: tensor '{}' is tagged {} but its Linear '{}' is {} (all parameters of a quantized Linear carry "
             "its type, spec §3.4)",
             desc_where, name, tag, p, type);
    }
    // msModelSlim's ascendv1 saver tags a dual-scale Linear's bias with its type (spec §3.4 quirk).
    const std::string bias_tag = folder.type_of(p + ".bias");
    if (!bias_tag.empty() && bias_tag != "FLOAT" && !(is_dualscale(type) && bias_tag == type))
      fail("{}: tensor '{}.bias' is tagged {}, expected FLOAT{} (the float bias of a quantized Linear, spec §3.4)",
           desc_where, p, bias_tag, is_dualscale(type) ? " or " + type : "");

    const TensorInfo& w = ckpt.info(p + ".weight");
    const DType wd = weight_dtype(type);
    if (w.dtype != wd || w.shape.size() != 2)
      fail("tensor '{}.weight' of type {} must be {} {}, found {} {}", p, type, dtype_name(wd),
           type == "W4A8_DYNAMIC" ? "[out/2, in] (two int4 output channels per byte)"
           : is_fp4(type)         ? "[out, in/2] (two FP4 values per byte)"
                                  : "[out, in]",
           dtype_name(w.dtype), shape_str(w.shape));
    const auto [out, in] = logical_shape(type, w.shape);
    if (folder.contains(p + ".bias")) check_shape_dtype(ckpt.info(p + ".bias"), type, DType::F32, {out});
    if (is_static_w8a8(type)) {
      check_shape_dtype(ckpt.info(p + ".quant_bias"), type, DType::I32, {out});
      check_shape_dtype(ckpt.info(p + ".input_scale"), type, DType::F32, {1});
      check_shape_dtype(ckpt.info(p + ".input_offset"), type, DType::F32, {1});
      // Spec §3.5 / ascend_loaders §10 rule 3: float32 for bfloat16 models, else
      // int64 bit patterns; engines convert a wrong dtype by value (silently).
      // mindie_format: always float32 (spec §3.10).
      const DType deq = mindie || folder.serving_dtype_ == DType::BF16 ? DType::F32 : DType::I64;
      check_shape_dtype(ckpt.info(p + ".deq_scale"), type, deq, {out},
                        mindie ? std::string(" (mindie_format_saver always writes float32, spec §3.10)")
                               : fmt::format(" ({} has {}: engines serving in {} hold deq_scale as {})", config_where,
                                             dtype_source, serving_name(folder.serving_dtype_),
                                             deq == DType::F32 ? "float32" : "int64 float32 bit patterns"));
      for (const char* s : {".weight_scale", ".weight_offset"})
        if (folder.contains(p + s)) check_shape_dtype(ckpt.info(p + s), type, DType::F32, {out, 1});
    } else if (is_mx(type)) {
      // One uint8 shared exponent per 32 inputs (the last block zero-padded); engines read group_size 32.
      check_shape_dtype(ckpt.info(p + ".weight_scale"), type, DType::U8, {out, (in + 31) / 32});
      if (!mindie && folder.group_size_ != 32)  // MindIE-SD's MX layers have their block size built in
        fail("{}: group_size is {} but {} Linear '{}' needs 32 (its block size; engines read group_size for MX "
             "types, spec §3.3)",
             desc_where, folder.group_size_, type, p);
      if (is_dualscale(type)) check_dual_scale_shape(ckpt.info(p + ".weight_dual_scale"), type, out, in);
    } else {
      // Per channel [out, 1] or per group [out, in/G] with G the description's group_size.
      const TensorInfo& ws = ckpt.info(p + ".weight_scale");
      const int64_t k = ws.shape.size() == 2 ? ws.shape[1] : 0;
      const bool grouped = k > 1 && in % k == 0 && type != "WFP8AFP8_DYNAMIC" && type != "W4A8_DYNAMIC";
      if (ws.dtype != DType::F32 || ws.shape.size() != 2 || ws.shape[0] != out || (k != 1 && !grouped))
        fail("tensor '{}' of the {} Linear must be F32 [{}, 1]{}, found {} {}", ws.name, type, out,
             type == "WFP8AFP8_DYNAMIC" || type == "W4A8_DYNAMIC" ? "" : fmt::format(" or [{}, in/group_size]", out),
             dtype_name(ws.dtype), shape_str(ws.shape));
      if (grouped && mindie)
        fail("tensor '{}' holds {} groups per channel: mindie_format_saver stores per-channel {} only (spec "
             "§3.10), found {}",
             ws.name, k, type, shape_str(ws.shape));
      if (grouped && in / k != folder.group_size_)
        fail("tensor '{}' holds {} groups of {} inputs, but the description's group_size is {} (engines split "
             "in_features by it, spec §3.3)",
             ws.name, k, in / k, folder.group_size_);
      check_shape_dtype(ckpt.info(p + ".weight_offset"), type, DType::F32, ws.shape);
      if (type == "W4A8_DYNAMIC")
        check_shape_dtype(ckpt.info(p + ".scale_bias"), type, DType::F32, {out, w4a8_scale_bias_cols(p, in)},
                          " (8·Σ of the dequantized weight per row, or per 16 input chunks for down/o/w2, spec §3.4)");
    }
  }
  // Quantization parameters outside a Linear of their type.
  for (const auto& [name, type] : entries) {
    if (is_dualscale(type) && name.ends_with(".bias") &&
        folder.linear_type(name.substr(0, name.size() - 5)) == type)
      continue;  // the dual-scale bias quirk, its shape checked with its Linear
    if (type == "FLOAT") {
      const TensorInfo& info = ckpt.info(name);
      if (!is_float(info.dtype))
        fail("tensor '{}' is described as FLOAT but stored as {} (engines convert it by value)", name,
             dtype_name(info.dtype));
      continue;
    }
    bool owned = false;
    for (const auto& suffix : kParameterSuffixes)
      if (name.ends_with(suffix)) {
        const std::string prefix = name.substr(0, name.size() - suffix.size());
        const auto& allowed = parameter_suffixes(folder.linear_type(prefix));
        owned = folder.linear_type(prefix) == type && std::find(allowed.begin(), allowed.end(), suffix) != allowed.end();
        if (owned) break;
      }
    if (!owned)
      fail("{}: tensor '{}' is tagged {} but is not a parameter of a {} Linear (no '<prefix>.weight' of that type "
           "with such a parameter)",
           desc_where, name, type, type);
  }

  if (mindie) {
    check_mindie_model_quant_type(folder, desc_where);
    return folder;
  }
  const std::string expected = kKnownTypes[static_cast<size_t>(highest)];
  // No ranked Linear (only W4A8_DYNAMIC ones, or none): msModelSlim's initial
  // "Unknown" stays unless a float Linear reported FLOAT.
  const bool unranked_ok = expected == "FLOAT" && folder.model_quant_type_ == "Unknown";
  if (folder.model_quant_type_ != expected && !unranked_ok)
    fail("{}: model_quant_type is \"{}\" but the highest-priority Linear type present is \"{}\" (spec §3.8; MindIE "
         "takes it as the model-wide quantization mode)",
         desc_where, folder.model_quant_type_, expected);
  return folder;
}

const std::vector<std::string>& QuantizedFolder::input_rotation_tensors(const std::string& linear) const {
  static const std::vector<std::string> kNone;
  auto it = online_rotations_.find(linear);
  return it == online_rotations_.end() ? kNone : it->second;
}

KroneckerRotation QuantizedFolder::input_rotation(const std::string& linear) const {
  auto it = online_rotations_.find(linear);
  if (it == online_rotations_.end()) return {};
  auto read = [&](const std::string& name) {
    const Tensor t = ckpt_.read(name);
    return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
  };
  const std::vector<std::string>& names = it->second;
  const int64_t m = ckpt_.info(names[0]).shape[0];
  if (names.size() == 1) {  // heads: identity over each head's values
    const int64_t in = linear_in_features(linear);
    if (in % m != 0)
      fail("tensor '{}' rotates {} heads, but Linear '{}' reads {} inputs, not a multiple of it", names[0], m, linear,
           in);
    return KroneckerRotation(read(names[0]), m, {}, in / m);
  }
  const int64_t n = ckpt_.info(names[1]).shape[0];
  if (m * n != linear_in_features(linear))
    fail("tensors '{}' and '{}' rotate {} × {} inputs, but Linear '{}' reads {}", names[0], names[1], m, n, linear,
         linear_in_features(linear));
  return KroneckerRotation(read(names[0]), m, read(names[1]), n);
}

int64_t QuantizedFolder::linear_in_features(const std::string& linear) const {
  const std::string type = linear_type(linear);
  const TensorInfo& w = ckpt_.info(linear + ".weight");
  if (w.shape.size() != 2) fail("tensor '{}.weight' must be 2-D, found {}", linear, shape_str(w.shape));
  return type == "FLOAT" ? w.shape[1] : logical_shape(type, w.shape).second;
}

std::string QuantizedFolder::linear_type(const std::string& prefix) const {
  auto it = types_.find(prefix + ".weight");
  return it == types_.end() ? "FLOAT" : it->second;
}

std::string QuantizedFolder::type_of(const std::string& tensor) const {
  auto it = types_.find(tensor);
  return it == types_.end() ? "" : it->second;
}

DeployedLinear QuantizedFolder::load_linear(const std::string& prefix, bool with_weight) const {
  DeployedLinear lin;
  lin.name = prefix;
  lin.type = linear_type(prefix);
  if (lin.type == "FLOAT") fail("'{}' is not a quantized Linear of {}", prefix, dir_.string());
  const TensorInfo& w = ckpt_.info(prefix + ".weight");  // dtype and 2-D shape checked by open()
  std::tie(lin.out, lin.in) = logical_shape(lin.type, w.shape);
  const auto out = static_cast<size_t>(lin.out);
  if (with_weight) {
    Tensor wt = ckpt_.read(prefix + ".weight");
    if (lin.type == "W4A8_DYNAMIC") {
      lin.weight = unpack_int4_w4a8(wt.data<int8_t>(), lin.out, lin.in);
    } else if (is_fp4(lin.type)) {
      std::vector<uint8_t> codes = unpack_fp4(wt.data<uint8_t>(), lin.out, lin.in);
      lin.weight.assign(codes.begin(), codes.end());
    } else {
      lin.weight.assign(wt.data<int8_t>(), wt.data<int8_t>() + wt.numel());
    }
    for (size_t k = 0; k < lin.weight.size(); ++k) {
      const int8_t v = lin.weight[k];
      if (lin.type == "W4A4_DYNAMIC" && (v < -8 || v > 7))
        fail("tensor '{}.weight' entry {} is {}: W4A4_DYNAMIC stores int4 values in [-8, 7] (unpacked int8)", prefix,
             k, v);
      if (weight_dtype(lin.type) == DType::F8_E4M3 && (static_cast<uint8_t>(v) & 0x7F) == 0x7F)
        fail("tensor '{}.weight' entry {} is a float8_e4m3fn NaN (0x{:02x})", prefix, k, static_cast<uint8_t>(v));
    }
  }
  if (contains(prefix + ".bias")) {
    lin.bias = read_f32(ckpt_, prefix + ".bias");
    for (size_t o = 0; o < out; ++o)
      if (!std::isfinite(lin.bias[o])) fail("tensor '{}.bias' entry {} is {}: expected a finite value", prefix, o, lin.bias[o]);
  }
  const std::string ws_name = prefix + ".weight_scale", wo_name = prefix + ".weight_offset";
  if (is_mx(lin.type)) {
    // Shared exponents, E8M0: value 2^(u − 127); 255 is NaN.
    Tensor st = ckpt_.read(ws_name);
    lin.group_size = 32;
    lin.weight_scale.resize(st.numel());
    for (size_t k = 0; k < lin.weight_scale.size(); ++k) {
      const uint8_t u = st.data<uint8_t>()[k];
      if (u == 255) fail("tensor '{}' entry {} is 255, the E8M0 NaN: expected a shared exponent + 127", ws_name, k);
      lin.weight_scale[k] = static_cast<float>(std::ldexp(1.0, u - 127));
    }
    lin.weight_offset.assign(lin.weight_scale.size(), 0.0f);
    if (is_dualscale(lin.type)) {
      const std::string ds_name = prefix + ".weight_dual_scale";
      lin.weight_dual_scale = read_f32(ckpt_, ds_name);
      // max|block|/6 per dual block: 0 only for an all-zero block, whose codes then do not matter.
      for (size_t k = 0; k < lin.weight_dual_scale.size(); ++k)
        if (!(std::isfinite(lin.weight_dual_scale[k]) && lin.weight_dual_scale[k] >= 0.0f))
          fail("tensor '{}' entry {} is {}: expected a finite non-negative dual scale", ds_name, k,
               lin.weight_dual_scale[k]);
      const auto d = static_cast<int64_t>(lin.weight_dual_scale.size()) / std::max<int64_t>(lin.out, 1);
      lin.dual_block_size = d == 1 ? (lin.in + 31) / 32 * 32 : lin.in / d;
    }
    return lin;
  }
  if (contains(ws_name)) {
    lin.weight_scale = read_f32(ckpt_, ws_name);
    check_scales(ws_name, lin.weight_scale);
    // Engines hold it in the serving dtype (ascend_loaders §4.3/4.4): it must not overflow there.
    for (size_t o = 0; o < lin.weight_scale.size(); ++o)
      if (!std::isfinite(round_to_dtype(lin.weight_scale[o], serving_dtype_)))
        fail("tensor '{}' entry {} is {}, which overflows {} (the serving dtype engines hold it in)", ws_name, o,
             lin.weight_scale[o], serving_name(serving_dtype_));
    const auto groups = static_cast<int64_t>(lin.weight_scale.size()) / std::max<int64_t>(lin.out, 1);
    lin.group_size = groups > 1 ? lin.in / groups : 0;
  }
  if (contains(wo_name)) {
    lin.weight_offset = read_f32(ckpt_, wo_name);
    // W8A16's and W4A4's is the zero point in the int grid (spec §2.2); the other types' kernels ignore it
    // (vLLM-Ascend) while MindIE applies it: only 0 means the same to both, and msModelSlim writes zeros.
    const bool zero_point = lin.type == "W8A16" || lin.type == "W4A4_DYNAMIC";
    const float lo = lin.type == "W4A4_DYNAMIC" ? -8.0f : -128.0f, hi = lin.type == "W4A4_DYNAMIC" ? 7.0f : 127.0f;
    for (size_t o = 0; o < lin.weight_offset.size(); ++o) {
      const float v = lin.weight_offset[o];
      if (!zero_point && v != 0.0f)
        fail("tensor '{}' entry {} is {}: a {} weight_offset must be 0 (symmetric weights; kernels ignore it)",
             wo_name, o, v, lin.type);
      if (!(std::isfinite(v) && v >= lo && v <= hi))
        fail("tensor '{}' entry {} is {}: expected a finite zero point in [{}, {}]", wo_name, o, v, lo, hi);
    }
  }
  if (lin.type == "W4A8_DYNAMIC") {
    lin.scale_bias = read_f32(ckpt_, prefix + ".scale_bias");
    if (with_weight) {
      // scale_bias = 8·Σ (Wq·weight_scale) per row / per 16 input chunks (spec §3.4), in float32.
      QuantizedWeight qw;
      qw.out = lin.out;
      qw.in = lin.in;
      qw.bits = 4;
      qw.q.assign(lin.weight.begin(), lin.weight.end());
      qw.scale = lin.weight_scale;
      qw.offset.assign(qw.scale.size(), 0.0f);
      int64_t cols = 0;
      std::vector<float> expected = w4a8_scale_bias(qw, prefix, cols);
      const int64_t chunk = lin.in / cols;
      for (size_t k = 0; k < expected.size(); ++k) {
        const double tol = 1e-5 * 8.0 * 8.0 * static_cast<double>(chunk) * qw.scale[k / static_cast<size_t>(cols)];
        if (!(std::fabs(lin.scale_bias[k] - expected[k]) <= tol))
          fail("tensor '{}.scale_bias' entry {} is {} but 8·Σ(weight·weight_scale) = {} (spec §3.4): scale_bias, "
               "weight and weight_scale do not belong together",
               prefix, k, lin.scale_bias[k], expected[k]);
      }
    }
  }
  if (!is_static_w8a8(lin.type)) return lin;

  // ---- W8A8: activation parameters, quant_bias, deq_scale ----
  const float input_scale = read_f32(ckpt_, prefix + ".input_scale")[0];
  check_scales(prefix + ".input_scale", {&input_scale, 1});
  // Engines hold input_scale in the serving dtype and quantize with its
  // reciprocal there (ascend_loaders §4.1, fact 18): both must be positive
  // and finite in that dtype, and the deployed arithmetic uses the rounded
  // value (equal to the stored one for lwquant outputs, fact 18).
  const float scale_p = round_to_dtype(input_scale, serving_dtype_);
  if (!(std::isfinite(scale_p) && scale_p > 0.0f && std::isfinite(round_to_dtype(1.0f / scale_p, serving_dtype_))))
    fail("tensor '{}.input_scale' is {}: in {} (the serving dtype) it becomes {} and its reciprocal {}, expected "
         "both positive and finite",
         prefix, input_scale, serving_name(serving_dtype_), scale_p, round_to_dtype(1.0f / scale_p, serving_dtype_));
  lin.input_scale = scale_p;
  lin.input_offset = read_f32(ckpt_, prefix + ".input_offset")[0];
  // Engines copy input_offset into an int8 parameter (ascend_loaders §4.1).
  if (!(lin.input_offset == std::nearbyint(lin.input_offset) && lin.input_offset >= -128.0f && lin.input_offset <= 127.0f))
    fail("tensor '{}.input_offset' is {}, expected an integer in [-128, 127] (engines store it as int8)", prefix,
         lin.input_offset);
  Tensor qbt = ckpt_.read(prefix + ".quant_bias");
  lin.quant_bias.assign(qbt.data<int32_t>(), qbt.data<int32_t>() + out);

  const std::string dq_name = prefix + ".deq_scale";
  Tensor dqt = ckpt_.read(dq_name);
  if (dqt.dtype == DType::I64) {
    // Spec §3.5: the float32 bit pattern widened to int64; scales are positive,
    // so the upper 32 bits are 0 (also what sign extension gives).
    std::span<const int64_t> bits = dqt.span<int64_t>();
    for (size_t o = 0; o < bits.size(); ++o)
      if ((static_cast<uint64_t>(bits[o]) >> 32) != 0)
        fail("tensor '{}' entry {} is {}: an int64 deq_scale holds a float32 bit pattern in its low 32 bits with "
             "the upper 32 bits 0 (spec §3.5)",
             dq_name, o, hex64(bits[o]));
    lin.deq_scale = deq_scale_from_int64_bits(bits);
  } else {
    lin.deq_scale = to_f32(dqt);
  }
  check_scales(dq_name, lin.deq_scale);

  // deq_scale = input_scale · weight_scale (spec §3.5), checkable where the
  // folder stores weight_scale too (the W8A8_MIX layout; plain W8A8 has none).
  // lwquant's saver writes the float32 product of the two stored factors
  // (w8a8_export.cc deq_scale_f32, input_scale already rounded to the serving
  // dtype), and so does msModelSlim for float32 scales. msModelSlim computes
  // it "in the scales' dtype" (bfloat16 scales for a bfloat16 model: the
  // product rounded once to bfloat16), and a producer may derive it from the
  // input_scale rounded to the serving dtype while storing the unrounded one
  // (fact 18). Each moves it by at most the serving dtype's unit roundoff u
  // (2^-8 bfloat16, 2^-11 float16), no more than the engine's own rounding of
  // the scales. So the rule is
  //   |deq_scale − fl32(input_scale·weight_scale)| ≤ (u + 2^-22)·fl32(input_scale·weight_scale).
  if (!lin.weight_scale.empty()) {
    const double tol = unit_roundoff(serving_dtype_) + std::ldexp(1.0, -22);
    for (size_t o = 0; o < out; ++o) {
      const double expected = static_cast<double>(input_scale * lin.weight_scale[o]);
      if (!(std::fabs(lin.deq_scale[o] - expected) <= tol * expected))
        fail("tensor '{}' entry {} is {} but input_scale·weight_scale = {}·{} = {} (relative difference {:.3g}, "
             "allowed {:.3g}: the {} rounding, spec §3.5)",
             dq_name, o, lin.deq_scale[o], input_scale, lin.weight_scale[o], expected,
             std::fabs(lin.deq_scale[o] - expected) / expected, tol, serving_name(serving_dtype_));
    }
  }
  if (!with_weight) return lin;

  // quant_bias = round(bias/deq_scale − input_offset·Σ_in Wq) (spec §3.5), in
  // float32 as the saver and msModelSlim compute it. A different summation
  // order may move the float32 value by a few units in the last place before
  // rounding, so the allowance is 1 + 2^-20·(|bias/deq| + |correction|).
  for (size_t o = 0; o < out; ++o) {
    int64_t row_sum = 0;
    const int8_t* row = lin.weight.data() + o * static_cast<size_t>(lin.in);
    for (int64_t i = 0; i < lin.in; ++i) row_sum += row[i];
    const float b = lin.bias.empty() ? 0.0f : lin.bias[o];
    const float scaled = b / lin.deq_scale[o];
    const float correction = static_cast<float>(row_sum) * lin.input_offset;
    const double expected = std::nearbyint(scaled - correction);
    const double allowed = 1.0 + std::ldexp(std::fabs(scaled) + std::fabs(correction), -20);
    if (!(std::fabs(lin.quant_bias[o] - expected) <= allowed))
      fail("tensor '{}.quant_bias' entry {} is {} but round(bias/deq_scale − input_offset·Σ weight) = "
           "round({}/{} − {}·{}) = {} (spec §3.5): quant_bias, deq_scale, input_offset, bias and weight do not belong "
           "together",
           prefix, o, lin.quant_bias[o], b, lin.deq_scale[o], lin.input_offset, row_sum, expected);
  }
  return lin;
}

QuantizedFolder parse_quantized_folder(const fs::path& dir, QuantFormat format) {
  QuantizedFolder folder = QuantizedFolder::open(dir, format);
  for (const auto& p : folder.quantized_linears()) folder.load_linear(p);
  for (const auto& name : folder.tensor_names())
    if (folder.type_of(name) == "FLOAT") check_finite(folder.read(name), name, folder.dir().string());
  return folder;
}

const TensorInfo& check_float_tensor(const QuantizedFolder& q, const std::string& name, const Shape& shape) {
  if (!q.contains(name)) {
    if (name.ends_with("lm_head.weight"))
      fail("tensor '{}' of the float model is missing from the quantized folder (vLLM-Ascend's Llama-family "
           "loaders look it up even when tie_word_embeddings; spec §10 fact 16)",
           name);
    fail("tensor '{}' of the float model is missing from the quantized folder", name);
  }
  if (q.type_of(name) != "FLOAT")
    fail("tensor '{}' is described as {} in the quantized folder, but the float model has no quantizable Linear "
         "there (expected FLOAT)",
         name, q.type_of(name));
  const TensorInfo& info = q.info(name);
  if (info.shape != shape)
    fail("tensor '{}' has shape {} in the quantized folder but {} in the float model", name, shape_str(info.shape),
         shape_str(shape));
  return info;
}

std::vector<float> read_float_tensor(const QuantizedFolder& q, const std::string& name, const Shape& shape) {
  check_float_tensor(q, name, shape);
  Tensor t = q.read(name);
  check_finite(t, name, q.dir().string());
  return to_f32(t);
}

}  // namespace lwq
