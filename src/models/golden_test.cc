// The f32 forward against Hugging Face transformers' outputs
// (tests/data/goldens, made by tools/make_goldens.py) and the stories260K
// greedy reference. Error measure: max |ours − HF| / max |HF| over the whole
// tensor, required < 1e-4.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "models/causal_lm.h"
#include "models/models_test_util.h"
#include "util/file_util.h"

namespace lwq {
namespace {

constexpr double kTol = 1e-4;

std::vector<int32_t> ids_of(const Tensor& t) {
  EXPECT_EQ(t.dtype, DType::I64);
  std::vector<int32_t> ids;
  for (int64_t v : t.span<int64_t>()) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, MatchesTransformers) {
  const auto dir = test::golden_dir(GetParam());
  CausalLM model = CausalLM::load(dir);
  Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
  std::vector<int32_t> ids = ids_of(ref.read("input_ids"));
  ASSERT_EQ(ids.size(), 24u);
  const int64_t T = static_cast<int64_t>(ids.size());

  std::vector<float> emb = model.embedding().lookup(ids);
  EXPECT_LT(test::max_rel_err(emb, to_f32(ref.read("embeddings"))), kTol);

  std::vector<float> h0 = model.hidden_states(ids, 1);
  const double e0 = test::max_rel_err(h0, to_f32(ref.read("hidden_layer0_out")));
  EXPECT_LT(e0, kTol);

  std::vector<float> logits = model.logits(ids);
  ASSERT_EQ(static_cast<int64_t>(logits.size()), T * model.config().vocab_size);
  const double el = test::max_rel_err(logits, to_f32(ref.read("logits")));
  EXPECT_LT(el, kTol);
  RecordProperty("layer0_rel_err", std::to_string(e0));
  RecordProperty("logits_rel_err", std::to_string(el));

  std::vector<int32_t> expected = ids_of(ref.read("greedy_ids"));
  ASSERT_EQ(expected.size(), 14u);
  std::vector<int32_t> prompt(expected.begin(), expected.begin() + 6);
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.begin() + 6), prompt);
  EXPECT_EQ(model.greedy(prompt, 8, std::nullopt), expected);
}

INSTANTIATE_TEST_SUITE_P(Cases, Golden,
                         ::testing::Values("llama", "llama_rope_linear", "llama_rope_dynamic", "llama_rope_llama3",
                                           "llama_rope_yarn", "qwen2", "qwen3", "mistral", "qwen3_moe", "qwen3_moe_fused",
                                           "mixtral"),
                         [](const auto& info) { return info.param; });

// A wrong rope or window must show: the tolerance is far below the effect.
TEST(Golden, DetectsAWrongRopeOrWindow) {
  for (const char* name : {"llama_rope_yarn", "llama_rope_dynamic", "mistral"}) {
    const auto dir = test::golden_dir(name);
    CausalLM model = CausalLM::load(dir);
    Checkpoint ref = Checkpoint::open(dir / "reference.safetensors");
    std::vector<int32_t> ids = ids_of(ref.read("input_ids"));
    ModelConfig cfg = model.config();
    ModelConfig plain = cfg;
    plain.rope.type = RopeType::Default;
    std::fill(plain.layer_sliding_window.begin(), plain.layer_sliding_window.end(), 0);
    std::vector<float> h = model.embedding().lookup(ids);
    std::vector<int32_t> pos(ids.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = static_cast<int32_t>(i);
    decoder_layer_forward(plain, model.layer(0), 0, h.data(), static_cast<int64_t>(ids.size()), pos.data());
    EXPECT_GT(test::max_rel_err(h, to_f32(ref.read("hidden_layer0_out"))), 100 * kTol) << name;
  }
}

TEST(Stories260K, Greedy200MatchesReference) {
  CausalLM model = CausalLM::load(test::stories_dir());
  auto ref = nlohmann::json::parse(read_text_file(test::stories_dir() / "reference/greedy_200_ids.json"));
  std::vector<int32_t> expected = ref.get<std::vector<int32_t>>();
  ASSERT_EQ(expected.size(), 201u);
  ASSERT_EQ(expected[0], 1);
  const int32_t bos = 1;
  std::vector<int32_t> got = model.greedy(std::span<const int32_t>(&bos, 1), 200, std::nullopt);
  EXPECT_EQ(got, expected);
}

TEST(Stories260K, GreedyStopsAtStopId) {
  CausalLM model = CausalLM::load(test::stories_dir());
  const int32_t bos = 1;
  std::vector<int32_t> full = model.greedy(std::span<const int32_t>(&bos, 1), 5, std::nullopt);
  ASSERT_EQ(full.size(), 6u);
  std::vector<int32_t> stopped = model.greedy(std::span<const int32_t>(&bos, 1), 5, full[2]);
  EXPECT_EQ(stopped, std::vector<int32_t>(full.begin(), full.begin() + 3));
  EXPECT_EQ(model.greedy(std::span<const int32_t>(&bos, 1), 0, std::nullopt), std::vector<int32_t>{1});
}

}  // namespace
}  // namespace lwq
