// Declarative descriptions of the supported decoder-only families. The
// forward pass, the loader and the runner read everything family-specific
// from here: adding a family with the Llama layer structure (pre-norm
// attention + gated MLP) means adding one descriptor in architecture.cc.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "models/model_config.h"
#include "tensor/tensor.h"

namespace lwq {

class Checkpoint;

// ---- resolved, per layer ----
struct LinearDesc {
  std::string name;  // relative to the layer, e.g. "self_attn.q_proj"
  int64_t out_features = 0, in_features = 0;
  bool has_bias = false;
};
struct TensorDesc {
  std::string name;  // relative to the layer ("input_layernorm.weight") or full for non-layer tensors
  Shape shape;
};
struct LayerDesc {
  std::string prefix;                // "model.layers.3"
  std::vector<LinearDesc> linears;   // execution order
  std::vector<TensorDesc> tensors;   // every tensor of the layer, linear weights/biases included
};

// ---- the family templates ----
enum class Dim { Hidden, Intermediate, QDim, KVDim, HeadDim };
enum class BiasRule { None, Always, AttentionBias /* config attention_bias */, MlpBias /* config mlp_bias */ };
enum class SlidingRule { None, AllLayers /* mistral */, QwenMaxWindowLayers /* use_sliding_window + max_window_layers */ };

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
};

// nullptr when the family is unknown.
const Architecture* find_architecture(std::string_view model_type);
const Architecture& architecture_for(const ModelConfig& cfg);  // throws for an unknown model_type
std::vector<std::string> architecture_names();

int64_t dim_value(const ModelConfig& cfg, Dim d);
LayerDesc layer_desc(const ModelConfig& cfg, int layer);

// Embedding, final norm and lm_head with their expected shapes. lm_head is
// listed for tied models too (serving engines look it up); it must be in the
// checkpoint unless tie_word_embeddings. Throws if a required one is absent
// or has the wrong shape.
std::vector<TensorDesc> non_layer_tensors(const ModelConfig& cfg, const Checkpoint& ckpt);

// Throws "tensor '<name>' has shape [..] but config.json (...) implies [..]".
void check_tensor_shape(const ModelConfig& cfg, const std::string& full_name, const Shape& actual, const Shape& expected);

}  // namespace lwq
