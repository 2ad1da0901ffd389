// The parts of a Hugging Face config.json the forward pass and the quantizer
// need, for the decoder-only families lwquant supports (llama, qwen2, qwen3,
// mistral, and the mixtures of experts qwen3_moe and mixtral). Keys absent from the file take the transformers defaults of that
// family; both the transformers 4.x spelling (rope_scaling, torch_dtype) and
// the 5.x one (rope_parameters, dtype) are read.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "ops/rope.h"
#include "tensor/dtype.h"

namespace lwq {

// The sparse MLP of a mixture-of-experts family (num_experts == 0: none).
struct MoeConfig {
  int64_t num_experts = 0;           // qwen3_moe num_experts, mixtral num_local_experts
  int64_t experts_per_token = 0;     // num_experts_per_tok (top-k)
  int64_t expert_intermediate = 0;   // qwen3_moe moe_intermediate_size, mixtral intermediate_size
  bool renormalize_top_k = true;     // qwen3_moe norm_topk_prob; mixtral always
  int64_t sparse_step = 1;           // qwen3_moe decoder_sparse_step
  std::vector<int64_t> dense_layers; // qwen3_moe mlp_only_layers
};

struct ModelConfig {
  std::string model_type;  // "llama", "qwen2", "qwen3", "mistral", "qwen3_moe", "mixtral"
  std::filesystem::path source;  // the config.json read (for messages)

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;
  double rms_norm_eps = 1e-6;
  int64_t max_position_embeddings = 0;
  RopeParams rope;  // rope.theta included

  bool attention_bias = false;  // config.json's attention_bias (llama, qwen3: q/k/v/o)
  bool mlp_bias = false;        // llama only
  bool tie_word_embeddings = false;
  DType dtype = DType::F32;     // torch_dtype / dtype of the stored weights

  MoeConfig moe;

  // Per layer: attention window in tokens, 0 = full causal attention.
  std::vector<int64_t> layer_sliding_window;

  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // may be empty

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t sliding_window(int layer) const;
  // Whether layer k's MLP is the sparse mixture of experts (HF Qwen3MoeDecoderLayer's rule:
  // k not in mlp_only_layers and (k + 1) % decoder_sparse_step == 0; every layer for mixtral).
  bool is_moe_layer(int layer) const;
  std::optional<int32_t> eos_token_id() const {
    return eos_token_ids.empty() ? std::nullopt : std::optional<int32_t>(eos_token_ids.front());
  }
};

// Reads <dir>/config.json (or `dir` itself when it names a file). Throws
// lwq::Error naming config.json and the key for a missing required key, a
// value of the wrong type or range, an unknown model_type or rope type.
ModelConfig load_model_config(const std::filesystem::path& dir);

// The same from JSON text; `where` names the source in messages.
ModelConfig parse_model_config(const std::string& json_text, const std::filesystem::path& where);

std::vector<std::string> supported_model_types();

}  // namespace lwq
