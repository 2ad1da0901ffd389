// Process memory figures read from /proc/self/status (Linux).
#pragma once

#include <cstdint>

namespace lwq {

struct MemoryStats {
  int64_t rss_bytes = 0;       // VmRSS: resident now, file-backed pages included
  int64_t peak_rss_bytes = 0;  // VmHWM: high-water mark of VmRSS
};

MemoryStats read_memory_stats();

}  // namespace lwq
