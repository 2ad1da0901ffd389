#include "models/decoder_layer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "io/checkpoint.h"
#include "models/architecture.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "util/error.h"

namespace lwq {

const std::vector<float>& LayerWeights::get(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail("layer {} has no tensor '{}'", layer, name);
  return it->second;
}

std::vector<float>& LayerWeights::get(const std::string& name) {
  auto it = tensors.find(name);
  if (it == tensors.end()) fail("layer {} has no tensor '{}'", layer, name);
  return it->second;
}

const float* LayerWeights::f32(const std::string& name, std::vector<float>& scratch) const {
  if (auto it = tensors.find(name); it != tensors.end()) return it->second.data();
  auto it = stored.find(name);
  if (it == stored.end()) fail("layer {} has no tensor '{}'", layer, name);
  if (it->second.dtype == DType::F32) return it->second.data<float>();
  scratch.resize(static_cast<size_t>(it->second.numel()));
  convert_to_f32(it->second.dtype, it->second.bytes.data(), scratch.data(), scratch.size());
  return scratch.data();
}

void LayerWeights::rows_f32(const std::string& name, int64_t begin, int64_t end, int64_t cols, float* dst) const {
  const auto first = static_cast<size_t>(begin * cols), count = static_cast<size_t>((end - begin) * cols);
  if (auto it = stored.find(name); it != stored.end()) {
    const Tensor& t = it->second;
    if (static_cast<int64_t>(first + count) > t.numel()) fail("rows_f32: rows {}..{} exceed '{}'", begin, end, name);
    convert_to_f32(t.dtype, t.bytes.data() + first * dtype_size(t.dtype), dst, count);
    return;
  }
  const std::vector<float>& v = get(name);
  if (first + count > v.size()) fail("rows_f32: rows {}..{} exceed '{}'", begin, end, name);
  std::copy(v.begin() + static_cast<long>(first), v.begin() + static_cast<long>(first + count), dst);
}

size_t LayerWeights::bytes() const {
  size_t n = 0;
  for (const auto& [name, v] : tensors) n += v.size() * sizeof(float);
  for (const auto& [name, t] : stored) n += t.nbytes();
  return n;
}

LayerWeights load_layer_weights(const Checkpoint& ckpt, const ModelConfig& cfg, int layer) {
  LayerDesc desc = layer_desc(cfg, layer);
  LayerWeights w;
  w.layer = layer;
  std::set<std::string> linear_weights;
  for (const auto& lin : desc.linears) linear_weights.insert(lin.name + ".weight");
  for (const auto& t : desc.tensors) {
    const std::string full = desc.prefix + "." + t.name;
    if (!ckpt.contains(full)) fail("tensor '{}' is missing from checkpoint {}", full, ckpt.path().string());
    const TensorInfo& info = ckpt.info(full);
    check_tensor_shape(cfg, full, info.shape, t.shape);
    if (!is_float(info.dtype))
      fail("tensor '{}' has dtype {}; a float dtype (F32, F16, BF16) is expected", full, dtype_name(info.dtype));
    Tensor raw = ckpt.read(full);
    check_finite(raw, full, ckpt.file_of(full).string());
    if (linear_weights.count(t.name) && raw.dtype != DType::F32) w.stored.emplace(t.name, std::move(raw));
    else w.tensors.emplace(t.name, to_f32(raw));
  }
  return w;
}

void linear_from_layer(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows, int64_t in,
                       const float* bias, int64_t out, float* y) {
  if (auto it = w.tensors.find(weight); it != w.tensors.end()) {
    matmul_nt(x, rows, in, it->second.data(), out, y, bias);
    return;
  }
  if (auto it = w.stored.find(weight); it != w.stored.end() && it->second.dtype == DType::F32) {
    matmul_nt(x, rows, in, it->second.data<float>(), out, y, bias);
    return;
  }
  matmul_nt_rows(
      x, rows, in, [&](int64_t begin, int64_t n, float* dst) { w.rows_f32(weight, begin, begin + n, in, dst); }, out, y,
      bias);
}

void LinearExecutor::run(const std::string&, const float* x, int64_t rows, int64_t in, const float* weight,
                         const float* bias, int64_t out, float* y) {
  matmul_nt(x, rows, in, weight, out, y, bias);
}

namespace {

struct LinearRunner {
  const ModelConfig& cfg;
  const LayerWeights& w;
  LinearExecutor& exec;
  const LayerDesc& desc;
  bool custom;  // exec is the caller's, not the plain f32 one

