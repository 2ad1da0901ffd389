#include "models/model_config.h"

#include <gtest/gtest.h>

#include "models/models_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

ModelConfig parse(const std::string& json) { return parse_model_config(json, "dir/config.json"); }

std::string with(const std::string& extra, const std::string& type = "llama") {
  return R"({"model_type": ")" + type +
         R"(", "vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4)" +
         (extra.empty() ? "" : ", " + extra) + "}";
}

void expect_error(const std::string& json, const std::string& fragment) {
  try {
    parse(json);
    ADD_FAILURE() << "no error for " << json;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("config.json"), std::string::npos) << e.what();
  }
}

TEST(ModelConfig, DefaultsOfAMinimalLlamaConfig) {
  ModelConfig c = parse(with(""));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_EQ(c.rope.theta, 10000.0);
  EXPECT_EQ(c.dtype, DType::F32);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.max_position_embeddings, 2048);
  EXPECT_EQ(c.sliding_window(0), 0);
  EXPECT_EQ(c.sliding_window(1), 0);
  EXPECT_THROW(c.sliding_window(2), Error);
  EXPECT_FALSE(c.bos_token_id);
  EXPECT_TRUE(c.eos_token_ids.empty());
}

TEST(ModelConfig, ReadsStories260K) {
  ModelConfig c = load_model_config(test::stories_dir());
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 172);
  EXPECT_EQ(c.num_hidden_layers, 5);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.num_key_value_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id(), 2);
  EXPECT_EQ(c.max_position_embeddings, 512);
}

// Both spellings of every golden config give the same parameters.
TEST(ModelConfig, GoldenConfigsNewAndLegacySpellingAgree) {
  for (const char* name : {"llama", "llama_rope_linear", "llama_rope_dynamic", "llama_rope_llama3", "llama_rope_yarn",
                           "qwen2", "qwen3", "mistral"}) {
    SCOPED_TRACE(name);
    ModelConfig a = load_model_config(test::golden_dir(name));
    ModelConfig b = load_model_config(test::golden_dir(name) / "config_legacy.json");
    EXPECT_EQ(a.model_type, b.model_type);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.rope.type, b.rope.type);
    EXPECT_EQ(a.rope.theta, b.rope.theta);
    EXPECT_EQ(a.rope.factor, b.rope.factor);
    EXPECT_EQ(a.rope.original_max_position_embeddings, b.rope.original_max_position_embeddings);
    EXPECT_EQ(a.dtype, b.dtype);
    EXPECT_EQ(a.layer_sliding_window, b.layer_sliding_window);
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_EQ(a.attention_bias, b.attention_bias);
  }
}

TEST(ModelConfig, GoldenSpecifics) {
  ModelConfig l3 = load_model_config(test::golden_dir("llama_rope_llama3"));
  EXPECT_EQ(l3.rope.type, RopeType::Llama3);
  EXPECT_EQ(l3.rope.theta, 5e5);
  EXPECT_EQ(l3.rope.factor, 8);
  EXPECT_EQ(l3.rope.low_freq_factor, 1);
  EXPECT_EQ(l3.rope.high_freq_factor, 4);
  EXPECT_EQ(l3.rope.original_max_position_embeddings, 64);
  EXPECT_TRUE(l3.attention_bias);
  ModelConfig dyn = load_model_config(test::golden_dir("llama_rope_dynamic"));
  EXPECT_EQ(dyn.rope.type, RopeType::Dynamic);
  EXPECT_EQ(dyn.rope.max_position_embeddings, 16);
  EXPECT_DOUBLE_EQ(dyn.rms_norm_eps, 1e-5);
  ModelConfig yarn = load_model_config(test::golden_dir("llama_rope_yarn"));
  EXPECT_EQ(yarn.rope.type, RopeType::Yarn);
  EXPECT_EQ(yarn.rope.factor, 4);
  EXPECT_EQ(yarn.rope.original_max_position_embeddings, 32);
  EXPECT_FALSE(yarn.rope.attention_factor);
  ModelConfig q3 = load_model_config(test::golden_dir("qwen3"));
  EXPECT_EQ(q3.dtype, DType::BF16);
  EXPECT_EQ(q3.head_dim, 32);
  EXPECT_EQ(q3.q_dim(), 128);
  EXPECT_EQ(q3.rope.theta, 1e6);
  ModelConfig m = load_model_config(test::golden_dir("mistral"));
  EXPECT_EQ(m.layer_sliding_window, (std::vector<int64_t>{8, 8}));
  ModelConfig q2 = load_model_config(test::golden_dir("qwen2"));
  EXPECT_EQ(q2.layer_sliding_window, (std::vector<int64_t>{0, 0}));
}

