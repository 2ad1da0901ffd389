// `lwquant eval` end to end on the bundled stories260K model: the quantized
// folders are written by the lwquant binary (eval links no runner code), the
// float perplexity is checked against CausalLM, the quality figures against
// tolerances, and edited folders must either score clearly worse (a tampered
// scale) or be refused with an error naming the tensor.
#include "eval/evaluator.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <fstream>
#include <map>
#include <stdexcept>

#include "data/tokenizer.h"
#include "eval/quantized_folder.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/causal_lm.h"
#include "models/perplexity.h"
#include "quant/w8a8_export.h"
#include "runner/runner_test_util.h"  // TempDir, read_json (header-only parts)
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

using namespace testing_util;

fs::path sample_text() { return repo() / "tests/data/text/tinystories_sample.txt"; }

// Calibration prompts for W8A8. The 6th prompt of the default set is ~3.6k
// tokens and costs more than the first five together (quadratic attention),
// so the test stops before it; Δppl is within the same tolerance either way.
constexpr int kCalibSamples = 5;

// Runs `lwquant quant` into `save`; throws with its stderr otherwise (so
// that no test goes on with a missing folder).
void quantize(const fs::path& model, const fs::path& save, const std::string& scheme_args) {
  fs::path err = save.string() + ".stderr";
  std::string cmd = fmt::format("'{}' quant --model_path '{}' --save_path '{}' {} --max_calib_samples {} >/dev/null 2>'{}'",
                                LWQ_BINARY, model.string(), save.string(), scheme_args, kCalibSamples, err.string());
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error(fmt::format("{} failed:\n{}", cmd, fs::exists(err) ? read_text_file(err) : ""));
}

// One folder per scheme and its clean evaluation, made on first use and shared by the tests.
class Shared {
 public:
  static Shared& get() {
    static Shared s;
    return s;
  }
  const fs::path& folder(const std::string& scheme) {
    auto it = folders_.find(scheme);
    if (it != folders_.end()) return it->second;
    fs::path dir = tmp_ / scheme;
    quantize(stories(), dir, "--quant_type " + scheme);
    return folders_[scheme] = dir;
  }
  // max_tokens 0: the whole text.
  const EvalResult& clean(const std::string& scheme, int64_t max_tokens = 0) {
    auto key = std::make_pair(scheme, max_tokens);
    auto it = results_.find(key);
    if (it != results_.end()) return it->second;
    return results_[key] = evaluate({stories(), folder(scheme), sample_text(), 512, max_tokens});
  }
  const TempDir& tmp() const { return tmp_; }

 private:
  TempDir tmp_;
  std::map<std::string, fs::path> folders_;
  std::map<std::pair<std::string, int64_t>, EvalResult> results_;
};

EvalResult eval_folder(const fs::path& quantized, const fs::path& model = stories(), int64_t max_tokens = 0) {
  return evaluate({model, quantized, sample_text(), 512, max_tokens});
}

// ---- folder editing ----

void copy_folder(const fs::path& from, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    if (e.is_regular_file()) fs::copy_file(e.path(), to / e.path().filename());
}

// Rewrites the bytes of one stored tensor in place (same dtype and size).
// (A sharded folder, or one rewritten by rewrite_folder into a single file.)
template <typename Edit>
void patch_tensor(const fs::path& dir, const std::string& name, Edit edit) {
  const fs::path index = dir / "quant_model_weights.safetensors.index.json";
  Checkpoint ckpt = Checkpoint::open(fs::exists(index) ? index : dir / "quant_model_weights.safetensors");
  Tensor t = ckpt.read(name);
  edit(t);
  std::fstream f(ckpt.file_of(name), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(ckpt.info(name).offset));
  f.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
  ASSERT_TRUE(f.good()) << "could not patch " << name;
}

using TensorList = std::vector<std::pair<std::string, Tensor>>;

// A copy of `from` with its tensors rewritten into one quant_model_weights.safetensors
// (no index) after `edit` changed the tensor list and the description.
template <typename Edit>
fs::path rewrite_folder(const fs::path& from, const fs::path& to, Edit edit) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from)) {
    std::string n = e.path().filename().string();
    if (e.is_regular_file() && !n.starts_with("quant_model_weights")) fs::copy_file(e.path(), to / n);
  }
  Checkpoint ckpt = Checkpoint::open(from / "quant_model_weights.safetensors.index.json");
  TensorList tensors;
  for (const auto& name : ckpt.tensor_names()) tensors.emplace_back(name, ckpt.read(name));
  auto desc = read_json(from / "quant_model_description.json");
  edit(tensors, desc);
  SafetensorsWriter w(to / "quant_model_weights.safetensors");
  for (const auto& [name, t] : tensors) w.add(name, t);
  w.finish();
  write_text_file_atomic(to / "quant_model_description.json", desc.dump(2));
  return to;
}

