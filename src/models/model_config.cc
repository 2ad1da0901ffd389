#include "models/model_config.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "io/json_strict.h"
#include "models/architecture.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

std::vector<std::string> supported_model_types() { return architecture_names(); }

int64_t ModelConfig::sliding_window(int layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layer_sliding_window.size())
    fail("layer {} out of range: {} has num_hidden_layers={}", layer, source.string(), num_hidden_layers);
  return layer_sliding_window[static_cast<size_t>(layer)];
}

namespace {

// Typed access to one JSON object, with messages naming the file and key.
class Keys {
 public:
  Keys(const Json& obj, std::string where) : obj_(obj), where_(std::move(where)) {}

  bool present(const char* key) const { return obj_.contains(key); }
  bool has(const char* key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }
  const Json* get(const char* key) const { return has(key) ? &obj_.at(key) : nullptr; }

  int64_t req_int(const char* key, int64_t min = 1) const {
    if (!has(key)) fail("{}: required key '{}' is missing", where_, key);
    return check_int(key, min);
  }
  int64_t opt_int(const char* key, int64_t def, int64_t min = 1) const { return has(key) ? check_int(key, min) : def; }
  double req_num(const char* key) const {
    if (!has(key)) fail("{}: required key '{}' is missing", where_, key);
    return check_num(key);
  }
  double opt_num(const char* key, double def) const { return has(key) ? check_num(key) : def; }
  std::optional<double> maybe_num(const char* key) const {
    return has(key) ? std::optional<double>(check_num(key)) : std::nullopt;
  }
  bool opt_bool(const char* key, bool def) const {
    if (!has(key)) return def;
    const Json& v = obj_.at(key);
    if (!v.is_boolean()) fail("{}: key '{}' must be true or false, got {}", where_, key, v.dump());
    return v.get<bool>();
  }
  std::string opt_string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    const Json& v = obj_.at(key);
    if (!v.is_string()) fail("{}: key '{}' must be a string, got {}", where_, key, v.dump());
    return v.get<std::string>();
  }
  const std::string& where() const { return where_; }

 private:
  int64_t check_int(const char* key, int64_t min) const {
    const Json& v = obj_.at(key);
    bool integral = v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
                                              std::abs(v.get<double>()) < 9e15);
    if (!integral) fail("{}: key '{}' must be an integer, got {}", where_, key, v.dump());
    int64_t n = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                    ? std::numeric_limits<int64_t>::max()
                    : (v.is_number_float() ? static_cast<int64_t>(v.get<double>()) : v.get<int64_t>());
    if (n < min) fail("{}: key '{}' must be at least {}, got {}", where_, key, min, n);
    return n;
  }
  double check_num(const char* key) const {
    const Json& v = obj_.at(key);
    if (!v.is_number()) fail("{}: key '{}' must be a number, got {}", where_, key, v.dump());
    return v.get<double>();
  }

  const Json& obj_;
  std::string where_;
};

DType parse_torch_dtype(const Keys& k) {
  const char* key = k.has("dtype") ? "dtype" : "torch_dtype";
  std::string s = k.opt_string(key, "float32");
  if (s.starts_with("torch.")) s = s.substr(6);
  if (s == "float32" || s == "float") return DType::F32;
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16" || s == "half") return DType::F16;
  fail("{}: key '{}' = \"{}\" is not a supported weight dtype (float32, float16, bfloat16)", k.where(), key, s);
}

RopeType parse_rope_type(const std::string& name, const std::string& where) {
  if (name == "default") return RopeType::Default;
  if (name == "linear") return RopeType::Linear;
  if (name == "dynamic") return RopeType::Dynamic;
  if (name == "llama3") return RopeType::Llama3;
  if (name == "yarn") return RopeType::Yarn;
  fail("{}: rope type \"{}\" is not supported (supported: default, linear, dynamic, llama3, yarn)", where, name);
}

