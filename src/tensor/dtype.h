// Element types of checkpoint tensors and conversions of the narrow float
// formats to and from float32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

namespace lwq {

// Names follow the safetensors header ("F32", "BF16", ...).
enum class DType : uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType t);
std::string_view dtype_name(DType t);
std::optional<DType> parse_dtype(std::string_view name);
bool is_float(DType t);
// Comma-separated list of every name parse_dtype accepts (for error messages).
std::string_view dtype_names();

inline float f32_from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint32_t bits_from_f32(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

inline float bf16_to_f32(uint16_t h) { return f32_from_bits(uint32_t{h} << 16); }
// Round to nearest even, NaN kept quiet (as torch's .to(torch.bfloat16)).
inline uint16_t f32_to_bf16(float f) {
  uint32_t bits = bits_from_f32(f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

// f32_to_bf16 of every element, branch-free so that it vectorises.
void f32_to_bf16(const float* src, uint16_t* dst, size_t n);
// bf16_to_f32 of every element.
void bf16_to_f32(const uint16_t* src, float* dst, size_t n);

// x rounded to the nearest bfloat16 (even on ties), as a float32.
inline float round_to_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }
// Every element of x[0, n) rounded to bfloat16 in place.
void round_to_bf16(float* x, size_t n);

// The arithmetic of a calibration forward (`quant --compute_dtype`): F32
// everywhere, or BF16 — a bfloat16 model's Linear inputs, outputs and
// residual stream rounded to bfloat16, products accumulated in float32
// (docs/design.md, "Compute dtype").
enum class ComputeDType : uint8_t { F32, BF16 };

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);          // round to nearest even, saturating to inf
float f8e4m3_to_f32(uint8_t v);        // float8_e4m3fn: no inf, 0x7f/0xff are NaN
uint8_t f32_to_f8e4m3(float f);        // round to nearest even, saturating to ±448
float f8e5m2_to_f32(uint8_t v);
uint8_t f32_to_f8e5m2(float f);

// Converts `n` elements of any float dtype at `src` to float32.
void convert_to_f32(DType src_type, const void* src, float* dst, size_t n);
// Converts `n` float32 values to a float dtype at `dst`.
void convert_from_f32(const float* src, DType dst_type, void* dst, size_t n);

}  // namespace lwq
