#include "models/decoder_layer.h"

#include <functional>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <set>

#include "io/checkpoint.h"
#include "models/architecture.h"
#include "models/experts.h"
#include "ops/activation.h"
#include "ops/attention.h"
#include "ops/amx_gemm.h"
#include "ops/gemm.h"
#include "ops/norm.h"
#include "ops/rope.h"
#include "util/error.h"
#include "util/scratch.h"

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

namespace {

// Rows [first, first + rows) of a matrix with `cols` columns, at w.
void apply_scalings(const std::vector<LayerWeights::Scaling>& ops, int64_t first, int64_t rows, int64_t cols,
                    float* w) {
  for (const auto& op : ops) {
    const float* s = op.s.data();
    if (op.columns) {
      // cols is a multiple of s.size() (a 3-D tensor's last dimension): the
      // same factors repeat along each row; no index arithmetic per element.
      const int64_t in = static_cast<int64_t>(op.s.size());
      if (in == 0 || cols % in != 0) fail("column scaling of {} factors for rows of {} values", in, cols);
      for (int64_t seg = 0; seg < rows * cols; seg += in) {
        float* v = w + seg;
        for (int64_t c = 0; c < in; ++c) v[c] *= s[c];
      }
      continue;
    }
    for (int64_t r = 0; r < rows; ++r) {
      const float d = s[first + r];
      float* v = w + r * cols;
      for (int64_t c = 0; c < cols; ++c) v[c] /= d;
    }
  }
}

// All of a stored weight's scalings on its f32 values `v`.
void apply_all_scalings(const std::vector<LayerWeights::Scaling>& ops, const Shape& shape, float* v) {
  const int64_t n = shape_numel(shape), cols = shape.empty() ? 1 : n / std::max<int64_t>(1, shape[0]);
  apply_scalings(ops, 0, n / cols, cols, v);
}

}  // namespace

bool LayerWeights::scaled(const std::string& name) const {
  auto it = scalings.find(name);
  return it != scalings.end() && !it->second.empty() && (stored.count(name) || mapped.count(name));
}

int64_t LayerWeights::numel(const std::string& name) const {
  if (auto it = tensors.find(name); it != tensors.end()) return static_cast<int64_t>(it->second.size());
  if (auto it = stored.find(name); it != stored.end()) return it->second.numel();
  if (auto it = mapped.find(name); it != mapped.end()) return shape_numel(it->second.shape);
  fail("layer {} has no tensor '{}'", layer, name);
}

void LayerWeights::scale(const std::string& name, Scaling op) {
  const int64_t n = numel(name), k = static_cast<int64_t>(op.s.size());
  if (k == 0 || n % k != 0) fail("layer {}: '{}' does not have {} {}", layer, name, k, op.columns ? "columns" : "rows");
  if (stored.count(name) || mapped.count(name)) {
    scalings[name].push_back(std::move(op));
    return;
  }
  std::vector<float>& w = mutable_f32(name);
  const int64_t cols = op.columns ? k : n / k;
  apply_scalings({op}, 0, n / cols, cols, w.data());
}

const float* LayerWeights::f32(const std::string& name, std::vector<float>& scratch) const {
  if (auto it = tensors.find(name); it != tensors.end()) return it->second.data();
  if (auto m = mapped.find(name); m != mapped.end()) {
    const Mapped& t = m->second;
    check_mapped_finite(name);
    // A streamed mapping's pages go once read, so its values are always copied.
    if (t.dtype == DType::F32 && !scaled(name) && !t.streamed) return reinterpret_cast<const float*>(t.bytes->data());
    scratch.resize(static_cast<size_t>(shape_numel(t.shape)));
    convert_to_f32(t.dtype, t.bytes->data(), scratch.data(), scratch.size());
    release_pages(name);
    if (scaled(name)) apply_all_scalings(scalings.at(name), t.shape, scratch.data());
    return scratch.data();
  }
  auto it = stored.find(name);
  if (it == stored.end()) fail("layer {} has no tensor '{}'", layer, name);
  if (it->second.dtype == DType::F32 && !scaled(name)) return it->second.data<float>();
  scratch.resize(static_cast<size_t>(it->second.numel()));
  convert_to_f32(it->second.dtype, it->second.bytes.data(), scratch.data(), scratch.size());
  if (scaled(name)) apply_all_scalings(scalings.at(name), it->second.shape, scratch.data());
  return scratch.data();
}

std::vector<float>& LayerWeights::mutable_f32(const std::string& name) {
  if (auto m = mapped.find(name); m != mapped.end()) {
    check_mapped_finite(name);
    const Shape shape = m->second.shape;
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    convert_to_f32(m->second.dtype, m->second.bytes->data(), v.data(), v.size());
    if (scaled(name)) apply_all_scalings(scalings.at(name), shape, v.data());
    scalings.erase(name);
    mapped.erase(m);
    return tensors[name] = std::move(v);
  }
  if (auto it = stored.find(name); it != stored.end()) {
    std::vector<float> v(static_cast<size_t>(it->second.numel()));
    convert_to_f32(it->second.dtype, it->second.bytes.data(), v.data(), v.size());
    if (scaled(name)) apply_all_scalings(scalings.at(name), it->second.shape, v.data());
    scalings.erase(name);
    stored.erase(it);
    return tensors[name] = std::move(v);
  }
  return get(name);
}

