#include "eval/evaluator.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "data/tokenizer.h"
#include "eval/deployed_executor.h"
#include "eval/quantized_folder.h"
#include "io/checkpoint.h"
#include "io/json_strict.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"
#include "models/perplexity.h"
#include "models/qwen3_vl_moe_model.h"
#include "models/qwen3_vl_vision.h"
#include "models/unit_model.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

using Json = nlohmann::ordered_json;

std::string brief(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// The config.json fields serving engines build the model from (ascend_loaders.md
// §1: model_type, architectures, shapes, dtype, rope, norms). A null value
// counts as absent, as in transformers.
const std::vector<std::string> kEngineConfigKeys = {
    "model_type",        "architectures",         "hidden_size",         "intermediate_size",
    "num_hidden_layers", "num_attention_heads",   "num_key_value_heads", "head_dim",
    "vocab_size",        "tie_word_embeddings",   "torch_dtype",         "dtype",
    "hidden_act",        "rms_norm_eps",          "rope_theta",          "rope_scaling",
    "rope_parameters",   "partial_rotary_factor", "max_position_embeddings", "attention_bias",
    "mlp_bias",          "sliding_window",        "use_sliding_window",  "max_window_layers",
    "layer_types",       "num_experts",           "num_local_experts",   "n_routed_experts",
    "moe_intermediate_size", "num_experts_per_tok", "text_config"};

// The quantized folder's config.json must describe the float model: engines
// build the served model from it, eval from the float one.
void check_config_matches(const QuantizedFolder& q, const ModelConfig& cfg) {
  const std::string fwhere = cfg.source.string();
  const std::string qwhere = (q.dir() / "config.json").string();
  const Json fconfig = parse_json_strict(read_text_file(cfg.source), fwhere);
  auto compare = [&](const Json& qobj, const Json& fobj, const std::string& scope) {
    for (const auto& key : kEngineConfigKeys) {
      const Json* qv = qobj.contains(key) && !qobj.at(key).is_null() ? &qobj.at(key) : nullptr;
      const Json* fv = fobj.contains(key) && !fobj.at(key).is_null() ? &fobj.at(key) : nullptr;
      if (!qv && !fv) continue;
      if (key == "text_config" && qv && fv && qv->is_object() && fv->is_object()) continue;  // compared below
      if (qv && fv && *qv == *fv) continue;
      // A tied model rotated by quarot is written untied (its head is no longer the embedding).
      if (key == "tie_word_embeddings" && qv && fv && *qv == false && *fv == true) continue;
      fail("{}: '{}{}' is {} but the float model's {} has {} (engines build the served model from the quantized "
           "folder's config.json)",
           qwhere, scope, key, qv ? brief(*qv) : "absent", fwhere, fv ? brief(*fv) : "absent");
    }
  };
  if (!fconfig.is_object()) fail("{}: expected a JSON object", fwhere);
  compare(q.config(), fconfig, "");
  if (q.config().contains("text_config") && q.config().at("text_config").is_object() &&
      fconfig.contains("text_config") && fconfig.at("text_config").is_object())
    compare(q.config().at("text_config"), fconfig.at("text_config"), "text_config.");
}

// Serving engines load a MoE layer's routed experts as one fused kernel whose
// type is expert 0's: every expert Linear of the layer must share it
// (ascend_loaders.md §10 rule 5); FLOAT ones are checked like other tensors.
void check_routed_experts(const QuantizedFolder& q, const LayerDesc& desc) {
  std::string first, first_type;
  for (const auto& lin : desc.linears) {
    if (lin.expert < 0) continue;
    const std::string prefix = desc.prefix + "." + lin.name;
    const std::string type = q.linear_type(prefix);
    if (first.empty()) first = prefix, first_type = type;
    else if (type != first_type)
      fail("routed expert Linears '{}' ({}) and '{}' ({}) differ: serving engines give every expert of a MoE layer "
           "expert 0's type (ascend_loaders.md §10 rule 5)", first, first_type, prefix, type);
    if (type == "FLOAT") check_float_tensor(q, prefix + ".weight", {lin.out_features, lin.in_features});
  }
}

// One unit (decoder layer, vision tower) against its float descriptor:
// quantized Linears' shapes, bias presence and parameter values (no weights
// read), and FLOAT tensors' tags and shapes. Returns the quantized Linears'
// parameters by relative name.
std::map<std::string, DeployedLinear> check_unit(const QuantizedFolder& q, const LayerDesc& desc) {
  std::set<std::string> quantized_params;
  std::map<std::string, DeployedLinear> params;
  for (const auto& lin : desc.linears) {
    const std::string prefix = desc.prefix + "." + lin.name;
    if (q.linear_type(prefix) == "FLOAT") continue;
    // The Linear's [out, in], which packed int4 / FP4 weights store in half the bytes along one dimension.
    DeployedLinear d = q.load_linear(prefix, /*with_weight=*/false);
    if (d.out != lin.out_features || d.in != lin.in_features)
      fail("tensor '{}.weight' is {} in the quantized folder ({} Linear [{}, {}]) but [{}, {}] in the float model",
           prefix, shape_str(q.info(prefix + ".weight").shape), d.type, d.out, d.in, lin.out_features,
           lin.in_features);
    const bool has_bias = q.contains(prefix + ".bias");
    if (lin.has_bias && !has_bias)  // asymmetric smoothing may give a Linear a bias it had not
      fail("Linear '{}' has {} bias in the float model but {} in the quantized folder", prefix,
           lin.has_bias ? "a" : "no", has_bias ? "one" : "none");
    params.emplace(lin.name, std::move(d));
    quantized_params.insert(lin.name + ".weight");
    if (lin.has_bias) quantized_params.insert(lin.name + ".bias");
  }
  for (const auto& t : desc.tensors)
    if (!quantized_params.count(t.name)) check_float_tensor(q, desc.prefix + "." + t.name, t.shape);
  return params;
}

// Everything the float model fixes, checked before any layer is computed:
// quantized Linears' shapes, bias presence and parameter values (no weights
// read), FLOAT tensors' tags and shapes, and fused groups (q/k/v, gate/up:
// engines run one kernel, so one type and, under W8A8, one input_scale and
// input_offset; ascend_loaders.md §5).
void check_against_float_model(const QuantizedFolder& q, const Checkpoint& ckpt, const ModelConfig& cfg) {
  const Architecture& arch = architecture_for(cfg);
  for (const auto& t : non_layer_tensors(cfg, ckpt)) check_float_tensor(q, t.name, t.shape);
  for (int k = 0; k < cfg.num_hidden_layers; ++k) {
    LayerDesc desc = layer_desc(cfg, k);
    std::map<std::string, DeployedLinear> params = check_unit(q, desc);
    check_routed_experts(q, desc);
    for (const auto& group : arch.fused_groups) {
      if (desc.num_experts > 0 && std::any_of(group.begin(), group.end(), [&](const std::string& m) {
            return std::none_of(desc.linears.begin(), desc.linears.end(),
                                [&](const LinearDesc& l) { return l.name == m; });
          }))
        continue;  // the dense MLP's group on a MoE layer
      const std::string first = desc.prefix + "." + group.front();
      const std::string type = q.linear_type(first);
      for (const auto& member : group) {
        const std::string name = desc.prefix + "." + member;
        if (q.linear_type(name) != type)
          fail("Linears '{}' ({}) and '{}' ({}) are fused by serving engines and must share one type "
               "(ascend_loaders.md §5)",
               first, type, name, q.linear_type(name));
        auto ia = params.find(group.front()), ib = params.find(member);
        if ((type != "W8A8" && type != "W8A8_MIX") || ia == params.end() || ib == params.end()) continue;
        const DeployedLinear& a = ia->second;
        const DeployedLinear& b = ib->second;
        if (a.input_scale != b.input_scale || a.input_offset != b.input_offset)
          fail("Linears '{}' and '{}' are fused by serving engines, which keep one input_scale and input_offset, but "
               "theirs differ ({} / {} and {} / {}; ascend_loaders.md §5)",
               first, name, a.input_scale, a.input_offset, b.input_scale, b.input_offset);
      }
    }
  }
}

// A unit of the quantized model (decoder layer, vision tower): FLOAT tensors
// as f32, quantized Linears as DeployedLinears whose shapes must match the
// float model's.
LayerWeights load_quantized_unit(const QuantizedFolder& q, const LayerDesc& desc, DeployedExecutor& exec) {
  LayerWeights w;
  exec.linears.clear();
  std::map<std::string, const LinearDesc*> quantized_params;
  for (const auto& lin : desc.linears) {
    std::string prefix = desc.prefix + "." + lin.name;
    if (q.linear_type(prefix) == "FLOAT") continue;
    DeployedLinear d = q.load_linear(prefix);
    if (d.out != lin.out_features || d.in != lin.in_features)
      fail("tensor '{}.weight' is [{}, {}] in the quantized folder but [{}, {}] in the float model", prefix, d.out, d.in,
           lin.out_features, lin.in_features);
    if (lin.has_bias && d.bias.empty())  // asymmetric smoothing may give a Linear a bias it had not
      fail("Linear '{}' has {} bias in the float model but {} in the quantized folder", prefix,
           lin.has_bias ? "a" : "no", d.bias.empty() ? "none" : "one");
    exec.linears.emplace(lin.name, std::move(d));
    quantized_params[lin.name + ".weight"] = &lin;
    if (lin.has_bias) quantized_params[lin.name + ".bias"] = &lin;
  }
  for (const auto& t : desc.tensors) {
    if (quantized_params.count(t.name)) {
      w.tensors[t.name] = {};  // computed by the executor from the quantized tensors
      continue;
    }
    w.tensors[t.name] = read_float_tensor(q, desc.prefix + "." + t.name, t.shape);
  }
  // Tensors outlier smoothing adds (spec §2.8): a replaced norm's bias, and the
  // bias a FLOAT Linear gained from an asymmetric shift.
  for (const auto& t : desc.tensors) {
    if (!t.name.ends_with(".weight") || t.shape.size() != 1) continue;
    const std::string bias = t.name.substr(0, t.name.size() - 7) + ".bias";
    if (!w.tensors.count(bias) && q.contains(desc.prefix + "." + bias))
      w.tensors[bias] = read_float_tensor(q, desc.prefix + "." + bias, t.shape);
  }
  for (const auto& lin : desc.linears)
    if (!lin.has_bias && !quantized_params.count(lin.name + ".weight") && q.contains(desc.prefix + "." + lin.name + ".bias"))
      w.tensors[lin.name + ".bias"] = read_float_tensor(q, desc.prefix + "." + lin.name + ".bias", {lin.out_features});
  // quarot online: what the engine applies to a Linear's input (its width
  // checked against the stored weight, whose shape is the float model's).
  for (const auto& lin : desc.linears)
    if (KroneckerRotation r = q.input_rotation(desc.prefix + "." + lin.name); !r.empty())
      w.input_rotations[lin.name] = std::move(r);
  for (const auto& lin : desc.linears)  // FLOAT routed experts (not in desc.tensors)
    if (lin.expert >= 0 && !quantized_params.count(lin.name + ".weight"))
      w.tensors[lin.name + ".weight"] =
          read_float_tensor(q, desc.prefix + "." + lin.name + ".weight", {lin.out_features, lin.in_features});
  return w;
}

LayerWeights load_quantized_layer(const QuantizedFolder& q, const ModelConfig& cfg, int k, DeployedExecutor& exec) {
  LayerWeights w = load_quantized_unit(q, layer_desc(cfg, k), exec);
  w.layer = k;
  return w;
}

// Every tensor of the folder must belong to the float model: a float tensor of
// it, or a quantization parameter of one of its Linears. Serving engines
// reject unexpected names, and a folder quantized from another model shows up
// here before any layer is computed.
void check_no_foreign_tensors(const QuantizedFolder& q, const Checkpoint& ckpt, const ModelConfig& cfg,
                              const std::filesystem::path& quantized_dir, const std::filesystem::path& float_dir) {
  auto float_names = ckpt.tensor_names();
  std::set<std::string> allowed(float_names.begin(), float_names.end());
  allowed.insert(architecture_for(cfg).lm_head);  // written even when tied (spec fact 16)
  for (int k = 0; k < cfg.num_hidden_layers; ++k) {
    LayerDesc desc = layer_desc(cfg, k);
    for (const auto& t : desc.tensors)  // a smoothed norm's bias (spec §2.8)
      if (t.name.ends_with(".weight") && t.shape.size() == 1)
        allowed.insert(desc.prefix + "." + t.name.substr(0, t.name.size() - 7) + ".bias");
    // Asymmetric smoothing shifts a norm (it gets a bias) and gives the
    // Linears reading it a bias: allowed only beside that norm bias.
    for (const auto& g : architecture_for(cfg).smooth_subgraphs)
      if (g.type == "norm-linear" && q.contains(desc.prefix + "." + g.source + ".bias"))
        for (const auto& t : g.targets) allowed.insert(desc.prefix + "." + t + ".bias");
    for (const auto& lin : desc.linears) {
      std::string prefix = desc.prefix + "." + lin.name;
      std::string type = q.linear_type(prefix);
      if (lin.expert >= 0) allowed.insert(prefix + ".weight");  // per-expert export names of fused experts
      for (const auto& t : q.input_rotation_tensors(prefix)) allowed.insert(t);  // quarot online
      if (type == "FLOAT") continue;
      for (const auto& suffix : QuantizedFolder::parameter_suffixes(type)) allowed.insert(prefix + suffix);
    }
  }
  // A vision-language model's tower is not scored on text, but its quantized
  // Linears are the model's own.
  if (is_qwen3_vl_config(read_text_file(float_dir / "config.json"))) {
    const LayerDesc vision = qwen3_vl_vision_desc(load_qwen3_vl_vision_config(float_dir));
    for (const auto& lin : vision.linears) {
      const std::string prefix = vision.prefix + "." + lin.name;
      const std::string type = q.linear_type(prefix);
      if (type != "FLOAT")
        for (const auto& suffix : QuantizedFolder::parameter_suffixes(type)) allowed.insert(prefix + suffix);
    }
  }
  for (const auto& name : q.tensor_names())
    if (!allowed.count(name))
      fail("tensor '{}' in {} is not a tensor of the float model {} nor a quantization parameter of one of its "
           "Linears (folder quantized from another model?)",
           name, quantized_dir.string(), float_dir.string());
}

struct Stream {
  std::vector<std::vector<float>> hidden;  // per window, [len, hidden]
};

struct WindowScores {
  double nll_float = 0, nll_quant = 0, kl = 0;
  int64_t agree = 0, scored = 0, nll_scored = 0;
};

// log-softmax of one row in double.
std::vector<double> log_softmax(const float* row, int64_t vocab) {
  double max = *std::max_element(row, row + vocab);
  double sum = 0;
  for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - max);
  double lse = max + std::log(sum);
  std::vector<double> out(static_cast<size_t>(vocab));
  for (int64_t i = 0; i < vocab; ++i) out[static_cast<size_t>(i)] = row[i] - lse;
  return out;
}

