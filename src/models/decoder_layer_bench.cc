// One decoder layer forward of a Qwen2.5-0.5B-shaped layer (hidden 896,
// intermediate 4864, 14 heads / 2 KV heads of 64, q/k/v biases) on one
// 2048-token sequence, random weights in memory. Counter tokens = tokens/s.
#include <benchmark/benchmark.h>

#include <random>

#include "models/architecture.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"
#include "ops/threads.h"

namespace {

lwq::ModelConfig qwen05b_config() {
  return lwq::parse_model_config(R"({"model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
      "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
      "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768, "torch_dtype": "bfloat16",
      "tie_word_embeddings": true, "use_sliding_window": false, "max_window_layers": 21})",
                                 "qwen2.5-0.5b/config.json");
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

void BM_Qwen05BLayer(benchmark::State& state) {
  lwq::set_compute_threads(0);
  const lwq::ModelConfig cfg = qwen05b_config();
  const lwq::LayerWeights w = random_layer(cfg);
  const int64_t seq = state.range(0);
  std::vector<int32_t> pos(static_cast<size_t>(seq));
  for (int64_t i = 0; i < seq; ++i) pos[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> input(static_cast<size_t>(seq * cfg.hidden_size));
  for (auto& x : input) x = dist(rng);
  std::vector<float> h;
  for (auto _ : state) {
    h = input;
    lwq::decoder_layer_forward(cfg, w, 0, h.data(), seq, pos.data());
    benchmark::DoNotOptimize(h.data());
  }
  state.counters["tokens"] = benchmark::Counter(static_cast<double>(seq), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Qwen05BLayer)->ArgName("tokens")->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
