// `lwquant eval`: a quantized ascendV1 folder scored against its float model,
// layer by layer (one layer of each model resident at a time), over the same
// windows as `lwquant ppl`, with every quantized Linear computed the way the
// serving kernel computes it (deployed_linear.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace lwq {

struct EvalOptions {
  std::filesystem::path float_dir, quantized_dir, text;
  int ctx = 512;
  int64_t max_tokens = 0;  // 0 = the whole text
};

struct EvalResult {
  double ppl_float = 0, ppl_quantized = 0;
  double kl = 0;              // mean KL(p_float || p_quantized) of next-token distributions, nats
  double top1_agreement = 0;  // fraction of scored positions whose argmax agrees
  int64_t tokens = 0;         // scored tokens
  std::string model_quant_type;
  double delta_ppl() const { return ppl_quantized - ppl_float; }
};

EvalResult evaluate(const EvalOptions& options);

}  // namespace lwq
