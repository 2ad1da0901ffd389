#include "models/quarot.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "io/checkpoint.h"
#include "ops/gemm.h"
#include "util/error.h"

namespace lwq {
namespace {

bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

bool is_prime(int64_t q) {
  if (q < 2) return false;
  for (int64_t d = 2; d * d <= q; ++d)
    if (q % d == 0) return false;
  return true;
}

using Mat = std::vector<int8_t>;

// Jacobsthal matrix Q[i][j] = χ(j − i), χ the quadratic character mod prime q.
Mat jacobsthal(int64_t q) {
  std::vector<int8_t> chi(static_cast<size_t>(q), -1);
  chi[0] = 0;
  for (int64_t x = 1; x < q; ++x) chi[static_cast<size_t>(x * x % q)] = 1;
  Mat m(static_cast<size_t>(q * q));
  for (int64_t i = 0; i < q; ++i)
    for (int64_t j = 0; j < q; ++j) m[static_cast<size_t>(i * q + j)] = chi[static_cast<size_t>(((j - i) % q + q) % q)];
  return m;
}

// Paley I, order q + 1 (q ≡ 3 mod 4): H = [[1, 1ᵀ], [−1, Q + I]].
Mat paley1(int64_t q) {
  const int64_t n = q + 1;
  Mat j = jacobsthal(q), h(static_cast<size_t>(n * n));
  auto at = [&](int64_t r, int64_t c) -> int8_t& { return h[static_cast<size_t>(r * n + c)]; };
  for (int64_t c = 0; c < n; ++c) at(0, c) = 1;
  for (int64_t r = 1; r < n; ++r) {
    at(r, 0) = -1;
    for (int64_t c = 1; c < n; ++c)
      at(r, c) = static_cast<int8_t>(j[static_cast<size_t>((r - 1) * q + (c - 1))] + (r == c ? 1 : 0));
  }
  return h;
}

// Paley II, order 2(q + 1) (q ≡ 1 mod 4): the symmetric conference matrix
// C = [[0, 1ᵀ], [1, Q]] with 0 → [[1, −1], [−1, −1]] and ±1 → ±[[1, 1], [1, −1]].
Mat paley2(int64_t q) {
  const int64_t m = q + 1, n = 2 * m;
  Mat j = jacobsthal(q), h(static_cast<size_t>(n * n));
  for (int64_t r = 0; r < m; ++r)
    for (int64_t c = 0; c < m; ++c) {
      int v = (r == 0 && c == 0) ? 0 : (r == 0 || c == 0) ? 1 : j[static_cast<size_t>((r - 1) * q + (c - 1))];
      int blk[2][2];
      if (v == 0) blk[0][0] = 1, blk[0][1] = -1, blk[1][0] = -1, blk[1][1] = -1;
      else blk[0][0] = v, blk[0][1] = v, blk[1][0] = v, blk[1][1] = -v;
      for (int a = 0; a < 2; ++a)
        for (int b = 0; b < 2; ++b) h[static_cast<size_t>((2 * r + a) * n + 2 * c + b)] = static_cast<int8_t>(blk[a][b]);
    }
  return h;
}

// The odd-part base matrix for order m (1, Paley I or Paley II), empty if none.
Mat base_hadamard(int64_t m) {
  if (m == 1) return Mat{1};
  if (m == 2) return Mat{1, 1, 1, -1};
  if (m % 4 != 0) return {};
  if (is_prime(m - 1) && (m - 1) % 4 == 3) return paley1(m - 1);
  if (is_prime(m / 2 - 1) && (m / 2 - 1) % 4 == 1) return paley2(m / 2 - 1);
  return {};
}

// Smallest m with n = m·2^k that has a base matrix (the rest is Sylvester
// doubling), 0 if none.
int64_t base_order(int64_t n) {
  int64_t odd = n;
  while (odd % 2 == 0) odd /= 2;
  for (int64_t m = odd; m <= n; m *= 2)
    if (!base_hadamard(m).empty()) return m;
  return 0;
}

}  // namespace

bool hadamard_order_supported(int64_t n) { return n >= 1 && base_order(n) != 0; }

std::vector<int8_t> hadamard_matrix(int64_t n) {
  if (n < 1) fail("Hadamard order must be positive, got {}", n);
  const int64_t m = base_order(n);
  if (m == 0) fail("no Hadamard matrix of order {} (supported: m·2^k with m = 1, a Paley order q+1 or 2(q+1))", n);
  Mat h = base_hadamard(m);
  int64_t cur = m;
  while (cur < n) {  // Sylvester doubling: [[H, H], [H, −H]]
    Mat d(static_cast<size_t>(4 * cur * cur));
    const int64_t c2 = 2 * cur;
    for (int64_t r = 0; r < cur; ++r)
      for (int64_t c = 0; c < cur; ++c) {
        int8_t v = h[static_cast<size_t>(r * cur + c)];
        d[static_cast<size_t>(r * c2 + c)] = v;
        d[static_cast<size_t>(r * c2 + c + cur)] = v;
        d[static_cast<size_t>((r + cur) * c2 + c)] = v;
        d[static_cast<size_t>((r + cur) * c2 + c + cur)] = static_cast<int8_t>(-v);
      }
    h.swap(d);
    cur = c2;
  }
  return h;
}

std::vector<float> random_hadamard(int64_t n, uint64_t seed) {
  Mat h = hadamard_matrix(n);
  std::mt19937_64 rng(seed);
  const double norm = 1.0 / std::sqrt(static_cast<double>(n));
  std::vector<float> r(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i) {
    const double sign = (rng() & 1) ? 1.0 : -1.0;
    for (int64_t j = 0; j < n; ++j)
      r[static_cast<size_t>(i * n + j)] = static_cast<float>(sign * h[static_cast<size_t>(i * n + j)] * norm);
  }
  return r;
}

BlockRotation::BlockRotation(int64_t size, std::vector<float> block) : size_(size), block_(std::move(block)) {
  b_ = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(block_.size()))));
  if (b_ <= 0 || b_ * b_ != static_cast<int64_t>(block_.size()) || size % b_ != 0)
    fail("rotation block of {} elements does not tile a {}×{} matrix", block_.size(), size, size);
  block_t_.resize(block_.size());
  for (int64_t i = 0; i < b_; ++i)
    for (int64_t j = 0; j < b_; ++j) block_t_[static_cast<size_t>(j * b_ + i)] = block_[static_cast<size_t>(i * b_ + j)];
}

