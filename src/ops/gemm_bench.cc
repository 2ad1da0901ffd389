// f32 GEMM throughput of matmul_nt (oneDNN): square sizes and the Linear
// shapes of a Qwen2.5-0.5B layer on 2048 tokens (hidden 896, intermediate
// 4864, 14 heads / 2 KV heads of 64). Counter FLOP (shown as e.g. 190G/s) = 2·m·n·k per second
// (for the int8 GEMMs: integer multiply-adds ×2, "OP"). On a shared machine
// wall-clock rates swing with the other load, so each benchmark also reports
// FLOP_per_cpu_s (OP_per_cpu_s): work per second of CPU time the process got,
// all threads together. Against BM_FmaPeak's it says how close the kernels
// come to the FMA units while they run; it does not see time a thread slept
// waiting for another (OpenMP waits are passive here, as in lwquant).
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <time.h>

#include <cstdint>
#include <vector>

#include "ops/amx_gemm.h"
#include "ops/fma_peak.h"
#include "ops/gemm.h"
#include "ops/gemm_s8.h"
#include "ops/threads.h"

namespace {

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Times the benchmark loop in process CPU time (see the top of the file).
class CpuRate {
 public:
  CpuRate() : start_(process_cpu_seconds()) {}
  // Sets counter `name` to work·iterations per CPU second.
  void report(benchmark::State& state, const char* name, double work_per_iteration) const {
    const double cpu = process_cpu_seconds() - start_;
    if (cpu > 0) state.counters[name] = work_per_iteration * static_cast<double>(state.iterations()) / cpu;
  }

