// Derived tensors of a static W8A8 Linear for the ascendV1 format
// (spec §3.4–3.5, §10 facts 5 and 18):
//   deq_scale  = input_scale · weight_scale                 [out]
//   quant_bias = round(bias/deq_scale − input_offset·Σ_in Wq) [out] int32
// so that serving computes y = (q_x·Wqᵀ + quant_bias) · deq_scale with
// q_x = round(x/input_scale + input_offset).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quant/weight_quant.h"
#include "tensor/dtype.h"

namespace lwq {

// Element-wise float32 product.
std::vector<float> deq_scale_f32(float input_scale, std::span<const float> weight_scale);

// `bias` may be empty (treated as zeros); otherwise it has qw.out entries, as
// does `deq_scale`. The correction Σ_in Wq·input_offset is float32 as in
// msModelSlim. Throws lwq::Error when a value does not fit int32 (a
// degenerate input_scale), naming the row.
std::vector<int32_t> quant_bias(const QuantizedWeight& qw, std::span<const float> bias,
                                std::span<const float> deq_scale, float input_offset);

// Each float32's bit pattern as int32, sign-extended to int64: the int64
// deq_scale encoding for non-bf16 models.
std::vector<int64_t> deq_scale_as_int64_bits(std::span<const float> deq_scale);
// Inverse of deq_scale_as_int64_bits (for readers and tests).
std::vector<float> deq_scale_from_int64_bits(std::span<const int64_t> bits);

// `x` rounded to the serving dtype (BF16 or F16; F32 unchanged) and back.
// Fact 18: engines hold input_scale in the model dtype, so deq_scale and
// quant_bias must be derived from the rounded value. Throws for other dtypes.
float round_to_dtype(float x, DType serving_dtype);
// The dtype engines hold activations scales in: BF16 for BF16 models, F16 for
// F16 and F32 models. Throws for non-float dtypes.
DType serving_dtype_of(DType model_dtype);

}  // namespace lwq