BlockRotation BlockRotation::hadamard(int64_t size, int64_t b, uint64_t seed) {
  if (b <= 0 || size % b != 0) fail("a {}-wide Hadamard block does not tile a {}×{} matrix", b, size, size);
  BlockRotation r;
  r.size_ = size;
  r.b_ = b;
  r.seed_ = seed;
  r.fast_ = true;
  r.m_ = base_order(b);
  Mat base = base_hadamard(r.m_);
  r.base_.assign(base.begin(), base.end());
  std::mt19937_64 rng(seed);  // the same draws as random_hadamard
  r.signs_.resize(static_cast<size_t>(b));
  for (auto& v : r.signs_) v = (rng() & 1) ? 1.0f : -1.0f;
  return r;
}

void BlockRotation::apply_block(float* v, int64_t stride, int64_t width) const {
  auto at = [&](int64_t i) { return v + i * stride; };
  for (int64_t i = 0; i < b_; ++i) {
    float* x = at(i);
    const float sg = signs_[static_cast<size_t>(i)];
    for (int64_t j = 0; j < width; ++j) x[j] *= sg;
  }
  // Index i = a·m + c: x·kron(H_{2^k}, base) = base along c, then a Walsh–Hadamard
  // butterfly along a (H_{2^k} is symmetric).
  if (m_ > 1) {
    std::vector<float> tmp(static_cast<size_t>(m_ * width));
    for (int64_t a0 = 0; a0 < b_; a0 += m_) {
      std::fill(tmp.begin(), tmp.end(), 0.0f);
      for (int64_t c = 0; c < m_; ++c) {
        const float* x = at(a0 + c);
        for (int64_t c2 = 0; c2 < m_; ++c2) {
          const float h = base_[static_cast<size_t>(c * m_ + c2)];
          float* t = tmp.data() + c2 * width;
          for (int64_t j = 0; j < width; ++j) t[j] += h * x[j];
        }
      }
      for (int64_t c = 0; c < m_; ++c) std::copy_n(tmp.data() + c * width, width, at(a0 + c));
    }
  }
  const int64_t n2 = b_ / m_;
  for (int64_t h = 1; h < n2; h *= 2)
    for (int64_t a = 0; a < n2; a += 2 * h)
      for (int64_t a1 = a; a1 < a + h; ++a1)
        for (int64_t c = 0; c < m_; ++c) {
          float* x = at(a1 * m_ + c);
          float* y = at((a1 + h) * m_ + c);
          for (int64_t j = 0; j < width; ++j) {
            const float u = x[j], w = y[j];
            x[j] = u + w;
            y[j] = u - w;
          }
        }
  const float norm = static_cast<float>(1.0 / std::sqrt(static_cast<double>(b_)));
  for (int64_t i = 0; i < b_; ++i) {
    float* x = at(i);
    for (int64_t j = 0; j < width; ++j) x[j] *= norm;
  }
}

