// One knob for the two thread pools the forward pass uses: OpenBLAS
// (pthreads, GEMMs) and OpenMP (attention heads, elementwise loops). They run
// one after the other, never nested, so both get the same count.
#pragma once

namespace lwq {

// Sets both pools to `n` threads (n <= 0: the number of CPUs).
void set_compute_threads(int n);
int compute_threads();

}  // namespace lwq
