#include "models/causal_lm.h"

#include <algorithm>

#include "models/architecture.h"
#include "ops/gemm.h"
#include "ops/norm.h"
#include "util/error.h"

namespace lwq {
namespace {

// Reads a float tensor after checking it against the descriptor's shape.
Tensor read_checked(const Checkpoint& ckpt, const ModelConfig& cfg, const std::string& name, const Shape& shape) {
  if (!ckpt.contains(name)) fail("tensor '{}' is missing from checkpoint {}", name, ckpt.path().string());
  const TensorInfo& info = ckpt.info(name);
  check_tensor_shape(cfg, name, info.shape, shape);
  if (!is_float(info.dtype))
    fail("tensor '{}' has dtype {}; a float dtype (F32, F16, BF16) is expected", name, dtype_name(info.dtype));
  Tensor t = ckpt.read(name);
  check_finite(t, name, ckpt.file_of(name).string());
  return t;
}

}  // namespace

EmbeddingTable::EmbeddingTable(Tensor table) : table_(std::move(table)) {
  if (table_.shape.size() != 2 || !is_float(table_.dtype))
    fail("embedding table must be a 2-D float tensor, got {} {}", dtype_name(table_.dtype), shape_str(table_.shape));
}

EmbeddingTable EmbeddingTable::load(const Checkpoint& ckpt, const ModelConfig& cfg) {
  const Architecture& a = architecture_for(cfg);
  return EmbeddingTable(read_checked(ckpt, cfg, a.embed_tokens, {cfg.vocab_size, cfg.hidden_size}));
}

std::vector<float> EmbeddingTable::lookup(std::span<const int32_t> ids) const {
  const int64_t h = hidden_size(), v = vocab_size();
  const size_t row_bytes = static_cast<size_t>(h) * dtype_size(table_.dtype);
  std::vector<float> out(ids.size() * static_cast<size_t>(h));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= v) fail("token id {} at index {} is outside the vocabulary [0, {})", ids[i], i, v);
    convert_to_f32(table_.dtype, table_.bytes.data() + static_cast<size_t>(ids[i]) * row_bytes,
                   out.data() + i * static_cast<size_t>(h), static_cast<size_t>(h));
  }
  return out;
}

void apply_final_norm(const ModelConfig& cfg, std::span<const float> norm_weight, float* hidden, int64_t rows) {
  if (static_cast<int64_t>(norm_weight.size()) != cfg.hidden_size)
    fail("final norm weight has {} values, hidden_size is {}", norm_weight.size(), cfg.hidden_size);
  rms_norm(hidden, norm_weight.data(), rows, cfg.hidden_size, static_cast<float>(cfg.rms_norm_eps), hidden);
}

std::vector<float> lm_head_logits(const float* normed, int64_t rows, std::span<const float> lm_head, int64_t vocab,
                                  int64_t hidden) {
  if (static_cast<int64_t>(lm_head.size()) != vocab * hidden)
    fail("lm_head has {} values, expected vocab {} x hidden {}", lm_head.size(), vocab, hidden);
  std::vector<float> logits(static_cast<size_t>(rows * vocab));
  matmul_nt(normed, rows, hidden, lm_head.data(), vocab, logits.data());
  return logits;
}

OutputHead OutputHead::load(const Checkpoint& ckpt, const ModelConfig& cfg) {
  const Architecture& a = architecture_for(cfg);
  OutputHead h;
  h.vocab = cfg.vocab_size;
  h.hidden = cfg.hidden_size;
  h.norm_weight = to_f32(read_checked(ckpt, cfg, a.final_norm, {cfg.hidden_size}));
  // A tied model may still store lm_head.weight (HF keeps both keys); the
  // embedding is what HF uses then, so read that.
  const std::string& head_name = cfg.tie_word_embeddings ? a.embed_tokens : a.lm_head;
  h.lm_head = to_f32(read_checked(ckpt, cfg, head_name, {cfg.vocab_size, cfg.hidden_size}));
  return h;
}

std::vector<float> OutputHead::logits(const ModelConfig& cfg, const float* hidden_states, int64_t rows) const {
  std::vector<float> normed(hidden_states, hidden_states + rows * hidden);
  apply_final_norm(cfg, norm_weight, normed.data(), rows);
  return lm_head_logits(normed.data(), rows, lm_head, vocab, hidden);
}

CausalLM CausalLM::load(const std::filesystem::path& dir) {
  ModelConfig cfg = load_model_config(dir);
  Checkpoint ckpt = Checkpoint::open(dir);
  EmbeddingTable embed = EmbeddingTable::load(ckpt, cfg);
  std::vector<LayerWeights> layers;
  for (int k = 0; k < cfg.num_hidden_layers; ++k) layers.push_back(load_layer_weights(ckpt, cfg, k));
  OutputHead head = OutputHead::load(ckpt, cfg);
  return CausalLM(std::move(cfg), std::move(embed), std::move(layers), std::move(head));
}

std::vector<float> CausalLM::hidden_states(std::span<const int32_t> tokens, int n_layers) const {
  if (n_layers < 0 || n_layers > cfg_.num_hidden_layers) n_layers = cfg_.num_hidden_layers;
  const int64_t seq = static_cast<int64_t>(tokens.size());
  std::vector<float> h = embed_.lookup(tokens);
  std::vector<int32_t> positions(tokens.size());
  for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int32_t>(i);
  for (int k = 0; k < n_layers; ++k) decoder_layer_forward(cfg_, layers_[static_cast<size_t>(k)], k, h.data(), seq, positions.data());
  return h;
}

std::vector<float> CausalLM::logits(std::span<const int32_t> tokens) const {
  std::vector<float> h = hidden_states(tokens);
  return head_.logits(cfg_, h.data(), static_cast<int64_t>(tokens.size()));
}

std::vector<int32_t> CausalLM::greedy(std::span<const int32_t> prompt, int max_new_tokens,
                                      std::optional<int32_t> stop_id) const {
  if (prompt.empty()) fail("greedy generation needs at least one prompt token");
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  std::vector<LayerKVCache> cache(static_cast<size_t>(cfg_.num_hidden_layers));
  // The first step runs the whole prompt, later ones only the newest token.
  size_t done = 0;
  for (int step = 0; step < max_new_tokens; ++step) {
    std::span<const int32_t> fresh(ids.data() + done, ids.size() - done);
    const int64_t n = static_cast<int64_t>(fresh.size());
    std::vector<float> h = embed_.lookup(fresh);
    std::vector<int32_t> positions(fresh.size());
    for (size_t i = 0; i < positions.size(); ++i) positions[i] = static_cast<int32_t>(done + i);
    for (int k = 0; k < cfg_.num_hidden_layers; ++k)
      decoder_layer_forward_cached(cfg_, layers_[static_cast<size_t>(k)], k, h.data(), n, positions.data(),
                                   cache[static_cast<size_t>(k)]);
    done = ids.size();
    std::vector<float> row = head_.logits(cfg_, h.data() + (n - 1) * cfg_.hidden_size, 1);
    const int32_t next = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    ids.push_back(next);
    if (stop_id && next == *stop_id) break;
  }
  return ids;
}

}  // namespace lwq
