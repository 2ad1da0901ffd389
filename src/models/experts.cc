#include "models/experts.h"

#include <fmt/format.h>

#include <cstring>
#include <functional>

#include "io/checkpoint.h"
#include "util/error.h"

namespace lwq {
namespace {

const MoeTemplate& moe_of(const ModelConfig& cfg, int layer) {
  const Architecture& a = architecture_for(cfg);
  if (!a.moe || !cfg.is_moe_layer(layer)) fail("layer {} of this {} model has no routed experts", layer, cfg.model_type);
  return *a.moe;
}

std::string experts_prefix(const ModelConfig& cfg, int layer) {
  const Architecture& a = architecture_for(cfg);
  return fmt::format("{}.{}.{}", a.layer_prefix, layer, a.moe->experts);
}

struct FusedNames {
  std::string gate_up, down;
};
FusedNames fused_names(const ModelConfig& cfg, int layer) {
  const MoeTemplate& m = moe_of(cfg, layer);
  const std::string p = experts_prefix(cfg, layer);
  return {p + "." + m.fused_gate_up, p + "." + m.fused_down};
}

// The expert index of "<prefix>.<e>.<rest>", or -1.
int64_t expert_index(const std::string& name, const std::string& prefix) {
  if (name.size() <= prefix.size() + 1 || name.compare(0, prefix.size(), prefix) != 0 || name[prefix.size()] != '.')
    return -1;
  size_t i = prefix.size() + 1, j = i;
  while (j < name.size() && j - i < 9 && name[j] >= '0' && name[j] <= '9') ++j;
  if (j == i || j >= name.size() || name[j] != '.') return -1;
  return std::stoll(name.substr(i, j - i));
}

void check_shape(const ModelConfig& cfg, const Checkpoint& ckpt, const std::string& name, const Shape& expected,
                 const std::string& how) {
  const TensorInfo& info = ckpt.info(name);
  if (!is_float(info.dtype))
    fail("tensor '{}' has dtype {}; a float dtype (F32, F16, BF16) is expected", name, dtype_name(info.dtype));
  if (info.shape == expected) return;
  fail("tensor '{}' has shape {} but {} (num_experts={}, moe intermediate={}, hidden_size={}) implies {}{}", name,
       shape_str(info.shape), cfg.source.filename().string(), cfg.moe.num_experts, cfg.moe.expert_intermediate,
       cfg.hidden_size, shape_str(expected), how);
}

// Byte-wise transpose of a row-major [rows, cols] block of `elem`-byte values.
void transpose_into(const uint8_t* src, int64_t rows, int64_t cols, int64_t src_stride, size_t elem, uint8_t* dst) {
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      std::memcpy(dst + (static_cast<size_t>(c * rows + r)) * elem, src + static_cast<size_t>(r * src_stride + c) * elem,
                  elem);
}

void put(LayerWeights& w, const std::string& name, Tensor t) {
  if (t.dtype == DType::F32) w.tensors.emplace(name, to_f32(t));
  else w.stored.emplace(name, std::move(t));
}

}  // namespace

ExpertStorage expert_storage(const Checkpoint& ckpt, const ModelConfig& cfg, int layer) {
  const MoeTemplate& m = moe_of(cfg, layer);
  const int64_t E = cfg.moe.num_experts, I = cfg.moe.expert_intermediate, H = cfg.hidden_size;
  const std::string prefix = experts_prefix(cfg, layer);
  const FusedNames fused = fused_names(cfg, layer);
  const bool has_fused = ckpt.contains(fused.gate_up) || ckpt.contains(fused.down);
  int64_t highest = -1;
  std::string highest_name;
  for (const auto& name : ckpt.tensor_names()) {
    const int64_t e = expert_index(name, prefix);
    if (e > highest) highest = e, highest_name = name;
  }
  if (highest >= E)
    fail("tensor '{}' belongs to expert {}, but {} declares {} experts ({} = {})", highest_name, highest,
         cfg.source.filename().string(), E, architecture_for(cfg).moe->num_experts_key, E);
  if (has_fused) {
    if (m.fused == FusedExperts::None)
      fail("tensor '{}': {} checkpoints are read with one tensor per expert ({}.<e>.{}.weight); fused 3-D expert "
           "tensors are not a layout of this family", ckpt.contains(fused.gate_up) ? fused.gate_up : fused.down,
           cfg.model_type, prefix, m.gate);
    if (highest >= 0)
      fail("layer {} holds both fused expert tensors ('{}') and per-expert ones ('{}'); expected one layout", layer,
           fused.gate_up, highest_name);
    for (const auto& name : {fused.gate_up, fused.down})
      if (!ckpt.contains(name)) fail("tensor '{}' is missing from checkpoint {}", name, ckpt.path().string());
    const bool out_major = m.fused == FusedExperts::OutMajor;
    const std::string how = out_major ? fmt::format(" ({} stores fused experts output-major, [E, 2I, H] and [E, H, I], "
                                                    "as transformers 5 saves them)", cfg.model_type)
                                      : fmt::format(" ({} stores fused experts input-major, [E, H, 2I] and [E, I, H])",
                                                    cfg.model_type);
    check_shape(cfg, ckpt, fused.gate_up, out_major ? Shape{E, 2 * I, H} : Shape{E, H, 2 * I}, how);
    check_shape(cfg, ckpt, fused.down, out_major ? Shape{E, H, I} : Shape{E, I, H}, how);
    return ExpertStorage::Fused;
  }
  for (int64_t e = 0; e < E; ++e)
    for (const auto& [which, shape] : {std::pair{m.gate, Shape{I, H}}, {m.up, Shape{I, H}}, {m.down, Shape{H, I}}}) {
      const std::string name = fmt::format("{}.{}.{}.weight", prefix, e, which);
      if (!ckpt.contains(name))
        fail("tensor '{}' is missing from checkpoint {} ({} declares {} experts)", name, ckpt.path().string(),
             cfg.source.filename().string(), E);
      check_shape(cfg, ckpt, name, shape, "");
    }
  return ExpertStorage::PerExpert;
}

std::vector<std::string> expert_checkpoint_tensors(const Checkpoint& ckpt, const ModelConfig& cfg, int layer) {
  const std::string prefix = experts_prefix(cfg, layer);
  const FusedNames fused = fused_names(cfg, layer);
  std::vector<std::string> out;
  for (const auto& name : ckpt.tensor_names())
    if (name == fused.gate_up || name == fused.down || expert_index(name, prefix) >= 0) out.push_back(name);
  return out;
}

LayerWeights read_expert(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, int expert, ExpertStorage storage) {
  const MoeTemplate& m = moe_of(cfg, layer);
  const int64_t I = cfg.moe.expert_intermediate, H = cfg.hidden_size;
  LayerWeights w;
  w.layer = layer;
  auto name = [&](const std::string& which) { return expert_linear_name(m, expert, which) + ".weight"; };
  if (storage == ExpertStorage::PerExpert) {
    const std::string prefix = experts_prefix(cfg, layer);
    for (const auto& which : {m.gate, m.up, m.down}) {
      const std::string full = fmt::format("{}.{}.{}.weight", prefix, expert, which);
      Tensor t = ckpt.read(full);
      check_finite(t, full, ckpt.file_of(full).string());
      put(w, name(which), std::move(t));
    }
    return w;
  }
  const FusedNames fused = fused_names(cfg, layer);
  Tensor gate_up = ckpt.read_slice(fused.gate_up, expert);
  Tensor down = ckpt.read_slice(fused.down, expert);
  check_finite(gate_up, fmt::format("{}[{}]", fused.gate_up, expert), ckpt.file_of(fused.gate_up).string());
  check_finite(down, fmt::format("{}[{}]", fused.down, expert), ckpt.file_of(fused.down).string());
  ExpertLinears lin = split_fused_expert(gate_up, down, m.fused, I, H);
  put(w, name(m.gate), std::move(lin.gate));
  put(w, name(m.up), std::move(lin.up));
  put(w, name(m.down), std::move(lin.down));
  return w;
}

bool expert_mappable(const ModelConfig& cfg, int layer, ExpertStorage storage) {
  return storage == ExpertStorage::PerExpert || moe_of(cfg, layer).fused == FusedExperts::OutMajor;
}

namespace {

// A mapped weight, checked finite; on a non-finite value the tensor is read
// the ordinary way so that the error is read_expert's, word for word.
const void* checked_view(const MappedBytes& m, DType dtype, bool check, const std::function<void()>& fail_as_read) {
  if (check && first_non_finite(dtype, m.data(), static_cast<int64_t>(m.size() / dtype_size(dtype))) >= 0)
    fail_as_read();
  return m.data();
}

}  // namespace

ExpertView map_expert(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, int expert, ExpertStorage storage,
                      bool check) {
  ExpertView v;
  if (!expert_mappable(cfg, layer, storage)) return v;
  const MoeTemplate& m = moe_of(cfg, layer);
  const int64_t I = cfg.moe.expert_intermediate, H = cfg.hidden_size;
  auto name = [&](const std::string& which) { return expert_linear_name(m, expert, which) + ".weight"; };
  if (storage == ExpertStorage::PerExpert) {
    const std::string prefix = experts_prefix(cfg, layer);
    for (const auto& which : {m.gate, m.up, m.down}) {
      const std::string full = fmt::format("{}.{}.{}.weight", prefix, expert, which);
      const TensorInfo& info = ckpt.info(full);
      v.maps.push_back(ckpt.map_range(full, 0, info.nbytes, /*populate=*/true));
      const void* data = checked_view(v.maps.back(), info.dtype, check, [&] {
        check_finite(ckpt.read(full), full, ckpt.file_of(full).string());
      });
      v.weights[name(which)] = {info.dtype, info.shape, data};
    }
    return v;
  }
  // Output-major fused: gate rows, then up rows, of [2I, H]; down [H, I] as is.
  const FusedNames fused = fused_names(cfg, layer);
  for (const std::string* t : {&fused.gate_up, &fused.down}) {
    const TensorInfo& info = ckpt.info(*t);
    const uint64_t n = info.nbytes / static_cast<uint64_t>(info.shape[0]);
    v.maps.push_back(ckpt.map_range(*t, static_cast<uint64_t>(expert) * n, n, /*populate=*/true));
    checked_view(v.maps.back(), info.dtype, check, [&] {
      check_finite(ckpt.read_slice(*t, expert), fmt::format("{}[{}]", *t, expert), ckpt.file_of(*t).string());
    });
  }
  const DType dt = ckpt.info(fused.gate_up).dtype, ddt = ckpt.info(fused.down).dtype;
  const uint8_t* gate_up = v.maps[0].data();
  v.weights[name(m.gate)] = {dt, {I, H}, gate_up};
  v.weights[name(m.up)] = {dt, {I, H}, gate_up + static_cast<size_t>(I * H) * dtype_size(dt)};
  v.weights[name(m.down)] = {ddt, {H, I}, v.maps[1].data()};
  return v;
}

Tensor copy_view(const ExpertView::Weight& w) {
  Tensor t(w.dtype, w.shape);
  if (t.nbytes()) std::memcpy(t.bytes.data(), w.data, t.nbytes());
  return t;
}

ExpertLinears split_fused_expert(const Tensor& gate_up, const Tensor& down, FusedExperts orientation, int64_t I,
                                 int64_t H) {
  const size_t elem = dtype_size(gate_up.dtype);
  ExpertLinears out{Tensor(gate_up.dtype, {I, H}), Tensor(gate_up.dtype, {I, H}), Tensor(down.dtype, {H, I})};
  if (orientation == FusedExperts::OutMajor) {  // [2I, H]: gate rows first, then up rows; down [H, I] as is
    const size_t half = static_cast<size_t>(I * H) * elem;
    std::memcpy(out.gate.bytes.data(), gate_up.bytes.data(), half);
    std::memcpy(out.up.bytes.data(), gate_up.bytes.data() + half, half);
    std::memcpy(out.down.bytes.data(), down.bytes.data(), down.nbytes());
    return out;
  }
  // Input-major [H, 2I]: gate = first half of the last dim, transposed; down [I, H] transposed.
  transpose_into(gate_up.bytes.data(), H, I, 2 * I, elem, out.gate.bytes.data());
  transpose_into(gate_up.bytes.data() + static_cast<size_t>(I) * elem, H, I, 2 * I, elem, out.up.bytes.data());
  transpose_into(down.bytes.data(), I, H, H, elem, out.down.bytes.data());
  return out;
}

void insert_expert(LayerWeights& layer, LayerWeights&& expert) {
  for (auto& [name, v] : expert.tensors) layer.tensors.insert_or_assign(name, std::move(v));
  for (auto& [name, t] : expert.stored) layer.stored.insert_or_assign(name, std::move(t));
}

void erase_expert(LayerWeights& layer, const LayerDesc& desc, int expert) {
  for (const LinearDesc* l : desc.expert_linears(expert)) {
    layer.tensors.erase(l->name + ".weight");
    layer.stored.erase(l->name + ".weight");
  }
}

ExpertTransform then(ExpertTransform first, ExpertTransform second) {
  if (!first) return second;
  if (!second) return first;
  return [first = std::move(first), second = std::move(second)](int e, LayerWeights& w) {
    first(e, w);
    second(e, w);
  };
}

ExpertStream::ExpertStream(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, LayerWeights& weights,
                           bool prefetch, ExpertTransform transform)
    : ckpt_(ckpt),
      cfg_(cfg),
      layer_(layer),
      weights_(weights),
      prefetch_(prefetch),
      transform_(std::move(transform)),
      storage_(expert_storage(ckpt, cfg, layer)),
      desc_(layer_desc(cfg, layer)) {
  for (const LinearDesc* l : desc_.expert_linears(0))
    expert_bytes_ += static_cast<size_t>(l->out_features * l->in_features) * dtype_size(cfg.dtype);
}

ExpertStream::~ExpertStream() { wait_pending(); }

// Never leave a reader running on a closing checkpoint or a stale expert.
void ExpertStream::wait_pending() {
  if (next_.valid()) next_.wait(), next_ = {};
  if (next_view_.valid()) next_view_.wait(), next_view_ = {};
  next_expert_ = -1;
}

bool ExpertStream::mappable() const { return !transform_ && expert_mappable(cfg_, layer_, storage_); }

void ExpertStream::check_finite(int expert) const { read_expert(ckpt_, cfg_, layer_, expert, storage_); }

ExpertView ExpertStream::take_view(int expert, bool check) {
  if (transform_) fail("layer {}: experts that are transformed as they are read cannot be mapped", layer_);
  ExpertView v;
  if (next_view_.valid() && next_expert_ == expert) v = next_view_.get();
  else {
    wait_pending();
    v = map_expert(ckpt_, cfg_, layer_, expert, storage_, check);
  }
  next_expert_ = -1;
  if (prefetch_ && expert + 1 < desc_.num_experts) {
    // Mapping with MAP_POPULATE faults the pages in (reading them if not cached) here, not in the consumer.
    next_view_ = std::async(std::launch::async,
                            [this, e = expert + 1, check] {
                              return map_expert(ckpt_, cfg_, layer_, e, storage_, check);
                            });
    next_expert_ = expert + 1;
  }
  return v;
}

LayerWeights ExpertStream::read(int expert) const {
  LayerWeights w = read_expert(ckpt_, cfg_, layer_, expert, storage_);
  if (transform_) transform_(expert, w);
  return w;
}

std::future<LayerWeights> ExpertStream::start(int expert) {
  return std::async(std::launch::async, [this, expert] { return read(expert); });
}

void ExpertStream::acquire(int expert) { insert_expert(weights_, take(expert)); }

LayerWeights ExpertStream::take(int expert) {
  LayerWeights w;
  if (next_.valid() && next_expert_ == expert) w = next_.get();
  else {
    wait_pending();
    w = read(expert);
  }
  next_expert_ = -1;
  if (prefetch_ && expert + 1 < desc_.num_experts) {
    next_ = start(expert + 1);
    next_expert_ = expert + 1;
  }
  return w;
}

void ExpertStream::release(int expert) { erase_expert(weights_, desc_, expert); }

void load_all_experts(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, LayerWeights& weights) {
  const ExpertStorage storage = expert_storage(ckpt, cfg, layer);
  for (int64_t e = 0; e < cfg.moe.num_experts; ++e)
    insert_expert(weights, read_expert(ckpt, cfg, layer, static_cast<int>(e), storage));
}

}  // namespace lwq
