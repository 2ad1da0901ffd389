// Fake quantization (quantize then dequantize in place) of activations, as the
// calibration forward applies it (spec §2.6).
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/qparams.h"

namespace lwq {

// x ← (clamp(round(x/scale + offset)) − offset) · scale, with given params
// (static per-tensor activations, W8A8).
void fake_quant_tensor(float* x, size_t n, float scale, float offset, int bits);

// msModelSlim's per_token minmax during calibration: ONE scale from the
// min/max of this whole call's tensor (quirk §9.2, not per token). Returns the
// params used. Throws lwq::Error on non-finite input.
QParams fake_quant_dynamic(float* x, size_t n, int bits, bool symmetric);

// True per-token fake quant (one scale per row of [rows, cols]), as serving
// engines quantize W8A8_DYNAMIC activations. Offered for simulating
// inference; calibration compatible with msModelSlim uses fake_quant_dynamic.
void fake_quant_per_token(float* x, int64_t rows, int64_t cols, int bits, bool symmetric);

// The codes behind fake_quant_per_token: q[rows, cols] and each row's scale
// and offset, so that (q − offset) · scale is what it writes.
void quantize_per_token(const float* x, int64_t rows, int64_t cols, int bits, bool symmetric, int8_t* q,
                        float* scale, float* offset);

// The codes behind fake_quant_tensor: q = clamp(round(x/scale + offset)),
// for finite x (NaN: some code in range).
void quantize_tensor(const float* x, size_t n, float scale, float offset, int bits, int8_t* q);

}  // namespace lwq
