// A quantized Linear read back from an ascendV1 folder, computed the way the
// serving kernels compute it (spec §3.4–3.5, ascend_loaders.md):
//   W8A8          q_x = clamp(round(x/input_scale + input_offset)), int32 acc = q_x·Wqᵀ,
//                 y = (acc + quant_bias)·deq_scale
//   W8A8_DYNAMIC  per-token symmetric int8 x, y = (q_x·Wqᵀ)·s_x·weight_scale + bias
//   W8A16         y = x·((Wq − weight_offset)·weight_scale)ᵀ + bias
// Integer products are accumulated in double precision, which is exact for
// int8×int8 sums of any realistic length, so the result equals int32
// accumulation.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lwq {

struct DeployedLinear {
  std::string name;
  std::string type;
  int64_t out = 0, in = 0;
  std::vector<int8_t> weight;                  // [out, in]
  std::vector<float> weight_scale, weight_offset;  // [out] (dynamic / W8A16; a W8A8 folder may store them, unused)
  std::vector<float> bias;                     // [out] float bias (not used by W8A8: folded in quant_bias)
  // W8A8. input_scale as engines hold it: rounded to the serving dtype (QuantizedFolder::load_linear).
  float input_scale = 0.0f, input_offset = 0.0f;
  std::vector<int32_t> quant_bias;             // [out] W8A8
  std::vector<float> deq_scale;                // [out] W8A8, decoded
};

void deployed_linear_forward(const DeployedLinear& lin, const float* x, int64_t rows, float* y);

}  // namespace lwq
