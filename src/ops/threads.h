// One knob for the thread pool of the forward pass: OpenMP, which runs the
// GEMMs (oneDNN), attention heads and elementwise loops, one region after
// another, never nested. OpenBLAS keeps its own pthreads pool (only eval's
// deployed_linear still calls cblas directly); it gets the same count.
#pragma once

namespace lwq {

// Sets both pools to `n` threads (n <= 0: the number of CPUs).
void set_compute_threads(int n);
int compute_threads();

// libgomp keeps a finished region's threads spinning for the next one
// (300 000 rounds, milliseconds) by default. Regions here are short and come
// between serial work and I/O, and on small, shared machines the spinners
// take the cores from threads with work: on 2 loaded cores the bundled
// example ran 5-7× slower (wall) than with passive waits, 83 % of its CPU
// time spinning in libgomp (perf). libgomp reads OMP_WAIT_POLICY only while
// it loads, before main, so the setting cannot be changed from the running
// program: when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, this
// re-executes the program (/proc/self/exe, same argv) with
// OMP_WAIT_POLICY=PASSIVE. Call it first thing in main, before any thread
// exists; a user's own setting (e.g. OMP_WAIT_POLICY=ACTIVE) is kept. Returns
// normally when nothing is to be done or exec is impossible.
// The same exec sets OPENBLAS_THREAD_TIMEOUT=4 (unless the user set it or
// GOTO_THREAD_TIMEOUT): OpenBLAS's pthreads workers otherwise spin on
// sched_yield for 2^28 cycles after starting and after each job (GPTQ's
// BLAS calls), which took 9-14 % of a 2-core data-free run from the threads
// with work (perf); with 2^4 they sleep on their condition at once.
void use_passive_openmp_waits(char** argv);

}  // namespace lwq
