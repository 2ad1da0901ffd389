#include "ops/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <vector>

#include "ops/amx_gemm.h"
#include "ops/onednn_matmul.h"
#include "tensor/dtype.h"
#include "util/error.h"
#include "util/scratch.h"

namespace lwq {
namespace {

// Products below this many FLOP run on the calling thread alone: at about
// 100 GFLOP/s per core that is < 40 µs, the scale of waking a sleeping team
// (passive waits, ops/threads.h) and joining it again. Tiny models
// (stories260K: hidden 64) and one-token decoding thus stay serial.
constexpr double kSerialFlop = 4e6;

// Runs f with the caller's OpenMP team limited to one thread when the
// product is small; oneDNN sizes its team from omp_get_max_threads().
template <class F>
void maybe_serial(double flop, F&& f) {
  if (flop >= kSerialFlop || omp_in_parallel()) return f();
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  f();
  omp_set_num_threads(saved);
}

// oneDNN takes 64-bit dimensions; negative ones are caller bugs.
dnnl_dim_t checked_dim(int64_t v, const char* what) {
  if (v < 0) fail("matmul: dimension {} = {} out of range", what, v);
  return static_cast<dnnl_dim_t>(v);
}

// oneDNN's sgemm picks its kernel from CPUID feature bits (AVX2, AVX-512,
// ...), not from a table of CPU models as OpenBLAS does, and runs on the same
// OpenMP pool as the rest of the forward pass (row-major, like cblas RowMajor).
void sgemm(char ta, char tb, dnnl_dim_t m, dnnl_dim_t n, dnnl_dim_t k, const float* a, dnnl_dim_t lda,
           const float* b, dnnl_dim_t ldb, float beta, float* c, dnnl_dim_t ldc) {
  dnnl_status_t st = dnnl_success;
  maybe_serial(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k),
               [&] { st = dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc); });
  if (st != dnnl_success) fail("matmul: oneDNN sgemm {}x{}x{} failed with status {}", m, n, k, static_cast<int>(st));
}

}  // namespace

void matmul_nt(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y, const float* bias) {
  matmul_nt_strided(x, rows, in, w, out, y, out, bias);
}

void matmul_nt_strided(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y, int64_t ldy,
                       const float* bias) {
  const dnnl_dim_t m = checked_dim(rows, "rows"), k = checked_dim(in, "in"), n = checked_dim(out, "out");
  const dnnl_dim_t ldc = checked_dim(ldy, "ldy");
  if (m == 0 || n == 0) return;
  if (ldy < out) fail("matmul: output row stride {} is smaller than out {}", ldy, out);
  float beta = 0.0f;
  if (bias) {
    // Seeding y with the bias lets sgemm add it for free (beta = 1).
    for (int64_t r = 0; r < rows; ++r) std::copy(bias, bias + out, y + r * ldy);
    beta = 1.0f;
  }
  if (k == 0) {
    if (!bias)
      for (int64_t r = 0; r < rows; ++r) std::fill(y + r * ldy, y + r * ldy + out, 0.0f);
    return;
  }
  sgemm('N', 'T', m, n, k, x, k, w, k, beta, y, ldc);
}

void matmul_nt_rows(const float* x, int64_t rows, int64_t in, const WeightRowsFn& fill, int64_t out, float* y,
                    const float* bias) {
  // Blocks of at least 2M floats and, for 256 rows or more, of at least 2M
  // outputs (rows × block), at most 4M floats (16 MiB, below glibc's largest
  // mmap threshold, so the buffer is reused rather than mapped afresh), a
  // multiple of 16 rows: oneDNN's sgemm on two threads runs at ~70 % of its
  // large-shape rate when rows × block is near a million (826 × 1024: 290
  // against 400 GFLOP/s on Zen 5), and calibration batches are often under
  // 1024 rows. Fewer rows (decoding) are bound by the weight's conversion.
  const int64_t min_floats = int64_t{1} << 21, max_floats = int64_t{1} << 22, in1 = std::max<int64_t>(in, 1);
  const int64_t wanted = std::max(min_floats / in1, rows >= 256 ? min_floats / rows : 0);
  const int64_t block = std::max<int64_t>(64, std::min(wanted, max_floats / in1) / 16 * 16);
  Scratch<float> w(static_cast<size_t>(std::min(block, out) * in));
  for (int64_t begin = 0; begin < out; begin += block) {
    const int64_t n = std::min(block, out - begin);
    fill(begin, n, w.data());
    matmul_nt_strided(x, rows, in, w.data(), n, y + begin, out, bias ? bias + begin : nullptr);
  }
}

