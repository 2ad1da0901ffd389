#include "models/qwen3_vl_moe_model.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "data/image.h"
#include "data/qwen_vl_processor.h"
#include "data/qwen_vl_prompt.h"
#include "data/tokenizer.h"
#include "data/vlm_dataset.h"
#include "io/checkpoint.h"
#include "io/json_strict.h"
#include "models/causal_lm.h"
#include "models/quarot.h"
#include "models/qwen3_vl_vision.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

using Json = nlohmann::ordered_json;

int64_t json_int(const Json& j, const char* key, int64_t def, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 1)
    fail("{}: '{}' must be a positive integer, got {}", where, key, j[key].dump());
  return j[key].get<int64_t>();
}

// preprocessor_config.json when the folder has one (Qwen2VLImageProcessor's
// keys); else the Qwen3-VL defaults with the tower's patch/merge sizes.
QwenVlImageSettings image_settings(const fs::path& dir, const Qwen3VlVisionConfig& v) {
  QwenVlImageSettings s;
  s.patch_size = v.patch_size, s.temporal_patch_size = v.temporal_patch_size, s.merge_size = v.spatial_merge_size;
  const fs::path file = dir / "preprocessor_config.json";
  if (!fs::exists(file)) return s;
  const std::string where = file.string();
  const Json j = parse_json_strict(read_text_file(file), where);
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  const struct {
    const char* key;
    int64_t* value;
    int64_t vision;
  } sizes[] = {{"patch_size", &s.patch_size, v.patch_size},
               {"temporal_patch_size", &s.temporal_patch_size, v.temporal_patch_size},
               {"merge_size", &s.merge_size, v.spatial_merge_size}};
  for (const auto& k : sizes) {
    *k.value = json_int(j, k.key, *k.value, where);
    if (*k.value != k.vision)
      fail("{}: '{}' is {} but config.json's vision_config says {}", where, k.key, *k.value, k.vision);
  }
  if (j.contains("size") && j["size"].is_object()) {
    s.min_pixels = json_int(j["size"], "shortest_edge", s.min_pixels, where + ": size");
    s.max_pixels = json_int(j["size"], "longest_edge", s.max_pixels, where + ": size");
  }
  s.min_pixels = json_int(j, "min_pixels", s.min_pixels, where);
  s.max_pixels = json_int(j, "max_pixels", s.max_pixels, where);
  for (const auto& [key, dst] : {std::pair<const char*, float*>{"image_mean", s.mean}, {"image_std", s.std}}) {
    if (!j.contains(key)) continue;
    const Json& a = j[key];
    if (!a.is_array() || a.size() != 3) fail("{}: '{}' must list 3 numbers, got {}", where, key, a.dump());
    for (size_t c = 0; c < 3; ++c) {
      if (!a[c].is_number() || (dst == s.std && !(a[c].get<double>() > 0)))
        fail("{}: '{}' must list 3 numbers (std > 0), got {}", where, key, a.dump());
      dst[c] = a[c].get<float>();
    }
  }
  return s;
}

QwenVlTokenIds token_ids(const fs::path& dir) {
  const fs::path file = dir / "config.json";
  const Json j = parse_json_strict(read_text_file(file), file.string());
  QwenVlTokenIds t;
  t.image = static_cast<int32_t>(json_int(j, "image_token_id", t.image, file.string()));
  t.vision_start = static_cast<int32_t>(json_int(j, "vision_start_token_id", t.vision_start, file.string()));
  t.vision_end = static_cast<int32_t>(json_int(j, "vision_end_token_id", t.vision_end, file.string()));
  return t;
}

class Qwen3VlMoeModel : public Qwen3VlMoeUnitModel {
 public:
  Qwen3VlMoeModel(const fs::path& dir, const Checkpoint& ckpt)
      : text_(load_model_config(dir)),
        vision_(load_qwen3_vl_vision_config(dir)),
        tokens_(token_ids(dir)),
        ckpt_(ckpt),
        arch_(architecture_for(text_)) {
    check_qwen3_vl_vision_tensors(ckpt_, vision_);  // the tower is read first: a bad one fails before any work
  }

