// Where the calibration stream's hidden states live between units: in memory
// when they fit `--calib_memory_limit`, otherwise in a temporary file beside
// the output (a DiT's video sequences: tens of thousands of rows × dim 5120
// per sample), mapped so the runner addresses them like memory, and handed
// back to the page cache after each group of samples so resident memory stays
// near the limit. The file is unlinked as soon as it is created: nothing is
// left behind, whatever happens to the process.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <vector>

namespace lwq {

class CalibrationStore {
 public:
  // `spill_dir` empty: always in memory.
  CalibrationStore(uint64_t memory_limit_bytes, std::filesystem::path spill_dir);
  ~CalibrationStore();
  CalibrationStore(const CalibrationStore&) = delete;
  CalibrationStore& operator=(const CalibrationStore&) = delete;

  // Decides the mode for a stream whose live buffers need `peak_bytes` at most
  // (inputs, outputs and report references of one unit); call before allocating.
  void plan(uint64_t peak_bytes);
  bool spilled() const { return fd_ >= 0; }
  uint64_t memory_limit() const { return limit_; }

  // A zero-filled buffer of n floats (heap, or a region of the spill file).
  std::span<float> allocate(size_t n);
  void release(std::span<float> buffer);
  // Done with the buffer for now: its pages leave resident memory (spilled
  // mode; the data stays in the file). No-op in memory.
  void evict(std::span<float> buffer);

 private:
  uint64_t limit_;
  std::filesystem::path dir_;
  int fd_ = -1;
  uint64_t file_size_ = 0;
  // In memory: scratch-pool blocks (util/scratch.h; every layer's states have
  // the same sizes), by buffer, with their element counts.
  std::map<float*, size_t> heap_;
  struct Region {
    void* addr;
    size_t bytes;
    uint64_t offset;
  };
  std::map<float*, Region> mapped_;
  std::multimap<size_t, uint64_t> free_offsets_;  // released file regions by size, for reuse
};

// One buffer per calibration sample, released together (RAII).
class HiddenSet {
 public:
  HiddenSet() = default;
  explicit HiddenSet(CalibrationStore* store) : store_(store) {}
  HiddenSet(HiddenSet&& o) noexcept;
  HiddenSet& operator=(HiddenSet&& o) noexcept;
  ~HiddenSet();

  std::span<float> add(size_t n);  // zero-filled
  // Buffer i leaves this set (its slot stays, empty) for adopt() by another
  // set of the same store: a unit's last forward then runs in its inputs' memory.
  std::span<float> take(size_t i);
  void adopt(std::span<float> buffer);
  std::span<float> operator[](size_t i) const { return buffers_.at(i); }
  size_t size() const { return buffers_.size(); }
  bool empty() const { return buffers_.empty(); }
  void evict(size_t i) const;
  void clear();

 private:
  CalibrationStore* store_ = nullptr;
  std::vector<std::span<float>> buffers_;
};

// The default limit: a quarter of physical memory.
uint64_t default_calib_memory_limit();

}  // namespace lwq
