#include "quant/gptq.h"

#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "util/error.h"

extern "C" {
// LAPACK (Fortran ABI), provided by Debian's OpenBLAS.
void dpotrf_(const char* uplo, const int* n, double* a, const int* lda, int* info);
void dpotri_(const char* uplo, const int* n, double* a, const int* lda, int* info);
}

namespace lwq {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Per-row int params of W[:, begin, begin+len) (row-major, leading dim ld).
void row_params(const float* w, int64_t ld, int64_t out, int64_t len, int bits, bool symmetric, float* scale,
                float* offset) {
  std::vector<float> mn(static_cast<size_t>(out)), mx(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    auto [lo, hi] = std::minmax_element(w + o * ld, w + o * ld + len);
    mn[static_cast<size_t>(o)] = *lo;
    mx[static_cast<size_t>(o)] = *hi;
  }
  QParams p = int_qparams(mn, mx, bits, symmetric);
  std::copy(p.scale.begin(), p.scale.end(), scale);
  std::copy(p.offset.begin(), p.offset.end(), offset);
}

}  // namespace

HessianAccumulator::HessianAccumulator(int64_t in) : in_(in) {}

void HessianAccumulator::add(const float* x, int64_t rows) {
  if (rows <= 0) return;
  const auto n = static_cast<size_t>(in_ * in_);
  if (sum_.empty()) {
    sum_.assign(n, 0.0);
    call_.assign(n, 0.0f);
  }
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<int>(in_), static_cast<int>(rows), 1.0f, x,
              static_cast<int>(in_), 0.0f, call_.data(), static_cast<int>(in_));
#pragma omp parallel for schedule(static) if (in_ > 256)
  for (int64_t i = 0; i < in_; ++i)
    for (int64_t j = i; j < in_; ++j) sum_[static_cast<size_t>(i * in_ + j)] += call_[static_cast<size_t>(i * in_ + j)];
  rows_ += rows;
}

std::vector<double> HessianAccumulator::hessian() const {
  if (rows_ == 0) fail("GPTQ: no calibration rows reached this Linear, so its Hessian is undefined");
  std::vector<double> h(sum_.size());
  const double f = 2.0 / static_cast<double>(rows_);
  for (int64_t i = 0; i < in_; ++i)
    for (int64_t j = i; j < in_; ++j) {
      const double v = f * sum_[static_cast<size_t>(i * in_ + j)];
      h[static_cast<size_t>(i * in_ + j)] = v;
      h[static_cast<size_t>(j * in_ + i)] = v;
    }
  return h;
}

bool inverse_cholesky_upper(std::vector<double> a, int64_t n, std::vector<double>& u) {
  // Column-major throughout; H is symmetric so its row-major copy is the same matrix.
  const int ni = static_cast<int>(n);
  int info = 0;
  dpotrf_("L", &ni, a.data(), &ni, &info);
  if (info != 0) return false;
  dpotri_("L", &ni, a.data(), &ni, &info);  // lower triangle of H⁻¹
  if (info != 0) return false;
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = j + 1; i < n; ++i) a[static_cast<size_t>(j + i * n)] = a[static_cast<size_t>(i + j * n)];
  dpotrf_("U", &ni, a.data(), &ni, &info);  // H⁻¹ = UᵀU, U in the upper triangle
  if (info != 0) return false;
  u.assign(static_cast<size_t>(n * n), 0.0);
  for (int64_t j = 0; j < n; ++j)
    for (int64_t i = 0; i <= j; ++i) u[static_cast<size_t>(i * n + j)] = a[static_cast<size_t>(i + j * n)];
  return true;
}

