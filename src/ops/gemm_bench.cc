// f32 GEMM throughput of matmul_nt (OpenBLAS): square sizes and the Linear
// shapes of a Qwen2.5-0.5B layer on 2048 tokens (hidden 896, intermediate
// 4864, 14 heads / 2 KV heads of 64). Counter FLOP (shown as e.g. 190G/s) = 2·m·n·k per second.
#include <benchmark/benchmark.h>

#include <vector>

#include "ops/fma_peak.h"
#include "ops/gemm.h"
#include "ops/threads.h"

namespace {

void run_gemm(benchmark::State& state, int64_t rows, int64_t in, int64_t out) {
  lwq::set_compute_threads(0);
  std::vector<float> x(static_cast<size_t>(rows * in), 0.5f), w(static_cast<size_t>(out * in), 0.25f);
  std::vector<float> y(static_cast<size_t>(rows * out));
  for (auto _ : state) {
    lwq::matmul_nt(x.data(), rows, in, w.data(), out, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  const double flops = 2.0 * static_cast<double>(rows) * static_cast<double>(in) * static_cast<double>(out);
  state.counters["FLOP"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
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

// The reference the GEMM figures are judged against: independent vector FMAs
// on every core at once (OpenMP), i.e. the measured f32 FMA peak.
void BM_FmaPeak(benchmark::State& state) {
  const int64_t iters = 20'000'000;
  double flop = 0;
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
  state.counters["lanes"] = static_cast<double>(lwq::fma_peak_lanes());
}
BENCHMARK(BM_FmaPeak)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
