// Per-channel minmax weight quantization (spec §2.7): one scale/offset per
// output row of W[out, in].
#pragma once

#include <cstdint>
#include <vector>

#include "quant/fake_quant.h"  // activation fake quant lives beside the weight path
#include "quant/qparams.h"

namespace lwq {

struct QuantizedWeight {
  std::vector<int8_t> q;             // [out, in], row-major
  std::vector<float> scale, offset;  // [out]; offset 0 when symmetric
  int64_t out = 0, in = 0;
  int bits = 8;
};

// Quantizes W[out, in] (row-major float32). Throws lwq::Error on a
// non-positive shape, bits outside [2, 8], or non-finite weights (naming the row).
QuantizedWeight quantize_weight_per_channel_minmax(const float* w, int64_t out, int64_t in, int bits,
                                                   bool symmetric);

// Rows [begin, begin+n) of a per-channel int8 weight [*, in] dequantized into
// dst[n, in]: dst[o, i] = (q[begin+o, i] − offset[begin+o]) · scale[begin+o].
void dequantize_rows(const int8_t* q, const float* scale, const float* offset, int64_t in, int64_t begin, int64_t n,
                     float* dst);

// w_out[o, i] = (q[o, i] − offset[o]) · scale[o]; w_out holds out·in floats.
void dequantize_weight(const QuantizedWeight& qw, float* w_out);

}  // namespace lwq
