#include "models/decoder_layer.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/experts.h"
#include "models/model_config.h"
#include "models/models_test_util.h"
#include "ops/gemm.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;

// Copies golden `name` into `dst`, rewriting model.safetensors through
// `edit` (name, tensor) → keep?; config.json text through `edit_config`.
void copy_golden(const std::string& name, const fs::path& dst,
                 const std::function<bool(const std::string&, Tensor&)>& edit,
                 const std::function<std::string(std::string)>& edit_config = nullptr) {
  const fs::path src = test::golden_dir(name);
  std::string config = read_text_file(src / "config.json");
  write_text_file_atomic(dst / "config.json", edit_config ? edit_config(config) : config);
  Checkpoint ckpt = Checkpoint::open(src);
  SafetensorsWriter w(dst / "model.safetensors");
  for (const auto& n : ckpt.tensor_names()) {
    Tensor t = ckpt.read(n);
    if (edit(n, t)) w.add(n, t);
  }
  w.finish();
}

using test::error_of;

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

// Norms become f32; 16-bit Linear weights stay in their stored dtype (half
// the memory of an f32 copy) and are converted when used.
TEST(LoadLayerWeights, KeepsBf16LinearWeightsAndConvertsTheRest) {
  ModelConfig cfg = load_model_config(test::golden_dir("qwen3"));  // bf16 on disk
  Checkpoint ckpt = Checkpoint::open(test::golden_dir("qwen3"));
  LayerWeights w = load_layer_weights(ckpt, cfg, 1);
  EXPECT_EQ(w.layer, 1);
  EXPECT_EQ(w.tensors.size() + w.stored.size(), layer_desc(cfg, 1).tensors.size());
  EXPECT_EQ(w.stored.size(), 7u);
  EXPECT_EQ(w.stored.at("self_attn.q_proj.weight").dtype, DType::BF16);
  EXPECT_EQ(w.get("input_layernorm.weight").size(), 64u);
  std::vector<float> scratch;
  const float* q = w.f32("self_attn.q_proj.weight", scratch);
  ASSERT_EQ(scratch.size(), 128u * 64u);
  Tensor raw = ckpt.read("model.layers.1.self_attn.q_proj.weight");
  EXPECT_EQ(q[5], bf16_to_f32(raw.data<uint16_t>()[5]));
  EXPECT_THROW(w.get("nope.weight"), Error);
  EXPECT_THROW(w.f32("nope.weight", scratch), Error);
  EXPECT_EQ(w.bytes(), 4u * (64 + 64 + 32 + 32) + 2u * (128 * 64 + 64 * 64 * 2 + 64 * 128 + 128 * 64 * 2 + 64 * 128));
}

// Smoothing's scalings of a stored bf16 weight are recorded, not applied:
// every f32 read (whole, by rows, moved to f32) gives what the same
// operations on an f32 copy give, bit for bit, and the raw bytes are refused.
TEST(LayerWeightsScalings, ReadsEqualTheTransformedF32Copy) {
  const int64_t rows = 6, cols = 5;
  std::vector<float> values(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<float>(i) * 0.7f) * 3.0f;
  const std::vector<float> col_s = {0.5f, 1.7f, 3.1f, 0.01f, 2.0f}, row_s = {1.3f, 0.2f, 7.0f, 1.0f, 0.9f, 4.4f},
                           col_s2 = {2.5f, 0.7f, 1.1f, 9.0f, 0.3f};
  LayerWeights w;
  w.stored.emplace("m.weight", tensor_from_f32(DType::BF16, {rows, cols}, values));
  LayerWeights eager;
  eager.tensors["m.weight"] = to_f32(w.stored.at("m.weight"));
  for (LayerWeights* x : {&w, &eager}) {
    x->scale_columns("m.weight", col_s);
    x->divide_rows("m.weight", row_s);
    x->scale_columns("m.weight", col_s2);
  }
  EXPECT_TRUE(w.scaled("m.weight"));
  EXPECT_FALSE(eager.scaled("m.weight"));
  EXPECT_EQ(w.stored.count("m.weight"), 1u);  // never held in f32
  const std::vector<float>& want = eager.get("m.weight");
  std::vector<float> scratch;
  const float* whole = w.f32("m.weight", scratch);
  EXPECT_EQ(std::vector<float>(whole, whole + want.size()), want);
  std::vector<float> part(static_cast<size_t>(2 * cols));
  w.rows_f32("m.weight", 3, 5, cols, part.data());
  EXPECT_EQ(part, std::vector<float>(want.begin() + 3 * cols, want.begin() + 5 * cols));
  EXPECT_THROW(w.raw("m.weight"), Error);
  EXPECT_EQ(w.mutable_f32("m.weight"), want);
  EXPECT_FALSE(w.scaled("m.weight"));
  EXPECT_EQ(w.stored.count("m.weight"), 0u);
}