// evaluate() must throw an lwq::Error whose message contains every string of `want`.
void expect_eval_error(const fs::path& quantized, const std::vector<std::string>& want,
                       const fs::path& model = stories()) {
  try {
    eval_folder(quantized, model);
    FAIL() << "no error for " << quantized;
  } catch (const Error& e) {
    for (const auto& s : want) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

// ---- clean folders ----

TEST(Evaluator, FloatPerplexityEqualsCausalLM) {
  const EvalResult& r = Shared::get().clean("w8a16");
  CausalLM lm = CausalLM::load(stories());
  std::vector<int32_t> tokens = Tokenizer::load(stories()).encode_with_special(read_text_file(sample_text()));
  PerplexityResult ref = perplexity(
      tokens, 512, [&](std::span<const int32_t> w) { return lm.logits(w); }, lm.config().vocab_size);
  EXPECT_EQ(r.tokens, ref.scored_tokens);
  EXPECT_GT(r.tokens, 1500);
  EXPECT_NEAR(r.ppl_float, ref.ppl(), 1e-9 * ref.ppl());
  EXPECT_EQ(r.model_quant_type, "W8A16");
}

struct SchemeCase {
  std::string scheme, model_quant_type;
  double max_relative_delta;
};

class SchemeQuality : public ::testing::TestWithParam<SchemeCase> {};

TEST_P(SchemeQuality, DeltaPplKlAndTop1WithinBounds) {
  const SchemeCase& c = GetParam();
  const EvalResult& r = Shared::get().clean(c.scheme);
  EXPECT_EQ(r.model_quant_type, c.model_quant_type);
  EXPECT_GT(r.ppl_float, 1.0);
  EXPECT_LT(std::fabs(r.delta_ppl()) / r.ppl_float, c.max_relative_delta)
      << "ppl float " << r.ppl_float << " quantized " << r.ppl_quantized;
  EXPECT_GT(r.kl, 0.0);  // int8 rounding changes every distribution a little
  EXPECT_LT(r.kl, 0.1);
  EXPECT_GE(r.top1_agreement, 0.0);
  EXPECT_LE(r.top1_agreement, 1.0);
  EXPECT_GT(r.top1_agreement, 0.8);
}

INSTANTIATE_TEST_SUITE_P(Stories260K, SchemeQuality,
                         ::testing::Values(SchemeCase{"w8a8", "W8A8", 0.05},
                                           SchemeCase{"w8a8_dynamic", "W8A8_DYNAMIC", 0.01},
                                           SchemeCase{"w8a16", "W8A16", 0.01}),
                         [](const auto& info) { return info.param.scheme; });

TEST(Evaluator, UnquantizedFolderScoresExactlyAsTheFloatModel) {
  // Every Linear excluded: the folder holds the float tensors only, so both
  // streams run the same arithmetic on the same weights.
  const fs::path dir = Shared::get().tmp() / "float_only";
  const fs::path yaml = Shared::get().tmp() / "float_only.yaml";
  write_text_file_atomic(yaml, R"(apiversion: modelslim_v1
spec:
  process:
    - type: "linear_quant"
      qconfig:
        weight: {scope: per_channel, dtype: int8, symmetric: True, method: minmax}
      include: ["*"]
      exclude: ["*"]
  save:
    - type: "ascendv1_saver"
)");
  quantize(stories(), dir, "--allow_float_copy --config_path '" + yaml.string() + "'");
  EvalResult r = eval_folder(dir);
  EXPECT_EQ(r.ppl_quantized, r.ppl_float);
  EXPECT_NEAR(r.kl, 0.0, 1e-12);
  EXPECT_EQ(r.top1_agreement, 1.0);
}

// ---- tampered scales ----

// The flipped / scaled entry sits in layer 0's down_proj, whose output feeds
// the residual stream directly. Clean and tampered folders are compared on
// the first 1,024 tokens (two windows), which keeps each test process short
// under ctest; there the flip gives about 11x the clean Δppl and 8x its KL.
const std::string kTamperedLinear = "model.layers.0.mlp.down_proj";
constexpr int64_t kTamperTokens = 1024;

void expect_clearly_worse(const EvalResult& tampered, const EvalResult& clean) {
  EXPECT_GT(tampered.delta_ppl(), 3 * std::fabs(clean.delta_ppl()))
      << "tampered " << tampered.delta_ppl() << " clean " << clean.delta_ppl();
  EXPECT_GT(tampered.delta_ppl(), 0.05);
  EXPECT_GT(tampered.kl, 3 * clean.kl);
}

// The channel of kTamperedLinear with the largest output scale deq·Σ|Wq| (a
// residual outlier channel of this model): tampering with a quiet channel can
// hide in the noise.
int64_t outlier_channel(const fs::path& dir) {
  Checkpoint ckpt = Checkpoint::open(dir / "quant_model_weights.safetensors.index.json");
  Tensor w = ckpt.read(kTamperedLinear + ".weight");
  Tensor deq_bits = ckpt.read(kTamperedLinear + ".deq_scale");
  std::vector<float> deq = deq_scale_from_int64_bits(deq_bits.span<int64_t>());
  const int64_t out = w.dim(0), in = w.dim(1);
  int64_t channel = 0;
  double best = -1;
  for (int64_t o = 0; o < out; ++o) {
    double sum = 0;
    for (int64_t i = 0; i < in; ++i) sum += std::abs(int{w.data<int8_t>()[o * in + i]});
    if (sum * deq[static_cast<size_t>(o)] > best) best = sum * deq[static_cast<size_t>(o)], channel = o;
  }
  return channel;
}

// A deq_scale that is still a valid scale (positive, finite, upper bits 0) but
// wrong: the folder is accepted and scores clearly worse. (A sign flip is
// refused: EvaluatorBadInput.ScalesNotPositiveFinite.)
TEST(Evaluator, DeqScaleTimesEightIsVisible) {
  Shared& s = Shared::get();
  const EvalResult clean = s.clean("w8a8", kTamperTokens);
  const fs::path dir = s.tmp() / "w8a8_deq_times_8";
  copy_folder(s.folder("w8a8"), dir);
  const int64_t channel = outlier_channel(dir);
  float before = 0;
  // int64 deq_scale holds the float32 bit pattern in its low 32 bits.
  patch_tensor(dir, kTamperedLinear + ".deq_scale", [&](Tensor& t) {
    ASSERT_EQ(t.dtype, DType::I64);
    int64_t& bits = t.data<int64_t>()[channel];
    before = f32_from_bits(static_cast<uint32_t>(bits));
    bits = static_cast<int64_t>(bits_from_f32(8.0f * before));
  });
  {
    Checkpoint patched = Checkpoint::open(dir / "quant_model_weights.safetensors.index.json");
    Tensor t = patched.read(kTamperedLinear + ".deq_scale");
    ASSERT_EQ(deq_scale_from_int64_bits(t.span<int64_t>())[static_cast<size_t>(channel)], 8.0f * before);
  }
  expect_clearly_worse(eval_folder(dir, stories(), kTamperTokens), clean);
}

TEST(Evaluator, InputScaleTimesTenIsVisible) {
  Shared& s = Shared::get();
  const EvalResult clean = s.clean("w8a8", kTamperTokens);
  const fs::path dir = s.tmp() / "w8a8_input_scale";
  copy_folder(s.folder("w8a8"), dir);
  patch_tensor(dir, kTamperedLinear + ".input_scale", [](Tensor& t) {
    ASSERT_EQ(t.dtype, DType::F32);
    float v;
    std::memcpy(&v, t.bytes.data(), sizeof v);
    v *= 10.0f;
    std::memcpy(t.bytes.data(), &v, sizeof v);
  });
  expect_clearly_worse(eval_folder(dir, stories(), kTamperTokens), clean);
}

// ---- folders that do not fit the float model ----

// `dir`'s config.json replaced by the one of `model` (to reach the tensor checks).
fs::path with_config_of(const fs::path& dir, const fs::path& model, const fs::path& to) {
  copy_folder(dir, to);
  fs::copy_file(model / "config.json", to / "config.json", fs::copy_options::overwrite_existing);
  return to;
}

TEST(EvaluatorBadInput, FolderOfAnotherModel) {
  Shared& s = Shared::get();
  const fs::path qwen2_model = repo() / "tests/data/models/stories260K-qwen2";
  // A 2-layer llama with a 256-token vocabulary (HF golden case): its config.json differs first ...
  const fs::path other = s.tmp() / "golden_llama_w8a16";
  quantize(repo() / "tests/data/goldens/llama", other, "--quant_type w8a16");
  expect_eval_error(other, {"config.json", "'intermediate_size' is 128", "has 172"});
  // ... and with the float model's config.json, its tensors.
  expect_eval_error(with_config_of(other, stories(), s.tmp() / "golden_llama_cfg"),
                    {"model.embed_tokens.weight", "[256, 64]", "[512, 64]"});
  // The qwen2 variant: same shapes, another model_type ...
  const fs::path qwen2 = s.tmp() / "qwen2_w8a16";
  quantize(qwen2_model, qwen2, "--quant_type w8a16");
  expect_eval_error(qwen2, {"config.json", "'model_type' is \"qwen2\"", "\"llama\""});
  // ... its q/k/v biases are foreign to the llama model ...
  expect_eval_error(with_config_of(qwen2, stories(), s.tmp() / "qwen2_cfg"),
                    {"model.layers.0.self_attn.q_proj.bias", "not a tensor of the float model"});
  // ... and missing when the qwen2 model is the float side.
  expect_eval_error(s.folder("w8a16"), {"'model_type' is \"llama\""}, qwen2_model);
  expect_eval_error(with_config_of(s.folder("w8a16"), qwen2_model, s.tmp() / "llama_cfg_qwen2"),
                    {"model.layers.0.self_attn.q_proj", "bias"}, qwen2_model);
}

TEST(EvaluatorBadInput, DroppedTensor) {
  Shared& s = Shared::get();
  const std::string name = "model.layers.0.self_attn.k_proj.weight_offset";
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "dropped", [&](TensorList& ts, nlohmann::ordered_json& desc) {
    std::erase_if(ts, [&](const auto& t) { return t.first == name; });
    desc.erase(name);
  });
  expect_eval_error(dir, {name});
  // Dropped from the safetensors only: the description still lists it.
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "dropped2", [&](TensorList& ts, nlohmann::ordered_json&) {
    std::erase_if(ts, [&](const auto& t) { return t.first == "model.norm.weight"; });
  });
  expect_eval_error(dir2, {"model.norm.weight", "not in the safetensors"});
}

