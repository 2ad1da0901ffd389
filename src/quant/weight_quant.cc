#include "quant/weight_quant.h"

#include "quant/quantize_kernels.h"

#include <algorithm>
#include <cmath>
#include <exception>

#include "quant/fp_formats.h"
#include "quant/qparams.h"
#include "util/error.h"
#include "util/vector_clones.h"

namespace lwq {

// Cloned (util/vector_clones.h): SSE2 widens int8 to int32 in four steps.
LWQ_VECTOR_CLONES
int64_t code_sum(const int8_t* q, int64_t n) {
  int64_t total = 0;
  constexpr int64_t kChunk = int64_t{1} << 16;  // |partial| ≤ 128 · 2^16 fits int32
  for (int64_t c = 0; c < n; c += kChunk) {
    const int64_t m = std::min(kChunk, n - c);
    int32_t part = 0;
    for (int64_t i = 0; i < m; ++i) part += q[c + i];
    total += part;
  }
  return total;
}
namespace {

void check_shape(int64_t out, int64_t in, int bits) {
  if (out <= 0 || in <= 0) fail("weight quantization: invalid shape [{}, {}]", out, in);
  if (bits < 2 || bits > 8) fail("weight quantization: bit width {} is outside [2, 8]", bits);
}

// Throws naming the first output row holding a NaN or Inf.
void check_finite_rows(const float* w, int64_t out, int64_t in) {
  float lo, hi;
  for (int64_t o = 0; o < out; ++o)
    if (!row_min_max(w + o * in, in, &lo, &hi)) fail("weight quantization: non-finite value in output row {}", o);
}

}  // namespace

QuantizedWeight quantize_weight_per_channel_minmax(const float* w, int64_t out, int64_t in, int bits,
                                                   bool symmetric) {
  check_shape(out, in, bits);
  return quantize_weight_per_group_minmax(w, out, in, bits, symmetric, 0);
}

QuantizedWeight quantize_weight_per_group_minmax(const float* w, int64_t out, int64_t in, int bits, bool symmetric,
                                                 int64_t group_size) {
  check_shape(out, in, bits);
  if (group_size < 0 || (group_size > 0 && in % group_size != 0))
    fail("weight quantization: group_size {} does not divide in_features {}", group_size, in);
  check_finite_rows(w, out, in);
  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.bits = bits;
  qw.group_size = group_size;
  const int64_t groups = qw.groups(), g_len = in / groups;
  qw.q.resize(static_cast<size_t>(out * in));
  std::vector<float> mn(static_cast<size_t>(out * groups)), mx(mn.size());
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const size_t k = static_cast<size_t>(o * groups + g);
      row_min_max(w + o * in + g * g_len, g_len, &mn[k], &mx[k]);  // finiteness checked above
    }
  QParams p = int_qparams(mn, mx, bits, symmetric);
  const int qmin = qmin_of(bits), qmax = qmax_of(bits);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o)
    for (int64_t g = 0; g < groups; ++g) {
      const size_t k = static_cast<size_t>(o * groups + g);
      quantize_row(w + o * in + g * g_len, g_len, p.scale[k], p.offset[k], qmin, qmax, qw.q.data() + o * in + g * g_len);
    }
  qw.scale = std::move(p.scale);
  qw.offset = std::move(p.offset);
  return qw;
}

