// What the layer-wise runner needs of a model, and nothing family-specific:
// its units in execution order (decoder layers today; a vision tower or a DiT
// block are units too), what each unit holds, how to load it and run it over
// the calibration stream, and the tensors outside every unit. The runner calls
// only this interface; a family plugs in by implementing it. The decoder-only
// LLM families (dense and mixture-of-experts) share one implementation over
// the descriptors of architecture.cc (open_unit_model).
#pragma once

#include <cstdint>
#include <filesystem>
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
struct QuarotPlan;

// One calibration sample as the first unit sees it.
struct UnitInput {
  std::vector<int32_t> positions;  // one per row: token positions (a DiT: 0..rows-1)
  std::vector<float> hidden;       // [rows, width]
  int64_t seq() const { return static_cast<int64_t>(positions.size()); }
};

struct CalibrationSource {
  std::filesystem::path file;  // the dataset (prompts) or captured inputs, resolved
  std::filesystem::path model_dir;
  int max_samples = 0;         // 0 = all
  // Vision-language models: the prompt of entries without text
  // (spec.default_text), and whether text-only entries are allowed.
  std::string default_text = "Describe this image in detail.";
  bool allow_text_only = false;
};

class UnitModel {
 public:
  virtual ~UnitModel() = default;

  // What the runner reports and encodes by: config's model_type ("qwen3",
  // "wan2.1"), the checkpoint's float dtype (the serving dtype of scales),
  // and the width of the rows flowing between units.
  virtual std::string model_type() const = 0;
  virtual DType dtype() const = 0;
  virtual int64_t width() const = 0;
  // The decoder-only LLM's config, which smoothing and quarot need; nullptr
  // for other families (they refuse those processors by name).
  virtual const ModelConfig* lm_config() const { return nullptr; }

  virtual int num_units() const = 0;
  // Unit k's prefix, resident tensors and every Linear (routed experts' ones
  // under their per-expert export names).
  virtual LayerDesc unit(int k) const = 0;
  // Unit k's resident tensors (checked: presence, dtype, shape, finiteness).
  virtual LayerWeights load(int k) const = 0;
  // Offline QuaRot (models/quarot.h; the plan outlives the model's use): from
  // now on load(k) returns unit k rotated and part_stream(k, …) yields rotated
  // parts, so a streamed unit is rotated part by part as it is read. The
  // model decides what its units' rotation is; the tensors outside the units
  // (embeddings, head) and the calibration rows are the caller's. nullptr:
  // unrotated. A model that cannot be rotated refuses (the default).
  virtual void set_quarot(const QuarotPlan* plan);
  // quarot `online` (models/quarot.h): unit k's online input rotations fused
  // into `w` and recorded for its forwards, at the quarot processor's place
  // in the unit's process list. Nothing for a unit without them (a vision
  // tower) or without a plan with online rotation.
  virtual void rotate_online(int k, LayerWeights& w) const {}
  // How load() holds Linear weights (LinearWeightHold: read, mapped for runs
  // that read each weight once, streamed for calibrated runs). A family may
  // ignore it and read them.
  virtual void hold_linear_weights(LinearWeightHold) {}
  // The parts of unit k read one at a time while it runs (routed experts),
  // or nullptr when the unit has none.
  // `after` runs on each part after the model's own transforms (rotation):
  // the runner's per-expert smoothing.
  virtual std::unique_ptr<ExpertStream> part_stream(int k, LayerWeights& weights, bool prefetch,
                                                    ExpertTransform after = {}) const = 0;
  // Every calibration sequence through unit k, in place. `parts` as returned
  // by part_stream (or nullptr when the unit holds everything).
  virtual void forward(int k, const LayerWeights& weights, std::span<const SequenceRef> seqs, LinearExecutor* exec,
                       ExpertStream* parts, std::vector<int64_t>* tokens_per_expert) const = 0;
  // Checkpoint tensor names unit k owns (for the "belongs to no module" check).
  virtual std::vector<std::string> checkpoint_tensors(int k) const = 0;
  // The calibration samples' inputs to unit 0 (prompts tokenized and
  // embedded; a DiT's captured block inputs). SequenceRef::sample indexes
  // them in forward(), for the per-sample inputs a model keeps itself.
  virtual std::vector<UnitInput> calibration_inputs(const CalibrationSource& source) = 0;
  // Tensors outside every unit (embeddings, final norm, head), with shapes,
  // and their content as the output stores them (a tied head: the embedding).
  virtual std::vector<TensorDesc> outer_tensors() const = 0;
  virtual Tensor read_outer_tensor(const std::string& name) const = 0;
  // The same a block of rows at a time (rows along the first dimension, in
  // the stored dtype): an embedding or head of a large vocabulary is never
  // held whole. The defaults read the whole tensor.
  virtual DType outer_dtype(const std::string& name) const { return read_outer_tensor(name).dtype; }
  virtual void read_outer_rows(const std::string& name, int64_t row0, int64_t rows, void* dst) const;
  // The checkpoint's name of an output tensor name (a diffusers Wan
  // checkpoint stores the original Wan names under others).
  virtual std::string checkpoint_name(const std::string& name) const { return name; }
  // The MoE router of unit k, or "" (its input range feeds the cold-expert rule).
  virtual std::string router(int k) const = 0;
};

// The checkpoint tensor behind a decoder LLM's outer tensor `name`: itself,
// or for a tied head (no lm_head.weight stored) the embedding.
std::string stored_outer_name(const Checkpoint& ckpt, const ModelConfig& cfg, const std::string& name);

// Rows [row0, row0 + rows) of checkpoint tensor `name` into dst (its stored
// dtype), checked to be finite (the error names the tensor and the file).
void read_checkpoint_rows(const Checkpoint& ckpt, const std::string& name, int64_t row0, int64_t rows, void* dst);

// The embedding rows of `ids` as f32 [ids, hidden], read from the checkpoint
// row by row (a large vocabulary's table is never loaded whole); the table's
// shape and dtype checked against the config.
std::vector<float> embed_token_rows(const Checkpoint& ckpt, const ModelConfig& cfg, std::span<const int32_t> ids);

// The folder holding a model's config.json and weights: `path` itself, or
// the transformer/ folder of a diffusers pipeline (model_index.json beside it).
std::filesystem::path resolve_model_folder(const std::filesystem::path& path);

// The kind of model in `model_dir`, which picks the built-in practices
// (configs/, configs/moe/, configs/wan/): "llm", "moe" or "wan".
std::string model_kind(const std::filesystem::path& model_dir);

// The model in `model_dir` (config.json decides the family); `ckpt` its
// weights, which must outlive the model.
std::unique_ptr<UnitModel> open_unit_model(const std::filesystem::path& model_dir, const Checkpoint& ckpt);

}  // namespace lwq