TEST(EvaluatorBadInput, ExtraTensor) {
  Shared& s = Shared::get();
  const std::string name = "model.layers.2.mlp.extra_proj.weight";
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "extra", [&](TensorList& ts, nlohmann::ordered_json& desc) {
    ts.emplace_back(name, tensor_f32({2}, {1.0f, 2.0f}));
    desc[name] = "FLOAT";
  });
  expect_eval_error(dir, {name, "not a tensor of the float model"});
  // A W8A8 parameter beside a W8A16 Linear is foreign too.
  const std::string stray = "model.layers.1.mlp.up_proj.input_scale";
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "extra2", [&](TensorList& ts, nlohmann::ordered_json& desc) {
    ts.emplace_back(stray, tensor_f32({1}, {0.1f}));
    desc[stray] = "W8A16";
  });
  expect_eval_error(dir2, {stray});
  // Stored but not described.
  fs::path dir3 = rewrite_folder(s.folder("w8a16"), s.tmp() / "extra3", [&](TensorList& ts, nlohmann::ordered_json&) {
    ts.emplace_back(name, tensor_f32({2}, {1.0f, 2.0f}));
  });
  expect_eval_error(dir3, {name, "is not listed"});
}

TEST(EvaluatorBadInput, ChangedShape) {
  Shared& s = Shared::get();
  // The quantized weight of a Linear with one input column less.
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "shape", [&](TensorList& ts, nlohmann::ordered_json&) {
    for (auto& [n, t] : ts)
      if (n == name) {
        t.shape = {t.shape[0], t.shape[1] - 1};
        t.bytes.resize(static_cast<size_t>(t.shape[0] * t.shape[1]));
      }
  });
  expect_eval_error(dir, {name, "[64, 63]", "[64, 64]"});
  // A scale with one entry per row, but as [out] instead of [out, 1].
  const std::string scale = "model.layers.0.mlp.gate_proj.weight_scale";
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "shape2", [&](TensorList& ts, nlohmann::ordered_json&) {
    for (auto& [n, t] : ts)
      if (n == scale) t.shape = {t.shape[0]};
  });
  expect_eval_error(dir2, {scale, "[172]", "[172, 1]"});
  // A norm weight of the wrong length.
  const std::string norm = "model.layers.0.input_layernorm.weight";
  fs::path dir3 = rewrite_folder(s.folder("w8a16"), s.tmp() / "shape3", [&](TensorList& ts, nlohmann::ordered_json&) {
    for (auto& [n, t] : ts)
      if (n == norm) {
        t.shape = {32};
        t.bytes.resize(32 * sizeof(float));
      }
  });
  expect_eval_error(dir3, {norm, "[32]", "[64]"});
}

