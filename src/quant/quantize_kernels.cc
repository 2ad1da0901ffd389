#include "quant/quantize_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/quantize_kernels.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>

#include "quant/qparams.h"
#include "tensor/dtype.h"

HWY_BEFORE_NAMESPACE();
namespace lwq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Loads N floats: f32 as is; bf16 widened in registers (its bits are the
// high half of the f32's, so the value is exact and the kernels' results
// equal those on a converted row, without writing one).
template <class D>
HWY_INLINE hn::Vec<D> LoadF(D d, const float* p) {
  return hn::LoadU(d, p);
}
template <class D>
HWY_INLINE hn::Vec<D> LoadF(D d, const uint16_t* p) {
  const hn::Rebind<uint16_t, D> d16;
  const hn::Rebind<uint32_t, D> d32;
  return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, p))));
}
HWY_INLINE float ScalarF(const float* p) { return *p; }
HWY_INLINE float ScalarF(const uint16_t* p) { return bf16_to_f32(*p); }

template <typename T>
bool RowMinMaxT(const T* row, int64_t n, float* lo, float* hi) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  auto vlo = hn::Set(d, ScalarF(row)), vhi = vlo;
  // x − x is 0 for finite x and NaN for NaN or ±Inf: one sum tells.
  auto bad = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto v = LoadF(d, row + i);
    vlo = hn::Min(vlo, v);
    vhi = hn::Max(vhi, v);
    bad = hn::Add(bad, hn::Sub(v, v));
  }
  float l = hn::GetLane(hn::MinOfLanes(d, vlo)), h = hn::GetLane(hn::MaxOfLanes(d, vhi));
  bool finite = hn::GetLane(hn::SumOfLanes(d, bad)) == 0.0f;  // NaN compares false
  for (; i < n; ++i) {
    const float x = ScalarF(row + i);
    finite = finite && std::isfinite(x);
    l = std::min(l, x);
    h = std::max(h, x);
  }
  *lo = l;
  *hi = h;
  return finite;
}

template <typename T>
void QuantizeRowT(const T* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q) {
  const hn::ScalableTag<float> d;
  const hn::Rebind<int32_t, decltype(d)> di;
  const hn::Rebind<int8_t, decltype(d)> d8;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto vs = hn::Set(d, scale), vz = hn::Set(d, offset);
  const auto vmin = hn::Set(d, static_cast<float>(qmin)), vmax = hn::Set(d, static_cast<float>(qmax));
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    // Div then Add, each rounded, as the scalar x / scale + offset; Round is ties-to-even.
    auto v = hn::Round(hn::Add(hn::Div(LoadF(d, x + i), vs), vz));
    v = hn::Min(hn::Max(v, vmin), vmax);
    hn::StoreU(hn::DemoteTo(d8, hn::ConvertTo(di, v)), d8, q + i);
  }
  for (; i < n; ++i) {
    const float v = std::nearbyint(ScalarF(x + i) / scale + offset);
    q[i] = static_cast<int8_t>(std::clamp(v, static_cast<float>(qmin), static_cast<float>(qmax)));
  }
}

bool RowMinMax(const float* row, int64_t n, float* lo, float* hi) { return RowMinMaxT(row, n, lo, hi); }
bool RowMinMaxBf16(const uint16_t* row, int64_t n, float* lo, float* hi) { return RowMinMaxT(row, n, lo, hi); }

void QuantizeRow(const float* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q) {
  QuantizeRowT(x, n, scale, offset, qmin, qmax, q);
}
void QuantizeRowBf16(const uint16_t* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q) {
  QuantizeRowT(x, n, scale, offset, qmin, qmax, q);
}

}  // namespace HWY_NAMESPACE
}  // namespace lwq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lwq {
namespace kernels {
HWY_EXPORT(RowMinMax);
HWY_EXPORT(QuantizeRow);
HWY_EXPORT(RowMinMaxBf16);
HWY_EXPORT(QuantizeRowBf16);
}  // namespace kernels

bool row_min_max(const float* row, int64_t n, float* lo, float* hi) {
  return HWY_DYNAMIC_DISPATCH(kernels::RowMinMax)(row, n, lo, hi);
}

void quantize_row(const float* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q) {
  HWY_DYNAMIC_DISPATCH(kernels::QuantizeRow)(x, n, scale, offset, qmin, qmax, q);
}

bool row_min_max_bf16(const uint16_t* row, int64_t n, float* lo, float* hi) {
  return HWY_DYNAMIC_DISPATCH(kernels::RowMinMaxBf16)(row, n, lo, hi);
}

void quantize_row_bf16(const uint16_t* x, int64_t n, float scale, float offset, int qmin, int qmax, int8_t* q) {
  HWY_DYNAMIC_DISPATCH(kernels::QuantizeRowBf16)(x, n, scale, offset, qmin, qmax, q);
}
}  // namespace lwq
#endif
