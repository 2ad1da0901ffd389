#include "runner/calibration_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "util/error.h"
#include "util/scratch.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {
size_t page_size() { return static_cast<size_t>(::sysconf(_SC_PAGESIZE)); }
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }
}  // namespace

uint64_t default_calib_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  return pages > 0 ? static_cast<uint64_t>(pages) * page_size() / 4 : (8ull << 30);
}

CalibrationStore::CalibrationStore(uint64_t memory_limit_bytes, fs::path spill_dir)
    : limit_(memory_limit_bytes), dir_(std::move(spill_dir)) {}

CalibrationStore::~CalibrationStore() {
  for (auto& [p, n] : heap_) scratch_deallocate(p, n * sizeof(float));
  for (auto& [p, r] : mapped_) ::munmap(r.addr, r.bytes);
  if (fd_ >= 0) ::close(fd_);
}

void CalibrationStore::plan(uint64_t peak_bytes) {
  if (peak_bytes <= limit_ || dir_.empty() || spilled()) return;
  fs::create_directories(dir_);
  // O_TMPFILE: a file with no name, gone when closed (a crash included).
  fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    const fs::path name = dir_ / ".lwquant-calibration-spill";
    fd_ = ::open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0) fail("cannot create the calibration spill file in {}: {}", dir_.string(), std::strerror(errno));
    ::unlink(name.c_str());
  }
  spdlog::info("calibration stream: {:.1f} GiB of hidden states exceed --calib_memory_limit {:.1f} GiB; spilling "
               "them to a temporary file in {}", static_cast<double>(peak_bytes) / (1 << 30),
               static_cast<double>(limit_) / (1 << 30), dir_.string());
}

std::span<float> CalibrationStore::allocate(size_t n) {
  if (!spilled()) {
    auto* p = static_cast<float*>(scratch_allocate(n * sizeof(float)));
    std::fill(p, p + n, 0.0f);
    heap_.emplace(p, n);
    return {p, n};
  }
  const size_t bytes = round_up(std::max<size_t>(n * sizeof(float), 1), page_size());
  uint64_t offset;
  if (auto it = free_offsets_.find(bytes); it != free_offsets_.end()) {
    offset = it->second;
    free_offsets_.erase(it);
  } else {
    offset = file_size_;
    if (::ftruncate(fd_, static_cast<off_t>(file_size_ + bytes)) != 0)
      fail("cannot grow the calibration spill file in {} to {} bytes: {}", dir_.string(), file_size_ + bytes,
           std::strerror(errno));
    file_size_ += bytes;
  }
  void* addr = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, static_cast<off_t>(offset));
  if (addr == MAP_FAILED) fail("cannot map the calibration spill file: {}", std::strerror(errno));
  auto* p = static_cast<float*>(addr);
  std::memset(p, 0, n * sizeof(float));
  mapped_.emplace(p, Region{addr, bytes, offset});
  return {p, n};
}

void CalibrationStore::release(std::span<float> buffer) {
  if (buffer.data() == nullptr) return;
  if (auto it = heap_.find(buffer.data()); it != heap_.end()) {
    scratch_deallocate(it->first, it->second * sizeof(float));
    heap_.erase(it);
    return;
  }
  auto it = mapped_.find(buffer.data());
  if (it == mapped_.end()) return;
  ::munmap(it->second.addr, it->second.bytes);
  // The region's disk blocks are freed too, so the file never holds more than the live buffers.
  ::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(it->second.offset),
              static_cast<off_t>(it->second.bytes));
  free_offsets_.emplace(it->second.bytes, it->second.offset);
  mapped_.erase(it);
}

void CalibrationStore::evict(std::span<float> buffer) {
  auto it = mapped_.find(buffer.data());
  if (it == mapped_.end()) return;
  // Dropped from this process's pages: a shared file mapping keeps the data in
  // the page cache (written back by the kernel, reclaimable once written), and
  // a later touch maps it back.
  ::madvise(it->second.addr, it->second.bytes, MADV_DONTNEED);
}

HiddenSet::HiddenSet(HiddenSet&& o) noexcept : store_(o.store_), buffers_(std::move(o.buffers_)) { o.buffers_.clear(); }

HiddenSet& HiddenSet::operator=(HiddenSet&& o) noexcept {
  if (this != &o) {
    clear();
    store_ = o.store_;
    buffers_ = std::move(o.buffers_);
    o.buffers_.clear();
  }
  return *this;
}

HiddenSet::~HiddenSet() { clear(); }

void HiddenSet::clear() {
  for (auto b : buffers_) store_->release(b);
  buffers_.clear();
}

std::span<float> HiddenSet::add(size_t n) {
  buffers_.push_back(store_->allocate(n));
  return buffers_.back();
}

std::span<float> HiddenSet::take(size_t i) { return std::exchange(buffers_.at(i), {}); }

void HiddenSet::adopt(std::span<float> buffer) { buffers_.push_back(buffer); }

void HiddenSet::evict(size_t i) const { store_->evict(buffers_.at(i)); }

}  // namespace lwq
