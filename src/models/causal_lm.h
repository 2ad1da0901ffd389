// A whole (small) causal LM in f32 for reference logits, perplexity and greedy
// generation, built from the same pieces a layer-wise evaluator reuses:
// EmbeddingTable, decoder_layer_forward, OutputHead.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "io/checkpoint.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"
#include "tensor/tensor.h"

namespace lwq {

// The token embedding matrix, kept in its stored dtype (rows are converted
// on lookup, so a 150k-vocab table costs no f32 copy).
class EmbeddingTable {
 public:
  static EmbeddingTable load(const Checkpoint& ckpt, const ModelConfig& cfg);
  explicit EmbeddingTable(Tensor table);  // [vocab, hidden], float dtype

  // [ids.size(), hidden] f32; throws for an id outside [0, vocab).
  std::vector<float> lookup(std::span<const int32_t> ids) const;
  int64_t vocab_size() const { return table_.dim(0); }
  int64_t hidden_size() const { return table_.dim(1); }
  const Tensor& table() const { return table_; }

 private:
  Tensor table_;
};

// In place: hidden [rows, hidden_size] ← RMSNorm(hidden) · norm_weight.
void apply_final_norm(const ModelConfig& cfg, std::span<const float> norm_weight, float* hidden, int64_t rows);
// logits [rows, vocab] = normed [rows, hidden] · lm_head[vocab, hidden]ᵀ.
std::vector<float> lm_head_logits(const float* normed, int64_t rows, std::span<const float> lm_head, int64_t vocab,
                                  int64_t hidden);

// Final norm + lm_head in f32; a tied head is the embedding matrix.
struct OutputHead {
  std::vector<float> norm_weight;  // [hidden]
  std::vector<float> lm_head;      // [vocab, hidden]
  int64_t vocab = 0, hidden = 0;

  static OutputHead load(const Checkpoint& ckpt, const ModelConfig& cfg);
  // Logits of the residual stream after the last layer (not modified).
  std::vector<float> logits(const ModelConfig& cfg, const float* hidden_states, int64_t rows) const;
};

class CausalLM {
 public:
  // Loads config.json and every weight of the model folder (as f32).
  static CausalLM load(const std::filesystem::path& dir);

  const ModelConfig& config() const { return cfg_; }
  const EmbeddingTable& embedding() const { return embed_; }
  const OutputHead& head() const { return head_; }
  const LayerWeights& layer(int k) const { return layers_.at(static_cast<size_t>(k)); }

  // Residual stream after `n_layers` layers (all when < 0), [T, hidden];
  // positions 0..T−1.
  std::vector<float> hidden_states(std::span<const int32_t> tokens, int n_layers = -1) const;
  // [T, vocab] for positions 0..T−1.
  std::vector<float> logits(std::span<const int32_t> tokens) const;
  // The prompt followed by up to max_new_tokens argmax tokens (ties → lowest
  // id); stops after emitting stop_id. Uses a KV cache: the prompt runs
  // once, then one token per step (with dynamic NTK rope this follows HF
  // generate, not a full forward per step).
  std::vector<int32_t> greedy(std::span<const int32_t> prompt, int max_new_tokens,
                              std::optional<int32_t> stop_id = std::nullopt) const;

 private:
  CausalLM(ModelConfig cfg, EmbeddingTable embed, std::vector<LayerWeights> layers, OutputHead head)
      : cfg_(std::move(cfg)), embed_(std::move(embed)), layers_(std::move(layers)), head_(std::move(head)) {}

  ModelConfig cfg_;
  EmbeddingTable embed_;
  std::vector<LayerWeights> layers_;
  OutputHead head_;
};

}  // namespace lwq