TEST(EvaluatorBadInput, ActivationParametersEnginesCannotHold) {
  Shared& s = Shared::get();
  const std::string offset = "model.layers.2.self_attn.v_proj.input_offset";
  const fs::path dir = s.tmp() / "half_offset";
  copy_folder(s.folder("w8a8"), dir);
  patch_tensor(dir, offset, [](Tensor& t) { t.data<float>()[0] += 0.5f; });
  expect_eval_error(dir, {offset, "integer in [-128, 127]"});
  const std::string scale = "model.layers.2.self_attn.v_proj.input_scale";
  const fs::path dir2 = s.tmp() / "negative_scale";
  copy_folder(s.folder("w8a8"), dir2);
  patch_tensor(dir2, scale, [](Tensor& t) { t.data<float>()[0] = -t.data<float>()[0]; });
  expect_eval_error(dir2, {scale, "positive finite"});
}

TEST(EvaluatorBadInput, UnknownTypeString) {
  Shared& s = Shared::get();
  const fs::path dir = s.tmp() / "unknown_type";
  copy_folder(s.folder("w8a16"), dir);
  auto desc = read_json(dir / "quant_model_description.json");
  desc["model.layers.3.mlp.up_proj.weight"] = "W4A4_FOO";
  write_text_file_atomic(dir / "quant_model_description.json", desc.dump(2));
  expect_eval_error(dir, {"model.layers.3.mlp.up_proj.weight", "W4A4_FOO"});
}

TEST(EvaluatorBadInput, TruncatedShard) {
  Shared& s = Shared::get();
  const fs::path dir = s.tmp() / "truncated";
  copy_folder(s.folder("w8a16"), dir);
  const fs::path shard = dir / "quant_model_weights-00001-of-00001.safetensors";
  ASSERT_TRUE(fs::exists(shard));
  fs::resize_file(shard, fs::file_size(shard) - 1000);
  expect_eval_error(dir, {"quant_model_weights-00001-of-00001.safetensors"});
}

TEST(EvaluatorBadInput, MissingDescriptionOrFolder) {
  Shared& s = Shared::get();
  const fs::path dir = s.tmp() / "no_description";
  copy_folder(s.folder("w8a16"), dir);
  fs::remove(dir / "quant_model_description.json");
  expect_eval_error(dir, {"quant_model_description.json", "missing"});
  expect_eval_error(s.tmp() / "does_not_exist", {"does_not_exist", "does not exist"});
}

// ---- hostile folders: what engines would misread is refused before any layer is computed ----
//
// Each case is refused by evaluate() and, where no float model is needed, by
// parse_quantized_folder() too (the fuzzing entry point), with one lwq::Error
// naming the file, key or tensor; any other exception type fails the test.

// A W8A8 Linear that is not in a fused group (its input_scale may change alone).
const std::string kW8A8 = "model.layers.1.self_attn.o_proj";

void expect_parse_error(const fs::path& dir, const std::vector<std::string>& want) {
  try {
    parse_quantized_folder(dir);
    FAIL() << "parse_quantized_folder accepted " << dir;
  } catch (const Error& e) {
    for (const auto& w : want) EXPECT_NE(std::string(e.what()).find(w), std::string::npos) << e.what();
  }
}

// Refused by both entry points.
void expect_folder_error(const fs::path& dir, const std::vector<std::string>& want) {
  expect_parse_error(dir, want);
  expect_eval_error(dir, want);
}

// A copy of `scheme`'s folder with one stored tensor's bytes edited.
template <typename Edit>
fs::path patched(const std::string& scheme, const std::string& name, const std::string& tensor, Edit edit) {
  const fs::path dir = Shared::get().tmp() / name;
  copy_folder(Shared::get().folder(scheme), dir);
  patch_tensor(dir, tensor, edit);
  return dir;
}

