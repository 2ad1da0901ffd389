#include "tensor/tensor.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

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

Tensor tensor_f32(Shape shape, std::vector<float> values) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape))
    fail("tensor_f32: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t(DType::F32, std::move(shape));
  std::memcpy(t.bytes.data(), values.data(), values.size() * 4);
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