void BlockRotation::right(float* w, int64_t rows, int64_t cols) const {
  if (cols % b_ != 0) fail("cannot rotate {} columns with {}-wide Hadamard blocks", cols, b_);
  if (fast_) {
    // Every b-element block of every row is one vector of scalars: 16 rows'
    // blocks are transposed into a [b, 16] tile, so the butterflies run 16
    // lanes wide (one row at a time they are scalar code, a fifth of a
    // rotated run's CPU on a 2048-wide model).
    constexpr int64_t kTile = 16;
    const int64_t nb = cols / b_, tiles = (rows + kTile - 1) / kTile;
#pragma omp parallel
    {
      std::vector<float> t(static_cast<size_t>(b_ * kTile));
#pragma omp for collapse(2) schedule(static)
      for (int64_t tr = 0; tr < tiles; ++tr)
        for (int64_t k = 0; k < nb; ++k) {
          const int64_t r0 = tr * kTile, nr = std::min(kTile, rows - r0);
          for (int64_t r = 0; r < nr; ++r) {
            const float* src = w + (r0 + r) * cols + k * b_;
            for (int64_t i = 0; i < b_; ++i) t[static_cast<size_t>(i * kTile + r)] = src[i];
          }
          apply_block(t.data(), kTile, nr);
          for (int64_t r = 0; r < nr; ++r) {
            float* dst = w + (r0 + r) * cols + k * b_;
            for (int64_t i = 0; i < b_; ++i) dst[i] = t[static_cast<size_t>(i * kTile + r)];
          }
        }
    }
    return;
  }
  // Row-major [rows, nb·b] is [rows·nb, b]: one product with the block.
  const int64_t n = rows * (cols / b_);
  std::vector<float> out(static_cast<size_t>(n * b_));
  matmul_nn(w, n, b_, block_.data(), b_, out.data());
  std::copy(out.begin(), out.end(), w);
}

void BlockRotation::left(float* w, int64_t rows, int64_t cols) const {
  if (rows % b_ != 0) fail("cannot rotate {} rows with {}-wide Hadamard blocks", rows, b_);
  if (fast_) {  // (Bᵀ·W)[j, :] = Σ_i B[i, j]·W[i, :]: the same transform on whole rows
    constexpr int64_t kChunk = 256;
    const int64_t nchunks = (cols + kChunk - 1) / kChunk;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t r0 = 0; r0 < rows; r0 += b_)
      for (int64_t c = 0; c < nchunks; ++c)
        apply_block(w + r0 * cols + c * kChunk, cols, std::min(kChunk, cols - c * kChunk));
    return;
  }
  std::vector<float> out(static_cast<size_t>(b_ * cols));
  for (int64_t r0 = 0; r0 < rows; r0 += b_) {
    float* blk = w + r0 * cols;
    matmul_nn(block_t_.data(), b_, b_, blk, cols, out.data());
    std::copy(out.begin(), out.end(), blk);
  }
}

