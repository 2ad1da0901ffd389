// Histogram activation observer for static int8 per-tensor activations
// (msModelSlim's histogram method, spec §2.6): a 2048-bin histogram merged
// across calibration calls and torch's L2 non-linear clip search.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quant/qparams.h"

namespace lwq {

class HistogramObserver {
 public:
  static constexpr int kBins = 2048;
  static constexpr int kDstBins = 256;  // 2^8 quantization levels

  // Adds one call's values (NaN/Inf dropped, counted in dropped()). After the
  // update, clip() is the search result over the merged histogram, tightened
  // to the min/max of this call's values inside it (spec §2.6).
  void update(std::span<const float> x);
  bool has_stats() const { return calls_ > 0; }
  int64_t dropped() const { return dropped_; }
  float clip_min() const { return clip_min_; }
  float clip_max() const { return clip_max_; }
  // int qparams of (clip_min, clip_max).
  QParams qparams(int bits, bool symmetric) const;

  // The clip search alone on the current histogram: (new_min, new_max).
  std::pair<float, float> search() const;
  const std::vector<double>& histogram() const { return hist_; }
  float min_val() const { return min_; }
  float max_val() const { return max_; }

 private:
  double quantization_error(int start_bin, int end_bin) const;

  std::vector<double> hist_;
  float min_ = 0.0f, max_ = 0.0f;
  float clip_min_ = 0.0f, clip_max_ = 0.0f;
  int64_t calls_ = 0, dropped_ = 0;
};

}  // namespace lwq
