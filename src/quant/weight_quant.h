// Weight quantization (spec §2.2–2.4, §2.7): the codes and parameters of a
// quantized W[out, in], for every weight format lwquant exports.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "quant/fake_quant.h"  // activation fake quant lives beside the weight path
#include "quant/qparams.h"
#include "tensor/dtype.h"
#include "util/scratch.h"

namespace lwq {

// What the int8 codes of a QuantizedWeight hold.
enum class WeightCode {
  Int,      // signed integers in [-2^(bits-1), 2^(bits-1)-1]; value = (q − offset)·scale
  Fp8E4M3,  // float8_e4m3fn bit patterns; value = e4m3(q)·scale (per channel)
  MxFp8,    // float8_e4m3fn bit patterns; value = e4m3(q)·2^e, one shared exponent per 32 inputs
  MxFp4,    // E2M1 codes 0..15 (bit 3 = sign), unpacked; value = e2m1(q)·2^e
};

// Σ q[i] over n int8 codes, exactly (int32 partial sums that vectorise):
// a row's code sum enters the activation-offset term of W8A8 (quant_bias, the
// calibration forward's integer GEMM).
int64_t code_sum(const int8_t* q, int64_t n);

struct QuantizedWeight {
  // [out, in], row-major; pool blocks (util/scratch.h): every layer holds codes
  // of the same sizes until they are saved.
  std::vector<int8_t, ScratchAllocator<int8_t>> q;
  // [out, groups()]: one entry per output row and group of group_size inputs.
  // offset is 0 when symmetric (and for float codes); MX scales are the
  // powers of two 2^e of the shared exponents.
  std::vector<float> scale, offset;
  int64_t out = 0, in = 0;
  int bits = 8;
  int64_t group_size = 0;  // 0: one group per row (per channel); MX: 32 (last block zero-padded)
  WeightCode code = WeightCode::Int;

  // W4A4_MXFP4_DUALSCALE (MxFp4 codes only): a float32 scale per row and
  // dual block of dual_block_size inputs (the last one zero-padded), applied
  // after the inner 2^e: value = e2m1(q)·2^e·dual_scale. Empty otherwise.
  std::vector<float> dual_scale;
  int64_t dual_block_size = 0;

  int64_t groups() const { return group_size > 0 ? (in + group_size - 1) / group_size : 1; }
  int64_t dual_groups() const { return dual_block_size > 0 ? (in + dual_block_size - 1) / dual_block_size : 0; }
  // Parameter index of element (o, i).
  int64_t param_index(int64_t o, int64_t i) const { return o * groups() + (group_size > 0 ? i / group_size : 0); }
};

// Quantizes W[out, in] (row-major float32). Throws lwq::Error on a
// non-positive shape, bits outside [2, 8], or non-finite weights (naming the row).
QuantizedWeight quantize_weight_per_channel_minmax(const float* w, int64_t out, int64_t in, int bits,
                                                   bool symmetric);
// The same, straight from a stored row-major weight of any float dtype (the
// checkpoint's bytes): bf16 is widened in registers and others a row at a
// time, so no float32 copy of the matrix is made; the result is identical to
// quantize_weight_per_channel_minmax on the converted weight.
// `rows_read`, when set, is called (from any thread) after each chunk of
// rows [begin, end) was read, e.g. to drop a streamed mapping's pages.
using RowsReadFn = std::function<void(int64_t begin, int64_t end)>;
QuantizedWeight quantize_weight_per_channel_minmax_stored(DType dtype, const void* w, int64_t out, int64_t in,
                                                          int bits, bool symmetric, const RowsReadFn& rows_read = {});
// The same from rows a callback supplies as float32 (a smoothed weight, its
// scalings applied as it is read): chunks of ~128 Ki values, each supplied
// into a per-thread buffer and quantized while in cache, the codes written in
// place — no f32 copy of the matrix, no block copies. `rows` is called from
// every thread at once and may throw (the error is rethrown here).
using RowsFn = std::function<void(int64_t begin, int64_t end, float* dst)>;
QuantizedWeight quantize_weight_per_channel_minmax_rows(const RowsFn& rows, int64_t out, int64_t in, int bits,
                                                        bool symmetric);
// Per-group minmax: one scale/offset per G consecutive inputs of a row
// (spec §2.2 per-group variant). G must divide in (lwq::Error otherwise).
// msModelSlim registers no per-group minmax quantizer; this is GPTQ's
// starting point and the quality baseline.
QuantizedWeight quantize_weight_per_group_minmax(const float* w, int64_t out, int64_t in, int bits, bool symmetric,
                                                 int64_t group_size);
// FP8 E4M3 per output channel (spec §2.3): scale = max(amax, 1e-12)/448,
// codes = e4m3(clamp(w/scale, ±448)) rounded to nearest even.
QuantizedWeight quantize_weight_fp8_per_channel(const float* w, int64_t out, int64_t in);

// Element value of a quantized weight.
float dequantized_value(const QuantizedWeight& qw, int64_t o, int64_t i);
// Rows [begin, begin+n) of `qw` dequantized into dst[n, in].
void dequantize_weight_rows(const QuantizedWeight& qw, int64_t begin, int64_t n, float* dst);

// Rows [begin, begin+n) of a per-channel int8 weight [*, in] dequantized into
// dst[n, in]: dst[o, i] = (q[begin+o, i] − offset[begin+o]) · scale[begin+o].
void dequantize_rows(const int8_t* q, const float* scale, const float* offset, int64_t in, int64_t begin, int64_t n,
                     float* dst);

// w_out[o, i] = dequantized element; w_out holds out·in floats.
void dequantize_weight(const QuantizedWeight& qw, float* w_out);

// Appends rows of `part` (same in, format and group size) to `whole`.
void append_rows(QuantizedWeight& whole, const QuantizedWeight& part);

}  // namespace lwq