namespace {

// Rows [begin, end) of a weight, `rows` pointing at row `begin`: min/max of
// each row, then the rows quantized while they are still in cache (a chunk of
// rows, not the whole matrix, between the two passes). Stops at a row that is
// not finite (*bad_row).
void quantize_rows_minmax_stored(DType dtype, const void* rows, int64_t begin, int64_t end, int64_t in, int bits,
                                 bool symmetric, QuantizedWeight& qw, std::vector<float>& scratch, int64_t* bad_row) {
  const int64_t n = end - begin;
  const size_t row_bytes = static_cast<size_t>(in) * dtype_size(dtype);
  std::vector<float> mn(static_cast<size_t>(n)), mx(mn.size());
  auto row = [&](int64_t k) -> const float* {  // F32 as is; F16 and others converted into scratch (L1-sized)
    const uint8_t* r = static_cast<const uint8_t*>(rows) + static_cast<size_t>(k) * row_bytes;
    if (dtype == DType::F32) return reinterpret_cast<const float*>(r);
    scratch.resize(static_cast<size_t>(in));
    convert_to_f32(dtype, r, scratch.data(), static_cast<size_t>(in));
    return scratch.data();
  };
  const bool bf16 = dtype == DType::BF16;
  const auto* w16 = static_cast<const uint16_t*>(rows);
  for (int64_t k = 0; k < n; ++k) {
    const size_t i = static_cast<size_t>(k);
    const bool finite = bf16 ? row_min_max_bf16(w16 + k * in, in, &mn[i], &mx[i]) : row_min_max(row(k), in, &mn[i], &mx[i]);
    if (!finite) {
      *bad_row = begin + k;
      return;
    }
  }
  QParams p = int_qparams(mn, mx, bits, symmetric);
  const int qmin = qmin_of(bits), qmax = qmax_of(bits);
  for (int64_t k = 0; k < n; ++k) {
    const size_t i = static_cast<size_t>(k);
    const int64_t o = begin + k;
    int8_t* q = qw.q.data() + o * in;
    if (bf16) quantize_row_bf16(w16 + k * in, in, p.scale[i], p.offset[i], qmin, qmax, q);
    else quantize_row(row(k), in, p.scale[i], p.offset[i], qmin, qmax, q);
    qw.scale[static_cast<size_t>(o)] = p.scale[i];
    qw.offset[static_cast<size_t>(o)] = p.offset[i];
  }
}

// Per-thread buffers of quantize_minmax_chunks.
struct ChunkBuffers {
  std::vector<float> block;    // a chunk's rows as f32, when they are supplied that way
  std::vector<float> scratch;  // one row converted
};

// The per-channel minmax codes of W[out, in], a chunk of ~128 Ki values at a
// time on every thread (256 KiB of bf16: the second pass reads from L2):
// `chunk(begin, end, buffers, &bad_row)` quantizes rows [begin, end) into qw.
// What a chunk throws is carried out of the OpenMP region, which nothing may
// leave by throwing, and rethrown here.
template <class Chunk>
QuantizedWeight quantize_minmax_chunks(int64_t out, int64_t in, int bits, const Chunk& chunk) {
  check_shape(out, in, bits);
  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.bits = bits;
  qw.q.resize(static_cast<size_t>(out * in));
  qw.scale.resize(static_cast<size_t>(out));
  qw.offset.resize(static_cast<size_t>(out));
  const int64_t rows = std::max<int64_t>(1, (int64_t{1} << 17) / in);
  const int64_t chunks = (out + rows - 1) / rows;
  int64_t first_bad = out;
  std::exception_ptr error;
#pragma omp parallel
  {
    ChunkBuffers buffers;
#pragma omp for schedule(static) reduction(min : first_bad)
    for (int64_t c = 0; c < chunks; ++c) {
      int64_t bad = out;
      try {
        chunk(c * rows, std::min(out, (c + 1) * rows), qw, buffers, &bad);
      } catch (...) {
#pragma omp critical(lwq_weight_chunk_error)
        if (!error) error = std::current_exception();
      }
      first_bad = std::min(first_bad, bad);
    }
  }
  if (error) std::rethrow_exception(error);
  if (first_bad < out) fail("weight quantization: non-finite value in output row {}", first_bad);
  return qw;
}

}  // namespace

QuantizedWeight quantize_weight_per_channel_minmax_stored(DType dtype, const void* w, int64_t out, int64_t in,
                                                          int bits, bool symmetric, const RowsReadFn& rows_read) {
  check_shape(out, in, bits);
  if (!is_float(dtype)) fail("weight quantization: dtype {} is not a float type", dtype_name(dtype));
  const size_t row_bytes = static_cast<size_t>(in) * dtype_size(dtype);
  return quantize_minmax_chunks(out, in, bits, [&](int64_t begin, int64_t end, QuantizedWeight& qw,
                                                   ChunkBuffers& b, int64_t* bad) {
    const void* rows = static_cast<const uint8_t*>(w) + static_cast<size_t>(begin) * row_bytes;
    quantize_rows_minmax_stored(dtype, rows, begin, end, in, bits, symmetric, qw, b.scratch, bad);
    if (rows_read) rows_read(begin, end);
  });
}