// Rows t of the logits, each scored for KL and top-1, and for NLL when
// targets[t] >= 0.
void score_rows(const std::vector<float>& lf, const std::vector<float>& lq, std::span<const int32_t> targets,
                int64_t vocab, WindowScores& s) {
  for (size_t t = 0; t < targets.size(); ++t) {
    const float* rf = lf.data() + t * static_cast<size_t>(vocab);
    const float* rq = lq.data() + t * static_cast<size_t>(vocab);
    auto pf = log_softmax(rf, vocab), pq = log_softmax(rq, vocab);
    if (targets[t] >= 0) {
      auto target = static_cast<size_t>(targets[t]);
      s.nll_float -= pf[target];
      s.nll_quant -= pq[target];
      s.nll_scored += 1;
    }
    double kl = 0;
    for (int64_t i = 0; i < vocab; ++i) kl += std::exp(pf[static_cast<size_t>(i)]) * (pf[static_cast<size_t>(i)] - pq[static_cast<size_t>(i)]);
    s.kl += std::max(kl, 0.0);
    s.agree += (std::max_element(rf, rf + vocab) - rf) == (std::max_element(rq, rq + vocab) - rq);
    s.scored += 1;
  }
}

// The quantized model's final norm and head, from the folder alone.
OutputHead quantized_head(const QuantizedFolder& quant, const ModelConfig& cfg, const OutputHead& fhead) {
  const Architecture& arch = architecture_for(cfg);
  OutputHead qhead;
  qhead.vocab = fhead.vocab;
  qhead.hidden = fhead.hidden;
  qhead.norm_weight = read_float_tensor(quant, arch.final_norm, {cfg.hidden_size});
  // Tied models: engines tie the head to embed_tokens (ascend_loaders.md §2), whatever lm_head.weight holds.
  // A rotated tied model is written untied (quarot): its own lm_head is then the head.
  const bool untied = quant.config().contains("tie_word_embeddings") && quant.config().at("tie_word_embeddings") == false;
  qhead.lm_head = read_float_tensor(quant, cfg.tie_word_embeddings && !untied ? arch.embed_tokens : arch.lm_head,
                                    {cfg.vocab_size, cfg.hidden_size});
  return qhead;
}