// Pages of [p, p + n) mapped into this process right now (/proc/self/pagemap's
// "present" bit): what a mapping adds to RSS, unlike the page cache.
int64_t present_pages(const void* p, int64_t n) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = reinterpret_cast<uintptr_t>(p) / page, last = (reinterpret_cast<uintptr_t>(p) + n - 1) / page;
  const int fd = ::open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return -1;
  int64_t present = 0;
  for (uintptr_t v = first; v <= last; ++v) {
    uint64_t entry = 0;
    if (::pread(fd, &entry, sizeof(entry), static_cast<off_t>(v * sizeof(entry))) != sizeof(entry)) present = -1000000;
    present += static_cast<int64_t>((entry >> 63) & 1);
  }
  ::close(fd);
  return present;
}

// Calibrated runs hold Linear weights Streamed: mapped, read like `stored`
// (scalings included, bit for bit), and each read's pages leave the process.
TEST(LoadLayerWeights, StreamedWeightsReadAsStoredOnesAndLeaveResidentMemory) {
  ModelConfig cfg = load_model_config(test::golden_dir("qwen3"));  // bf16 on disk
  Checkpoint ckpt = Checkpoint::open(test::golden_dir("qwen3"));
  LayerWeights read = load_layer_weights(ckpt, cfg, 1);
  LayerWeights streamed = load_layer_weights(ckpt, cfg, 1, false, LinearWeightHold::Streamed);
  EXPECT_EQ(streamed.stored.size(), 0u);
  ASSERT_EQ(streamed.mapped.size(), 7u);
  const std::string name = "mlp.down_proj.weight";  // [64, 128]
  const LayerWeights::Mapped& m = streamed.mapped.at(name);
  EXPECT_TRUE(m.streamed);
  const std::vector<float> col_s = [] {
    std::vector<float> s(128);
    for (size_t i = 0; i < s.size(); ++i) s[i] = 0.25f + 0.01f * static_cast<float>(i);
    return s;
  }();
  for (LayerWeights* x : {&read, &streamed}) x->scale_columns(name, col_s);
  EXPECT_TRUE(streamed.scaled(name));
  std::vector<float> rows_want(2 * 128), rows_got(2 * 128);
  read.rows_f32(name, 10, 12, 128, rows_want.data());
  streamed.rows_f32(name, 10, 12, 128, rows_got.data());
  EXPECT_EQ(rows_got, rows_want);
  // (A block's read maps its neighbours too, the kernel's fault-around; a whole read drops them all.)
  std::vector<float> a, b;
  const float* want = read.f32(name, a);
  const float* got = streamed.f32(name, b);
  EXPECT_EQ(std::vector<float>(got, got + 64 * 128), std::vector<float>(want, want + 64 * 128));
  const int64_t down_bytes = 64 * 128 * 2;
  EXPECT_EQ(present_pages(m.bytes->data(), down_bytes), 0) << "a read's pages stay in the process";
  std::vector<float> x(3 * 128, 0.5f), y_want(3 * 64), y_got(3 * 64);
  linear_from_layer(read, name, x.data(), 3, 128, nullptr, 64, y_want.data());
  linear_from_layer(streamed, name, x.data(), 3, 128, nullptr, 64, y_got.data());
  EXPECT_EQ(y_got, y_want);
  EXPECT_EQ(present_pages(m.bytes->data(), down_bytes), 0) << "a product's pages stay in the process";
  // A raw (unscaled) read by a quantizer touches every page; release_pages drops them.
  const std::string q = "self_attn.q_proj.weight";
  const auto [dtype, data] = streamed.raw(q);
  volatile uint8_t sum = 0;
  for (int64_t i = 0; i < streamed.numel(q) * 2; i += 512) sum += static_cast<const uint8_t*>(data)[i];
  const int64_t q_bytes = streamed.numel(q) * 2;
  EXPECT_GT(present_pages(data, q_bytes), 0);
  streamed.release_pages(q);
  EXPECT_EQ(present_pages(data, q_bytes), 0);
  EXPECT_EQ(streamed.mutable_f32(name), read.mutable_f32(name));
  EXPECT_EQ(streamed.mapped.count(name), 0u);
}

