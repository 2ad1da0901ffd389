// Built with -mamx-tile -mamx-int8 -mamx-bf16 -mavx512f (CMakeLists.txt);
// nothing here runs unless CPUID says the CPU has AMX and the kernel granted
// the tile state, so the binary still runs on any x86-64.
#include "ops/amx_gemm.h"

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#if defined(LWQ_HAVE_AMX)
#include <cpuid.h>
#include <immintrin.h>
#include <oneapi/dnnl/dnnl.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "tensor/dtype.h"
#include "util/scratch.h"

// GCC 12's AVX-512 shuffles start from _mm512_undefined_epi32(), which it then
// reports as maybe uninitialized (a false positive, fixed in later GCCs).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace lwq {

#if !defined(LWQ_HAVE_AMX)

bool amx_bf16_usable() { return false; }
bool amx_int8_usable() { return false; }
bool amx_matmul_nt_bf16(const uint16_t*, int64_t, int64_t, const uint16_t*, int64_t, float*, int64_t, const float*) {
  return false;
}
bool amx_matmul_nt_s8(const int8_t*, int64_t, int64_t, const int8_t*, int64_t, int32_t*) { return false; }
AmxRows amx_pack_rows_bf16(const float*, int64_t, int64_t) { return {}; }
bool amx_matmul_nt_bf16(const AmxRows&, const uint16_t*, int64_t, float*, int64_t, const float*) { return false; }

#else

namespace {

constexpr int kTileRows = 16;        // rows of every tile used here
constexpr int kTileBytes = 64;       // bytes per tile row: 16 f32/int32, 32 bf16, 64 int8
constexpr int kBlockRows = 32;       // rows of x per block: two A tiles
constexpr size_t kPanelBytes = size_t{1} << 20;  // a thread's packed panel of w, half its L2

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// CPUID leaf 7: EDX bit 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8; the OS must
// also have enabled the tile state in XCR0 (bits 17, 18) and, on Linux,
// grant it per process (ARCH_REQ_XCOMP_PERM; oneDNN asks the same). A cap on
// oneDNN's ISA below AMX (ONEDNN_MAX_CPU_ISA) turns these kernels off too:
// one switch for every AMX product.
bool amx_granted(unsigned edx_bit) {
  const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
  const unsigned amx = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_amx);
  if ((isa & amx) != amx) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  if (!(d & (1u << 24)) || !(d & (1u << edx_bit))) return false;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false;  // OSXSAVE
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
  static const bool granted = [] {
    constexpr long kArchReqXcompPerm = 0x1023, kArchGetXcompPerm = 0x1022, kXtileData = 18;
    syscall(SYS_arch_prctl, kArchReqXcompPerm, kXtileData);
    unsigned long long mask = 0;
    return syscall(SYS_arch_prctl, kArchGetXcompPerm, &mask) == 0 && (mask & (1ull << kXtileData)) != 0;
  }();
  return granted;
}

// Every tile 16 rows of 64 bytes. Loaded by each thread before each product:
// the configuration is per thread, and oneDNN's kernels load their own.
void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) cfg.colsb[t] = kTileBytes, cfg.rows[t] = kTileRows;
  _tile_loadconfig(&cfg);
}

// dst[r][c] = src_c[r] for a 16×16 block of 32-bit words: row c of the source
// is 16 words at src + c·src_stride.
inline void transpose16x16(const uint32_t* src, size_t src_stride, uint32_t* dst) {
  __m512i r[16], t[16], u[16];
  for (int c = 0; c < 16; ++c) r[c] = _mm512_loadu_si512(src + c * src_stride);
  for (int p = 0; p < 16; p += 2) {
    t[p] = _mm512_unpacklo_epi32(r[p], r[p + 1]);
    t[p + 1] = _mm512_unpackhi_epi32(r[p], r[p + 1]);
  }
  // u[4g + c], lane L: column 4L + c of rows 4g .. 4g + 3.
  for (int g = 0; g < 16; g += 4) {
    u[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    u[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    u[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    u[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), w = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xdd);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88),
                  w2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xdd);
    _mm512_storeu_si512(dst + (c)*16, _mm512_shuffle_i32x4(v, v2, 0x88));
    _mm512_storeu_si512(dst + (8 + c) * 16, _mm512_shuffle_i32x4(v, v2, 0xdd));
    _mm512_storeu_si512(dst + (4 + c) * 16, _mm512_shuffle_i32x4(w, w2, 0x88));
    _mm512_storeu_si512(dst + (12 + c) * 16, _mm512_shuffle_i32x4(w, w2, 0xdd));
  }
}

