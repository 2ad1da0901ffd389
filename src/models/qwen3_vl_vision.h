// The vision tower of Qwen3-VL and Qwen3-VL-MoE (multimodal.md A.1, A.3.1):
// config.json's `vision_config`, the tower as ONE unit under the checkpoint
// prefix `model.visual` (its tensors and every Linear, mergers and deepstack
// mergers included, which vLLM-Ascend needs described, A.5), and its f32
// forward from the processor's flattened patches to the image embeddings and
// deepstack features the text layers consume.
//
// Every Linear goes through the LinearExecutor, so calibration (observers,
// fake-quant) and eval hook the tower as they hook a decoder layer. The patch
// embedding (a Conv3d) and the position table are not Linears: they are
// computed directly and saved FLOAT.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "models/architecture.h"
#include "models/decoder_layer.h"

namespace lwq {

class Checkpoint;

struct Qwen3VlVisionConfig {
  std::filesystem::path source;  // the config.json, for messages
  // HF Qwen3VL(Moe)VisionConfig defaults (multimodal.md A.1.2).
  int64_t depth = 27, hidden_size = 1152, intermediate_size = 4304, num_heads = 16;
  int64_t in_channels = 3, patch_size = 16, spatial_merge_size = 2, temporal_patch_size = 2;
  int64_t out_hidden_size = 3584, num_position_embeddings = 2304;
  std::string hidden_act = "gelu_pytorch_tanh";  // the blocks' MLP; the mergers always use exact GELU
  std::vector<int64_t> deepstack_visual_indexes = {8, 16, 24};

  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t grid_side() const;  // √num_position_embeddings
  int64_t patch_dim() const { return in_channels * temporal_patch_size * patch_size * patch_size; }
  int64_t merge_unit() const { return spatial_merge_size * spatial_merge_size; }
  int64_t merged_dim() const { return hidden_size * merge_unit(); }
};

// The checkpoint prefix of the tower's tensors and Linears.
inline constexpr const char* kQwen3VlVisualPrefix = "model.visual";

// True when config.json's model_type is qwen3_vl or qwen3_vl_moe.
bool is_qwen3_vl_config(const std::string& json_text);
// Reads `vision_config` of a whole Qwen3-VL(-MoE) config.json. Throws naming
// the file and the key (as "vision_config.<key>") for a missing or invalid
// value, an unsupported hidden_act, a non-square position table, deepstack
// indexes outside the blocks, or out_hidden_size ≠ text_config.hidden_size.
Qwen3VlVisionConfig parse_qwen3_vl_vision_config(const std::string& json_text, const std::filesystem::path& where);
Qwen3VlVisionConfig load_qwen3_vl_vision_config(const std::filesystem::path& dir);

// The tower as one unit: prefix "model.visual", Linears in execution order
// (each block's attn.qkv, attn.proj, mlp.linear_fc1, mlp.linear_fc2; a
// deepstack merger's linear_fc1/fc2 right after its block; merger.linear_fc1/
// fc2 last), tensors in the module order of HF's named_parameters.
LayerDesc qwen3_vl_vision_desc(const Qwen3VlVisionConfig& cfg);

// Every tensor of the descriptor, checked for presence, float dtype, shape
// (against config.json, naming both) and finiteness; 16-bit Linear weights
// stay in their stored dtype (LayerWeights::stored), the rest become f32.
LayerWeights load_qwen3_vl_vision(const Checkpoint& ckpt, const Qwen3VlVisionConfig& cfg);
// Presence and shapes only (no read): for a check before any work.
void check_qwen3_vl_vision_tensors(const Checkpoint& ckpt, const Qwen3VlVisionConfig& cfg);

// One image (t = 1) or video (t frames / temporal_patch_size) of the batch,
// in patches: HF's image_grid_thw row.
struct ImageGrid {
  int64_t t = 0, h = 0, w = 0;
  int64_t patches() const { return t * h * w; }
};

struct Qwen3VlVisionOutputs {
  int64_t tokens = 0;                          // Σ patches / merge_unit: the image-pad tokens they fill
  std::vector<float> embeds;                   // [tokens, out_hidden_size]
  std::vector<std::vector<float>> deepstack;   // one [tokens, out_hidden_size] per deepstack index, in block order (as HF)
};

// Throws naming pixel_values / grid_thw when the inputs disagree with each
// other or with the config: rows ≠ Σ t·h·w, cols ≠ in_channels·temporal·P²,
// a non-positive grid value, h or w not divisible by spatial_merge_size, an
// empty grid list, a non-finite pixel.
void check_qwen3_vl_vision_inputs(const Qwen3VlVisionConfig& cfg, const float* pixel_values, int64_t rows,
                                  int64_t cols, std::span<const ImageGrid> grids);

// The tower's forward (HF Qwen3VLMoeVisionModel.forward) over pixel_values
// [rows, cols] as the processor lays them out (patch vectors (C, Tp, P, P),
// rows ordered [t, h/M, w/M, M, M] per image, images in `grids` order).
// Attention stays within each (image, temporal slice). exec = nullptr runs
// plain f32 Linears.
Qwen3VlVisionOutputs qwen3_vl_vision_forward(const Qwen3VlVisionConfig& cfg, const LayerWeights& w,
                                             const float* pixel_values, int64_t rows, int64_t cols,
                                             std::span<const ImageGrid> grids, LinearExecutor* exec = nullptr);

}  // namespace lwq
