// Throughput of the streaming writer (sharded, fsync included) and of
// single-tensor reads, on the system temp folder.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>

#include "io/checkpoint.h"
#include "io/safetensors_writer.h"

namespace {

namespace fs = std::filesystem;

fs::path bench_dir() {
  return fs::temp_directory_path() / ("lwq_io_bench_" + std::to_string(::getpid()));
}

// 16 tensors of `state.range(0)` MiB each, 64 MiB shards.
void write_checkpoint(const fs::path& dir, int64_t mib) {
  lwq::Tensor t(lwq::DType::BF16, {mib * 1024, 512});
  for (size_t i = 0; i < t.bytes.size(); ++i) t.bytes[i] = static_cast<uint8_t>(i * 31);
  lwq::ShardedSafetensorsWriter w(dir, {.stem = "bench", .max_shard_bytes = 64ull << 20});
  for (int i = 0; i < 16; ++i) w.add("layers." + std::to_string(i) + ".weight", t);
  w.finish();
}

void BM_ShardedWrite(benchmark::State& state) {
  fs::path dir = bench_dir();
  for (auto _ : state) {
    fs::remove_all(dir);
    write_checkpoint(dir, state.range(0));
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(state.iterations() * 16 * state.range(0) * (1 << 20));
}
BENCHMARK(BM_ShardedWrite)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);

void BM_ReadTensor(benchmark::State& state) {
  fs::path dir = bench_dir();
  fs::remove_all(dir);
  write_checkpoint(dir, state.range(0));
  lwq::Checkpoint c = lwq::Checkpoint::open(dir);
  std::vector<std::string> names = c.tensor_names();
  size_t i = 0;
  for (auto _ : state) {
    lwq::Tensor t = c.read(names[i++ % names.size()]);
    benchmark::DoNotOptimize(t.bytes.data());
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(state.iterations() * state.range(0) * (1 << 20));
}
BENCHMARK(BM_ReadTensor)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