std::vector<float> BlockRotation::block() const { return fast_ ? random_hadamard(b_, seed_) : block_; }

std::vector<float> BlockRotation::dense() const {
  const std::vector<float> blk = block();
  std::vector<float> d(static_cast<size_t>(size_ * size_), 0.0f);
  for (int64_t k = 0; k < size_ / b_; ++k)
    for (int64_t i = 0; i < b_; ++i)
      for (int64_t j = 0; j < b_; ++j)
        d[static_cast<size_t>((k * b_ + i) * size_ + k * b_ + j)] = blk[static_cast<size_t>(i * b_ + j)];
  return d;
}

QuarotSettings quarot_settings_from(const ProcessorConfig& p) {
  if (p.type != "quarot") fail("{}: '{}' is not a quarot processor", p.yaml_path, p.type);
  if (!p.quarot.online && !p.quarot.down_proj_online_layers.empty())
    fail("{}: down_proj_online_layers needs online: true", p.yaml_path);
  QuarotSettings s;
  s.block_size = p.quarot.block_size;
  s.max_tp_size = p.quarot.max_tp_size;
  s.export_extra_info = p.quarot.export_extra_info;
  s.online = p.quarot.online;
  s.down_proj_online_layers = p.quarot.down_proj_online_layers;
  return s;
}

std::pair<int64_t, int64_t> kronecker_factors(int64_t size) {
  auto allowed = [](int64_t v) { return v == 1 || v == 2 || (v % 4 == 0 && v >= 4 && v <= 256); };
  if (size <= 0) fail("cannot split {} into Kronecker factors", size);
  int64_t a = static_cast<int64_t>(std::sqrt(static_cast<double>(size)));
  while (a * a < size) ++a;
  while (a > 1 && (a - 1) * (a - 1) >= size) --a;
  for (; a <= 256; ++a) {
    const int64_t t = a * a - size;
    auto b = static_cast<int64_t>(std::sqrt(static_cast<double>(t)));
    while (b * b > t) --b;
    while ((b + 1) * (b + 1) <= t) ++b;
    if (b * b == t && allowed(a - b) && allowed(a + b)) return {a - b, a + b};
  }
  fail("{} is not a product (a − b)·(a + b) of two Kronecker factor orders (1, 2 or multiples of 4 up to 256)",
       size);
}