  std::string model_type() const override { return "qwen3_vl_moe"; }
  DType dtype() const override { return text_.dtype; }
  int64_t width() const override { return text_.hidden_size; }
  const ModelConfig* lm_config() const override { return &text_; }
  int num_units() const override { return 1 + text_.num_hidden_layers; }

  LayerDesc unit(int k) const override { return k == 0 ? qwen3_vl_vision_desc(vision_) : layer_desc(text_, k - 1); }

  // QuaRot as the reference adapter maps it (multimodal.md A.4.5): the text
  // layers as any decoder layer (experts as they stream), and the tower's
  // outputs into the rotated residual stream: merger and deepstack mergers'
  // linear_fc2 rotated on their output side. The tower's blocks are not rotated.
  void set_quarot(const QuarotPlan* plan) override { quarot_ = plan; }

  LayerWeights load(int k) const override {
    if (k == 0) {
      LayerWeights w = load_qwen3_vl_vision(ckpt_, vision_);
      if (quarot_) rotate_vision_outputs(w);
      return w;
    }
    LayerWeights w = load_layer_weights(ckpt_, text_, k - 1, /*with_experts=*/false, hold_);
    if (quarot_) quarot_rotate_layer(text_, arch_, *quarot_, w);
    w.layer = k;  // the runner knows units, not text layers
    return w;
  }
  void rotate_online(int k, LayerWeights& w) const override {
    if (quarot_ && k > 0) quarot_rotate_online(arch_, *quarot_, k - 1, w);
  }
  void hold_linear_weights(LinearWeightHold hold) override { hold_ = hold; }

  std::unique_ptr<ExpertStream> part_stream(int k, LayerWeights& weights, bool prefetch,
                                            ExpertTransform after) const override {
    if (k == 0 || !text_.is_moe_layer(k - 1)) return nullptr;
    return std::make_unique<ExpertStream>(ckpt_, text_, k - 1, weights, prefetch,
                                          then(quarot_expert_transform(ckpt_, text_, k - 1, quarot_), std::move(after)));
  }

  void forward(int k, const LayerWeights& weights, std::span<const SequenceRef> seqs, LinearExecutor* exec,
               ExpertStream* parts, std::vector<int64_t>* tokens_per_expert) const override {
    if (k == 0) {
      for (const SequenceRef& s : seqs) vision_forward(weights, s, exec);
      return;
    }
    std::vector<SequenceRef> text_rows;
    for (const SequenceRef& s : seqs) {
      const Qwen3VlSample& v = sample(s);
      SequenceRef t = s;
      t.seq = v.tokens();
      t.mrope = v.mrope.data();
      text_rows.push_back(t);
    }
    decoder_layer_forward_batch(text_, weights, k - 1, text_rows, exec, parts, tokens_per_expert);
    const auto level = static_cast<size_t>(k - 1);
    if (level < vision_.deepstack_visual_indexes.size())
      for (const SequenceRef& s : seqs) add_deepstack(s, level);
  }

  std::vector<std::string> checkpoint_tensors(int k) const override {
    LayerDesc d = unit(k);
    std::vector<std::string> names;
    for (const auto& t : d.tensors) names.push_back(d.prefix + "." + t.name);
    if (d.num_experts > 0)
      for (auto& n : expert_checkpoint_tensors(ckpt_, text_, k - 1)) names.push_back(std::move(n));
    return names;
  }

  std::vector<UnitInput> calibration_inputs(const CalibrationSource& source) override;
  const std::vector<Qwen3VlSample>& samples() const override { return samples_; }
  int64_t deepstack_levels() const override { return static_cast<int64_t>(vision_.deepstack_visual_indexes.size()); }

