// A dense, row-major, owning tensor of any checkpoint dtype.
// Kept deliberately plain: a dtype, a shape and a byte buffer. Compute code
// works on float32 spans obtained with to_f32(); quantized results are built
// as new Tensors of the integer dtypes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tensor/dtype.h"

namespace lwq {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[64, 172]"

struct Tensor {
  DType dtype = DType::F32;
  Shape shape;
  std::vector<uint8_t> bytes;

  Tensor() = default;
  Tensor(DType t, Shape s);  // zero-filled

  int64_t numel() const { return shape_numel(shape); }
  size_t nbytes() const { return bytes.size(); }
  int64_t dim(size_t i) const { return shape.at(i); }

  template <typename T>
  T* data() { return reinterpret_cast<T*>(bytes.data()); }
  template <typename T>
  const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
  template <typename T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(numel())}; }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel())}; }
};

// Index of the first NaN or ±Inf element of a float tensor (F32, F16, BF16,
// F64), or -1 when every element is finite (and for non-float dtypes).
int64_t first_non_finite(const Tensor& t);
int64_t first_non_finite(std::span<const float> values);
// The same over `n` elements of `dtype` at `data` (a view, e.g. mapped file bytes).
int64_t first_non_finite(DType dtype, const void* data, int64_t n);
// Throws "tensor '<name>' in <file> holds NaN at element i (row r, column c)"
// when first_non_finite() finds one: weights are checked when read, so a
// broken checkpoint never turns into plausible-looking scales.
// `t` may be rows [first_row, ...) of the named tensor (a block read on its
// own): the message then counts elements and rows of the whole tensor.
void check_finite(const Tensor& t, const std::string& name, const std::string& file, int64_t first_row = 0);
// The same over a view: `data` holds numel(shape) values of `dtype` (rows
// [first_row, ...) of the named tensor when first_row > 0).
void check_finite(DType dtype, const void* data, const Shape& shape, const std::string& name, const std::string& file,
                  int64_t first_row = 0);

// A float32 copy of any float tensor's values.
std::vector<float> to_f32(const Tensor& t);
// A float32 tensor (shape `shape`) holding `values`.
Tensor tensor_f32(Shape shape, std::vector<float> values);
// `values` stored as dtype `type` (float types only).
Tensor tensor_from_f32(DType type, Shape shape, std::span<const float> values);

}  // namespace lwq
