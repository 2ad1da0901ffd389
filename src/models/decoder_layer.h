// One decoder layer of a Llama-style model in f32: the unit the layer-wise
// quantization runner loads, runs on every calibration sample, quantizes and
// frees (spec §4.2–4.4).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/mapped_bytes.h"
#include "models/model_config.h"
#include "ops/kronecker_rotation.h"
#include "tensor/tensor.h"

namespace lwq {

class Checkpoint;

// How a unit's Linear weight matrices are held once loaded.
enum class LinearWeightHold {
  Read,    // read into memory (`stored`, or f32 `tensors`), checked finite as read
  Mapped,  // mapped from the checkpoint, every page read now: for consumers that read them once (data-free)
  // Mapped and checked finite now (which reads them into the page cache),
  // and each read's pages dropped from the process right after
  // (LayerWeights::Mapped::streamed): a calibrated unit reads its weights
  // many times, and between reads they stay in the page cache, which the
  // kernel may reclaim, instead of the process's memory.
  Streamed,
};

struct LayerWeights {
  int layer = -1;
  // f32 copies of the layer's tensors keyed by relative name ("mlp.up_proj.weight").
  std::map<std::string, std::vector<float>> tensors;
  // Linear weight matrices of 16-bit checkpoints, kept in their stored dtype
  // and converted one at a time when used: a bf16 layer then costs its file
  // size in memory rather than twice that (the layer-wise memory bound).
  std::map<std::string, Tensor> stored;
  // Linear weight matrices mapped from the checkpoint instead of read
  // (LinearWeightHold Mapped: data-free runs quantize them from there, so the
  // bytes are never copied; Streamed: calibrated runs); read like `stored`.
  // Not checked finite when mapped: a separate pass over fresh file pages
  // cost a fifth of a data-free run's CPU. The f32 accessors below check what
  // they convert; raw() hands out unchecked bytes, for the minmax quantizer,
  // whose row statistics find a NaN or Inf on their pass
  // (check_mapped_finite then gives the read error).
  struct Mapped {
    DType dtype;
    Shape shape;
    std::shared_ptr<const MappedBytes> bytes;  // shared: a copied LayerWeights reads the same mapping
    std::string source, file;                  // checkpoint tensor name and its file, for errors
    bool streamed = false;                     // LinearWeightHold::Streamed: pages dropped after each read
    // Set once a whole-tensor finiteness pass found every value finite.
    std::shared_ptr<std::atomic<bool>> finite = std::make_shared<std::atomic<bool>>(false);
  };
  std::map<std::string, Mapped> mapped;
  // Per-channel scalings smoothing gave a `stored` (16-bit) or mapped weight, applied in
  // order whenever it is read as f32 (columns: w[r, c] *= s[c]; rows:
  // w[r, c] /= s[r]), operation for operation as on an f32 copy: a smoothed
  // layer is then never held in f32, twice its stored bytes.
  struct Scaling {
    bool columns;
    std::vector<float> s;
  };
  std::map<std::string, std::vector<Scaling>> scalings;
  // Online rotations of Linear inputs (quarot `online`, models/quarot.h), by
  // Linear name ("self_attn.o_proj"): run_linear rotates the input rows
  // before the Linear sees them, whichever executor runs it, and the weight
  // holds the matching rotation.
  std::map<std::string, KroneckerRotation> input_rotations;
  // Smoothing's transforms: recorded on a stored weight, applied in place on an f32 one.
  void scale(const std::string& name, Scaling op);
  void scale_columns(const std::string& name, const std::vector<float>& s) { scale(name, {true, s}); }
  void divide_rows(const std::string& name, const std::vector<float>& s) { scale(name, {false, s}); }
  bool scaled(const std::string& name) const;
  int64_t numel(const std::string& name) const;  // elements of any held tensor; throws when absent

  const std::vector<float>& get(const std::string& name) const;  // f32 tensors; throws when absent
  std::vector<float>& get(const std::string& name);
  bool contains(const std::string& name) const {
    return tensors.count(name) != 0 || stored.count(name) != 0 || mapped.count(name) != 0;
  }
  // Any tensor as f32: a pointer into `tensors`, or `stored` converted into
  // `scratch` (valid until scratch changes). Throws when absent.
  const float* f32(const std::string& name, std::vector<float>& scratch) const;
  // The tensor as a mutable f32 vector, for transforms that rewrite weights
  // (smoothing, rotation): a 16-bit stored tensor is converted and moves to `tensors`.
  std::vector<float>& mutable_f32(const std::string& name);
  // Rows [begin, end) of a row-major tensor with `cols` columns, as f32, into `dst`.
  void rows_f32(const std::string& name, int64_t begin, int64_t end, int64_t cols, float* dst) const;
  // The tensor's data as held, row-major: a stored 16-bit tensor's bytes or
  // the f32 copy, with its dtype. Throws when absent.
  std::pair<DType, const void*> raw(const std::string& name) const;
  // The same for a smoothed weight too: its bytes as held, before the
  // `scalings` the caller must then apply itself.
  std::pair<DType, const void*> held(const std::string& name) const;
  // Throws the read error ("tensor '<name>' in <file> holds NaN at ...") if
  // mapped tensor `name` holds a non-finite value; no-op for other tensors.
  void check_mapped_finite(const std::string& name) const;
  // A streamed tensor's pages leave resident memory (after a whole-tensor
  // read, e.g. by a quantizer); no-op for anything else.
  void release_pages(const std::string& name) const;
  // The same for rows [begin, end) of a row-major tensor with `cols` columns.
  void release_rows(const std::string& name, int64_t begin, int64_t end, int64_t cols) const;
  // Whether `name` is held LinearWeightHold::Streamed.
  bool streamed(const std::string& name) const;
  // Bytes held (f32 tensors + stored tensors).
  size_t bytes() const;

