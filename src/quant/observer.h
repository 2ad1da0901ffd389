// Running min/max statistics of activations (msModelSlim MsMinMaxObserver,
// spec §2.5).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "quant/qparams.h"

namespace lwq {

enum class Aggregation {
  Max,   // running min of minimums / max of maximums over all calls (default)
  Mean,  // arithmetic mean of the per-call minimums / maximums (float64 sums)
};

class MinMaxObserver {
 public:
  // `channels` == 1 reduces over every element; otherwise `x` is viewed as
  // [rows, channels] (last dim = channel) and statistics are per channel.
  explicit MinMaxObserver(int64_t channels = 1, Aggregation aggregation = Aggregation::Max);

  // Adds one call's values. An empty span is ignored (an expert that got no
  // tokens). Throws lwq::Error on NaN/Inf or a size not divisible by channels.
  void update(std::span<const float> x);
  void reset();

  bool has_stats() const { return calls_ > 0; }
  int64_t calls() const { return calls_; }
  int64_t channels() const { return channels_; }
  // Throw lwq::Error before the first update (msModelSlim: "maybe you are
  // quantifying a moe expert, but this expert has never been activated").
  std::vector<float> min_val() const;
  std::vector<float> max_val() const;

 private:
  int64_t channels_;
  Aggregation aggregation_;
  int64_t calls_ = 0;
  std::vector<float> min_, max_;           // Max aggregation
  std::vector<double> min_sum_, max_sum_;  // Mean aggregation
};

// int_qparams of the observer's current statistics.
QParams observer_qparams(const MinMaxObserver& obs, int bits, bool symmetric);

}  // namespace lwq
