#include "quant/weight_quant.h"

#include "quant/quantize_kernels.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lwq {

QuantizedWeight quantize_weight_per_channel_minmax(const float* w, int64_t out, int64_t in, int bits,
                                                   bool symmetric) {
  if (out <= 0 || in <= 0) fail("weight quantization: invalid shape [{}, {}]", out, in);
  if (bits < 2 || bits > 8) fail("weight quantization: bit width {} is outside [2, 8]", bits);
  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.bits = bits;
  qw.q.resize(static_cast<size_t>(out * in));
  std::vector<float> mn(out), mx(out);
  int64_t bad_row = -1;
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o) {
    if (!row_min_max(w + o * in, in, &mn[o], &mx[o])) {
#pragma omp critical
      if (bad_row < 0 || o < bad_row) bad_row = o;
    }
  }
  if (bad_row >= 0) fail("weight quantization: non-finite value in output row {}", bad_row);
  QParams p = int_qparams(mn, mx, bits, symmetric);
  const int qmin = qmin_of(bits), qmax = qmax_of(bits);
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o) quantize_row(w + o * in, in, p.scale[o], p.offset[o], qmin, qmax, qw.q.data() + o * in);
  qw.scale = std::move(p.scale);
  qw.offset = std::move(p.offset);
  return qw;
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
  if (qw.out < 0 || qw.in < 0 || qw.q.size() != static_cast<size_t>(qw.out * qw.in) ||
      qw.scale.size() != static_cast<size_t>(qw.out) || qw.offset.size() != static_cast<size_t>(qw.out))
    fail("dequantize_weight: inconsistent quantized weight [{}, {}] ({} values, {} scales, {} offsets)", qw.out,
         qw.in, qw.q.size(), qw.scale.size(), qw.offset.size());
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < qw.out; ++o) {
    const float s = qw.scale[o], z = qw.offset[o];
    for (int64_t i = 0; i < qw.in; ++i) w_out[o * qw.in + i] = dequantize_int(qw.q[o * qw.in + i], s, z);
  }
}

}  // namespace lwq
