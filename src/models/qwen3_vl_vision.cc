#include "models/qwen3_vl_vision.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "io/checkpoint.h"
#include "io/json_strict.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

using Json = nlohmann::ordered_json;

constexpr float kLayerNormEps = 1e-6f;  // every LayerNorm of the tower (HF hard-codes it)

// ---- config.json ----

struct VisionKeys {
  const Json& j;
  const std::string& where;

  int64_t integer(const char* key, int64_t def, int64_t min = 1) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_number_integer() || it->get<int64_t>() < min)
      fail("{}: key 'vision_config.{}' must be an integer ≥ {}, got {}", where, key, min, it->dump());
    return it->get<int64_t>();
  }
  std::string string(const char* key, const std::string& def) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_string()) fail("{}: key 'vision_config.{}' must be a string, got {}", where, key, it->dump());
    return it->get<std::string>();
  }
  std::vector<int64_t> integers(const char* key, std::vector<int64_t> def) const {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return def;
    if (!it->is_array()) fail("{}: key 'vision_config.{}' must be a list of integers, got {}", where, key, it->dump());
    std::vector<int64_t> out;
    for (const auto& v : *it) {
      if (!v.is_number_integer()) fail("{}: key 'vision_config.{}' holds {}, not an integer", where, key, v.dump());
      out.push_back(v.get<int64_t>());
    }
    return out;
  }
};

bool supported_act(const std::string& act) {
  return act == "gelu_pytorch_tanh" || act == "gelu_new" || act == "gelu" || act == "quick_gelu" || act == "silu" ||
         act == "relu";
}

// Checks the relations between the values that the tensor shapes alone would
// only reveal as a crash or a silently wrong forward.
void validate(const Qwen3VlVisionConfig& c, const std::string& where) {
  if (c.hidden_size % c.num_heads != 0)
    fail("{}: vision_config.hidden_size {} is not a multiple of vision_config.num_heads {}", where, c.hidden_size,
         c.num_heads);
  if (c.head_dim() % 4 != 0)
    fail("{}: the vision head size {} (hidden_size / num_heads) must be a multiple of 4 for the 2-D rotary embedding",
         where, c.head_dim());
  if (c.grid_side() * c.grid_side() != c.num_position_embeddings)
    fail("{}: vision_config.num_position_embeddings {} must be a perfect square (a square grid of position embeddings)",
         where, c.num_position_embeddings);
  if (!supported_act(c.hidden_act))
    fail("{}: vision_config.hidden_act \"{}\" is not supported (gelu_pytorch_tanh, gelu_new, gelu, quick_gelu, silu, "
         "relu)", where, c.hidden_act);
  std::set<int64_t> seen;
  for (int64_t i : c.deepstack_visual_indexes) {
    if (i < 0 || i >= c.depth)
      fail("{}: vision_config.deepstack_visual_indexes holds {}, outside the {} blocks (depth)", where, i, c.depth);
    if (!seen.insert(i).second) fail("{}: vision_config.deepstack_visual_indexes repeats {}", where, i);
  }
}

// ---- descriptor ----

void add_linear(LayerDesc& d, const std::string& name, int64_t out, int64_t in) {
  d.linears.push_back({name, out, in, true});
}
void add_tensor(LayerDesc& d, const std::string& name, Shape shape) { d.tensors.push_back({name, std::move(shape)}); }
void add_linear_tensors(LayerDesc& d, const std::string& name, int64_t out, int64_t in) {
  add_tensor(d, name + ".weight", {out, in});
  add_tensor(d, name + ".bias", {out});
}
void add_norm_tensors(LayerDesc& d, const std::string& name, int64_t dim) {
  add_tensor(d, name + ".weight", {dim});
  add_tensor(d, name + ".bias", {dim});
}

int deepstack_slot(const Qwen3VlVisionConfig& c, int64_t block) {
  const auto& ds = c.deepstack_visual_indexes;
  auto it = std::find(ds.begin(), ds.end(), block);
  return it == ds.end() ? -1 : static_cast<int>(it - ds.begin());
}

// ---- forward pieces ----


float activate(const std::string& act, float x) {
  if (act == "gelu_pytorch_tanh" || act == "gelu_new") return gelu_tanh(x);
  if (act == "gelu") return gelu_erf(x);
  if (act == "quick_gelu") return x / (1.0f + std::exp(-1.702f * x));
  if (act == "silu") return silu(x);
  return x > 0.0f ? x : 0.0f;  // relu (validated at parse)
}

