#include "processors/smoothing.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "config/module_matcher.h"
#include "ops/gemm.h"
#include "util/error.h"
#include "util/scratch.h"
#include "util/vector_clones.h"

namespace lwq {
namespace {

int type_priority(const std::string& t) {
  if (t == "up-down") return 0;
  if (t == "ov") return 1;
  if (t == "linear-linear") return 2;
  return 3;  // norm-linear
}

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// W[r, :] /= s[r] for a [s.size(), cols] matrix (cols = 1: a bias).
void divide_rows(std::vector<float>& w, const std::vector<float>& s) {
  const size_t cols = w.size() / s.size();
  for (size_t r = 0; r < s.size(); ++r)
    for (size_t c = 0; c < cols; ++c) w[r * cols + c] /= s[r];
}

// Symmetric int8 fake-quant of each row of x [rows, n] (torch.round: half to even).
void q8sym_rows(std::vector<float>& x, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    float* p = x.data() + r * n;
    float m = 0;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(p[i]));
    if (m == 0) continue;  // an all-zero row stays zero (the reference divides by 0)
    const float step = m / 127.0f;
    for (int64_t i = 0; i < n; ++i) p[i] = std::clamp(std::nearbyint(p[i] / step), -127.0f, 127.0f) * step;
  }
}

// Asymmetric int8 fake-quant of the whole tensor (the reference's quant_int8asym).
void q8asym_tensor(std::vector<float>& x) {
  auto [lo, hi] = std::minmax_element(x.begin(), x.end());
  const float mn = *lo, mx = *hi;
  const float scale = std::max((mx - mn) / 255.0f, std::numeric_limits<float>::epsilon());
  const float zp = std::nearbyint(-mn / scale) - 128.0f;
  for (float& v : x) v = (std::nearbyint(v / scale + zp) - zp) * scale;
}

double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s / static_cast<double>(v.size()));
}

const std::vector<double>& search_grid() {
  static const std::vector<double> g = [] {
    std::vector<double> v;
    for (int i = 0; i <= 20; ++i) v.push_back(i * 0.05);
    return v;
  }();
  return g;
}

}  // namespace

SmoothSettings default_smooth_settings(SmoothKind kind) {
  SmoothSettings s;
  s.kind = kind;
  if (kind == SmoothKind::SmoothQuant) {
    s.alpha = 0.5;
    s.enabled_types = {"norm-linear"};
  } else if (kind == SmoothKind::FlexSmoothQuant) {
    s.alpha.reset();
  }
  return s;
}

SmoothSettings smooth_settings_from(const ProcessorConfig& p) {
  SmoothKind kind = p.type == "iter_smooth"         ? SmoothKind::IterSmooth
                    : p.type == "smooth_quant"      ? SmoothKind::SmoothQuant
                    : p.type == "flex_smooth_quant" ? SmoothKind::FlexSmoothQuant
                                                    : (fail("{}: '{}' is not a smoothing processor", p.yaml_path, p.type),
                                                       SmoothKind::IterSmooth);
  SmoothSettings s = default_smooth_settings(kind);
  s.alpha = p.smooth.alpha;
  s.beta = kind == SmoothKind::FlexSmoothQuant ? p.smooth.beta : std::nullopt;
  s.scale_min = p.smooth.scale_min;
  s.symmetric = kind == SmoothKind::FlexSmoothQuant ? true : p.smooth.symmetric;
  s.enabled_types = p.smooth.enable_subgraph_type;
  s.include = p.include;
  s.exclude = p.exclude;
  if (kind != SmoothKind::FlexSmoothQuant && !s.alpha) fail("{}: {} needs alpha", p.yaml_path, p.type);
  return s;
}

// ---- SmoothObserver ----

SmoothObserver::SmoothObserver(std::vector<std::string> watched, int64_t keep_rows) : keep_rows_(keep_rows) {
  for (auto& n : watched) stats_[n];
}

namespace {
// Each channel's running min and max over one row (std::min/max: a NaN in x
// leaves the bound as it was). Cloned (util/vector_clones.h): one pass over
// every Linear input of a smoothing forward.
LWQ_VECTOR_CLONES
void widen_channel_range(const float* x, int64_t in, float* mn, float* mx) {
  for (int64_t c = 0; c < in; ++c) {
    mx[c] = std::max(mx[c], x[c]);
    mn[c] = std::min(mn[c], x[c]);
  }
}
}  // namespace

