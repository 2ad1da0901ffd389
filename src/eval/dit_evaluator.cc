#include "eval/dit_evaluator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <set>

#include "eval/deployed_executor.h"
#include "eval/quantized_folder.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "models/unit_model.h"
#include "models/wan.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

// The quantized folder's config.json, when it has one (mindie_format_saver
// copies the model's), must describe the same DiT.
void check_config_matches(const QuantizedFolder& q, const WanConfig& cfg) {
  if (q.config().empty()) return;
  const fs::path where = q.dir() / "config.json";
  const std::string text = q.config().dump();
  if (!is_wan_config(text))
    fail("{} does not describe a Wan2.1 DiT but the float model {} is one (folder quantized from another model?)",
         where.string(), cfg.source.string());
  const WanConfig qc = parse_wan_config(text, where);
  auto same = [&](const char* key, auto a, auto b) {
    if (a != b)
      fail("{}: '{}' is {} but the float model's {} has {} (folder quantized from another model?)", where.string(),
           key, a, cfg.source.string(), b);
  };
  same("dim", qc.dim, cfg.dim);
  same("ffn_dim", qc.ffn_dim, cfg.ffn_dim);
  same("num_heads", qc.num_heads, cfg.num_heads);
  same("num_layers", qc.num_layers, cfg.num_layers);
  same("model_type", qc.model_type, cfg.model_type);
}

// Checks the quantized Linear `prefix` against its float Linear: its [out, in],
// and the float32 bias MindIE-SD requires whenever the float Linear has one.
void check_quantized_linear(const QuantizedFolder& q, const std::string& prefix, const LinearDesc& lin) {
  DeployedLinear d = q.load_linear(prefix, /*with_weight=*/false);
  if (d.out != lin.out_features || d.in != lin.in_features)
    fail("tensor '{}.weight' is {} in {} ({} Linear [{}, {}]) but [{}, {}] in the float model", prefix,
         shape_str(q.info(prefix + ".weight").shape), q.dir().string(), d.type, d.out, d.in, lin.out_features,
         lin.in_features);
  if (lin.has_bias && !q.contains(prefix + ".bias"))
    fail("{}: the {} Linear '{}' has no '{}.bias', but its float Linear has a bias: MindIE-SD refuses a quantized "
         "Linear without it (\"Critical parameter missing\", multimodal.md B.4)",
         q.description_path().string(), d.type, prefix, prefix);
}

// Everything the float model fixes, before any block runs: every tensor it
// has is in the folder (FLOAT with its shape, or a quantized Linear's),
// quantized Linears fit their float ones, and nothing else is stored.
void check_against_float_model(const QuantizedFolder& q, const UnitModel& model) {
  std::set<std::string> allowed;
  for (int k = 0; k < model.num_units(); ++k) {
    const LayerDesc desc = model.unit(k);
    std::set<std::string> quantized;
    for (const auto& lin : desc.linears) {
      const std::string prefix = desc.prefix + "." + lin.name;
      const std::string type = q.linear_type(prefix);
      if (type == "FLOAT") continue;
      check_quantized_linear(q, prefix, lin);
      for (const auto& s : QuantizedFolder::parameter_suffixes(type)) allowed.insert(prefix + s);
      quantized.insert(lin.name + ".weight");
      if (lin.has_bias) quantized.insert(lin.name + ".bias");
    }
    for (const auto& t : desc.tensors) {
      const std::string name = desc.prefix + "." + t.name;
      allowed.insert(name);
      if (!quantized.count(t.name)) check_float_tensor(q, name, t.shape);
    }
  }
  for (const auto& t : model.outer_tensors()) {
    allowed.insert(t.name);
    check_float_tensor(q, t.name, t.shape);
  }
  for (const auto& name : q.tensor_names())
    if (!allowed.count(name))
      fail("tensor '{}' in {} is not a tensor of the float model nor a quantization parameter of one of its "
           "Linears (folder quantized from another model?)",
           name, q.dir().string());
}

// Seeded random block-0 inputs of the model's shapes, written in the capture
// format so they go through the model's own input parser; removed on exit.
class RandomInputs {
 public:
  RandomInputs(const WanConfig& cfg, uint64_t seed)
      : path_(fs::temp_directory_path() / fmt::format("lwquant-dit-eval-{}-{}.safetensors", ::getpid(), seed)) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto random = [&](Shape shape, float scale) {
      std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
      for (float& x : v) x = scale * normal(rng);
      return tensor_f32(std::move(shape), std::move(v));
    };
    constexpr int64_t kFrames = 2, kHeight = 4, kWidth = 4;
    // Image-to-video blocks split the context into image tokens and the last
    // text_len text tokens: give them a few image tokens before full text.
    const int64_t context = cfg.image_cross_attn() ? cfg.text_len + 8 : std::min<int64_t>(cfg.text_len, 16);
    SafetensorsWriter w(path_);
    for (int i = 0; i < kSamples; ++i) {
      const std::string p = std::to_string(i) + ".";
      w.add(p + "x", random({kFrames * kHeight * kWidth, cfg.dim}, 1.0f));
      w.add(p + "e0", random({6, cfg.dim}, 0.1f));
      w.add(p + "context", random({context, cfg.dim}, 1.0f));
      const int64_t grid[3] = {kFrames, kHeight, kWidth};
      w.add(p + "grid", DType::I64, {3}, grid);
    }
    w.finish();
  }
  ~RandomInputs() {
    std::error_code ec;
    fs::remove(path_, ec);
  }
  RandomInputs(const RandomInputs&) = delete;
  RandomInputs& operator=(const RandomInputs&) = delete;
  const fs::path& path() const { return path_; }
  static constexpr int kSamples = 2;

 private:
  fs::path path_;
};