QuantizedWeight quantize_weight_per_channel_minmax_rows(const RowsFn& rows, int64_t out, int64_t in, int bits,
                                                        bool symmetric) {
  return quantize_minmax_chunks(out, in, bits, [&](int64_t begin, int64_t end, QuantizedWeight& qw,
                                                   ChunkBuffers& b, int64_t* bad) {
    b.block.resize(static_cast<size_t>((end - begin) * in));
    rows(begin, end, b.block.data());
    quantize_rows_minmax_stored(DType::F32, b.block.data(), begin, end, in, bits, symmetric, qw, b.scratch, bad);
  });
}

QuantizedWeight quantize_weight_fp8_per_channel(const float* w, int64_t out, int64_t in) {
  check_shape(out, in, 8);
  check_finite_rows(w, out, in);
  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.code = WeightCode::Fp8E4M3;
  qw.q.resize(static_cast<size_t>(out * in));
  qw.scale.resize(static_cast<size_t>(out));
  qw.offset.assign(static_cast<size_t>(out), 0.0f);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o) {
    const float* row = w + o * in;
    const float s = fp8_scale_of(row, in);
    qw.scale[static_cast<size_t>(o)] = s;
    for (int64_t i = 0; i < in; ++i)
      qw.q[static_cast<size_t>(o * in + i)] = static_cast<int8_t>(fp8_quantize_code(row[i], s));
  }
  return qw;
}

float dequantized_value(const QuantizedWeight& qw, int64_t o, int64_t i) {
  const int8_t c = qw.q[static_cast<size_t>(o * qw.in + i)];
  const size_t k = static_cast<size_t>(qw.param_index(o, i));
  switch (qw.code) {
    case WeightCode::Int: return dequantize_int(c, qw.scale[k], qw.offset[k]);
    case WeightCode::Fp8E4M3:
    case WeightCode::MxFp8: return f8e4m3_to_f32(static_cast<uint8_t>(c)) * qw.scale[k];
    case WeightCode::MxFp4: {
      const float v = fp4_e2m1_value(static_cast<uint8_t>(c)) * qw.scale[k];
      if (qw.dual_scale.empty()) return v;
      // Inner dequantization first, then the dual scale (msModelSlim's order, both float32).
      return v * qw.dual_scale[static_cast<size_t>(o * qw.dual_groups() + i / qw.dual_block_size)];
    }
  }
  return 0.0f;
}

void dequantize_weight_rows(const QuantizedWeight& qw, int64_t begin, int64_t n, float* dst) {
  if (qw.code == WeightCode::Int && qw.group_size == 0)
    return dequantize_rows(qw.q.data(), qw.scale.data(), qw.offset.data(), qw.in, begin, n, dst);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t i = 0; i < qw.in; ++i) dst[o * qw.in + i] = dequantized_value(qw, begin + o, i);
}

void dequantize_rows(const int8_t* q, const float* scale, const float* offset, int64_t in, int64_t begin, int64_t n,
                     float* dst) {
  for (int64_t o = 0; o < n; ++o) {
    const int64_t row = begin + o;
    const int8_t* qr = q + row * in;
    for (int64_t i = 0; i < in; ++i) dst[o * in + i] = dequantize_int(qr[i], scale[row], offset[row]);
  }
}

void dequantize_weight(const QuantizedWeight& qw, float* w_out) {
  const auto params = static_cast<size_t>(qw.out * qw.groups());
  if (qw.out < 0 || qw.in < 0 || qw.q.size() != static_cast<size_t>(qw.out * qw.in) || qw.scale.size() != params ||
      qw.offset.size() != params)
    fail("dequantize_weight: inconsistent quantized weight [{}, {}] ({} values, {} scales, {} offsets)", qw.out,
         qw.in, qw.q.size(), qw.scale.size(), qw.offset.size());
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < qw.out; ++o) dequantize_weight_rows(qw, o, 1, w_out + o * qw.in);
}

void append_rows(QuantizedWeight& whole, const QuantizedWeight& part) {
  whole.in = part.in;
  whole.bits = part.bits;
  whole.group_size = part.group_size;
  whole.code = part.code;
  whole.out += part.out;
  whole.q.insert(whole.q.end(), part.q.begin(), part.q.end());
  whole.scale.insert(whole.scale.end(), part.scale.begin(), part.scale.end());
  whole.offset.insert(whole.offset.end(), part.offset.begin(), part.offset.end());
  whole.dual_block_size = part.dual_block_size;
  whole.dual_scale.insert(whole.dual_scale.end(), part.dual_scale.begin(), part.dual_scale.end());
}

}  // namespace lwq
