// Cost of the outlier-suppression transforms on one layer of a
// Llama-2-7B-shaped model (hidden 4096, intermediate 11008, 32 heads / 32 KV
// heads of 128; 202 M f32 weights, 0.8 GB), random weights in memory:
// quarot with a full-hidden Hadamard and with block_size 32, and iter_smooth's
// apply() (statistics from 512 random rows). Counter: seconds per layer.
#include <benchmark/benchmark.h>

#include <random>

#include "models/architecture.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"
#include "models/quarot.h"
#include "ops/threads.h"
#include "processors/smoothing.h"

namespace {

lwq::ModelConfig llama7b_config() {
  return lwq::parse_model_config(R"({"model_type": "llama", "vocab_size": 32000, "hidden_size": 4096,
      "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
      "rms_norm_eps": 1e-5, "max_position_embeddings": 4096, "torch_dtype": "float16"})",
                                 "llama-2-7b/config.json");
}

lwq::LayerWeights random_layer(const lwq::ModelConfig& cfg) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  lwq::LayerWeights w;
  w.layer = 0;
  for (const auto& t : lwq::layer_desc(cfg, 0).tensors) {
    std::vector<float> v(static_cast<size_t>(lwq::shape_numel(t.shape)));
    const bool norm = t.name.find("norm") != std::string::npos;
    for (auto& x : v) x = norm ? 1.0f + dist(rng) : dist(rng);
    w.tensors.emplace(t.name, std::move(v));
  }
  return w;
}

void BM_QuarotLayer(benchmark::State& state) {
  lwq::set_compute_threads(0);
  const lwq::ModelConfig cfg = llama7b_config();
  lwq::QuarotSettings s;
  s.block_size = state.range(0);
  const lwq::QuarotPlan plan = lwq::make_quarot_plan(cfg, s);
  lwq::LayerWeights w = random_layer(cfg);
  for (auto _ : state) lwq::quarot_rotate_layer(cfg, lwq::architecture_for(cfg), plan, w);
  state.counters["s/layer"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_QuarotLayer)->Arg(-1)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_IterSmoothApply(benchmark::State& state) {
  lwq::set_compute_threads(0);
  const lwq::ModelConfig cfg = llama7b_config();
  const lwq::Architecture& arch = lwq::architecture_for(cfg);
  lwq::LayerWeights w = random_layer(cfg);
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto _ : state) {
    state.PauseTiming();
    lwq::LayerSmoother sm(lwq::default_smooth_settings(lwq::SmoothKind::IterSmooth), cfg, arch, "model.layers.0");
    for (const auto& g : sm.subgraphs()) {
      const int64_t in = g.targets[0] == "mlp.down_proj" ? cfg.intermediate_size : cfg.hidden_size;
      std::vector<float> x(static_cast<size_t>(512 * in));
      for (auto& v : x) v = dist(rng);
      sm.observer().observe(g.targets[0], x.data(), 512, in);
    }
    state.ResumeTiming();
    sm.apply(w);
  }
}
BENCHMARK(BM_IterSmoothApply)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
