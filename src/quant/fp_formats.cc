#include "quant/fp_formats.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "util/error.h"

namespace lwq {
namespace {

constexpr std::array<float, 8> kE2M1 = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

// floor(log2(x)) for x > 0, exact (frexp: x = m·2^k, m in [0.5, 1)).
int floor_log2(double x) {
  int k = 0;
  std::frexp(x, &k);
  return k - 1;
}

// Shared exponent of a block with maximum magnitude amax (spec §2.4).
int mx_shared_exponent(float amax, QDtype dtype) {
  if (dtype == QDtype::MxFp8) {
    const double m = amax == 0.0f ? std::ldexp(1.0, -126) : static_cast<double>(amax);
    return std::max(floor_log2(m) - 8, -127);
  }
  const double m = static_cast<double>(amax) * 8.0 / 7.0 + 9.6e-7;
  return std::clamp(floor_log2(m) - 2, -129, 125);
}

// Element rounding of v = x / 2^e (spec §2.4): round half away from zero on
// the private-exponent grid, then clamp to the format's max.
float mx_element(float v, QDtype dtype) {
  const double a = std::fabs(static_cast<double>(v));
  double q;
  if (dtype == QDtype::MxFp8) {
    const int p = a == 0.0 ? -6 : std::max(floor_log2(a), -6);
    q = std::floor(std::ldexp(a, 3 - p) + 0.5) * std::ldexp(1.0, p - 3);
    q = std::min(q, 448.0);
  } else {
    const int p = std::clamp(floor_log2(a + 9.6e-7), 0, 2);
    q = std::floor(std::ldexp(a, 1 - p) + 0.5) * std::ldexp(1.0, p - 1);
    q = std::min(q, 6.0);
  }
  return std::copysign(static_cast<float>(q), v);
}

}  // namespace

float fp8_scale_of(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return std::max(amax, 1e-12f) / kFp8Max;
}

uint8_t fp8_quantize_code(float x, float scale) {
  return f32_to_f8e4m3(std::clamp(x / scale, -kFp8Max, kFp8Max));
}

void fake_quant_fp8_per_token(float* x, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    for (int64_t i = 0; i < cols; ++i)
      if (!std::isfinite(row[i])) fail("FP8 fake quantization: non-finite activation at row {}, column {}", r, i);
    const float s = fp8_scale_of(row, cols);
    for (int64_t i = 0; i < cols; ++i) row[i] = f8e4m3_to_f32(fp8_quantize_code(row[i], s)) * s;
  }
}

float fp4_e2m1_value(uint8_t code) {
  const float v = kE2M1[code & 7];
  return (code & 8) ? -v : v;
}

uint8_t fp4_e2m1_code(float x) {
  const float a = std::fabs(x);
  size_t best = 0;
  for (size_t k = 1; k < kE2M1.size(); ++k)
    if (std::fabs(kE2M1[k] - a) < std::fabs(kE2M1[best] - a)) best = k;  // strict: ties keep the lower index
  return static_cast<uint8_t>(best + (std::signbit(x) ? 8 : 0));
}

std::vector<uint8_t> pack_fp4(const std::vector<uint8_t>& codes, int64_t rows, int64_t cols) {
  if (cols % 2 != 0) fail("FP4 packing needs an even number of columns, got {}", cols);
  if (codes.size() != static_cast<size_t>(rows * cols)) fail("pack_fp4: {} codes for [{}, {}]", codes.size(), rows, cols);
  std::vector<uint8_t> out(static_cast<size_t>(rows * cols / 2));
  for (size_t k = 0; k < out.size(); ++k)
    out[k] = static_cast<uint8_t>((codes[2 * k] & 0xF) | ((codes[2 * k + 1] & 0xF) << 4));
  return out;
}

std::vector<uint8_t> unpack_fp4(const uint8_t* packed, int64_t rows, int64_t cols) {
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  for (size_t k = 0; k < codes.size() / 2; ++k) {
    codes[2 * k] = packed[k] & 0xF;
    codes[2 * k + 1] = packed[k] >> 4;
  }
  return codes;
}

