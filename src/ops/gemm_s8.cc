#include "ops/gemm_s8.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/gemm_s8.cc"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <vector>

HWY_BEFORE_NAMESPACE();
namespace lwq::kernels {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_SCALAR
// One-lane target (no int16 pairs to multiply-add): plain int32 arithmetic.
int64_t PadUnit() { return 1; }
void Widen(const int8_t* src, int64_t nrows, int64_t in, int64_t kp, int16_t* dst) {
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t i = 0; i < in; ++i) dst[r * kp + i] = src[r * in + i];
}
void DotTile(const int16_t* xw, int64_t rows, const int16_t* ww, int64_t nout, int64_t kp, int32_t* y, int64_t ldy) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < nout; ++o) {
      int32_t a = 0;
      for (int64_t i = 0; i < kp; ++i) a += int32_t{xw[r * kp + i]} * ww[o * kp + i];
      y[r * ldy + o] = a;
    }
}
#else
using D32 = hn::ScalableTag<int32_t>;
using D16 = hn::Repartition<int16_t, D32>;

// Lanes of int16 per vector: rows are widened and zero-padded to a multiple.
int64_t PadUnit() { return static_cast<int64_t>(hn::Lanes(D16())); }

// dst[r, 0..kp) = src[r, 0..in) as int16, zeros after (kp: multiple of PadUnit).
void Widen(const int8_t* src, int64_t nrows, int64_t in, int64_t kp, int16_t* dst) {
  const D16 d16;
  const hn::Rebind<int8_t, D16> d8;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d16));
  for (int64_t r = 0; r < nrows; ++r) {
    const int8_t* s = src + r * in;
    int16_t* t = dst + r * kp;
    int64_t i = 0;
    for (; i + L <= in; i += L) hn::StoreU(hn::PromoteTo(d16, hn::LoadU(d8, s + i)), d16, t + i);
    for (; i < in; ++i) t[i] = s[i];
    for (; i < kp; ++i) t[i] = 0;
  }
}

