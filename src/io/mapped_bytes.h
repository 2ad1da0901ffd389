// A read-only view of a byte range of a file, mapped rather than copied: a
// consumer that only reads the bytes once (data-free quantization of a
// streamed expert) then costs no copy into a buffer, which on a page-cached
// checkpoint is most of the CPU a pread would take (docs/benchmarks.md).
// The mapping is dropped with the object, so only the ranges in flight stay
// resident (peak RSS counts mapped file pages).
#pragma once

#include <cstdint>
#include <string>

namespace lwq {

class MappedBytes {
 public:
  MappedBytes() = default;
  // Bytes [offset, offset + n) of the open file `fd`; `populate` maps every
  // page now (reading it from disk when not cached), so later reads fault
  // nothing: call it where waiting is wanted, e.g. a prefetch thread.
  // Throws naming `what` on failure.
  static MappedBytes map(int fd, uint64_t offset, uint64_t n, bool populate, const std::string& what);
  // A view of memory someone else owns (a file parsed from memory).
  static MappedBytes borrow(const uint8_t* data, uint64_t n);
  ~MappedBytes();
  MappedBytes(MappedBytes&& other) noexcept;
  MappedBytes& operator=(MappedBytes&& other) noexcept;
  MappedBytes(const MappedBytes&) = delete;
  MappedBytes& operator=(const MappedBytes&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

  // Bytes [p, p + n) of the mapping leave this process's resident memory (the
  // pages round outwards); the page cache keeps them, so the next read faults
  // them back in without touching the disk. The contents never change.
  void drop_resident(const uint8_t* p, uint64_t n) const;

 private:
  void release() noexcept;
  void* base_ = nullptr;  // the page-aligned mapping (null when borrowed)
  size_t base_len_ = 0;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace lwq