bool has_native_bf16_gemm() {
  // The ISA oneDNN will dispatch to (it honours ONEDNN_MAX_CPU_ISA); below
  // AVX512-BF16 its bf16 matmul may fall back to a reference kernel.
  static const bool native = [] {
    const unsigned isa = static_cast<unsigned>(dnnl_get_effective_cpu_isa());
    const unsigned bf16 = static_cast<unsigned>(dnnl_cpu_isa_avx512_core_bf16);
    return (isa & bf16) == bf16;
  }();
  return native;
}

void matmul_nt_bf16(const uint16_t* x, int64_t rows, int64_t in, const uint16_t* w, int64_t out, float* y,
                    const float* bias, int64_t ldy) {
  if (ldy == 0) ldy = out;
  const dnnl_dim_t m = checked_dim(rows, "rows"), k = checked_dim(in, "in"), n = checked_dim(out, "out");
  const dnnl_dim_t ldc = checked_dim(ldy, "ldy");
  if (m == 0 || n == 0) return;
  if (ldy < out) fail("matmul_nt_bf16: output row stride {} is smaller than out {}", ldy, out);
  if (k == 0 || !has_native_bf16_gemm()) {
    std::vector<float> xf(static_cast<size_t>(rows * in)), wf(static_cast<size_t>(out * in));
    convert_to_f32(DType::BF16, x, xf.data(), xf.size());
    convert_to_f32(DType::BF16, w, wf.data(), wf.size());
    matmul_nt_strided(xf.data(), rows, in, wf.data(), out, y, ldy, bias);
    return;
  }
  bool done = false;
  maybe_serial(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k),
               [&] { done = amx_matmul_nt_bf16(x, rows, in, w, out, y, ldy, bias); });
  if (done) return;
  if (ldy != out) {
    // oneDNN 2.6 runs a bf16 matmul whose output rows are strided on its
    // AVX-512 gemm, not on AMX (brgemm needs a dense dst): 2-3x slower on a
    // Sapphire Rapids-class CPU for the blocks of weight rows linear_from_layer
    // multiplies. A dense product copied into place costs far less.
    Scratch<float> dense(static_cast<size_t>(rows * out));
    matmul_nt_bf16(x, rows, in, w, out, dense.data(), bias, out);
    for (int64_t r = 0; r < rows; ++r) std::copy_n(dense.data() + r * out, out, y + r * ldy);
    return;
  }
  maybe_serial(2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k), [&] {
    const OneDnnMatmulTypes bf16{dnnl::memory::data_type::bf16, dnnl::memory::data_type::bf16,
                                 dnnl::memory::data_type::f32};
    onednn_matmul_nt(bf16, x, m, k, w, n, y, ldc, bias, {}, "matmul_nt_bf16");
  });
}

void matmul_nn(const float* a, int64_t m_, int64_t k_, const float* b, int64_t n_, float* y) {
  const dnnl_dim_t m = checked_dim(m_, "m"), k = checked_dim(k_, "k"), n = checked_dim(n_, "n");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(y, y + m_ * n_, 0.0f);
    return;
  }
  sgemm('N', 'N', m, n, k, a, k, b, n, 0.0f, y, n);
}

}  // namespace lwq