std::vector<uint8_t> pack_fp4_values(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<uint8_t> codes(x.size());
  for (size_t i = 0; i < x.size(); ++i) codes[i] = fp4_e2m1_code(x[i]);
  return pack_fp4(codes, rows, cols);
}

namespace {

// Codes of the block x[0, n) under shared exponent e; returns the exponent
// stored (e, or −127 for a block flushed to zero because e < −127) and adds
// the block's squared error to *sq_err when given.
int mx_quantize_block(const float* x, int64_t n, int e, QDtype dtype, uint8_t* codes, double* sq_err) {
  const bool zero_block = e < -127;  // MXFP4: everything below 2^-127 flushes to zero
  double err = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = zero_block ? 0.0f : mx_element(static_cast<float>(std::ldexp(static_cast<double>(x[i]), -e)), dtype);
    codes[i] = dtype == QDtype::MxFp8 ? f32_to_f8e4m3(v) : fp4_e2m1_code(v);
    const double d = static_cast<double>(x[i]) - (zero_block ? 0.0 : std::ldexp(static_cast<double>(v), e));
    err += d * d;
  }
  if (sq_err) *sq_err = err;
  return std::max(e, -127);
}

// ceil(log2(x)) for x > 0, exact.
int ceil_log2(double x) {
  const int f = floor_log2(x);
  return std::ldexp(1.0, f) == x ? f : f + 1;
}

// The better of two exponent candidates, its codes in `codes`: `first`
// unless `second` gives a strictly smaller squared error.
int mx_pick(const float* x, int64_t n, QDtype dtype, int first, int second, uint8_t* codes) {
  uint8_t alt[kMxBlock];
  double e1 = 0.0, e2 = 0.0;
  const int s1 = mx_quantize_block(x, n, first, dtype, codes, &e1);
  const int s2 = mx_quantize_block(x, n, second, dtype, alt, &e2);
  if (!(e2 < e1)) return s1;
  std::copy(alt, alt + n, codes);
  return s2;
}

// One block with the method's exponent rule; returns the stored exponent.
int mx_block(const float* x, int64_t n, QDtype dtype, const MxWeightMethod& m, uint8_t* codes) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  switch (m.kind) {
    case MxMethod::MinMax: return mx_quantize_block(x, n, mx_shared_exponent(amax, dtype), dtype, codes, nullptr);
    case MxMethod::MseRound: {
      // msModelSlim's exponents: log2 of amax (2^-126 for a zero block) minus emax 8; above 127 invalid, below
      // −127 clamped to −127.
      const double a = amax == 0.0f ? std::ldexp(1.0, -126) : static_cast<double>(amax);
      const int down = std::max(floor_log2(a) - 8, -127), up = ceil_log2(a) - 8;
      return mx_pick(x, n, dtype, down, std::max(up, -127), codes);
    }
    case MxMethod::CeilX: return mx_quantize_block(x, n, mx_ceil_x_exponent(amax, m.ceil_x), dtype, codes, nullptr);
    case MxMethod::FourOverSix:
      return mx_pick(x, n, dtype, mx_nearest_exponent(amax / 6.0), mx_nearest_exponent(amax / 4.0), codes);
  }
  return 0;
}

void mx_quantize_row_with(const float* x, int64_t n, QDtype dtype, const MxWeightMethod& m, uint8_t* codes,
                          int* exps) {
  if (dtype != QDtype::MxFp8 && dtype != QDtype::MxFp4) fail("mx_quantize_row: not an MX dtype");
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) fail("MX quantization: non-finite value at element {}", i);
  for (int64_t b = 0; b * kMxBlock < n; ++b) {
    const int64_t begin = b * kMxBlock, end = std::min(n, begin + kMxBlock);
    exps[b] = mx_block(x + begin, end - begin, dtype, m, codes + begin);
  }
}

}  // namespace

int mx_ceil_x_exponent(float amax, double c) {
  return std::clamp(ceil_log2(static_cast<double>(amax) / c + 9.6e-7), -129, 125);
}