namespace {

// blockdiag of the random Hadamard of order b over `size` (a multiple of b), dense.
std::vector<float> block_hadamard(int64_t size, int64_t b, uint64_t seed) {
  return BlockRotation::hadamard(size, b, seed).dense();
}

QuarotOnline make_online_plan(const ModelConfig& cfg, const QuarotSettings& s, const std::string& at) {
  QuarotOnline on;
  if (!s.online) return on;
  const int64_t tp = s.max_tp_size, heads = cfg.num_attention_heads;
  if (!is_pow2(tp)) fail("{}: max_tp_size must be a power of two >= 1, got {}", at, tp);
  if (heads % tp != 0)
    fail("{}: online rotation mixes the attention heads in blocks of max_tp_size = {}, but num_attention_heads {} "
         "is not a multiple of it; choose a max_tp_size that divides it",
         at, tp, heads);
  on.heads = KroneckerRotation(block_hadamard(heads, tp, s.seed), heads, {}, cfg.head_dim);
  if (s.down_proj_online_layers.empty()) return on;
  for (int64_t k : s.down_proj_online_layers) {
    if (k < 0 || k >= cfg.num_hidden_layers)
      fail("{}: down_proj_online_layers lists layer {}, but the model has layers 0 to {}", at, k,
           cfg.num_hidden_layers - 1);
    if (cfg.is_moe_layer(static_cast<int>(k)))
      fail("{}: down_proj_online_layers lists layer {}, a mixture-of-experts layer without a dense down_proj "
           "(the reference rotates dense MLPs only)",
           at, k);
    on.down_layers.insert(static_cast<int>(k));
  }
  const int64_t I = cfg.intermediate_size;
  std::pair<int64_t, int64_t> mn;
  try {
    mn = kronecker_factors(I);
  } catch (const Error& e) {
    fail("{}: down_proj's online rotation needs intermediate_size split into two factors: {}", at, e.what());
  }
  const auto [m, n] = mn;
  if (m % tp != 0)
    fail("{}: down_proj's online rotation splits intermediate_size {} as {} × {}; its first factor must be a "
         "multiple of max_tp_size {}",
         at, I, m, n, tp);
  if (!hadamard_order_supported(n))
    fail("{}: down_proj's online rotation splits intermediate_size {} as {} × {}, and lwquant has no Hadamard "
         "matrix of order {}",
         at, I, m, n, n);
  on.down = KroneckerRotation(block_hadamard(m, tp, s.seed), m, random_hadamard(n, s.seed), n);
  return on;
}

}  // namespace

QuarotPlan make_quarot_plan(const ModelConfig& cfg, const QuarotSettings& s, const std::string& where) {
  const std::string at = where.empty() ? "quarot" : where;
  const int64_t H = cfg.hidden_size, hd = cfg.head_dim;
  if (s.block_size != -1 && !is_pow2(s.block_size))
    fail("{}: block_size must be -1 or a positive power of two, got {}", at, s.block_size);
  if (s.block_size != -1 && H % s.block_size != 0)
    fail("{}: block_size {} does not divide hidden_size {}", at, s.block_size, H);
  const int64_t b = s.block_size == -1 ? H : s.block_size;
  if (!hadamard_order_supported(b))
    fail("{}: no Hadamard matrix of order {} (hidden_size); use a power-of-two block_size that divides it", at, b);
  // The head rotation: whole head_dim, or the block size when it is smaller.
  const int64_t bh = s.block_size == -1 ? hd : std::min(s.block_size, hd);
  if (hd % bh != 0 || !hadamard_order_supported(bh))
    fail("{}: no Hadamard rotation of order {} for head_dim {}", at, bh, hd);
  QuarotPlan p;
  p.hidden = BlockRotation::hadamard(H, b, s.seed);
  p.head = BlockRotation::hadamard(hd, bh, s.seed);
  p.online = make_online_plan(cfg, s, at);
  return p;
}

void quarot_rotate_online(const Architecture& arch, const QuarotPlan& plan, int layer, LayerWeights& w) {
  auto rotate = [&](const std::string& linear, const KroneckerRotation& r) {
    std::vector<float>& wt = w.mutable_f32(linear + ".weight");
    if (wt.size() % static_cast<size_t>(r.width()) != 0)
      fail("quarot: '{}' of layer {} holds {} values, not rows of {} inputs for its online rotation", linear, layer,
           wt.size(), r.width());
    r.apply(wt.data(), static_cast<int64_t>(wt.size()) / r.width());
    w.input_rotations[linear] = r;
  };
  if (!plan.online.heads.empty()) rotate(arch.roles.o, plan.online.heads);
  if (!plan.online.down.empty() && plan.online.down_layers.count(layer)) rotate(arch.roles.down, plan.online.down);
}