void SmoothObserver::observe(const std::string& linear_name, const float* x, int64_t rows, int64_t in) {
  auto it = stats_.find(linear_name);
  if (it == stats_.end() || rows <= 0) return;
  ChannelStats& st = it->second;
  if (st.max.empty()) {
    st.max.assign(static_cast<size_t>(in), -std::numeric_limits<float>::infinity());
    st.min.assign(static_cast<size_t>(in), std::numeric_limits<float>::infinity());
  } else if (static_cast<int64_t>(st.max.size()) != in) {
    fail("smoothing observer: '{}' was observed with {} then {} input channels", linear_name, st.max.size(), in);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x + r * in;
    widen_channel_range(p, in, st.min.data(), st.max.data());
    // Reservoir sampling (algorithm R) with a fixed seed: deterministic for a given input order.
    if (keep_rows_ > 0) {
      int64_t slot = -1;
      if (st.sample_rows < keep_rows_) {
        slot = st.sample_rows++;
        st.sample.resize(static_cast<size_t>(st.sample_rows * in));
      } else {
        const auto j = static_cast<int64_t>(splitmix(st.rng) % static_cast<uint64_t>(st.rows + 1));
        if (j < keep_rows_) slot = j;
      }
      if (slot >= 0) std::copy(p, p + in, st.sample.begin() + slot * in);
    }
    ++st.rows;
  }
}

const ChannelStats& SmoothObserver::stats(const std::string& linear_name) const {
  auto it = stats_.find(linear_name);
  if (it == stats_.end() || it->second.rows == 0)
    fail("smoothing: no calibration input was observed for '{}'", linear_name);
  return it->second;
}

// ---- formulas ----

std::vector<float> activation_shift(const ChannelStats& st) {
  std::vector<float> s(st.max.size());
  for (size_t c = 0; c < s.size(); ++c) s[c] = (st.max[c] + st.min[c]) / 2;
  return s;
}

std::vector<float> activation_scale(const ChannelStats& st, bool symmetric) {
  std::vector<float> a(st.max.size());
  for (size_t c = 0; c < a.size(); ++c)
    a[c] = symmetric ? std::max(std::fabs(st.max[c]), std::fabs(st.min[c])) : (st.max[c] - st.min[c]) / 2;
  return a;
}

std::vector<float> weight_scale(const std::vector<std::pair<const float*, int64_t>>& weights, int64_t in) {
  std::vector<float> w(static_cast<size_t>(in), 0.0f);
  for (const auto& [p, rows] : weights)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < in; ++c) w[static_cast<size_t>(c)] = std::max(w[static_cast<size_t>(c)], std::fabs(p[r * in + c]));
  for (float& v : w) v = std::max(v, 1e-5f);
  return w;
}

std::vector<float> weight_scale(const LayerWeights& w, const std::string& name, int64_t in) {
  const int64_t rows = w.numel(name) / in;
  const int64_t block = std::clamp<int64_t>((int64_t{1} << 20) / in, 1, std::max<int64_t>(rows, 1));
  Scratch<float> buf(static_cast<size_t>(block * in));
  std::vector<float> out(static_cast<size_t>(in), 0.0f);
  for (int64_t r = 0; r < rows; r += block) {
    const int64_t n = std::min(block, rows - r);
    w.rows_f32(name, r, r + n, in, buf.data());
    for (int64_t i = 0; i < n; ++i) {
      const float* row = buf.data() + i * in;
      for (int64_t c = 0; c < in; ++c) out[static_cast<size_t>(c)] = std::max(out[static_cast<size_t>(c)], std::fabs(row[c]));
    }
  }
  for (float& v : out) v = std::max(v, 1e-5f);  // as weight_scale's clamp
  return out;
}

std::vector<float> smooth_scale(const std::vector<float>& a, const std::vector<float>& w, double alpha, double beta,
                                double scale_min) {
  if (a.size() != w.size()) fail("smooth_scale: {} activation vs {} weight channels", a.size(), w.size());
  std::vector<float> s(a.size());
  for (size_t c = 0; c < s.size(); ++c)
    s[c] = static_cast<float>(std::max(std::pow(double(a[c]), alpha) / std::pow(double(w[c]), beta), scale_min));
  return s;
}

