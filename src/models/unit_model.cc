#include "models/unit_model.h"

#include <spdlog/spdlog.h>

#include <cstring>
#include <set>

#include "data/calib_dataset.h"
#include "data/tokenizer.h"
#include "io/checkpoint.h"
#include "models/causal_lm.h"
#include "models/quarot.h"
#include "models/qwen3_vl_moe_model.h"
#include "models/wan.h"
#include "models/wan_model.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

// The decoder-only LLM families: units are the decoder layers of
// architecture.cc's descriptors, fed by the token embedding.
class DecoderLM : public UnitModel {
 public:
  DecoderLM(ModelConfig cfg, const Checkpoint& ckpt)
      : cfg_(std::move(cfg)), ckpt_(ckpt), arch_(architecture_for(cfg_)) {}

  std::string model_type() const override { return cfg_.model_type; }
  DType dtype() const override { return cfg_.dtype; }
  int64_t width() const override { return cfg_.hidden_size; }
  const ModelConfig* lm_config() const override { return &cfg_; }
  int num_units() const override { return cfg_.num_hidden_layers; }
  LayerDesc unit(int k) const override { return layer_desc(cfg_, k); }
  void set_quarot(const QuarotPlan* plan) override { quarot_ = plan; }
  LayerWeights load(int k) const override {
    LayerWeights w = load_layer_weights(ckpt_, cfg_, k, /*with_experts=*/false, hold_);
    if (quarot_) quarot_rotate_layer(cfg_, arch_, *quarot_, w);
    return w;
  }
  void rotate_online(int k, LayerWeights& w) const override {
    if (quarot_) quarot_rotate_online(arch_, *quarot_, k, w);
  }
  void hold_linear_weights(LinearWeightHold hold) override { hold_ = hold; }

  std::unique_ptr<ExpertStream> part_stream(int k, LayerWeights& weights, bool prefetch,
                                            ExpertTransform after) const override {
    if (!cfg_.is_moe_layer(k)) return nullptr;
    return std::make_unique<ExpertStream>(ckpt_, cfg_, k, weights, prefetch,
                                          then(quarot_expert_transform(ckpt_, cfg_, k, quarot_), std::move(after)));
  }

  void forward(int k, const LayerWeights& weights, std::span<const SequenceRef> seqs, LinearExecutor* exec,
               ExpertStream* parts, std::vector<int64_t>* tokens_per_expert) const override {
    decoder_layer_forward_batch(cfg_, weights, k, seqs, exec, parts, tokens_per_expert);
  }

  std::vector<std::string> checkpoint_tensors(int k) const override {
    LayerDesc d = layer_desc(cfg_, k);
    std::vector<std::string> names;
    for (const auto& t : d.tensors) names.push_back(d.prefix + "." + t.name);
    if (d.num_experts > 0)
      for (auto& n : expert_checkpoint_tensors(ckpt_, cfg_, k)) names.push_back(std::move(n));
    return names;
  }

  std::vector<UnitInput> calibration_inputs(const CalibrationSource& source) override;

  std::vector<TensorDesc> outer_tensors() const override { return non_layer_tensors(cfg_, ckpt_); }

  // A tied head is written as lm_head.weight too: serving engines look it up (spec §10 fact 16).
  Tensor read_outer_tensor(const std::string& name) const override {
    const std::string stored = stored_outer_name(ckpt_, cfg_, name);
    if (!ckpt_.contains(stored)) fail("tensor '{}' not found in checkpoint {}", name, ckpt_.path().string());
    Tensor t = ckpt_.read(stored);
    check_finite(t, stored, ckpt_.file_of(stored).string());
    return t;
  }

  std::string router(int k) const override { return cfg_.is_moe_layer(k) ? arch_.moe->router : ""; }

  DType outer_dtype(const std::string& name) const override {
    return ckpt_.info(stored_outer_name(ckpt_, cfg_, name)).dtype;
  }
  void read_outer_rows(const std::string& name, int64_t row0, int64_t rows, void* dst) const override {
    read_checkpoint_rows(ckpt_, stored_outer_name(ckpt_, cfg_, name), row0, rows, dst);
  }

 private:

  ModelConfig cfg_;
  const Checkpoint& ckpt_;
  const Architecture& arch_;
  LinearWeightHold hold_ = LinearWeightHold::Read;
  const QuarotPlan* quarot_ = nullptr;
};

bool is_blank(const std::string& text) { return text.find_first_not_of(" \t\r\n") == std::string::npos; }

