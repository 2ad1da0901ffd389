#include "runner/progress.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "util/memory_stats.h"

namespace lwq {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", bytes) : fmt::format("{:.2f} {}", bytes, units[u]);
}

std::string format_duration(double seconds) {
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  auto s = static_cast<long long>(std::llround(seconds));
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}h{:02}m{:02}s", s / 3600, (s % 3600) / 60, s % 60);
}

LayerProgress::LayerProgress(int total_layers) : total_(total_layers), start_(std::chrono::steady_clock::now()) {}

double LayerProgress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void LayerProgress::layer_done(int index, const std::string& detail) {
  double elapsed = elapsed_seconds();
  int done = index + 1;
  double eta = done > 0 ? elapsed / done * (total_ - done) : 0.0;
  MemoryStats mem = read_memory_stats();
  spdlog::info("layer {}/{} | elapsed {} | ETA {} | RSS {} (peak {}){}{}", done, total_, format_duration(elapsed),
               format_duration(eta), format_bytes(static_cast<double>(mem.rss_bytes)),
               format_bytes(static_cast<double>(mem.peak_rss_bytes)), detail.empty() ? "" : " | ", detail);
}

}  // namespace lwq
