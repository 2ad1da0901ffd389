// The machine's achievable f32 FMA throughput, measured rather than assumed:
// a register-only loop of independent vector FMAs on the best SIMD target the
// CPU offers (Highway runtime dispatch). The GEMM benchmark is judged against it.
#pragma once

#include <cstdint>

namespace lwq {

// Runs `iterations` rounds of 12 independent vector FMAs on one thread and
// returns the FLOP performed (2 per lane per FMA). The result also depends on
// a returned checksum so the loop cannot be optimized away.
double fma_peak_flop(int64_t iterations, float* checksum);
// Lanes of f32 in one vector of the dispatched target (16 for AVX-512).
int64_t fma_peak_lanes();

}  // namespace lwq
