// GPTQ weight quantization (spec §2.7): a Hessian of each Linear's
// calibration inputs, then the column sweep with error feedback through the
// upper Cholesky factor of its inverse.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/weight_quant.h"

namespace lwq {

// H = (2/N)·Σ XᵀX over every calibration row seen (msModelSlim's running
// H·n/(n+m) + (2/(n+m))·XᵀX, summed instead of rescaled each call). The sum
// is accumulated with cblas_ssyrk (upper triangle) in float32, per call into
// a float64 total.
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t in = 0);
  void add(const float* x, int64_t rows);  // x [rows, in]
  int64_t rows() const { return rows_; }
  int64_t in() const { return in_; }
  // The full symmetric H [in, in] (row-major, float64). Throws before any row.
  std::vector<double> hessian() const;

 private:
  int64_t in_ = 0, rows_ = 0;
  std::vector<float> call_;   // X^T X of one call (upper)
  std::vector<double> sum_;   // Σ X^T X (upper)
};

struct GptqOptions {
  int bits = 8;
  bool symmetric = true;
  int64_t group_size = 0;  // 0: per channel (params from the whole original row)
  double percdamp = 0.01;
  int64_t block_size = 128;
};

struct GptqStats {
  int64_t dead_columns = 0;
  double damp = 0.0;       // the damping finally added to the diagonal
  int damp_retries = 0;    // times the damping was multiplied by 10 before H was positive definite
  double seconds_cholesky = 0.0, seconds_sweep = 0.0;
};

// Quantizes W[out, in] (row-major, consumed) with Hessian `h` [in, in]:
// dead columns (H_ii == 0) get H_ii = 1 and W[:, i] = 0; percdamp·mean(diag H)
// is added to the diagonal; Hinv = upper Cholesky factor of H⁻¹ (LAPACK
// dpotrf/dpotri). Not positive definite → retried with 10× the damping up to
// 4 times, then lwq::Error naming `name`. Per-group params are taken from the
// error-updated weights when the sweep reaches a group's first column.
QuantizedWeight gptq_quantize(std::vector<float> w, int64_t out, int64_t in, std::vector<double> h,
                              const GptqOptions& opt, const std::string& name, GptqStats* stats = nullptr);

// The upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU), row-major [n, n], zeros
// below the diagonal; false when H is not positive definite.
bool inverse_cholesky_upper(std::vector<double> h, int64_t n, std::vector<double>& u);

}  // namespace lwq