 private:
  const Mapped* streamed_mapping(const std::string& name) const;  // nullptr unless held Streamed
};

// Reads every tensor layer_desc() lists, checking presence, float dtype and
// shape against config.json; converts F16/BF16 to f32. A mixture-of-experts
// layer's routed experts come too unless `with_experts` is false (the
// quantization runner streams them: models/experts.h).
// `hold` says how Linear weights are held (LinearWeightHold).
LayerWeights load_layer_weights(const Checkpoint& ckpt, const ModelConfig& cfg, int layer, bool with_experts = true,
                                LinearWeightHold hold = LinearWeightHold::Read);

// Reads checkpoint tensor `full` into `w` as `name` (its shape already
// checked by the caller against its config): a float dtype and finite values
// are required (named in the error); a 16-bit Linear weight
// (`linear_weight`) stays as stored, everything else becomes f32. A Linear
// weight held Mapped or Streamed is mapped from the file instead
// (LayerWeights::mapped).
void read_unit_tensor(const Checkpoint& ckpt, const std::string& full, const std::string& name, bool linear_weight,
                      LayerWeights& w, LinearWeightHold hold = LinearWeightHold::Read);

// y[rows, out] = x·Wᵀ + bias with W = `weight` of `w`; a 16-bit or smoothed
// stored weight is converted (and scaled) a block of rows at a time, never as
// a whole f32 copy. With `bf16_inputs` an unsmoothed stored bfloat16 weight is
// used as it is, on matmul_nt_bf16 with x rounded to bf16 (f32 accumulation).
void linear_from_layer(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows, int64_t in,
                       const float* bias, int64_t out, float* y, bool bf16_inputs = false);

// The same product with a weight held in f32 (rewritten by smoothing or quarot)
// rounded to bfloat16 too, 8 MiB of its rows at a time, and x rounded to
// bfloat16, f32 accumulation: for statistics that only place a heuristic
// scale (the smoothing forward under --compute_dtype auto). Returns false,
// doing nothing, when the weight is not held in f32 or the CPU has no native
// bf16 GEMM.
bool linear_bf16_rounded(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows, int64_t in,
                         const float* bias, int64_t out, float* y);

// The same product for a weight held as bfloat16 (stored or mapped) on a CPU
// with a native bf16 GEMM, without converting the weight: x, times the
// weight's column scalings, is split into bfloat16 parts hi + lo (within
// 2^-17 relative of x), both are multiplied by the bf16 weight with f32
// accumulation and summed, and the row scalings divide the output columns.
// Within about 1e-5 relative of the f32 product: for the quality report's
// float reference, whose error figures are 1e-3 and up. Returns false, doing
// nothing, when the weight is not held that way.
bool linear_from_bf16_split(const LayerWeights& w, const std::string& weight, const float* x, int64_t rows,
                            int64_t in, const float* bias, int64_t out, float* y);

// y[rows, out] = Linear `name` of `w` on x[rows, in] (+ bias when non-null):
// through `exec` when given (the float weight materialised only if it asks
// for it), else in f32 from the layer, a block of weight rows at a time.
// With exec->compute_dtype() BF16, x is rounded to bfloat16 before exec sees
// it (observers, fake quantization and the product all get the rounded
// rows) and y is rounded to bfloat16 after.
// Every family's forward runs its Linears through this. A Linear with an
// input rotation (LayerWeights::input_rotations) gets x rotated first.
class LinearExecutor;
void run_linear(const LayerWeights& w, LinearExecutor* exec, const std::string& name, const float* x, int64_t rows,
                int64_t in, const float* bias, int64_t out, float* y);
// The same over several samples' rows (LinearExecutor::run_samples).
void run_linear_samples(const LayerWeights& w, LinearExecutor* exec, const std::string& name, const float* x,
                        std::span<const int64_t> samples, int64_t in, const float* bias, int64_t out, float* y);

// Linear `name` of a unit whose Linears all carry a bias (DiT blocks, vision
// towers): y = x·Wᵀ + b through run_linear, y resized to [rows, out].
struct BiasedLinears {
  const LayerWeights& w;
  LinearExecutor* exec;
  void operator()(const std::string& name, const float* x, int64_t rows, int64_t in, int64_t out,
                  std::vector<float>& y) const;
};

// Called for every Linear of the layer in execution order. The default
// executes y = x·Wᵀ + b in f32. The quantization runner overrides it to
// observe inputs and run fake-quantized weights/activations; the evaluator
// overrides it with integer arithmetic.
class LinearExecutor {
 public:
  virtual ~LinearExecutor() = default;
  virtual void run(const std::string& linear_name /* relative, e.g. "mlp.down_proj" */, const float* x, int64_t rows,
                   int64_t in, const float* weight, const float* bias, int64_t out, float* y);
  // The Linear over several calibration samples at once: x holds their rows
  // one after another, samples[i] rows of the i-th (none empty). An executor
  // whose arithmetic or statistics are per call (the quantization runner's
  // observers: one call is one sample) overrides this; the default is one
  // run() over all rows, which is the same for row-wise arithmetic.
  virtual void run_samples(const std::string& linear_name, const float* x, std::span<const int64_t> samples,
                           int64_t in, const float* weight, const float* bias, int64_t out, float* y);
  // False when run() does not read `weight` for this Linear (it is then
  // nullptr): a 16-bit weight is then not converted to f32 for the call.
  virtual bool needs_float_weight(const std::string& linear_name) const { return true; }