QuantizedWeight gptq_quantize(std::vector<float> w, int64_t out, int64_t in, std::vector<double> h,
                              const GptqOptions& opt, const std::string& name, GptqStats* stats) {
  if (out <= 0 || in <= 0) fail("{}: GPTQ: invalid shape [{}, {}]", name, out, in);
  if (w.size() != static_cast<size_t>(out * in) || h.size() != static_cast<size_t>(in * in))
    fail("{}: GPTQ: weight or Hessian of the wrong size", name);
  if (opt.group_size < 0 || (opt.group_size > 0 && in % opt.group_size != 0))
    fail("{}: GPTQ group_size {} does not divide in_features {}", name, opt.group_size, in);
  if (opt.block_size <= 0) fail("{}: GPTQ block_size must be positive, got {}", name, opt.block_size);
  for (size_t k = 0; k < w.size(); ++k)
    if (!std::isfinite(w[k])) fail("{}: weight quantization: non-finite value in output row {}", name, k / in);
  for (double v : h)
    if (!std::isfinite(v)) fail("{}: GPTQ: the Hessian of the calibration inputs holds a non-finite value", name);
  GptqStats st;
  // Dead columns: inputs that were always 0 carry no information.
  double diag_sum = 0.0;
  for (int64_t i = 0; i < in; ++i) {
    double& d = h[static_cast<size_t>(i * in + i)];
    if (d == 0.0) {
      d = 1.0;
      ++st.dead_columns;
      for (int64_t o = 0; o < out; ++o) w[static_cast<size_t>(o * in + i)] = 0.0f;
    }
    diag_sum += d;
  }
  auto t0 = std::chrono::steady_clock::now();
  double damp = opt.percdamp * diag_sum / static_cast<double>(in);
  std::vector<double> u;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> hd = h;
    for (int64_t i = 0; i < in; ++i) hd[static_cast<size_t>(i * in + i)] += damp;
    if (inverse_cholesky_upper(std::move(hd), in, u)) break;
    if (attempt == 4)
      fail("{}: GPTQ: the Hessian is not positive definite even with damping {:.3g} (percdamp {} × 10^4 of "
           "mean(diag H)); use more calibration data or a larger ext.percdamp",
           name, damp, opt.percdamp);
    damp = damp > 0 ? damp * 10.0 : std::max(1e-8, 0.01 * diag_sum / static_cast<double>(in));
    ++st.damp_retries;
  }
  st.damp = damp;
  st.seconds_cholesky = seconds_since(t0);
  t0 = std::chrono::steady_clock::now();
  std::vector<double>().swap(h);  // only retries needed it
  std::vector<float> hinv(u.begin(), u.end());
  std::vector<double>().swap(u);

  QuantizedWeight qw;
  qw.out = out;
  qw.in = in;
  qw.bits = opt.bits;
  qw.group_size = opt.group_size;
  const int64_t groups = qw.groups();
  qw.q.resize(static_cast<size_t>(out * in));
  qw.scale.resize(static_cast<size_t>(out * groups));
  qw.offset.resize(qw.scale.size());
  std::vector<float> col_scale(static_cast<size_t>(out)), col_offset(static_cast<size_t>(out));
  if (opt.group_size == 0) row_params(w.data(), in, out, in, opt.bits, opt.symmetric, col_scale.data(), col_offset.data());

  const int64_t bs = opt.block_size;
  const int64_t g = opt.group_size;
  std::vector<float> w1, err1;
  for (int64_t i1 = 0; i1 < in; i1 += bs) {
    const int64_t i2 = std::min(in, i1 + bs), count = i2 - i1;
    w1.resize(static_cast<size_t>(out * count));
    err1.resize(w1.size());
    // Rows are independent within a block: one parallel region per block, each
    // thread sweeping the block's columns over its own rows.
#pragma omp parallel for schedule(static) if (out * count > 16384)
    for (int64_t o = 0; o < out; ++o) {
      float* row = w1.data() + o * count;
      std::copy(w.begin() + o * in + i1, w.begin() + o * in + i2, row);
      float s = col_scale[static_cast<size_t>(o)], z = col_offset[static_cast<size_t>(o)];
      if (g > 0 && i1 % g != 0) {  // a group begun in an earlier block
        s = qw.scale[static_cast<size_t>(o * groups + i1 / g)];
        z = qw.offset[static_cast<size_t>(o * groups + i1 / g)];
      }
      for (int64_t i = 0; i < count; ++i) {
        const int64_t col = i1 + i;
        if (g > 0 && col % g == 0) {
          // The group's params from its error-updated weights: in-block columns
          // from w1, later columns from w (updated up to the previous block).
          float lo = 0.0f, hi = 0.0f;
          for (int64_t c = col; c < col + g; ++c) {
            const float v = c < i2 ? row[c - i1] : w[static_cast<size_t>(o * in + c)];
            lo = c == col ? v : std::min(lo, v);
            hi = c == col ? v : std::max(hi, v);
          }
          QParams p = int_qparams({&lo, 1}, {&hi, 1}, opt.bits, opt.symmetric);
          s = p.scale[0];
          z = p.offset[0];
          qw.scale[static_cast<size_t>(o * groups + col / g)] = s;
          qw.offset[static_cast<size_t>(o * groups + col / g)] = z;
        }
        const float d = hinv[static_cast<size_t>(col * in + col)];
        const float* hrow = hinv.data() + col * in + i1;  // Hinv[col, i1:i2]
        const int8_t q = quantize_int(row[i], s, z, opt.bits);
        qw.q[static_cast<size_t>(o * in + col)] = q;
        const float e = (row[i] - dequantize_int(q, s, z)) / d;
        err1[static_cast<size_t>(o * count + i)] = e;
        for (int64_t j = i + 1; j < count; ++j) row[j] -= e * hrow[j];
      }
    }
    if (i2 < in)  // W[:, i2:] −= Err1 · Hinv[i1:i2, i2:]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(out), static_cast<int>(in - i2),
                  static_cast<int>(count), -1.0f, err1.data(), static_cast<int>(count), hinv.data() + i1 * in + i2,
                  static_cast<int>(in), 1.0f, w.data() + i2, static_cast<int>(in));
  }
  if (opt.group_size == 0) {
    qw.scale = col_scale;
    qw.offset = col_offset;
  }
  st.seconds_sweep = seconds_since(t0);
  if (stats) *stats = st;
  return qw;
}

}  // namespace lwq