// The tiles' B layout for rows [n0, n0 + cols) of w (each `words` 32-bit
// words: bf16 pairs or int8 quads): tile (j, s) holds columns 16j .. 16j+15
// and words 16s .. 16s+15, word r of column c at r·16 + c.
void pack_panel(const uint32_t* w, int64_t words, int64_t n0, int64_t cols, uint32_t* panel) {
  const int64_t steps = words / 16;
  for (int64_t j = 0; j < cols / 16; ++j)
    for (int64_t s = 0; s < steps; ++s)
      transpose16x16(w + (n0 + 16 * j) * words + 16 * s, static_cast<size_t>(words), panel + (j * steps + s) * 256);
}

template <bool kInt8>
inline void tile_dot_00() { if constexpr (kInt8) _tile_dpbssd(0, 4, 6); else _tile_dpbf16ps(0, 4, 6); }
template <bool kInt8>
inline void tile_dot_10() { if constexpr (kInt8) _tile_dpbssd(2, 5, 6); else _tile_dpbf16ps(2, 5, 6); }
template <bool kInt8>
inline void tile_dot_01() { if constexpr (kInt8) _tile_dpbssd(1, 4, 7); else _tile_dpbf16ps(1, 4, 7); }
template <bool kInt8>
inline void tile_dot_11() { if constexpr (kInt8) _tile_dpbssd(3, 5, 7); else _tile_dpbf16ps(3, 5, 7); }

// c[32][32] (rows ldc bytes apart) = a block of 32 rows of x, packed (a: 2 KiB
// per step, rows 0-15 then 16-31), times one or two packed 16-column tiles of
// w (b; the second `steps` tiles on).
template <bool kInt8, bool kTwo>
void block_product(const uint8_t* a, const uint32_t* b, int64_t steps, void* c, int64_t ldc) {
  _tile_zero(0);
  _tile_zero(2);
  if constexpr (kTwo) {
    _tile_zero(1);
    _tile_zero(3);
  }
  for (int64_t s = 0; s < steps; ++s) {
    const uint8_t* as = a + s * kBlockRows * kTileBytes;
    _tile_loadd(4, as, kTileBytes);
    _tile_loadd(6, b + s * 256, kTileBytes);
    tile_dot_00<kInt8>();
    _tile_loadd(5, as + kTileRows * kTileBytes, kTileBytes);
    tile_dot_10<kInt8>();
    if constexpr (kTwo) {
      _tile_loadd(7, b + (steps + s) * 256, kTileBytes);
      tile_dot_01<kInt8>();
      tile_dot_11<kInt8>();
    }
  }
  auto* out = static_cast<uint8_t*>(c);
  _tile_stored(0, out, ldc);
  _tile_stored(2, out + kTileRows * ldc, ldc);
  if constexpr (kTwo) {
    _tile_stored(1, out + kTileBytes, ldc);
    _tile_stored(3, out + kTileRows * ldc + kTileBytes, ldc);
  }
}

// x's rows in blocks of 32, each step's 64-byte slices of the 32 rows together
// (2 KiB): tile loads then read consecutive lines. Read in place, the rows'
// slices are a multiple of 4 KiB apart on usual widths and fall into one L1
// set. Rows past m are zeros.
int64_t packed_rows_bytes(int64_t m, int64_t row_bytes) {
  return (m + kBlockRows - 1) / kBlockRows * kBlockRows * row_bytes;
}

