// Causal grouped-query attention over one sequence, f32 throughout, softmax
// max-subtracted (HF eager attention). OpenMP splits the (head, query) pairs;
// call it outside other OpenMP regions.
#pragma once

#include <cstdint>

namespace lwq {

struct AttentionDims {
  int64_t seq = 0;         // query rows

  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;  // divides n_heads; query head h reads KV head h / (n_heads / n_kv_heads)
  int64_t head_dim = 0;
  int64_t sliding_window = 0;  // > 0: query i sees keys j with i - window < j <= i
  int64_t past = 0;            // cached keys before the first query: query i is token past + i
};

// q [seq, n_heads·head_dim], k and v [past + seq, n_kv_heads·head_dim] →
// out [seq, n_heads·head_dim]; scores are scaled by `scale` (1/sqrt(head_dim)).
// Query i (token past + i) attends to keys 0..past + i.
// From kBlockedAttentionMinRows queries and kBlockedAttentionMinHeadDim up,
// a block of queries runs as GEMMs (summation order differs from the
// row-at-a-time kernels used below that).
inline constexpr int64_t kBlockedAttentionMinRows = 64, kBlockedAttentionMinHeadDim = 16;
void causal_attention(const float* q, const float* k, const float* v, const AttentionDims& d, float scale, float* out);

// Bidirectional (non-causal) multi-head attention: every one of `rows`
// queries attends to all `keys` keys. q and out [rows, heads·head_dim] with
// row stride q_stride; k and v [keys, heads·head_dim] with row stride
// kv_stride (so q, k and v may be column blocks of one fused qkv row).
struct FullAttentionDims {
  int64_t rows = 0, keys = 0, heads = 0, head_dim = 0;
  int64_t q_stride = 0, kv_stride = 0;  // 0: heads·head_dim
};
void full_attention(const float* q, const float* k, const float* v, const FullAttentionDims& d, float scale, float* out);

}  // namespace lwq
