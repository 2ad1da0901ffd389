// `lwquant eval`: a quantized ascendV1 folder scored against its float model,
// layer by layer (one layer of each model resident at a time), over the same
// windows as `lwquant ppl`, with every quantized Linear computed the way the
// serving kernel computes it (deployed_linear.h).
//
// Image + text mode (Qwen3-VL-MoE, options.images set instead of text): the
// samples `quant` calibrates on (an index.json(l) of {text, image} or a
// folder of images; models/qwen3_vl_moe_model.h builds them) run through
// two chains unit by unit, one unit of each resident at a time: the float
// checkpoint's, and one built from the quantized folder alone (its
// embed_tokens rows, the tower's and text layers' FLOAT tensors, quantized
// Linears of both with the deployed arithmetic, its final norm and lm_head),
// so a QuaRot-rotated output scores as served. KL and top-1 cover every token
// row of every sample (the last row's distribution is the first answer
// token's); NLL covers rows whose next token is text (image pads are
// placeholders, never predicted).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace lwq {

struct EvalOptions {
  std::filesystem::path float_dir, quantized_dir, text;
  int ctx = 512;
  int64_t max_tokens = 0;  // 0 = the whole text
  // Image + text mode (Qwen3-VL-MoE): what `quant` takes as --calib_data.
  std::filesystem::path images;
  int max_samples = 0;  // 0 = every entry
  std::string default_text = "Describe this image in detail.";
};

struct EvalResult {
  double ppl_float = 0, ppl_quantized = 0;
  double kl = 0;              // mean KL(p_float || p_quantized) of next-token distributions, nats
  double top1_agreement = 0;  // fraction of scored positions whose argmax agrees
  int64_t tokens = 0;         // scored tokens (KL, top-1)
  double nll_float = 0, nll_quantized = 0;  // mean next-token NLL, nats (ppl = exp(nll))
  int64_t nll_tokens = 0;     // positions with a known (text) next token
  int samples = 0, images = 0;  // image + text mode
  std::string model_quant_type;
  double delta_ppl() const { return ppl_quantized - ppl_float; }
};

EvalResult evaluate(const EvalOptions& options);

}  // namespace lwq
