// The routed experts of a mixture-of-experts layer, read one expert at a
// time: a Qwen3-235B layer holds 128 experts (≈ 4.8 GB of bf16), so the
// runner keeps attention + router resident and streams the experts through
// (spec §4.8; lwquant goes below the reference's whole-layer residency).
//
// Two on-disk layouts, both exposed under the per-expert export names the
// engines load (`<experts>.<e>.{gate,up,down}` + ".weight", spec §4.8):
//   * per expert: `<experts>.<e>.<gate|up|down>.weight` [out, in] (released
//     Qwen3-MoE and Mixtral checkpoints);
//   * fused 3-D: `<experts>.gate_up_proj` and `<experts>.down_proj`, whose
//     orientation the family declares (FusedExperts); expert e is read as one
//     slice, gate = the first half of the 2I extent, transposed to [I, H]
//     when the tensor is input-major.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <string>
#include <vector>

#include "io/mapped_bytes.h"
#include "models/architecture.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"

namespace lwq {

class Checkpoint;

enum class ExpertStorage { PerExpert, Fused };

// Which layout layer `layer` uses, after checking the checkpoint against
// config.json: every expert present (per expert) or the fused tensors' shapes
// in the family's orientation, and no expert index ≥ num_experts. Throws
// naming the tensor and what was expected.
ExpertStorage expert_storage(const Checkpoint& ckpt, const ModelConfig& cfg, int layer);

// Checkpoint tensor names holding layer `layer`'s routed experts.
std::vector<std::string> expert_checkpoint_tensors(const Checkpoint& ckpt, const ModelConfig& cfg, int layer);

// Expert e's weights as a small LayerWeights keyed by the per-expert names
// ("mlp.experts.3.gate_proj.weight"); 16-bit weights stay in their dtype
// (`stored`), F32 ones go to `tensors`, as load_layer_weights does.
LayerWeights read_expert(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, int expert, ExpertStorage storage);

// Expert e's Linear weights as views of the checkpoint's own bytes, mapped
// rather than copied, for a consumer that reads each once (data-free
// quantization): on a page-cached checkpoint the copy a read makes is most of
// the CPU the expert costs. Checked finite like read_expert (same errors).
// Empty when the layout needs a copy (fused input-major tensors are
// transposed): use read_expert then. With check_finite false the caller
// checks (a quantizer that finds non-finite rows anyway: one pass over the
// bytes instead of two) and calls ExpertStream::check_finite on a failure.
struct ExpertView {
  struct Weight {
    DType dtype;
    Shape shape;  // [out, in]
    const void* data;
  };
  std::map<std::string, Weight> weights;  // read_expert's names
  std::vector<MappedBytes> maps;          // what the views point into
  bool empty() const { return weights.empty(); }
};
bool expert_mappable(const ModelConfig& cfg, int layer, ExpertStorage storage);
ExpertView map_expert(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, int expert, ExpertStorage storage,
                      bool check_finite = true);
// A view's bytes as an owning Tensor (a weight saved unquantized).
Tensor copy_view(const ExpertView::Weight& w);

// One expert's slices of the fused tensors (gate_up [2I, H] or [H, 2I], down
// [H, I] or [I, H], per `orientation`) as the three [out, in] Linear weights
// the engines load: gate = the first half of the 2I extent (spec §4.8).
struct ExpertLinears {
  Tensor gate, up, down;
};
ExpertLinears split_fused_expert(const Tensor& gate_up, const Tensor& down, FusedExperts orientation, int64_t I,
                                 int64_t H);

// Moves expert e's tensors into / out of a layer's weights.
void insert_expert(LayerWeights& layer, LayerWeights&& expert);
void erase_expert(LayerWeights& layer, const LayerDesc& desc, int expert);

// What a model does to each expert as it is read (QuaRot's rotation), on
// the reading thread: a prefetched expert arrives transformed.
using ExpertTransform = std::function<void(int expert, LayerWeights& weights)>;
// `first` then `second` (either may be empty).
ExpertTransform then(ExpertTransform first, ExpertTransform second);

// Hands a layer's experts to the forward one at a time: acquire(e) puts
// expert e's weights into the layer (reading e+1 in the background while e
// is used, when prefetch is on), release(e) drops them again. With a layer
// that already holds every expert (CausalLM, eval) use nullptr instead.
// Every expert handed out has been through `transform` when one is given.
class ExpertStream {
 public:
  ExpertStream(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, LayerWeights& weights, bool prefetch,
               ExpertTransform transform = {});
  ~ExpertStream();
  ExpertStream(const ExpertStream&) = delete;
  ExpertStream& operator=(const ExpertStream&) = delete;

  void acquire(int expert);
  void release(int expert);
  // Expert e's weights on their own, not put into the layer (for a consumer
  // on another thread); reads e+1 in the background like acquire().
  LayerWeights take(int expert);
  // The same as mapped views (map_expert), prefetching e+1's mapping; only
  // when mappable() (else take()): never with a transform, as a view holds
  // the checkpoint's bytes.
  bool mappable() const;
  ExpertView take_view(int expert, bool check_finite = true);
  // Throws read_expert's error (naming the tensor, file and element) when a
  // weight of expert e is not finite.
  void check_finite(int expert) const;
  // Largest bytes of one expert's weights (for memory figures).
  size_t expert_bytes() const { return expert_bytes_; }

 private:
  std::future<LayerWeights> start(int expert);
  LayerWeights read(int expert) const;  // read_expert, then the transform
  void wait_pending();

  const Checkpoint& ckpt_;
  const ModelConfig& cfg_;
  int layer_;
  LayerWeights& weights_;
  bool prefetch_;
  ExpertTransform transform_;
  ExpertStorage storage_;
  LayerDesc desc_;
  std::future<LayerWeights> next_;
  std::future<ExpertView> next_view_;
  int next_expert_ = -1;
  size_t expert_bytes_ = 0;
};

// Reads every expert into `weights` (whole-layer users: CausalLM, eval).
void load_all_experts(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, LayerWeights& weights);

}  // namespace lwq