 private:
  double start_;
};

void run_gemm(benchmark::State& state, int64_t rows, int64_t in, int64_t out) {
  lwq::set_compute_threads(0);
  std::vector<float> x(static_cast<size_t>(rows * in), 0.5f), w(static_cast<size_t>(out * in), 0.25f);
  std::vector<float> y(static_cast<size_t>(rows * out));
  const CpuRate rate;
  for (auto _ : state) {
    lwq::matmul_nt(x.data(), rows, in, w.data(), out, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(in) * static_cast<double>(out);
  state.counters["FLOP"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  rate.report(state, "FLOP_per_cpu_s", flops);
}

void BM_GemmSquare(benchmark::State& state) { run_gemm(state, state.range(0), state.range(0), state.range(0)); }
BENCHMARK(BM_GemmSquare)->Arg(512)->Arg(1024)->Arg(2048)->Arg(4096)->Unit(benchmark::kMillisecond)->UseRealTime();

// rows = tokens, then in, out.
void BM_GemmQwen05B(benchmark::State& state) { run_gemm(state, state.range(0), state.range(1), state.range(2)); }
BENCHMARK(BM_GemmQwen05B)
    ->ArgNames({"tokens", "in", "out"})
    ->Args({2048, 896, 896})    // q_proj, o_proj
    ->Args({2048, 896, 128})    // k_proj, v_proj
    ->Args({2048, 896, 4864})   // gate_proj, up_proj
    ->Args({2048, 4864, 896})   // down_proj
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same square products on OpenBLAS (cblas_sgemm, what matmul_nt ran on
// before): its kernel is chosen from a table of CPU models.
void BM_GemmSquareOpenBlas(benchmark::State& state) {
  lwq::set_compute_threads(0);
  const int n = static_cast<int>(state.range(0));
  std::vector<float> x(static_cast<size_t>(n) * n, 0.5f), w(static_cast<size_t>(n) * n, 0.25f), y(x.size());
  const CpuRate rate;
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, x.data(), n, w.data(), n, 0.0f, y.data(), n);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["FLOP"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
  rate.report(state, "FLOP_per_cpu_s", 2.0 * n * n * n);
}
BENCHMARK(BM_GemmSquareOpenBlas)->Arg(512)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// bf16 × bf16 → f32 (matmul_nt_bf16: oneDNN's AVX512-BF16 kernel where the
// CPU has one), on SmolLM2-135M's Linear shapes over 2048 tokens (hidden 576,
// intermediate 1536) and a square; the f32 counterpart is BM_GemmF32Smol.
void run_gemm_bf16(benchmark::State& state, int64_t rows, int64_t in, int64_t out) {
  lwq::set_compute_threads(0);
  std::vector<uint16_t> x(static_cast<size_t>(rows * in), 0x3f00), w(static_cast<size_t>(out * in), 0x3e80);
  std::vector<float> y(static_cast<size_t>(rows * out));
  const CpuRate rate;
  for (auto _ : state) {
    lwq::matmul_nt_bf16(x.data(), rows, in, w.data(), out, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(in) * static_cast<double>(out);
  state.counters["FLOP"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  rate.report(state, "FLOP_per_cpu_s", flops);
  const bool amx = lwq::amx_bf16_usable() && rows >= 16 && in % 32 == 0 && out % 16 == 0;
  state.SetLabel(amx ? "amx-tiles" : lwq::has_native_bf16_gemm() ? "onednn-bf16" : "f32-conversion");
}
void BM_GemmBf16Smol(benchmark::State& state) { run_gemm_bf16(state, state.range(0), state.range(1), state.range(2)); }
void BM_GemmF32Smol(benchmark::State& state) { run_gemm(state, state.range(0), state.range(1), state.range(2)); }
BENCHMARK(BM_GemmBf16Smol)
    ->Args({2048, 576, 576})->Args({2048, 576, 1536})->Args({2048, 1536, 576})->Args({2048, 2048, 2048})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
// The 1 GB bench model's shapes: a calibration batch (989 rows) through q_proj
// and one 8 MiB block of gate_proj, and the report's 310 gathered rows.
void BM_GemmBf16Calib(benchmark::State& state) { run_gemm_bf16(state, state.range(0), state.range(1), state.range(2)); }
BENCHMARK(BM_GemmBf16Calib)
    ->Args({989, 2048, 2048})->Args({310, 2048, 2048})
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_GemmF32Smol)
    ->Args({2048, 576, 576})->Args({2048, 576, 1536})->Args({2048, 1536, 576})->Args({2048, 2048, 2048})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

// Exact int8 GEMM (matmul_nt_s8), by kernel: 0 auto, 1 oneDNN VNNI, 2 portable, 3 oneDNN AMX, 4 lwquant's AMX tiles.
void BM_GemmS8Square(benchmark::State& state) {
  lwq::set_compute_threads(0);
  const int64_t n = state.range(0);
  const auto kernel = static_cast<lwq::S8Kernel>(state.range(1));
  if (kernel == lwq::S8Kernel::kOneDnnVnni && lwq::s8_auto_kernel() == lwq::S8Kernel::kPortable) {
    state.SkipWithError("no AVX512-VNNI here");
    return;
  }
  const bool amx_here = lwq::s8_auto_kernel() == lwq::S8Kernel::kAmx || lwq::s8_auto_kernel() == lwq::S8Kernel::kOneDnnAmx;
  if ((kernel == lwq::S8Kernel::kOneDnnAmx && !amx_here) ||
      (kernel == lwq::S8Kernel::kAmx && lwq::s8_auto_kernel() != kernel)) {
    state.SkipWithError("no AMX-INT8 here");
    return;
  }
  std::vector<int8_t> x(static_cast<size_t>(n * n)), w(x.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int8_t>(i * 7), w[i] = static_cast<int8_t>(i * 13);
  std::vector<int32_t> y(x.size());
  const CpuRate rate;
  for (auto _ : state) {
    lwq::matmul_nt_s8(kernel, x.data(), n, n, w.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetLabel(lwq::s8_kernel_name(kernel));
  state.counters["OP"] = benchmark::Counter(2.0 * n * n * n, benchmark::Counter::kIsIterationInvariantRate);
  rate.report(state, "OP_per_cpu_s", 2.0 * static_cast<double>(n * n * n));
}
BENCHMARK(BM_GemmS8Square)
    ->ArgNames({"n", "kernel"})
    ->Args({512, 0})
    ->Args({2048, 0})
    ->Args({2048, 1})
    ->Args({2048, 2})
    ->Args({2048, 3})
    ->Args({2048, 4})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The reference the GEMM figures are judged against: independent vector FMAs
// on every core at once (OpenMP), i.e. the measured f32 FMA peak.
void BM_FmaPeak(benchmark::State& state) {
  const int64_t iters = 20'000'000;
  double flop = 0;
  const CpuRate rate;
  for (auto _ : state) {
    double total = 0;
    float sink = 0;
#pragma omp parallel reduction(+ : total, sink)
    {
      float c = 0;
      total += lwq::fma_peak_flop(iters, &c);
      sink += c;
    }
    benchmark::DoNotOptimize(sink);
    flop = total;
  }
  state.counters["FLOP"] = benchmark::Counter(flop, benchmark::Counter::kIsIterationInvariantRate);
  rate.report(state, "FLOP_per_cpu_s", flop);
  state.counters["lanes"] = static_cast<double>(lwq::fma_peak_lanes());
}
BENCHMARK(BM_FmaPeak)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  lwq::use_passive_openmp_waits(argv);  // the thread setting lwquant runs with (ops/threads.h)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