TEST(ModelConfig, RopeScalingVariants) {
  ModelConfig c = parse(with(R"("rope_theta": 5e5, "rope_scaling": {"type": "linear", "factor": 2})"));
  EXPECT_EQ(c.rope.type, RopeType::Linear);
  EXPECT_EQ(c.rope.factor, 2);
  EXPECT_EQ(c.rope.theta, 5e5);
  c = parse(with(R"("rope_parameters": {"rope_type": "yarn", "rope_theta": 1e6, "factor": 4, "beta_fast": 16,
                    "beta_slow": 2, "attention_factor": 1.5, "mscale": 1, "mscale_all_dim": 0.5, "truncate": false,
                    "original_max_position_embeddings": 4096})"));
  EXPECT_EQ(c.rope.type, RopeType::Yarn);
  EXPECT_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.rope.beta_fast, 16);
  EXPECT_EQ(c.rope.beta_slow, 2);
  EXPECT_EQ(c.rope.attention_factor, 1.5);
  EXPECT_EQ(c.rope.mscale, 1.0);
  EXPECT_EQ(c.rope.mscale_all_dim, 0.5);
  EXPECT_FALSE(c.rope.truncate);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 4096);
  c = parse(with(R"("rope_scaling": {"rope_type": "dynamic", "factor": 2.0}, "max_position_embeddings": 100)"));
  EXPECT_EQ(c.rope.type, RopeType::Dynamic);
  EXPECT_EQ(c.rope.max_position_embeddings, 100);
  c = parse(with(R"("rope_scaling": {"rope_type": "default"}, "rope_theta": 123.0)"));
  EXPECT_EQ(c.rope.type, RopeType::Default);
  EXPECT_EQ(c.rope.theta, 123.0);
  c = parse(with(R"("rope_scaling": null)"));
  EXPECT_EQ(c.rope.type, RopeType::Default);
}

TEST(ModelConfig, RejectsUnsupportedOrIncompleteRope) {
  expect_error(with(R"("rope_scaling": {"rope_type": "longrope", "factor": 2})"), "longrope");
  expect_error(with(R"("rope_scaling": {"rope_type": "linear"})"), "'factor'");
  expect_error(with(R"("rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                        "original_max_position_embeddings": 8192})"),
               "'high_freq_factor'");
  expect_error(with(R"("rope_scaling": {"rope_type": "linear", "factor": -1})"), "factor");
  expect_error(with(R"("rope_scaling": "linear")"), "rope_scaling");
}

TEST(ModelConfig, MissingOrMistypedKeys) {
  expect_error(R"({"model_type": "llama", "vocab_size": 256, "hidden_size": 64, "num_hidden_layers": 2,
                   "num_attention_heads": 4})",
               "'intermediate_size'");
  expect_error(with(R"("num_key_value_heads": "two")"), "'num_key_value_heads'");
  expect_error(with(R"("num_key_value_heads": 3)"), "num_key_value_heads");
  expect_error(with(R"("rms_norm_eps": "small")"), "'rms_norm_eps'");
  expect_error(with(R"("tie_word_embeddings": 1)"), "'tie_word_embeddings'");
  expect_error(with(R"("torch_dtype": "int8")"), "int8");
  expect_error(with(R"("head_dim": 15)"), "head_dim");
  expect_error(R"({"vocab_size": 1})", "'model_type'");
  expect_error(R"({"model_type": "llama", "vocab_size": 256, "hidden_size": 64.5, "intermediate_size": 1,
                   "num_hidden_layers": 1, "num_attention_heads": 1})",
               "'hidden_size'");
  expect_error(R"([1, 2])", "object");
  expect_error(R"({"model_type": "llama", "model_type": "qwen2"})", "model_type");
}

TEST(ModelConfig, UnknownModelTypeListsSupported) {
  expect_error(with("", "gpt2"), "llama, mistral, qwen2, qwen3");
}

TEST(ModelConfig, MissingFile) {
  test::ScratchDir dir;
  EXPECT_THROW(load_model_config(dir.path), Error);
}

TEST(ModelConfig, SlidingWindowRules) {
  // mistral: every layer; absent key means the 4096 default; null means none.
  EXPECT_EQ(parse(with(R"("sliding_window": 16)", "mistral")).layer_sliding_window, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(parse(with("", "mistral")).layer_sliding_window, (std::vector<int64_t>{4096, 4096}));
  EXPECT_EQ(parse(with(R"("sliding_window": null)", "mistral")).layer_sliding_window, (std::vector<int64_t>{0, 0}));
  // qwen2/qwen3: only with use_sliding_window, from max_window_layers on.
  EXPECT_EQ(parse(with(R"("sliding_window": 16, "max_window_layers": 1)", "qwen2")).layer_sliding_window,
            (std::vector<int64_t>{0, 0}));
  EXPECT_EQ(parse(with(R"("sliding_window": 16, "use_sliding_window": true, "max_window_layers": 1)", "qwen2"))
                .layer_sliding_window,
            (std::vector<int64_t>{0, 16}));
  EXPECT_EQ(parse(with(R"("sliding_window": 16, "use_sliding_window": true, "max_window_layers": 0)", "qwen3"))
                .layer_sliding_window,
            (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(parse(with(R"("sliding_window": 16, "use_sliding_window": true,
                          "layer_types": ["sliding_attention", "full_attention"])",
                       "qwen3"))
                .layer_sliding_window,
            (std::vector<int64_t>{16, 0}));
  expect_error(with(R"("use_sliding_window": true, "layer_types": ["full_attention"])", "qwen2"), "layer_types");
  // llama never slides.
  EXPECT_EQ(parse(with(R"("sliding_window": 16, "use_sliding_window": true)")).layer_sliding_window,
            (std::vector<int64_t>{0, 0}));
}

TEST(ModelConfig, TokenIdsAndDtypes) {
  ModelConfig c = parse(with(R"("bos_token_id": 5, "eos_token_id": [7, 9], "dtype": "float16")"));
  EXPECT_EQ(c.bos_token_id, 5);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{7, 9}));
  EXPECT_EQ(c.eos_token_id(), 7);
  EXPECT_EQ(c.dtype, DType::F16);
  EXPECT_EQ(parse(with(R"("torch_dtype": "bfloat16")")).dtype, DType::BF16);
  expect_error(with(R"("eos_token_id": "x")"), "eos_token_id");
}

}  // namespace
}  // namespace lwq
