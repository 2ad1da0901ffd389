// QuaRot offline rotation (spec §1.6 `quarot`, §3.3 / §3.12 exports), applied
// layer by layer as each unit is loaded.
//
// The residual stream h is replaced by h·R with R an orthogonal (randomised,
// possibly block-diagonal) Hadamard matrix of hidden size. RMSNorm is
// invariant under R once its weight is fused into the Linears that read it, so:
//   embedding E           → E·R                       (rows are residual vectors)
//   layer k: norms g      → fused into q/k/v, gate/up (W[:, c] *= g[c]); g := 1
//            q,k,v,gate,up → W·R                      (input side)
//            o, down       → Rᵀ·W, bias → Rᵀ·b        (output side, they write the stream)
//            v → o         → v rows Uᵀ per head, o columns U per head (U: head_dim Hadamard)
//   MoE layer: post-attention g → fused into the router and every expert's gate/up; g := 1
//            router, expert gate/up → W·R;  expert down → Rᵀ·W  (multimodal.md A.4.5)
//   final norm g          → fused into lm_head; g := 1;  lm_head → L·R
// The float model's logits are unchanged (up to f32 rounding).
//
// Tied embeddings: the fused, rotated head L = E·diag(g)·R differs from the
// rotated embedding E·R, so a rotated tied model gets its own lm_head tensor
// and its config.json must say tie_word_embeddings: false (msModelSlim rotates
// the shared parameter twice, which breaks the embedding of tied models).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "config/quant_config.h"
#include "models/architecture.h"
#include "models/decoder_layer.h"
#include "models/experts.h"
#include "models/model_config.h"
#include "ops/kronecker_rotation.h"
#include "tensor/tensor.h"

namespace lwq {

struct QuarotSettings {
  int64_t block_size = -1;  // -1: one Hadamard over the whole dimension; else a power of two
  // Online rotation only: the Hadamard blocks that mix heads (and down_proj's
  // first Kronecker factor) are this large, so that tensor parallelism up to
  // it keeps each block on one device; exported in the description's metadata.
  int64_t max_tp_size = 4;
  bool export_extra_info = true;
  bool online = false;                           // o_proj's input rotated online (heads rotation)
  std::vector<int64_t> down_proj_online_layers;  // and down_proj's in these layers (Kronecker rotation)
  uint64_t seed = 1234;  // sign vector of the randomised Hadamard
};

// Unnormalised Hadamard matrix of order n (entries ±1, H·Hᵀ = n·I), row-major.
// n = m·2^k with m = 1 (Sylvester), or m = q+1 for a prime q ≡ 3 (mod 4)
// (Paley I), or m = 2(q+1) for a prime q ≡ 1 (mod 4) (Paley II), combined by
// Kronecker product. Throws for other orders.
std::vector<int8_t> hadamard_matrix(int64_t n);
bool hadamard_order_supported(int64_t n);

// diag(signs)·H_n/√n with signs drawn from mt19937_64(seed): orthogonal.
std::vector<float> random_hadamard(int64_t n, uint64_t seed);

// A block-diagonal orthogonal matrix: `block` (b×b, row-major) repeated along
// the diagonal of a size×size matrix.
class BlockRotation {
 public:
  BlockRotation() = default;
  // Any orthogonal block, applied by dense products.
  BlockRotation(int64_t size, std::vector<float> block);
  // The randomised Hadamard block random_hadamard(b, seed), applied by a fast
  // Walsh–Hadamard transform: O(b·log b) per vector instead of O(b²), which
  // is what makes a full-hidden rotation of a large model affordable.
  static BlockRotation hadamard(int64_t size, int64_t b, uint64_t seed);
  int64_t size() const { return size_; }
  int64_t block_size() const { return b_; }
  // The b×b block (computed for a Hadamard rotation, which stores only its
  // signs and base: a dense 8192² block and its transpose would be 512 MB).
  std::vector<float> block() const;

  // W[rows, cols] ← W·blockdiag(B) where cols is a multiple of b (input side).
  void right(float* w, int64_t rows, int64_t cols) const;
  // W[rows, cols] ← blockdiag(B)ᵀ·W where rows is a multiple of b (output side);
  // cols = 1 rotates a bias vector.
  void left(float* w, int64_t rows, int64_t cols) const;
  // The dense size×size matrix (for export).
  std::vector<float> dense() const;

 private:
  // y_j = Σ_i B[i, j]·x_i over b vectors x_i = v + i·stride of `width` floats.
  void apply_block(float* v, int64_t stride, int64_t width) const;

