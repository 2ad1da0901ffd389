#include "runner/quant_runner.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <malloc.h>

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>

#include "data/calib_dataset.h"
#include "data/tokenizer.h"
#include "io/checkpoint.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"
#include "processors/linear_quantizer.h"
#include "quant/w8a8_export.h"
#include "runner/output_folder.h"
#include "runner/progress.h"
#include "runner/quant_plan.h"
#include "savers/ascendv1_saver.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/memory_stats.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

// One calibration prompt flowing through the layers.
struct CalibSample {
  std::vector<int32_t> positions;
  std::vector<float> hidden;  // [seq, hidden_size]
  int64_t seq() const { return static_cast<int64_t>(positions.size()); }
};

// Routes each Linear of a calibration forward to its quantizer, if it has
// one, and measures the quantized output against the float one for the
// quality report while the owning processor observes.
class CalibrationExecutor : public LinearExecutor {
 public:
  explicit CalibrationExecutor(const LayerWeights& weights) : weights_(weights) {}
  std::map<std::string, LinearQuantizer*> quantizers;  // by name relative to the layer
  std::set<std::string> observing;
  bool measure = true;  // compute the float reference for the quality report

  // Float Linears are computed from the layer a block of rows at a time too.
  bool needs_float_weight(const std::string&) const override { return false; }

  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float*, const float* bias,
           int64_t out, float* y) override {
    auto it = quantizers.find(name);
    if (it == quantizers.end()) {
      linear_from_layer(weights_, name + ".weight", x, rows, in, bias, out, y);
      return;
    }
    it->second->forward(x, rows, y);
    if (!measure || !observing.count(name)) return;
    std::vector<float> ref(static_cast<size_t>(rows * out));
    linear_from_layer(weights_, name + ".weight", x, rows, in, bias, out, ref.data());
    OutputErrorStats& stats = it->second->error_stats();
    stats.add(ref.data(), y, ref.size());
    stats.rows += rows;
  }

 private:
  const LayerWeights& weights_;
};

std::vector<CalibSample> prepare_calibration(const QuantJob& job, const ModelConfig& cfg, const Checkpoint& ckpt) {
  std::string name = job.calib_data.empty() ? job.config.dataset : job.calib_data;
  fs::path file = resolve_dataset_path(name, job.builtin_calib_dir);
  std::vector<std::string> prompts = load_calib_prompts(file);
  if (job.max_calib_samples > 0 && prompts.size() > static_cast<size_t>(job.max_calib_samples))
    prompts.resize(static_cast<size_t>(job.max_calib_samples));
  Tokenizer tokenizer = Tokenizer::load(job.model_path);
  EmbeddingTable embed = EmbeddingTable::load(ckpt, cfg);
  std::vector<CalibSample> samples;
  int64_t tokens = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    std::vector<int32_t> ids = tokenizer.encode_with_special(prompts[i]);
    if (ids.empty()) {
      spdlog::warn("calibration sample {} of {} encodes to no tokens; skipped", i, file.string());
      continue;
    }
    CalibSample s;
    s.positions.resize(ids.size());
    for (size_t p = 0; p < ids.size(); ++p) s.positions[p] = static_cast<int32_t>(p);
    s.hidden = embed.lookup(ids);
    tokens += s.seq();
    samples.push_back(std::move(s));
  }
  if (samples.empty()) fail("calibration dataset {} yields no tokens", file.string());
  spdlog::info("calibration: {} samples, {} tokens from {}", samples.size(), tokens, file.string());
  return samples;
}


class LayerWiseQuantizer {
 public:
  explicit LayerWiseQuantizer(const QuantJob& job)
      : job_(job),
        cfg_(load_model_config(job.model_path)),
        ckpt_(Checkpoint::open(job.model_path)),
        units_(build_units(job.config)),
        serving_dtype_(serving_dtype_of(cfg_.dtype)) {
    if (units_.empty()) spdlog::warn("spec.process is empty: every tensor is saved unquantized (FLOAT)");
  }