// Row `row` of x (row_bytes) into its slots of the packed layout.
void scatter_row(const uint8_t* src, int64_t row, int64_t row_bytes, uint8_t* packed) {
  const int64_t steps = row_bytes / kTileBytes;
  uint8_t* dst = packed + (row / kBlockRows) * steps * kBlockRows * kTileBytes + (row % kBlockRows) * kTileBytes;
  for (int64_t s = 0; s < steps; ++s, dst += kBlockRows * kTileBytes) std::memcpy(dst, src + s * kTileBytes, kTileBytes);
}

// Every row (get_row(r, buffer) returns its bytes) packed; rows past m zero.
template <class GetRow>
void pack_rows(int64_t m, int64_t row_bytes, uint8_t* packed, GetRow get_row) {
  const int64_t padded = packed_rows_bytes(m, row_bytes) / row_bytes;
#pragma omp parallel if (m * row_bytes > (int64_t{1} << 20))
  {
    std::vector<uint8_t> buffer(static_cast<size_t>(row_bytes));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < padded; ++r) {
      if (r < m) {
        scatter_row(get_row(r, buffer.data()), r, row_bytes, packed);
      } else {
        std::fill(buffer.begin(), buffer.end(), uint8_t{0});
        scatter_row(buffer.data(), r, row_bytes, packed);
      }
    }
  }
}

void pack_rows(const uint8_t* x, int64_t m, int64_t row_bytes, uint8_t* packed) {
  pack_rows(m, row_bytes, packed, [&](int64_t r, uint8_t*) { return x + r * row_bytes; });
}

// How a product's columns are split into per-thread panels: as many panels
// as threads at least (a multiple of them), each under kPanelBytes packed.
struct PanelPlan {
  int64_t count = 0, cols = 0;
};
PanelPlan plan_panels(int64_t n, int64_t row_bytes, int threads) {
  const int64_t max_cols = std::max<int64_t>(32, static_cast<int64_t>(kPanelBytes) / row_bytes / 32 * 32);
  int64_t count = (n + max_cols - 1) / max_cols;
  count = (count + threads - 1) / threads * threads;
  count = std::min(count, n / 16);
  PanelPlan p;
  p.cols = ((n + count - 1) / count + 15) / 16 * 16;
  p.count = (n + p.cols - 1) / p.cols;
  return p;
}

// y = x · wᵀ on tiles; Out is float (bf16 inputs) or int32_t (int8 inputs).
// rows_packed: x as pack_rows lays it out.
template <bool kInt8, class Out>
void tile_product(const uint8_t* rows_packed, int64_t m, int64_t row_bytes, const void* w, int64_t n, Out* y,
                  int64_t ldy, const float* bias) {
  const int64_t words = row_bytes / 4, steps = words / 16;
  const PanelPlan plan = plan_panels(n, row_bytes, omp_in_parallel() ? 1 : omp_get_max_threads());
  // Small products stay on the calling thread (waking the team costs more).
  const bool team = plan.count > 1 && 2.0 * static_cast<double>(m) * static_cast<double>(n) *
                                              static_cast<double>(row_bytes) >= 4e6;
#pragma omp parallel if (team)
  {
    Scratch<uint32_t> panel(static_cast<size_t>(plan.cols * words));
    alignas(64) Out c[kBlockRows * 32];
    configure_tiles();
#pragma omp for schedule(static)
    for (int64_t p = 0; p < plan.count; ++p) {
      const int64_t n0 = p * plan.cols, cols = std::min(plan.cols, n - n0);
      pack_panel(static_cast<const uint32_t*>(w), words, n0, cols, panel.data());
      for (int64_t r0 = 0; r0 < m; r0 += kBlockRows) {
        const uint8_t* a = rows_packed + r0 * row_bytes;
        const int64_t rows = std::min<int64_t>(kBlockRows, m - r0);
        for (int64_t j = 0; j < cols; j += 32) {
          const int64_t width = std::min<int64_t>(32, cols - j);
          const uint32_t* b = panel.data() + (j / 16) * steps * 256;
          Out* dst = y + r0 * ldy + n0 + j;
          // Whole blocks without a bias go straight from the tiles to y.
          const bool direct = rows == kBlockRows && width == 32 && !bias;
          void* out = direct ? static_cast<void*>(dst) : static_cast<void*>(c);
          const int64_t ldc = direct ? ldy * static_cast<int64_t>(sizeof(Out)) : 32 * 4;
          if (width == 32) block_product<kInt8, true>(a, b, steps, out, ldc);
          else block_product<kInt8, false>(a, b, steps, out, ldc);
          if (direct) continue;
          for (int64_t i = 0; i < rows; ++i, dst += ldy) {
            const Out* src = c + i * 32;
            if constexpr (!kInt8) {
              if (bias) {
                for (int64_t q = 0; q < width; ++q) dst[q] = src[q] + bias[n0 + j + q];
                continue;
              }
            }
            std::memcpy(dst, src, static_cast<size_t>(width) * sizeof(Out));
          }
        }
      }
    }
    _tile_release();
  }
}

}  // namespace

