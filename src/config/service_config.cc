// parse_service_config: a modelslim_v1 practice YAML → ServiceConfig.
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string_view>

#include "config/quant_config.h"
#include "config/quant_schemes.h"
#include "config/yaml_view.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

constexpr size_t kMaxProcessors = 10000;
constexpr int kMaxGroupDepth = 16;
constexpr size_t kMaxDatasetChars = 4096;

using Names = std::vector<std::string_view>;

const Names kApiVersions = {"modelslim_v1", "multimodal_vlm_modelslim_v1", "multimodal_sd_modelslim_v1"};
const Names kOtherApiVersions = {"modelslim_v0", "modelslim_convert"};
const Names kSupportedProcessors = {"linear_quant", "group"};
// Outlier suppression (spec §1.6): run by the layer-wise runner (smoothing as data-requiring units, quarot at load).
const Names kOutlierProcessors = {"iter_smooth", "smooth_quant", "flex_smooth_quant", "quarot"};
const Names kSubgraphTypes = {"norm-linear", "linear-linear", "ov", "up-down"};
// msModelSlim processor types (spec §1.6) that lwquant does not run yet.
const Names kUnsupportedProcessors = {
    "flex_awq_ssz", "awq", "kv_smooth",
    "online_quarot", "adapt_rotation", "dynamic_cache", "fa3_quant", "autoround_quant", "flatquant", "svd_res",
    "float_sparse", "unary_analysis", "binary_analysis", "binary_operator_layer_wise",
    "binary_operator_model_wise", "load", "saver", "module_func"};
const Names kSavers = {"ascendv1_saver", "mindie_format_saver"};
const Names kUnsupportedSavers = {"compressed_tensors", "ascendv1_saver_distributed"};
// Wan2.1's generate.py arguments msModelSlim's adapter accepts in
// multimodal_sd_config.model_config / inference_config (others are an error there too).
const Names kWanInferenceKeys = {
    "task", "size", "frame_num", "ckpt_dir", "offload_model", "cfg_size", "ulysses_size", "ring_size", "tp_size",
    "t5_fsdp", "t5_cpu", "dit_fsdp", "vae_parallel", "save_file", "prompt", "use_prompt_extend",
    "prompt_extend_method", "prompt_extend_model", "prompt_extend_target_lang", "base_seed", "image",
    "sample_solver", "sample_steps", "sample_shift", "sample_guide_scale", "use_attentioncache",
    "attentioncache_ratio", "attentioncache_interval", "start_step", "end_step"};
const Names kRunners = {"auto", "layer_wise", "model_wise", "dp_layer_wise"};

std::string join(const Names& names) {
  std::string out;
  for (auto n : names) out += fmt::format("{}{}", out.empty() ? "" : ", ", n);
  return out;
}

bool contains(const Names& names, std::string_view s) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

const YamlEntry* find(const std::vector<YamlEntry>& entries, std::string_view key) {
  for (const auto& e : entries)
    if (e.key == key) return &e;
  return nullptr;
}

class Parser {
 public:
  Parser(const std::string& source, ServiceConfig& out, const ServiceConfigOptions& opts)
      : ctx_{source, &out.warnings}, out_(out), opts_(opts) {}

  void root(const YamlNode& doc) {
    if (!doc.is_map())
      fail("{}: expected a mapping with 'apiversion' and 'spec' at the top level", ctx_.source);
    auto entries = map_entries(ctx_, doc, "<top level>");
    const YamlEntry* api = find(entries, "apiversion");
    if (!api) fail("{}: missing 'apiversion' (lwquant supports {})", ctx_.source, join(kApiVersions));
    apiversion(*api);
    if (const YamlEntry* m = find(entries, "metadata")) metadata(m->value, "metadata");
    // Other top-level keys are allowed silently: practices park YAML anchors there.
    if (const YamlEntry* s = find(entries, "spec")) {
      spec(s->value, "spec");
    } else {
      ctx_.warn_at(doc, "spec", "no 'spec': nothing will be quantized or saved");
    }
  }

