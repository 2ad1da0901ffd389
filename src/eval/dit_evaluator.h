// `lwquant eval` on a diffusion transformer (Wan2.1): the mindie_format folder
// written by `lwquant quant` (or msModelSlim) checked against its float model
// and scored by running both DiTs side by side, block by block (one block of
// each resident at a time), from the same block-0 inputs; each chain feeds
// its own block outputs to its next block. Quantized Linears compute the
// deployed arithmetic (deployed_linear.h); every other parameter comes from
// the float checkpoint, as in MindIE-SD, which builds the model from the float
// weights and reads only the quantized Linears' tensors from the folder
// (multimodal.md B.4).
//
// Inputs: block 0's inputs captured from the float pipeline (the
// --calib_data file `quant` reads, format in models/wan_model.h), or, without
// one, seeded random inputs of the model's shapes (two samples of a 2×4×4
// patch grid, a context of min(text_len, 16) tokens — image-to-video: 8 image
// tokens before text_len text tokens — e0 ~ 0.1·N(0, 1)).
//
// Figures: relative L2 error ‖q − f‖/‖f‖ and cosine ⟨q, f⟩/(‖q‖‖f‖) of the
// quantized chain's output against the float chain's after every block, over
// every row of every sample; the final output is the last block's (the head
// is FLOAT in both and needs the time embedding, which captures do not hold).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lwq {

struct DitEvalOptions {
  std::filesystem::path float_dir, quantized_dir;
  std::filesystem::path calib_data;  // empty: seeded random inputs
  int max_samples = 0;               // captured samples used (0 = all)
  uint64_t seed = 0;                 // random inputs
};

struct DitError {
  double rel_l2 = 0;
  double cosine = 1;
};

struct DitEvalResult {
  std::string model_quant_type;
  std::string inputs;  // "captured" or "random"
  int samples = 0;
  int64_t tokens = 0;  // rows of x over all samples
  std::vector<DitError> blocks;
  DitError final_output;
};

// True when `model` (a model folder or a diffusers pipeline folder) holds a
// DiT that eval scores in this mode.
bool is_dit_model(const std::filesystem::path& model);

DitEvalResult evaluate_dit(const DitEvalOptions& options);

}  // namespace lwq
