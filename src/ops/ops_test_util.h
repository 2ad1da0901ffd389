// Helpers shared by the ops tests: seeded random data and error measures.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace lwq::test {

inline std::vector<float> random_vec(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// max |a − b| / max |b|: the error relative to the reference's magnitude.
inline double max_rel_err(const std::vector<float>& a, const std::vector<double>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return den > 0 ? num / den : num;
}

inline std::vector<int8_t> random_s8(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(-128, 127);
  std::vector<int8_t> v(n);
  for (auto& e : v) e = static_cast<int8_t>(dist(rng));
  return v;
}

// y = x[rows, in] · w[out, in]ᵀ exactly in int64: independent of any SIMD or library path.
inline std::vector<int64_t> naive_s8(const std::vector<int8_t>& x, int64_t rows, int64_t in,
                                     const std::vector<int8_t>& w, int64_t out) {
  std::vector<int64_t> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      int64_t s = 0;
      for (int64_t i = 0; i < in; ++i) s += int64_t{x[r * in + i]} * w[o * in + i];
      y[r * out + o] = s;
    }
  return y;
}

}  // namespace lwq::test