EvalResult result_of(const WindowScores& s, const QuantizedFolder& quant) {
  EvalResult r;
  r.tokens = s.scored;
  r.nll_tokens = s.nll_scored;
  r.nll_float = s.nll_scored > 0 ? s.nll_float / static_cast<double>(s.nll_scored) : 0.0;
  r.nll_quantized = s.nll_scored > 0 ? s.nll_quant / static_cast<double>(s.nll_scored) : 0.0;
  r.ppl_float = std::exp(r.nll_float);
  r.ppl_quantized = std::exp(r.nll_quantized);
  r.kl = s.scored > 0 ? s.kl / static_cast<double>(s.scored) : 0.0;
  r.top1_agreement = s.scored > 0 ? static_cast<double>(s.agree) / static_cast<double>(s.scored) : 0.0;
  r.model_quant_type = quant.model_quant_type();
  return r;
}

std::string seconds_since(std::chrono::steady_clock::time_point start) {
  return fmt::format("{:.1f}s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

std::string model_type_of(const Json& config) {
  return config.is_object() && config.contains("model_type") && config.at("model_type").is_string()
             ? config.at("model_type").get<std::string>()
             : "absent";
}

// Image + text mode: the float checkpoint's chain and the folder's, unit by
// unit (tower, then text layers), from the same samples.
EvalResult evaluate_images(const EvalOptions& o) {
  const std::string config_text = read_text_file(o.float_dir / "config.json");
  if (!is_qwen3_vl_moe_config(config_text))
    fail("--images scores Qwen3-VL-MoE models on image + text samples, but {} has model_type {} (score a language "
         "model with --text)",
         (o.float_dir / "config.json").string(), model_type_of(parse_json_strict(config_text, o.float_dir.string())));
  ModelConfig cfg = load_model_config(o.float_dir);
  Checkpoint ckpt = Checkpoint::open(o.float_dir);
  std::unique_ptr<Qwen3VlMoeUnitModel> model = open_qwen3_vl_moe(o.float_dir, ckpt);  // checks the tower
  QuantizedFolder quant = QuantizedFolder::open(o.quantized_dir);
  if (model_type_of(quant.config()) != "qwen3_vl_moe")
    fail("{} is not a Qwen3-VL-MoE output: its config.json has model_type {} but the float model {} is qwen3_vl_moe",
         o.quantized_dir.string(), model_type_of(quant.config()), o.float_dir.string());
  check_config_matches(quant, cfg);
  check_no_foreign_tensors(quant, ckpt, cfg, o.quantized_dir, o.float_dir);
  check_against_float_model(quant, ckpt, cfg);
  check_unit(quant, model->unit(0));

  CalibrationSource source{o.images, o.float_dir, o.max_samples, o.default_text, /*allow_text_only=*/true};
  std::vector<UnitInput> fstream = model->calibration_inputs(source);
  const std::vector<Qwen3VlSample>& samples = model->samples();
  for (size_t i = 0; i < samples.size(); ++i)
    if (samples[i].pixels.rows == 0)
      fail("{}: entry {} has no image; `eval --images` scores image + text samples (score text with --text)",
           o.images.string(), i);
  // The quantized chain starts from the folder's own embedding rows (rotated under QuaRot).
  std::vector<UnitInput> qstream = fstream;
  const std::string& embed_name = architecture_for(cfg).embed_tokens;
  for (size_t i = 0; i < samples.size(); ++i) {
    std::vector<float> rows = embed_token_rows(quant.checkpoint(), cfg, samples[i].ids);
    if (!std::all_of(rows.begin(), rows.end(), [](float v) { return std::isfinite(v); }))
      fail("tensor '{}' in {} holds a non-finite value in a row sample {} looks up", embed_name,
           o.quantized_dir.string(), i);
    std::copy(rows.begin(), rows.end(), qstream[i].hidden.begin());
  }
  auto refs = [](std::vector<UnitInput>& stream) {
    std::vector<SequenceRef> r;
    for (size_t i = 0; i < stream.size(); ++i)
      r.push_back({stream[i].hidden.data(), stream[i].seq(), stream[i].positions.data(), static_cast<int>(i)});
    return r;
  };
  const std::vector<SequenceRef> fref = refs(fstream), qref = refs(qstream);
  int64_t total = 0;
  for (const auto& v : samples) total += v.tokens();
  spdlog::info("eval: {} image + text samples, {} tokens; quantized type {}", samples.size(), total,
               quant.model_quant_type());

  // One unit of each chain resident at a time: the float one, then the quantized one.
  const auto start = std::chrono::steady_clock::now();
  DeployedExecutor exec;
  for (int k = 0; k < model->num_units(); ++k) {
    {
      const LayerWeights w = k == 0 ? model->load(0) : load_layer_weights(ckpt, cfg, k - 1);
      model->forward(k, w, fref, nullptr, nullptr, nullptr);
    }
    {
      const LayerWeights w =
          k == 0 ? load_quantized_unit(quant, model->unit(0), exec) : load_quantized_layer(quant, cfg, k - 1, exec);
      model->forward(k, w, qref, &exec, nullptr, nullptr);
    }
    spdlog::info("eval: {} {}/{} | {}", k == 0 ? "vision tower" : "text layer", k == 0 ? 1 : k,
                 k == 0 ? 1 : cfg.num_hidden_layers, seconds_since(start));
  }

  const OutputHead fhead = OutputHead::load(ckpt, cfg);
  const OutputHead qhead = quantized_head(quant, cfg, fhead);
  WindowScores s;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Qwen3VlSample& v = samples[i];
    // The S token rows (the deepstack rows after them are zero by now).
    std::vector<float> lf = fhead.logits(cfg, fstream[i].hidden.data(), v.tokens());
    std::vector<float> lq = qhead.logits(cfg, qstream[i].hidden.data(), v.tokens());
    std::vector<bool> image(v.ids.size(), false);
    for (int64_t row : v.image_rows) image[static_cast<size_t>(row)] = true;
    std::vector<int32_t> targets(v.ids.size(), -1);  // the last row's next token is the answer's: no NLL
    for (size_t t = 0; t + 1 < v.ids.size(); ++t)
      if (!image[t + 1]) targets[t] = v.ids[t + 1];
    score_rows(lf, lq, targets, fhead.vocab, s);
  }
  EvalResult scored = result_of(s, quant);
  scored.samples = scored.images = static_cast<int>(samples.size());
  return scored;
}

}  // namespace

