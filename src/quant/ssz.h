// ssz: iterative least-squares scale search for symmetric per-channel int
// weights (msModelSlim's ssz weight quantizer, spec §2.7).
#pragma once

#include <cstdint>

#include "quant/weight_quant.h"

namespace lwq {

struct SszResult {
  QuantizedWeight weight;
  int64_t iterations = 0;  // iterations run before convergence (≤ steps)
  double mse_minmax = 0.0, mse_final = 0.0;  // mean squared weight error over the whole matrix
};

// Starting from the minmax scales s = amax/qmax, up to `steps` iterations of
//   1. qf = clamp(round(w/s)) per output row,
//   2. s = Σ w·qf / max(Σ qf², 1e-30)        (least squares),
//   3. mse = mean (w − s·clamp(round(w/s)))²  (requantized with the new s),
//   4. stop when every row has (best−mse)/max(best,1e-4) < 1e-10 or |best−mse| < 1e-10,
//   5. rows where mse < best take the new scale.
// Rows are independent (parallel); the stop rule is over all rows, as in
// msModelSlim. Sums are float64. Throws lwq::Error for bad shapes / values.
SszResult quantize_weight_ssz(const float* w, int64_t out, int64_t in, int bits, int64_t steps);

}  // namespace lwq
