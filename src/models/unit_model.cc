#include "models/unit_model.h"

#include <set>

#include "io/checkpoint.h"
#include "models/causal_lm.h"
#include "util/error.h"

namespace lwq {
namespace {

// The decoder-only LLM families: units are the decoder layers of
// architecture.cc's descriptors, fed by the token embedding.
class DecoderLM : public UnitModel {
 public:
  DecoderLM(const ModelConfig& cfg, const Checkpoint& ckpt) : cfg_(cfg), ckpt_(ckpt), arch_(architecture_for(cfg)) {}

  const ModelConfig& config() const override { return cfg_; }
  int num_units() const override { return cfg_.num_hidden_layers; }
  LayerDesc unit(int k) const override { return layer_desc(cfg_, k); }
  LayerWeights load(int k) const override {
    return load_layer_weights(ckpt_, cfg_, k, /*with_experts=*/false, map_linears_);
  }
  void map_linear_weights(bool on) override { map_linears_ = on; }

  std::unique_ptr<ExpertStream> part_stream(int k, LayerWeights& weights, bool prefetch) const override {
    if (!cfg_.is_moe_layer(k)) return nullptr;
    return std::make_unique<ExpertStream>(ckpt_, cfg_, k, weights, prefetch);
  }

  void forward(int k, const LayerWeights& weights, std::span<const SequenceRef> seqs, LinearExecutor* exec,
               ExpertStream* parts, std::vector<int64_t>* tokens_per_expert) const override {
    decoder_layer_forward_batch(cfg_, weights, k, seqs, exec, parts, tokens_per_expert);
  }

  std::vector<std::string> checkpoint_tensors(int k) const override {
    LayerDesc d = layer_desc(cfg_, k);
    std::vector<std::string> names;
    for (const auto& t : d.tensors) names.push_back(d.prefix + "." + t.name);
    if (d.num_experts > 0)
      for (auto& n : expert_checkpoint_tensors(ckpt_, cfg_, k)) names.push_back(std::move(n));
    return names;
  }

  std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& ids) const override {
    EmbeddingTable table = EmbeddingTable::load(ckpt_, cfg_);
    std::vector<std::vector<float>> out;
    out.reserve(ids.size());
    for (const auto& seq : ids) out.push_back(table.lookup(seq));
    return out;
  }

  std::vector<TensorDesc> outer_tensors() const override { return non_layer_tensors(cfg_, ckpt_); }

  Tensor read_outer_tensor(const std::string& name) const override {
    if (ckpt_.contains(name)) {
      Tensor t = ckpt_.read(name);
      check_finite(t, name, ckpt_.file_of(name).string());
      return t;
    }
    // Tied head: serving engines look lm_head.weight up (spec §10 fact 16).
    if (name == arch_.lm_head && cfg_.tie_word_embeddings) return read_outer_tensor(arch_.embed_tokens);
    fail("tensor '{}' not found in checkpoint {}", name, ckpt_.path().string());
  }

  std::string router(int k) const override { return cfg_.is_moe_layer(k) ? arch_.moe->router : ""; }

 private:
  const ModelConfig& cfg_;
  const Checkpoint& ckpt_;
  const Architecture& arch_;
  bool map_linears_ = false;
};

}  // namespace

std::unique_ptr<UnitModel> open_unit_model(const ModelConfig& cfg, const Checkpoint& ckpt) {
  return std::make_unique<DecoderLM>(cfg, ckpt);
}

}  // namespace lwq