 private:
  void apiversion(const YamlEntry& e) {
    std::string v = read_string(ctx_, e.value, "apiversion");
    if (contains(kApiVersions, v)) {
      out_.apiversion = v;
      return;
    }
    if (contains(kOtherApiVersions, v))
      ctx_.fail_at(e.value, "apiversion",
                   fmt::format("'{}' is an msModelSlim service lwquant does not implement; lwquant supports {}", v,
                               join(kApiVersions)));
    ctx_.fail_at(e.value, "apiversion",
                 fmt::format("unknown value '{}' (valid: {}; msModelSlim also knows {})", v, join(kApiVersions),
                             join(kOtherApiVersions)));
  }

  bool multimodal() const { return out_.apiversion != "modelslim_v1"; }
  bool sd() const { return out_.apiversion == "multimodal_sd_modelslim_v1"; }
  bool vlm() const { return out_.apiversion == "multimodal_vlm_modelslim_v1"; }

  void unknown_key(const YamlEntry& e, const std::string& path) {
    ctx_.warn_at(e.key_node, path,
                 fmt::format("unknown key '{}' is ignored (msModelSlim ignores it silently; check the spelling)",
                             e.key));
  }

  void metadata(const YamlNode& n, const std::string& path) {
    PracticeMetadata& m = out_.metadata;
    for (const auto& e : map_entries(ctx_, n, path)) {
      std::string p = path + "." + e.key;
      if (e.key == "config_id") {
        m.config_id = read_string(ctx_, e.value, p);
      } else if (e.key == "score") {
        m.score = read_float(ctx_, e.value, p);
        if (m.score < 0) ctx_.fail_at(e.value, p, "must be >= 0");
      } else if (e.key == "label") {
        label(e.value, p);
      } else if (e.key == "verified_model_types") {
        m.verified_model_types = read_string_list(ctx_, e.value, p);
      } else if (e.key == "verified_tags") {
        for (const auto& t : map_entries(ctx_, e.value, p)) {
          std::string tp = p + "." + t.key;
          if (!t.value.is_sequence()) ctx_.fail_at(t.value, tp, "expected a list of tag lists");
          auto& scenarios = m.verified_tags[t.key];
          size_t i = 0;
          for (const auto& s : t.value) scenarios.push_back(read_string_list(ctx_, s, fmt::format("{}[{}]", tp, i++)));
        }
      }
      // Other metadata keys are not read by msModelSlim either.
    }
  }

  void label(const YamlNode& n, const std::string& path) {
    PracticeLabel& l = out_.metadata.label;
    for (const auto& e : map_entries(ctx_, n, path)) {
      std::string p = path + "." + e.key;
      if (e.key == "w_bit") l.w_bit = read_int(ctx_, e.value, p);
      if (e.key == "a_bit") l.a_bit = read_int(ctx_, e.value, p);
      if (e.key == "fa_bit") l.fa_bit = read_int(ctx_, e.value, p);
      if (e.key == "is_sparse") l.is_sparse = read_bool(ctx_, e.value, p);
      if (e.key == "kv_cache") l.kv_cache = read_bool(ctx_, e.value, p);
      if (e.key == "fa_quant") l.fa_quant = read_bool(ctx_, e.value, p);
    }
  }

  void spec(const YamlNode& n, const std::string& path) {
    if (is_null_scalar(n)) ctx_.fail_at(n, path, "expected a mapping (runner, process, save, dataset), got null");
    const YamlNode* process_node = nullptr;
    const YamlNode* save_node = nullptr;
    auto entries = map_entries(ctx_, n, path);
    for (const auto& e : entries) {
      std::string p = path + "." + e.key;
      if (e.key == "runner") {
        runner(e.value, p);
      } else if (e.key == "prior") {
        if (!e.value.is_sequence()) ctx_.fail_at(e.value, p, "expected a list of stages");
        if (e.value.size() > 0 && vlm())
          ctx_.warn_at(e.value, p, "prior stages are accepted but not run, as msModelSlim's "
                                   "multimodal_vlm_modelslim_v1 service does (spec §1.10)");
        else if (e.value.size() > 0)
          ctx_.fail_at(e.value, p, "prior stages are not supported by lwquant yet; move their processors into "
                                   "spec.process");
      } else if (e.key == "default_text" && vlm()) {
        out_.default_text = read_string(ctx_, e.value, p);
      } else if (e.key == "multimodal_sd_config" && sd()) {
        multimodal_sd_config(e.value, p);
      } else if (e.key == "process") {
        if (!e.value.is_sequence()) ctx_.fail_at(e.value, p, "expected a list of processors");
        size_t i = 0;
        for (const auto& item : e.value) out_.process.push_back(processor(item, fmt::format("{}[{}]", p, i++), 0));
        process_node = &e.value;
      } else if (e.key == "save") {
        if (!e.value.is_sequence()) ctx_.fail_at(e.value, p, "expected a list of save formats");
        size_t i = 0;
        for (const auto& item : e.value) out_.save.push_back(saver(item, fmt::format("{}[{}]", p, i++)));
        save_node = &e.value;
      } else if (e.key == "dataset") {
        dataset(e.value, p);
      } else {
        unknown_key(e, path);
      }
    }
    if (out_.process.empty())
      ctx_.warn_at(process_node ? *process_node : n, path + ".process", "no processors: nothing will be quantized");
    if (out_.save.empty())
      ctx_.warn_at(save_node ? *save_node : n, path + ".save", "no save formats: nothing will be written");
    if (sd() && !out_.multimodal_sd) out_.multimodal_sd = MultimodalSdConfig{};
    if (multimodal()) out_.runner = RunnerType::LayerWise;  // forced, spec §1.2
    check_savers(save_node ? *save_node : n, path + ".save");
  }