  QuantOutcome run() {
    OutputFolder folder(job_.save_path, job_.overwrite);
    int64_t part_size = job_.config.save.empty() ? 4 : job_.config.save.front().part_file_size;
    AscendV1Saver saver(folder.temp_path(), part_size, cfg_.dtype);
    warn_unknown_tensors();

    bool needs_data = false;
    for (const auto& u : units_) needs_data = needs_data || u.needs_data;
    if (needs_data) samples_ = prepare_calibration(job_, cfg_, ckpt_);
    else spdlog::info("data-free configuration: no calibration forward is run");

    const int n = cfg_.num_hidden_layers;
    bool model_wise = job_.config.runner == RunnerType::ModelWise;
    std::vector<LayerWeights> preloaded;
    if (model_wise) {
      spdlog::info("model_wise runner: loading all {} layers first", n);
      for (int k = 0; k < n; ++k) preloaded.push_back(load_layer_weights(ckpt_, cfg_, k));
    }
    LayerProgress progress(n);
    std::future<LayerWeights> next;
    auto load = [this](int k) { return load_layer_weights(ckpt_, cfg_, k); };
    if (!model_wise && job_.prefetch && n > 0) next = std::async(std::launch::async, load, 0);
    for (int k = 0; k < n; ++k) {
      LayerWeights weights;
      if (model_wise) weights = std::move(preloaded[static_cast<size_t>(k)]);
      else weights = next.valid() ? next.get() : load(k);
      // Layer k+1 is read while layer k is processed. A calibrated layer holds
      // its float and int8 weights during its forwards, so there the read
      // starts once the forwards are done and the float copies of quantized
      // Linears are freed: two whole layers are never resident besides int8 codes.
      auto prefetch_next = [&, k] {
        if (!model_wise && job_.prefetch && k + 1 < n) next = std::async(std::launch::async, load, k + 1);
      };
      if (samples_.empty()) prefetch_next();
      process_layer(k, weights, saver, prefetch_next);
      weights = LayerWeights();
      ::malloc_trim(0);  // hand freed layer buffers back to the OS so RSS tracks what is live
      const LayerReport& r = reports_.back();
      progress.layer_done(k, r.relative_l2 >= 0 ? fmt::format("output rel. L2 {:.4f}", r.relative_l2) : "");
    }
    save_non_layer_tensors(saver);
    SaveSummary summary = saver.finish(job_.model_path);
    write_report(folder.temp_path(), summary);
    if (!job_.practice_yaml.empty())
      write_text_file_atomic(folder.temp_path() / ((job_.model_type.empty() ? cfg_.model_type : job_.model_type) +
                                                   "_best_practice.yaml"),
                             job_.practice_yaml);
    for (const auto& warning : unmatched_pattern_warnings(units_)) spdlog::warn("{}", warning);
    folder.commit();

    QuantOutcome outcome;
    outcome.model_quant_type = summary.model_quant_type;
    outcome.tensors_written = summary.tensors;
    outcome.bytes_written = summary.bytes;
    outcome.wall_seconds = progress.elapsed_seconds();
    outcome.peak_rss_bytes = read_memory_stats().peak_rss_bytes;
    return outcome;
  }

 private:
  struct LinearReport {
    std::string name, type;
    double relative_l2, cosine;
  };
  struct LayerReport {
    int layer;
    std::string prefix;
    std::vector<LinearReport> linears;
    double relative_l2, cosine;  // layer output vs float layer on the same inputs; −1 if not measured
  };

  std::unique_ptr<LinearQuantizer> make_quantizer(const LayerWeights& weights, const LinearDesc& lin,
                                                 const std::string& full, const ProcessorConfig& owner) {
    const std::string weight = lin.name + ".weight";
    const int64_t in = lin.in_features;
    auto rows = [&weights, &weight, in](int64_t begin, int64_t end, float* dst) {
      weights.rows_f32(weight, begin, end, in, dst);
    };
    const float* bias = lin.has_bias ? weights.get(lin.name + ".bias").data() : nullptr;
    return std::make_unique<LinearQuantizer>(full, owner.qconfig, rows, bias, lin.out_features, in);
  }

  // `forwards_done` is called once the layer's calibration forwards are over.
  void process_layer(int k, LayerWeights& weights, AscendV1Saver& saver, const std::function<void()>& forwards_done) {
    LayerDesc desc = layer_desc(cfg_, k);
    LayerReport report{k, desc.prefix, {}, -1.0, -1.0};
    if (samples_.empty()) {
      save_layer_data_free(desc, weights, saver, report);
      reports_.push_back(std::move(report));
      return;
    }
    std::map<std::string, std::unique_ptr<LinearQuantizer>> quantizers;
    CalibrationExecutor exec(weights);
    exec.measure = job_.report;
    std::vector<std::vector<float>> outputs;
    for (auto& unit : units_) {
      exec.observing.clear();
      for (const auto& lin : desc.linears) {
        if (quantizers.count(lin.name)) continue;
        std::string full = desc.prefix + "." + lin.name;
        const ProcessorConfig* owner = unit.match(full);
        if (!owner) continue;
        auto q = make_quantizer(weights, lin, full, *owner);
        exec.quantizers[lin.name] = q.get();
        exec.observing.insert(lin.name);
        quantizers[lin.name] = std::move(q);
      }
      if (unit.needs_data) outputs = forward_all(k, weights, &exec);
      for (const auto& name : exec.observing) quantizers[name]->freeze();
    }
    if (!outputs.empty()) {
      if (job_.report) measure_layer(k, weights, outputs, report);
      for (size_t s = 0; s < samples_.size(); ++s) samples_[s].hidden = std::move(outputs[s]);
    }
    for (const auto& [name, q] : quantizers) {
      weights.stored.erase(name + ".weight");
      weights.tensors.erase(name + ".weight");
    }
    ::malloc_trim(0);
    forwards_done();
    save_layer(desc, quantizers, saver, report, weights);
    reports_.push_back(std::move(report));
  }