void LayerWeights::rows_f32(const std::string& name, int64_t begin, int64_t end, int64_t cols, float* dst) const {
  const auto first = static_cast<size_t>(begin * cols), count = static_cast<size_t>((end - begin) * cols);
  if (auto m = mapped.find(name); m != mapped.end()) {
    if (static_cast<int64_t>(first + count) > shape_numel(m->second.shape))
      fail("rows_f32: rows {}..{} exceed '{}'", begin, end, name);
    const Mapped& t = m->second;
    const uint8_t* rows = t.bytes->data() + first * dtype_size(t.dtype);
    if (!*t.finite) check_finite(t.dtype, rows, {end - begin, cols}, t.source, t.file, begin);
    convert_to_f32(t.dtype, rows, dst, count);
    if (t.streamed) t.bytes->drop_resident(rows, count * dtype_size(t.dtype));
    if (scaled(name)) apply_scalings(scalings.at(name), begin, end - begin, cols, dst);
    return;
  }
  if (auto it = stored.find(name); it != stored.end()) {
    const Tensor& t = it->second;
    if (static_cast<int64_t>(first + count) > t.numel()) fail("rows_f32: rows {}..{} exceed '{}'", begin, end, name);
    convert_to_f32(t.dtype, t.bytes.data() + first * dtype_size(t.dtype), dst, count);
    if (scaled(name)) apply_scalings(scalings.at(name), begin, end - begin, cols, dst);
    return;
  }
  const std::vector<float>& v = get(name);
  if (first + count > v.size()) fail("rows_f32: rows {}..{} exceed '{}'", begin, end, name);
  std::copy(v.begin() + static_cast<long>(first), v.begin() + static_cast<long>(first + count), dst);
}

std::pair<DType, const void*> LayerWeights::raw(const std::string& name) const {
  if (scaled(name)) fail("layer {}: '{}' is smoothed; read it through rows_f32 or f32", layer, name);
  return held(name);
}

std::pair<DType, const void*> LayerWeights::held(const std::string& name) const {
  if (auto it = stored.find(name); it != stored.end()) return {it->second.dtype, it->second.bytes.data()};
  if (auto m = mapped.find(name); m != mapped.end()) return {m->second.dtype, m->second.bytes->data()};
  return {DType::F32, get(name).data()};
}

void LayerWeights::check_mapped_finite(const std::string& name) const {
  auto m = mapped.find(name);
  if (m == mapped.end() || *m->second.finite) return;
  check_finite(m->second.dtype, m->second.bytes->data(), m->second.shape, m->second.source, m->second.file);
  *m->second.finite = true;
  release_pages(name);
}

const LayerWeights::Mapped* LayerWeights::streamed_mapping(const std::string& name) const {
  auto m = mapped.find(name);
  return m != mapped.end() && m->second.streamed ? &m->second : nullptr;
}

void LayerWeights::release_pages(const std::string& name) const {
  if (const Mapped* m = streamed_mapping(name)) m->bytes->drop_resident(m->bytes->data(), m->bytes->size());
}

void LayerWeights::release_rows(const std::string& name, int64_t begin, int64_t end, int64_t cols) const {
  const Mapped* m = streamed_mapping(name);
  if (!m) return;
  const size_t row_bytes = static_cast<size_t>(cols) * dtype_size(m->dtype);
  m->bytes->drop_resident(m->bytes->data() + static_cast<size_t>(begin) * row_bytes,
                          static_cast<size_t>(end - begin) * row_bytes);
}

bool LayerWeights::streamed(const std::string& name) const { return streamed_mapping(name) != nullptr; }

size_t LayerWeights::bytes() const {
  size_t n = 0;
  for (const auto& [name, v] : tensors) n += v.size() * sizeof(float);
  for (const auto& [name, t] : stored) n += t.nbytes();
  for (const auto& [name, m] : mapped) n += m.bytes->size();
  return n;
}

namespace {

void check_streamed_finite(const LayerWeights::Mapped& m) {
  const int64_t rows = m.shape.empty() ? 1 : m.shape[0], numel = shape_numel(m.shape);
  const int64_t cols = rows > 0 ? numel / rows : 0, row_bytes = cols * static_cast<int64_t>(dtype_size(m.dtype));
  const int64_t block = std::max<int64_t>(1, (int64_t{8} << 20) / std::max<int64_t>(row_bytes, 1));
  for (int64_t r = 0; r < rows; r += block) {
    const int64_t n = std::min(block, rows - r);
    const uint8_t* p = m.bytes->data() + r * row_bytes;
    check_finite(m.dtype, p, {n, cols}, m.source, m.file, r);
    m.bytes->drop_resident(p, static_cast<uint64_t>(n * row_bytes));
  }
  *m.finite = true;
}

}  // namespace