// torch.linspace(0, end, steps) in float32 as ATen's CPU kernel computes it
// (the first half from the start, the second from the end), so the bilinear
// weights below are bit-identical to HF's.
std::vector<float> linspace_f32(float end, int64_t steps) {
  std::vector<float> v(static_cast<size_t>(steps), 0.0f);
  if (steps < 2) return v;
  const float step = end / static_cast<float>(steps - 1);
  for (int64_t i = 0; i < steps; ++i)
    v[static_cast<size_t>(i)] = i < steps / 2 ? step * static_cast<float>(i)
                                              : end - step * static_cast<float>(steps - i - 1);
  return v;
}

// The position table bilinearly resampled to an h×w patch grid (corners
// aligned: HF fast_pos_embed_interpolate), [h·w, Hv] row-major in (row, col).
std::vector<float> interpolate_positions(const Qwen3VlVisionConfig& c, const float* table, int64_t h, int64_t w) {
  const int64_t G = c.grid_side(), D = c.hidden_size;
  const std::vector<float> hi = linspace_f32(static_cast<float>(G - 1), h), wi = linspace_f32(static_cast<float>(G - 1), w);
  std::vector<float> out(static_cast<size_t>(h * w * D));
  for (int64_t r = 0; r < h; ++r)
    for (int64_t col = 0; col < w; ++col) {
      const float fh = hi[static_cast<size_t>(r)], fw = wi[static_cast<size_t>(col)];
      const int64_t h0 = static_cast<int64_t>(fh), w0 = static_cast<int64_t>(fw);
      const int64_t h1 = std::min(h0 + 1, G - 1), w1 = std::min(w0 + 1, G - 1);
      const float dh = fh - static_cast<float>(h0), dw = fw - static_cast<float>(w0);
      const float wt[4] = {(1 - dh) * (1 - dw), (1 - dh) * dw, dh * (1 - dw), dh * dw};
      const float* e[4] = {table + (h0 * G + w0) * D, table + (h0 * G + w1) * D, table + (h1 * G + w0) * D,
                           table + (h1 * G + w1) * D};
      float* o = out.data() + (r * w + col) * D;
      // Summed in HF's order: ((e0·w0 + e1·w1) + e2·w2) + e3·w3.
      for (int64_t i = 0; i < D; ++i) o[i] = e[0][i] * wt[0] + e[1][i] * wt[1] + e[2][i] * wt[2] + e[3][i] * wt[3];
    }
  return out;
}

// Calls f(token, row, col) for every patch token in the processor's order
// [t, h/M, w/M, M, M], images one after another.
template <class F>
void for_each_token(const Qwen3VlVisionConfig& c, std::span<const ImageGrid> grids, F&& f) {
  const int64_t M = c.spatial_merge_size;
  int64_t token = 0;
  for (size_t g = 0; g < grids.size(); ++g)
    for (int64_t t = 0; t < grids[g].t; ++t)
      for (int64_t bh = 0; bh < grids[g].h / M; ++bh)
        for (int64_t bw = 0; bw < grids[g].w / M; ++bw)
          for (int64_t mh = 0; mh < M; ++mh)
            for (int64_t mw = 0; mw < M; ++mw) f(g, token++, bh * M + mh, bw * M + mw);
}

// x[token] += the interpolated position embedding of its (row, col).
void add_position_embeddings(const Qwen3VlVisionConfig& c, const LayerWeights& w, std::span<const ImageGrid> grids,
                             float* x) {
  std::vector<float> scratch;
  const float* table = w.f32("pos_embed.weight", scratch);
  std::vector<std::vector<float>> per_image;
  for (const ImageGrid& g : grids) per_image.push_back(interpolate_positions(c, table, g.h, g.w));
  const int64_t D = c.hidden_size;
  for_each_token(c, grids, [&](size_t g, int64_t token, int64_t row, int64_t col) {
    const float* p = per_image[g].data() + (row * grids[g].w + col) * D;
    for (int64_t i = 0; i < D; ++i) x[token * D + i] += p[i];
  });
}

