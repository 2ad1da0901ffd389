// The one oneDNN matmul primitive call behind the bf16 and the exact int8
// products (ops/gemm.cc, ops/gemm_s8.cc): y[m, n] = x[m, k] · w[n, k]ᵀ (+ bias).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <string_view>

namespace lwq {

struct OneDnnMatmulTypes {
  dnnl::memory::data_type src, weights, dst;
};

// x row-major [m, k]; w [n, k] read in place as [k, n] (strides 1, k); y rows
// `ldy` elements apart; bias [n] f32 or null. With `only_impl` non-empty the
// product runs only if oneDNN picks an implementation whose name starts with
// it (returns false, y untouched, otherwise). Threads: the caller's OpenMP
// team. Throws naming `what` if oneDNN fails.
bool onednn_matmul_nt(const OneDnnMatmulTypes& types, const void* x, int64_t m, int64_t k, const void* w, int64_t n,
                      void* y, int64_t ldy, const float* bias, std::string_view only_impl, const char* what);

}  // namespace lwq
