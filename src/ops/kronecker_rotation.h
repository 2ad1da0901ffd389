// An orthogonal rotation of Linear inputs by a Kronecker product, applied to
// activations at run time: QuaRot's online rotations (spec §1.6 `quarot`
// `online`, §3.4). A row x of width m·n, viewed as the m×n matrix X
// (row-major), becomes Lᵀ·X·R — that is x·kron(L, R) — at O(m·n·(m + n))
// per row instead of the (m·n)² of the dense product:
//  * o_proj's input, heads rotation: L mixes the heads (m = num_heads),
//    R = identity over head_dim;
//  * down_proj's input, Kronecker rotation: intermediate = m·n, both factors
//    Hadamard.
// A Linear W then computes the same function on rotated inputs once its
// weight is rotated the same way, W ← W·kron(L, R): apply() on W's rows.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace lwq {

class KroneckerRotation {
 public:
  KroneckerRotation() = default;
  // `left` m×m and `right` n×n, row-major and orthogonal (not checked here:
  // orthogonality_error). An empty `right` is the identity of order n.
  KroneckerRotation(std::vector<float> left, int64_t m, std::vector<float> right, int64_t n);

  int64_t m() const { return f_ ? f_->m : 0; }
  int64_t n() const { return f_ ? f_->n : 0; }
  int64_t width() const { return m() * n(); }
  bool empty() const { return !f_; }
  bool right_is_identity() const { return f_ && f_->right.empty(); }
  const std::vector<float>& left() const { return f_->left; }
  const std::vector<float>& right() const { return f_->right; }  // empty: identity

  // x[rows, m·n] ← x·kron(L, R), in place.
  void apply(float* x, int64_t rows) const;
  // kron(L, R) as a dense (m·n)² matrix (tests).
  std::vector<float> dense() const;

 private:
  struct Factors {
    int64_t m = 0, n = 0;
    std::vector<float> left, left_t, right;  // left_t = Lᵀ
  };
  std::shared_ptr<const Factors> f_;  // shared: every layer's Linear uses the same factors
};

// max |QᵀQ − I| over the entries of an n×n row-major matrix.
double orthogonality_error(const float* q, int64_t n);

}  // namespace lwq
