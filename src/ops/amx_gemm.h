// Products on Intel AMX tiles, written for the calibration shapes: oneDNN
// 2.6's AMX matmul reaches 20-30 % of the tiles' peak on them (bf16 0.6 of
// 3.2 TFLOP/s per core, int8 1.2-2 of 6.2 TOP/s; docs/benchmarks.md), these
// kernels about twice that. Both compute y = x · wᵀ with w [n, k] row-major
// as checkpoints store it; each thread packs a panel of w into the tiles'
// pair (bf16) or quad (int8) layout while it is hot in its cache.
#pragma once

#include <cstdint>

#include "util/scratch.h"

namespace lwq {

// Whether the CPU has AMX-BF16 / AMX-INT8 and the kernel granted this
// process the tile state (asked once).
bool amx_bf16_usable();
bool amx_int8_usable();

// y[m, n] (rows ldy apart) = x[m, k] · w[n, k]ᵀ (+ bias[n]) with bf16 inputs,
// exact products summed in f32 (the tiles flush denormals, as oneDNN's AMX
// kernel does). Returns false, y untouched, where the kernel does not apply:
// no AMX-BF16, k not a multiple of 32, n not a multiple of 16, m < 16.
// Threads: the caller's OpenMP team.
bool amx_matmul_nt_bf16(const uint16_t* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                        int64_t ldy, const float* bias);

// x[m, k] (f32) rounded to bf16 and laid out for the tiles once, for the
// products of several blocks of a streamed weight's rows with the same x
// (models/decoder_layer.cc linear_from_layer). Empty (m == 0) where the bf16
// kernel does not apply to this m and k.
struct AmxRows {
  int64_t m = 0, k = 0;
  Scratch<uint8_t> packed;
};
AmxRows amx_pack_rows_bf16(const float* x, int64_t m, int64_t k);
// As amx_matmul_nt_bf16 on the packed rows; false (y untouched) for x empty
// or n not a multiple of 16.
bool amx_matmul_nt_bf16(const AmxRows& x, const uint16_t* w, int64_t n, float* y, int64_t ldy, const float* bias);

// y[m, n] = x[m, k] · w[n, k]ᵀ exactly in int32 (k ≤ kMaxS8Depth). False,
// y untouched, without AMX-INT8, or for k not a multiple of 64, n not a
// multiple of 16, m < 16.
bool amx_matmul_nt_s8(const int8_t* x, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* y);

}  // namespace lwq