void read_unit_tensor(const Checkpoint& ckpt, const std::string& full, const std::string& name, bool linear_weight,
                      LayerWeights& w, LinearWeightHold hold) {
  const TensorInfo& info = ckpt.info(full);
  if (!is_float(info.dtype))
    fail("tensor '{}' has dtype {}; a float dtype (F32, F16, BF16) is expected", full, dtype_name(info.dtype));
  if (hold != LinearWeightHold::Read && linear_weight) {
    // Checked finite where it is used (LayerWeights::Mapped).
    const bool streamed = hold == LinearWeightHold::Streamed;
    auto bytes = std::make_shared<const MappedBytes>(ckpt.map_range(full, 0, info.nbytes, /*populate=*/!streamed));
    LayerWeights::Mapped m{info.dtype, info.shape, std::move(bytes), full, ckpt.file_of(full).string()};
    m.streamed = streamed;
    // A streamed weight is read many times: checked once here (on the loading
    // thread, which also reads it from disk), a block of rows at a time whose
    // pages leave right after, so its later reads skip the check.
    if (streamed) check_streamed_finite(m);
    w.mapped.emplace(name, std::move(m));
    return;
  }
  Tensor raw = ckpt.read(full);
  check_finite(raw, full, ckpt.file_of(full).string());
  if (linear_weight && raw.dtype != DType::F32) w.stored.emplace(name, std::move(raw));
  else w.tensors.emplace(name, to_f32(raw));
}

LayerWeights load_layer_weights(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, bool with_experts,
                                LinearWeightHold hold) {
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
    read_unit_tensor(ckpt, full, t.name, linear_weights.count(t.name) != 0, w, hold);
  }
  if (desc.num_experts > 0) {
    if (with_experts) load_all_experts(ckpt, cfg, layer, w);
    else expert_storage(ckpt, cfg, layer);  // validated up front all the same
  }
  return w;
}

namespace {

// y[rows, out] = bf16(x) · wbᵀ (+ bias) for `weight`'s bf16 rows wb, 8 MiB of
// them at a time, a streamed weight's pages dropped after each block's
// product: never the whole matrix resident. Stored weights take the same
// blocks, so both give the same sums. On AMX, x is rounded and laid out for
// the tiles once for all blocks (the same sums: each output's terms are added
// in the same order); elsewhere it is rounded once, on the first block.
// `block_rows(begin, n)` gives rows [begin, begin + n) of the bf16 weight;
// `done(begin, n)` runs after their product.
void bf16_product_by_blocks(const float* x, int64_t rows, int64_t in, const float* bias, int64_t out, float* y,
                            const std::function<const uint16_t*(int64_t, int64_t)>& block_rows,
                            const std::function<void(int64_t, int64_t)>& done) {
  const int64_t block = std::max<int64_t>(16, (int64_t{4} << 20) / std::max<int64_t>(in, 1) / 16 * 16);
  const AmxRows packed = amx_pack_rows_bf16(x, rows, in);
  Scratch<uint16_t> xb;
  for (int64_t begin = 0; begin < out; begin += block) {
    const int64_t n = std::min(block, out - begin);
    const float* b = bias ? bias + begin : nullptr;
    const uint16_t* wb = block_rows(begin, n);
    if (!amx_matmul_nt_bf16(packed, wb, n, y + begin, out, b)) {
      if (xb.empty()) {
        xb.resize(static_cast<size_t>(rows * in));
        f32_to_bf16(x, xb.data(), xb.size());
      }
      matmul_nt_bf16(xb.data(), rows, in, wb, n, y + begin, b, out);
    }
    if (done) done(begin, n);
  }
}

// The same for `weight`'s bf16 rows as held (stored or mapped) at wb.
void bf16_product_of_held(const LayerWeights& w, const std::string& weight, const uint16_t* wb, const float* x,
                          int64_t rows, int64_t in, const float* bias, int64_t out, float* y) {
  bf16_product_by_blocks(
      x, rows, in, bias, out, y, [&](int64_t begin, int64_t) { return wb + begin * in; },
      [&](int64_t begin, int64_t n) { w.release_rows(weight, begin, begin + n, in); });
}

}  // namespace

void linear_from_layer(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows, int64_t in,
                       const float* bias, int64_t out, float* y, bool bf16_inputs) {
  if (bf16_inputs && !w.scaled(weight) && w.contains(weight) && !w.tensors.count(weight)) {
    if (const auto [dtype, data] = w.raw(weight); dtype == DType::BF16) {  // stored or mapped
      w.check_mapped_finite(weight);  // mapped: once per tensor
      bf16_product_of_held(w, weight, static_cast<const uint16_t*>(data), x, rows, in, bias, out, y);
      return;
    }
  }
  if (auto it = w.tensors.find(weight); it != w.tensors.end()) {
    matmul_nt(x, rows, in, it->second.data(), out, y, bias);
    return;
  }
  // A smoothed stored weight goes block by block through rows_f32, which applies its scalings.
  if (auto it = w.stored.find(weight); it != w.stored.end() && it->second.dtype == DType::F32 && !w.scaled(weight)) {
    matmul_nt(x, rows, in, it->second.data<float>(), out, y, bias);
    return;
  }
  matmul_nt_rows(
      x, rows, in, [&](int64_t begin, int64_t n, float* dst) { w.rows_f32(weight, begin, begin + n, in, dst); }, out, y,
      bias);
  w.release_pages(weight);  // what the blocks' fault-around mapped beyond them
}