// A copy of `scheme`'s folder whose JSON file `file` is edited.
template <typename Edit>
fs::path edited_json(const std::string& scheme, const std::string& name, const std::string& file, Edit edit) {
  const fs::path dir = Shared::get().tmp() / name;
  copy_folder(Shared::get().folder(scheme), dir);
  auto j = read_json(dir / file);
  edit(j);
  write_text_file_atomic(dir / file, j.dump(2));
  return dir;
}

// A copy of `scheme`'s folder with `file` written as `text`.
fs::path with_file(const std::string& scheme, const std::string& name, const std::string& file, const std::string& text) {
  const fs::path dir = Shared::get().tmp() / name;
  copy_folder(Shared::get().folder(scheme), dir);
  write_text_file_atomic(dir / file, text);
  return dir;
}

void set_f32(Tensor& t, int64_t i, float v) {
  ASSERT_EQ(t.dtype, DType::F32);
  t.data<float>()[i] = v;
}

TEST(EvaluatorBadInput, CleanFoldersParse) {
  for (const char* scheme : {"w8a8", "w8a8_dynamic", "w8a16"}) {
    QuantizedFolder q = parse_quantized_folder(Shared::get().folder(scheme));
    EXPECT_FALSE(q.quantized_linears().empty()) << scheme;
    EXPECT_EQ(q.serving_dtype(), DType::F16) << scheme;  // float32 model: engines serve float16
  }
}

TEST(EvaluatorBadInput, ScalesNotPositiveFinite) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  int n = 0;
  for (float bad : {0.0f, -0.03f, nan, inf}) {
    SCOPED_TRACE(fmt::format("value {}", bad));
    // input_scale F32 [1].
    expect_folder_error(patched("w8a8", fmt::format("bad_scale_{}", n++), kW8A8 + ".input_scale",
                                [&](Tensor& t) { set_f32(t, 0, bad); }),
                        {kW8A8 + ".input_scale", "positive finite"});
    // deq_scale: int64 float32 bit patterns (upper half 0).
    expect_folder_error(patched("w8a8", fmt::format("bad_scale_{}", n++), kW8A8 + ".deq_scale",
                                [&](Tensor& t) {
                                  ASSERT_EQ(t.dtype, DType::I64);
                                  t.data<int64_t>()[5] = static_cast<int64_t>(bits_from_f32(bad));
                                }),
                        {kW8A8 + ".deq_scale", "entry 5", "positive finite"});
    // weight_scale F32 [out, 1] of the dynamic and weight-only types.
    for (const char* scheme : {"w8a8_dynamic", "w8a16"}) {
      const std::string ws = "model.layers.3.mlp.gate_proj.weight_scale";
      expect_folder_error(patched(scheme, fmt::format("bad_scale_{}", n++), ws, [&](Tensor& t) { set_f32(t, 7, bad); }),
                          {ws, "entry 7", "positive finite"});
    }
  }
}

TEST(EvaluatorBadInput, InputScaleTheServingDtypeCannotHold) {
  // Positive and finite in float32, but 0 in float16, the dtype engines serve a float32 model in.
  expect_folder_error(patched("w8a8", "tiny_input_scale", kW8A8 + ".input_scale", [](Tensor& t) { set_f32(t, 0, 1e-9f); }),
                      {kW8A8 + ".input_scale", "float16", "positive and finite"});
  // Representable in float16, but its reciprocal (the engines' quantization multiplier) overflows it.
  expect_folder_error(patched("w8a8", "small_input_scale", kW8A8 + ".input_scale", [](Tensor& t) { set_f32(t, 0, 1e-5f); }),
                      {kW8A8 + ".input_scale", "reciprocal"});
}

TEST(EvaluatorBadInput, DeqScaleUpperBitsSet) {
  // Garbage in the upper half of an otherwise valid pattern.
  expect_folder_error(patched("w8a8", "deq_upper", kW8A8 + ".deq_scale",
                              [](Tensor& t) { t.data<int64_t>()[3] |= int64_t{1} << 40; }),
                      {kW8A8 + ".deq_scale", "entry 3", "0x0000010", "upper 32 bits 0"});
  // A negative float's pattern sign-extended (the widening msModelSlim does): upper half all ones.
  expect_folder_error(patched("w8a8", "deq_sign_extended", kW8A8 + ".deq_scale",
                              [](Tensor& t) {
                                float v = f32_from_bits(static_cast<uint32_t>(t.data<int64_t>()[3]));
                                t.data<int64_t>()[3] = static_cast<int64_t>(static_cast<int32_t>(bits_from_f32(-v)));
                              }),
                      {kW8A8 + ".deq_scale", "entry 3", "0xffffffff"});
}