  // With no forward to run, each Linear is quantized right when it is saved
  // and its float weight dropped at once: the layer shrinks as it is written.
  void save_layer_data_free(const LayerDesc& desc, LayerWeights& weights, AscendV1Saver& saver, LayerReport& report) {
    std::map<std::string, std::unique_ptr<LinearQuantizer>> quantizers;
    for (const auto& lin : desc.linears) {
      std::string full = desc.prefix + "." + lin.name;
      for (auto& unit : units_)
        if (const ProcessorConfig* owner = unit.match(full)) {
          quantizers[lin.name] = nullptr;  // quantized lazily below
          owners_[lin.name] = owner;
          break;
        }
    }
    save_layer(desc, quantizers, saver, report, weights);
  }

  std::vector<std::vector<float>> forward_all(int k, const LayerWeights& weights, LinearExecutor* exec) {
    std::vector<std::vector<float>> outputs;
    outputs.reserve(samples_.size());
    for (const auto& s : samples_) {
      std::vector<float> h = s.hidden;
      decoder_layer_forward(cfg_, weights, k, h.data(), s.seq(), s.positions.data(), exec);
      outputs.push_back(std::move(h));
    }
    return outputs;
  }


  // The layer's quantized output against the float layer on the same inputs.
  void measure_layer(int k, const LayerWeights& weights, const std::vector<std::vector<float>>& quantized,
                     LayerReport& report) {
    OutputErrorStats total;
    for (size_t s = 0; s < samples_.size(); ++s) {
      std::vector<float> reference = samples_[s].hidden;
      decoder_layer_forward(cfg_, weights, k, reference.data(), samples_[s].seq(), samples_[s].positions.data());
      total.add(reference.data(), quantized[s].data(), reference.size());
    }
    report.relative_l2 = total.relative_l2();
    report.cosine = total.cosine();
  }

  // The checkpoint's own tensor (original dtype) for a FLOAT save, taken from
  // the loaded layer when it holds the same bytes, so nothing is read twice.
  Tensor original_tensor(LayerWeights& weights, const std::string& name, const std::string& full) {
    if (auto it = weights.stored.find(name); it != weights.stored.end()) {
      Tensor t = std::move(it->second);
      weights.stored.erase(it);
      return t;
    }
    const TensorInfo& info = ckpt_.info(full);
    if (info.dtype == DType::F32 && weights.tensors.count(name)) return tensor_f32(info.shape, weights.get(name));
    return ckpt_.read(full);
  }

  // Quantizers that are still null are built when their Linear is saved, and
  // the float weight is freed right after (data-free runs).
  void save_layer(const LayerDesc& desc, std::map<std::string, std::unique_ptr<LinearQuantizer>>& quantizers,
                  AscendV1Saver& saver, LayerReport& report, LayerWeights& weights) {
    std::map<std::string, const LinearDesc*> by_weight, by_bias;
    for (const auto& lin : desc.linears) {
      by_weight[lin.name + ".weight"] = &lin;
      if (lin.has_bias) by_bias[lin.name + ".bias"] = &lin;
    }
    for (const auto& t : desc.tensors) {
      std::string full = desc.prefix + "." + t.name;
      auto w = by_weight.find(t.name);
      const LinearDesc* lin = w != by_weight.end() ? w->second : nullptr;
      const LinearDesc* bias_of = by_bias.count(t.name) ? by_bias[t.name] : nullptr;
      if (bias_of && quantizers.count(bias_of->name)) continue;  // saved with its Linear
      if (lin && quantizers.count(lin->name)) {
        auto& slot = quantizers.at(lin->name);
        if (!slot) {
          slot = make_quantizer(weights, *lin, desc.prefix + "." + lin->name, *owners_.at(lin->name));
          weights.stored.erase(t.name);
        }
        LinearQuantizer& q = *slot;
        saver.save_linear(q.export_linear(serving_dtype_));
        const OutputErrorStats& e = q.error_stats();
        report.linears.push_back({q.name(), q.type(), e.rows ? e.relative_l2() : -1.0, e.rows ? e.cosine() : -1.0});
        slot.reset();
        continue;
      }
      if (lin) saver.note_float_linear();
      saver.save_float(full, original_tensor(weights, t.name, full));
    }
  }