bool linear_bf16_rounded(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows, int64_t in,
                         const float* bias, int64_t out, float* y) {
  auto it = w.tensors.find(weight);
  if (it == w.tensors.end() || !has_native_bf16_gemm() || static_cast<int64_t>(it->second.size()) != out * in)
    return false;
  const float* wf = it->second.data();
  Scratch<uint16_t> wb;
  bf16_product_by_blocks(
      x, rows, in, bias, out, y,
      [&](int64_t begin, int64_t n) {
        wb.resize(static_cast<size_t>(n * in));
        f32_to_bf16(wf + begin * in, wb.data(), wb.size());
        return static_cast<const uint16_t*>(wb.data());
      },
      {});
  return true;
}

bool linear_from_bf16_split(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows,
                            int64_t in, const float* bias, int64_t out, float* y) {
  if (!has_native_bf16_gemm() || !w.contains(weight) || w.tensors.count(weight) || w.numel(weight) != out * in)
    return false;
  const auto [dtype, data] = w.held(weight);
  if (dtype != DType::BF16) return false;
  static const std::vector<LayerWeights::Scaling> kNone;
  const auto sc = w.scalings.find(weight);
  const std::vector<LayerWeights::Scaling>& ops = sc == w.scalings.end() ? kNone : sc->second;
  for (const auto& op : ops)
    if (static_cast<int64_t>(op.s.size()) != (op.columns ? in : out)) return false;
  w.check_mapped_finite(weight);

  // rows [0, rows): x (scaled); rows [rows, 2·rows): x − bf16(x). Rounded to
  // bf16 they are hi = bf16(x) and lo = bf16(x − hi).
  const size_t half = static_cast<size_t>(rows * in);
  Scratch<float> xs(2 * half);
  std::copy(x, x + rows * in, xs.data());
  for (const auto& op : ops)
    if (op.columns)
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < in; ++c) xs[static_cast<size_t>(r * in + c)] *= op.s[static_cast<size_t>(c)];
  for (size_t i = 0; i < half; ++i) xs[half + i] = xs[i] - round_to_bf16(xs[i]);
  Scratch<float> parts(static_cast<size_t>(2 * rows * out));
  bf16_product_of_held(w, weight, static_cast<const uint16_t*>(data), xs.data(), 2 * rows, in, nullptr, out,
                       parts.data());
  xs.clear();
  for (int64_t r = 0; r < rows; ++r) {
    const float* hi = parts.data() + r * out;
    const float* lo = parts.data() + (rows + r) * out;
    float* yr = y + r * out;
    for (int64_t o = 0; o < out; ++o) yr[o] = hi[o] + lo[o];
    for (const auto& op : ops)
      if (!op.columns)
        for (int64_t o = 0; o < out; ++o) yr[o] /= op.s[static_cast<size_t>(o)];
    if (bias)
      for (int64_t o = 0; o < out; ++o) yr[o] += bias[o];
  }
  return true;
}

void run_linear(const LayerWeights& w, LinearExecutor* exec, const std::string& name, const float* x, int64_t rows,
                int64_t in, const float* bias, int64_t out, float* y) {
  run_linear_samples(w, exec, name, x, {&rows, 1}, in, bias, out, y);
}

void run_linear_samples(const LayerWeights& w, LinearExecutor* exec, const std::string& name, const float* x,
                        std::span<const int64_t> samples, int64_t in, const float* bias, int64_t out, float* y) {
  const int64_t rows = std::reduce(samples.begin(), samples.end(), int64_t{0});
  Scratch<float> rotated;
  if (auto it = w.input_rotations.find(name); it != w.input_rotations.end()) {
    if (it->second.width() != in)
      fail("the online rotation of '{}' is {} wide, but the Linear reads {} inputs", name, it->second.width(), in);
    rotated.resize(static_cast<size_t>(rows * in));
    std::copy(x, x + rows * in, rotated.data());
    it->second.apply(rotated.data(), rows);
    x = rotated.data();
  }
  if (!exec) {
    linear_from_layer(w, name + ".weight", x, rows, in, bias, out, y);
    return;
  }
  std::vector<float> scratch;
  const float* weight = exec->needs_float_weight(name) ? w.f32(name + ".weight", scratch) : nullptr;
  if (exec->compute_dtype() == ComputeDType::F32) {
    exec->run_samples(name, x, samples, in, weight, bias, out, y);
    return;
  }
  // bfloat16 inputs against the weight as held (a bfloat16 checkpoint's
  // stored weight converts exactly), float32 accumulation: the exact
  // bf16×bf16 products summed in f32, which is what a bf16×bf16→f32 kernel
  // computes up to summation order. The output is a bf16 model's.
  Scratch<float> xb(static_cast<size_t>(rows * in));
  std::copy(x, x + rows * in, xb.data());
  round_to_bf16(xb.data(), xb.size());
  exec->run_samples(name, xb.data(), samples, in, weight, bias, out, y);
  round_to_bf16(y, static_cast<size_t>(rows * out));
}

