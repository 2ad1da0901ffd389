// Qwen3-VL-MoE (multimodal.md A) as units for the layer-wise runner: unit 0
// is the whole vision tower (model.visual, quantized and freed before any
// text layer is read), units 1..L the text decoder's MoE layers under
// model.language_model (fused input-major experts streamed one at a time,
// interleaved mRoPE, deepstack features added after the first text layers).
//
// Calibration samples are image + text, built as msModelSlim's adapter builds
// them (chat template with add_generation_prompt, image-pad expansion, HF
// get_rope_index positions). The rows flowing between units are the
// sample's S tokens followed by its deepstack features (one block of image-
// token rows per deepstack level): the vision unit writes them, text layer i
// adds block i to the image rows and zeroes it. Carrying them in the stream
// keeps them under the calibration memory limit and in the resume state.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "data/qwen_vl_processor.h"
#include "models/unit_model.h"

namespace lwq {

// True when config.json's model_type is qwen3_vl_moe.
bool is_qwen3_vl_moe_config(const std::string& json_text);

// One image + text sample as calibration_inputs builds it (and `lwquant eval
// --images` scores it): the chat's token ids with the image pads expanded,
// its HF get_rope_index positions, the image-pad rows the tower fills, and
// the tower's inputs.
struct Qwen3VlSample {
  std::vector<int32_t> ids;           // S token ids
  std::vector<int32_t> mrope;         // [3, S] (t, h, w) positions
  std::vector<int64_t> image_rows;    // the image-pad tokens, in order
  QwenVlPixels pixels;                // rows == 0: a text-only sample
  int64_t tokens() const { return static_cast<int64_t>(ids.size()); }
};

// The family's UnitModel with what eval needs besides the runner's interface.
// calibration_inputs(source) builds one Qwen3VlSample per entry (kept, in
// order: SequenceRef::sample indexes them) and returns its rows: the S token
// embeddings of the float checkpoint, then deepstack_levels() zeroed blocks of
// one row per image token; any other chain (eval's quantized one) starts from
// the same rows with its own embeddings of samples()[i].ids, and forward()
// runs it on its own weights.
class Qwen3VlMoeUnitModel : public UnitModel {
 public:
  virtual const std::vector<Qwen3VlSample>& samples() const = 0;
  virtual int64_t deepstack_levels() const = 0;
};

std::unique_ptr<Qwen3VlMoeUnitModel> open_qwen3_vl_moe(const std::filesystem::path& model_dir, const Checkpoint& ckpt);
std::unique_ptr<UnitModel> open_qwen3_vl_moe_model(const std::filesystem::path& model_dir, const Checkpoint& ckpt);

}  // namespace lwq
