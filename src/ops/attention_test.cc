#include "ops/attention.h"

#include <gtest/gtest.h>

#include <cmath>

#include "ops/ops_test_util.h"
#include "util/error.h"

namespace lwq {
namespace {

// Scores over all keys with an explicit mask, as a dense reference.
std::vector<double> naive_attention(const std::vector<float>& q, const std::vector<float>& k,
                                    const std::vector<float>& v, const AttentionDims& d, double scale) {
  const int64_t hd = d.head_dim, qs = d.n_heads * hd, ks = d.n_kv_heads * hd;
  std::vector<double> out(static_cast<size_t>(d.seq * qs));
  for (int64_t h = 0; h < d.n_heads; ++h) {
    const int64_t g = h * d.n_kv_heads / d.n_heads;
    for (int64_t i = 0; i < d.seq; ++i) {
      std::vector<double> s(static_cast<size_t>(d.seq), -INFINITY);
      double mx = -INFINITY;
      for (int64_t j = 0; j < d.seq; ++j) {
        bool visible = j <= i && (d.sliding_window == 0 || i - j < d.sliding_window);
        if (!visible) continue;
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e) dot += double(q[i * qs + h * hd + e]) * k[j * ks + g * hd + e];
        s[j] = dot * scale;
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (int64_t j = 0; j < d.seq; ++j)
        for (int64_t e = 0; e < hd; ++e) out[i * qs + h * hd + e] += s[j] / sum * v[j * ks + g * hd + e];
    }
  }
  return out;
}

void check(AttentionDims d, uint32_t seed) {
  auto q = test::random_vec(d.seq * d.n_heads * d.head_dim, seed, 2.0f);
  auto k = test::random_vec(d.seq * d.n_kv_heads * d.head_dim, seed + 1, 2.0f);
  auto v = test::random_vec(d.seq * d.n_kv_heads * d.head_dim, seed + 2);
  std::vector<float> out(q.size(), NAN);
  const float scale = 1.0f / std::sqrt(float(d.head_dim));
  causal_attention(q.data(), k.data(), v.data(), d, scale, out.data());
  EXPECT_LT(test::max_rel_err(out, naive_attention(q, k, v, d, scale)), 1e-5)
      << "seq " << d.seq << " heads " << d.n_heads << "/" << d.n_kv_heads << " window " << d.sliding_window;
}

TEST(Attention, MultiHeadCausal) { check({.seq = 9, .n_heads = 3, .n_kv_heads = 3, .head_dim = 8}, 1); }
TEST(Attention, GroupedQuery) { check({.seq = 40, .n_heads = 8, .n_kv_heads = 2, .head_dim = 16}, 2); }
TEST(Attention, MultiQuery) { check({.seq = 17, .n_heads = 4, .n_kv_heads = 1, .head_dim = 6}, 3); }
// Every vector-width path of the P·V kernel: full, 8- and 4-lane tails, scalar rest.
TEST(Attention, HeadDimsAroundVectorWidths) {
  for (int64_t hd : {1, 3, 4, 5, 12, 20, 24, 28, 72, 100, 136})
    check({.seq = 13, .n_heads = 2, .n_kv_heads = 1, .head_dim = hd}, static_cast<uint32_t>(hd));
}
TEST(Attention, SlidingWindow) {
  check({.seq = 24, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .sliding_window = 8}, 4);
  check({.seq = 5, .n_heads = 2, .n_kv_heads = 2, .head_dim = 4, .sliding_window = 1}, 5);
  check({.seq = 6, .n_heads = 2, .n_kv_heads = 1, .head_dim = 4, .sliding_window = 100}, 6);
}
// head_dim 64 and > 64 keys reach the register-blocked SIMD paths, odd sizes the tails.
TEST(Attention, SimdBlocksAndTails) {
  check({.seq = 70, .n_heads = 2, .n_kv_heads = 1, .head_dim = 64}, 8);
  check({.seq = 67, .n_heads = 2, .n_kv_heads = 2, .head_dim = 80, .sliding_window = 50}, 9);
  check({.seq = 3, .n_heads = 1, .n_kv_heads = 1, .head_dim = 2}, 10);
}
TEST(Attention, LargeEnoughForThreads) { check({.seq = 200, .n_heads = 4, .n_kv_heads = 2, .head_dim = 32}, 7); }

// Queries split into a prefix and cached continuation give the same rows.
TEST(Attention, CachedKeysMatchFullSequence) {
  for (int64_t window : {0, 5}) {
    AttentionDims full{.seq = 13, .n_heads = 4, .n_kv_heads = 2, .head_dim = 16, .sliding_window = window};
    auto q = test::random_vec(13 * 64, 30, 2.0f), k = test::random_vec(13 * 32, 31, 2.0f), v = test::random_vec(13 * 32, 32);
    std::vector<float> ref(q.size()), tail(4 * 64);
    causal_attention(q.data(), k.data(), v.data(), full, 0.25f, ref.data());
    AttentionDims cached = full;
    cached.seq = 4;
    cached.past = 9;
    causal_attention(q.data() + 9 * 64, k.data(), v.data(), cached, 0.25f, tail.data());
    std::vector<double> expect(ref.begin() + 9 * 64, ref.end());
    EXPECT_LT(test::max_rel_err(tail, expect), 1e-6) << window;
  }
}

// From kBlockedAttentionMinRows queries on, blocks of queries run as GEMMs:
// several blocks and a partial last one, GQA, windows narrower and wider than
// a block, head_dim at the threshold.
TEST(Attention, BlockedGemmPath) {
  check({.seq = 200, .n_heads = 4, .n_kv_heads = 2, .head_dim = 64}, 11);
  check({.seq = 130, .n_heads = 2, .n_kv_heads = 1, .head_dim = 16, .sliding_window = 70}, 12);
  check({.seq = 64, .n_heads = 3, .n_kv_heads = 3, .head_dim = 32, .sliding_window = 1}, 13);
  check({.seq = 97, .n_heads = 2, .n_kv_heads = 2, .head_dim = 80, .sliding_window = 20}, 14);
}

// A long cached prefix: a few queries (the row-at-a-time kernels, many keys)
// and many (the GEMM blocks) give the rows of the whole sequence.
TEST(Attention, CachedKeysOnBothPaths) {
  for (int64_t window : {0, 50}) {
    for (int64_t tail_rows : {8, 70}) {
      const int64_t total = 100 + tail_rows;
      AttentionDims full{.seq = total, .n_heads = 4, .n_kv_heads = 2, .head_dim = 64, .sliding_window = window};
      auto q = test::random_vec(total * 256, 40, 2.0f), k = test::random_vec(total * 128, 41, 2.0f),
           v = test::random_vec(total * 128, 42);
      std::vector<float> ref(q.size()), tail(static_cast<size_t>(tail_rows * 256));
      causal_attention(q.data(), k.data(), v.data(), full, 0.125f, ref.data());
      AttentionDims cached = full;
      cached.seq = tail_rows;
      cached.past = 100;
      causal_attention(q.data() + 100 * 256, k.data(), v.data(), cached, 0.125f, tail.data());
      std::vector<double> expect(ref.begin() + 100 * 256, ref.end());
      EXPECT_LT(test::max_rel_err(tail, expect), 1e-5) << window << " " << tail_rows;
    }
  }
}

TEST(Attention, FirstRowCopiesFirstValue) {
  AttentionDims d{.seq = 3, .n_heads = 2, .n_kv_heads = 1, .head_dim = 2};
  std::vector<float> q(12, 1.0f), k(6, 0.5f), v = {1, 2, 3, 4, 5, 6}, out(12);
  causal_attention(q.data(), k.data(), v.data(), d, 1.0f, out.data());
  EXPECT_FLOAT_EQ(out[0], 1);
  EXPECT_FLOAT_EQ(out[3], 2);
  EXPECT_FLOAT_EQ(out[8], 3);  // equal scores: mean of rows 0..2
}

TEST(Attention, RejectsIndivisibleHeads) {
  AttentionDims d{.seq = 1, .n_heads = 3, .n_kv_heads = 2, .head_dim = 2};
  float x[6] = {};
  EXPECT_THROW(causal_attention(x, x, x, d, 1.0f, x), Error);
}

// Non-causal attention reads q/k/v as column blocks of one fused row (the
// vision tower's qkv) and equals the dense softmax over every key.
TEST(FullAttention, MatchesDenseSoftmaxOnFusedRows) {
  const int64_t rows = 37, heads = 3, hd = 8, width = heads * hd;
  auto qkv = test::random_vec(rows * 3 * width, 21, 2.0f);
  std::vector<float> out(static_cast<size_t>(rows * width), NAN);
  const float scale = 1.0f / std::sqrt(float(hd));
  FullAttentionDims d{.rows = rows, .keys = rows, .heads = heads, .head_dim = hd, .q_stride = 3 * width,
                      .kv_stride = 3 * width};
  full_attention(qkv.data(), qkv.data() + width, qkv.data() + 2 * width, d, scale, out.data());
  std::vector<double> ref(out.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < rows; ++i) {
      std::vector<double> s(static_cast<size_t>(rows));
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < rows; ++j) {
        double dot = 0;
        for (int64_t e = 0; e < hd; ++e) dot += double(qkv[i * 3 * width + h * hd + e]) * qkv[j * 3 * width + width + h * hd + e];
        mx = std::max(mx, s[j] = dot * scale);
      }
      for (auto& x : s) sum += (x = std::exp(x - mx));
      for (int64_t j = 0; j < rows; ++j)
        for (int64_t e = 0; e < hd; ++e) ref[i * width + h * hd + e] += s[j] / sum * qkv[j * 3 * width + 2 * width + h * hd + e];
    }
  EXPECT_LT(test::max_rel_err(out, ref), 1e-5);
}

}  // namespace
}  // namespace lwq
