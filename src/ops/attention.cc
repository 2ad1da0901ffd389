#include "ops/attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "ops/attention_kernels.h"
#include "ops/gemm.h"
#include "util/error.h"

namespace lwq {

namespace {

// The query block of causal_attention_blocked: its scores (kQueryBlock × the
// keys the block sees) stay in cache.
constexpr int64_t kQueryBlock = 64;

// Causal attention as two GEMMs per KV head and block of queries (S = Q·Kᵀ
// over the keys the block can see, O = softmax(S)·V), the keys a row must not
// see given weight zero: a calibration prompt's hundreds of tokens made the
// row-at-a-time kernels (a query's scores, then its weighted sum) a third of
// a small model's calibration time at a fraction of the GEMM's rate. The
// query heads that share a KV head (GQA) are stacked into one product: 4 × 64
// rows against the same keys run at 1.2-1.25x the rate of four 64-row
// products. Only the diagonal block's upper triangle (and a sliding window's
// edge) is computed in vain.
void causal_attention_blocked(const float* q, const float* k, const float* v, const AttentionDims& d, float scale,
                              float* out) {
  const int64_t seq = d.seq, hd = d.head_dim, group = d.n_heads / d.n_kv_heads, keys = d.past + seq;
  const int64_t q_stride = d.n_heads * hd, kv_stride = d.n_kv_heads * hd;
  // Each KV head's keys and values contiguous ([kv][key][dim]), for the GEMMs.
  std::vector<float> kh(static_cast<size_t>(d.n_kv_heads * keys * hd)), vh(kh.size());
#pragma omp parallel for collapse(2) if (keys * kv_stride > (1 << 15))
  for (int64_t g = 0; g < d.n_kv_heads; ++g)
    for (int64_t j = 0; j < keys; ++j) {
      std::copy_n(k + j * kv_stride + g * hd, hd, kh.data() + (g * keys + j) * hd);
      std::copy_n(v + j * kv_stride + g * hd, hd, vh.data() + (g * keys + j) * hd);
    }
  const int64_t blocks = (seq + kQueryBlock - 1) / kQueryBlock;
#pragma omp parallel
  {
    // Row h·n + i of a block's products: query head g·group + h, query r0 + i.
    std::vector<float> qb(static_cast<size_t>(group * kQueryBlock * hd)), ob(qb.size());
    std::vector<float> inv(static_cast<size_t>(group * kQueryBlock)), sb;
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < d.n_kv_heads * blocks; ++w) {
      // Last blocks (the most keys) first keeps the dynamic schedule balanced.
      const int64_t g = w / blocks, r0 = (blocks - 1 - w % blocks) * kQueryBlock, n = std::min(kQueryBlock, seq - r0);
      const int64_t first = d.past + r0, last = d.past + r0 + n - 1;  // tokens of the block's first and last query
      const int64_t j0 = d.sliding_window > 0 ? std::max<int64_t>(0, first - d.sliding_window + 1) : 0;
      const int64_t m = last + 1 - j0, rows = group * n;
      for (int64_t h = 0; h < group; ++h)
        for (int64_t i = 0; i < n; ++i)
          std::copy_n(q + (r0 + i) * q_stride + (g * group + h) * hd, hd, qb.data() + (h * n + i) * hd);
      sb.resize(static_cast<size_t>(rows * m));
      // Inside the parallel region each product runs on this thread alone (ops/gemm.h).
      matmul_nt(qb.data(), rows, hd, kh.data() + (g * keys + j0) * hd, m, sb.data());
      for (int64_t row = 0; row < rows; ++row) {
        float* s = sb.data() + row * m;
        const int64_t token = first + row % n;
        const int64_t a = d.sliding_window > 0 ? std::max<int64_t>(0, token - d.sliding_window + 1) - j0 : 0;
        const int64_t b = token - j0 + 1;  // visible keys: [a, b)
        for (int64_t j = a; j < b; ++j) s[j] *= scale;
        inv[static_cast<size_t>(row)] = 1.0f / kernels::softmax_unnormalized(s + a, b - a);
        std::fill(s, s + a, 0.0f);
        std::fill(s + b, s + m, 0.0f);
      }
      matmul_nn(sb.data(), rows, m, vh.data() + (g * keys + j0) * hd, hd, ob.data());
      for (int64_t h = 0; h < group; ++h)
        for (int64_t i = 0; i < n; ++i) {
          const float f = inv[static_cast<size_t>(h * n + i)];
          const float* o = ob.data() + (h * n + i) * hd;
          float* dst = out + (r0 + i) * q_stride + (g * group + h) * hd;
          for (int64_t e = 0; e < hd; ++e) dst[e] = o[e] * f;
        }
    }
  }
}

}  // namespace

