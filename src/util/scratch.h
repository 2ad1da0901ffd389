// Large temporaries reused from a process-wide pool instead of allocated
// afresh: a calibration run makes the same few buffers — a batch's
// activations, a block of weight rows in f32, int8 activation codes —
// thousands of times, tens of MB each. Through malloc they either fault in
// fresh zeroed pages on every use (glibc maps buffers above its mmap
// threshold afresh: +3–6 s of system time on a 1 GB model) or, held in the
// heap, leave holes between the long-lived buffers (a layer's int8 codes,
// the calibration states) that the heap's peak then carries: 40–65 MB of
// fragmentation on that model (docs/benchmarks.md, session 10). Pool blocks
// are mappings of their own, outside the heap, and keep their pages between
// uses.
//
// Two pools: one for the transient buffers of a forward (ScratchBlock,
// Scratch), one for the buffers that live through a unit's work and recur at
// the same sizes in the next unit (ScratchAllocator: int8 codes, the report's
// gathered rows, calibration states). In one pool, a layer's codes took the
// idle blocks its activations had left, whose next request then mapped a new
// block: 30 MB more at a 1 GB model's peak (docs/benchmarks.md, session 11).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

namespace lwq {

// One pool block: taken on construction (or reset), given back on
// destruction. Contents are unspecified when taken.
class ScratchBlock {
 public:
  ScratchBlock() = default;
  explicit ScratchBlock(size_t bytes) { reset(bytes); }
  ~ScratchBlock() { release(); }
  ScratchBlock(ScratchBlock&& o) noexcept : data_(std::exchange(o.data_, nullptr)), cap_(std::exchange(o.cap_, 0)) {}
  ScratchBlock& operator=(ScratchBlock&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      cap_ = std::exchange(o.cap_, 0);
    }
    return *this;
  }
  ScratchBlock(const ScratchBlock&) = delete;
  ScratchBlock& operator=(const ScratchBlock&) = delete;

  // At least `bytes` bytes; the current block is kept when it is large
  // enough, else exchanged (contents are then lost).
  void reset(size_t bytes);
  void release();  // back to the pool
  void* data() const { return data_; }
  size_t capacity() const { return cap_; }

 private:
  void* data_ = nullptr;
  size_t cap_ = 0;
};

// A typed buffer of n elements on a pool block: vector-like, but resize()
// neither keeps nor initialises the contents (every user overwrites them).
template <class T>
class Scratch {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  Scratch() = default;
  explicit Scratch(size_t n) { resize(n); }
  void resize(size_t n) {
    if (n * sizeof(T) > block_.capacity()) block_.reset(n * sizeof(T));
    n_ = n;
  }
  void clear() {  // gives the block back
    block_.release();
    n_ = 0;
  }
  T* data() { return static_cast<T*>(block_.data()); }
  const T* data() const { return static_cast<const T*>(block_.data()); }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  T& operator[](size_t i) { return data()[i]; }
  const T& operator[](size_t i) const { return data()[i]; }
  T* begin() { return data(); }
  T* end() { return data() + n_; }
  const T* begin() const { return data(); }
  const T* end() const { return data() + n_; }
  std::span<T> span() { return {data(), n_}; }

 private:
  ScratchBlock block_;
  size_t n_ = 0;
};

// Allocation through the pool, for containers (ScratchAllocator): requests
// from kScratchAllocatorMin bytes on are pool blocks, smaller ones go to
// operator new.
inline constexpr size_t kScratchAllocatorMin = size_t{256} << 10;
void* scratch_allocate(size_t bytes);
void scratch_deallocate(void* p, size_t bytes) noexcept;

// A std::allocator for large buffers that live a phase of work and recur in
// every unit — a layer's int8 codes, the calibration rows the report
// gathers: their blocks are reused from unit to unit instead of faulted in
// afresh or left as holes in the heap.
template <class T>
struct ScratchAllocator {
  using value_type = T;
  ScratchAllocator() = default;
  template <class U>
  ScratchAllocator(const ScratchAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(scratch_allocate(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { scratch_deallocate(p, n * sizeof(T)); }
  friend bool operator==(const ScratchAllocator&, const ScratchAllocator&) { return true; }
};

// Unmaps the idle blocks not taken since the previous call (a phase of work
// that no longer runs, e.g. the previous layer's batch shapes); blocks in
// steady use stay.
void trim_scratch_pool();

// Bytes in pool blocks (in use + idle), for tests and logs.
size_t scratch_pool_bytes();

}  // namespace lwq