// y[r, o] = Σ_i x[r, i]·w[o, i] for an R × C block, over widened, padded
// rows. vpmaddwd-style pairwise int16 products summed into int32 lanes:
// exact, no saturation (only (−2^15)² pairs could overflow, and int8 values
// never reach that). Each sum has a second accumulator (the API's odd lanes;
// x86 targets never write it, emulated ones do), folded back at the end.
template <int R, int C>
HWY_INLINE void Tile(const int16_t* xw, const int16_t* ww, int64_t kp, int32_t* y, int64_t ldy) {
  const D32 d32;
  const D16 d16;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d16));
  hn::Vec<D32> acc[R][C], odd[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = odd[r][c] = hn::Zero(d32);
  for (int64_t i = 0; i < kp; i += L) {
    hn::Vec<D16> vw[C];
    for (int c = 0; c < C; ++c) vw[c] = hn::LoadU(d16, ww + c * kp + i);
    for (int r = 0; r < R; ++r) {
      const auto vx = hn::LoadU(d16, xw + r * kp + i);
      for (int c = 0; c < C; ++c) acc[r][c] = hn::ReorderWidenMulAccumulate(d32, vx, vw[c], acc[r][c], odd[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      y[r * ldy + c] = hn::GetLane(hn::SumOfLanes(d32, hn::RearrangeToOddPlusEven(acc[r][c], odd[r][c])));
}

// Micro-tiles of kRows rows × 4 outputs: with AVX-512's 32 registers 4 × 4
// (8 loads feed 16 multiply-adds), else 2 × 4 (6 loads, 8 multiply-adds).
#if HWY_TARGET <= HWY_AVX3
constexpr int kRows = 4;
#else
constexpr int kRows = 2;
#endif

template <int R>
void TileRow(const int16_t* xw, const int16_t* ww, int64_t nout, int64_t kp, int32_t* y, int64_t ldy) {
  int64_t o = 0;
  for (; o + 4 <= nout; o += 4) Tile<R, 4>(xw, ww + o * kp, kp, y + o, ldy);
  for (; o < nout; ++o) Tile<R, 1>(xw, ww + o * kp, kp, y + o, ldy);
}

void DotTile(const int16_t* xw, int64_t rows, const int16_t* ww, int64_t nout, int64_t kp, int32_t* y, int64_t ldy) {
  int64_t r = 0;
  for (; r + kRows <= rows; r += kRows) TileRow<kRows>(xw + r * kp, ww, nout, kp, y + r * ldy, ldy);
  for (; r < rows; ++r) TileRow<1>(xw + r * kp, ww, nout, kp, y + r * ldy, ldy);
}

#endif  // HWY_TARGET == HWY_SCALAR

}  // namespace HWY_NAMESPACE
}  // namespace lwq::kernels
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <oneapi/dnnl/dnnl.h>

#include "ops/amx_gemm.h"
#include "ops/onednn_matmul.h"
#include "util/error.h"

namespace lwq {
namespace kernels {
HWY_EXPORT(PadUnit);
HWY_EXPORT(Widen);
HWY_EXPORT(DotTile);
}  // namespace kernels

namespace {

void portable(const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out, int32_t* y) {
  const int64_t unit = HWY_DYNAMIC_DISPATCH(kernels::PadUnit)();
  const int64_t kp = (in + unit - 1) / unit * unit;
  std::vector<int16_t> xw(static_cast<size_t>(rows * kp));
  HWY_DYNAMIC_DISPATCH(kernels::Widen)(x, rows, in, kp, xw.data());
  // Blocks of output channels, widened by the thread that uses them while
  // they are hot in its cache; a block of 32 rows of 4096 int16 is 256 KiB.
  // Rows of x are walked in chunks so a block's weights stay in L2.
  const int64_t ob = 32, rb = std::max<int64_t>(2, (int64_t{1} << 17) / std::max<int64_t>(kp, 1) / 2 * 2);
  const int64_t nblocks = (out + ob - 1) / ob;
#pragma omp parallel if (rows * out * in > (1 << 16))
  {
    std::vector<int16_t> wb(static_cast<size_t>(ob * kp));
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < nblocks; ++b) {
      const int64_t o0 = b * ob, n = std::min(ob, out - o0);
      HWY_DYNAMIC_DISPATCH(kernels::Widen)(w + o0 * in, n, in, kp, wb.data());
      for (int64_t r0 = 0; r0 < rows; r0 += rb)
        HWY_DYNAMIC_DISPATCH(kernels::DotTile)(xw.data() + r0 * kp, std::min(rb, rows - r0), wb.data(), n, kp,
                                               y + r0 * out + o0, out);
    }
  }
}

void onednn(const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out, int32_t* y) {
  const int32_t co = 0;
  // alpha 1 and beta 0 keep the int32 path: no conversion through float.
  const dnnl_status_t st =
      dnnl_gemm_s8s8s32('N', 'T', 'F', rows, out, in, 1.0f, x, in, 0, w, in, 0, 0.0f, y, out, &co);
  if (st != dnnl_success) fail("matmul_nt_s8: oneDNN {}x{}x{} failed with status {}", rows, out, in, static_cast<int>(st));
}

// y = x·wᵀ by oneDNN's matmul primitive if it picks its AMX int8 kernel for
// this shape; false (y untouched) if it would run anything else.
bool onednn_amx(const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out, int32_t* y) {
  const OneDnnMatmulTypes s8{dnnl::memory::data_type::s8, dnnl::memory::data_type::s8, dnnl::memory::data_type::s32};
  return onednn_matmul_nt(s8, x, rows, in, w, out, y, out, nullptr, "brg:avx512_core_amx", "matmul_nt_s8 (AMX)");
}

bool onednn_has_amx_int8() {
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  const unsigned amx = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_amx);
  return (isa & amx) == amx;
}

// One product whose every sum is odd and past 2^24 (−128·−128 pairs and one
// 1·1), on a shape the AMX kernel takes: kAuto trusts the kernel only if it
// is exact here (a oneDNN whose AMX store went through float would fail).
bool amx_probe_is_exact() {
  const int64_t rows = 32, in = 4099, out = 48;
  std::vector<int8_t> x(static_cast<size_t>(rows * in), -128), w(static_cast<size_t>(out * in), -128);
  for (int64_t r = 0; r < rows; ++r) x[static_cast<size_t>(r * in)] = 1;
  for (int64_t o = 0; o < out; ++o) w[static_cast<size_t>(o * in)] = 1;
  std::vector<int32_t> y(static_cast<size_t>(rows * out));
  if (!onednn_amx(x.data(), rows, in, w.data(), out, y.data())) return false;
  const int32_t want = 16384 * static_cast<int32_t>(in - 1) + 1;
  return std::all_of(y.begin(), y.end(), [want](int32_t v) { return v == want; });
}

// Whether oneDNN's AMX int8 matmul may be used: present, and exact on the probe (asked once).
bool onednn_amx_trusted() {
  static const bool trusted = onednn_has_amx_int8() && amx_probe_is_exact();
  return trusted;
}

bool onednn_has_vnni() {
  // The ISA oneDNN will actually dispatch to (it honours ONEDNN_MAX_CPU_ISA).
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  const unsigned vnni = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_vnni);
  return (isa & vnni) == vnni;
}

}  // namespace