TEST(LoadLayerWeights, MissingTensorIsNamed) {
  test::ScratchDir dir;
  copy_golden("llama", dir.path, [](const std::string& n, Tensor&) { return n != "model.layers.1.mlp.up_proj.weight"; });
  ModelConfig cfg = load_model_config(dir.path);
  Checkpoint ckpt = Checkpoint::open(dir.path);
  EXPECT_NO_THROW(load_layer_weights(ckpt, cfg, 0));
  std::string msg = error_of([&] { load_layer_weights(ckpt, cfg, 1); });
  EXPECT_NE(msg.find("'model.layers.1.mlp.up_proj.weight' is missing"), std::string::npos) << msg;
  msg = error_of([&] { CausalLM::load(dir.path); });
  EXPECT_NE(msg.find("model.layers.1.mlp.up_proj.weight"), std::string::npos) << msg;
}

TEST(LoadLayerWeights, ShapeDisagreeingWithConfig) {
  test::ScratchDir dir;
  copy_golden("llama", dir.path, [](const std::string&, Tensor&) { return true; },
              [](std::string c) { return replace(c, "\"intermediate_size\": 128", "\"intermediate_size\": 100"); });
  ModelConfig cfg = load_model_config(dir.path);
  std::string msg = error_of([&] { load_layer_weights(Checkpoint::open(dir.path), cfg, 0); });
  EXPECT_NE(msg.find("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [128, 64] but config.json "
                     "(intermediate_size=100, hidden_size=64) implies [100, 64]"),
            std::string::npos)
      << msg;
}

TEST(LoadLayerWeights, WrongTensorShapeInFile) {
  test::ScratchDir dir;
  copy_golden("qwen2", dir.path, [](const std::string& n, Tensor& t) {
    if (n == "model.layers.0.self_attn.k_proj.bias") t = tensor_f32({16}, std::vector<float>(16, 0.0f));
    return true;
  });
  std::string msg = error_of([&] { CausalLM::load(dir.path); });
  EXPECT_NE(msg.find("tensor 'model.layers.0.self_attn.k_proj.bias' has shape [16] but config.json "
                     "(num_key_value_heads=2 x head_dim=16) implies [32]"),
            std::string::npos)
      << msg;
}

TEST(LoadLayerWeights, IntegerDtypeRejected) {
  test::ScratchDir dir;
  copy_golden("llama", dir.path, [](const std::string& n, Tensor& t) {
    if (n == "model.layers.0.input_layernorm.weight") {
      Tensor i(DType::I32, t.shape);
      t = i;
    }
    return true;
  });
  std::string msg = error_of([&] { CausalLM::load(dir.path); });
  EXPECT_NE(msg.find("'model.layers.0.input_layernorm.weight' has dtype I32"), std::string::npos) << msg;
}

TEST(CausalLMInput, MissingEmbeddingAndBadTokens) {
  test::ScratchDir dir;
  copy_golden("llama", dir.path, [](const std::string& n, Tensor&) { return n != "model.embed_tokens.weight"; });
  EXPECT_NE(error_of([&] { CausalLM::load(dir.path); }).find("'model.embed_tokens.weight' is missing"),
            std::string::npos);
  CausalLM model = CausalLM::load(test::golden_dir("llama"));
  std::vector<int32_t> bad = {1, 256};
  EXPECT_NE(error_of([&] { model.logits(bad); }).find("token id 256"), std::string::npos);
  bad = {-1};
  EXPECT_THROW(model.logits(bad), Error);
  EXPECT_THROW(model.greedy({}, 3), Error);
}

// Records the calls and perturbs one output to prove the executor's result is used.
class RecordingExecutor : public LinearExecutor {
 public:
  struct Call {
    std::string name;
    int64_t rows, in, out;
    bool bias;
  };
  std::vector<Call> calls;
  std::string scale_output_of;

  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight, const float* bias,
           int64_t out, float* y) override {
    calls.push_back({name, rows, in, out, bias != nullptr});
    LinearExecutor::run(name, x, rows, in, weight, bias, out, y);
    if (name == scale_output_of)
      for (int64_t i = 0; i < rows * out; ++i) y[i] *= 2.0f;
  }
};

