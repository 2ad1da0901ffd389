#include "ops/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "util/error.h"

namespace lwq {
namespace {

// cblas takes int dimensions (LP64 build): refuse what would overflow.
blasint checked_dim(int64_t v, const char* what) {
  if (v < 0 || v > std::numeric_limits<blasint>::max()) fail("matmul: dimension {} = {} out of range", what, v);
  return static_cast<blasint>(v);
}

}  // namespace

void matmul_nt(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y, const float* bias) {
  matmul_nt_strided(x, rows, in, w, out, y, out, bias);
}

void matmul_nt_strided(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, float* y, int64_t ldy,
                       const float* bias) {
  const blasint m = checked_dim(rows, "rows"), k = checked_dim(in, "in"), n = checked_dim(out, "out");
  const blasint ldc = checked_dim(ldy, "ldy");
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
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, beta, y, ldc);
}

void matmul_nt_rows(const float* x, int64_t rows, int64_t in, const WeightRowsFn& fill, int64_t out, float* y,
                    const float* bias) {
  // ~2M floats per block, a multiple of 16 rows: large enough for an efficient sgemm.
  const int64_t block = std::max<int64_t>(64, ((int64_t{1} << 21) / std::max<int64_t>(in, 1)) / 16 * 16);
  std::vector<float> w(static_cast<size_t>(std::min(block, out) * in));
  for (int64_t begin = 0; begin < out; begin += block) {
    const int64_t n = std::min(block, out - begin);
    fill(begin, n, w.data());
    matmul_nt_strided(x, rows, in, w.data(), n, y + begin, out, bias ? bias + begin : nullptr);
  }
}

void matmul_nn(const float* a, int64_t m_, int64_t k_, const float* b, int64_t n_, float* y) {
  const blasint m = checked_dim(m_, "m"), k = checked_dim(k_, "k"), n = checked_dim(n_, "n");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(y, y + m_ * n_, 0.0f);
    return;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, y, n);
}

}  // namespace lwq