S8Kernel s8_auto_kernel() {
  static const S8Kernel k = !onednn_has_vnni()    ? S8Kernel::kPortable
                            : amx_int8_usable()     ? S8Kernel::kAmx
                            : onednn_amx_trusted()  ? S8Kernel::kOneDnnAmx
                                                    : S8Kernel::kOneDnnVnni;
  return k;
}

const char* s8_kernel_name(S8Kernel kernel) {
  switch (kernel) {
    case S8Kernel::kAuto: return s8_kernel_name(s8_auto_kernel());
    case S8Kernel::kOneDnnVnni: return "onednn-vnni";
    case S8Kernel::kPortable: return "highway-int16";
    case S8Kernel::kOneDnnAmx: return "onednn-amx";
    case S8Kernel::kAmx: return "amx";
  }
  return "?";
}

void matmul_nt_s8(S8Kernel kernel, const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out,
                  int32_t* y) {
  if (rows < 0 || in < 0 || out < 0) fail("matmul_nt_s8: negative dimension ({} x {} x {})", rows, in, out);
  if (in > kMaxS8Depth) fail("matmul_nt_s8: depth {} could overflow int32 (at most {})", in, kMaxS8Depth);
  if (rows == 0 || out == 0) return;
  if (in == 0) {
    std::fill(y, y + rows * out, 0);
    return;
  }
  if (kernel == S8Kernel::kAuto) kernel = s8_auto_kernel();
  if (kernel == S8Kernel::kAmx) {
    if (!amx_int8_usable())
      fail("matmul_nt_s8: the amx kernel needs AMX-INT8, absent here (or capped by ONEDNN_MAX_CPU_ISA)");
    if (amx_matmul_nt_s8(x, rows, in, w, out, y)) return;
    kernel = onednn_amx_trusted() ? S8Kernel::kOneDnnAmx : S8Kernel::kOneDnnVnni;
  }
  if (kernel == S8Kernel::kOneDnnAmx) {
    if (!onednn_has_amx_int8()) fail("matmul_nt_s8: the onednn-amx kernel needs AMX-INT8, absent here");
    if (!onednn_amx(x, rows, in, w, out, y)) onednn(x, rows, in, w, out, y);  // AMX implies VNNI
  } else if (kernel == S8Kernel::kOneDnnVnni) {
    if (!onednn_has_vnni()) fail("matmul_nt_s8: oneDNN's int8 GEMM is exact only with AVX512-VNNI, absent here");
    onednn(x, rows, in, w, out, y);
  } else {
    portable(x, rows, in, w, out, y);
  }
}

void matmul_nt_s8(const int8_t* x, int64_t rows, int64_t in, const int8_t* w, int64_t out, int32_t* y) {
  matmul_nt_s8(S8Kernel::kAuto, x, rows, in, w, out, y);
}

}  // namespace lwq
#endif