OvScales ov_scales_mean(const std::vector<float>& s, int64_t num_heads, int64_t num_kv_heads, int64_t head_dim) {
  const int64_t ratio = num_heads / num_kv_heads;
  OvScales r;
  r.v.assign(static_cast<size_t>(num_kv_heads * head_dim), 0.0f);
  r.o.resize(static_cast<size_t>(num_heads * head_dim));
  for (int64_t g = 0; g < num_kv_heads; ++g)
    for (int64_t d = 0; d < head_dim; ++d) {
      double sum = 0;
      for (int64_t h = g * ratio; h < (g + 1) * ratio; ++h) sum += s[static_cast<size_t>(h * head_dim + d)];
      r.v[static_cast<size_t>(g * head_dim + d)] = static_cast<float>(sum / static_cast<double>(ratio));
    }
  for (int64_t h = 0; h < num_heads; ++h)
    for (int64_t d = 0; d < head_dim; ++d)
      r.o[static_cast<size_t>(h * head_dim + d)] = r.v[static_cast<size_t>((h / ratio) * head_dim + d)];
  return r;
}

OvScales ov_scales_max(const std::vector<float>& a, const std::vector<float>& w, double alpha, double beta,
                       int64_t num_heads, int64_t num_kv_heads, int64_t head_dim) {
  const int64_t ratio = num_heads / num_kv_heads;
  OvScales r;
  r.v.resize(static_cast<size_t>(num_kv_heads * head_dim));
  r.o.resize(static_cast<size_t>(num_heads * head_dim));
  for (int64_t g = 0; g < num_kv_heads; ++g)
    for (int64_t d = 0; d < head_dim; ++d) {
      float am = 0, wm = 0;
      for (int64_t h = g * ratio; h < (g + 1) * ratio; ++h) {
        am = std::max(am, a[static_cast<size_t>(h * head_dim + d)]);
        wm = std::max(wm, w[static_cast<size_t>(h * head_dim + d)]);
      }
      r.v[static_cast<size_t>(g * head_dim + d)] =
          static_cast<float>(std::max(std::pow(double(am), alpha) / std::pow(double(wm), beta), 1e-5));
    }
  for (int64_t h = 0; h < num_heads; ++h)
    for (int64_t d = 0; d < head_dim; ++d)
      r.o[static_cast<size_t>(h * head_dim + d)] = r.v[static_cast<size_t>((h / ratio) * head_dim + d)];
  return r;
}

// ---- flex search ----

namespace {

// One subgraph's search problem: the float reference and per-channel maxima
// are computed once for the 42 evaluations of a grid search.
class FlexProblem {
 public:
  FlexProblem(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, bool act_sym)
      : x_(x), w_(w), rows_(rows), in_(in), out_(out), act_sym_(act_sym) {
    ref_.resize(static_cast<size_t>(rows * out));
    matmul_nt(x, rows, in, w, out, ref_.data());
    normal_ = rms(ref_);
    ax_.assign(static_cast<size_t>(in), 0.0f);
    aw_.assign(static_cast<size_t>(in), 0.0f);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < in; ++c) ax_[static_cast<size_t>(c)] = std::max(ax_[static_cast<size_t>(c)], std::fabs(x[r * in + c]));
    for (int64_t r = 0; r < out; ++r)
      for (int64_t c = 0; c < in; ++c) aw_[static_cast<size_t>(c)] = std::max(aw_[static_cast<size_t>(c)], std::fabs(w[r * in + c]));
  }

  double error(double alpha, double beta) const {
    const auto in = static_cast<size_t>(in_);
    std::vector<float> s(in);
    for (size_t c = 0; c < in; ++c) {
      const double v = std::pow(double(ax_[c]), alpha) * std::pow(double(aw_[c]), -beta);
      // A dead channel (0 or ∞ scale) would make NaNs in the reference; leave it unscaled.
      s[c] = (std::isfinite(v) && v > 0) ? static_cast<float>(v) : 1.0f;
    }
    std::vector<float> xs(x_, x_ + rows_ * in_), ws(w_, w_ + out_ * in_);
    for (size_t i = 0; i < xs.size(); ++i) xs[i] /= s[i % in];
    for (size_t i = 0; i < ws.size(); ++i) ws[i] *= s[i % in];
    q8sym_rows(ws, out_, in_);
    if (act_sym_) q8sym_rows(xs, rows_, in_);
    else q8asym_tensor(xs);
    std::vector<float> y(ref_.size());
    matmul_nt(xs.data(), rows_, in_, ws.data(), out_, y.data());
    for (size_t i = 0; i < y.size(); ++i) y[i] -= ref_[i];
    return normal_ > 0 ? rms(y) / normal_ : rms(y);
  }

 private:
  const float *x_, *w_;
  int64_t rows_, in_, out_;
  bool act_sym_;
  std::vector<float> ref_, ax_, aw_;
  double normal_ = 0;
};

}  // namespace

double flex_quant_error(const float* x, int64_t rows, int64_t in, const float* w, int64_t out, double alpha,
                        double beta, bool act_sym) {
  return FlexProblem(x, rows, in, w, out, act_sym).error(alpha, beta);
}

