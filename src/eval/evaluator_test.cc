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
#include <fstream>
#include <map>
#include <stdexcept>

#include "data/tokenizer.h"
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
template <typename Edit>
void patch_tensor(const fs::path& dir, const std::string& name, Edit edit) {
  Checkpoint ckpt = Checkpoint::open(dir / "quant_model_weights.safetensors.index.json");
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
  quantize(stories(), dir, "--config_path '" + yaml.string() + "'");
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

TEST(Evaluator, FlippedDeqScaleSignIsVisible) {
  Shared& s = Shared::get();
  const EvalResult clean = s.clean("w8a8", kTamperTokens);
  const fs::path dir = s.tmp() / "w8a8_flipped_deq";
  copy_folder(s.folder("w8a8"), dir);
  // The channel with the largest output scale deq·Σ|Wq| (a residual outlier
  // channel of this model): flipping a quiet channel's sign can hide in the noise.
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
  // int64 deq_scale holds the float32 bit pattern in its low 32 bits: flip bit 31.
  patch_tensor(dir, kTamperedLinear + ".deq_scale", [&](Tensor& t) {
    ASSERT_EQ(t.dtype, DType::I64);
    t.data<int64_t>()[channel] ^= int64_t{1} << 31;
  });
  {
    Checkpoint patched = Checkpoint::open(dir / "quant_model_weights.safetensors.index.json");
    Tensor t = patched.read(kTamperedLinear + ".deq_scale");
    ASSERT_EQ(deq_scale_from_int64_bits(t.span<int64_t>())[static_cast<size_t>(channel)],
              -deq[static_cast<size_t>(channel)]);
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

TEST(EvaluatorBadInput, FolderOfAnotherModel) {
  Shared& s = Shared::get();
  // A 2-layer llama with a 256-token vocabulary (HF golden case).
  const fs::path other = s.tmp() / "golden_llama_w8a16";
  quantize(repo() / "tests/data/goldens/llama", other, "--quant_type w8a16");
  expect_eval_error(other, {"model.embed_tokens.weight", "[256, 64]", "[512, 64]"});
  // The qwen2 variant: same shapes, but its q/k/v biases are foreign to the llama model ...
  const fs::path qwen2 = s.tmp() / "qwen2_w8a16";
  quantize(repo() / "tests/data/models/stories260K-qwen2", qwen2, "--quant_type w8a16");
  expect_eval_error(qwen2, {"model.layers.0.self_attn.q_proj.bias", "not a tensor of the float model"});
  // ... and missing when the qwen2 model is the float side.
  expect_eval_error(s.folder("w8a16"), {"model.layers.0.self_attn.q_proj", "bias"},
                    repo() / "tests/data/models/stories260K-qwen2");
}

TEST(EvaluatorBadInput, DroppedTensor) {
  Shared& s = Shared::get();
  const std::string name = "model.layers.0.self_attn.k_proj.weight_offset";
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "dropped", [&](TensorList& ts, auto& desc) {
    std::erase_if(ts, [&](const auto& t) { return t.first == name; });
    desc.erase(name);
  });
  expect_eval_error(dir, {name});
  // Dropped from the safetensors only: the description still lists it.
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "dropped2", [&](TensorList& ts, auto&) {
    std::erase_if(ts, [&](const auto& t) { return t.first == "model.norm.weight"; });
  });
  expect_eval_error(dir2, {"model.norm.weight", "not in the safetensors"});
}

TEST(EvaluatorBadInput, ExtraTensor) {
  Shared& s = Shared::get();
  const std::string name = "model.layers.2.mlp.extra_proj.weight";
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "extra", [&](TensorList& ts, auto& desc) {
    ts.emplace_back(name, tensor_f32({2}, {1.0f, 2.0f}));
    desc[name] = "FLOAT";
  });
  expect_eval_error(dir, {name, "not a tensor of the float model"});
  // A W8A8 parameter beside a W8A16 Linear is foreign too.
  const std::string stray = "model.layers.1.mlp.up_proj.input_scale";
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "extra2", [&](TensorList& ts, auto& desc) {
    ts.emplace_back(stray, tensor_f32({1}, {0.1f}));
    desc[stray] = "W8A16";
  });
  expect_eval_error(dir2, {stray});
  // Stored but not described.
  fs::path dir3 = rewrite_folder(s.folder("w8a16"), s.tmp() / "extra3", [&](TensorList& ts, auto&) {
    ts.emplace_back(name, tensor_f32({2}, {1.0f, 2.0f}));
  });
  expect_eval_error(dir3, {name, "is not listed"});
}

TEST(EvaluatorBadInput, ChangedShape) {
  Shared& s = Shared::get();
  // The quantized weight of a Linear with one input column less.
  const std::string name = "model.layers.0.self_attn.q_proj.weight";
  fs::path dir = rewrite_folder(s.folder("w8a16"), s.tmp() / "shape", [&](TensorList& ts, auto&) {
    for (auto& [n, t] : ts)
      if (n == name) {
        t.shape = {t.shape[0], t.shape[1] - 1};
        t.bytes.resize(static_cast<size_t>(t.shape[0] * t.shape[1]));
      }
  });
  expect_eval_error(dir, {name, "[64, 63]", "[64, 64]"});
  // A scale with one entry per row, but as [out] instead of [out, 1].
  const std::string scale = "model.layers.0.mlp.gate_proj.weight_scale";
  fs::path dir2 = rewrite_folder(s.folder("w8a16"), s.tmp() / "shape2", [&](TensorList& ts, auto&) {
    for (auto& [n, t] : ts)
      if (n == scale) t.shape = {t.shape[0]};
  });
  expect_eval_error(dir2, {scale, "[172]", "[172, 1]"});
  // A norm weight of the wrong length.
  const std::string norm = "model.layers.0.input_layernorm.weight";
  fs::path dir3 = rewrite_folder(s.folder("w8a16"), s.tmp() / "shape3", [&](TensorList& ts, auto&) {
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

}  // namespace
}  // namespace lwq
