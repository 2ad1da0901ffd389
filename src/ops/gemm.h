// Dense f32 matrix products for Linear layers (weights stored [out, in] as in
// PyTorch). Runs on oneDNN (kernel chosen by CPU features at run time) with
// the caller's OpenMP team (set_compute_threads, ops/threads.h); products
// under 4 MFLOP run on the calling thread. Safe to call from any thread;
// inside an OpenMP parallel region a product runs on the calling thread alone.
// For exact int8 products see ops/gemm_s8.h.
#pragma once

#include <cstdint>
#include <functional>

namespace lwq {

// y[rows, out] = x[rows, in] · w[out, in]ᵀ (+ bias[out] on every row).
void matmul_nt(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y,
               const float* bias = nullptr);

// The same into columns of a wider output: y has row stride `ldy` (≥ out),
// so a Linear can be computed a block of output channels at a time.
void matmul_nt_strided(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y, int64_t ldy,
                       const float* bias = nullptr);

// y[rows, out] = x·Wᵀ + bias for a W that should never exist as a whole f32
// matrix (16-bit or int8 storage): `fill(begin, count, dst)` writes rows
// [begin, begin+count) of W as f32 into dst, 8 to 16 MiB at a time.
using WeightRowsFn = std::function<void(int64_t begin, int64_t count, float* dst)>;
void matmul_nt_rows(const float* x, int64_t rows, int64_t in, const WeightRowsFn& fill, int64_t out, float* y,
                    const float* bias = nullptr);

// y[rows, out] = x·wᵀ (+ bias) with x and w in bfloat16 (raw bits) and the
// products accumulated and written in f32: oneDNN's bf16 matmul where the CPU
// has AVX512-BF16 (or AMX), else x and w converted to f32 for matmul_nt —
// the same exact bf16×bf16 products summed in f32, so the two differ only
// in summation order.
// `ldy` (≥ out; 0: out) is y's row stride, as in matmul_nt_strided.
void matmul_nt_bf16(const uint16_t* x, int64_t rows, int64_t in, const uint16_t* w, int64_t out, float* y,
                    const float* bias = nullptr, int64_t ldy = 0);
// Whether matmul_nt_bf16 runs on a native bf16 kernel here.
bool has_native_bf16_gemm();

// y[m, n] = a[m, k] · b[k, n] (all row-major).
void matmul_nn(const float* a, int64_t m, int64_t k, const float* b, int64_t n, float* y);

}  // namespace lwq