// W8A8 stores no weight_scale; vLLM-Ascend loads one when present (the
// W8A8_MIX layout), and then deq_scale must be input_scale·weight_scale up
// to the serving dtype's unit roundoff (2^-11 for float16).
TEST(EvaluatorBadInput, DeqScaleIsNotInputScaleTimesWeightScale) {
  Shared& s = Shared::get();
  auto with_weight_scale = [&](const std::string& name, int64_t channel, double factor) {
    return rewrite_folder(s.folder("w8a8"), s.tmp() / name, [&](TensorList& ts, nlohmann::ordered_json& desc) {
      std::vector<float> deq;
      float input_scale = 0;
      for (const auto& [n, t] : ts) {
        if (n == kW8A8 + ".deq_scale") deq = deq_scale_from_int64_bits(t.span<int64_t>());
        if (n == kW8A8 + ".input_scale") input_scale = t.data<float>()[0];
      }
      std::vector<float> ws(deq.size());
      for (size_t o = 0; o < ws.size(); ++o) ws[o] = deq[o] / input_scale;
      ws[static_cast<size_t>(channel)] = static_cast<float>(ws[static_cast<size_t>(channel)] * factor);
      const auto out = static_cast<int64_t>(ws.size());
      ts.emplace_back(kW8A8 + ".weight_scale", tensor_f32({out, 1}, ws));
      ts.emplace_back(kW8A8 + ".weight_offset", tensor_f32({out, 1}, std::vector<float>(ws.size(), 0.0f)));
      desc[kW8A8 + ".weight_scale"] = "W8A8";
      desc[kW8A8 + ".weight_offset"] = "W8A8";
    });
  };
  // Consistent, and off by less than 2^-11: accepted, by eval too.
  parse_quantized_folder(with_weight_scale("ws_exact", 9, 1.0));
  parse_quantized_folder(with_weight_scale("ws_within", 9, 1.0 + std::ldexp(1.0, -12)));
  EXPECT_GT(eval_folder(with_weight_scale("ws_eval", 9, 1.0), stories(), 64).tokens, 0);
  // Off by 2^-9 on one channel, and by 1 %.
  expect_folder_error(with_weight_scale("ws_off", 9, 1.0 + std::ldexp(1.0, -9)),
                      {kW8A8 + ".deq_scale", "entry 9", "input_scale·weight_scale", "float16"});
  expect_folder_error(with_weight_scale("ws_off2", 0, 1.01), {kW8A8 + ".deq_scale", "entry 0"});
  // A W8A8 weight_offset must be 0 (symmetric weights; the kernel ignores it).
  fs::path dir = with_weight_scale("wo_nonzero", 0, 1.0);
  patch_tensor(dir, kW8A8 + ".weight_offset", [](Tensor& t) { set_f32(t, 2, 1.0f); });
  expect_folder_error(dir, {kW8A8 + ".weight_offset", "entry 2", "must be 0"});
}

TEST(EvaluatorBadInput, QuantBiasDoesNotMatchDeqScale) {
  Shared& s = Shared::get();
  // No float bias (llama): quant_bias = round(−input_offset·ΣWq), independent of deq_scale.
  expect_folder_error(patched("w8a8", "quant_bias_plus_3", kW8A8 + ".quant_bias",
                              [](Tensor& t) { t.data<int32_t>()[11] += 3; }),
                      {kW8A8 + ".quant_bias", "entry 11", "do not belong together"});
  // With a float bias: the qwen2 variant (zero q/k/v biases) with q_proj's bias
  // of layer 0 made non-zero; deq_scale ×2 on the channel with the largest
  // |bias/deq_scale| breaks quant_bias = round(bias/deq_scale − ...).
  const std::string q = "model.layers.0.self_attn.q_proj";
  const fs::path qwen2_model = s.tmp() / "qwen2_biased";
  {
    const fs::path from = repo() / "tests/data/models/stories260K-qwen2";
    copy_folder(from, qwen2_model);
    Checkpoint ckpt = Checkpoint::open(from / "model.safetensors");
    fs::remove(qwen2_model / "model.safetensors");
    SafetensorsWriter w(qwen2_model / "model.safetensors");
    for (const auto& n : ckpt.tensor_names()) {
      Tensor t = ckpt.read(n);
      if (n == q + ".bias") {
        ASSERT_EQ(t.dtype, DType::F32);
        for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = 0.5f * std::sin(0.7f * static_cast<float>(i));
      }
      w.add(n, t);
    }
    w.finish();
  }
  const fs::path dir = s.tmp() / "qwen2_w8a8";
  quantize(qwen2_model, dir, "--quant_type w8a8");
  Checkpoint ckpt = Checkpoint::open(dir / "quant_model_weights.safetensors.index.json");
  std::vector<float> bias = to_f32(ckpt.read(q + ".bias"));
  std::vector<float> deq = deq_scale_from_int64_bits(ckpt.read(q + ".deq_scale").span<int64_t>());
  size_t channel = 0;
  for (size_t o = 0; o < bias.size(); ++o)
    if (std::fabs(bias[o] / deq[o]) > std::fabs(bias[channel] / deq[channel])) channel = o;
  ASSERT_GT(std::fabs(bias[channel] / deq[channel]), 10.0f);
  EXPECT_GT(eval_folder(dir, qwen2_model, 64).tokens, 0);  // clean: accepted
  patch_tensor(dir, q + ".deq_scale", [&](Tensor& t) {
    t.data<int64_t>()[channel] = static_cast<int64_t>(bits_from_f32(2.0f * deq[channel]));
  });
  expect_eval_error(dir, {q + ".quant_bias", fmt::format("entry {}", channel), "do not belong together"}, qwen2_model);
  expect_parse_error(dir, {q + ".quant_bias"});
}

TEST(EvaluatorBadInput, OffsetsOutOfRange) {
  int n = 0;
  for (float bad : {200.0f, -129.0f, 3.5f, std::numeric_limits<float>::quiet_NaN()}) {
    SCOPED_TRACE(fmt::format("input_offset {}", bad));
    expect_folder_error(patched("w8a8", fmt::format("bad_offset_{}", n++), kW8A8 + ".input_offset",
                                [&](Tensor& t) { set_f32(t, 0, bad); }),
                        {kW8A8 + ".input_offset", "integer in [-128, 127]"});
  }
  const std::string wo = "model.layers.2.mlp.up_proj.weight_offset";
  // W8A16 zero points live in the int8 grid.
  expect_folder_error(patched("w8a16", "w8a16_offset", wo, [](Tensor& t) { set_f32(t, 4, 300.0f); }),
                      {wo, "entry 4", "[-128, 127]"});
  // W8A8_DYNAMIC weights are symmetric: vLLM-Ascend ignores weight_offset, MindIE applies it.
  expect_folder_error(patched("w8a8_dynamic", "dynamic_offset", wo, [](Tensor& t) { set_f32(t, 4, 2.0f); }),
                      {wo, "entry 4", "must be 0"});
}