  void save_non_layer_tensors(AscendV1Saver& saver) {
    for (const auto& t : non_layer_tensors(cfg_, ckpt_)) {
      if (ckpt_.contains(t.name)) {
        saver.save_float(t.name, ckpt_.read(t.name));
      } else if (t.name == "lm_head.weight") {
        // Tied head: serving engines look lm_head.weight up (spec §10 fact 16).
        saver.save_float(t.name, ckpt_.read("model.embed_tokens.weight"));
      } else {
        fail("tensor '{}' not found in checkpoint {}", t.name, job_.model_path.string());
      }
    }
  }

  // Tensors no descriptor claims (e.g. rotary inv_freq buffers) are not
  // exported, as msModelSlim exports parameters only.
  void warn_unknown_tensors() {
    std::set<std::string> known;
    for (const auto& t : non_layer_tensors(cfg_, ckpt_)) known.insert(t.name);
    for (int k = 0; k < cfg_.num_hidden_layers; ++k) {
      LayerDesc d = layer_desc(cfg_, k);
      for (const auto& t : d.tensors) known.insert(d.prefix + "." + t.name);
    }
    std::vector<std::string> unknown;
    for (const auto& name : ckpt_.tensor_names())
      if (!known.count(name)) unknown.push_back(name);
    if (!unknown.empty())
      spdlog::warn("{} checkpoint tensor(s) belong to no known module and are not exported, e.g. '{}'",
                   unknown.size(), unknown.front());
  }

  void write_report(const fs::path& dir, const SaveSummary& summary) {
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const auto& r : reports_) {
      nlohmann::ordered_json linears = nlohmann::ordered_json::array();
      for (const auto& l : r.linears) {
        nlohmann::ordered_json j = {{"name", l.name}, {"type", l.type}};
        if (l.relative_l2 >= 0) {
          j["relative_l2"] = l.relative_l2;
          j["cosine"] = l.cosine;
        }
        linears.push_back(j);
      }
      nlohmann::ordered_json j = {{"layer", r.layer}, {"name", r.prefix}};
      if (r.relative_l2 >= 0) {
        j["relative_l2"] = r.relative_l2;
        j["cosine"] = r.cosine;
      }
      j["linears"] = linears;
      layers.push_back(j);
    }
    nlohmann::ordered_json doc = {{"model_quant_type", summary.model_quant_type},
                                  {"calibration_samples", samples_.size()},
                                  {"measured", !samples_.empty() && job_.report},
                                  {"layers", layers}};
    write_text_file_atomic(dir / "quant_report.json", doc.dump(2));
    log_worst_layers();
  }

  void log_worst_layers() {
    std::vector<const LayerReport*> measured;
    for (const auto& r : reports_)
      if (r.relative_l2 >= 0) measured.push_back(&r);
    if (measured.empty()) {
      spdlog::info("quality report: not measured ({})", job_.report ? "data-free configuration runs no calibration forward"
                                                                    : "--no_report");
      return;
    }
    std::sort(measured.begin(), measured.end(),
              [](const LayerReport* a, const LayerReport* b) { return a->relative_l2 > b->relative_l2; });
    spdlog::info("worst layers by relative L2 error of their output (quant_report.json has every Linear):");
    for (size_t i = 0; i < std::min<size_t>(5, measured.size()); ++i)
      spdlog::info("  {}: relative L2 {:.4f}, cosine {:.6f}", measured[i]->prefix, measured[i]->relative_l2,
                   measured[i]->cosine);
  }

  const QuantJob& job_;
  ModelConfig cfg_;
  Checkpoint ckpt_;
  std::vector<ProcessingUnit> units_;
  DType serving_dtype_;
  std::vector<CalibSample> samples_;
  std::vector<LayerReport> reports_;
  std::map<std::string, const ProcessorConfig*> owners_;  // data-free path: Linear → owning processor
};

}  // namespace

QuantOutcome run_quantization(const QuantJob& job) { return LayerWiseQuantizer(job).run(); }

}  // namespace lwq
