// int4 weight layouts of the ascendV1 format (spec §3.4, §3.6).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/weight_quant.h"

namespace lwq {

// W4A8 pack (w4a8_pack_int4): Wq[out, in] int8 in [−8, 7] → [out/2, in] with
// P[j, i] = (Wq[2j+1, i] << 4) | (Wq[2j, i] & 0xF). Throws lwq::Error for an
// odd `out` or a value outside [−8, 7].
std::vector<int8_t> pack_int4_w4a8(const int8_t* q, int64_t out, int64_t in);
// Inverse: [out/2, in] → [out, in] sign-extended nibbles.
std::vector<int8_t> unpack_int4_w4a8(const int8_t* packed, int64_t out, int64_t in);

// Columns of a W4A8 scale_bias for Linear `name` with `in` inputs: 1, 16 or in
// (the name rule below).
int64_t w4a8_scale_bias_cols(const std::string& name, int64_t in);

// W4A8 scale_bias (process_scale, tp 16) of Linear `name` with deq =
// Wq·weight_scale per row:
//   up/gate/q/k/v_proj, w1, w3 → 8·Σ_in deq, [out, 1];
//   down/o_proj, w2            → 8·Σ over 16 contiguous input chunks, [out, 16]
//                                (in must be divisible by 16, lwq::Error otherwise);
//   any other name             → the full deq [out, in] (spec quirk 7).
// `cols` receives the second dimension.
std::vector<float> w4a8_scale_bias(const QuantizedWeight& qw, const std::string& name, int64_t& cols);

}  // namespace lwq