bool amx_bf16_usable() {
  static const bool usable = amx_granted(22);
  return usable;
}

bool amx_int8_usable() {
  static const bool usable = amx_granted(25);
  return usable;
}

bool amx_matmul_nt_bf16(const uint16_t* x, int64_t m, int64_t k, const uint16_t* w, int64_t n, float* y,
                        int64_t ldy, const float* bias) {
  if (m < 16 || k <= 0 || k % 32 != 0 || n <= 0 || n % 16 != 0 || !amx_bf16_usable()) return false;
  Scratch<uint8_t> packed(static_cast<size_t>(packed_rows_bytes(m, k * 2)));
  pack_rows(reinterpret_cast<const uint8_t*>(x), m, k * 2, packed.data());
  tile_product<false>(packed.data(), m, k * 2, w, n, y, ldy, bias);
  return true;
}

AmxRows amx_pack_rows_bf16(const float* x, int64_t m, int64_t k) {
  AmxRows rows;
  if (m < 16 || k <= 0 || k % 32 != 0 || !amx_bf16_usable()) return rows;
  rows.m = m, rows.k = k;
  rows.packed = Scratch<uint8_t>(static_cast<size_t>(packed_rows_bytes(m, k * 2)));
  pack_rows(m, k * 2, rows.packed.data(), [&](int64_t r, uint8_t* buffer) {
    f32_to_bf16(x + r * k, reinterpret_cast<uint16_t*>(buffer), static_cast<size_t>(k));
    return static_cast<const uint8_t*>(buffer);
  });
  return rows;
}

bool amx_matmul_nt_bf16(const AmxRows& x, const uint16_t* w, int64_t n, float* y, int64_t ldy, const float* bias) {
  if (x.m == 0 || n <= 0 || n % 16 != 0) return false;
  tile_product<false>(x.packed.data(), x.m, x.k * 2, w, n, y, ldy, bias);
  return true;
}

bool amx_matmul_nt_s8(const int8_t* x, int64_t m, int64_t k, const int8_t* w, int64_t n, int32_t* y) {
  if (m < 16 || k <= 0 || k % 64 != 0 || n <= 0 || n % 16 != 0 || !amx_int8_usable()) return false;
  Scratch<uint8_t> packed(static_cast<size_t>(packed_rows_bytes(m, k)));
  pack_rows(reinterpret_cast<const uint8_t*>(x), m, k, packed.data());
  tile_product<true>(packed.data(), m, k, w, n, y, n, nullptr);
  return true;
}

#endif  // LWQ_HAVE_AMX

}  // namespace lwq