void BiasedLinears::operator()(const std::string& name, const float* x, int64_t rows, int64_t in, int64_t out,
                               std::vector<float>& y) const {
  y.resize(static_cast<size_t>(rows * out));
  run_linear(w, exec, name, x, rows, in, w.get(name + ".bias").data(), out, y.data());
}

void LinearExecutor::run(const std::string&, const float* x, int64_t rows, int64_t in, const float* weight,
                         const float* bias, int64_t out, float* y) {
  matmul_nt(x, rows, in, weight, out, y, bias);
}

void LinearExecutor::run_samples(const std::string& name, const float* x, std::span<const int64_t> samples,
                                 int64_t in, const float* weight, const float* bias, int64_t out, float* y) {
  const int64_t rows = std::reduce(samples.begin(), samples.end(), int64_t{0});
  run(name, x, rows, in, weight, bias, out, y);
}

namespace {

struct LinearRunner {
  const ModelConfig& cfg;
  const LayerWeights& w;
  LinearExecutor& exec;
  const LayerDesc& desc;
  bool custom;  // exec is the caller's, not the plain f32 one

  // y[rows, out] = linear `name`(x[rows, in]), x holding the rows of the
  // given samples one after another.
  void operator()(const std::string& name, const float* x, std::span<const int64_t> samples,
                  Scratch<float>& y) const {
    auto it = std::find_if(desc.linears.begin(), desc.linears.end(), [&](const LinearDesc& l) { return l.name == name; });
    if (it == desc.linears.end()) fail("layer {}: the architecture has no linear '{}'", w.layer, name);
    const int64_t rows = std::reduce(samples.begin(), samples.end(), int64_t{0});
    y.resize(static_cast<size_t>(rows * it->out_features));
    // A Linear the outlier smoothing gave a bias (asymmetric shift) has one
    // although its descriptor declares none.
    const float* bias = it->has_bias || w.tensors.count(name + ".bias") ? w.get(name + ".bias").data() : nullptr;
    run_linear_samples(w, custom ? &exec : nullptr, name, x, samples, it->in_features, bias, it->out_features,
                       y.data());
  }
  void operator()(const std::string& name, const float* x, int64_t rows, Scratch<float>& y) const {
    (*this)(name, x, std::span<const int64_t>(&rows, 1), y);
  }
};

// A batch of sequences holds at most this many bytes of activations and,
// beyond one sequence, this many rows: the Linears of a layer run over as many
// whole calibration samples as fit as one GEMM — the weight is read (and,
// fake-quantized, dequantized) once per batch instead of once per sample, and
// 1024 rows already amortise that — while attention runs per sample.
constexpr int64_t kBatchRows = 1024;
std::atomic<int64_t> batch_activation_bytes{int64_t{64} << 20};

// The most rows a batch of `row_bytes`-per-row activations may hold.
int64_t batch_rows(int64_t row_bytes) {
  return std::clamp<int64_t>(batch_activation_bytes.load() / std::max<int64_t>(row_bytes, 1), 1, kBatchRows);
}

// Consecutive non-empty sequences, split where a batch would pass max_rows
// (a longer sequence is a batch of its own).
struct SequenceBatch {
  std::vector<const SequenceRef*> seqs;
  std::vector<int64_t> rows;  // seqs[i]->seq
  int64_t total = 0;
};

std::vector<SequenceBatch> batch_sequences(std::span<const SequenceRef> seqs, int64_t max_rows) {
  std::vector<SequenceBatch> batches;
  for (const auto& s : seqs) {
    if (s.seq <= 0) continue;
    if (batches.empty() || (batches.back().total > 0 && batches.back().total + s.seq > max_rows)) batches.emplace_back();
    batches.back().seqs.push_back(&s);
    batches.back().rows.push_back(s.seq);
    batches.back().total += s.seq;
  }
  return batches;
}

// RMSNorm of `norm` ("input_layernorm") over rows of x, plus "<norm>.bias"
// when the layer holds one: smoothing replaces a norm by weight/s with the
// shifted bias −shift/s (spec §2.8), exported FLOAT beside its weight.
void layer_norm_rows(const LayerWeights& w, const std::string& norm, const float* x, int64_t rows, int64_t dim,
                     float eps, float* y) {
  rms_norm(x, w.get(norm + ".weight").data(), rows, dim, eps, y);
  auto b = w.tensors.find(norm + ".bias");
  if (b == w.tensors.end()) return;
  if (static_cast<int64_t>(b->second.size()) != dim)
    fail("layer {}: '{}.bias' has {} values, expected {}", w.layer, norm, b->second.size(), dim);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < dim; ++c) y[r * dim + c] += b->second[static_cast<size_t>(c)];
}