namespace {

void scale_columns(std::vector<float>& wt, std::span<const float> g) {
  const auto in = static_cast<int64_t>(g.size()), rows = static_cast<int64_t>(wt.size()) / in;
  const float* gv = g.data();
#pragma omp parallel for schedule(static) if (rows * in > (1 << 18))
  for (int64_t r = 0; r < rows; ++r) {
    float* row = wt.data() + r * in;
    for (int64_t c = 0; c < in; ++c) row[c] *= gv[c];
  }
}

void check_norm(const QuarotPlan& plan, std::span<const float> norm) {
  if (static_cast<int64_t>(norm.size()) != plan.hidden.size())
    fail("quarot: norm of {} elements does not match hidden_size {}", norm.size(), plan.hidden.size());
}

// W[rows, H] ← W·R: a Linear that reads the residual stream.
void rotate_reader(const QuarotPlan& plan, std::vector<float>& w) {
  const int64_t H = plan.hidden.size();
  plan.hidden.right(w.data(), static_cast<int64_t>(w.size()) / H, H);
}

// W[H, cols] ← Rᵀ·W: a Linear that writes the residual stream.
void rotate_writer(const QuarotPlan& plan, std::vector<float>& w) {
  const int64_t H = plan.hidden.size();
  plan.hidden.left(w.data(), H, static_cast<int64_t>(w.size()) / H);
}

// The Linears that read the post-attention norm's output: the dense MLP's
// gate/up, or on a MoE layer the router (the experts are rotated apart).
std::vector<std::string> post_norm_readers(const ModelConfig& cfg, const Architecture& arch, const LayerWeights& w) {
  if (arch.moe && cfg.is_moe_layer(w.layer)) return {arch.moe->router};
  return {arch.roles.gate, arch.roles.up};
}

// The MoE layer's experts that `w` holds (none when they are streamed).
std::vector<int> held_experts(const ModelConfig& cfg, const Architecture& arch, const LayerWeights& w) {
  std::vector<int> held;
  if (!arch.moe || !cfg.is_moe_layer(w.layer)) return held;
  for (int64_t e = 0; e < cfg.moe.num_experts; ++e)
    if (w.contains(expert_linear_name(*arch.moe, e, arch.moe->gate) + ".weight")) held.push_back(static_cast<int>(e));
  return held;
}

}  // namespace

void quarot_rotate_layer(const ModelConfig& cfg, const Architecture& arch, const QuarotPlan& plan, LayerWeights& w) {
  const LayerRoles& r = arch.roles;
  const bool moe = arch.moe && cfg.is_moe_layer(w.layer);
  const std::vector<std::string> post_readers = post_norm_readers(cfg, arch, w);
  // Held experts need g as it was before the fusion sets it to ones.
  const std::vector<int> experts = held_experts(cfg, arch, w);
  const std::vector<float> post_norm = experts.empty() ? std::vector<float>() : w.get(r.post_attention_norm + ".weight");
  auto rows_of = [&](const std::string& name, int64_t cols) {
    return static_cast<int64_t>(w.mutable_f32(name + ".weight").size()) / cols;
  };
  // 1. Norms into the Linears that read them.
  auto fuse = [&](const std::string& norm, const std::vector<std::string>& linears) {
    std::vector<float>& g = w.mutable_f32(norm + ".weight");
    if (w.contains(norm + ".bias")) fail("quarot: norm '{}' has a bias; only plain RMSNorm can be fused", norm);
    for (const std::string& l : linears) scale_columns(w.mutable_f32(l + ".weight"), g);
    std::fill(g.begin(), g.end(), 1.0f);
  };
  fuse(r.input_norm, {r.q, r.k, r.v});
  fuse(r.post_attention_norm, post_readers);
  // 2. Readers of the residual stream: input side.
  for (const std::string& l : {r.q, r.k, r.v}) rotate_reader(plan, w.mutable_f32(l + ".weight"));
  for (const std::string& l : post_readers) rotate_reader(plan, w.mutable_f32(l + ".weight"));
  // 3. Writers of the residual stream: output side (and their biases).
  std::vector<std::string> writers = {r.o};
  if (!moe) writers.push_back(r.down);
  for (const std::string& l : writers) {
    rotate_writer(plan, w.mutable_f32(l + ".weight"));
    if (w.contains(l + ".bias")) plan.hidden.left(w.mutable_f32(l + ".bias").data(), plan.hidden.size(), 1);
  }
  // 4. Per-head rotation between v_proj's output and o_proj's input.
  const int64_t H = cfg.hidden_size, kv_dim = cfg.kv_dim(), q_dim = cfg.q_dim();
  auto& v = w.mutable_f32(r.v + ".weight");
  plan.head.left(v.data(), kv_dim, H);
  if (w.contains(r.v + ".bias")) plan.head.left(w.mutable_f32(r.v + ".bias").data(), kv_dim, 1);
  auto& o = w.mutable_f32(r.o + ".weight");
  plan.head.right(o.data(), rows_of(r.o, q_dim), q_dim);
  // 5. Routed experts held with the layer.
  for (int e : experts) quarot_rotate_expert(*arch.moe, e, plan, post_norm, w);
}