int mx_nearest_exponent(double scale) {
  if (!(scale > 0.0)) return 0;
  const double l = std::log2(scale);
  const double int_part = std::floor(l), frac = l - int_part;
  const int k = static_cast<int>(int_part);
  constexpr double kEpsTie = 1e-6;
  if (frac > 0.5 + kEpsTie) return k + 1;
  if (frac < 0.5 - kEpsTie) return k;
  return k % 2 == 0 ? k + 1 : k;  // msModelSlim's tie rule (rounds to the odd exponent)
}

void mx_quantize_row(const float* x, int64_t n, QDtype dtype, uint8_t* codes, int* exps) {
  mx_quantize_row_with(x, n, dtype, MxWeightMethod{}, codes, exps);
}

void fake_quant_mx(float* x, int64_t rows, int64_t cols, QDtype dtype) {
  const int64_t blocks = (cols + kMxBlock - 1) / kMxBlock;
  std::vector<uint8_t> codes(static_cast<size_t>(cols));
  std::vector<int> exps(static_cast<size_t>(blocks));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    mx_quantize_row(row, cols, dtype, codes.data(), exps.data());
    for (int64_t i = 0; i < cols; ++i) {
      const float v = dtype == QDtype::MxFp8 ? f8e4m3_to_f32(codes[static_cast<size_t>(i)])
                                             : fp4_e2m1_value(codes[static_cast<size_t>(i)]);
      row[i] = static_cast<float>(std::ldexp(static_cast<double>(v), exps[static_cast<size_t>(i / kMxBlock)]));
    }
  }
}

namespace {

// Quantizes the rows of an MX weight in parallel: `row(o, exps)` writes row o's
// codes and its blocks' shared exponents; the scales become 2^exp. A row that
// throws (a non-finite value) is reported once, the first such row by index.
template <typename Row>
void mx_rows_parallel(QuantizedWeight& qw, const Row& row) {
  const int64_t blocks = qw.groups();
  int64_t bad_row = -1;
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < qw.out; ++o) {
    std::vector<int> exps(static_cast<size_t>(blocks));
    try {
      row(o, exps.data());
    } catch (const Error&) {
#pragma omp critical
      if (bad_row < 0 || o < bad_row) bad_row = o;
      continue;
    }
    for (int64_t b = 0; b < blocks; ++b)
      qw.scale[static_cast<size_t>(o * blocks + b)] = static_cast<float>(std::ldexp(1.0, exps[static_cast<size_t>(b)]));
  }
  if (bad_row >= 0) fail("weight quantization: non-finite value in output row {}", bad_row);
}

}  // namespace

QuantizedWeight quantize_weight_mx(const float* w, int64_t out, int64_t in, QDtype dtype,
                                   const MxWeightMethod& method) {
  if (out <= 0 || in <= 0) fail("weight quantization: invalid shape [{}, {}]", out, in);
  if (method.kind == MxMethod::MseRound && dtype != QDtype::MxFp8)
    fail("MX weight method mse_round is registered for mxfp8 only");
  if ((method.kind == MxMethod::CeilX || method.kind == MxMethod::FourOverSix) && dtype != QDtype::MxFp4)
    fail("MX weight methods ceil_x and fouroversix are registered for mxfp4 only");
  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.bits = dtype == QDtype::MxFp8 ? 8 : 4;
  qw.group_size = kMxBlock;
  qw.code = dtype == QDtype::MxFp8 ? WeightCode::MxFp8 : WeightCode::MxFp4;
  const int64_t blocks = qw.groups();
  qw.q.resize(static_cast<size_t>(out * in));
  qw.scale.resize(static_cast<size_t>(out * blocks));
  qw.offset.assign(qw.scale.size(), 0.0f);
  mx_rows_parallel(qw, [&](int64_t o, int* exps) {
    mx_quantize_row_with(w + o * in, in, dtype, method, reinterpret_cast<uint8_t*>(qw.q.data()) + o * in, exps);
  });
  return qw;
}