TEST(EvaluatorBadInput, DescriptionTypesDisagreeWithTensors) {
  Shared& s = Shared::get();
  // W8A8 without deq_scale (dropped from both the description and the shards).
  const std::string deq = kW8A8 + ".deq_scale";
  fs::path dir = rewrite_folder(s.folder("w8a8"), s.tmp() / "no_deq", [&](TensorList& ts, nlohmann::ordered_json& desc) {
    std::erase_if(ts, [&](const auto& t) { return t.first == deq; });
    desc.erase(deq);
  });
  expect_folder_error(dir, {"'" + kW8A8 + "' is described as W8A8", deq, "missing"});
  // A parameter tagged with another type than its Linear.
  expect_folder_error(edited_json("w8a8", "deq_tagged_float", "quant_model_description.json",
                                  [&](auto& d) { d[deq] = "FLOAT"; }),
                      {deq, "tagged FLOAT", "W8A8"});
  // A norm weight described as a quantized Linear.
  expect_folder_error(edited_json("w8a16", "norm_w8a16", "quant_model_description.json",
                                  [&](auto& d) { d["model.norm.weight"] = "W8A16"; }),
                      {"'model.norm' is described as W8A16", "weight_scale", "missing"});
  // model_quant_type that is not the highest-priority Linear type present.
  expect_folder_error(edited_json("w8a8", "mqt_w8a16", "quant_model_description.json",
                                  [&](auto& d) { d["model_quant_type"] = "W8A16"; }),
                      {"model_quant_type is \"W8A16\"", "\"W8A8\""});
  // deq_scale of the dtype another config dtype calls for: F32 is for bfloat16 models.
  const std::string dq = "model.layers.0.mlp.down_proj.deq_scale";
  fs::path dir2 = rewrite_folder(s.folder("w8a8"), s.tmp() / "deq_f32", [&](TensorList& ts, nlohmann::ordered_json&) {
    for (auto& [n, t] : ts)
      if (n == dq) t = tensor_f32({t.dim(0)}, deq_scale_from_int64_bits(t.span<int64_t>()));
  });
  expect_folder_error(dir2, {dq, "must be I64", "found F32", "torch_dtype \"float32\""});
  // A bfloat16 config over int64 deq_scale.
  expect_parse_error(edited_json("w8a8", "cfg_bf16", "config.json", [](auto& c) { c["torch_dtype"] = "bfloat16"; }),
                     {"deq_scale", "must be F32", "found I64", "bfloat16"});
}