  // y[rows, out] = linear `name`(x[rows, in]).
  void operator()(const std::string& name, const float* x, int64_t rows, std::vector<float>& y) const {
    auto it = std::find_if(desc.linears.begin(), desc.linears.end(), [&](const LinearDesc& l) { return l.name == name; });
    if (it == desc.linears.end()) fail("layer {}: the architecture has no linear '{}'", w.layer, name);
    y.resize(static_cast<size_t>(rows * it->out_features));
    const float* bias = it->has_bias ? w.get(name + ".bias").data() : nullptr;
    if (!custom) {
      linear_from_layer(w, name + ".weight", x, rows, it->in_features, bias, it->out_features, y.data());
      return;
    }
    std::vector<float> scratch;
    const float* weight = exec.needs_float_weight(name) ? w.f32(name + ".weight", scratch) : nullptr;
    exec.run(name, x, rows, it->in_features, weight, bias, it->out_features, y.data());
  }
};

}  // namespace

namespace {

void layer_forward(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                   const int32_t* positions, LinearExecutor* exec, LayerKVCache* cache) {
  if (seq <= 0) return;
  const Architecture& arch = architecture_for(cfg);
  const LayerRoles& r = arch.roles;
  const LayerDesc desc = layer_desc(cfg, layer);
  LinearExecutor plain;
  LinearRunner linear{cfg, w, exec ? *exec : plain, desc, exec != nullptr};
  const int64_t H = cfg.hidden_size, hd = cfg.head_dim;
  const float eps = static_cast<float>(cfg.rms_norm_eps);

  int32_t max_pos = 0;
  for (int64_t i = 0; i < seq; ++i) {
    if (positions[i] < 0) fail("layer {}: position {} of token {} is negative", layer, positions[i], i);
    max_pos = std::max(max_pos, positions[i]);
  }

  // ---- attention block ----
  std::vector<float> x(static_cast<size_t>(seq * H));
  rms_norm(hidden, w.get(r.input_norm + ".weight").data(), seq, H, eps, x.data());
  std::vector<float> q, k, v;
  linear(r.q, x.data(), seq, q);
  linear(r.k, x.data(), seq, k);
  linear(r.v, x.data(), seq, v);
  if (!r.q_norm.empty()) {
    // Qwen3: RMSNorm over each head's vector, before the rope.
    rms_norm(q.data(), w.get(r.q_norm + ".weight").data(), seq * cfg.num_attention_heads, hd, eps, q.data());
    rms_norm(k.data(), w.get(r.k_norm + ".weight").data(), seq * cfg.num_key_value_heads, hd, eps, k.data());
  }
  const RopeTable rope = rope_table(rope_frequencies(cfg.rope, hd, int64_t{max_pos} + 1), positions, seq);
  apply_rope(q.data(), seq, cfg.q_dim(), cfg.num_attention_heads, hd, rope);
  apply_rope(k.data(), seq, cfg.kv_dim(), cfg.num_key_value_heads, hd, rope);

  std::vector<float> attn(static_cast<size_t>(seq * cfg.q_dim()));
  AttentionDims dims{seq, cfg.num_attention_heads, cfg.num_key_value_heads, hd, cfg.sliding_window(layer)};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  if (cache) {
    if (static_cast<int64_t>(cache->k.size()) != cache->tokens * cfg.kv_dim() || cache->v.size() != cache->k.size())
      fail("layer {}: KV cache holds {} keys / {} values for {} tokens of kv_dim {}", layer, cache->k.size(),
           cache->v.size(), cache->tokens, cfg.kv_dim());
    dims.past = cache->tokens;
    cache->k.insert(cache->k.end(), k.begin(), k.end());
    cache->v.insert(cache->v.end(), v.begin(), v.end());
    cache->tokens += seq;
    causal_attention(q.data(), cache->k.data(), cache->v.data(), dims, scale, attn.data());
  } else {
    causal_attention(q.data(), k.data(), v.data(), dims, scale, attn.data());
  }
  q = {};
  k = {};
  v = {};
  std::vector<float> y;
  linear(r.o, attn.data(), seq, y);
  attn = {};
  add_inplace(hidden, y.data(), seq * H);

  // ---- MLP block ----
  rms_norm(hidden, w.get(r.post_attention_norm + ".weight").data(), seq, H, eps, x.data());
  std::vector<float> gate, up;
  linear(r.gate, x.data(), seq, gate);
  linear(r.up, x.data(), seq, up);
  silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), gate.data());
  up = {};
  linear(r.down, gate.data(), seq, y);
  add_inplace(hidden, y.data(), seq * H);
}

}  // namespace

void decoder_layer_forward(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                           const int32_t* positions, LinearExecutor* exec) {
  layer_forward(cfg, w, layer, hidden, seq, positions, exec, nullptr);
}

void decoder_layer_forward_cached(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                                  const int32_t* positions, LayerKVCache& cache, LinearExecutor* exec) {
  layer_forward(cfg, w, layer, hidden, seq, positions, exec, &cache);
}

}  // namespace lwq