// rope_parameters (transformers 5: theta inside) or rope_scaling + rope_theta (4.x).
RopeParams parse_rope(const Keys& top, int64_t max_pos) {
  RopeParams p;
  p.max_position_embeddings = max_pos;
  p.theta = top.opt_num("rope_theta", 10000.0);
  const char* key = top.has("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const Json* obj = top.get(key);
  if (!obj) return p;
  if (!obj->is_object()) fail("{}: key '{}' must be an object or null, got {}", top.where(), key, obj->dump());
  Keys r(*obj, fmt::format("{}: {}", top.where(), key));
  p.theta = r.opt_num("rope_theta", p.theta);
  std::string type = r.opt_string("rope_type", r.opt_string("type", "default"));
  p.type = parse_rope_type(type, r.where());
  if (const Json* section = r.get("mrope_section")) {
    if (!section->is_array() || section->size() != 3)
      fail("{}: 'mrope_section' must list 3 integers (t, h, w), got {}", r.where(), section->dump());
    for (const auto& v : *section) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0)
        fail("{}: 'mrope_section' must list 3 non-negative integers, got {}", r.where(), section->dump());
      p.mrope_section.push_back(v.get<int64_t>());
    }
  }
  if (p.type == RopeType::Default) return p;
  // transformers 5 semantics: yarn's factor is taken as written (4.x replaced
  // it by max_position_embeddings / original_max_position_embeddings).
  p.factor = r.req_num("factor");
  if (!(p.factor > 0)) fail("{}: 'factor' must be positive, got {}", r.where(), p.factor);
  if (r.has("original_max_position_embeddings")) p.original_max_position_embeddings = r.opt_int("original_max_position_embeddings", 0);
  if (p.type == RopeType::Llama3) {
    p.low_freq_factor = r.req_num("low_freq_factor");
    p.high_freq_factor = r.req_num("high_freq_factor");
    if (!p.original_max_position_embeddings) p.original_max_position_embeddings = r.req_int("original_max_position_embeddings");
    if (!(p.high_freq_factor > p.low_freq_factor))
      fail("{}: high_freq_factor ({}) must exceed low_freq_factor ({})", r.where(), p.high_freq_factor, p.low_freq_factor);
  }
  if (p.type == RopeType::Yarn) {
    p.beta_fast = r.opt_num("beta_fast", 32.0);
    p.beta_slow = r.opt_num("beta_slow", 1.0);
    p.attention_factor = r.maybe_num("attention_factor");
    p.mscale = r.maybe_num("mscale");
    p.mscale_all_dim = r.maybe_num("mscale_all_dim");
    p.truncate = r.opt_bool("truncate", true);
  }
  return p;
}

std::vector<int32_t> parse_eos(const Keys& k) {
  const Json* v = k.get("eos_token_id");
  if (!v) return {};
  std::vector<int32_t> ids;
  auto one = [&](const Json& x) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > std::numeric_limits<int32_t>::max())
      fail("{}: key 'eos_token_id' must be a token id or a list of them, got {}", k.where(), v->dump());
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  };
  if (v->is_array()) for (const auto& x : *v) one(x);
  else one(*v);
  return ids;
}

// Which layers use a sliding window, following each family's HF config class.
std::vector<int64_t> parse_sliding_windows(const Keys& k, SlidingRule rule, int layers) {
  std::vector<int64_t> windows(static_cast<size_t>(layers), 0);
  if (rule == SlidingRule::None) return windows;
  if (rule == SlidingRule::AllLayersDefaultOff) {
    // MixtralConfig: sliding_window defaults to None.
    std::fill(windows.begin(), windows.end(), k.opt_int("sliding_window", 0, 0));
    return windows;
  }
  if (rule == SlidingRule::AllLayers) {
    // MistralConfig: sliding_window (default 4096) on every layer unless null.
    const bool present = k.present("sliding_window");
    int64_t w = present ? k.opt_int("sliding_window", 0) : 4096;
    std::fill(windows.begin(), windows.end(), w);
    return windows;
  }
  // qwen2 / qwen3: only with use_sliding_window, on "sliding_attention"
  // layers (by default those >= max_window_layers).
  if (!k.opt_bool("use_sliding_window", false)) return windows;
  if (k.present("sliding_window") && !k.has("sliding_window")) return windows;  // explicit null
  const int64_t w = k.opt_int("sliding_window", 4096);
  if (const Json* lt = k.get("layer_types")) {
    if (!lt->is_array() || lt->size() != static_cast<size_t>(layers))
      fail("{}: key 'layer_types' must list one entry per layer ({}), got {}", k.where(), layers, lt->dump());
    for (int i = 0; i < layers; ++i) {
      const Json& t = (*lt)[static_cast<size_t>(i)];
      if (t == "sliding_attention") windows[static_cast<size_t>(i)] = w;
      else if (t != "full_attention")
        fail("{}: layer_types[{}] = {} (expected \"full_attention\" or \"sliding_attention\")", k.where(), i, t.dump());
    }
    return windows;
  }
  const int64_t first = k.opt_int("max_window_layers", 28, 0);
  for (int i = 0; i < layers; ++i)
    if (i >= first) windows[static_cast<size_t>(i)] = w;
  return windows;
}