// Prompts tokenized one by one (spec §1.9.1) and embedded. Deliberate
// differences from msModelSlim (docs/design.md): an empty prompt is skipped
// (it would calibrate from the BOS token alone) and a prompt longer than the
// model's context is cut to it (positions past it were never trained).
std::vector<UnitInput> DecoderLM::calibration_inputs(const CalibrationSource& source) {
  const std::filesystem::path& file = source.file;
  std::vector<std::string> prompts = load_calib_prompts(file);
  if (source.max_samples > 0 && prompts.size() > static_cast<size_t>(source.max_samples))
    prompts.resize(static_cast<size_t>(source.max_samples));
  Tokenizer tokenizer = Tokenizer::load(source.model_dir);
  std::vector<UnitInput> samples;
  int64_t tokens = 0;
  std::vector<size_t> truncated;
  for (size_t i = 0; i < prompts.size(); ++i) {
    if (is_blank(prompts[i])) {
      spdlog::warn("calibration sample {} of {} is empty; skipped", i, file.string());
      continue;
    }
    std::vector<int32_t> ids = tokenizer.encode_with_special(prompts[i]);
    if (ids.empty()) {
      spdlog::warn("calibration sample {} of {} encodes to no tokens; skipped", i, file.string());
      continue;
    }
    if (cfg_.max_position_embeddings > 0 && static_cast<int64_t>(ids.size()) > cfg_.max_position_embeddings) {
      ids.resize(static_cast<size_t>(cfg_.max_position_embeddings));
      truncated.push_back(i);
    }
    UnitInput s;
    s.positions.resize(ids.size());
    for (size_t p = 0; p < ids.size(); ++p) s.positions[p] = static_cast<int32_t>(p);
    s.hidden = embed_token_rows(ckpt_, cfg_, ids);
    tokens += s.seq();
    samples.push_back(std::move(s));
  }
  if (!truncated.empty())
    spdlog::warn("{} calibration sample(s) of {} (first: sample {}) are longer than the model's context and were cut "
                 "to max_position_embeddings = {} tokens", truncated.size(), file.string(), truncated.front(),
                 cfg_.max_position_embeddings);
  if (samples.empty()) fail("calibration dataset {} yields no tokens", file.string());
  spdlog::info("calibration: {} samples, {} tokens from {}", samples.size(), tokens, file.string());
  return samples;
}

}  // namespace

void UnitModel::read_outer_rows(const std::string& name, int64_t row0, int64_t rows, void* dst) const {
  const Tensor t = read_outer_tensor(name);
  const int64_t total = t.shape.empty() ? 1 : t.shape[0];
  if (row0 < 0 || rows < 0 || row0 > total - rows)
    fail("rows {}..{} of tensor '{}' (shape {}) do not exist", row0, row0 + rows, name, shape_str(t.shape));
  const size_t row_bytes = total > 0 ? t.nbytes() / static_cast<size_t>(total) : 0;
  std::memcpy(dst, t.bytes.data() + static_cast<size_t>(row0) * row_bytes, static_cast<size_t>(rows) * row_bytes);
}

std::string stored_outer_name(const Checkpoint& ckpt, const ModelConfig& cfg, const std::string& name) {
  const Architecture& arch = architecture_for(cfg);
  return name == arch.lm_head && cfg.tie_word_embeddings && !ckpt.contains(name) ? arch.embed_tokens : name;
}

void read_checkpoint_rows(const Checkpoint& ckpt, const std::string& name, int64_t row0, int64_t rows, void* dst) {
  const TensorInfo& info = ckpt.info(name);
  Shape shape = info.shape;
  if (!shape.empty()) shape[0] = rows;
  Tensor block(info.dtype, shape);
  ckpt.read_rows(name, row0, rows, block.bytes.data());
  check_finite(block, name, ckpt.file_of(name).string(), row0);
  std::memcpy(dst, block.bytes.data(), block.nbytes());
}

std::vector<float> embed_token_rows(const Checkpoint& ckpt, const ModelConfig& cfg, std::span<const int32_t> ids) {
  const std::string& name = architecture_for(cfg).embed_tokens;
  if (!ckpt.contains(name)) fail("tensor '{}' is missing from checkpoint {}", name, ckpt.path().string());
  const TensorInfo& info = ckpt.info(name);
  check_tensor_shape(cfg, name, info.shape, {cfg.vocab_size, cfg.hidden_size});
  if (!is_float(info.dtype))
    fail("tensor '{}' has dtype {}; a float dtype (F32, F16, BF16) is expected", name, dtype_name(info.dtype));
  const int64_t H = cfg.hidden_size;
  std::vector<float> out(ids.size() * static_cast<size_t>(H));
  std::vector<uint8_t> row(static_cast<size_t>(H) * dtype_size(info.dtype));
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= cfg.vocab_size)
      fail("token id {} at index {} is outside the vocabulary [0, {})", ids[i], i, cfg.vocab_size);
    read_checkpoint_rows(ckpt, name, ids[i], 1, row.data());
    convert_to_f32(info.dtype, row.data(), out.data() + i * static_cast<size_t>(H), static_cast<size_t>(H));
  }
  return out;
}

void UnitModel::set_quarot(const QuarotPlan* plan) {
  if (plan) fail("quarot is not supported on model_type '{}' (decoder-only language models only)", model_type());
}

std::filesystem::path resolve_model_folder(const std::filesystem::path& path) {
  if (std::filesystem::exists(path / "model_index.json") && std::filesystem::exists(path / "transformer" / "config.json"))
    return path / "transformer";
  return path;
}

std::string model_kind(const std::filesystem::path& model_dir) {
  const std::filesystem::path config = model_dir / "config.json";
  if (std::filesystem::exists(config) && is_wan_config(read_text_file(config))) return "wan";
  if (std::filesystem::exists(config) && is_qwen3_vl_moe_config(read_text_file(config))) return "vlm";
  return load_model_config(model_dir).moe.num_experts > 0 ? "moe" : "llm";
}

std::unique_ptr<UnitModel> open_unit_model(const std::filesystem::path& model_dir, const Checkpoint& ckpt) {
  const std::filesystem::path config = model_dir / "config.json";
  if (std::filesystem::exists(config) && is_wan_config(read_text_file(config)))
    return open_wan_model(load_wan_config(model_dir), ckpt);
  if (std::filesystem::exists(config) && is_qwen3_vl_moe_config(read_text_file(config)))
    return open_qwen3_vl_moe_model(model_dir, ckpt);
  return std::make_unique<DecoderLM>(load_model_config(model_dir), ckpt);
}

}  // namespace lwq