  // Savers that would write the same files, and Linear types a saver of the
  // list cannot store (spec §3.10: mindie_format_saver), refused at load.
  void check_savers(const YamlNode& n, const std::string& path) {
    for (size_t i = 0; i < out_.save.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (out_.save[i].type == out_.save[j].type)
          ctx_.fail_at(n, path, fmt::format("{} and {} are both '{}': they would write the same files",
                                            out_.save[j].yaml_path, out_.save[i].yaml_path, out_.save[i].type));
    for (const auto& s : out_.save) {
      if (s.type != "mindie_format_saver") continue;
      for (const auto& p : out_.process) check_mindie_storable(p, s, n, path);
    }
  }

  void check_mindie_storable(const ProcessorConfig& p, const SaverConfig& s, const YamlNode& n,
                             const std::string& path) {
    for (const auto& c : p.configs) check_mindie_storable(c, s, n, path);
    if (p.type == "quarot" && p.quarot.online)
      ctx_.fail_at(n, path,
                   fmt::format("{} ({}) cannot store the online rotations of the quarot processor {} (MindIE-SD "
                               "reads no rotation tensors); set its online: false or use ascendv1_saver",
                               s.yaml_path, s.type, p.yaml_path));
    if (p.type == "quarot" && p.quarot.export_extra_info)
      ctx_.fail_at(n, path, fmt::format("{} cannot store the extra information of the quarot processor {} "
                                        "(spec §3.10); set its export_extra_info: false or use ascendv1_saver",
                                        s.yaml_path, p.yaml_path));
    if (p.type != "linear_quant") return;
    const std::string type = export_type_of(p.qconfig);
    if (!mindie_format_accepts(type, p.qconfig.weight.scope == QScope::PerGroup))
      ctx_.fail_at(n, path, fmt::format("{} ({}) cannot store the {}{} Linears of processor {}: it writes FLOAT, "
                                        "W8A8, per-channel W8A8_DYNAMIC, W8A8_MXFP8 and W4A4_MXFP4 only; "
                                        "use ascendv1_saver instead",
                                        s.yaml_path, s.type, type,
                                        p.qconfig.weight.scope == QScope::PerGroup ? " per-group" : "", p.yaml_path));
  }

  // spec.multimodal_sd_config (msModelSlim's MultimodalSDConfig): dump_config
  // and the pipeline's inference arguments under inference_config or the
  // legacy model_config, never both.
  void multimodal_sd_config(const YamlNode& n, const std::string& path) {
    MultimodalSdConfig c;
    for (const auto& e : map_entries(ctx_, n, path)) {
      std::string p = path + "." + e.key;
      if (e.key == "dump_config") {
        for (const auto& d : map_entries(ctx_, e.value, p)) {
          std::string dp = p + "." + d.key;
          if (d.key == "enable_dump") {
            c.enable_dump = read_bool(ctx_, d.value, dp);
          } else if (d.key == "capture_mode") {
            c.capture_mode = read_string(ctx_, d.value, dp);
            if (c.capture_mode != "args")
              ctx_.fail_at(d.value, dp, fmt::format("invalid value '{}' (allowed: args)", c.capture_mode));
          } else if (d.key == "dump_data_dir") {
            c.dump_data_dir = read_string(ctx_, d.value, dp);
          } else {
            unknown_key(d, p);
          }
        }
      } else if (e.key == "inference_config" || e.key == "model_config") {
        if (!c.inference_key.empty())
          ctx_.fail_at(e.key_node, p, "inference_config and model_config are mutually exclusive; keep only one");
        if (is_null_scalar(e.value) && e.key == "inference_config") continue;
        if (!e.value.is_map()) ctx_.fail_at(e.value, p, "expected a mapping of inference arguments");
        c.inference_key = e.key;
        for (const auto& a : map_entries(ctx_, e.value, p))
          if (!contains(kWanInferenceKeys, a.key))
            ctx_.fail_at(a.key_node, p + "." + a.key,
                         fmt::format("unknown inference argument '{}' (msModelSlim's Wan2.1 adapter accepts {})",
                                     a.key, join(kWanInferenceKeys)));
        c.inference = yaml_to_json(ctx_, e.value, p);
      } else {
        unknown_key(e, path);
      }
    }
    out_.multimodal_sd = std::move(c);
  }

  void runner(const YamlNode& n, const std::string& path) {
    std::string v = read_string(ctx_, n, path);
    if (v == "auto") out_.runner = RunnerType::Auto;
    else if (v == "layer_wise") out_.runner = RunnerType::LayerWise;
    else if (v == "model_wise") out_.runner = RunnerType::ModelWise;
    else if (v == "dp_layer_wise") out_.runner = RunnerType::DpLayerWise;
    else ctx_.fail_at(n, path, fmt::format("invalid value '{}' (allowed: {})", v, join(kRunners)));
    if (multimodal() && out_.runner != RunnerType::LayerWise && out_.runner != RunnerType::Auto)
      ctx_.warn_at(n, path, fmt::format("{} always runs layer_wise (as msModelSlim does); '{}' is ignored",
                                        out_.apiversion, v));
    if (multimodal()) out_.runner = RunnerType::LayerWise;
  }

  void dataset(const YamlNode& n, const std::string& path) {
    std::string v = read_string(ctx_, n, path);
    if (v.empty()) ctx_.fail_at(n, path, "must not be empty");
    if (v.size() > kMaxDatasetChars)
      ctx_.fail_at(n, path, fmt::format("is {} characters long (at most {})", v.size(), kMaxDatasetChars));
    out_.dataset = v;
  }

  ProcessorConfig processor(const YamlNode& n, const std::string& path, int depth) {
    if (++n_processors_ > kMaxProcessors)
      ctx_.fail_at(n, path, fmt::format("more than {} processors (alias expansion?)", kMaxProcessors));
    if (depth > kMaxGroupDepth) ctx_.fail_at(n, path, "groups nested too deeply");
    if (!n.is_map()) ctx_.fail_at(n, path, "expected a processor mapping with a 'type'");
    auto entries = map_entries(ctx_, n, path);
    const YamlEntry* t = find(entries, "type");
    if (!t) ctx_.fail_at(n, path, fmt::format("missing 'type' (supported: {})", supported()));
    ProcessorConfig p;
    p.type = read_string(ctx_, t->value, path + ".type");
    p.yaml_path = path;
    if (p.type == "linear_quant") {
      linear_quant(p, n, entries, path);
      seen_linear_quant_ = true;
    } else if (p.type == "group") {
      group(p, n, entries, path, depth);
    } else if (contains(kOutlierProcessors, p.type)) {
      if (depth > 0)
        ctx_.fail_at(t->value, path + ".type",
                     fmt::format("'{}' inside a group is not supported by lwquant; make it a top-level processor "
                                 "before the linear_quant processors",
                                 p.type));
      if (seen_linear_quant_)
        ctx_.fail_at(t->value, path + ".type",
                     fmt::format("'{}' after a linear_quant would transform weights that are already quantized; "
                                 "put it before every linear_quant",
                                 p.type));
      if (p.type == "quarot") quarot(p, entries, path);
      else smoothing(p, entries, path);
    } else if (contains(kUnsupportedProcessors, p.type)) {
      ctx_.fail_at(t->value, path + ".type",
                   fmt::format("processor type '{}' is not supported by lwquant yet (supported: {})", p.type,
                               supported()));
    } else {
      ctx_.fail_at(t->value, path + ".type",
                   fmt::format("unknown processor type '{}' (valid: {}; msModelSlim also defines {})", p.type,
                               supported(), join(kUnsupportedProcessors)));
    }
    return p;
  }

  void linear_quant(ProcessorConfig& p, const YamlNode& n, const std::vector<YamlEntry>& entries,
                    const std::string& path) {
    const YamlEntry* q = find(entries, "qconfig");
    if (!q) ctx_.fail_at(n, path, "linear_quant needs a 'qconfig' with at least 'weight'");
    for (const auto& e : entries) {
      std::string ep = path + "." + e.key;
      if (e.key == "type") continue;
      if (e.key == "qconfig") p.qconfig = linear_qconfig(e.value, ep);
      else if (e.key == "include") p.include = read_string_list(ctx_, e.value, ep);
      else if (e.key == "exclude") p.exclude = read_string_list(ctx_, e.value, ep);
      else unknown_key(e, path);
    }
    if (p.include.empty()) ctx_.warn_at(n, path + ".include", "empty include list: this processor selects nothing");
  }

  std::string supported() const {
    Names n = kSupportedProcessors;
    n.insert(n.end(), kOutlierProcessors.begin(), kOutlierProcessors.end());
    return join(n);
  }

  // A value in [0, 1], or null (nullopt).
  std::optional<double> unit_interval(const YamlNode& v, const std::string& path) {
    if (is_null_scalar(v)) return std::nullopt;
    double x = read_float(ctx_, v, path);
    if (!(x >= 0.0 && x <= 1.0)) ctx_.fail_at(v, path, fmt::format("must be in [0, 1], got {}", x));
    return x;
  }

  std::vector<std::string> pattern_list(const YamlNode& v, const std::string& path, bool include) {
    if (is_null_scalar(v)) return include ? std::vector<std::string>{"*"} : std::vector<std::string>{};
    return read_string_list(ctx_, v, path);
  }

  // iter_smooth, smooth_quant, flex_smooth_quant (spec §1.6).
  void smoothing(ProcessorConfig& p, const std::vector<YamlEntry>& entries, const std::string& path) {
    SmoothProcessorConfig& c = p.smooth;
    const bool iter = p.type == "iter_smooth", sq = p.type == "smooth_quant", flex = p.type == "flex_smooth_quant";
    c.alpha = iter ? std::optional<double>(0.9) : sq ? std::optional<double>(0.5) : std::nullopt;
    if (sq) c.enable_subgraph_type = {"norm-linear"};
    for (const auto& e : entries) {
      std::string ep = path + "." + e.key;
      if (e.key == "type") continue;
      if (e.key == "alpha") {
        c.alpha = unit_interval(e.value, ep);
        if (!c.alpha && !flex) ctx_.fail_at(e.value, ep, "must be a number in [0, 1] (null only for flex_smooth_quant)");
      } else if (e.key == "beta" && flex) {
        c.beta = unit_interval(e.value, ep);
      } else if (e.key == "scale_min" && iter) {
        c.scale_min = read_float(ctx_, e.value, ep);
        if (!(c.scale_min > 0)) ctx_.fail_at(e.value, ep, fmt::format("must be > 0, got {}", c.scale_min));
      } else if (e.key == "symmetric" && !flex) {
        c.symmetric = read_bool(ctx_, e.value, ep);
      } else if (e.key == "enable_subgraph_type" && !sq) {
        if (!e.value.is_sequence()) ctx_.fail_at(e.value, ep, "expected a list of subgraph types");
        c.enable_subgraph_type.clear();
        size_t i = 0;
        for (const auto& item : e.value) {
          std::string ip = fmt::format("{}[{}]", ep, i++);
          std::string t = read_string(ctx_, item, ip);
          if (!contains(kSubgraphTypes, t))
            ctx_.fail_at(item, ip, fmt::format("unknown subgraph type '{}' (allowed: {})", t, join(kSubgraphTypes)));
          c.enable_subgraph_type.push_back(t);
        }
      } else if (e.key == "include") {
        p.include = pattern_list(e.value, ep, true);
      } else if (e.key == "exclude") {
        p.exclude = pattern_list(e.value, ep, false);
      } else {
        unknown_key(e, path);
      }
    }
  }

  void quarot(ProcessorConfig& p, const std::vector<YamlEntry>& entries, const std::string& path) {
    QuarotProcessorConfig& c = p.quarot;
    auto pow2 = [](int64_t v) { return v > 0 && (v & (v - 1)) == 0; };
    for (const auto& e : entries) {
      std::string ep = path + "." + e.key;
      if (e.key == "type") continue;
      if (e.key == "online") {
        c.online = read_bool(ctx_, e.value, ep);
      } else if (e.key == "block_size") {
        c.block_size = read_int(ctx_, e.value, ep);
        if (c.block_size != -1 && !pow2(c.block_size))
          ctx_.fail_at(e.value, ep, fmt::format("must be -1 or a positive power of two, got {}", c.block_size));
      } else if (e.key == "down_proj_online_layers") {
        if (!is_null_scalar(e.value)) {
          if (!e.value.is_sequence()) ctx_.fail_at(e.value, ep, "expected a list of layer indices");
          size_t i = 0;
          for (const auto& item : e.value) {
            const std::string ip = fmt::format("{}[{}]", ep, i++);
            const int64_t k = read_int(ctx_, item, ip);
            if (k < 0) ctx_.fail_at(item, ip, fmt::format("must be a layer index >= 0, got {}", k));
            c.down_proj_online_layers.push_back(k);
          }
        }
      } else if (e.key == "max_tp_size") {
        c.max_tp_size = read_int(ctx_, e.value, ep);
        if (!pow2(c.max_tp_size))
          ctx_.fail_at(e.value, ep, fmt::format("must be a power of two >= 1, got {}", c.max_tp_size));
      } else if (e.key == "export_extra_info") {
        c.export_extra_info = read_bool(ctx_, e.value, ep);
      } else {
        unknown_key(e, path);
      }
    }
    // msModelSlim ignores the list without online; a user who lists layers wants them rotated.
    if (!c.online && !c.down_proj_online_layers.empty())
      ctx_.fail_at(find(entries, "down_proj_online_layers")->value, path + ".down_proj_online_layers",
                   "down_proj's online rotation needs online: true");
  }

  void group(ProcessorConfig& p, const YamlNode& n, const std::vector<YamlEntry>& entries,
             const std::string& path, int depth) {
    const YamlEntry* c = find(entries, "configs");
    if (!c) ctx_.fail_at(n, path, "group needs 'configs': a list of processors");
    for (const auto& e : entries) {
      if (e.key != "type" && e.key != "configs") unknown_key(e, path);
    }
    std::string cp = path + ".configs";
    if (!c->value.is_sequence()) ctx_.fail_at(c->value, cp, "expected a list of processors");
    size_t i = 0;
    for (const auto& item : c->value) p.configs.push_back(processor(item, fmt::format("{}[{}]", cp, i++), depth + 1));
    if (p.configs.empty()) ctx_.warn_at(c->value, cp, "empty group: it does nothing");
  }

  LinearQConfig linear_qconfig(const YamlNode& n, const std::string& path) {
    auto entries = map_entries(ctx_, n, path);
    LinearQConfig q;
    const YamlEntry* w = find(entries, "weight");
    if (!w) ctx_.fail_at(n, path, "missing required key 'weight'");
    for (const auto& e : entries) {
      std::string ep = path + "." + e.key;
      if (e.key == "act") q.act = qconfig(e.value, ep);
      else if (e.key == "weight") q.weight = qconfig(e.value, ep);
      else unknown_key(e, path);
    }
    std::string where = ctx_.where(n, path);
    check_supported(q, where);
    if (auto warning = portability_warning(q)) ctx_.warn_at(n, path, *warning);
    return q;
  }

  QConfig qconfig(const YamlNode& n, const std::string& path) {
    if (!n.is_map()) ctx_.fail_at(n, path, "expected a mapping with dtype, scope, symmetric and method");
    auto entries = map_entries(ctx_, n, path);
    for (const char* key : {"dtype", "scope", "symmetric", "method"}) {
      if (!find(entries, key))
        ctx_.fail_at(n, path, fmt::format("missing required key '{}' (msModelSlim requires dtype, scope, "
                                          "symmetric and method in every qconfig)",
                                          key));
    }
    QConfig q;
    for (const auto& e : entries) {
      std::string ep = path + "." + e.key;
      if (e.key == "dtype") {
        std::string v = read_string(ctx_, e.value, ep);
        auto d = parse_qdtype(v);
        if (!d) ctx_.fail_at(e.value, ep, fmt::format("invalid value '{}' (allowed: {})", v, qdtype_names()));
        q.dtype = *d;
      } else if (e.key == "scope") {
        std::string v = read_string(ctx_, e.value, ep);
        auto s = parse_qscope(v);
        if (!s) ctx_.fail_at(e.value, ep, fmt::format("invalid value '{}' (allowed: {})", v, qscope_names()));
        q.scope = *s;
      } else if (e.key == "symmetric") {
        q.symmetric = read_bool(ctx_, e.value, ep);
      } else if (e.key == "method") {
        q.method = read_string(ctx_, e.value, ep);
      } else if (e.key == "ext") {
        if (!e.value.is_map()) ctx_.fail_at(e.value, ep, "expected a mapping");
        q.ext = yaml_to_json(ctx_, e.value, ep);
      } else {
        unknown_key(e, path);
      }
    }
    return q;
  }

  SaverConfig saver(const YamlNode& n, const std::string& path) {
    if (!n.is_map()) ctx_.fail_at(n, path, "expected a save-format mapping with a 'type'");
    auto entries = map_entries(ctx_, n, path);
    const YamlEntry* t = find(entries, "type");
    if (!t) ctx_.fail_at(n, path, fmt::format("missing 'type' (supported: {})", join(kSavers)));
    SaverConfig s;
    s.type = read_string(ctx_, t->value, path + ".type");
    s.yaml_path = path;
    if (contains(kUnsupportedSavers, s.type))
      ctx_.fail_at(t->value, path + ".type",
                   fmt::format("save type '{}' is not supported by lwquant yet (supported: {})", s.type,
                               join(kSavers)));
    if (!contains(kSavers, s.type))
      ctx_.fail_at(t->value, path + ".type",
                   fmt::format("unknown save type '{}' (valid: {}; msModelSlim also defines {})", s.type,
                               join(kSavers), join(kUnsupportedSavers)));
    for (const auto& e : entries) {
      std::string ep = path + "." + e.key;
      if (e.key == "type") continue;
      if (e.key == "part_file_size") {
        s.part_file_size = read_int(ctx_, e.value, ep);
        if (s.part_file_size < 0)
          ctx_.fail_at(e.value, ep, fmt::format("must be >= 0 (GiB per shard, 0 = one file), got {}",
                                                s.part_file_size));
      } else if (e.key == "ext") {
        if (!e.value.is_map()) ctx_.fail_at(e.value, ep, "expected a mapping");
      } else if (e.key == "save_directory") {
        ctx_.warn_at(e.key_node, path, "'save_directory' is ignored: the output folder comes from --save_path");
      } else {
        unknown_key(e, path);
      }
    }
    return s;
  }

  YamlContext ctx_;
  ServiceConfig& out_;
  ServiceConfigOptions opts_;
  size_t n_processors_ = 0;
  bool seen_linear_quant_ = false;
};

}  // namespace

ServiceConfig parse_service_config(const std::string& yaml_text, const std::string& source_name,
                                   const ServiceConfigOptions& options) {
  auto docs = load_yaml_documents(yaml_text, source_name);
  if (docs.empty() || (docs.size() == 1 && docs[0].is_null()))
    fail("{}: empty document, expected a mapping with 'apiversion' and 'spec'", source_name);
  if (docs.size() > 1) fail("{}: holds {} YAML documents, expected one", source_name, docs.size());
  ServiceConfig out;
  Parser parser(source_name, out, options);
  parser.root(docs[0]);
  return out;
}

ServiceConfig load_service_config(const std::filesystem::path& yaml_file, const ServiceConfigOptions& options) {
  return parse_service_config(read_text_file(yaml_file), yaml_file.string(), options);
}

bool processor_is_data_free(const ProcessorConfig& p) {
  if (p.type == "group") {
    for (const auto& c : p.configs)
      if (!processor_is_data_free(c)) return false;
    return true;
  }
  if (p.type == "quarot") return true;
  if (p.is_smoothing()) return false;
  return is_data_free(p.qconfig);
}

}  // namespace lwq
