// The forward of one Wan2.1 DiT block (multimodal.md B.2.2; diffusers'
// WanTransformerBlock computes the same), in f32: time-modulated
// self-attention with 3-D rotary embeddings, cross-attention to the text
// context, time-modulated GELU FFN. Every Linear goes through the
// LinearExecutor, so calibration and eval hook it as for decoder layers.
#pragma once

#include <cstdint>

#include "models/decoder_layer.h"
#include "models/wan.h"

namespace lwq {

class Checkpoint;

struct WanBlockInputs {
  const float* e0 = nullptr;       // [6, dim] time modulation (time_projection output, unflattened)
  const float* context = nullptr;  // [context_len, dim] text context after text_embedding
  int64_t context_len = 0;
  int64_t frames = 0, height = 0, width = 0;  // patch grid: tokens f-major, beyond f·h·w are padding (not rotated)
  int64_t valid_tokens = 0;                   // keys of self-attention: tokens [0, valid_tokens)
  // The FFN runs this many rows at a time (it is per row): long video
  // sequences never hold their whole [rows, ffn_dim] intermediate.
  int64_t ffn_rows = 4096;
};

// Block `n`'s tensors from the checkpoint (either layout) under the original
// names relative to the block ("self_attn.q.weight"): 16-bit Linear weights
// as stored (or mapped: `hold`), the rest as f32.
LayerWeights load_wan_block(const Checkpoint& ckpt, const WanConfig& cfg, int n,
                            LinearWeightHold hold = LinearWeightHold::Read);

// x [rows, dim] is replaced by the block's output. exec = nullptr: plain f32 Linears.
void wan_block_forward(const WanConfig& cfg, const LayerWeights& w, float* x, int64_t rows, const WanBlockInputs& in,
                       LinearExecutor* exec = nullptr);

}  // namespace lwq
