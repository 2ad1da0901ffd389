#include "models/wan_model.h"

#include <spdlog/spdlog.h>

#include <regex>
#include <set>

#include "io/checkpoint.h"
#include "models/wan_block.h"
#include "util/error.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {


// One captured sample's per-sample block inputs (all but x).
struct SideInputs {
  std::vector<float> e0, context;
  int64_t frames = 0, height = 0, width = 0, seq_len = 0;
};

class WanModel : public UnitModel {
 public:
  WanModel(WanConfig cfg, const Checkpoint& ckpt) : cfg_(std::move(cfg)), ckpt_(ckpt) {
    // The original config.json has no text_dim (a constructor default): the checkpoint says.
    const std::string text = wan_checkpoint_name(cfg_, "text_embedding.0.weight");
    if (ckpt_.contains(text) && ckpt_.info(text).shape.size() == 2) cfg_.text_dim = ckpt_.info(text).shape[1];
    check_tensors();
    dtype_ = ckpt_.info(wan_checkpoint_name(cfg_, "blocks.0.self_attn.q.weight")).dtype;
  }

  std::string model_type() const override { return "wan2.1"; }
  DType dtype() const override { return dtype_; }
  int64_t width() const override { return cfg_.dim; }
  int num_units() const override { return static_cast<int>(cfg_.num_layers); }
  LayerDesc unit(int k) const override { return wan_block_desc(cfg_, k); }
  LayerWeights load(int k) const override { return load_wan_block(ckpt_, cfg_, k, hold_); }
  void hold_linear_weights(LinearWeightHold hold) override { hold_ = hold; }
  std::unique_ptr<ExpertStream> part_stream(int, LayerWeights&, bool, ExpertTransform) const override {
    return nullptr;
  }

  void forward(int k, const LayerWeights& weights, std::span<const SequenceRef> seqs, LinearExecutor* exec,
               ExpertStream*, std::vector<int64_t>*) const override {
    for (const SequenceRef& s : seqs) {
      if (s.sample < 0 || static_cast<size_t>(s.sample) >= side_.size())
        fail("Wan block {}: sample {} has no captured inputs", k, s.sample);
      const SideInputs& in = side_[static_cast<size_t>(s.sample)];
      WanBlockInputs bi;
      bi.e0 = in.e0.data();
      bi.context = in.context.data();
      bi.context_len = static_cast<int64_t>(in.context.size()) / cfg_.dim;
      bi.frames = in.frames, bi.height = in.height, bi.width = in.width;
      bi.valid_tokens = in.seq_len;
      wan_block_forward(cfg_, weights, s.hidden, s.seq, bi, exec);
    }
  }

  std::vector<std::string> checkpoint_tensors(int k) const override {
    LayerDesc d = wan_block_desc(cfg_, k);
    std::vector<std::string> names;
    for (const auto& t : d.tensors) names.push_back(wan_checkpoint_name(cfg_, d.prefix + "." + t.name));
    return names;
  }

  std::vector<UnitInput> calibration_inputs(const CalibrationSource& source) override;

  std::vector<TensorDesc> outer_tensors() const override { return wan_outer_tensors(cfg_); }

  Tensor read_outer_tensor(const std::string& name) const override {
    const std::string stored = checkpoint_name(name);
    Tensor t = ckpt_.read(stored);
    check_finite(t, stored, ckpt_.file_of(stored).string());
    return t;
  }

  std::string checkpoint_name(const std::string& name) const override { return wan_checkpoint_name(cfg_, name); }
  std::string router(int) const override { return ""; }

 private:
  // Every tensor the descriptor names, with its shape and a float dtype, and
  // no block beyond num_layers.
  void check_tensors() const {
    const std::string where = cfg_.source.string();
    auto check = [&](const std::string& name, const Shape& shape) {
      const std::string stored = wan_checkpoint_name(cfg_, name);
      if (!ckpt_.contains(stored))
        fail("tensor '{}' is missing from checkpoint {} ({} describes a Wan2.1 {} with {} blocks)", stored,
             ckpt_.path().string(), where, cfg_.model_type, cfg_.num_layers);
      const TensorInfo& info = ckpt_.info(stored);
      if (info.shape != shape)
        fail("tensor '{}' has shape {} but {} implies {}", stored, shape_str(info.shape), where, shape_str(shape));
      if (!is_float(info.dtype))
        fail("tensor '{}' has dtype {}; a Wan2.1 checkpoint stores F32, BF16 or F16", stored, dtype_name(info.dtype));
    };
    for (int n = 0; n < cfg_.num_layers; ++n) {
      LayerDesc d = wan_block_desc(cfg_, n);
      for (const auto& t : d.tensors) check(d.prefix + "." + t.name, t.shape);
    }
    for (const auto& t : wan_outer_tensors(cfg_)) check(t.name, t.shape);
    static const std::regex block_re(R"(^blocks\.(\d+)\.)");
    for (const auto& name : ckpt_.tensor_names()) {
      std::smatch m;
      if (std::regex_search(name, m, block_re) && std::stoll(m[1].str()) >= cfg_.num_layers)
        fail("checkpoint {} holds '{}' but {} says num_layers = {}", ckpt_.path().string(), name, where,
             cfg_.num_layers);
    }
  }