  std::vector<TensorDesc> outer_tensors() const override { return non_layer_tensors(text_, ckpt_); }

  Tensor read_outer_tensor(const std::string& name) const override {
    const std::string stored = stored_outer_name(ckpt_, text_, name);
    Tensor t = ckpt_.read(stored);
    check_finite(t, stored, ckpt_.file_of(stored).string());
    return t;
  }

  std::string router(int k) const override {
    return k > 0 && text_.is_moe_layer(k - 1) ? arch_.moe->router : "";
  }

  DType outer_dtype(const std::string& name) const override {
    return ckpt_.info(stored_outer_name(ckpt_, text_, name)).dtype;
  }
  void read_outer_rows(const std::string& name, int64_t row0, int64_t rows, void* dst) const override {
    read_checkpoint_rows(ckpt_, stored_outer_name(ckpt_, text_, name), row0, rows, dst);
  }

 private:

  void rotate_vision_outputs(LayerWeights& w) const {
    std::vector<std::string> writers = {"merger.linear_fc2"};
    for (size_t i = 0; i < vision_.deepstack_visual_indexes.size(); ++i)
      writers.push_back("deepstack_merger_list." + std::to_string(i) + ".linear_fc2");
    const int64_t H = text_.hidden_size;
    for (const auto& name : writers) {
      std::vector<float>& weight = w.mutable_f32(name + ".weight");
      quarot_->hidden.left(weight.data(), H, static_cast<int64_t>(weight.size()) / H);
      quarot_->hidden.left(w.mutable_f32(name + ".bias").data(), H, 1);
    }
  }

  const Qwen3VlSample& sample(const SequenceRef& s) const {
    if (s.sample < 0 || static_cast<size_t>(s.sample) >= samples_.size())
      fail("Qwen3-VL-MoE: sequence of calibration sample {} has no image/text inputs", s.sample);
    return samples_[static_cast<size_t>(s.sample)];
  }

  // The tower on the sample's image; its embeddings replace the image-pad
  // rows, its deepstack features fill the rows after the tokens.
  void vision_forward(const LayerWeights& w, const SequenceRef& s, LinearExecutor* exec) const {
    const Qwen3VlSample& v = sample(s);
    if (v.pixels.rows == 0) return;
    const ImageGrid grid{v.pixels.grid_t, v.pixels.grid_h, v.pixels.grid_w};
    Qwen3VlVisionOutputs out =
        qwen3_vl_vision_forward(vision_, w, v.pixels.values.data(), v.pixels.rows, v.pixels.cols, {&grid, 1}, exec);
    const auto n = static_cast<int64_t>(v.image_rows.size());
    if (out.tokens != n) fail("Qwen3-VL-MoE: the tower made {} image tokens for {} image-pad tokens", out.tokens, n);
    const int64_t H = text_.hidden_size;
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(out.embeds.data() + i * H, H, s.hidden + v.image_rows[static_cast<size_t>(i)] * H);
    for (size_t l = 0; l < out.deepstack.size(); ++l)
      std::copy_n(out.deepstack[l].data(), n * H, s.hidden + (v.tokens() + static_cast<int64_t>(l) * n) * H);
  }

  // After text layer `level`: the level's deepstack block into the image rows
  // (HF Qwen3VLMoeTextModel), then zeroed, so that it adds nothing to later
  // comparisons of the rows.
  void add_deepstack(const SequenceRef& s, size_t level) const {
    const Qwen3VlSample& v = sample(s);
    const auto n = static_cast<int64_t>(v.image_rows.size());
    const int64_t H = text_.hidden_size;
    float* block = s.hidden + (v.tokens() + static_cast<int64_t>(level) * n) * H;
    for (int64_t i = 0; i < n; ++i) {
      float* row = s.hidden + v.image_rows[static_cast<size_t>(i)] * H;
      for (int64_t c = 0; c < H; ++c) row[c] += block[i * H + c];
    }
    std::fill_n(block, n * H, 0.0f);
  }

