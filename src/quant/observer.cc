#include "quant/observer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "quant/qparams.h"
#include "util/error.h"

namespace lwq {

MinMaxObserver::MinMaxObserver(int64_t channels, Aggregation aggregation)
    : channels_(channels), aggregation_(aggregation) {
  if (channels < 1) fail("MinMaxObserver: channel count must be >= 1, got {}", channels);
  reset();
}

void MinMaxObserver::reset() {
  calls_ = 0;
  min_.assign(channels_, std::numeric_limits<float>::infinity());
  max_.assign(channels_, -std::numeric_limits<float>::infinity());
  min_sum_.assign(channels_, 0.0);
  max_sum_.assign(channels_, 0.0);
}

void MinMaxObserver::update(std::span<const float> x) {
  if (x.empty()) return;
  const size_t c = static_cast<size_t>(channels_);
  if (x.size() % c != 0) fail("MinMaxObserver: {} values are not a multiple of {} channels", x.size(), c);
  std::vector<float> mn(c, std::numeric_limits<float>::infinity());
  std::vector<float> mx(c, -std::numeric_limits<float>::infinity());
  const size_t rows = x.size() / c;
  for (size_t r = 0; r < rows; ++r) {
    const float* row = x.data() + r * c;
    for (size_t ch = 0; ch < c; ++ch) {
      const float v = row[ch];
      if (!std::isfinite(v)) fail("activation statistics: non-finite value {} at element {}", v, r * c + ch);
      mn[ch] = std::min(mn[ch], v);
      mx[ch] = std::max(mx[ch], v);
    }
  }
  for (size_t ch = 0; ch < c; ++ch) {
    min_[ch] = std::min(min_[ch], mn[ch]);
    max_[ch] = std::max(max_[ch], mx[ch]);
    min_sum_[ch] += mn[ch];
    max_sum_[ch] += mx[ch];
  }
  ++calls_;
}

namespace {
void require_stats(int64_t calls) {
  if (calls == 0)
    fail("no activation statistics: this Linear never saw calibration data (an MoE expert that no "
         "calibration token was routed to cannot get a static activation scale)");
}
}  // namespace

std::vector<float> MinMaxObserver::min_val() const {
  require_stats(calls_);
  if (aggregation_ == Aggregation::Max) return min_;
  std::vector<float> out(channels_);
  for (int64_t i = 0; i < channels_; ++i) out[i] = static_cast<float>(min_sum_[i] / calls_);
  return out;
}

std::vector<float> MinMaxObserver::max_val() const {
  require_stats(calls_);
  if (aggregation_ == Aggregation::Max) return max_;
  std::vector<float> out(channels_);
  for (int64_t i = 0; i < channels_; ++i) out[i] = static_cast<float>(max_sum_[i] / calls_);
  return out;
}

QParams observer_qparams(const MinMaxObserver& obs, int bits, bool symmetric) {
  return int_qparams(obs.min_val(), obs.max_val(), bits, symmetric);
}

}  // namespace lwq