void quarot_rotate_expert(const QuarotPlan& plan, std::span<const float> norm, std::vector<float>& gate,
                          std::vector<float>& up, std::vector<float>& down) {
  check_norm(plan, norm);
  for (std::vector<float>* reader : {&gate, &up}) {
    scale_columns(*reader, norm);
    rotate_reader(plan, *reader);
  }
  rotate_writer(plan, down);
}

void quarot_rotate_expert(const MoeTemplate& moe, int expert, const QuarotPlan& plan, std::span<const float> norm,
                          LayerWeights& w) {
  auto weight = [&](const std::string& which) -> std::vector<float>& {
    return w.mutable_f32(expert_linear_name(moe, expert, which) + ".weight");
  };
  quarot_rotate_expert(plan, norm, weight(moe.gate), weight(moe.up), weight(moe.down));
}

void quarot_rotate_rows(const QuarotPlan& plan, float* x, int64_t rows) {
  plan.hidden.right(x, rows, plan.hidden.size());
}

void quarot_rotate_head(const QuarotPlan& plan, std::vector<float>& final_norm, std::vector<float>& lm_head) {
  const auto H = static_cast<int64_t>(final_norm.size());
  if (H != plan.hidden.size() || lm_head.size() % final_norm.size() != 0)
    fail("quarot: final norm [{}] / lm_head ({} elements) do not match hidden_size {}", final_norm.size(),
         lm_head.size(), plan.hidden.size());
  scale_columns(lm_head, final_norm);
  std::fill(final_norm.begin(), final_norm.end(), 1.0f);
  plan.hidden.right(lm_head.data(), static_cast<int64_t>(lm_head.size()) / H, H);
}

QuarotExport quarot_export(const ModelConfig& cfg, const QuarotPlan& plan, const QuarotSettings& s) {
  QuarotExport e;
  e.untie_word_embeddings = cfg.tie_word_embeddings;
  e.description_optional = nlohmann::ordered_json::object();
  if (!s.export_extra_info) return e;
  const int64_t H = plan.hidden.size();
  e.global_rotation = Tensor(DType::F32, {H, H});
  std::vector<float> d = plan.hidden.dense();
  std::copy(d.begin(), d.end(), e.global_rotation.data<float>());
  e.description_optional["quarot"]["rotation_map"]["global_rotation"] = QuarotExport::kFile;
  return e;
}

ExpertTransform quarot_expert_transform(const Checkpoint& ckpt, const ModelConfig& cfg, int layer,
                                        const QuarotPlan* plan) {
  if (!plan) return {};
  const Architecture& arch = architecture_for(cfg);
  const std::string norm = layer_desc(cfg, layer).prefix + "." + arch.roles.post_attention_norm + ".weight";
  auto g = std::make_shared<const std::vector<float>>(to_f32(ckpt.read(norm)));
  return [plan, moe = &*arch.moe, g](int e, LayerWeights& w) { quarot_rotate_expert(*moe, e, *plan, *g, w); };
}

}  // namespace lwq