// cos/sin of the 2-D rotary angles (HF rot_pos_emb): of the head_dim/2
// rotated pairs, the first head_dim/4 turn with the patch row, the rest with
// its column, at frequencies 10000^(−2k/(head_dim/2)); angles are f32 products.
RopeTable vision_rope_table(const Qwen3VlVisionConfig& c, std::span<const ImageGrid> grids, int64_t tokens) {
  const int64_t quarter = c.head_dim() / 4, half = 2 * quarter;
  std::vector<float> inv(static_cast<size_t>(quarter));
  for (int64_t k = 0; k < quarter; ++k)
    inv[static_cast<size_t>(k)] = 1.0f / std::pow(10000.0f, static_cast<float>(2 * k) / static_cast<float>(half));
  RopeTable t;
  t.rows = tokens, t.half = half;
  t.cos.resize(static_cast<size_t>(tokens * half));
  t.sin.resize(t.cos.size());
  for_each_token(c, grids, [&](size_t, int64_t token, int64_t row, int64_t col) {
    for (int64_t j = 0; j < half; ++j) {
      const float pos = static_cast<float>(j < quarter ? row : col);
      const float angle = pos * inv[static_cast<size_t>(j % quarter)];
      t.cos[static_cast<size_t>(token * half + j)] = static_cast<float>(std::cos(static_cast<double>(angle)));
      t.sin[static_cast<size_t>(token * half + j)] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  });
  return t;
}

// One block: x = x + proj(attn(LN1 x)); x = x + fc2(act(fc1(LN2 x))).
void vision_block(const Qwen3VlVisionConfig& c, const LayerWeights& w, int64_t n, const RopeTable& rope,
                  std::span<const ImageGrid> grids, const BiasedLinears& linear, float* x, int64_t S) {
  const int64_t D = c.hidden_size, hd = c.head_dim(), H = c.num_heads;
  const std::string p = fmt::format("blocks.{}.", n);
  std::vector<float> y(static_cast<size_t>(S * D)), qkv, a(static_cast<size_t>(S * D)), o;
  layer_norm(x, S, D, kLayerNormEps, w.get(p + "norm1.weight").data(), w.get(p + "norm1.bias").data(), y.data());
  linear(p + "attn.qkv", y.data(), S, D, 3 * D, qkv);  // rows [q | k | v], each head-major
  apply_rope(qkv.data(), S, 3 * D, H, hd, rope);
  apply_rope(qkv.data() + D, S, 3 * D, H, hd, rope);
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  int64_t start = 0;
  for (const ImageGrid& g : grids)
    for (int64_t t = 0; t < g.t; ++t, start += g.h * g.w) {  // one segment per (image, temporal slice)
      const float* base = qkv.data() + start * 3 * D;
      FullAttentionDims d{.rows = g.h * g.w, .keys = g.h * g.w, .heads = H, .head_dim = hd, .q_stride = 3 * D,
                          .kv_stride = 3 * D};
      full_attention(base, base + D, base + 2 * D, d, scale, a.data() + start * D);
    }
  linear(p + "attn.proj", a.data(), S, D, D, o);
  add_inplace(x, o.data(), S * D);
  layer_norm(x, S, D, kLayerNormEps, w.get(p + "norm2.weight").data(), w.get(p + "norm2.bias").data(), y.data());
  std::vector<float> hidden;
  linear(p + "mlp.linear_fc1", y.data(), S, D, c.intermediate_size, hidden);
  for (float& v : hidden) v = activate(c.hidden_act, v);
  linear(p + "mlp.linear_fc2", hidden.data(), S, c.intermediate_size, D, o);
  add_inplace(x, o.data(), S * D);
}

// A patch merger (HF Qwen3VLMoeVisionPatchMerger): groups of merge_unit
// consecutive tokens become one row of Hv·M² values, normalised per token
// before the grouping (main merger) or per group after it (deepstack), then
// fc2(GELU_erf(fc1(·))).
std::vector<float> patch_merger(const Qwen3VlVisionConfig& c, const LayerWeights& w, const std::string& name,
                                bool postshuffle_norm, const BiasedLinears& linear, const float* x, int64_t S) {
  const int64_t D = c.hidden_size, MD = c.merged_dim(), rows = S / c.merge_unit();
  std::vector<float> y(static_cast<size_t>(S * D)), h, out;
  const float* nw = w.get(name + ".norm.weight").data();
  const float* nb = w.get(name + ".norm.bias").data();
  if (postshuffle_norm) layer_norm(x, rows, MD, kLayerNormEps, nw, nb, y.data());
  else layer_norm(x, S, D, kLayerNormEps, nw, nb, y.data());
  linear(name + ".linear_fc1", y.data(), rows, MD, MD, h);
  for (float& v : h) v = gelu_erf(v);
  linear(name + ".linear_fc2", h.data(), rows, MD, c.out_hidden_size, out);
  return out;
}

}  // namespace

int64_t Qwen3VlVisionConfig::grid_side() const {
  int64_t g = static_cast<int64_t>(std::sqrt(static_cast<double>(num_position_embeddings)));
  while (g * g > num_position_embeddings) --g;
  while ((g + 1) * (g + 1) <= num_position_embeddings) ++g;
  return g;
}

