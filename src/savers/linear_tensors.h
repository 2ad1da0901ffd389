// The tensors one quantized Linear becomes on disk, per export type (spec
// §3.4): shared by every saver, which differ only in how they encode
// deq_scale, which types they accept and how they name and describe files.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "savers/quantized_linear.h"
#include "tensor/tensor.h"

namespace lwq {

struct DescribedTensor {
  std::string name;
  Tensor tensor;     // the bytes, unless `borrowed`
  std::string type;  // the description's value: the Linear's type, or "FLOAT" for its bias
  // Bytes the QuantizedLinear itself holds (its unpacked codes), written from
  // there without a copy; `tensor` then only carries dtype and shape.
  const void* borrowed = nullptr;
  const void* bytes() const { return borrowed ? borrowed : static_cast<const void*>(tensor.bytes.data()); }
};

// deq_scale's on-disk encoding: ascendv1 depends on the model dtype (spec
// §3.5), mindie is always float32 (§3.10).
using DeqScaleEncoder = std::function<Tensor(const std::vector<float>& deq_scale)>;

// The Linear's tensors in msModelSlim's ascendv1 write order, its float bias
// (float32, "FLOAT"; "W4A4_MXFP4_DUALSCALE" for that type, spec §3.4) last;
// valid while `q` lives. Throws for a type no saver knows.
std::vector<DescribedTensor> linear_tensors(const QuantizedLinear& q, const DeqScaleEncoder& deq_scale);

}  // namespace lwq
