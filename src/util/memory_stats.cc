#include "util/memory_stats.h"

#include <cstdio>
#include <cstring>

namespace lwq {

MemoryStats read_memory_stats() {
  MemoryStats stats;
  FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return stats;
  char line[256];
  while (std::fgets(line, sizeof line, f)) {
    long long kib = 0;
    if (std::sscanf(line, "VmRSS: %lld kB", &kib) == 1) stats.rss_bytes = kib * 1024;
    if (std::sscanf(line, "VmHWM: %lld kB", &kib) == 1) stats.peak_rss_bytes = kib * 1024;
  }
  std::fclose(f);
  return stats;
}

}  // namespace lwq