TEST(EvaluatorBadInput, DescriptionJsonTypes) {
  const std::string desc = "quant_model_description.json";
  auto expect_desc_error = [&](const std::string& name, auto edit, const std::vector<std::string>& want) {
    std::vector<std::string> all = want;
    all.push_back(desc);
    expect_folder_error(edited_json("w8a8", name, desc, edit), all);
  };
  expect_desc_error("mqt_number", [](auto& d) { d["model_quant_type"] = 5; }, {"'model_quant_type' must be a string", "5"});
  expect_desc_error("mqt_missing", [](auto& d) { d.erase("model_quant_type"); }, {"'model_quant_type' is missing"});
  expect_desc_error("value_number", [](auto& d) { d["model.norm.weight"] = 1; }, {"'model.norm.weight' must be a type string", "got 1"});
  expect_desc_error("value_object", [](auto& d) { d["model.norm.weight"] = nlohmann::ordered_json::object({{"type", "FLOAT"}}); },
                    {"'model.norm.weight' must be a type string", "{\"type\":\"FLOAT\"}"});
  expect_desc_error("value_null", [](auto& d) { d["model.norm.weight"] = nullptr; }, {"'model.norm.weight' must be a type string", "null"});
  expect_desc_error("version_number", [](auto& d) { d["version"] = 1.0; }, {"'version' must be a string"});
  expect_desc_error("group_size_string", [](auto& d) { d["group_size"] = "0"; }, {"'group_size' must be a non-negative integer"});
  expect_desc_error("group_size_negative", [](auto& d) { d["group_size"] = -1; }, {"'group_size' must be a non-negative integer"});
  expect_desc_error("metadata_string", [](auto& d) { d["metadata"] = "x"; }, {"'metadata' must be a JSON object"});
  expect_desc_error("kv_c8", [](auto& d) { d["kv_cache_type"] = "C8"; }, {"'kv_cache_type'", "KV-cache"});
  // Not an object, a duplicated key, not JSON.
  expect_folder_error(with_file("w8a8", "desc_array", desc, "[]"), {desc, "must be a JSON object"});
  expect_folder_error(with_file("w8a8", "desc_dup", desc,
                                R"({"model.norm.weight": "FLOAT", "model.norm.weight": "W8A8", "model_quant_type": "W8A8"})"),
                      {desc, "duplicate key 'model.norm.weight'"});
  expect_folder_error(with_file("w8a8", "desc_cut", desc, R"({"model.norm.weight": "FL)"), {desc, "invalid JSON"});
}

TEST(EvaluatorBadInput, QuantizedConfigJson) {
  Shared& s = Shared::get();
  const fs::path no_config = s.tmp() / "no_config";
  copy_folder(s.folder("w8a16"), no_config);
  fs::remove(no_config / "config.json");
  expect_folder_error(no_config, {"config.json is missing"});
  // Fields engines build the model from, against the float model's config.json.
  expect_eval_error(edited_json("w8a16", "cfg_hidden", "config.json", [](auto& c) { c["hidden_size"] = 128; }),
                    {"config.json: 'hidden_size' is 128", "has 64"});
  expect_eval_error(edited_json("w8a16", "cfg_layers", "config.json", [](auto& c) { c["num_hidden_layers"] = 4; }),
                    {"config.json: 'num_hidden_layers' is 4", "has 5"});
  expect_eval_error(edited_json("w8a16", "cfg_rope", "config.json", [](auto& c) { c["rope_theta"] = 500000.0; }),
                    {"'rope_theta' is 500000", "has 10000"});
  expect_eval_error(edited_json("w8a16", "cfg_no_heads", "config.json", [](auto& c) { c.erase("num_key_value_heads"); }),
                    {"'num_key_value_heads' is absent", "has 4"});
  // Same numbers, other spelling: accepted (eval on 64 tokens).
  EXPECT_GT(eval_folder(edited_json("w8a16", "cfg_hidden_float", "config.json", [](auto& c) { c["hidden_size"] = 64.0; }),
                        stories(), 64).tokens, 0);
  // Self-contained config.json rules.
  expect_folder_error(edited_json("w8a16", "cfg_qconfig", "config.json",
                                  [](auto& c) { c["quantization_config"] = {{"quant_method", "fp8"}}; }),
                      {"'quantization_config' must be absent"});
  expect_folder_error(edited_json("w8a16", "cfg_dtype_number", "config.json", [](auto& c) { c["torch_dtype"] = 16; }),
                      {"config.json: key 'torch_dtype' must be a string", "16"});
  expect_folder_error(with_file("w8a16", "cfg_cut", "config.json", "{\"hidden_size\": "), {"config.json", "invalid JSON"});
}

TEST(EvaluatorBadInput, StrayFiles) {
  Shared& s = Shared::get();
  const fs::path shard = s.folder("w8a16") / "quant_model_weights-00001-of-00001.safetensors";
  fs::path dir = s.tmp() / "stray_shard";
  copy_folder(s.folder("w8a16"), dir);
  fs::copy_file(shard, dir / "model.safetensors");
  expect_folder_error(dir, {"stray weights file model.safetensors"});
  expect_folder_error(with_file("w8a16", "stray_index", "model.safetensors.index.json", "{}"),
                      {"model.safetensors.index.json must be absent"});
  expect_folder_error(with_file("w8a16", "stray_desc", "quant_model_description_w8a16.json", "{}"),
                      {"quant_model_description_w8a16.json beside quant_model_description.json"});
  // A tensor in the shard that the index does not list (engines read shards, not the index).
  const std::string name = "model.norm.weight";
  expect_folder_error(edited_json("w8a16", "unlisted", "quant_model_weights.safetensors.index.json",
                                  [&](auto& j) { j["weight_map"].erase(name); }),
                      {name, "not listed in quant_model_weights.safetensors.index.json"});
}

TEST(EvaluatorBadInput, FusedGroupsDisagree) {
  // q/k/v share one input_scale under W8A8: vLLM-Ascend keeps only one.
  const std::string k = "model.layers.2.self_attn.k_proj";
  expect_eval_error(patched("w8a8", "fused_scale", k + ".input_scale", [](Tensor& t) { t.data<float>()[0] *= 2.0f; }),
                    {"model.layers.2.self_attn.q_proj", k, "fused"});
  // One type per fused group: k_proj retagged W8A8_DYNAMIC (same layout, zero offsets).
  expect_eval_error(edited_json("w8a16", "fused_type", "quant_model_description.json",
                                [&](auto& d) {
                                  for (const char* suffix : {".weight", ".weight_scale", ".weight_offset"})
                                    d[k + suffix] = "W8A8_DYNAMIC";
                                  d["model_quant_type"] = "W8A8_DYNAMIC";
                                }),
                    {"model.layers.2.self_attn.q_proj' (W8A16)", k + "' (W8A8_DYNAMIC)", "share one type"});
}

TEST(EvaluatorBadInput, FloatTensorsEnginesMisread) {
  Shared& s = Shared::get();
  // NaN in a FLOAT tensor.
  expect_folder_error(patched("w8a16", "norm_nan", "model.norm.weight",
                              [](Tensor& t) { set_f32(t, 3, std::numeric_limits<float>::quiet_NaN()); }),
                      {"model.norm.weight", "NaN"});
  // lm_head.weight dropped: vLLM-Ascend's llama loader looks it up even when tied.
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "no_lm_head", [](TensorList& ts, nlohmann::ordered_json& desc) {
    std::erase_if(ts, [](const auto& t) { return t.first == "lm_head.weight"; });
    desc.erase("lm_head.weight");
  });
  expect_eval_error(dir, {"lm_head.weight", "missing", "tie_word_embeddings"});
  // An integer tensor described as FLOAT.
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "int_norm", [](TensorList& ts, nlohmann::ordered_json&) {
    for (auto& [n, t] : ts)
      if (n == "model.norm.weight") t = Tensor(DType::I32, t.shape);
  });
  expect_folder_error(dir2, {"model.norm.weight", "FLOAT", "I32"});
}

}  // namespace
}  // namespace lwq