// The sparse-MLP keys of the family's config class, with its defaults.
MoeConfig parse_moe(const Keys& k, const MoeTemplate& t, const ModelConfig& c) {
  MoeConfig m;
  m.num_experts = k.opt_int(t.num_experts_key.c_str(), t.default_num_experts);
  m.experts_per_token = k.opt_int("num_experts_per_tok", t.default_experts_per_token);
  if (m.experts_per_token > m.num_experts)
    fail("{}: num_experts_per_tok ({}) is larger than {} ({})", k.where(), m.experts_per_token, t.num_experts_key,
         m.num_experts);
  m.expert_intermediate =
      t.expert_intermediate_key.empty() ? c.intermediate_size : k.req_int(t.expert_intermediate_key.c_str());
  m.renormalize_top_k = t.norm_topk_prob_key.empty() ? true : k.opt_bool(t.norm_topk_prob_key.c_str(), false);
  m.sparse_step = k.opt_int("decoder_sparse_step", 1);
  if (const Json* dense = k.get("mlp_only_layers")) {
    if (!dense->is_array()) fail("{}: key 'mlp_only_layers' must be a list of layer indices, got {}", k.where(), dense->dump());
    for (const auto& v : *dense) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.num_hidden_layers)
        fail("{}: mlp_only_layers holds {}; expected layer indices in [0, {})", k.where(), v.dump(), c.num_hidden_layers);
      m.dense_layers.push_back(v.get<int64_t>());
    }
  }
  return m;
}

}  // namespace

bool ModelConfig::is_moe_layer(int layer) const {
  if (moe.num_experts <= 0) return false;
  if (std::find(moe.dense_layers.begin(), moe.dense_layers.end(), layer) != moe.dense_layers.end()) return false;
  return (layer + 1) % moe.sparse_step == 0;
}

// A vision-language checkpoint's text decoder is described by its
// `text_config` (Qwen3-VL-MoE, multimodal.md A.1.2); the weight dtype and the
// tying of the head are top-level keys there.
bool take_text_config(Json& root, const std::string& where) {
  if (!root.contains("model_type") || root["model_type"] != "qwen3_vl_moe") return false;
  if (!root.contains("text_config") || !root["text_config"].is_object())
    fail("{}: a qwen3_vl_moe config.json needs a 'text_config' object", where);
  Json text = root["text_config"];
  if (!text.contains("model_type")) text["model_type"] = "qwen3_vl_moe_text";
  if (text["model_type"] != "qwen3_vl_moe_text")
    fail("{}: text_config.model_type is {}, expected \"qwen3_vl_moe_text\"", where, text["model_type"].dump());
  for (const char* key : {"dtype", "torch_dtype"})
    if (root.contains(key) && !text.contains("dtype") && !text.contains("torch_dtype")) text[key] = root[key];
  text["tie_word_embeddings"] = root.contains("tie_word_embeddings") ? root["tie_word_embeddings"] : Json(false);
  root = std::move(text);
  return true;
}

