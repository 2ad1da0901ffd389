// What the layer-wise runner needs of a model, and nothing family-specific:
// its units in execution order (decoder layers today; a vision tower or a DiT
// block are units too), what each unit holds, how to load it and run it over
// the calibration stream, and the tensors outside every unit. The runner calls
// only this interface; a family plugs in by implementing it. The decoder-only
// LLM families (dense and mixture-of-experts) share one implementation over
// the descriptors of architecture.cc (open_unit_model).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "models/architecture.h"
#include "models/decoder_layer.h"
#include "models/experts.h"
#include "models/model_config.h"
#include "tensor/tensor.h"

namespace lwq {

class Checkpoint;

class UnitModel {
 public:
  virtual ~UnitModel() = default;

  virtual const ModelConfig& config() const = 0;
  virtual int num_units() const = 0;
  // Unit k's prefix, resident tensors and every Linear (routed experts' ones
  // under their per-expert export names).
  virtual LayerDesc unit(int k) const = 0;
  // Unit k's resident tensors (checked: presence, dtype, shape, finiteness).
  virtual LayerWeights load(int k) const = 0;
  // Whether load() may map Linear weights instead of reading them
  // (LayerWeights::mapped): for runs that only read each weight once
  // (data-free quantization). A family may ignore it.
  virtual void map_linear_weights(bool) {}
  // The parts of unit k read one at a time while it runs (routed experts),
  // or nullptr when the unit has none.
  virtual std::unique_ptr<ExpertStream> part_stream(int k, LayerWeights& weights, bool prefetch) const = 0;
  // Every calibration sequence through unit k, in place. `parts` as returned
  // by part_stream (or nullptr when the unit holds everything).
  virtual void forward(int k, const LayerWeights& weights, std::span<const SequenceRef> seqs, LinearExecutor* exec,
                       ExpertStream* parts, std::vector<int64_t>* tokens_per_expert) const = 0;
  // Checkpoint tensor names unit k owns (for the "belongs to no module" check).
  virtual std::vector<std::string> checkpoint_tensors(int k) const = 0;
  // The unit stream's inputs for token ids: one [ids.size(), hidden] matrix per sequence.
  virtual std::vector<std::vector<float>> embed(const std::vector<std::vector<int32_t>>& ids) const = 0;
  // Tensors outside every unit (embeddings, final norm, head), with shapes,
  // and their content as the output stores them (a tied head: the embedding).
  virtual std::vector<TensorDesc> outer_tensors() const = 0;
  virtual Tensor read_outer_tensor(const std::string& name) const = 0;
  // The MoE router of unit k, or "" (its input range feeds the cold-expert rule).
  virtual std::string router(int k) const = 0;
};

std::unique_ptr<UnitModel> open_unit_model(const ModelConfig& cfg, const Checkpoint& ckpt);

}  // namespace lwq
