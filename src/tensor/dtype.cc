#include "tensor/dtype.h"

#include <cmath>

#include "util/error.h"
#include "util/vector_clones.h"

namespace lwq {
namespace {

struct DTypeInfo {
  DType type;
  std::string_view name;
  size_t size;
  bool is_float;
};

constexpr DTypeInfo kInfo[] = {
    {DType::F64, "F64", 8, true},         {DType::F32, "F32", 4, true},
    {DType::F16, "F16", 2, true},         {DType::BF16, "BF16", 2, true},
    {DType::F8_E4M3, "F8_E4M3", 1, true}, {DType::F8_E5M2, "F8_E5M2", 1, true},
    {DType::I64, "I64", 8, false},        {DType::I32, "I32", 4, false},
    {DType::I16, "I16", 2, false},        {DType::I8, "I8", 1, false},
    {DType::U8, "U8", 1, false},          {DType::BOOL, "BOOL", 1, false},
};

const DTypeInfo& info(DType t) { return kInfo[static_cast<size_t>(t)]; }

// Generic narrow-float decode: sign, `eb` exponent bits with `bias`, `mb` mantissa bits.
float decode_minifloat(uint32_t v, int eb, int mb, int bias) {
  uint32_t sign = v >> (eb + mb);
  uint32_t exp = (v >> mb) & ((1u << eb) - 1);
  uint32_t man = v & ((1u << mb) - 1);
  float mag;
  if (exp == 0) {
    mag = std::ldexp(static_cast<float>(man), 1 - bias - mb);
  } else {
    mag = std::ldexp(static_cast<float>(man | (1u << mb)), static_cast<int>(exp) - bias - mb);
  }
  return sign ? -mag : mag;
}

// Generic narrow-float encode with round-to-nearest-even. `max_finite` is the
// largest representable magnitude; larger values saturate to it when
// `saturate`, else become the format's infinity pattern.
uint32_t encode_minifloat(float f, int eb, int mb, int bias, float max_finite, bool saturate,
                          uint32_t inf_or_nan_pattern) {
  uint32_t sign = std::signbit(f) ? 1u : 0u;
  uint32_t sign_bits = sign << (eb + mb);
  if (std::isnan(f)) return sign_bits | inf_or_nan_pattern;
  float a = std::fabs(f);
  if (a > max_finite) {
    // Values that round down to max_finite still map to it below; only true overflow saturates.
    if (saturate || std::isinf(a)) {
      if (saturate) a = max_finite;
      else return sign_bits | inf_or_nan_pattern;
    }
  }
  int min_normal_exp = 1 - bias;
  int e;
  std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  int exp_unbiased = e - 1;
  if (exp_unbiased < min_normal_exp) exp_unbiased = min_normal_exp;
  // Quantum at this exponent.
  float quantum = std::ldexp(1.0f, exp_unbiased - mb);
  float q = std::nearbyint(a / quantum) * quantum;
  if (q > max_finite) {
    if (saturate) q = max_finite;
    else return sign_bits | inf_or_nan_pattern;
  }
  if (q == 0.0f) return sign_bits;
  int qe;
  std::frexp(q, &qe);
  int qexp = qe - 1;
  uint32_t exp_field, man;
  if (qexp < min_normal_exp) {
    exp_field = 0;
    man = static_cast<uint32_t>(std::ldexp(q, -(min_normal_exp - mb)));
  } else {
    exp_field = static_cast<uint32_t>(qexp + bias);
    man = static_cast<uint32_t>(std::ldexp(q, -(qexp - mb))) & ((1u << mb) - 1);
  }
  return sign_bits | (exp_field << mb) | man;
}

}  // namespace

size_t dtype_size(DType t) { return info(t).size; }
std::string_view dtype_name(DType t) { return info(t).name; }
bool is_float(DType t) { return info(t).is_float; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (const auto& i : kInfo)
    if (i.name == name) return i.type;
  return std::nullopt;
}

std::string_view dtype_names() { return "F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL"; }

float f16_to_f32(uint16_t h) {
  if ((h & 0x7c00u) == 0x7c00u) {
    uint32_t bits = ((h & 0x8000u) << 16) | 0x7f800000u | (uint32_t{h & 0x3ffu} << 13);
    return f32_from_bits(bits);
  }
  return decode_minifloat(h, 5, 10, 15);
}

uint16_t f32_to_f16(float f) {
  if (std::isinf(f)) return std::signbit(f) ? 0xfc00 : 0x7c00;
  if (std::isnan(f)) return 0x7e00;
  return static_cast<uint16_t>(encode_minifloat(f, 5, 10, 15, 65504.0f, false, 0x7c00));
}

float f8e4m3_to_f32(uint8_t v) {
  if ((v & 0x7f) == 0x7f) return std::nanf("");
  return decode_minifloat(v, 4, 3, 7);
}

uint8_t f32_to_f8e4m3(float f) {
  return static_cast<uint8_t>(encode_minifloat(f, 4, 3, 7, 448.0f, true, 0x7f));
}

float f8e5m2_to_f32(uint8_t v) {
  if ((v & 0x7c) == 0x7c) {
    if (v & 0x03) return std::nanf("");
    return (v & 0x80) ? -INFINITY : INFINITY;
  }
  return decode_minifloat(v, 5, 2, 15);
}

uint8_t f32_to_f8e5m2(float f) {
  if (std::isinf(f)) return std::signbit(f) ? 0xfc : 0x7c;
  if (std::isnan(f)) return 0x7e;
  return static_cast<uint8_t>(encode_minifloat(f, 5, 2, 15, 57344.0f, false, 0x7c));
}

void convert_to_f32(DType src_type, const void* src, float* dst, size_t n) {
  switch (src_type) {
    // n == 0: an empty tensor's std::vector may hand out null, which memcpy must never get.
    case DType::F32: if (n) std::memcpy(dst, src, n * 4); return;
    case DType::F64: {
      auto* s = static_cast<const double*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = static_cast<float>(s[i]);
      return;
    }
    case DType::BF16: bf16_to_f32(static_cast<const uint16_t*>(src), dst, n); return;
    case DType::F16: {
      auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::F8_E4M3: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f8e4m3_to_f32(s[i]);
      return;
    }
    case DType::F8_E5M2: {
      auto* s = static_cast<const uint8_t*>(src);
      for (size_t i = 0; i < n; ++i) dst[i] = f8e5m2_to_f32(s[i]);
      return;
    }
    default: fail("cannot convert {} to F32: not a float type", dtype_name(src_type));
  }
}

// Cloned for the wider vector ISAs (util/vector_clones.h): baseline SSE2 has
// no 32 → 16-bit pack and ran this at 1.4 ns a value (AVX-512: 0.45 ns,
// memory bound).
LWQ_VECTOR_CLONES
void f32_to_bf16(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t b = bits_from_f32(src[i]);
    const uint32_t rounded = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (b >> 16) | 0x40u;
    dst[i] = static_cast<uint16_t>((b & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
  }
}

// A weight's rows widened for quantization or smoothing: SSE2 moved a
// quarter of what AVX-512 does per instruction.
LWQ_VECTOR_CLONES
void bf16_to_f32(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(src[i]);
}

void round_to_bf16(float* x, size_t n) {
  // Branch-free on finite values so that it vectorises; NaN stays NaN.
  for (size_t i = 0; i < n; ++i) x[i] = round_to_bf16(x[i]);
}

void convert_from_f32(const float* src, DType dst_type, void* dst, size_t n) {
  switch (dst_type) {
    case DType::F32: if (n) std::memcpy(dst, src, n * 4); return;
    case DType::F64: {
      auto* d = static_cast<double*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = src[i];
      return;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    case DType::F8_E4M3: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f8e4m3(src[i]);
      return;
    }
    case DType::F8_E5M2: {
      auto* d = static_cast<uint8_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f8e5m2(src[i]);
      return;
    }
    default: fail("cannot convert F32 to {}: not a float type", dtype_name(dst_type));
  }
}

}  // namespace lwq
