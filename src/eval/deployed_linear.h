// A quantized Linear read back from an ascendV1 folder, computed the way the
// serving kernels compute it (spec §3.4–3.5, ascend_loaders.md):
//   W8A8          q_x = clamp(round(x/input_scale + input_offset)), int32 acc = q_x·Wqᵀ,
//                 y = (acc + quant_bias)·deq_scale
//   W8A8_MIX      the prefill path: as W8A8_DYNAMIC with its weight_scale (decode
//                 nodes run the static W8A8 tensors, which load_linear checks)
//   W8A8_DYNAMIC, W4A8_DYNAMIC, W4A4_DYNAMIC
//                 per-token symmetric int8 (int4 for W4A4) x, y = (q_x·Ŵᵀ)·s_x + bias with
//                 Ŵ = (Wq − weight_offset)·weight_scale per channel or group
//   WFP8AFP8_DYNAMIC  per-token x_q = e4m3(x/s_x), s_x = amax/448; Ŵ = e4m3(W)·weight_scale;
//                 y = (x_q·Ŵᵀ)·s_x + bias
//   W8A8_MXFP8, W4A8_MXFP, W4A4_MXFP4
//                 x in MX blocks of 32 (MXFP8 or MXFP4 elements, shared exponents);
//                 Ŵ = element·2^e per block; y = x̂·Ŵᵀ + bias
//   W4A4_MXFP4_DUALSCALE
//                 per token and dual block s = max|x|/6, x̂ = MXFP4(x/s)·s;
//                 Ŵ = element·2^e·weight_dual_scale; y = x̂·Ŵᵀ + bias
//   W8A16         y = x·Ŵᵀ + bias
// Per-channel symmetric int weights take an exact integer path: products
// accumulated in float32 blocks that stay exact, summed in double, so the
// result equals int32 accumulation. Per-group, asymmetric and float-coded
// weights are dequantized and multiplied in float32 (the kernels' fp32
// accumulation, in another order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lwq {

struct DeployedLinear {
  std::string name;
  std::string type;
  int64_t out = 0, in = 0;
  // [out, in] codes, unpacked: int values (int4 ones sign-extended), e4m3 bytes
  // (WFP8AFP8_DYNAMIC, W8A8_MXFP8) or E2M1 codes 0..15 (W4A8_MXFP, W4A4_MXFP4).
  std::vector<int8_t> weight;
  // [out, groups]: per channel (groups 1), per group of group_size inputs, or
  // MX blocks of 32 (scales 2^e decoded from the uint8 exponents). A W8A8
  // folder may store per-channel ones (unused).
  std::vector<float> weight_scale, weight_offset;
  int64_t group_size = 0;
  std::vector<float> bias;                     // [out] float bias (not used by W8A8: folded in quant_bias)
  std::vector<float> scale_bias;               // W4A8_DYNAMIC (checked, not needed by the arithmetic here)
  // W4A4_MXFP4_DUALSCALE: [out, in/dual_block_size] float32 scales applied after the MX ones; the activations
  // use the same dual blocks (a row-covering block when the file holds one per row).
  std::vector<float> weight_dual_scale;
  int64_t dual_block_size = 0;
  // W8A8. input_scale as engines hold it: rounded to the serving dtype (QuantizedFolder::load_linear).
  float input_scale = 0.0f, input_offset = 0.0f;
  std::vector<int32_t> quant_bias;             // [out] W8A8
  std::vector<float> deq_scale;                // [out] W8A8, decoded
};

void deployed_linear_forward(const DeployedLinear& lin, const float* x, int64_t rows, float* y);

}  // namespace lwq
