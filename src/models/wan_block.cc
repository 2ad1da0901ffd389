#include "models/wan_block.h"

#include <cmath>
#include <set>
#include <vector>

#include "io/checkpoint.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/norm.h"
#include "util/error.h"

namespace lwq {
namespace {

// Adjacent-pair rotation (x[2j], x[2j+1]) by angle pos_axis(t)·θ^(−2k/d_axis),
// channels split (frame, height, width) as [c − 2⌊c/3⌋, ⌊c/3⌋, ⌊c/3⌋] of the
// c = head_dim/2 pairs; angles in double as the reference's complex128.
void rope_3d(float* x, int64_t rows, int64_t heads, int64_t hd, const WanBlockInputs& in) {
  const int64_t c = hd / 2, cs = c / 3, ct = c - 2 * cs;
  const int64_t counts[3] = {ct, cs, cs};
  std::vector<double> inv(static_cast<size_t>(c));
  std::vector<int> axis(static_cast<size_t>(c));
  for (int64_t j = 0, a = 0, k = 0; j < c; ++j, ++k) {
    if (k == counts[a]) ++a, k = 0;
    axis[static_cast<size_t>(j)] = static_cast<int>(a);
    inv[static_cast<size_t>(j)] = 1.0 / std::pow(10000.0, 2.0 * static_cast<double>(k) / (2.0 * counts[a]));
  }
  const int64_t grid = in.frames * in.height * in.width;
  for (int64_t t = 0; t < std::min(rows, grid); ++t) {
    const int64_t pos[3] = {t / (in.height * in.width), (t / in.width) % in.height, t % in.width};
    for (int64_t j = 0; j < c; ++j) {
      const double angle = static_cast<double>(pos[axis[static_cast<size_t>(j)]]) * inv[static_cast<size_t>(j)];
      const float cs_ = static_cast<float>(std::cos(angle)), sn = static_cast<float>(std::sin(angle));
      for (int64_t h = 0; h < heads; ++h) {
        float* p = x + t * heads * hd + h * hd + 2 * j;
        const float a = p[0], b = p[1];
        p[0] = a * cs_ - b * sn;
        p[1] = a * sn + b * cs_;
      }
    }
  }
}

// Non-causal attention: every query row attends to keys [0, keys).
void full_attention(const float* q, int64_t rows, const float* k, const float* v, int64_t keys, int64_t heads,
                    int64_t hd, float* out) {
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  lwq::full_attention(q, k, v, FullAttentionDims{.rows = rows, .keys = keys, .heads = heads, .head_dim = hd}, scale,
                      out);
}


}  // namespace

LayerWeights load_wan_block(const Checkpoint& ckpt, const WanConfig& cfg, int n, LinearWeightHold hold) {
  LayerDesc d = wan_block_desc(cfg, n);
  std::set<std::string> linear_weights;
  for (const auto& l : d.linears) linear_weights.insert(l.name + ".weight");
  LayerWeights w;
  w.layer = n;
  for (const auto& t : d.tensors) {
    const std::string full = wan_checkpoint_name(cfg, d.prefix + "." + t.name);
    if (!ckpt.contains(full)) fail("tensor '{}' is missing from checkpoint {}", full, ckpt.path().string());
    const TensorInfo& info = ckpt.info(full);
    if (info.shape != t.shape)
      fail("tensor '{}' has shape {} but {} implies {}", full, shape_str(info.shape), cfg.source.string(),
           shape_str(t.shape));
    // 16-bit Linear weights stay as stored (converted a block of rows at a
    // time when used): a bf16 block then costs its file size in memory.
    read_unit_tensor(ckpt, full, t.name, linear_weights.count(t.name) != 0, w, hold);
  }
  return w;
}

void wan_block_forward(const WanConfig& cfg, const LayerWeights& w, float* x, int64_t rows, const WanBlockInputs& in,
                       LinearExecutor* exec) {
  const int64_t D = cfg.dim, F = cfg.ffn_dim, H = cfg.num_heads, hd = cfg.head_dim();
  const float eps = static_cast<float>(cfg.eps);
  if (in.valid_tokens <= 0 || in.valid_tokens > rows) fail("Wan block: {} valid tokens of {}", in.valid_tokens, rows);
  if (cfg.image_cross_attn() && in.context_len <= cfg.text_len)
    fail("Wan {} block: the context has {} rows; expected image tokens followed by text_len = {} text tokens",
         cfg.model_type, in.context_len, cfg.text_len);
  BiasedLinears linear{w, exec};
  // m[i] = modulation[i] + e0[i]: shift, scale, gate (attention), shift, scale, gate (FFN).
  std::vector<float> m(static_cast<size_t>(6 * D));
  const std::vector<float>& mod = w.get("modulation");
  for (size_t i = 0; i < m.size(); ++i) m[i] = mod[i] + in.e0[i];
  // Rows [r0, r0 + n) of x, layer-normed and modulated.
  auto modulated_norm = [&](int shift, int scale, int64_t r0, int64_t n, std::vector<float>& y) {
    y.resize(static_cast<size_t>(n * D));
    layer_norm(x + r0 * D, n, D, eps, nullptr, nullptr, y.data());
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < D; ++i) {
        float& v = y[static_cast<size_t>(r * D + i)];
        v = v * (1.0f + m[static_cast<size_t>(scale * D + i)]) + m[static_cast<size_t>(shift * D + i)];
      }
  };
  auto add_gated = [&](const std::vector<float>& y, int gate, int64_t r0, int64_t n) {
    for (int64_t r = 0; r < n; ++r)
      for (int64_t i = 0; i < D; ++i)
        x[(r0 + r) * D + i] +=
            y[static_cast<size_t>(r * D + i)] * (gate < 0 ? 1.0f : m[static_cast<size_t>(gate * D + i)]);
  };