  // BF16 (quant --compute_dtype bf16, bfloat16 checkpoints): run_linear hands
  // run() the input rounded to bfloat16 and rounds its output to bfloat16, as
  // a bfloat16 model's Linear sees and produces them; run() accumulates in
  // float32 as always. The one place the calibration forward's dtype lives
  // besides the unit stream (docs/design.md, "Compute dtype").
  ComputeDType compute_dtype() const { return compute_dtype_; }
  void set_compute_dtype(ComputeDType d) { compute_dtype_ = d; }

  // Mixture-of-experts layers. Whether expert e runs on every token rather
  // than only on those routed to it: the reference's dense-all-experts
  // calibration (spec §4.8), so static activation observers of every expert
  // see data. The layer output is the routed top-k mixture either way.
  virtual bool expert_sees_all_tokens(int expert) { return false; }
  // After the attention half of a layer has run over every sequence, before
  // its MLP: what was kept for the attention's Linears can go.
  virtual void attention_done() {}
  // Around expert e's Linears, while its weights are in the layer.
  virtual void expert_begin(int expert) {}
  virtual void expert_end(int expert) {}

 private:
  ComputeDType compute_dtype_ = ComputeDType::F32;
};

class ExpertStream;

// One sequence of a batched layer forward.
struct SequenceRef {
  float* hidden;  // [seq, hidden_size], replaced by the layer's output
  int64_t seq;
  const int32_t* positions;
  int sample = -1;  // the calibration sample (UnitModel::calibration_inputs) it is, when the model needs to know
  // A multimodal-rope model's (t, h, w) positions, [3, seq]; nullptr: `positions` on every axis.
  const int32_t* mrope = nullptr;
};

// hidden [seq, hidden_size] is replaced by the layer's output (the residual
// stream). One sequence per call: token i attends to tokens 0..i (and only the
// last sliding_window of them on windowed layers); positions[i] drives the
// rotary embedding (dynamic NTK uses max(position) + 1 as the length, as HF
// does in a full forward). exec = nullptr runs plain f32 Linears.
void decoder_layer_forward(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                           const int32_t* positions, LinearExecutor* exec = nullptr);

// Every sequence through one layer, each attending only to itself. A
// mixture-of-experts layer is computed expert by expert over all sequences,
// so `experts` (when given) reads each routed expert's weights once, just
// before it is used, and drops them after; with nullptr the layer must hold
// every expert. `exec` also sees expert_begin/end for every expert (those no
// token chose included); `tokens_per_expert` gets each expert's routed-token
// count.
void decoder_layer_forward_batch(const ModelConfig& cfg, const LayerWeights& w, int layer,
                                 std::span<const SequenceRef> seqs, LinearExecutor* exec = nullptr,
                                 ExpertStream* experts = nullptr, std::vector<int64_t>* tokens_per_expert = nullptr);

// The batched forwards run a layer's Linears over as many whole sequences as
// keep the batch within 1024 rows and its activations within this bound
// (default 64 MiB; at least one sequence per batch), attention per
// sequence. Sets it and returns the old one: for tests and benchmarks.
int64_t set_batch_activation_bytes(int64_t bytes);

// Keys (rope applied) and values of the tokens one layer has already seen,
// for incremental decoding.
struct LayerKVCache {
  std::vector<float> k, v;  // [tokens, kv_dim]
  int64_t tokens = 0;
};

// As decoder_layer_forward for `seq` tokens that follow the cache.tokens
// cached ones (token i attends to all cached keys and new tokens 0..i);
// appends the new keys and values to `cache`. Dynamic NTK rope uses the new
// tokens' max(position) + 1, so cached keys keep the rope they were made
// with, as in HF generate with a KV cache.
void decoder_layer_forward_cached(const ModelConfig& cfg, const LayerWeights& w, int layer, float* hidden, int64_t seq,
                                  const int32_t* positions, LayerKVCache& cache, LinearExecutor* exec = nullptr);

}  // namespace lwq