TEST(DecoderLayer, ExecutorSeesEveryLinearInOrder) {
  CausalLM model = CausalLM::load(test::golden_dir("qwen2"));
  const ModelConfig& cfg = model.config();
  std::vector<int32_t> ids = {1, 5, 9, 200, 3};
  std::vector<int32_t> pos = {0, 1, 2, 3, 4};
  std::vector<float> plain = model.embedding().lookup(ids);
  std::vector<float> h = plain;
  decoder_layer_forward(cfg, model.layer(0), 0, plain.data(), 5, pos.data());

  RecordingExecutor exec;
  decoder_layer_forward(cfg, model.layer(0), 0, h.data(), 5, pos.data(), &exec);
  EXPECT_EQ(h, plain);  // the default behaviour is the plain f32 Linear
  ASSERT_EQ(exec.calls.size(), 7u);
  LayerDesc d = layer_desc(cfg, 0);
  for (size_t i = 0; i < 7; ++i) {
    EXPECT_EQ(exec.calls[i].name, d.linears[i].name);
    EXPECT_EQ(exec.calls[i].rows, 5);
    EXPECT_EQ(exec.calls[i].in, d.linears[i].in_features);
    EXPECT_EQ(exec.calls[i].out, d.linears[i].out_features);
    EXPECT_EQ(exec.calls[i].bias, d.linears[i].has_bias);
  }

  RecordingExecutor scaled;
  scaled.scale_output_of = "mlp.down_proj";
  std::vector<float> h2 = model.embedding().lookup(ids);
  decoder_layer_forward(cfg, model.layer(0), 0, h2.data(), 5, pos.data(), &scaled);
  EXPECT_GT(test::max_rel_err(h2, plain), 1e-3);
}

TEST(DecoderLayer, PrefixOfASequenceGivesThePrefixOfItsOutput) {
  // Causality: later tokens never change earlier rows.
  CausalLM model = CausalLM::load(test::golden_dir("mistral"));
  std::vector<int32_t> ids(20);
  for (int i = 0; i < 20; ++i) ids[i] = (i * 37 + 1) % 256;
  std::vector<float> full = model.logits(ids);
  std::vector<float> part = model.logits(std::span<const int32_t>(ids.data(), 12));
  EXPECT_LT(test::max_rel_err(part, std::vector<float>(full.begin(), full.begin() + part.size())), 1e-5);
}

// Prefill + token-by-token decoding with the KV cache reproduces the rows of
// one full forward (sliding window and q/k norms included).
TEST(DecoderLayer, KVCacheMatchesFullForward) {
  for (const char* name : {"mistral", "qwen3", "llama_rope_llama3"}) {
    SCOPED_TRACE(name);
    CausalLM model = CausalLM::load(test::golden_dir(name));
    const ModelConfig& cfg = model.config();
    std::vector<int32_t> ids(14);
    for (int i = 0; i < 14; ++i) ids[i] = (i * 53 + 7) % 256;
    std::vector<float> full = model.hidden_states(ids);
    std::vector<LayerKVCache> cache(static_cast<size_t>(cfg.num_hidden_layers));
    std::vector<float> got;
    auto run = [&](int64_t begin, int64_t n) {
      std::vector<float> h = model.embedding().lookup(std::span<const int32_t>(ids.data() + begin, n));
      std::vector<int32_t> pos(n);
      for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(begin + i);
      for (int k = 0; k < cfg.num_hidden_layers; ++k)
        decoder_layer_forward_cached(cfg, model.layer(k), k, h.data(), n, pos.data(), cache[k]);
      got.insert(got.end(), h.begin(), h.end());
    };
    run(0, 9);
    for (int64_t t = 9; t < 12; ++t) run(t, 1);
    run(12, 2);
    EXPECT_EQ(cache[0].tokens, 14);
    EXPECT_LT(test::max_rel_err(got, full), 1e-5);
  }
}

// The cached greedy equals an argmax loop over full forwards.
TEST(DecoderLayer, GreedyEqualsFullForwardLoop) {
  CausalLM model = CausalLM::load(test::golden_dir("mistral"));
  std::vector<int32_t> ids = {1, 17, 99};
  std::vector<int32_t> expected = ids;
  for (int step = 0; step < 20; ++step) {
    std::vector<float> l = model.logits(expected);
    auto last = l.end() - model.config().vocab_size;
    expected.push_back(static_cast<int32_t>(std::max_element(last, l.end()) - last));
  }
  EXPECT_EQ(model.greedy(ids, 20), expected);
}