  int64_t size_ = 0, b_ = 0;
  std::vector<float> block_, block_t_;
  // Fast path (hadamard()): B = diag(signs)·kron(H_{2^k}, base)/√b.
  bool fast_ = false;
  std::vector<float> signs_, base_;  // base: m×m ±1, m = b / 2^k
  int64_t m_ = 1;
  uint64_t seed_ = 0;
};

// quarot `online` (msModelSlim's LAOS online rotation): rotations of Linear
// inputs that the serving engine applies at run time (spec §3.4: exported as
// `<linear>.heads_rotation` / `.kronecker_rotation_m/_n`), lwquant's forwards
// too (LayerWeights::input_rotations), with the weight rotated to match
// (W ← W·kron(L, R), so the float function is unchanged). Unlike the offline
// rotation they reach activations no weight can absorb — o_proj's input
// (attention's output) and down_proj's (the gated product), where the
// massive activations of many LLMs live:
//  * heads: every layer's o_proj; L = blockdiag of the random Hadamard of
//    order max_tp_size over the num_heads heads, R = identity(head_dim);
//  * down: down_proj of the layers listed; intermediate_size = m·n
//    (kronecker_factors), L = the same block Hadamard of order m, R = the
//    random Hadamard of order n.
struct QuarotOnline {
  KroneckerRotation heads;  // empty without online
  KroneckerRotation down;   // empty without down_proj_online_layers
  std::set<int> down_layers;
};

struct QuarotPlan {
  BlockRotation hidden;  // R: residual stream
  BlockRotation head;    // U: per attention head (v → o)
  QuarotOnline online;
};

// (m, n) = (a − b, a + b) with a² − b² = size, m and n both 1, 2 or a multiple
// of 4 up to 256, the smallest a from ⌈√size⌉ up: msModelSlim's
// get_decompose_dim, so down_proj's factors have the reference's shapes.
// Throws when there is none.
std::pair<int64_t, int64_t> kronecker_factors(int64_t size);

// From a parsed quarot processor (throws for another type or online rotation).
QuarotSettings quarot_settings_from(const ProcessorConfig& p);

// Validates block_size against the model (power of two dividing hidden_size;
// the head rotation uses min(block_size, head_dim)) and builds R and U.
// `where` (the processor's YAML path, e.g. "w8a8.yaml: spec.process[0]")
// prefixes the errors; call it before any work starts.
QuarotPlan make_quarot_plan(const ModelConfig& cfg, const QuarotSettings& s, const std::string& where = "");

// Rotates one layer in place (norms fused first). 16-bit `stored` tensors that
// change are moved to f32 `tensors` (rounding them back would break the exact
// equivalence; the saver decides the written dtype). On a mixture-of-experts
// layer the router takes the dense MLP's place, and the routed experts the
// layer holds are rotated too (whole-layer users); a layer-wise reader
// streams them instead and rotates each with quarot_rotate_expert, given the
// post-attention norm as the checkpoint stores it (w's copy is ones by then).
void quarot_rotate_layer(const ModelConfig& cfg, const Architecture& arch, const QuarotPlan& plan, LayerWeights& w);

// One routed expert: the post-attention norm `norm` [hidden] fused into gate
// and up ([I, hidden], W[:, c] *= g[c]), which are then right-rotated (W·R);
// down ([hidden, I]) is left-rotated (Rᵀ·W).
void quarot_rotate_expert(const QuarotPlan& plan, std::span<const float> norm, std::vector<float>& gate,
                          std::vector<float>& up, std::vector<float>& down);
// The same on expert `expert`'s weights inside `w` (named as layer_desc names
// them, the family's MoeTemplate); 16-bit ones move to f32 like the layer's.
void quarot_rotate_expert(const MoeTemplate& moe, int expert, const QuarotPlan& plan, std::span<const float> norm,
                          LayerWeights& w);
// The ExpertStream transform that rotates decoder layer `layer`'s experts as
// they stream by ({} without a plan). It reads the post-attention norm as the
// checkpoint stores it: the loaded layer's copy is ones once fused into the
// router, and smoothing leaves that norm alone on MoE layers (its only
// smoothed subgraphs there are attention's).
ExpertTransform quarot_expert_transform(const Checkpoint& ckpt, const ModelConfig& cfg, int layer,
                                        const QuarotPlan* plan);

// The online rotations of decoder layer `layer` (plan.online; nothing
// without `online`): o_proj's and, in a listed layer, down_proj's weight
// rotated (W ← W·kron(L, R), 16-bit ones moved to f32) and the rotation
// recorded in w.input_rotations for every forward that follows. Called at the
// quarot processor's place in the layer's process list: a smoothing
// processor before it may still smooth v → o and up → down, one after it
// cannot (its scales would act across the rotation).
void quarot_rotate_online(const Architecture& arch, const QuarotPlan& plan, int layer, LayerWeights& w);

// Rows of a [rows, hidden] matrix ← row·R: the embedding table, and any
// hidden states made from the unrotated table (calibration inputs).
void quarot_rotate_rows(const QuarotPlan& plan, float* x, int64_t rows);

// Final norm fused into lm_head and lm_head rotated: `final_norm` becomes
// ones, `lm_head` [vocab, hidden] becomes L·diag(g)·R. For a tied model pass a
// copy of the unrotated embedding as lm_head.
void quarot_rotate_head(const QuarotPlan& plan, std::vector<float>& final_norm, std::vector<float>& lm_head);

// What export_extra_info writes: the tensor `global_rotation` (f32,
// [hidden, hidden], the R applied to the embedding) into
// optional/quarot.safetensors, and the description's "optional" entry.
struct QuarotExport {
  static constexpr const char* kFile = "optional/quarot.safetensors";
  static constexpr const char* kTensor = "global_rotation";
  Tensor global_rotation;
  nlohmann::ordered_json description_optional;  // {"quarot": {"rotation_map": {"global_rotation": kFile}}}
  // The description's "metadata": {} offline; with online rotation
  // {"quarot": {"max_tp_size": T, "heads_rotation": {"layers": [...]},
  // "kronecker_rotation": {"layers": [...]}}} (spec §3.3), the layers being
  // the rotated Linears' full names (the saver lists them as written).
  bool untie_word_embeddings = false;  // the output config.json must say tie_word_embeddings: false
};
// Empty tensor / object when !export_extra_info (untie flag still set).
QuarotExport quarot_export(const ModelConfig& cfg, const QuarotPlan& plan, const QuarotSettings& s);

}  // namespace lwq