std::vector<SequenceRef> refs(std::vector<UnitInput>& stream) {
  std::vector<SequenceRef> r;
  for (size_t i = 0; i < stream.size(); ++i)
    r.push_back({stream[i].hidden.data(), stream[i].seq(), stream[i].positions.data(), static_cast<int>(i)});
  return r;
}

DitError compare(const std::vector<UnitInput>& f, const std::vector<UnitInput>& q) {
  double ff = 0, qq = 0, fq = 0, dd = 0;
  for (size_t s = 0; s < f.size(); ++s)
    for (size_t i = 0; i < f[s].hidden.size(); ++i) {
      const double a = f[s].hidden[i], b = q[s].hidden[i];
      ff += a * a, qq += b * b, fq += a * b, dd += (b - a) * (b - a);
    }
  DitError e;
  e.rel_l2 = ff > 0 ? std::sqrt(dd / ff) : std::sqrt(dd);
  e.cosine = ff > 0 && qq > 0 ? fq / (std::sqrt(ff) * std::sqrt(qq)) : (dd == 0 ? 1.0 : 0.0);
  return e;
}

// Turns block k's float weights into the deployed block: each Linear the
// folder quantizes runs from its tensors there (its float weight is dropped);
// everything else stays the float checkpoint's, as MindIE-SD keeps it.
void deploy_block(const QuantizedFolder& q, const LayerDesc& desc, LayerWeights& w, DeployedExecutor& exec) {
  exec.linears.clear();
  for (const auto& lin : desc.linears) {
    const std::string prefix = desc.prefix + "." + lin.name;
    if (q.linear_type(prefix) == "FLOAT") continue;
    exec.linears.emplace(lin.name, q.load_linear(prefix));
    w.tensors.erase(lin.name + ".weight");
    w.stored.erase(lin.name + ".weight");
  }
}

std::string seconds_since(std::chrono::steady_clock::time_point start) {
  return fmt::format("{:.1f}s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

bool is_dit_model(const fs::path& model) {
  const fs::path config = resolve_model_folder(model) / "config.json";
  return fs::exists(config) && is_wan_config(read_text_file(config));
}

DitEvalResult evaluate_dit(const DitEvalOptions& o) {
  const fs::path folder = resolve_model_folder(o.float_dir);
  const WanConfig cfg = load_wan_config(folder);
  Checkpoint ckpt = Checkpoint::open(folder);
  std::unique_ptr<UnitModel> model = open_unit_model(folder, ckpt);  // checks every tensor against config.json
  QuantizedFolder quant = QuantizedFolder::open(o.quantized_dir, QuantFormat::Mindie);
  check_config_matches(quant, cfg);
  check_against_float_model(quant, *model);

  std::unique_ptr<RandomInputs> random;
  if (o.calib_data.empty()) random = std::make_unique<RandomInputs>(cfg, o.seed);
  const auto& linears = quant.quantized_linears();
  if (random && std::any_of(linears.begin(), linears.end(), [&](const std::string& p) { return quant.linear_type(p) == "W8A8"; }))
    spdlog::warn("eval: static W8A8 activation scales fit the captured inputs they were calibrated on; random inputs "
                 "of another range measure clipping, not the deployed quality (pass --calib_data)");
  const fs::path inputs = random ? random->path() : o.calib_data;
  std::vector<UnitInput> fstream = model->calibration_inputs({inputs, folder, random ? 0 : o.max_samples});
  std::vector<UnitInput> qstream = fstream;

  DitEvalResult r;
  r.model_quant_type = quant.model_quant_type();
  r.inputs = random ? "random" : "captured";
  r.samples = static_cast<int>(fstream.size());
  for (const auto& s : fstream) r.tokens += s.seq();
  spdlog::info("eval: Wan2.1 DiT, {} blocks, {} {} samples ({} tokens); quantized type {}", model->num_units(),
               r.samples, r.inputs, r.tokens, r.model_quant_type);
  const auto start = std::chrono::steady_clock::now();
  DeployedExecutor exec;
  std::vector<SequenceRef> fref = refs(fstream), qref = refs(qstream);
  for (int k = 0; k < model->num_units(); ++k) {
    LayerWeights w = model->load(k);
    model->forward(k, w, fref, nullptr, nullptr, nullptr);
    deploy_block(quant, model->unit(k), w, exec);
    model->forward(k, w, qref, &exec, nullptr, nullptr);
    r.blocks.push_back(compare(fstream, qstream));
    spdlog::info("eval: block {}/{} | rel_l2 {:.3g} cosine {:.6f} | {}", k + 1, model->num_units(),
                 r.blocks.back().rel_l2, r.blocks.back().cosine, seconds_since(start));
  }
  r.final_output = r.blocks.empty() ? DitError{} : r.blocks.back();
  return r;
}

}  // namespace lwq