// x [batch.total, H] = `norm` of every sequence's hidden rows, one after another.
Scratch<float> batch_norm_rows(const ModelConfig& cfg, const LayerWeights& w, const std::string& norm,
                                   const SequenceBatch& batch) {
  const int64_t H = cfg.hidden_size;
  Scratch<float> x(static_cast<size_t>(batch.total * H));
  int64_t at = 0;
  for (const SequenceRef* s : batch.seqs) {
    layer_norm_rows(w, norm, s->hidden, s->seq, H, static_cast<float>(cfg.rms_norm_eps), x.data() + at * H);
    at += s->seq;
  }
  return x;
}

// Every sequence's hidden rows += its rows of y [batch.total, H].
void add_to_sequences(const SequenceBatch& batch, const float* y, int64_t H) {
  int64_t at = 0;
  for (const SequenceRef* s : batch.seqs) {
    add_inplace(s->hidden, y + at * H, s->seq * H);
    at += s->seq;
  }
}

// Rope and causal attention of one sequence, q/k/v its rows; out [seq, q_dim].
void sequence_attention(const ModelConfig& cfg, int layer, const SequenceRef& s, float* q, float* k, const float* v,
                        LayerKVCache* cache, float* out) {
  const int64_t hd = cfg.head_dim, seq = s.seq;
  int32_t max_pos = 0;
  for (int64_t i = 0; i < seq; ++i) {
    if (s.positions[i] < 0) fail("layer {}: position {} of token {} is negative", layer, s.positions[i], i);
    max_pos = std::max(max_pos, s.positions[i]);
  }
  const RopeFrequencies freqs = rope_frequencies(cfg.rope, hd, int64_t{max_pos} + 1);
  // A multimodal-rope model on text alone has equal axes: plain rope.
  const RopeTable rope = s.mrope && !cfg.rope.mrope_section.empty()
                             ? mrope_table(freqs, cfg.rope.mrope_section, s.mrope, seq)
                             : rope_table(freqs, s.positions, seq);
  apply_rope(q, seq, cfg.q_dim(), cfg.num_attention_heads, hd, rope);
  apply_rope(k, seq, cfg.kv_dim(), cfg.num_key_value_heads, hd, rope);

  AttentionDims dims{seq, cfg.num_attention_heads, cfg.num_key_value_heads, hd, cfg.sliding_window(layer)};
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  if (!cache) {
    causal_attention(q, k, v, dims, scale, out);
    return;
  }
  if (static_cast<int64_t>(cache->k.size()) != cache->tokens * cfg.kv_dim() || cache->v.size() != cache->k.size())
    fail("layer {}: KV cache holds {} keys / {} values for {} tokens of kv_dim {}", layer, cache->k.size(),
         cache->v.size(), cache->tokens, cfg.kv_dim());
  dims.past = cache->tokens;
  cache->k.insert(cache->k.end(), k, k + seq * cfg.kv_dim());
  cache->v.insert(cache->v.end(), v, v + seq * cfg.kv_dim());
  cache->tokens += seq;
  causal_attention(q, cache->k.data(), cache->v.data(), dims, scale, out);
}

// The attention half of a layer on a batch of sequences, each attending only
// to itself: hidden += o_proj(attention(...)). q/k/v/o run over the batch.
void attention_block(const ModelConfig& cfg, const LayerWeights& w, int layer, const LinearRunner& linear,
                     const SequenceBatch& batch, LayerKVCache* cache) {
  const LayerRoles& r = architecture_for(cfg).roles;
  const int64_t H = cfg.hidden_size, hd = cfg.head_dim, qd = cfg.q_dim(), kvd = cfg.kv_dim();
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  if (cache && batch.seqs.size() != 1) fail("layer {}: a KV cache serves one sequence", layer);

  Scratch<float> x = batch_norm_rows(cfg, w, r.input_norm, batch);
  Scratch<float> q, k, v;
  linear(r.q, x.data(), batch.rows, q);
  linear(r.k, x.data(), batch.rows, k);
  linear(r.v, x.data(), batch.rows, v);
  x.clear();
  if (!r.q_norm.empty()) {
    // Qwen3: RMSNorm over each head's vector, before the rope.
    rms_norm(q.data(), w.get(r.q_norm + ".weight").data(), batch.total * cfg.num_attention_heads, hd, eps, q.data());
    rms_norm(k.data(), w.get(r.k_norm + ".weight").data(), batch.total * cfg.num_key_value_heads, hd, eps, k.data());
  }
  Scratch<float> attn(static_cast<size_t>(batch.total * qd));
  int64_t at = 0;
  for (const SequenceRef* s : batch.seqs) {
    sequence_attention(cfg, layer, *s, q.data() + at * qd, k.data() + at * kvd, v.data() + at * kvd, cache,
                       attn.data() + at * qd);
    at += s->seq;
  }
  q.clear();
  k.clear();
  v.clear();
  Scratch<float> y;
  linear(r.o, attn.data(), batch.rows, y);
  attn.clear();
  add_to_sequences(batch, y.data(), H);
}