EvalResult evaluate(const EvalOptions& o) {
  if (!o.images.empty()) return evaluate_images(o);
  ModelConfig cfg = load_model_config(o.float_dir);
  Checkpoint ckpt = Checkpoint::open(o.float_dir);
  QuantizedFolder quant = QuantizedFolder::open(o.quantized_dir);
  check_config_matches(quant, cfg);
  check_no_foreign_tensors(quant, ckpt, cfg, o.quantized_dir, o.float_dir);
  check_against_float_model(quant, ckpt, cfg);
  Tokenizer tokenizer = Tokenizer::load(o.float_dir);
  std::vector<int32_t> tokens = tokenizer.encode_with_special(read_text_file(o.text));
  if (o.max_tokens > 0 && static_cast<int64_t>(tokens.size()) > o.max_tokens) tokens.resize(static_cast<size_t>(o.max_tokens));
  auto windows = perplexity_windows(tokens.size(), o.ctx);
  if (windows.empty()) fail("{} has fewer than 2 tokens: nothing to score", o.text.string());
  spdlog::info("eval: {} tokens in {} windows of up to {}; quantized type {}", tokens.size(), windows.size(), o.ctx,
               quant.model_quant_type());

  // Embeddings: the float model's, and the quantized folder's own copy.
  Stream fstream, qstream;
  {
    EmbeddingTable fe = EmbeddingTable::load(ckpt, cfg);
    auto embed_name = architecture_for(cfg).embed_tokens;
    Tensor qembed = quant.read(embed_name);  // tag and shape checked by check_against_float_model
    check_finite(qembed, embed_name, o.quantized_dir.string());
    EmbeddingTable qe(std::move(qembed));
    if (qe.table().shape != fe.table().shape)
      fail("tensor '{}' has shape {} in the quantized folder but {} in the float model", embed_name,
           shape_str(qe.table().shape), shape_str(fe.table().shape));
    for (auto [b, e] : windows) {
      std::span<const int32_t> w(tokens.data() + b, e - b);
      fstream.hidden.push_back(fe.lookup(w));
      qstream.hidden.push_back(qe.lookup(w));
    }
  }
  // eval links no runner code, so progress is a plain log line per layer.
  auto start = std::chrono::steady_clock::now();
  DeployedExecutor exec;
  // Positions restart at 0 in every window, as in `lwquant ppl`.
  std::vector<int32_t> positions(static_cast<size_t>(o.ctx));
  for (size_t p = 0; p < positions.size(); ++p) positions[p] = static_cast<int32_t>(p);
  auto forward_windows = [&](const LayerWeights& w, int k, Stream& stream, LinearExecutor* executor) {
    for (size_t i = 0; i < windows.size(); ++i)
      decoder_layer_forward(cfg, w, k, stream.hidden[i].data(), static_cast<int64_t>(windows[i].second - windows[i].first),
                            positions.data(), executor);
  };
  for (int k = 0; k < cfg.num_hidden_layers; ++k) {
    forward_windows(load_layer_weights(ckpt, cfg, k), k, fstream, nullptr);
    forward_windows(load_quantized_layer(quant, cfg, k, exec), k, qstream, &exec);
    spdlog::info("eval: layer {}/{} | {:.1f}s", k + 1, cfg.num_hidden_layers,
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }

  const OutputHead fhead = OutputHead::load(ckpt, cfg);
  const OutputHead qhead = quantized_head(quant, cfg, fhead);
  WindowScores s;
  for (size_t i = 0; i < windows.size(); ++i) {
    auto [b, e] = windows[i];
    auto rows = static_cast<int64_t>(e - b);
    std::vector<float> lf = fhead.logits(cfg, fstream.hidden[i].data(), rows);
    std::vector<float> lq = qhead.logits(cfg, qstream.hidden[i].data(), rows);
    score_rows(lf, lq, {tokens.data() + b + 1, e - b - 1}, fhead.vocab, s);
  }
  return result_of(s, quant);
}

}  // namespace lwq
