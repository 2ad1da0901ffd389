// The parts of a Hugging Face config.json the forward pass and the quantizer
// need, for the decoder-only families lwquant supports (llama, qwen2, qwen3,
// mistral). Keys absent from the file take the transformers defaults of that
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

struct ModelConfig {
  std::string model_type;  // "llama", "qwen2", "qwen3", "mistral"
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

  // Per layer: attention window in tokens, 0 = full causal attention.
  std::vector<int64_t> layer_sliding_window;

  std::optional<int32_t> bos_token_id;
  std::vector<int32_t> eos_token_ids;  // may be empty

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
  int64_t sliding_window(int layer) const;
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