double mx_ceil_x_search(const float* w, int64_t out, int64_t in, double search_min, double search_max,
                        double search_step) {
  if (!(search_step > 0.0) || !(search_max > search_min))
    fail("ceil_x search: needs search_max > search_min and search_step > 0, got [{}, {}] step {}", search_min,
         search_max, search_step);
  const auto steps = static_cast<int64_t>(std::nearbyint((search_max - search_min) / search_step)) + 1;
  double best_c = search_min, best_err = std::numeric_limits<double>::infinity();
  for (int64_t k = 0; k < steps; ++k) {
    const double c = search_min + static_cast<double>(k) * search_step;
    const QuantizedWeight qw = quantize_weight_mx(w, out, in, QDtype::MxFp4, {MxMethod::CeilX, c});
    double err = 0.0;
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) {
        const double d = static_cast<double>(w[o * in + i]) - dequantized_value(qw, o, i);
        err += d * d;
      }
    if (err < best_err) {
      best_err = err;
      best_c = c;
    }
  }
  return best_c;
}

float mx_dual_scale_of(const float* x, int64_t n) {
  float amax = 0.0f;
  for (int64_t i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  return amax / kMxFp4MaxNormal;
}

namespace {

void check_dual_block_size(int64_t dual_block_size) {
  if (dual_block_size <= 0 || dual_block_size % kMxBlock != 0)
    fail("dual_block_size must be a positive multiple of {}, got {}", kMxBlock, dual_block_size);
}

// dst ← row divided by each dual block's scale (stored into dual[]); an
// all-zero block (scale 0) stays zero instead of msModelSlim's 0/0 = NaN.
void dual_scale_row(const float* row, int64_t n, int64_t dual_block_size, float* dst, float* dual) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(row[i])) fail("MX dual-scale quantization: non-finite value at element {}", i);
  for (int64_t b = 0; b * dual_block_size < n; ++b) {
    const int64_t begin = b * dual_block_size, end = std::min(n, begin + dual_block_size);
    const float s = mx_dual_scale_of(row + begin, end - begin);
    dual[b] = s;
    for (int64_t i = begin; i < end; ++i) dst[i] = s > 0.0f ? row[i] / s : 0.0f;
  }
}

}  // namespace

QuantizedWeight quantize_weight_mxfp4_dualscale(const float* w, int64_t out, int64_t in, int64_t dual_block_size) {
  check_dual_block_size(dual_block_size);
  if (out <= 0 || in <= 0) fail("weight quantization: invalid shape [{}, {}]", out, in);
  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.bits = 4;
  qw.group_size = kMxBlock;
  qw.code = WeightCode::MxFp4;
  qw.dual_block_size = dual_block_size;
  const int64_t blocks = qw.groups(), duals = qw.dual_groups();
  qw.q.resize(static_cast<size_t>(out * in));
  qw.scale.resize(static_cast<size_t>(out * blocks));
  qw.offset.assign(qw.scale.size(), 0.0f);
  qw.dual_scale.resize(static_cast<size_t>(out * duals));
  mx_rows_parallel(qw, [&](int64_t o, int* exps) {
    std::vector<float> scaled(static_cast<size_t>(in));
    dual_scale_row(w + o * in, in, dual_block_size, scaled.data(), qw.dual_scale.data() + o * duals);
    mx_quantize_row(scaled.data(), in, QDtype::MxFp4, reinterpret_cast<uint8_t*>(qw.q.data()) + o * in, exps);
  });
  return qw;
}

void fake_quant_mxfp4_dualscale(float* x, int64_t rows, int64_t cols, int64_t dual_block_size) {
  check_dual_block_size(dual_block_size);
  const int64_t duals = (cols + dual_block_size - 1) / dual_block_size;
  std::vector<float> dual(static_cast<size_t>(duals));
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    dual_scale_row(row, cols, dual_block_size, row, dual.data());
    fake_quant_mx(row, 1, cols, QDtype::MxFp4);
    for (int64_t i = 0; i < cols; ++i) row[i] *= dual[static_cast<size_t>(i / dual_block_size)];
  }
}

uint8_t mx_biased_exponent(float scale) {
  int e = 0;
  std::frexp(scale, &e);  // scale = 2^(e-1) exactly (also for the subnormal 2^-127)
  return static_cast<uint8_t>(std::clamp(e - 1 + 127, 0, 254));
}

}  // namespace lwq
