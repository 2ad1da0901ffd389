#include "tensor/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lwq {

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

Tensor::Tensor(DType t, Shape s)
    : dtype(t), shape(std::move(s)), bytes(static_cast<size_t>(shape_numel(shape)) * dtype_size(t)) {}

std::vector<float> to_f32(const Tensor& t) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  convert_to_f32(t.dtype, t.bytes.data(), out.data(), out.size());
  return out;
}

namespace {

// Whether any of v[0..kBlock) has all exponent bits set. A constant trip
// count so that GCC's -O2 ("very cheap") vectoriser takes the loop.
template <typename Bits, int64_t kBlock>
bool block_has_all_ones_exponent(const Bits* v, Bits exponent_mask) {
  Bits hits = 0;
  for (int64_t i = 0; i < kBlock; ++i) hits |= static_cast<Bits>((v[i] & exponent_mask) == exponent_mask);
  return hits != 0;
}

// First element whose exponent bits are all ones (NaN or Inf), by bit pattern:
// no conversion; whole blocks are screened with vector code first.
template <typename Bits>
int64_t first_all_ones_exponent(const uint8_t* bytes, int64_t n, Bits exponent_mask) {
  const Bits* v = reinterpret_cast<const Bits*>(bytes);
  constexpr int64_t kBlock = 4096;
  int64_t begin = 0;
  for (; begin + kBlock <= n; begin += kBlock)
    if (block_has_all_ones_exponent<Bits, kBlock>(v + begin, exponent_mask)) break;
  for (int64_t i = begin; i < n; ++i)
    if ((v[i] & exponent_mask) == exponent_mask) return i;
  return -1;
}

}  // namespace

int64_t first_non_finite(const Tensor& t) {
  const int64_t n = std::min<int64_t>(t.numel(), static_cast<int64_t>(t.bytes.size() / std::max<size_t>(1, dtype_size(t.dtype))));
  return first_non_finite(t.dtype, t.bytes.data(), n);
}

int64_t first_non_finite(DType dtype, const void* data, int64_t n) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  switch (dtype) {
    case DType::F64: return first_all_ones_exponent<uint64_t>(bytes, n, 0x7FF0000000000000ull);
    case DType::F32: return first_all_ones_exponent<uint32_t>(bytes, n, 0x7F800000u);
    case DType::F16: return first_all_ones_exponent<uint16_t>(bytes, n, uint16_t{0x7C00});
    case DType::BF16: return first_all_ones_exponent<uint16_t>(bytes, n, uint16_t{0x7F80});
    default: return -1;
  }
}

int64_t first_non_finite(std::span<const float> values) {
  return first_all_ones_exponent<uint32_t>(reinterpret_cast<const uint8_t*>(values.data()),
                                           static_cast<int64_t>(values.size()), 0x7F800000u);
}

void check_finite(const Tensor& t, const std::string& name, const std::string& file, int64_t first_row) {
  const int64_t n = std::min<int64_t>(t.numel(), static_cast<int64_t>(t.bytes.size() / std::max<size_t>(1, dtype_size(t.dtype))));
  check_finite(t.dtype, t.bytes.data(), n == t.numel() ? t.shape : Shape{n}, name, file, first_row);
}

void check_finite(DType dtype, const void* data, const Shape& shape, const std::string& name, const std::string& file,
                  int64_t first_row) {
  const int64_t numel = shape_numel(shape);
  const int64_t i = first_non_finite(dtype, data, numel);
  if (i < 0) return;
  const int64_t row_size = shape.empty() || shape[0] == 0 ? 1 : numel / shape[0];
  std::string where = fmt::format("element {}", i + first_row * row_size);
  if (shape.size() == 2 && shape[1] > 0)
    where += fmt::format(" (row {}, column {})", first_row + i / shape[1], i % shape[1]);
  // The kind of value, read from the bits: a mantissa of zero is an infinity.
  bool is_inf = false;
  switch (dtype) {
    case DType::F64: is_inf = std::isinf(static_cast<const double*>(data)[i]); break;
    case DType::F32: is_inf = std::isinf(static_cast<const float*>(data)[i]); break;
    case DType::F16: is_inf = (static_cast<const uint16_t*>(data)[i] & 0x03FF) == 0; break;
    case DType::BF16: is_inf = (static_cast<const uint16_t*>(data)[i] & 0x007F) == 0; break;
    default: break;
  }
  fail("tensor '{}' in {} holds {} at {}: the checkpoint is damaged or was saved from a diverged model; "
       "lwquant refuses to quantize non-finite weights", name, file, is_inf ? "an infinity" : "NaN", where);
}

Tensor tensor_f32(Shape shape, std::vector<float> values) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    fail("tensor_f32: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t(DType::F32, std::move(shape));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), values.size() * 4);  // never memcpy(null, ...)
  return t;
}

Tensor tensor_from_f32(DType type, Shape shape, std::span<const float> values) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    fail("tensor_from_f32: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t(type, std::move(shape));
  convert_from_f32(values.data(), type, t.bytes.data(), values.size());
  return t;
}

}  // namespace lwq
