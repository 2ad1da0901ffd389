// The one internal description of a quantized Linear that every saver
// (ascendv1 now; mindie and compressed-tensors later) turns into its own
// tensors. Values are per output channel unless noted.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/weight_quant.h"

namespace lwq {

struct QuantizedLinear {
  std::string name;  // full module name, e.g. "model.layers.0.self_attn.q_proj"
  std::string type;  // export type string (spec §3.4): "W8A8", "W8A8_DYNAMIC", "W4A8_DYNAMIC", "W8A8_MXFP8", ...
  // Codes [out, in] (int, e4m3 or E2M1, unpacked: savers pack) and their
  // per-channel / per-group / per-block parameters; group_size > 0 sets the
  // description's group_size.
  QuantizedWeight weight;
  std::vector<float> bias;            // [out] float bias, empty when the Linear has none
  // Static activation parameters (W8A8 and W8A8_MIX), already rounded to the serving
  // dtype (spec §10 fact 18).
  float input_scale = 0.0f;
  float input_offset = 0.0f;
};

}  // namespace lwq
