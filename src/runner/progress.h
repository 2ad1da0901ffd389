// Per-layer progress lines on stderr: i/N, elapsed, ETA, current and peak RSS.
#pragma once

#include <chrono>
#include <string>

namespace lwq {

std::string format_bytes(double bytes);      // "1.23 GiB"
std::string format_duration(double seconds);  // "1h02m03s", "4m05s", "6.1s"

class LayerProgress {
 public:
  explicit LayerProgress(int total_layers);
  // Logs one line after layer `index` (0-based) is done.
  void layer_done(int index, const std::string& detail = "");
  double elapsed_seconds() const;

 private:
  int total_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace lwq
