#include "models/architecture.h"

#include <fmt/format.h>
#include <algorithm>
#include <set>
#include <fmt/ranges.h>

#include "io/checkpoint.h"
#include "util/error.h"

namespace lwq {
namespace {

// The Llama layer; families differ in biases and the q/k norms.
Architecture llama_like(std::string family, BiasRule qkv_bias, BiasRule o_bias, BiasRule mlp_bias, bool qk_norm) {
  Architecture a;
  a.family = std::move(family);
  a.roles = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             qk_norm ? "self_attn.q_norm" : "", qk_norm ? "self_attn.k_norm" : "", "post_attention_layernorm",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
  const LayerRoles& r = a.roles;
  a.linears = {{r.q, Dim::QDim, Dim::Hidden, qkv_bias},         {r.k, Dim::KVDim, Dim::Hidden, qkv_bias},
               {r.v, Dim::KVDim, Dim::Hidden, qkv_bias},        {r.o, Dim::Hidden, Dim::QDim, o_bias},
               {r.gate, Dim::Intermediate, Dim::Hidden, mlp_bias}, {r.up, Dim::Intermediate, Dim::Hidden, mlp_bias},
               {r.down, Dim::Hidden, Dim::Intermediate, mlp_bias}};
  a.norms = {{r.input_norm, Dim::Hidden}, {r.post_attention_norm, Dim::Hidden}};
  if (qk_norm) {
    a.norms.push_back({r.q_norm, Dim::HeadDim});
    a.norms.push_back({r.k_norm, Dim::HeadDim});
  }
  a.smooth_subgraphs = {{"norm-linear", r.input_norm, {r.q, r.k, r.v}},
                        {"norm-linear", r.post_attention_norm, {r.gate, r.up}},
                        {"ov", r.v, {r.o}},
                        {"up-down", r.up, {r.down}}};
  a.fused_groups = {{r.q, r.k, r.v}, {r.gate, r.up}};
  return a;
}

// Qwen3-MoE (HF Qwen3MoeSparseMoeBlock): softmax router in f32, top-k,
// renormalised only with norm_topk_prob, no shared experts; mlp_only_layers
// and decoder_sparse_step leave some layers dense. No post-attention-norm
// smoothing subgraph on MoE layers (spec §8).
Architecture qwen3_moe() {
  Architecture a = llama_like("qwen3_moe", BiasRule::AttentionBias, BiasRule::AttentionBias, BiasRule::None, true);
  a.sliding = SlidingRule::QwenMaxWindowLayers;
  a.default_max_position_embeddings = 32768;
  MoeTemplate m;
  m.num_experts_key = "num_experts";
  m.default_num_experts = 128;
  m.default_experts_per_token = 8;
  m.expert_intermediate_key = "moe_intermediate_size";
  m.norm_topk_prob_key = "norm_topk_prob";
  m.router = "mlp.gate";
  m.experts = "mlp.experts";
  m.gate = "gate_proj", m.up = "up_proj", m.down = "down_proj";
  m.fused = FusedExperts::OutMajor;
  m.smooth_expert_up_down = true;
  a.moe = m;
  return a;
}

// Mixtral (HF MixtralSparseMoeBlock): top-2 of a softmax router, always
// renormalised; experts w1 (gate), w3 (up), w2 (down).
Architecture mixtral() {
  Architecture a = llama_like("mixtral", BiasRule::None, BiasRule::None, BiasRule::None, false);
  a.sliding = SlidingRule::AllLayersDefaultOff;
  a.default_max_position_embeddings = 4096 * 32;
  MoeTemplate m;
  m.num_experts_key = "num_local_experts";
  m.default_num_experts = 8;
  m.default_experts_per_token = 2;
  m.router = "block_sparse_moe.gate";
  m.experts = "block_sparse_moe.experts";
  m.gate = "w1", m.up = "w3", m.down = "w2";
  m.fused = FusedExperts::None;
  a.moe = m;
  return a;
}

// The text decoder of Qwen3-VL-MoE (multimodal.md A.1–A.2): Qwen3-MoE layers
// under model.language_model, experts fused input-major, top-k always
// renormalised (HF ignores norm_topk_prob), interleaved mRoPE, no sliding
// window. Its smoothing subgraphs are the Qwen3 ones; on MoE layers only the
// attention ones exist, as the reference adapter declares (A.4.4).
Architecture qwen3_vl_moe_text() {
  Architecture a = qwen3_moe();
  a.family = "qwen3_vl_moe_text";
  a.layer_prefix = "model.language_model.layers";
  a.embed_tokens = "model.language_model.embed_tokens.weight";
  a.final_norm = "model.language_model.norm.weight";
  a.sliding = SlidingRule::None;
  a.default_max_position_embeddings = 128000;
  a.moe->default_num_experts = 60;
  a.moe->default_experts_per_token = 4;
  a.moe->norm_topk_prob_key = "";
  a.moe->fused = FusedExperts::InMajor;
  a.moe->smooth_expert_up_down = false;  // the reference adapter declares none (multimodal.md A.4.4)
  a.mrope = true;
  return a;
}

const std::vector<Architecture>& registry() {
  static const std::vector<Architecture> archs = [] {
    std::vector<Architecture> v;
    v.push_back(llama_like("llama", BiasRule::AttentionBias, BiasRule::AttentionBias, BiasRule::MlpBias, false));
    v.back().default_max_position_embeddings = 2048;
    v.push_back(llama_like("mistral", BiasRule::None, BiasRule::None, BiasRule::None, false));
    v.back().sliding = SlidingRule::AllLayers;
    v.back().default_max_position_embeddings = 4096 * 32;
    v.push_back(llama_like("qwen2", BiasRule::Always, BiasRule::None, BiasRule::None, false));
    v.back().sliding = SlidingRule::QwenMaxWindowLayers;
    v.back().default_max_position_embeddings = 32768;
    v.push_back(llama_like("qwen3", BiasRule::AttentionBias, BiasRule::AttentionBias, BiasRule::None, true));
    v.back().sliding = SlidingRule::QwenMaxWindowLayers;
    v.back().default_max_position_embeddings = 32768;
    v.push_back(qwen3_moe());
    v.push_back(mixtral());
    v.push_back(qwen3_vl_moe_text());
    return v;
  }();
  return archs;
}

bool bias_enabled(const ModelConfig& cfg, BiasRule rule) {
  switch (rule) {
    case BiasRule::None: return false;
    case BiasRule::Always: return true;
    case BiasRule::AttentionBias: return cfg.attention_bias;
    case BiasRule::MlpBias: return cfg.mlp_bias;
  }
  return false;
}

}  // namespace

const Architecture* find_architecture(std::string_view model_type) {
  for (const auto& a : registry())
    if (a.family == model_type) return &a;
  return nullptr;
}

std::vector<std::string> architecture_names() {
  std::vector<std::string> names;
  for (const auto& a : registry()) names.push_back(a.family);
  return names;
}

const Architecture& architecture_for(const ModelConfig& cfg) {
  const Architecture* a = find_architecture(cfg.model_type);
  if (!a) fail("model_type \"{}\" is not supported (supported: {})", cfg.model_type, fmt::join(architecture_names(), ", "));
  return *a;
}

int64_t dim_value(const ModelConfig& cfg, Dim d) {
  switch (d) {
    case Dim::Hidden: return cfg.hidden_size;
    case Dim::Intermediate: return cfg.intermediate_size;
    case Dim::QDim: return cfg.q_dim();
    case Dim::KVDim: return cfg.kv_dim();
    case Dim::HeadDim: return cfg.head_dim;
    case Dim::NumExperts: return cfg.moe.num_experts;
    case Dim::ExpertIntermediate: return cfg.moe.expert_intermediate;
  }
  return 0;
}

std::string expert_linear_name(const MoeTemplate& t, int64_t e, const std::string& which) {
  return fmt::format("{}.{}.{}", t.experts, e, which);
}

std::vector<const LinearDesc*> LayerDesc::expert_linears(int e) const {
  std::vector<const LinearDesc*> out;
  for (const auto& l : linears)
    if (l.expert == e) out.push_back(&l);
  return out;
}

LayerDesc layer_desc(const ModelConfig& cfg, int layer) {
  if (layer < 0 || layer >= cfg.num_hidden_layers)
    fail("layer {} out of range: config.json has num_hidden_layers={}", layer, cfg.num_hidden_layers);
  const Architecture& a = architecture_for(cfg);
  LayerDesc d;
  d.prefix = fmt::format("{}.{}", a.layer_prefix, layer);
  // Tensors in the order of the HF modules that hold them (msModelSlim's
  // saver walks named_modules(): the description and the index list them
  // so): each submodule's Linears, then its own norms (self_attn: q/k/v/o,
  // q_norm, k_norm; mlp), then the layer's norms (input_layernorm,
  // post_attention_layernorm).
  auto add_norms_of = [&](const std::string& group) {
    for (const auto& n : a.norms) {
      const size_t dot = n.name.find('.');
      if ((dot == std::string::npos ? std::string() : n.name.substr(0, dot)) == group)
        d.tensors.push_back({n.name + ".weight", {dim_value(cfg, n.dim)}});
    }
  };
  auto add = [&d](LinearDesc l, bool resident) {
    if (resident) {
      d.tensors.push_back({l.name + ".weight", {l.out_features, l.in_features}});
      if (l.has_bias) d.tensors.push_back({l.name + ".bias", {l.out_features}});
    }
    d.linears.push_back(std::move(l));
  };
  const bool moe = cfg.is_moe_layer(layer);
  const std::set<std::string> dense_mlp = {a.roles.gate, a.roles.up, a.roles.down};
  std::string group;
  for (const auto& t : a.linears) {
    const std::string g = t.name.substr(0, t.name.find('.'));
    if (g != group && !group.empty()) add_norms_of(group);
    group = g;
    if (moe && dense_mlp.count(t.name)) continue;
    add({t.name, dim_value(cfg, t.out), dim_value(cfg, t.in), bias_enabled(cfg, t.bias)}, true);
  }
  if (!group.empty()) add_norms_of(group);
  if (moe) {
    const MoeTemplate& m = *a.moe;
    const int64_t H = cfg.hidden_size, I = cfg.moe.expert_intermediate;
    add({m.router, cfg.moe.num_experts, H, false}, true);
    d.num_experts = cfg.moe.num_experts;
    for (int64_t e = 0; e < cfg.moe.num_experts; ++e) {
      const int ei = static_cast<int>(e);
      add({expert_linear_name(m, e, m.gate), I, H, false, ei}, false);
      add({expert_linear_name(m, e, m.up), I, H, false, ei}, false);
      add({expert_linear_name(m, e, m.down), H, I, false, ei}, false);
    }
  }
  add_norms_of("");  // the layer's own norms come last
  return d;
}

namespace {

std::string implied_by(const ModelConfig& cfg, const Shape& expected) {
  // Name the config keys that produce each expected extent.
  std::vector<std::string> keys;
  auto add = [&](std::string k) {
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(std::move(k));
  };
  for (int64_t e : expected) {
    if (e == cfg.vocab_size) add(fmt::format("vocab_size={}", cfg.vocab_size));
    if (e == cfg.hidden_size) add(fmt::format("hidden_size={}", cfg.hidden_size));
    if (e == cfg.intermediate_size) add(fmt::format("intermediate_size={}", cfg.intermediate_size));
    if (e == cfg.q_dim() && e != cfg.hidden_size)
      add(fmt::format("num_attention_heads={} x head_dim={}", cfg.num_attention_heads, cfg.head_dim));
    if (e == cfg.kv_dim() && e != cfg.hidden_size)
      add(fmt::format("num_key_value_heads={} x head_dim={}", cfg.num_key_value_heads, cfg.head_dim));
    if (e == cfg.head_dim) add(fmt::format("head_dim={}", cfg.head_dim));
    if (cfg.moe.num_experts > 0 && e == cfg.moe.num_experts) add(fmt::format("num_experts={}", cfg.moe.num_experts));
    if (cfg.moe.num_experts > 0 && e == cfg.moe.expert_intermediate && e != cfg.intermediate_size)
      add(fmt::format("moe_intermediate_size={}", cfg.moe.expert_intermediate));
  }
  return fmt::format("{}", fmt::join(keys, ", "));
}

}  // namespace

void check_tensor_shape(const ModelConfig& cfg, const std::string& name, const Shape& actual, const Shape& expected) {
  if (actual == expected) return;
  fail("tensor '{}' has shape {} but {} ({}) implies {}", name, shape_str(actual), cfg.source.filename().string(),
       implied_by(cfg, expected), shape_str(expected));
}

std::vector<TensorDesc> non_layer_tensors(const ModelConfig& cfg, const Checkpoint& ckpt) {
  const Architecture& a = architecture_for(cfg);
  std::vector<TensorDesc> out = {{a.embed_tokens, {cfg.vocab_size, cfg.hidden_size}},
                                 {a.final_norm, {cfg.hidden_size}},
                                 {a.lm_head, {cfg.vocab_size, cfg.hidden_size}}};
  for (const auto& t : out) {
    if (!ckpt.contains(t.name)) {
      if (t.name == a.lm_head && cfg.tie_word_embeddings) continue;
      fail("tensor '{}' is missing from checkpoint {}{}", t.name, ckpt.path().string(),
           t.name == a.lm_head ? " (tie_word_embeddings is false)" : "");
    }
    check_tensor_shape(cfg, t.name, ckpt.info(t.name).shape, t.shape);
  }
  return out;
}

}  // namespace lwq
