#include "io/mapped_bytes.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "util/error.h"

namespace lwq {

MappedBytes MappedBytes::map(int fd, uint64_t offset, uint64_t n, bool populate, const std::string& what) {
  MappedBytes m;
  if (n == 0) return m;
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t start = offset / page * page;
  m.base_len_ = static_cast<size_t>(offset - start + n);
  void* p = ::mmap(nullptr, m.base_len_, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd,
                   static_cast<off_t>(start));
  if (p == MAP_FAILED) fail("{}: cannot map {} bytes at byte {}: {}", what, n, offset, std::strerror(errno));
  // Read once, front to back: aggressive readahead, pages dropped behind.
  ::madvise(p, m.base_len_, MADV_SEQUENTIAL);
  m.base_ = p;
  m.data_ = static_cast<const uint8_t*>(p) + (offset - start);
  m.size_ = n;
  return m;
}

void MappedBytes::drop_resident(const uint8_t* p, uint64_t n) const {
  if (!base_ || n == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto lo = reinterpret_cast<uintptr_t>(base_), hi = lo + base_len_;
  const uintptr_t begin = std::max(lo, reinterpret_cast<uintptr_t>(p) / page * page);
  const uintptr_t end = std::min(hi, (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page);
  if (begin < end) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

MappedBytes MappedBytes::borrow(const uint8_t* data, uint64_t n) {
  MappedBytes m;
  m.data_ = data;
  m.size_ = n;
  return m;
}

MappedBytes::~MappedBytes() { release(); }

MappedBytes::MappedBytes(MappedBytes&& other) noexcept { *this = std::move(other); }

MappedBytes& MappedBytes::operator=(MappedBytes&& other) noexcept {
  if (this != &other) {
    release();
    base_ = std::exchange(other.base_, nullptr);
    base_len_ = std::exchange(other.base_len_, 0);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedBytes::release() noexcept {
  if (base_) ::munmap(base_, base_len_);
  base_ = nullptr;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace lwq
