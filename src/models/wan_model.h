// A Wan2.1 DiT as the runner's UnitModel: units are the blocks `blocks.<n>`
// (loaded, quantized, saved, freed one at a time), everything else is saved
// FLOAT in its stored dtype, output names are the original Wan names
// (multimodal.md B.3.4) whichever layout was read.
//
// Calibration does not run the video pipeline (no T5, VAE or sampler here):
// a static scheme calibrates from block 0's inputs captured by
// tools/capture_wan_inputs.py, one safetensors file holding, for each sample
// i = 0, 1, ...:
//   "<i>.x"        [L, dim]   block 0's input rows (patch tokens, f-major)
//   "<i>.e0"       [6, dim]   the time modulation (time_projection output, unflattened)
//   "<i>.context"  [Lc, dim]  the text context after text_embedding
//   "<i>.grid"     I64 [3]    frames, height, width in patches (F·H·W ≤ L)
//   "<i>.seq_len"  I64 [1]    optional: self-attention keys [0, seq_len) (default L)
// float tensors in F32, BF16 or F16. Block n's output feeds block n+1 with the
// same e0, context and grid, as in msModelSlim's adapter (B.3.2).
#pragma once

#include <memory>

#include "models/unit_model.h"
#include "models/wan.h"

namespace lwq {

// Checks every block's and outer tensor's presence, dtype and shape against
// `cfg` up front (a config that disagrees with the tensors fails here, before
// anything is written).
std::unique_ptr<UnitModel> open_wan_model(WanConfig cfg, const Checkpoint& ckpt);

}  // namespace lwq