FlexChoice flex_search(const float* x, int64_t rows, int64_t in, const float* w, int64_t out,
                       std::optional<double> alpha, std::optional<double> beta, bool act_sym) {
  const FlexProblem p(x, rows, in, w, out, act_sym);
  FlexChoice best;
  best.error = std::numeric_limits<double>::infinity();
  if (alpha) {
    best.alpha = *alpha;
    best.beta = beta.value_or(1.0 - *alpha);
    best.error = p.error(best.alpha, best.beta);
  } else {
    for (double a : search_grid()) {
      const double b = beta.value_or(1.0 - a);
      const double e = p.error(a, b);
      if (e <= best.error) best = {a, b, e};
    }
  }
  if (!beta) {
    const double a = best.alpha;
    for (double b : search_grid()) {
      const double e = p.error(a, b);
      if (e <= best.error) best = {a, b, e};
    }
  }
  return best;
}

// ---- LayerSmoother ----

std::vector<std::string> undeclared_subgraph_types(const Architecture& arch, const std::vector<std::string>& types) {
  std::vector<std::string> out;
  for (const auto& t : types) {
    bool found = std::any_of(arch.smooth_subgraphs.begin(), arch.smooth_subgraphs.end(),
                             [&](const SmoothSubgraph& g) { return g.type == t; });
    if (!found) out.push_back(t);
  }
  return out;
}

LayerSmoother::LayerSmoother(SmoothSettings settings, const ModelConfig& cfg, const Architecture& arch,
                             std::string layer_prefix)
    : s_(std::move(settings)),
      num_heads_(cfg.num_attention_heads),
      num_kv_heads_(cfg.num_key_value_heads),
      head_dim_(cfg.head_dim) {
  std::vector<std::string> watched;
  for (const auto& g : arch.smooth_subgraphs) {
    if (std::find(s_.enabled_types.begin(), s_.enabled_types.end(), g.type) == s_.enabled_types.end()) continue;
    if (s_.kind == SmoothKind::SmoothQuant && g.type != "norm-linear") continue;  // §1.6: norm→linear only
    if (g.targets.empty()) fail("smoothing subgraph '{}' of {} has no targets", g.source, arch.family);
    bool selected = true;
    for (const auto& t : g.targets) selected = selected && is_selected(s_.include, s_.exclude, layer_prefix + "." + t);
    if (g.type != "norm-linear") selected = selected && is_selected(s_.include, s_.exclude, layer_prefix + "." + g.source);
    if (!selected) continue;
    if (g.type == "ov" && (cfg.num_key_value_heads <= 0 || cfg.num_attention_heads % cfg.num_key_value_heads != 0))
      fail("ov smoothing needs num_attention_heads ({}) divisible by num_key_value_heads ({})",
           cfg.num_attention_heads, cfg.num_key_value_heads);
    subgraphs_.push_back(g);
    watched.push_back(g.targets.front());
  }
  std::stable_sort(subgraphs_.begin(), subgraphs_.end(), [](const SmoothSubgraph& a, const SmoothSubgraph& b) {
    return type_priority(a.type) < type_priority(b.type);
  });
  const bool search = s_.kind == SmoothKind::FlexSmoothQuant && (!s_.alpha || !s_.beta);
  observer_ = SmoothObserver(std::move(watched), search ? s_.max_search_rows : 0);
}

SmoothResult LayerSmoother::apply(LayerWeights& w) {
  SmoothResult res;
  for (const auto& g : subgraphs_) apply_one(g, w, res);
  return res;
}