// hidden += down(silu(gate(x)) ⊙ up(x)) with x = post-attention-norm(hidden),
// over the batch's rows.
void dense_mlp_block(const ModelConfig& cfg, const LayerWeights& w, const LinearRunner& linear,
                     const SequenceBatch& batch) {
  const LayerRoles& r = architecture_for(cfg).roles;
  Scratch<float> x = batch_norm_rows(cfg, w, r.post_attention_norm, batch);
  Scratch<float> gate, up, y;
  linear(r.gate, x.data(), batch.rows, gate);
  linear(r.up, x.data(), batch.rows, up);
  x.clear();
  silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), gate.data());
  up.clear();
  linear(r.down, gate.data(), batch.rows, y);
  add_to_sequences(batch, y.data(), cfg.hidden_size);
}

// The top-k experts of every token and their mixing weights: softmax of the
// router logits in f32, top-k (ties: lower index), renormalised when the
// family or config says so (HF Qwen3MoeSparseMoeBlock / MixtralSparseMoeBlock).
struct Routes {
  int64_t k = 0;
  std::vector<int32_t> expert;  // [tokens, k]
  std::vector<float> weight;    // [tokens, k]
};

Routes route_tokens(const ModelConfig& cfg, const Scratch<float>& logits, int64_t tokens) {
  const int64_t E = cfg.moe.num_experts, k = cfg.moe.experts_per_token;
  Routes r;
  r.k = k;
  r.expert.resize(static_cast<size_t>(tokens * k));
  r.weight.resize(static_cast<size_t>(tokens * k));
  std::vector<float> p(static_cast<size_t>(E));
  std::vector<int32_t> order(static_cast<size_t>(E));
  for (int64_t t = 0; t < tokens; ++t) {
    const float* l = logits.data() + t * E;
    const float mx = *std::max_element(l, l + E);
    double sum = 0.0;
    for (int64_t e = 0; e < E; ++e) sum += p[static_cast<size_t>(e)] = std::exp(l[e] - mx);
    for (int64_t e = 0; e < E; ++e) p[static_cast<size_t>(e)] = static_cast<float>(p[static_cast<size_t>(e)] / sum);
    for (int64_t e = 0; e < E; ++e) order[static_cast<size_t>(e)] = static_cast<int32_t>(e);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      return p[static_cast<size_t>(a)] > p[static_cast<size_t>(b)] ||
             (p[static_cast<size_t>(a)] == p[static_cast<size_t>(b)] && a < b);
    });
    float top_sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) top_sum += p[static_cast<size_t>(order[static_cast<size_t>(j)])];
    for (int64_t j = 0; j < k; ++j) {
      const int32_t e = order[static_cast<size_t>(j)];
      r.expert[static_cast<size_t>(t * k + j)] = e;
      float wt = p[static_cast<size_t>(e)];
      if (cfg.moe.renormalize_top_k) wt /= top_sum;
      r.weight[static_cast<size_t>(t * k + j)] = wt;
    }
  }
  return r;
}

