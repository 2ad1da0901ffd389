#include "util/scratch.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <tuple>
#include <utility>

namespace lwq {
namespace {

constexpr size_t kGrain = size_t{64} << 10;  // block sizes are multiples of this

// An idle block serves a request of at least a quarter of its size: its
// pages are resident already, so a larger block costs nothing more while it
// is used, but a small request must not pin a block a large one will need.
constexpr size_t kMaxWaste = 4;

struct Pool {
  std::mutex mu;
  struct Idle {
    void* data;
    bool taken_since_trim;
  };
  std::multimap<size_t, Idle> idle;  // by capacity
  struct InUse {
    size_t cap;
    bool taken_since_trim;
  };
  std::map<void*, InUse> in_use;
  size_t bytes = 0;  // mapped, in use or idle

  // Never destroyed: blocks may be given back during static destruction.
  static Pool& transient() {  // ScratchBlock / Scratch
    static Pool* p = new Pool;
    return *p;
  }
  static Pool& unit_lived() {  // scratch_allocate / ScratchAllocator
    static Pool* p = new Pool;
    return *p;
  }
};

void* map_block(size_t cap) {
  void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

// A block of at least `bytes` (rounded up to kGrain): an idle one that fits,
// else a new mapping.
std::pair<void*, size_t> take_block(Pool& pool, size_t bytes) {
  const size_t need = (std::max<size_t>(bytes, 1) + kGrain - 1) / kGrain * kGrain;
  {
    std::lock_guard lock(pool.mu);
    auto it = pool.idle.lower_bound(need);
    if (it != pool.idle.end() && it->first <= kMaxWaste * need) {
      const std::pair<void*, size_t> block{it->second.data, it->first};
      pool.idle.erase(it);
      pool.in_use[block.first] = {block.second, true};
      return block;
    }
    // A miss: the idle blocks too small for this request go, so that the
    // pool converges on fewer, larger blocks that serve every phase's
    // requests rather than holding each phase's sizes side by side.
    for (auto small = pool.idle.begin(); small != pool.idle.end() && small->first < need;) {
      ::munmap(small->second.data, small->first);
      pool.bytes -= small->first;
      small = pool.idle.erase(small);
    }
  }
  void* p = map_block(need);  // outside the lock: the kernel's work
  std::lock_guard lock(pool.mu);
  pool.in_use[p] = {need, true};
  pool.bytes += need;
  return {p, need};
}

void give_block(Pool& pool, void* data) {
  std::lock_guard lock(pool.mu);
  auto it = pool.in_use.find(data);
  if (it == pool.in_use.end()) std::abort();  // not a pool block: a caller bug
  pool.idle.emplace(it->second.cap, Pool::Idle{data, it->second.taken_since_trim});
  pool.in_use.erase(it);
}

}  // namespace

void ScratchBlock::reset(size_t bytes) {
  if (data_ && bytes <= cap_) return;
  release();
  std::tie(data_, cap_) = take_block(Pool::transient(), bytes);
}

void ScratchBlock::release() {
  if (!data_) return;
  give_block(Pool::transient(), data_);
  data_ = nullptr;
  cap_ = 0;
}

void* scratch_allocate(size_t bytes) {
  if (bytes < kScratchAllocatorMin) return ::operator new(bytes);
  return take_block(Pool::unit_lived(), bytes).first;
}

void scratch_deallocate(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (bytes < kScratchAllocatorMin) return ::operator delete(p);
  give_block(Pool::unit_lived(), p);
}

void trim_scratch_pool() {
  for (Pool* pool : {&Pool::transient(), &Pool::unit_lived()}) {
    std::lock_guard lock(pool->mu);
    for (auto it = pool->idle.begin(); it != pool->idle.end();) {
      if (it->second.taken_since_trim) {
        it->second.taken_since_trim = false;
        ++it;
        continue;
      }
      ::munmap(it->second.data, it->first);
      pool->bytes -= it->first;
      it = pool->idle.erase(it);
    }
    for (auto& [block, use] : pool->in_use) use.taken_since_trim = false;
  }
}

size_t scratch_pool_bytes() {
  size_t bytes = 0;
  for (Pool* pool : {&Pool::transient(), &Pool::unit_lived()}) {
    std::lock_guard lock(pool->mu);
    bytes += pool->bytes;
  }
  return bytes;
}

}  // namespace lwq
