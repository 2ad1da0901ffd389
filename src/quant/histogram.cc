#include "quant/histogram.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lwq {
namespace {

// torch's _get_norm: ∫ x² over [begin, end] times the density.
double get_norm(double begin, double end, double density) { return density * (end * end * end - begin * begin * begin) / 3.0; }

// Adds `x` to hist over [lo, hi] (kBins bins; the top edge goes to the last bin).
void add_values(std::vector<double>& hist, std::span<const float> x, double lo, double hi) {
  const int bins = static_cast<int>(hist.size());
  const double width = (hi - lo) / bins;
  for (float v : x) {
    if (!std::isfinite(v)) continue;
    int b = width > 0 ? static_cast<int>(std::floor((v - lo) / width)) : 0;
    hist[static_cast<size_t>(std::clamp(b, 0, bins - 1))] += 1.0;
  }
}

// Re-bins `hist` over [lo, hi] into [nlo, nhi] ⊇ [lo, hi], each old bin's
// mass spread uniformly over the new bins it overlaps.
std::vector<double> rebin(const std::vector<double>& hist, double lo, double hi, double nlo, double nhi) {
  const int bins = static_cast<int>(hist.size());
  std::vector<double> out(hist.size(), 0.0);
  const double w = (hi - lo) / bins, nw = (nhi - nlo) / bins;
  for (int b = 0; b < bins; ++b) {
    if (hist[static_cast<size_t>(b)] == 0.0) continue;
    if (w <= 0.0) {  // a point mass
      int nb = nw > 0 ? static_cast<int>(std::floor((lo - nlo) / nw)) : 0;
      out[static_cast<size_t>(std::clamp(nb, 0, bins - 1))] += hist[static_cast<size_t>(b)];
      continue;
    }
    const double a = lo + b * w, e = a + w;
    int nb0 = std::clamp(static_cast<int>(std::floor((a - nlo) / nw)), 0, bins - 1);
    int nb1 = std::clamp(static_cast<int>(std::floor((e - nlo) / nw)), 0, bins - 1);
    for (int nb = nb0; nb <= nb1; ++nb) {
      const double s = std::max(a, nlo + nb * nw), t = std::min(e, nlo + (nb + 1) * nw);
      if (t > s) out[static_cast<size_t>(nb)] += hist[static_cast<size_t>(b)] * (t - s) / w;
    }
  }
  return out;
}

}  // namespace

void HistogramObserver::update(std::span<const float> x) {
  float mn = 0.0f, mx = 0.0f;
  bool any = false;
  for (float v : x) {
    if (!std::isfinite(v)) {
      ++dropped_;
      continue;
    }
    mn = any ? std::min(mn, v) : v;
    mx = any ? std::max(mx, v) : v;
    any = true;
  }
  if (!any) return;
  if (calls_ == 0) {
    hist_.assign(kBins, 0.0);
    min_ = mn;
    max_ = mx;
  } else if (mn < min_ || mx > max_) {
    const float nlo = std::min(min_, mn), nhi = std::max(max_, mx);
    hist_ = rebin(hist_, min_, max_, nlo, nhi);
    min_ = nlo;
    max_ = nhi;
  }
  add_values(hist_, x, min_, max_);
  ++calls_;
  if (min_ == max_) {
    clip_min_ = min_;
    clip_max_ = max_;
    return;
  }
  auto [lo, hi] = search();
  // Tighten to this call's values inside the clip range.
  float cmin = hi, cmax = lo;
  bool inside = false;
  for (float v : x)
    if (std::isfinite(v) && v >= lo && v <= hi) {
      cmin = std::min(cmin, v);
      cmax = std::max(cmax, v);
      inside = true;
    }
  clip_min_ = inside ? cmin : lo;
  clip_max_ = inside ? cmax : hi;
}

double HistogramObserver::quantization_error(int start_bin, int end_bin) const {
  const double bin_width = (static_cast<double>(max_) - min_) / kBins;
  const double dst_w = bin_width * (end_bin - start_bin + 1) / kDstBins;
  if (dst_w == 0.0) return 0.0;
  double norm = 0.0;
  for (int b = 0; b < kBins; ++b) {
    const double density = hist_[static_cast<size_t>(b)] / bin_width;
    if (density == 0.0) continue;
    const double src_begin = (b - start_bin) * bin_width, src_end = src_begin + bin_width;
    const double dst_begin = std::clamp(std::floor(src_begin / dst_w), 0.0, kDstBins - 1.0);
    const double dst_end = std::clamp(std::floor(src_end / dst_w), 0.0, kDstBins - 1.0);
    const double dst_begin_center = (dst_begin + 0.5) * dst_w;
    norm += get_norm(src_begin - dst_begin_center, dst_w / 2, density);
    norm += (dst_end - dst_begin - 1) * get_norm(-dst_w / 2, dst_w / 2, density);
    const double dst_end_center = dst_end * dst_w + dst_w / 2;
    norm += get_norm(-dst_w / 2, src_end - dst_end_center, density);
  }
  return norm;
}

// torch.ao HistogramObserver._non_linear_param_search.
std::pair<float, float> HistogramObserver::search() const {
  if (calls_ == 0) fail("histogram observer: no statistics yet");
  const double bin_width = (static_cast<double>(max_) - min_) / kBins;
  double total = 0.0;
  std::vector<double> csum(hist_.size());
  for (size_t b = 0; b < hist_.size(); ++b) csum[b] = total += hist_[b];
  const double step = 1e-5;
  double alpha = 0.0, beta = 1.0, norm_min = INFINITY;
  int start = 0, end = kBins - 1;
  while (alpha < beta) {
    const double next_alpha = alpha + step, next_beta = beta - step;
    int l = start, r = end;
    while (l < end && csum[static_cast<size_t>(l)] < next_alpha * total) ++l;
    while (r > start && csum[static_cast<size_t>(r)] > next_beta * total) --r;
    int next_start = start, next_end = end;
    if ((l - start) > (end - r)) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start && next_end == end) continue;
    const double norm = quantization_error(next_start, next_end);
    if (norm > norm_min) break;
    norm_min = norm;
    start = next_start;
    end = next_end;
  }
  return {static_cast<float>(min_ + bin_width * start), static_cast<float>(min_ + bin_width * (end + 1))};
}

QParams HistogramObserver::qparams(int bits, bool symmetric) const {
  if (calls_ == 0)
    fail("histogram observer: no calibration values (maybe an MoE expert that never received a token)");
  return int_qparams({&clip_min_, 1}, {&clip_max_, 1}, bits, symmetric);
}

}  // namespace lwq
