// Wan2.1 video diffusion transformers (multimodal.md B.1): config.json in the
// original Wan layout or diffusers' WanTransformer3DModel one, and the
// description of each DiT block `blocks.<n>` as a unit — its Linears in the
// order msModelSlim visits them and its tensors — under the ORIGINAL Wan
// names, which msModelSlim's mindie_format_saver writes and MindIE-SD matches
// against its model's module names (multimodal.md B.3.4, B.4). A diffusers
// checkpoint is read through a name map to those names.
//
// Runner integration (a UnitModel over these blocks) and the block forward
// for calibrated schemes come next (issue 10); this module is the descriptor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "models/architecture.h"

namespace lwq {

enum class WanLayout { Original, Diffusers };

struct WanConfig {
  std::filesystem::path source;
  WanLayout layout = WanLayout::Original;
  std::string model_type = "t2v";  // t2v | i2v | flf2v (original model_type; diffusers: from image_dim)
  int64_t dim = 0, ffn_dim = 0, num_heads = 0, num_layers = 0;
  int64_t in_dim = 16, out_dim = 16, text_len = 512, freq_dim = 256, text_dim = 4096;
  double eps = 1e-6;
  bool cross_attn_norm = true;  // norm3 (affine LayerNorm) before cross-attention
  bool image_cross_attn() const { return model_type == "i2v" || model_type == "flf2v"; }
  int64_t head_dim() const { return dim / num_heads; }
};

// True when `config.json` text describes a Wan DiT (either layout).
bool is_wan_config(const std::string& json_text);
// Throws naming the file and key for a missing or invalid value.
WanConfig parse_wan_config(const std::string& json_text, const std::filesystem::path& where);
WanConfig load_wan_config(const std::filesystem::path& dir);

// Block n: prefix "blocks.<n>", Linears (self_attn q/k/v/o, cross_attn q/k/v/o
// [+ k_img, v_img], ffn.0, ffn.2, all with biases) and every tensor, in
// msModelSlim's named_modules order (modulation first).
LayerDesc wan_block_desc(const WanConfig& cfg, int n);

// Tensors outside the blocks with their shapes (patch/text/time embeddings,
// time projection, head, and the image embedding of i2v/flf2v), saved FLOAT.
std::vector<TensorDesc> wan_outer_tensors(const WanConfig& cfg);

// The checkpoint name of an original-layout name (identity for the original
// layout; diffusers' renames otherwise, multimodal.md B.1).
std::string wan_checkpoint_name(const WanConfig& cfg, const std::string& original_name);

}  // namespace lwq
