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

#include <filesystem>
#include <memory>
#include <string>

#include "models/unit_model.h"

namespace lwq {

// True when config.json's model_type is qwen3_vl_moe.
bool is_qwen3_vl_moe_config(const std::string& json_text);

std::unique_ptr<UnitModel> open_qwen3_vl_moe_model(const std::filesystem::path& model_dir, const Checkpoint& ckpt);

}  // namespace lwq
