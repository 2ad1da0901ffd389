// SIMD row kernels of causal_attention, compiled for every x86 target
// Highway knows and picked at run time (the build targets baseline x86-64).
#pragma once

#include <cstdint>

namespace lwq::kernels {

// s[j] = scale · Σ_e q[e] · kt[e·kt_stride + j], j < n (kt: keys transposed).
void attention_scores(const float* q, const float* kt, int64_t kt_stride, int64_t head_dim, int64_t n, float scale,
                      float* s);
// s ← exp(s − max s) over n values; returns their sum.
float softmax_unnormalized(float* s, int64_t n);
// out[e] = inv · Σ_j p[j] · v[j·v_stride + e], e < head_dim.
void attention_weighted_sum(const float* p, int64_t n, const float* v, int64_t v_stride, int64_t head_dim, float inv,
                            float* out);

}  // namespace lwq::kernels
