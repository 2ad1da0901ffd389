#include "quant/w8a8_export.h"

#include <cmath>
#include <limits>

#include "util/error.h"

namespace lwq {

std::vector<float> deq_scale_f32(float input_scale, std::span<const float> weight_scale) {
  std::vector<float> out(weight_scale.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = input_scale * weight_scale[i];
  return out;
}

std::vector<int32_t> quant_bias(const QuantizedWeight& qw, std::span<const float> bias,
                                std::span<const float> deq_scale, float input_offset) {
  const size_t out = static_cast<size_t>(qw.out);
  if (!bias.empty() && bias.size() != out) fail("quant_bias: bias has {} values, the weight has {} rows", bias.size(), out);
  if (deq_scale.size() != out) fail("quant_bias: deq_scale has {} values, the weight has {} rows", deq_scale.size(), out);
  if (qw.q.size() != out * static_cast<size_t>(qw.in))
    fail("quant_bias: weight holds {} values, expected [{}, {}]", qw.q.size(), qw.out, qw.in);
  std::vector<int32_t> result(out);
  for (size_t o = 0; o < out; ++o) {
    // exact; its float32 value is what torch's sum gives for practical widths
    const int64_t row_sum = code_sum(qw.q.data() + o * qw.in, qw.in);
    const float correction = static_cast<float>(row_sum) * input_offset;
    const float b = bias.empty() ? 0.0f : bias[o];
    const float v = std::nearbyint(b / deq_scale[o] - correction);
    if (!(v >= static_cast<float>(std::numeric_limits<int32_t>::min()) &&
          v < static_cast<float>(std::numeric_limits<int32_t>::max())))
      fail("quant_bias: row {} value {} (bias {} / deq_scale {} − {}) does not fit int32", o, v, b, deq_scale[o],
           correction);
    result[o] = static_cast<int32_t>(v);
  }
  return result;
}

std::vector<int64_t> deq_scale_as_int64_bits(std::span<const float> deq_scale) {
  std::vector<int64_t> out(deq_scale.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<int64_t>(static_cast<int32_t>(bits_from_f32(deq_scale[i])));
  return out;
}

std::vector<float> deq_scale_from_int64_bits(std::span<const int64_t> bits) {
  std::vector<float> out(bits.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = f32_from_bits(static_cast<uint32_t>(bits[i]));
  return out;
}

float round_to_dtype(float x, DType serving_dtype) {
  switch (serving_dtype) {
    case DType::BF16: return bf16_to_f32(f32_to_bf16(x));
    case DType::F16: return f16_to_f32(f32_to_f16(x));
    case DType::F32: return x;
    default: fail("round_to_dtype: serving dtype must be BF16, F16 or F32, got {}", dtype_name(serving_dtype));
  }
}

DType serving_dtype_of(DType model_dtype) {
  switch (model_dtype) {
    case DType::BF16: return DType::BF16;
    case DType::F16:
    case DType::F32: return DType::F16;
    default: fail("serving dtype: model dtype {} is not a float type (expected BF16, F16 or F32)", dtype_name(model_dtype));
  }
}

}  // namespace lwq
