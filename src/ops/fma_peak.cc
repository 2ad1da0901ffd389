#include "ops/fma_peak.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/fma_peak.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

HWY_BEFORE_NAMESPACE();
namespace lwq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// 12 accumulators hide the FMA latency (4 cycles × 2 pipes on current x86).
double FmaLoop(int64_t iterations, float* checksum) {
  const hn::ScalableTag<float> d;
  const auto a = hn::Set(d, 0.999999f), b = hn::Set(d, 1e-7f);
  // Distinct starting values: identical chains would be merged by the compiler.
  auto x0 = hn::Set(d, 1.0f), x1 = hn::Set(d, 1.1f), x2 = hn::Set(d, 1.2f), x3 = hn::Set(d, 1.3f);
  auto x4 = hn::Set(d, 1.4f), x5 = hn::Set(d, 1.5f), x6 = hn::Set(d, 1.6f), x7 = hn::Set(d, 1.7f);
  auto x8 = hn::Set(d, 1.8f), x9 = hn::Set(d, 1.9f), x10 = hn::Set(d, 2.0f), x11 = hn::Set(d, 2.1f);
  for (int64_t i = 0; i < iterations; ++i) {
    x0 = hn::MulAdd(x0, a, b); x1 = hn::MulAdd(x1, a, b); x2 = hn::MulAdd(x2, a, b);
    x3 = hn::MulAdd(x3, a, b); x4 = hn::MulAdd(x4, a, b); x5 = hn::MulAdd(x5, a, b);
    x6 = hn::MulAdd(x6, a, b); x7 = hn::MulAdd(x7, a, b); x8 = hn::MulAdd(x8, a, b);
    x9 = hn::MulAdd(x9, a, b); x10 = hn::MulAdd(x10, a, b); x11 = hn::MulAdd(x11, a, b);
  }
  auto s = hn::Add(hn::Add(hn::Add(x0, x1), hn::Add(x2, x3)), hn::Add(hn::Add(x4, x5), hn::Add(x6, x7)));
  s = hn::Add(s, hn::Add(hn::Add(x8, x9), hn::Add(x10, x11)));
  *checksum = hn::GetLane(hn::SumOfLanes(d, s));
  return 2.0 * 12.0 * static_cast<double>(hn::Lanes(d)) * static_cast<double>(iterations);
}

int64_t Lanes() { return static_cast<int64_t>(hn::Lanes(hn::ScalableTag<float>())); }

}  // namespace HWY_NAMESPACE
}  // namespace lwq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace lwq {
namespace kernels {
HWY_EXPORT(FmaLoop);
HWY_EXPORT(Lanes);
}  // namespace kernels

double fma_peak_flop(int64_t iterations, float* checksum) {
  return HWY_DYNAMIC_DISPATCH(kernels::FmaLoop)(iterations, checksum);
}
int64_t fma_peak_lanes() { return HWY_DYNAMIC_DISPATCH(kernels::Lanes)(); }
}  // namespace lwq
#endif