bool is_qwen3_vl_config(const std::string& json_text) {
  try {
    Json j = Json::parse(json_text);
    auto it = j.find("model_type");
    return it != j.end() && it->is_string() && (*it == "qwen3_vl" || *it == "qwen3_vl_moe");
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

Qwen3VlVisionConfig parse_qwen3_vl_vision_config(const std::string& json_text, const fs::path& where_path) {
  const std::string where = where_path.string();
  Json j = parse_json_strict(json_text, where);
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  auto vc = j.find("vision_config");
  if (vc == j.end() || !vc->is_object()) fail("{}: required key 'vision_config' (an object) is missing", where);
  VisionKeys k{*vc, where};
  Qwen3VlVisionConfig c;
  c.source = where_path;
  c.depth = k.integer("depth", c.depth);
  c.hidden_size = k.integer("hidden_size", c.hidden_size);
  c.intermediate_size = k.integer("intermediate_size", c.intermediate_size);
  c.num_heads = k.integer("num_heads", c.num_heads);
  c.in_channels = k.integer("in_channels", c.in_channels);
  c.patch_size = k.integer("patch_size", c.patch_size);
  c.spatial_merge_size = k.integer("spatial_merge_size", c.spatial_merge_size);
  c.temporal_patch_size = k.integer("temporal_patch_size", c.temporal_patch_size);
  c.out_hidden_size = k.integer("out_hidden_size", c.out_hidden_size);
  c.num_position_embeddings = k.integer("num_position_embeddings", c.num_position_embeddings);
  c.hidden_act = k.string("hidden_act", c.hidden_act);
  c.deepstack_visual_indexes = k.integers("deepstack_visual_indexes", c.deepstack_visual_indexes);
  validate(c, where);
  // The merged image embeddings replace text-token embeddings.
  auto tc = j.find("text_config");
  if (tc != j.end() && tc->is_object()) {
    auto hs = tc->find("hidden_size");
    if (hs != tc->end() && hs->is_number_integer() && hs->get<int64_t>() != c.out_hidden_size)
      fail("{}: vision_config.out_hidden_size {} differs from text_config.hidden_size {} (the image embeddings "
           "replace token embeddings)", where, c.out_hidden_size, hs->get<int64_t>());
  }
  return c;
}

Qwen3VlVisionConfig load_qwen3_vl_vision_config(const fs::path& dir) {
  const fs::path file = fs::is_directory(dir) ? dir / "config.json" : dir;
  if (!fs::exists(file)) fail("{}: config.json not found", file.string());
  return parse_qwen3_vl_vision_config(read_text_file(file), file);
}

LayerDesc qwen3_vl_vision_desc(const Qwen3VlVisionConfig& c) {
  const int64_t D = c.hidden_size, I = c.intermediate_size, MD = c.merged_dim(), O = c.out_hidden_size;
  LayerDesc d;
  d.prefix = kQwen3VlVisualPrefix;
  add_tensor(d, "patch_embed.proj.weight", {D, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_size});
  add_tensor(d, "patch_embed.proj.bias", {D});
  add_tensor(d, "pos_embed.weight", {c.num_position_embeddings, D});
  auto merger = [&](const std::string& name, int64_t norm_dim, bool tensors) {
    if (tensors) {
      add_norm_tensors(d, name + ".norm", norm_dim);
      add_linear_tensors(d, name + ".linear_fc1", MD, MD);
      add_linear_tensors(d, name + ".linear_fc2", O, MD);
    } else {
      add_linear(d, name + ".linear_fc1", MD, MD);
      add_linear(d, name + ".linear_fc2", O, MD);
    }
  };
  for (int64_t n = 0; n < c.depth; ++n) {
    const std::string p = fmt::format("blocks.{}.", n);
    add_norm_tensors(d, p + "norm1", D);
    add_norm_tensors(d, p + "norm2", D);
    add_linear_tensors(d, p + "attn.qkv", 3 * D, D);
    add_linear_tensors(d, p + "attn.proj", D, D);
    add_linear_tensors(d, p + "mlp.linear_fc1", I, D);
    add_linear_tensors(d, p + "mlp.linear_fc2", D, I);
    add_linear(d, p + "attn.qkv", 3 * D, D);
    add_linear(d, p + "attn.proj", D, D);
    add_linear(d, p + "mlp.linear_fc1", I, D);
    add_linear(d, p + "mlp.linear_fc2", D, I);
    if (int s = deepstack_slot(c, n); s >= 0) merger(fmt::format("deepstack_merger_list.{}", s), MD, false);
  }
  merger("merger", D, true);
  merger("merger", D, false);
  for (size_t s = 0; s < c.deepstack_visual_indexes.size(); ++s)
    merger(fmt::format("deepstack_merger_list.{}", s), MD, true);
  return d;
}

void check_qwen3_vl_vision_tensors(const Checkpoint& ckpt, const Qwen3VlVisionConfig& cfg) {
  const LayerDesc d = qwen3_vl_vision_desc(cfg);
  for (const auto& t : d.tensors) {
    const std::string full = d.prefix + "." + t.name;
    if (!ckpt.contains(full)) fail("tensor '{}' is missing from checkpoint {}", full, ckpt.path().string());
    const TensorInfo& info = ckpt.info(full);
    if (info.shape != t.shape)
      fail("tensor '{}' has shape {} but {} (vision_config) implies {}", full, shape_str(info.shape),
           cfg.source.string(), shape_str(t.shape));
  }
}

LayerWeights load_qwen3_vl_vision(const Checkpoint& ckpt, const Qwen3VlVisionConfig& cfg) {
  check_qwen3_vl_vision_tensors(ckpt, cfg);
  const LayerDesc d = qwen3_vl_vision_desc(cfg);
  std::set<std::string> linear_weights;
  for (const auto& lin : d.linears) linear_weights.insert(lin.name + ".weight");
  LayerWeights w;
  w.layer = 0;
  for (const auto& t : d.tensors)
    read_unit_tensor(ckpt, d.prefix + "." + t.name, t.name, linear_weights.count(t.name) != 0, w);
  return w;
}

void check_qwen3_vl_vision_inputs(const Qwen3VlVisionConfig& c, const float* pixel_values, int64_t rows,
                                  int64_t cols, std::span<const ImageGrid> grids) {
  if (grids.empty()) fail("vision tower: grid_thw is empty (no image)");
  int64_t patches = 0;
  for (size_t i = 0; i < grids.size(); ++i) {
    const ImageGrid& g = grids[i];
    if (g.t <= 0 || g.h <= 0 || g.w <= 0)
      fail("vision tower: grid_thw[{}] = [{}, {}, {}] must be positive", i, g.t, g.h, g.w);
    if (g.h % c.spatial_merge_size != 0 || g.w % c.spatial_merge_size != 0)
      fail("vision tower: grid_thw[{}] = [{}, {}, {}]: height and width must be multiples of "
           "vision_config.spatial_merge_size {}", i, g.t, g.h, g.w, c.spatial_merge_size);
    patches += g.patches();
  }
  if (cols != c.patch_dim())
    fail("vision tower: pixel_values rows hold {} values but vision_config implies in_channels·temporal_patch_size·"
         "patch_size² = {}·{}·{}² = {}", cols, c.in_channels, c.temporal_patch_size, c.patch_size, c.patch_dim());
  if (rows != patches)
    fail("vision tower: pixel_values has {} rows (patches) but grid_thw describes Σ t·h·w = {}", rows, patches);
  const int64_t bad = first_non_finite(std::span<const float>(pixel_values, static_cast<size_t>(rows * cols)));
  if (bad >= 0) fail("vision tower: pixel_values holds a non-finite value at row {}, column {}", bad / cols, bad % cols);
}

Qwen3VlVisionOutputs qwen3_vl_vision_forward(const Qwen3VlVisionConfig& c, const LayerWeights& w,
                                             const float* pixel_values, int64_t rows, int64_t cols,
                                             std::span<const ImageGrid> grids, LinearExecutor* exec) {
  check_qwen3_vl_vision_inputs(c, pixel_values, rows, cols, grids);
  const int64_t S = rows, D = c.hidden_size;
  BiasedLinears linear{w, exec};
  // Patch embedding: the Conv3d with kernel = stride is a product with its
  // weight flattened to [Hv, C·Tp·P·P] (the same (C, Tp, P, P) order).
  std::vector<float> x(static_cast<size_t>(S * D)), scratch;
  matmul_nt(pixel_values, S, cols, w.f32("patch_embed.proj.weight", scratch), D, x.data(),
            w.get("patch_embed.proj.bias").data());
  add_position_embeddings(c, w, grids, x.data());
  const RopeTable rope = vision_rope_table(c, grids, S);

  Qwen3VlVisionOutputs out;
  out.tokens = S / c.merge_unit();
  for (int64_t n = 0; n < c.depth; ++n) {
    vision_block(c, w, n, rope, grids, linear, x.data(), S);
    if (int s = deepstack_slot(c, n); s >= 0)
      out.deepstack.push_back(
          patch_merger(c, w, fmt::format("deepstack_merger_list.{}", s), true, linear, x.data(), S));
  }
  out.embeds = patch_merger(c, w, "merger", false, linear, x.data(), S);
  return out;
}

}  // namespace lwq
