// Declarative descriptions of the supported decoder-only families. The
// forward pass, the loader and the runner read everything family-specific
// from here: adding a family with the Llama layer structure (pre-norm
// attention + gated MLP) means adding one descriptor in architecture.cc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "models/model_config.h"
#include "tensor/tensor.h"

namespace lwq {

class Checkpoint;

// ---- resolved, per layer ----
struct LinearDesc {
  std::string name;  // relative to the layer, e.g. "self_attn.q_proj", "mlp.experts.3.down_proj"
  int64_t out_features = 0, in_features = 0;
  bool has_bias = false;
  int expert = -1;   // the routed expert this Linear belongs to, or -1
};
struct TensorDesc {
  std::string name;  // relative to the layer ("input_layernorm.weight") or full for non-layer tensors
  Shape shape;
};
struct LayerDesc {
  std::string prefix;                // "model.layers.3"
  std::vector<LinearDesc> linears;   // execution order; routed experts' Linears last, expert by expert
  // Every tensor loaded with the layer, linear weights/biases included —
  // except the routed experts' weights, which are read one expert at a time
  // (models/experts.h) and named by their per-expert export names.
  std::vector<TensorDesc> tensors;
  int64_t num_experts = 0;           // > 0 on a mixture-of-experts layer
  // The Linears of expert e, in execution order (gate, up, down).
  std::vector<const LinearDesc*> expert_linears(int e) const;
};

// ---- the family templates ----
enum class Dim { Hidden, Intermediate, QDim, KVDim, HeadDim, NumExperts, ExpertIntermediate };
enum class BiasRule { None, Always, AttentionBias /* config attention_bias */, MlpBias /* config mlp_bias */ };
enum class SlidingRule {
  None,
  AllLayers /* mistral: sliding_window, default 4096 */,
  AllLayersDefaultOff /* mixtral: sliding_window, default none */,
  QwenMaxWindowLayers /* use_sliding_window + max_window_layers */
};

struct LinearTemplate {
  std::string name;
  Dim out, in;
  BiasRule bias;
};
struct NormTemplate {
  std::string name;  // module name; its tensor is name + ".weight"
  Dim dim;
};

// Smoothing subgraphs (msModelSlim get_adapter_config_for_subgraph), names
// relative to the layer. type: "norm-linear", "ov", "up-down".
struct SmoothSubgraph {
  std::string type;
  std::string source;
  std::vector<std::string> targets;
};

// How a family stores its routed experts' weights when they are fused into
// 3-D tensors. Decided by the family (the format that writes it), never by
// shapes: H may equal 2I.
enum class FusedExperts {
  None,      // the family is only known with per-expert Linears
  OutMajor,  // gate_up_proj [E, 2I, H], down_proj [E, H, I] (transformers 5 qwen3_moe / mixtral)
  InMajor,   // gate_up_proj [E, H, 2I], down_proj [E, I, H] (qwen3_vl_moe, multimodal.md A.1.1)
};

// The sparse MLP of a mixture-of-experts family: config keys, router and
// expert module names (relative to the layer).
struct MoeTemplate {
  std::string num_experts_key;          // "num_experts" / "num_local_experts"
  int64_t default_num_experts = 8, default_experts_per_token = 2;
  std::string expert_intermediate_key;  // "moe_intermediate_size"; empty: intermediate_size
  std::string norm_topk_prob_key;       // "norm_topk_prob"; empty: top-k weights always renormalised
  std::string router;                   // "mlp.gate" / "block_sparse_moe.gate" (a Linear [E, H])
  std::string experts;                  // "mlp.experts"
  std::string gate, up, down;           // per-expert Linears: "gate_proj", "up_proj", "down_proj" / "w1", "w3", "w2"
  FusedExperts fused = FusedExperts::None;
  std::string fused_gate_up = "gate_up_proj", fused_down = "down_proj";  // under `experts`, no ".weight"
  // Whether smoothing's `up-down` type also smooths each routed expert's
  // up → down (msModelSlim's Qwen3-MoE adapter declares it; spec §8).
  bool smooth_expert_up_down = false;
};

// Module names the forward pass uses for each role of a Llama-style layer.
struct LayerRoles {
  std::string input_norm, q, k, v, o, q_norm /* empty: none */, k_norm, post_attention_norm, gate, up, down;
};

struct Architecture {
  std::string family;  // config.json model_type
  std::string layer_prefix = "model.layers";
  std::string embed_tokens = "model.embed_tokens.weight";
  std::string final_norm = "model.norm.weight";
  std::string lm_head = "lm_head.weight";
  LayerRoles roles;
  std::vector<LinearTemplate> linears;  // execution order
  std::vector<NormTemplate> norms;
  std::vector<SmoothSubgraph> smooth_subgraphs;
  // Linears that serving engines fuse (must share activation quantization).
  std::vector<std::vector<std::string>> fused_groups;
  SlidingRule sliding = SlidingRule::None;
  int64_t default_max_position_embeddings = 2048;
  std::optional<MoeTemplate> moe;  // mixture-of-experts families
  bool mrope = false;              // Qwen3-VL's multimodal rope (rope_scaling.mrope_section)
};

// nullptr when the family is unknown.
const Architecture* find_architecture(std::string_view model_type);
const Architecture& architecture_for(const ModelConfig& cfg);  // throws for an unknown model_type
std::vector<std::string> architecture_names();

int64_t dim_value(const ModelConfig& cfg, Dim d);
// "mlp.experts.3.gate_proj": expert e's Linear `which` (the template's gate/up/down name).
std::string expert_linear_name(const MoeTemplate& t, int64_t e, const std::string& which);
LayerDesc layer_desc(const ModelConfig& cfg, int layer);

// Embedding, final norm and lm_head with their expected shapes. lm_head is
// listed for tied models too (serving engines look it up); it must be in the
// checkpoint unless tie_word_embeddings. Throws if a required one is absent
// or has the wrong shape.
std::vector<TensorDesc> non_layer_tensors(const ModelConfig& cfg, const Checkpoint& ckpt);

// Throws "tensor '<name>' has shape [..] but config.json (...) implies [..]".
void check_tensor_shape(const ModelConfig& cfg, const std::string& full_name, const Shape& actual, const Shape& expected);

}  // namespace lwq
