// FP8 (E4M3) and MX (MXFP8, MXFP4) quantization (spec §2.3, §2.4, §3.6).
#pragma once

#include <cstdint>
#include <vector>

#include "config/quant_config.h"
#include "quant/weight_quant.h"
#include "tensor/dtype.h"

namespace lwq {

constexpr float kFp8Max = 448.0f;
constexpr int64_t kMxBlock = 32;

// FP8 per-channel / per-token scale: max(amax over n values, 1e-12) / 448.
float fp8_scale_of(const float* x, int64_t n);
// e4m3(clamp(x/scale, ±448)), round to nearest even (a float8_e4m3fn byte).
uint8_t fp8_quantize_code(float x, float scale);
// Per-row FP8 fake quant of x[rows, cols], as engines quantize dynamic
// activations: x ← e4m3(x/s)·s with s = fp8_scale_of(row).
void fake_quant_fp8_per_token(float* x, int64_t rows, int64_t cols);

// E2M1 values [0, .5, 1, 1.5, 2, 3, 4, 6]; code bit 3 is the sign.
float fp4_e2m1_value(uint8_t code);
// Index of the value nearest |x| (ties to the lower index), +8 when the sign
// bit of x is set (−0.0 included): pack_fp4_to_uint8's code.
uint8_t fp4_e2m1_code(float x);
// [rows, cols] E2M1 codes → [rows, cols/2] bytes, low nibble = even column.
// cols must be even (lwq::Error otherwise).
std::vector<uint8_t> pack_fp4(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols);
std::vector<uint8_t> unpack_fp4(const uint8_t* packed, int64_t rows, int64_t cols);
// pack_fp4 of fp4_e2m1_code of each value (the spec's unit vectors).
std::vector<uint8_t> pack_fp4_values(const std::vector<float>& x, int64_t rows, int64_t cols);

// MX block quantization of one row of n values, blocks of 32 along the row
// (the last block zero-padded). For each block b, exps[b] is the shared
// exponent e (in [−127, 127]); codes[i] the element code (e4m3 byte for
// MXFP8, E2M1 code for MXFP4); value = element(code)·2^e.
void mx_quantize_row(const float* x, int64_t n, QDtype dtype, uint8_t* codes, int* exps);
// x ← MX fake quant of each row of x[rows, cols].
void fake_quant_mx(float* x, int64_t rows, int64_t cols, QDtype dtype);

// How a weight block's shared exponent is chosen (the registered MX weight
// methods, spec §1.6.1). Elements are then rounded as for minmax.
//  * MinMax: the spec §2.4 rule (MXFP8 floor(log2 amax) − 8; MXFP4
//    floor(log2(amax·8/7 + 9.6e-7)) − 2).
//  * MseRound (MXFP8): floor(log2 amax) − 8 or ceil(log2 amax) − 8, whichever
//    gives the block the smaller squared error (the floor one on a tie).
//  * CeilX (MXFP4): ceil(log2(amax/c + 9.6e-7)), clipped to [−129, 125]; c is
//    ext.ceil_x_value (default 7.25), so the block maximum lands in (c/2, c].
//  * FourOverSix (MXFP4): the exponents nearest (in log2, ties as msModelSlim
//    resolves them) to amax/6 and to amax/4, whichever gives the smaller
//    squared error (amax/6 on a tie).
// All squared errors are summed in double over the block's elements.
enum class MxMethod { MinMax, MseRound, CeilX, FourOverSix };
struct MxWeightMethod {
  MxMethod kind = MxMethod::MinMax;
  double ceil_x = 7.25;
};

// Shared exponent candidates of the methods above for a block maximum amax
// (exposed for tests). ceil_x: unclipped and clipped as described.
int mx_ceil_x_exponent(float amax, double c);
// Nearest e8m0 exponent of a positive scale (non-positive: 0): floor(log2 s)
// + 1 when the fractional part of log2 s is above 0.5 + 1e-6, floor(log2 s)
// below 0.5 − 1e-6, and within that band floor + 1 when floor is even.
int mx_nearest_exponent(double scale);

// ceil_x's ext.enable_search: the c among search_min, search_min + step, ...,
// search_max (rounded count, as msModelSlim) whose MXFP4 ceil_x quantization
// of the whole W[out, in] has the smallest squared error (float64 sum); the
// first such c on a tie.
double mx_ceil_x_search(const float* w, int64_t out, int64_t in, double search_min, double search_max,
                        double search_step);

// W[out, in] in MX blocks: code MxFp8/MxFp4, group_size 32, scale = 2^e.
// Throws lwq::Error for a method that does not suit the dtype (mse_round is
// MXFP8 only; ceil_x and fouroversix MXFP4 only).
QuantizedWeight quantize_weight_mx(const float* w, int64_t out, int64_t in, QDtype dtype,
                                   const MxWeightMethod& method = {});
// W4A4_MXFP4_DUALSCALE (msModelSlim's dualscale quantizers): each row is cut
// into dual blocks of dual_block_size inputs (the last zero-padded); a block's
// dual scale is max|x| / 6 in float32 (0 for an all-zero block); the block
// divided by it (float32; an all-zero block stays zero) is MXFP4-quantized
// with the minmax exponent rule in blocks of 32 along the row.
constexpr float kMxFp4MaxNormal = 6.0f;
float mx_dual_scale_of(const float* x, int64_t n);
// W[out, in] → MxFp4 codes, 2^e scales [out, ceil(in/32)] and dual_scale
// [out, ceil(in/dual_block_size)]. dual_block_size must be a positive
// multiple of 32 (lwq::Error otherwise).
QuantizedWeight quantize_weight_mxfp4_dualscale(const float* w, int64_t out, int64_t in, int64_t dual_block_size);
// x ← dual-scale fake quant of each row of x[rows, cols], as the dynamic
// activation path computes it: per dual block s = max|x|/6, x ← MXFP4(x/s)·s.
void fake_quant_mxfp4_dualscale(float* x, int64_t rows, int64_t cols, int64_t dual_block_size);

// The exported shared exponent: uint8(e + 127) from a scale 2^e.
uint8_t mx_biased_exponent(float scale);

}  // namespace lwq