  // Self-attention.
  std::vector<float> y, q, k, v, a(static_cast<size_t>(rows * D)), o;
  modulated_norm(0, 1, 0, rows, y);
  linear("self_attn.q", y.data(), rows, D, D, q);
  linear("self_attn.k", y.data(), rows, D, D, k);
  linear("self_attn.v", y.data(), rows, D, D, v);
  rms_norm(q.data(), w.get("self_attn.norm_q.weight").data(), rows, D, eps, q.data());
  rms_norm(k.data(), w.get("self_attn.norm_k.weight").data(), rows, D, eps, k.data());
  rope_3d(q.data(), rows, H, hd, in);
  rope_3d(k.data(), rows, H, hd, in);
  full_attention(q.data(), rows, k.data(), v.data(), in.valid_tokens, H, hd, a.data());
  linear("self_attn.o", a.data(), rows, D, D, o);
  add_gated(o, 2, 0, rows);

  // Cross-attention to the text context (no modulation, no gate). Image-to-video models put the image
  // tokens first in the context (all but the last text_len rows) and attend to them with their own k/v,
  // adding both attentions before the output projection.
  y.resize(static_cast<size_t>(rows * D));
  if (cfg.cross_attn_norm)
    layer_norm(x, rows, D, eps, w.get("norm3.weight").data(), w.get("norm3.bias").data(), y.data());
  else
    std::copy(x, x + rows * D, y.begin());
  const int64_t image_len = cfg.image_cross_attn() ? in.context_len - cfg.text_len : 0;
  const float* text = in.context + image_len * D;
  const int64_t text_len = in.context_len - image_len;
  linear("cross_attn.q", y.data(), rows, D, D, q);
  linear("cross_attn.k", text, text_len, D, D, k);
  linear("cross_attn.v", text, text_len, D, D, v);
  rms_norm(q.data(), w.get("cross_attn.norm_q.weight").data(), rows, D, eps, q.data());
  rms_norm(k.data(), w.get("cross_attn.norm_k.weight").data(), text_len, D, eps, k.data());
  full_attention(q.data(), rows, k.data(), v.data(), text_len, H, hd, a.data());
  if (image_len > 0) {
    std::vector<float> ki, vi, ai(static_cast<size_t>(rows * D));
    linear("cross_attn.k_img", in.context, image_len, D, D, ki);
    linear("cross_attn.v_img", in.context, image_len, D, D, vi);
    rms_norm(ki.data(), w.get("cross_attn.norm_k_img.weight").data(), image_len, D, eps, ki.data());
    full_attention(q.data(), rows, ki.data(), vi.data(), image_len, H, hd, ai.data());
    for (size_t i = 0; i < a.size(); ++i) a[i] += ai[i];
  }
  linear("cross_attn.o", a.data(), rows, D, D, o);
  add_gated(o, -1, 0, rows);

  // FFN: Linear → GELU(tanh) → Linear, modulated and gated; in.ffn_rows rows
  // at a time (the default is a multiple of the report's row stride, so the
  // rows it samples do not change).
  if (in.ffn_rows <= 0) fail("Wan block: ffn_rows must be positive, got {}", in.ffn_rows);
  std::vector<float> hidden;
  for (int64_t r0 = 0; r0 < rows; r0 += in.ffn_rows) {
    const int64_t n = std::min(in.ffn_rows, rows - r0);
    modulated_norm(3, 4, r0, n, y);
    linear("ffn.0", y.data(), n, D, F, hidden);
    for (float& h : hidden) h = gelu_tanh(h);
    linear("ffn.2", hidden.data(), n, F, D, o);
    add_gated(o, 5, r0, n);
  }
}

}  // namespace lwq