  WanConfig cfg_;
  const Checkpoint& ckpt_;
  DType dtype_ = DType::F32;
  LinearWeightHold hold_ = LinearWeightHold::Read;
  std::vector<SideInputs> side_;
};

// A captured tensor as f32, checked for dtype, rank, trailing width and finiteness.
std::vector<float> captured_f32(const Checkpoint& f, const std::string& name, int64_t rows, int64_t cols) {
  const TensorInfo& info = f.info(name);
  if (!is_float(info.dtype))
    fail("{}: '{}' has dtype {}, expected F32, BF16 or F16", f.path().string(), name, dtype_name(info.dtype));
  if (info.shape.size() != 2 || info.shape[1] != cols || (rows > 0 && info.shape[0] != rows) || info.shape[0] <= 0)
    fail("{}: '{}' has shape {}, expected [{}, {}] for this model", f.path().string(), name, shape_str(info.shape),
         rows > 0 ? std::to_string(rows) : "rows", cols);
  Tensor t = f.read(name);
  check_finite(t, name, f.path().string());
  return to_f32(t);
}

std::vector<int64_t> captured_i64(const Checkpoint& f, const std::string& name, size_t n) {
  const TensorInfo& info = f.info(name);
  if (info.dtype != DType::I64 || info.shape != Shape{static_cast<int64_t>(n)})
    fail("{}: '{}' must be I64 [{}], got {} {}", f.path().string(), name, n, dtype_name(info.dtype),
         shape_str(info.shape));
  Tensor t = f.read(name);
  return std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + n);
}

std::vector<UnitInput> WanModel::calibration_inputs(const CalibrationSource& source) {
  const fs::path& file = source.file;
  if (file.extension() != ".safetensors")
    fail("Wan2.1 calibrates from block inputs captured from its float pipeline, a .safetensors file made by "
         "tools/capture_wan_inputs.py and given with --calib_data; got {}", file.string());
  Checkpoint f = Checkpoint::open(file);
  std::vector<UnitInput> samples;
  side_.clear();
  int64_t tokens = 0;
  for (int i = 0; f.contains(std::to_string(i) + ".x"); ++i) {
    if (source.max_samples > 0 && i >= source.max_samples) break;
    const std::string p = std::to_string(i) + ".";
    for (const char* key : {"e0", "context", "grid"})
      if (!f.contains(p + key)) fail("{}: sample {} has '{}x' but no '{}{}'", file.string(), i, p, p, key);
    UnitInput in;
    in.hidden = captured_f32(f, p + "x", 0, cfg_.dim);
    const int64_t rows = static_cast<int64_t>(in.hidden.size()) / cfg_.dim;
    SideInputs s;
    s.e0 = captured_f32(f, p + "e0", 6, cfg_.dim);
    s.context = captured_f32(f, p + "context", 0, cfg_.dim);
    if (cfg_.image_cross_attn() && static_cast<int64_t>(s.context.size()) / cfg_.dim <= cfg_.text_len)
      fail("{}: sample {}: '{}context' has {} rows; a Wan2.1 {} context is the image tokens followed by text_len = "
           "{} text tokens", file.string(), i, p, s.context.size() / static_cast<size_t>(cfg_.dim), cfg_.model_type,
           cfg_.text_len);
    std::vector<int64_t> grid = captured_i64(f, p + "grid", 3);
    s.frames = grid[0], s.height = grid[1], s.width = grid[2];
    if (s.frames <= 0 || s.height <= 0 || s.width <= 0 || s.frames * s.height * s.width > rows)
      fail("{}: sample {}: grid {}×{}×{} does not fit its {} rows of '{}x'", file.string(), i, s.frames, s.height,
           s.width, rows, p);
    s.seq_len = f.contains(p + "seq_len") ? captured_i64(f, p + "seq_len", 1)[0] : rows;
    if (s.seq_len <= 0 || s.seq_len > rows)
      fail("{}: sample {}: seq_len {} outside [1, {}]", file.string(), i, s.seq_len, rows);
    in.positions.resize(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) in.positions[static_cast<size_t>(r)] = static_cast<int32_t>(r);
    tokens += rows;
    samples.push_back(std::move(in));
    side_.push_back(std::move(s));
  }
  if (samples.empty())
    fail("{} holds no captured Wan2.1 block inputs (expected tensors '0.x', '0.e0', '0.context', '0.grid', ...; see "
         "tools/capture_wan_inputs.py)", file.string());
  spdlog::info("calibration: {} captured samples, {} tokens from {}", samples.size(), tokens, file.string());
  return samples;
}

}  // namespace

std::unique_ptr<UnitModel> open_wan_model(WanConfig cfg, const Checkpoint& ckpt) {
  return std::make_unique<WanModel>(std::move(cfg), ckpt);
}

}  // namespace lwq