// Records the samples of every Linear call and runs it as the plain Linear.
class SampleRecorder : public LinearExecutor {
 public:
  std::vector<std::pair<std::string, std::vector<int64_t>>> calls;
  bool all_experts = false;
  bool expert_sees_all_tokens(int) override { return all_experts; }
  void run_samples(const std::string& name, const float* x, std::span<const int64_t> samples, int64_t in,
                   const float* weight, const float* bias, int64_t out, float* y) override {
    calls.emplace_back(name, std::vector<int64_t>(samples.begin(), samples.end()));
    LinearExecutor::run_samples(name, x, samples, in, weight, bias, out, y);
  }
  std::vector<std::vector<int64_t>> samples_of(const std::string& name) const {
    std::vector<std::vector<int64_t>> out;
    for (const auto& [n, s] : calls)
      if (n == name) out.push_back(s);
    return out;
  }
};

// The batched forward runs each Linear once over every sequence's rows (the
// executor told which rows are which sample), attention per sequence, and
// gives each sequence what the layer gives it alone — for dense layers (q/k
// norms, sliding window) and MoE layers (routed and all-expert calibration),
// with the batch bound large or forcing one sequence per batch.
TEST(DecoderLayer, BatchedForwardEqualsOneSequenceAtATime) {
  for (const char* name : {"qwen3", "mistral", "qwen3_moe"}) {
    SCOPED_TRACE(name);
    const fs::path dir = test::golden_dir(name);
    const ModelConfig cfg = load_model_config(dir);
    Checkpoint ckpt = Checkpoint::open(dir);
    const int layer = cfg.num_hidden_layers - 1;
    const LayerWeights w = load_layer_weights(ckpt, cfg, layer);
    const bool moe = layer_desc(cfg, layer).num_experts > 0;
    EXPECT_EQ(moe, std::string(name) == "qwen3_moe");
    const std::vector<int64_t> lengths = {6, 1, 4};
    std::vector<std::vector<float>> inputs;
    std::vector<std::vector<int32_t>> positions;
    for (size_t s = 0; s < lengths.size(); ++s) {
      inputs.emplace_back(static_cast<size_t>(lengths[s] * cfg.hidden_size));
      for (size_t i = 0; i < inputs[s].size(); ++i)
        inputs[s][i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(s));
      positions.emplace_back(static_cast<size_t>(lengths[s]));
      for (int64_t i = 0; i < lengths[s]; ++i) positions[s][static_cast<size_t>(i)] = static_cast<int32_t>(i + 2 * s);
    }
    std::vector<std::vector<float>> alone = inputs;
    for (size_t s = 0; s < lengths.size(); ++s) {
      const SequenceRef one{alone[s].data(), lengths[s], positions[s].data()};
      decoder_layer_forward_batch(cfg, w, layer, {&one, 1});
    }
    const std::string first = layer_desc(cfg, layer).linears[0].name;  // q_proj
    for (const bool one_per_batch : {false, true})
      for (const bool all_experts : {false, true}) {
        if (all_experts && !moe) continue;
        SCOPED_TRACE(testing::Message() << "one per batch " << one_per_batch << ", all experts " << all_experts);
        std::vector<std::vector<float>> batched = inputs;
        std::vector<SequenceRef> refs;
        for (size_t s = 0; s < lengths.size(); ++s) refs.push_back({batched[s].data(), lengths[s], positions[s].data()});
        SampleRecorder rec;
        rec.all_experts = all_experts;
        const int64_t old = set_batch_activation_bytes(one_per_batch ? 1 : int64_t{64} << 20);
        decoder_layer_forward_batch(cfg, w, layer, refs, &rec);
        set_batch_activation_bytes(old);
        for (size_t s = 0; s < lengths.size(); ++s) EXPECT_LT(test::max_rel_err(batched[s], alone[s]), 1e-5) << s;
        const auto q = rec.samples_of(first);
        if (one_per_batch) EXPECT_EQ(q, (std::vector<std::vector<int64_t>>{{6}, {1}, {4}}));
        else EXPECT_EQ(q, (std::vector<std::vector<int64_t>>{{6, 1, 4}}));
        if (!moe) continue;
        const MoeTemplate& m = *architecture_for(cfg).moe;
        const auto gate0 = rec.samples_of(expert_linear_name(m, 0, m.gate));
        if (all_experts) {
          if (one_per_batch) EXPECT_EQ(gate0, (std::vector<std::vector<int64_t>>{{6}, {1}, {4}}));
          else EXPECT_EQ(gate0, (std::vector<std::vector<int64_t>>{{6, 1, 4}}));
        } else {
          int64_t routed = 0;
          for (const auto& call : gate0)
            for (int64_t n : call) {
              EXPECT_GT(n, 0);
              routed += n;
            }
          EXPECT_LE(routed, 11);
        }
      }
  }
}

