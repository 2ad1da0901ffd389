#include "ops/attention_kernels.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/attention_kernels.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

HWY_BEFORE_NAMESPACE();
namespace lwq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void Scores(const float* q, const float* kt, int64_t kt_stride, int64_t hd, int64_t n, float scale, float* s) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto vscale = hn::Set(d, scale);
  int64_t j = 0;
  // Four vectors of keys stay in registers while the head dimension streams.
  for (; j + 4 * N <= n; j += 4 * N) {
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (int64_t e = 0; e < hd; ++e) {
      const auto qe = hn::Set(d, q[e]);
      const float* row = kt + e * kt_stride + j;
      a0 = hn::MulAdd(qe, hn::LoadU(d, row), a0);
      a1 = hn::MulAdd(qe, hn::LoadU(d, row + N), a1);
      a2 = hn::MulAdd(qe, hn::LoadU(d, row + 2 * N), a2);
      a3 = hn::MulAdd(qe, hn::LoadU(d, row + 3 * N), a3);
    }
    hn::StoreU(hn::Mul(a0, vscale), d, s + j);
    hn::StoreU(hn::Mul(a1, vscale), d, s + j + N);
    hn::StoreU(hn::Mul(a2, vscale), d, s + j + 2 * N);
    hn::StoreU(hn::Mul(a3, vscale), d, s + j + 3 * N);
  }
  for (; j + N <= n; j += N) {
    auto a = hn::Zero(d);
    for (int64_t e = 0; e < hd; ++e) a = hn::MulAdd(hn::Set(d, q[e]), hn::LoadU(d, kt + e * kt_stride + j), a);
    hn::StoreU(hn::Mul(a, vscale), d, s + j);
  }
  for (; j < n; ++j) {
    float a = 0.0f;
    for (int64_t e = 0; e < hd; ++e) a += q[e] * kt[e * kt_stride + j];
    s[j] = a * scale;
  }
}

float Softmax(float* s, int64_t n) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  float mx = -INFINITY;
  int64_t j = 0;
  if (n >= N) {
    auto vm = hn::LoadU(d, s);
    for (j = N; j + N <= n; j += N) vm = hn::Max(vm, hn::LoadU(d, s + j));
    mx = hn::GetLane(hn::MaxOfLanes(d, vm));
  }
  for (; j < n; ++j) mx = std::max(mx, s[j]);
  const auto vmx = hn::Set(d, mx);
  auto vsum = hn::Zero(d);
  j = 0;
  for (; j + N <= n; j += N) {
    const auto e = hn::Exp(d, hn::Sub(hn::LoadU(d, s + j), vmx));
    hn::StoreU(e, d, s + j);
    vsum = hn::Add(vsum, e);
  }
  float sum = hn::GetLane(hn::SumOfLanes(d, vsum));
  for (; j < n; ++j) {
    s[j] = std::exp(s[j] - mx);
    sum += s[j];
  }
  return sum;
}

// out[e] = inv · Σ_j p[j] · v[j, e] for columns e = begin, begin + L, ... while
// whole vectors of `d` fit; returns the first column not done. Four keys per
// step into four accumulators: with one, every multiply-add waits for the
// previous one (4-cycle latency), which made this the example's hottest loop
// when a head is a single vector (stories260K: head_dim 8).
template <class D>
int64_t WeightedSumColumns(D d, const float* p, int64_t n, const float* v, int64_t v_stride, int64_t begin,
                           int64_t hd, float inv, float* out) {
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  int64_t e = begin;
  for (; e + L <= hd; e += L) {
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    const float* col = v + e;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
      a0 = hn::MulAdd(hn::Set(d, p[j]), hn::LoadU(d, col + j * v_stride), a0);
      a1 = hn::MulAdd(hn::Set(d, p[j + 1]), hn::LoadU(d, col + (j + 1) * v_stride), a1);
      a2 = hn::MulAdd(hn::Set(d, p[j + 2]), hn::LoadU(d, col + (j + 2) * v_stride), a2);
      a3 = hn::MulAdd(hn::Set(d, p[j + 3]), hn::LoadU(d, col + (j + 3) * v_stride), a3);
    }
    for (; j < n; ++j) a0 = hn::MulAdd(hn::Set(d, p[j]), hn::LoadU(d, col + j * v_stride), a0);
    const auto a = hn::Add(hn::Add(a0, a1), hn::Add(a2, a3));
    hn::StoreU(hn::Mul(a, hn::Set(d, inv)), d, out + e);
  }
  return e;
}

void WeightedSum(const float* p, int64_t n, const float* v, int64_t v_stride, int64_t hd, float inv, float* out) {
  const hn::ScalableTag<float> d;
  const int64_t N = static_cast<int64_t>(hn::Lanes(d));
  const auto vinv = hn::Set(d, inv);
  int64_t e = 0;
  for (; e + 4 * N <= hd; e += 4 * N) {
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    for (int64_t j = 0; j < n; ++j) {
      const auto pj = hn::Set(d, p[j]);
      const float* row = v + j * v_stride + e;
      a0 = hn::MulAdd(pj, hn::LoadU(d, row), a0);
      a1 = hn::MulAdd(pj, hn::LoadU(d, row + N), a1);
      a2 = hn::MulAdd(pj, hn::LoadU(d, row + 2 * N), a2);
      a3 = hn::MulAdd(pj, hn::LoadU(d, row + 3 * N), a3);
    }
    hn::StoreU(hn::Mul(a0, vinv), d, out + e);
    hn::StoreU(hn::Mul(a1, vinv), d, out + e + N);
    hn::StoreU(hn::Mul(a2, vinv), d, out + e + 2 * N);
    hn::StoreU(hn::Mul(a3, vinv), d, out + e + 3 * N);
  }
  e = WeightedSumColumns(d, p, n, v, v_stride, e, hd, inv, out);
  // Heads narrower than a full vector (stories260K: 8 with 16-lane AVX-512)
  // and the tails of others use narrower vectors, still one row load per key,
  // rather than a strided scalar walk over the keys per column.
  e = WeightedSumColumns(hn::CappedTag<float, 8>(), p, n, v, v_stride, e, hd, inv, out);
  e = WeightedSumColumns(hn::CappedTag<float, 4>(), p, n, v, v_stride, e, hd, inv, out);
  for (; e < hd; ++e) {
    float a = 0.0f;
    for (int64_t j = 0; j < n; ++j) a += p[j] * v[j * v_stride + e];
    out[e] = a * inv;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace lwq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lwq::kernels {

HWY_EXPORT(Scores);
HWY_EXPORT(Softmax);
HWY_EXPORT(WeightedSum);

void attention_scores(const float* q, const float* kt, int64_t kt_stride, int64_t head_dim, int64_t n, float scale,
                      float* s) {
  HWY_DYNAMIC_DISPATCH(Scores)(q, kt, kt_stride, head_dim, n, scale, s);
}

float softmax_unnormalized(float* s, int64_t n) { return HWY_DYNAMIC_DISPATCH(Softmax)(s, n); }

void attention_weighted_sum(const float* p, int64_t n, const float* v, int64_t v_stride, int64_t head_dim, float inv,
                            float* out) {
  HWY_DYNAMIC_DISPATCH(WeightedSum)(p, n, v, v_stride, head_dim, inv, out);
}

}  // namespace lwq::kernels
#endif