  ModelConfig text_;
  Qwen3VlVisionConfig vision_;
  QwenVlTokenIds tokens_;
  const Checkpoint& ckpt_;
  const Architecture& arch_;
  LinearWeightHold hold_ = LinearWeightHold::Read;
  const QuarotPlan* quarot_ = nullptr;
  std::vector<Qwen3VlSample> samples_;
};

// Each entry as msModelSlim's adapter builds it (multimodal.md A.3.3): one
// image and its text in the chat template, alone (batch 1, no padding).
std::vector<UnitInput> Qwen3VlMoeModel::calibration_inputs(const CalibrationSource& source) {
  std::vector<VlmCalibEntry> entries = load_vlm_dataset(source.file, source.default_text);
  if (source.max_samples > 0 && entries.size() > static_cast<size_t>(source.max_samples))
    entries.resize(static_cast<size_t>(source.max_samples));
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].image.empty() && !source.allow_text_only)
      fail("calibration set {}: entry {} has no image; Qwen3-VL-MoE calibrates on image + text samples as "
           "msModelSlim does (pass --allow_text_only_calib to use text-only entries too)", source.file.string(), i);
  const Tokenizer tokenizer = Tokenizer::load(source.model_dir);
  const QwenVlImageSettings settings = image_settings(source.model_dir, vision_);
  const int64_t H = text_.hidden_size, merge = vision_.merge_unit();
  samples_.clear();
  std::vector<UnitInput> inputs;
  int64_t total = 0, images = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const VlmCalibEntry& e = entries[i];
    const std::string where = fmt::format("calibration entry {} of {}", i, source.file.string());
    Qwen3VlSample v;
    if (!e.image.empty()) {
      v.pixels = qwen_vl_pixels(read_image(e.image), settings);
      ++images;
    }
    const int64_t n = v.pixels.rows / merge;
    v.ids = qwen_vl_token_ids(tokenizer, qwen_vl_chat_text(e.text, n > 0), n, tokens_, where);
    v.mrope = qwen_vl_rope_positions(v.ids, tokens_, v.pixels.grid_t, v.pixels.grid_h, v.pixels.grid_w,
                                     vision_.spatial_merge_size);
    for (int64_t t = 0; t < v.tokens(); ++t)
      if (v.ids[static_cast<size_t>(t)] == tokens_.image) v.image_rows.push_back(t);
    UnitInput in;
    const int64_t rows = v.tokens() + deepstack_levels() * n;
    in.positions.assign(v.mrope.begin(), v.mrope.begin() + v.tokens());
    in.positions.resize(static_cast<size_t>(rows), 0);
    in.hidden = embed_token_rows(ckpt_, text_, v.ids);
    in.hidden.resize(static_cast<size_t>(rows * H), 0.0f);
    total += v.tokens();
    samples_.push_back(std::move(v));
    inputs.push_back(std::move(in));
  }
  spdlog::info("calibration: {} samples ({} with an image), {} tokens from {}", inputs.size(), images, total,
               source.file.string());
  return inputs;
}

}  // namespace

bool is_qwen3_vl_moe_config(const std::string& json_text) {
  try {
    const Json j = Json::parse(json_text);
    return j.is_object() && j.contains("model_type") && j["model_type"] == "qwen3_vl_moe";
  } catch (const Json::exception&) {
    return false;
  }
}

std::unique_ptr<Qwen3VlMoeUnitModel> open_qwen3_vl_moe(const fs::path& model_dir, const Checkpoint& ckpt) {
  return std::make_unique<Qwen3VlMoeModel>(model_dir, ckpt);
}

std::unique_ptr<UnitModel> open_qwen3_vl_moe_model(const fs::path& model_dir, const Checkpoint& ckpt) {
  return open_qwen3_vl_moe(model_dir, ckpt);
}

}  // namespace lwq