ModelConfig parse_model_config(const std::string& text, const fs::path& where_path) {
  Json root = parse_json_strict(text, where_path.string());
  if (!root.is_object()) fail("{}: expected a JSON object", where_path.string());
  const std::string where = where_path.string() + (take_text_config(root, where_path.string()) ? ": text_config" : "");
  Keys k(root, where);
  ModelConfig c;
  c.source = where_path;
  if (!k.has("model_type")) fail("{}: required key 'model_type' is missing", where);
  c.model_type = k.opt_string("model_type", "");
  const Architecture* arch = find_architecture(c.model_type);
  if (!arch)
    fail("{}: model_type \"{}\" is not supported (supported: {})", where, c.model_type,
         fmt::join(supported_model_types(), ", "));

  c.vocab_size = k.req_int("vocab_size");
  c.hidden_size = k.req_int("hidden_size");
  c.intermediate_size = k.req_int("intermediate_size");
  const int64_t layers = k.req_int("num_hidden_layers");
  if (layers > 100000) fail("{}: num_hidden_layers = {} is implausible", where, layers);
  c.num_hidden_layers = static_cast<int>(layers);
  c.num_attention_heads = k.req_int("num_attention_heads");
  c.num_key_value_heads = k.opt_int("num_key_value_heads", c.num_attention_heads);
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail("{}: num_attention_heads ({}) must be a multiple of num_key_value_heads ({})", where, c.num_attention_heads,
         c.num_key_value_heads);
  if (!k.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
    fail("{}: hidden_size ({}) is not divisible by num_attention_heads ({}) and head_dim is not given", where,
         c.hidden_size, c.num_attention_heads);
  c.head_dim = k.opt_int("head_dim", c.hidden_size / c.num_attention_heads);
  if (c.head_dim % 2 != 0) fail("{}: head_dim ({}) must be even for rotary embeddings", where, c.head_dim);
  c.rms_norm_eps = k.opt_num("rms_norm_eps", 1e-6);
  if (!(c.rms_norm_eps >= 0)) fail("{}: key 'rms_norm_eps' must be non-negative, got {}", where, c.rms_norm_eps);
  c.max_position_embeddings = k.opt_int("max_position_embeddings", arch->default_max_position_embeddings);
  c.rope = parse_rope(k, c.max_position_embeddings);
  if (arch->mrope) {
    // HF Qwen3VLMoeTextRotaryEmbedding: mrope_section defaults to [24, 20, 20].
    if (c.rope.mrope_section.empty()) c.rope.mrope_section = {24, 20, 20};
    const int64_t sum = c.rope.mrope_section[0] + c.rope.mrope_section[1] + c.rope.mrope_section[2];
    if (sum != c.head_dim / 2)
      fail("{}: rope_scaling.mrope_section sums to {}, but head_dim / 2 is {}", where, sum, c.head_dim / 2);
  } else if (!c.rope.mrope_section.empty()) {
    fail("{}: rope_scaling.mrope_section is given, but model_type \"{}\" has no multimodal rope", where, c.model_type);
  }

  c.attention_bias = k.opt_bool("attention_bias", false);
  c.mlp_bias = k.opt_bool("mlp_bias", false);
  c.tie_word_embeddings = k.opt_bool("tie_word_embeddings", false);
  c.dtype = parse_torch_dtype(k);
  c.layer_sliding_window = parse_sliding_windows(k, arch->sliding, c.num_hidden_layers);
  if (arch->moe) c.moe = parse_moe(k, *arch->moe, c);

  if (k.has("bos_token_id")) {
    const int64_t bos = k.opt_int("bos_token_id", 0, 0);
    if (bos > std::numeric_limits<int32_t>::max()) fail("{}: bos_token_id {} out of range", where, bos);
    c.bos_token_id = static_cast<int32_t>(bos);
  }
  c.eos_token_ids = parse_eos(k);
  return c;
}

ModelConfig load_model_config(const fs::path& dir) {
  fs::path file = fs::is_directory(dir) ? dir / "config.json" : dir;
  if (!fs::exists(file)) fail("{}: config.json not found", file.string());
  return parse_model_config(read_text_file(file), file);
}

}  // namespace lwq