TEST(DecoderLayer, RejectsNegativePositions) {
  CausalLM model = CausalLM::load(test::golden_dir("llama"));
  std::vector<float> h(2 * 64, 0.1f);
  std::vector<int32_t> pos = {0, -1};
  EXPECT_THROW(decoder_layer_forward(model.config(), model.layer(0), 0, h.data(), 2, pos.data()), Error);
  EXPECT_THROW(decoder_layer_forward(model.config(), model.layer(0), 7, h.data(), 2, pos.data()), Error);
}

}  // namespace
}  // namespace lwq

namespace lwq {
namespace {

// The quality report's float reference of a bf16 weight with smoothing's
// scalings: the split product must agree with the f32 product of the scaled,
// converted weight to ~1e-5 relative, and refuse what it cannot serve.
TEST(LinearFromBf16Split, MatchesTheF32ProductOfTheScaledWeight) {
  if (!has_native_bf16_gemm()) GTEST_SKIP() << "no native bf16 GEMM on this CPU: the split is never used";
  // Two blocks of weight rows each (4M / in, a multiple of 16); in = 320 and
  // out = 14 016 take the AMX tiles where the CPU has them, in = 300 oneDNN.
  for (auto [in, out] : {std::pair<int64_t, int64_t>{300, 14500}, {320, 14016}}) {
    SCOPED_TRACE(in);
    const int64_t rows = 37;
    std::vector<float> w(static_cast<size_t>(out * in)), x(static_cast<size_t>(rows * in));
    std::vector<float> bias(static_cast<size_t>(out));
    for (size_t i = 0; i < w.size(); ++i)
      w[i] = std::sin(0.37f * static_cast<float>(i)) * (1 + static_cast<float>(i % 7));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(0.11f * static_cast<float>(i)) * (i % 13 == 0 ? 40.0f : 1.0f);
    for (size_t o = 0; o < bias.size(); ++o) bias[o] = 0.01f * static_cast<float>(o);
    LayerWeights lw;
    lw.stored["proj.weight"] = tensor_from_f32(DType::BF16, {out, in}, w);
    std::vector<float> cols(static_cast<size_t>(in)), divs(static_cast<size_t>(out));
    for (size_t c = 0; c < cols.size(); ++c) cols[c] = 0.5f + 0.003f * static_cast<float>(c);
    for (size_t r = 0; r < divs.size(); ++r) divs[r] = 1.0f + 0.01f * static_cast<float>(r % 50);
    lw.scale_columns("proj.weight", cols);
    lw.divide_rows("proj.weight", divs);

    std::vector<float> want(static_cast<size_t>(rows * out)), got(want.size());
    linear_from_layer(lw, "proj.weight", x.data(), rows, in, bias.data(), out, want.data());
    ASSERT_TRUE(linear_from_bf16_split(lw, "proj.weight", x.data(), rows, in, bias.data(), out, got.data()));
    double err = 0, ref = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      err += (got[i] - want[i]) * double(got[i] - want[i]);
      ref += want[i] * double(want[i]);
  }
  EXPECT_LT(std::sqrt(err / ref), 1e-5);
  EXPECT_GT(std::sqrt(err / ref), 0.0);  // a different computation, not the f32 path by accident

  // Not held as bf16 [out, in]: f32 tensors, a wrong shape, an absent weight.
  LayerWeights f32w;
  f32w.tensors["proj.weight"] = w;
  EXPECT_FALSE(linear_from_bf16_split(f32w, "proj.weight", x.data(), rows, in, nullptr, out, got.data()));
  EXPECT_FALSE(linear_from_bf16_split(lw, "proj.weight", x.data(), rows, in, nullptr, out - 1, got.data()));
  EXPECT_FALSE(linear_from_bf16_split(lw, "other.weight", x.data(), rows, in, nullptr, out, got.data()));
  }
}

}  // namespace
}  // namespace lwq
