#include "savers/linear_tensors.h"

#include <cstring>

#include "quant/fp_formats.h"
#include "quant/int4_pack.h"
#include "quant/w8a8_export.h"
#include "util/error.h"

namespace lwq {
namespace {

Tensor bytes_tensor(DType dtype, const void* data, size_t size, Shape shape) {
  Tensor t(dtype, std::move(shape));
  if (size > 0) std::memcpy(t.bytes.data(), data, size);
  return t;
}

Tensor int8_tensor(const std::vector<int8_t>& v, Shape shape) {
  return bytes_tensor(DType::I8, v.data(), v.size(), std::move(shape));
}

std::vector<float> zeros(size_t n) { return std::vector<float>(n, 0.0f); }

// The Linear's unpacked codes as they lie in `q` (int8 or e4m3 bytes).
DescribedTensor codes(const QuantizedLinear& q, DType dtype) {
  DescribedTensor t{q.name + ".weight", Tensor(), q.type, q.weight.q.data()};
  t.tensor.dtype = dtype;
  t.tensor.shape = {q.weight.out, q.weight.in};
  return t;
}

void static_activation_tensors(const QuantizedLinear& q, const DeqScaleEncoder& encode,
                               std::vector<DescribedTensor>& out) {
  const QuantizedWeight& w = q.weight;
  const std::string& p = q.name;
  const std::string& t = q.type;
  out.push_back(codes(q, DType::I8));
  std::vector<float> deq = deq_scale_f32(q.input_scale, w.scale);
  std::vector<int32_t> qbias = quant_bias(w, q.bias, deq, q.input_offset);
  out.push_back({p + ".quant_bias", bytes_tensor(DType::I32, qbias.data(), qbias.size() * 4, {w.out}), t});
  out.push_back({p + ".input_scale", tensor_f32({1}, {q.input_scale}), t});
  out.push_back({p + ".input_offset", tensor_f32({1}, {q.input_offset}), t});
  out.push_back({p + ".deq_scale", encode(deq), t});
  if (t == "W8A8_MIX") {
    // The prefill (dynamic) path's per-channel weight scale; the registry admits symmetric weights only, so
    // the offsets are zeros (spec §3.4, ascend_loaders §4.2).
    out.push_back({p + ".weight_scale", tensor_f32({w.out, 1}, w.scale), t});
    out.push_back({p + ".weight_offset", tensor_f32({w.out, 1}, zeros(w.scale.size())), t});
  }
}

void mx_tensors(const QuantizedLinear& q, std::vector<DescribedTensor>& out) {
  const QuantizedWeight& w = q.weight;
  const std::string& p = q.name;
  if (w.code == WeightCode::MxFp8) {
    out.push_back(codes(q, DType::F8_E4M3));
  } else {
    std::vector<uint8_t> codes(w.q.begin(), w.q.end());
    std::vector<uint8_t> packed = pack_fp4(codes, w.out, w.in);
    out.push_back({p + ".weight", bytes_tensor(DType::U8, packed.data(), packed.size(), {w.out, w.in / 2}), q.type});
  }
  Tensor scale(DType::U8, {w.out, w.groups()});
  for (size_t k = 0; k < w.scale.size(); ++k) scale.bytes[k] = mx_biased_exponent(w.scale[k]);
  out.push_back({p + ".weight_scale", std::move(scale), q.type});
  if (q.type == "W4A4_MXFP4_DUALSCALE") {
    // msModelSlim writes the observer's keepdim result unsqueezed: [out, ceil(in/dual_block_size), 1].
    if (w.dual_scale.size() != static_cast<size_t>(w.out * w.dual_groups()) || w.dual_scale.empty())
      fail("{}: W4A4_MXFP4_DUALSCALE weight without its dual scales", p);
    out.push_back({p + ".weight_dual_scale", tensor_f32({w.out, w.dual_groups(), 1}, w.dual_scale), q.type});
  }
}

}  // namespace

std::vector<DescribedTensor> linear_tensors(const QuantizedLinear& q, const DeqScaleEncoder& deq_scale) {
  const std::string& p = q.name;
  const QuantizedWeight& w = q.weight;
  const int64_t out = w.out, groups = w.groups();
  const std::string& t = q.type;
  std::vector<DescribedTensor> tensors;
  if (t == "W8A8" || t == "W8A8_MIX") {
    static_activation_tensors(q, deq_scale, tensors);
  } else if (t == "W8A8_DYNAMIC" || t == "W8A16" || t == "W4A4_DYNAMIC" || t == "WFP8AFP8_DYNAMIC") {
    // W4A4 weights stay unpacked int8 (spec §9 quirk 6); FP8 ones are e4m3 bytes.
    tensors.push_back(codes(q, t == "WFP8AFP8_DYNAMIC" ? DType::F8_E4M3 : DType::I8));
    tensors.push_back({p + ".weight_scale", tensor_f32({out, groups}, w.scale), t});
    // W8A8_DYNAMIC and FP8 kernels ignore offsets: msModelSlim writes zeros (the registry admits only symmetric
    // weights for them). W8A16 and W4A4 keep the signed-domain zero point.
    const bool keep_offset = t == "W8A16" || t == "W4A4_DYNAMIC";
    tensors.push_back({p + ".weight_offset", tensor_f32({out, groups}, keep_offset ? w.offset : zeros(w.scale.size())), t});
  } else if (t == "W4A8_DYNAMIC") {
    std::vector<int8_t> packed = pack_int4_w4a8(w.q.data(), out, w.in);
    tensors.push_back({p + ".weight", int8_tensor(packed, {out / 2, w.in}), t});
    tensors.push_back({p + ".weight_scale", tensor_f32({out, groups}, w.scale), t});
    tensors.push_back({p + ".weight_offset", tensor_f32({out, groups}, zeros(w.scale.size())), t});
    int64_t cols = 0;
    std::vector<float> scale_bias = w4a8_scale_bias(w, p, cols);
    tensors.push_back({p + ".scale_bias", tensor_f32({out, cols}, scale_bias), t});
  } else if (t == "W8A8_MXFP8" || t == "W4A8_MXFP" || t == "W4A4_MXFP4" || t == "W4A4_MXFP4_DUALSCALE") {
    mx_tensors(q, tensors);
  } else {
    fail("cannot save {} as type '{}'", p, t);
  }
  // msModelSlim's ascendv1 saver tags a dual-scale Linear's bias with the Linear's type, not FLOAT (spec §3.4
  // quirk); its mindie saver tags it FLOAT, and MindieSaver retags it.
  const std::string bias_tag = t == "W4A4_MXFP4_DUALSCALE" ? t : "FLOAT";
  if (!q.bias.empty()) tensors.push_back({p + ".bias", tensor_f32({out}, q.bias), bias_tag});
  return tensors;
}

}  // namespace lwq