// The sparse MLP over every sequence at once, expert by expert, so that a
// streamed layer reads each expert once: hidden_s += Σ_e R[t, e]·expert_e(x).
// Each expert's Linears run over the tokens of as many whole sequences as fit
// the activation bound at once.
void moe_block(const ModelConfig& cfg, const LayerWeights& w, const LinearRunner& linear,
               std::span<const SequenceRef> seqs, LinearExecutor* exec, ExpertStream* stream,
               std::vector<int64_t>* tokens_per_expert) {
  const Architecture& a = architecture_for(cfg);
  const MoeTemplate& m = *a.moe;
  const int64_t H = cfg.hidden_size, E = cfg.moe.num_experts;
  if (tokens_per_expert) tokens_per_expert->assign(static_cast<size_t>(E), 0);
  // every non-empty sequence; row t of x is token t of them all
  const std::vector<SequenceBatch> whole = batch_sequences(seqs, std::numeric_limits<int64_t>::max());
  if (whole.empty()) return;
  const SequenceBatch& all = whole.front();
  const Scratch<float> x = batch_norm_rows(cfg, w, a.roles.post_attention_norm, all);
  Scratch<float> logits;
  linear(m.router, x.data(), all.rows, logits);
  const Routes routes = route_tokens(cfg, logits, all.total);
  logits.clear();
  // the rows routed to expert e, ascending, with their weights
  std::vector<std::vector<std::pair<int64_t, float>>> routed(static_cast<size_t>(E));
  for (int64_t t = 0; t < all.total; ++t)
    for (int64_t j = 0; j < routes.k; ++j) {
      const size_t i = static_cast<size_t>(t * routes.k + j);
      routed[static_cast<size_t>(routes.expert[i])].emplace_back(t, routes.weight[i]);
    }
  const int64_t expert_row_bytes = static_cast<int64_t>(sizeof(float)) * (2 * H + 2 * cfg.moe.expert_intermediate);
  const std::vector<SequenceBatch> chunks = batch_sequences(seqs, batch_rows(expert_row_bytes));

  Scratch<float> out(static_cast<size_t>(all.total * H));
  std::fill(out.begin(), out.end(), 0.0f);
  Scratch<float> gathered, gate, up, y;
  std::vector<int64_t> samples;
  for (int64_t e = 0; e < E; ++e) {
    const auto& mine = routed[static_cast<size_t>(e)];
    const auto count = static_cast<int64_t>(mine.size());
    if (tokens_per_expert) (*tokens_per_expert)[static_cast<size_t>(e)] = count;
    const int ei = static_cast<int>(e);
    // Without hooks, an expert that no token chose is not even read.
    if (count == 0 && !exec) continue;
    if (stream) stream->acquire(ei);
    if (exec) exec->expert_begin(ei);
    const bool all_tokens = exec && exec->expert_sees_all_tokens(ei);
    const std::string gname = expert_linear_name(m, e, m.gate), uname = expert_linear_name(m, e, m.up),
                      dname = expert_linear_name(m, e, m.down);
    size_t next = 0;  // first of `mine` not yet mixed in
    int64_t chunk_start = 0;
    for (const SequenceBatch& chunk : chunks) {
      const size_t first = next;
      const float* xin = x.data() + chunk_start * H;
      if (all_tokens) {
        samples = chunk.rows;
        while (next < mine.size() && mine[next].first < chunk_start + chunk.total) ++next;
      } else {
        // this chunk's routed rows, counted per sequence
        samples.clear();
        int64_t seq_end = chunk_start;
        for (int64_t rows : chunk.rows) {
          seq_end += rows;
          int64_t n = 0;
          for (; next < mine.size() && mine[next].first < seq_end; ++next) ++n;
          if (n > 0) samples.push_back(n);
        }
        gathered.resize((next - first) * static_cast<size_t>(H));
        for (size_t i = first; i < next; ++i)
          std::copy_n(x.data() + mine[i].first * H, H, gathered.data() + (i - first) * static_cast<size_t>(H));
        xin = gathered.data();
      }
      if (!samples.empty()) {
        linear(gname, xin, samples, gate);
        linear(uname, xin, samples, up);
        silu_mul(gate.data(), up.data(), static_cast<int64_t>(gate.size()), gate.data());
        linear(dname, gate.data(), samples, y);
        for (size_t i = first; i < next; ++i) {
          const int64_t t = mine[i].first;
          const int64_t row = all_tokens ? t - chunk_start : static_cast<int64_t>(i - first);
          const float wt = mine[i].second;
          float* o = out.data() + t * H;
          const float* yr = y.data() + row * H;
          for (int64_t c = 0; c < H; ++c) o[c] += wt * yr[c];
        }
      }
      chunk_start += chunk.total;
    }
    if (exec) exec->expert_end(ei);
    if (stream) stream->release(ei);
  }
  add_to_sequences(all, out.data(), H);
}

void layer_forward(const ModelConfig& cfg, const LayerWeights& w, int layer, std::span<const SequenceRef> seqs,
                   LinearExecutor* exec, LayerKVCache* cache, ExpertStream* stream,
                   std::vector<int64_t>* tokens_per_expert) {
  const LayerDesc desc = layer_desc(cfg, layer);
  LinearExecutor plain;
  LinearRunner linear{cfg, w, exec ? *exec : plain, desc, exec != nullptr};
  const int64_t H = cfg.hidden_size, f = static_cast<int64_t>(sizeof(float));
  // bytes of activations per row: x, q, k, v, the attention output
  for (const auto& b : batch_sequences(seqs, batch_rows(f * (H + 2 * cfg.q_dim() + 2 * cfg.kv_dim()))))
    attention_block(cfg, w, layer, linear, b, cache);
  if (exec) exec->attention_done();
  if (desc.num_experts > 0) {
    moe_block(cfg, w, linear, seqs, exec, stream, tokens_per_expert);
    return;
  }
  // x, gate, up, the output
  for (const auto& b : batch_sequences(seqs, batch_rows(f * (2 * H + 2 * cfg.intermediate_size))))
    dense_mlp_block(cfg, w, linear, b);
}

}  // namespace

int64_t set_batch_activation_bytes(int64_t bytes) { return batch_activation_bytes.exchange(bytes); }

void decoder_layer_forward(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                           const int32_t* positions, LinearExecutor* exec) {
  const SequenceRef one{hidden, seq, positions};
  layer_forward(cfg, w, layer, {&one, 1}, exec, nullptr, nullptr, nullptr);
}

void decoder_layer_forward_cached(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                                  const int32_t* positions, LayerKVCache& cache, LinearExecutor* exec) {
  const SequenceRef one{hidden, seq, positions};
  layer_forward(cfg, w, layer, {&one, 1}, exec, &cache, nullptr, nullptr);
}

void decoder_layer_forward_batch(const ModelConfig& cfg, const LayerWeights& w, int layer,
                                 std::span<const SequenceRef> seqs, LinearExecutor* exec, ExpertStream* experts,
                                 std::vector<int64_t>* tokens_per_expert) {
  layer_forward(cfg, w, layer, seqs, exec, nullptr, experts, tokens_per_expert);
}

}  // namespace lwq