void LayerSmoother::apply_one(const SmoothSubgraph& g, LayerWeights& w, SmoothResult& res) {
  const ChannelStats& st = observer_.stats(g.targets.front());
  const auto in = static_cast<int64_t>(st.max.size());
  const bool flex = s_.kind == SmoothKind::FlexSmoothQuant;
  // Asymmetric shift only for norm-linear (its replaced norm carries the bias).
  const bool asym = !s_.symmetric && !flex && g.type == "norm-linear";
  std::vector<float> a = activation_scale(st, !asym);

  // The targets' column maxima, one target at a time in f32: a stored 16-bit
  // weight stays stored, its scalings recorded (LayerWeights::scalings).
  std::vector<float> scratch, wsc;
  for (const auto& t : g.targets) {
    const int64_t size = w.numel(t + ".weight");
    if (size % in != 0) fail("smoothing: '{}' does not have {} input channels", t, in);
    std::vector<float> one = weight_scale(w, t + ".weight", in);
    if (wsc.empty()) wsc = std::move(one);
    else
      for (size_t c = 0; c < wsc.size(); ++c) wsc[c] = std::max(wsc[c], one[c]);
  }

  SmoothedSubgraph done{g.type, g.source, g.targets, {}, 0, 0};
  if (flex) {
    FlexChoice c;
    if (s_.alpha && s_.beta) {
      c.alpha = *s_.alpha, c.beta = *s_.beta;
    } else {
      std::vector<float> cat;  // the targets' weights stacked [Σ rows, in]
      for (const auto& t : g.targets) {
        const float* p = w.f32(t + ".weight", scratch);
        cat.insert(cat.end(), p, p + w.numel(t + ".weight"));
      }
      c = flex_search(st.sample.data(), st.sample_rows, in, cat.data(), static_cast<int64_t>(cat.size()) / in,
                      s_.alpha, s_.beta);
    }
    done.alpha = c.alpha, done.beta = c.beta;
  } else {
    done.alpha = *s_.alpha, done.beta = 1.0 - *s_.alpha;
  }
  const double smin = s_.kind == SmoothKind::IterSmooth ? s_.scale_min : 1e-5;

  if (g.type == "ov") {
    const int64_t nh = num_heads_, nkv = num_kv_heads_, hd = head_dim_;
    if (in != nh * hd) fail("ov smoothing: '{}' has {} inputs, expected heads×head_dim = {}", g.targets[0], in, nh * hd);
    OvScales ov = flex ? ov_scales_max(a, wsc, done.alpha, done.beta, nh, nkv, hd)
                       : ov_scales_mean(smooth_scale(a, wsc, done.alpha, done.beta, smin), nh, nkv, hd);
    for (const auto& t : g.targets) w.scale_columns(t + ".weight", ov.o);
    w.divide_rows(g.source + ".weight", ov.v);
    if (w.contains(g.source + ".bias")) divide_rows(w.mutable_f32(g.source + ".bias"), ov.v);
    done.scales = std::move(ov.v);
    res.subgraphs.push_back(std::move(done));
    return;
  }

  std::vector<float> s = smooth_scale(a, wsc, done.alpha, done.beta, smin);
  std::vector<float> shift = asym ? activation_shift(st) : std::vector<float>(static_cast<size_t>(in), 0.0f);
  for (const auto& t : g.targets) {
    if (asym) {  // the target absorbs the shift: b += W·shift (W before scaling)
      const float* m = w.f32(t + ".weight", scratch);
      const int64_t out = w.numel(t + ".weight") / in;
      const std::string bn = t + ".bias";
      if (!w.contains(bn)) {
        w.tensors[bn].assign(static_cast<size_t>(out), 0.0f);
        res.added_tensors.push_back(bn);
      }
      auto& b = w.mutable_f32(bn);
      for (int64_t r = 0; r < out; ++r) {
        double acc = 0;
        for (int64_t c = 0; c < in; ++c) acc += double(m[static_cast<size_t>(r * in + c)]) * shift[static_cast<size_t>(c)];
        b[static_cast<size_t>(r)] += static_cast<float>(acc);
      }
    }
    w.scale_columns(t + ".weight", s);
  }
  if (g.type == "norm-linear") {
    auto& gw = w.mutable_f32(g.source + ".weight");
    for (size_t c = 0; c < gw.size(); ++c) gw[c] /= s[c];
    // iter_smooth / smooth_quant replace the norm by an RMSNorm; smooth_quant's
    // always has a bias, iter_smooth's only when asymmetric or already biased.
    const std::string bn = g.source + ".bias";
    const bool had_bias = w.contains(bn);
    const bool bias = !flex && (s_.kind == SmoothKind::SmoothQuant || asym || had_bias);
    if (bias) {
      if (!had_bias) {
        w.tensors[bn].assign(gw.size(), 0.0f);
        res.added_tensors.push_back(bn);
      }
      auto& b = w.mutable_f32(bn);
      for (size_t c = 0; c < b.size(); ++c) b[c] = (b[c] - shift[c]) / s[c];
    } else if (had_bias) {
      auto& b = w.mutable_f32(bn);
      for (size_t c = 0; c < b.size(); ++c) b[c] /= s[c];
    }
  } else {  // up-down, linear-linear: the source Linear's output rows
    w.divide_rows(g.source + ".weight", s);
    if (w.contains(g.source + ".bias")) divide_rows(w.mutable_f32(g.source + ".bias"), s);
  }
  done.scales = std::move(s);
  res.subgraphs.push_back(std::move(done));
}

}  // namespace lwq
