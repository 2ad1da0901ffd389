#include "eval/evaluator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "data/tokenizer.h"
#include "eval/quantized_folder.h"
#include "io/checkpoint.h"
#include "models/architecture.h"
#include "models/causal_lm.h"
#include "models/decoder_layer.h"
#include "models/model_config.h"
#include "models/perplexity.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace {

// Runs each quantized Linear of the layer with the deployed arithmetic.
class DeployedExecutor : public LinearExecutor {
 public:
  std::map<std::string, DeployedLinear> linears;  // by name relative to the layer

  bool needs_float_weight(const std::string& name) const override { return !linears.count(name); }

  void run(const std::string& name, const float* x, int64_t rows, int64_t in, const float* weight,
           const float* bias, int64_t out, float* y) override {
    auto it = linears.find(name);
    if (it == linears.end()) return LinearExecutor::run(name, x, rows, in, weight, bias, out, y);
    deployed_linear_forward(it->second, x, rows, y);
  }
};

std::vector<float> read_float(const QuantizedFolder& q, const std::string& name, const Shape& shape) {
  if (!q.contains(name)) fail("tensor '{}' of the float model is missing from the quantized folder", name);
  Tensor t = q.read(name);
  // An integer tensor tagged FLOAT would otherwise be read as float values.
  if (!is_float(t.dtype))
    fail("tensor '{}' is described as FLOAT but stored as {} in the quantized folder", name, dtype_name(t.dtype));
  if (t.shape != shape)
    fail("tensor '{}' has shape {} in the quantized folder but {} in the float model", name, shape_str(t.shape),
         shape_str(shape));
  return to_f32(t);
}

// Layer k of the quantized model: FLOAT tensors as f32, quantized Linears as
// DeployedLinears whose shapes must match the float model's.
LayerWeights load_quantized_layer(const QuantizedFolder& q, const ModelConfig& cfg, int k, DeployedExecutor& exec) {
  LayerDesc desc = layer_desc(cfg, k);
  LayerWeights w;
  w.layer = k;
  exec.linears.clear();
  std::map<std::string, const LinearDesc*> quantized_params;
  for (const auto& lin : desc.linears) {
    std::string prefix = desc.prefix + "." + lin.name;
    if (q.linear_type(prefix) == "FLOAT") continue;
    DeployedLinear d = q.load_linear(prefix);
    if (d.out != lin.out_features || d.in != lin.in_features)
      fail("tensor '{}.weight' is [{}, {}] in the quantized folder but [{}, {}] in the float model", prefix, d.out, d.in,
           lin.out_features, lin.in_features);
    if (lin.has_bias != !d.bias.empty())
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
    w.tensors[t.name] = read_float(q, desc.prefix + "." + t.name, t.shape);
  }
  return w;
}

// The tensors a quantized Linear of each type stores besides its float bias (spec §3.4).
const std::vector<std::string>& quantized_suffixes(const std::string& type) {
  static const std::vector<std::string> w8a8 = {".weight", ".quant_bias", ".input_scale", ".input_offset", ".deq_scale"};
  static const std::vector<std::string> scaled = {".weight", ".weight_scale", ".weight_offset"};
  return type == "W8A8" ? w8a8 : scaled;
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
    for (const auto& lin : desc.linears) {
      std::string prefix = desc.prefix + "." + lin.name;
      std::string type = q.linear_type(prefix);
      if (type == "FLOAT") continue;
      for (const auto& suffix : quantized_suffixes(type)) allowed.insert(prefix + suffix);
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
  int64_t agree = 0, scored = 0;
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

void score_window(const std::vector<float>& lf, const std::vector<float>& lq, std::span<const int32_t> window,
                  int64_t vocab, WindowScores& s) {
  for (size_t t = 0; t + 1 < window.size(); ++t) {
    const float* rf = lf.data() + t * static_cast<size_t>(vocab);
    const float* rq = lq.data() + t * static_cast<size_t>(vocab);
    auto pf = log_softmax(rf, vocab), pq = log_softmax(rq, vocab);
    auto target = static_cast<size_t>(window[t + 1]);
    s.nll_float -= pf[target];
    s.nll_quant -= pq[target];
    double kl = 0;
    for (int64_t i = 0; i < vocab; ++i) kl += std::exp(pf[static_cast<size_t>(i)]) * (pf[static_cast<size_t>(i)] - pq[static_cast<size_t>(i)]);
    s.kl += std::max(kl, 0.0);
    s.agree += (std::max_element(rf, rf + vocab) - rf) == (std::max_element(rq, rq + vocab) - rq);
    s.scored += 1;
  }
}

}  // namespace

EvalResult evaluate(const EvalOptions& o) {
  ModelConfig cfg = load_model_config(o.float_dir);
  Checkpoint ckpt = Checkpoint::open(o.float_dir);
  QuantizedFolder quant = QuantizedFolder::open(o.quantized_dir);
  check_no_foreign_tensors(quant, ckpt, cfg, o.quantized_dir, o.float_dir);
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
    EmbeddingTable qe(quant.read(embed_name));
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

  const Architecture& arch = architecture_for(cfg);
  OutputHead fhead = OutputHead::load(ckpt, cfg);
  OutputHead qhead;
  qhead.vocab = fhead.vocab;
  qhead.hidden = fhead.hidden;
  qhead.norm_weight = read_float(quant, arch.final_norm, {cfg.hidden_size});
  qhead.lm_head = read_float(quant, quant.contains(arch.lm_head) ? arch.lm_head : arch.embed_tokens,
                             {cfg.vocab_size, cfg.hidden_size});
  WindowScores s;
  for (size_t i = 0; i < windows.size(); ++i) {
    auto [b, e] = windows[i];
    auto rows = static_cast<int64_t>(e - b);
    std::vector<float> lf = fhead.logits(cfg, fstream.hidden[i].data(), rows);
    std::vector<float> lq = qhead.logits(cfg, qstream.hidden[i].data(), rows);
    score_window(lf, lq, {tokens.data() + b, e - b}, fhead.vocab, s);
  }
  EvalResult r;
  r.tokens = s.scored;
  r.ppl_float = std::exp(s.nll_float / static_cast<double>(s.scored));
  r.ppl_quantized = std::exp(s.nll_quant / static_cast<double>(s.scored));
  r.kl = s.kl / static_cast<double>(s.scored);
  r.top1_agreement = static_cast<double>(s.agree) / static_cast<double>(s.scored);
  r.model_quant_type = quant.model_quant_type();
  return r;
}

}  // namespace lwq