void causal_attention(const float* q, const float* k, const float* v, const AttentionDims& d, float scale, float* out) {
  if (d.n_heads <= 0 || d.n_kv_heads <= 0 || d.n_heads % d.n_kv_heads != 0 || d.head_dim <= 0)
    fail("attention: {} query heads cannot share {} KV heads (head_dim {})", d.n_heads, d.n_kv_heads, d.head_dim);
  if (d.past < 0) fail("attention: negative number of cached keys {}", d.past);
  const int64_t seq = d.seq, hd = d.head_dim, group = d.n_heads / d.n_kv_heads;
  const int64_t keys = d.past + seq;
  const int64_t q_stride = d.n_heads * hd, kv_stride = d.n_kv_heads * hd;
  if (seq <= 0) return;
  if (seq >= kBlockedAttentionMinRows && hd >= kBlockedAttentionMinHeadDim)
    return causal_attention_blocked(q, k, v, d, scale, out);

  // K transposed per KV head ([kv][dim][seq]) so that a query's scores are
  // contiguous multiply-adds over keys, which vectorize without reductions.
  // The row stride is padded off a multiple of 4 KiB: rows exactly 2^k
  // floats apart would all land in the same L1 sets and thrash.
  const int64_t kts = (keys + 15) / 16 * 16 + 16;
  std::vector<float> kt(static_cast<size_t>(d.n_kv_heads * hd * kts));
#pragma omp parallel for collapse(2) if (keys * kv_stride > (1 << 15))
  for (int64_t g = 0; g < d.n_kv_heads; ++g)
    for (int64_t j = 0; j < keys; ++j)
      for (int64_t e = 0; e < hd; ++e) kt[static_cast<size_t>((g * hd + e) * kts + j)] = k[j * kv_stride + g * hd + e];

  const int64_t work = d.n_heads * seq;
#pragma omp parallel if (work * hd > (1 << 14))
  {
    std::vector<float> scores(static_cast<size_t>(keys));
#pragma omp for schedule(dynamic, 16)
    for (int64_t w = 0; w < work; ++w) {
      // Longest rows first per head keeps the dynamic schedule balanced.
      const int64_t h = w / seq, i = seq - 1 - w % seq;
      const int64_t g = h / group;
      const int64_t last = d.past + i;  // the query's own key
      const int64_t j0 = d.sliding_window > 0 ? std::max<int64_t>(0, last - d.sliding_window + 1) : 0;
      const int64_t n = last + 1 - j0;
      const float* qi = q + i * q_stride + h * hd;
      float* s = scores.data();
      kernels::attention_scores(qi, kt.data() + g * hd * kts + j0, kts, hd, n, scale, s);
      const float sum = kernels::softmax_unnormalized(s, n);
      kernels::attention_weighted_sum(s, n, v + j0 * kv_stride + g * hd, kv_stride, hd, 1.0f / sum,
                                      out + i * q_stride + h * hd);
    }
  }
}

// Non-causal attention as two GEMMs per head and block of queries (S = Q·Kᵀ,
// O = softmax(S)·V), never the whole [rows, keys] score matrix: a video DiT
// attends over tens of thousands of keys, where the row-at-a-time kernel of
// causal_attention reaches a few GFLOP/s and oneDNN's GEMM tens.
void full_attention(const float* q, const float* k, const float* v, const FullAttentionDims& d, float scale, float* out) {
  if (d.heads <= 0 || d.head_dim <= 0 || d.rows < 0 || d.keys <= 0)
    fail("attention: {} queries over {} keys with {} heads of {} (need keys, heads and head_dim > 0)", d.rows, d.keys,
         d.heads, d.head_dim);
  const int64_t hd = d.head_dim, width = d.heads * hd, keys = d.keys, rows = d.rows;
  const int64_t qs = d.q_stride > 0 ? d.q_stride : width, kvs = d.kv_stride > 0 ? d.kv_stride : width;
  if (rows == 0) return;
  // Each head's keys and values contiguous ([head][key][dim]), for the GEMMs.
  std::vector<float> kh(static_cast<size_t>(d.heads * keys * hd)), vh(kh.size());
#pragma omp parallel for collapse(2) if (keys * width > (1 << 15))
  for (int64_t h = 0; h < d.heads; ++h)
    for (int64_t j = 0; j < keys; ++j)
      for (int64_t e = 0; e < hd; ++e) {
        kh[static_cast<size_t>((h * keys + j) * hd + e)] = k[j * kvs + h * hd + e];
        vh[static_cast<size_t>((h * keys + j) * hd + e)] = v[j * kvs + h * hd + e];
      }
  // Query blocks small enough that a block's scores stay near the cache (64 × keys floats).
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
#pragma omp parallel if (d.heads * rows * keys * hd > (1 << 16))
  {
    std::vector<float> qb(static_cast<size_t>(kBlock * hd)), sb(static_cast<size_t>(kBlock * keys)),
        ob(static_cast<size_t>(kBlock * hd));
    std::vector<float> inv(kBlock);
#pragma omp for schedule(dynamic, 1)
    for (int64_t w = 0; w < d.heads * blocks; ++w) {
      const int64_t h = w / blocks, r0 = (w % blocks) * kBlock, n = std::min(kBlock, rows - r0);
      for (int64_t i = 0; i < n; ++i)
        std::copy_n(q + (r0 + i) * qs + h * hd, hd, qb.data() + i * hd);
      // Inside the parallel region each product runs on this thread alone (ops/gemm.h).
      matmul_nt(qb.data(), n, hd, kh.data() + h * keys * hd, keys, sb.data());
      for (int64_t i = 0; i < n; ++i) {
        float* s = sb.data() + i * keys;
        for (int64_t j = 0; j < keys; ++j) s[j] *= scale;
        inv[static_cast<size_t>(i)] = 1.0f / kernels::softmax_unnormalized(s, keys);
      }
      matmul_nn(sb.data(), n, keys, vh.data() + h * keys * hd, hd, ob.data());
      for (int64_t i = 0; i < n; ++i)
        for (int64_t e = 0; e < hd; ++e)
          out[(r0 + i) * width + h * hd + e] = ob[static_cast<size_t>(i * hd + e)] * inv[static_cast<size_t>(i)];
    }
  }
}

}  // namespace lwq
