// Streaming .safetensors writers. Tensors are written as they are produced
// (one tensor in memory at a time); the header goes into space reserved at the
// front of the file when the file is finished. Files appear under their final
// name only when complete: a failed or abandoned write leaves nothing behind.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace lwq {

// One tensor already in a file being written; offsets are relative to the data area.
struct WrittenTensor {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

// What an unfinished writer has put in its file: enough to reopen the file
// after a crash and go on appending (resume). Taken after an fsync.
struct SafetensorsWriterState {
  uint64_t reserve = 0;     // header bytes reserved
  uint64_t data_bytes = 0;  // data written after the reserve
  std::vector<WrittenTensor> tensors;
};

// Produces rows [row0, row0 + rows) of a tensor being written, into `dst`
// (rows × the row's bytes): tensors too big to hold whole are written a block
// of rows at a time.
using RowSource = std::function<void(int64_t row0, int64_t rows, void* dst)>;

struct SafetensorsWriterOptions {
  // Bytes kept free for the header before the first tensor (rounded up to a
  // multiple of 8 so the data area is 8-byte aligned). A header that does not
  // fit, or a reserve bigger than the data itself, makes finish() rewrite the
  // file with an exact-size header.
  uint64_t header_reserve = 1u << 20;
  // Written as "__metadata__" when non-empty.
  std::map<std::string, std::string> metadata;
  // Write the data area with O_DIRECT through a staging buffer of
  // `direct_stage_bytes` (rounded up to a multiple of 4096), where the file
  // system allows it; else, or when false, through the page cache. The files
  // are the same byte for byte. One stage is one write: 16 MiB puts four of a
  // virtio disk's 4 MiB requests in flight at once, and a data-free MoE run,
  // paced by its writes, took 15 % less wall time than with 8 MiB
  // (docs/benchmarks.md, session 9). The runner asks for that in data-free
  // runs (Saver::set_write_stage_bytes) and for 2 MiB in calibrated ones,
  // whose writes are a small part of the time and whose peak the stages add to.
  bool direct_io = true;
  uint64_t direct_stage_bytes = 8u << 20;
};

class SafetensorsWriter {
 public:
  // Writes to final_path + ".tmp" and renames it at finish().
  explicit SafetensorsWriter(std::filesystem::path final_path, SafetensorsWriterOptions options = {});
  ~SafetensorsWriter();  // removes the temporary unless finish() succeeded
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void add(const std::string& name, const Tensor& t);
  // `data` holds numel(shape) × dtype_size(dtype) bytes.
  void add(const std::string& name, DType dtype, const Shape& shape, const void* data);
  // The tensor's rows from `source`, a block of about `block_bytes` at a time.
  void add_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source,
                uint64_t block_bytes = uint64_t{16} << 20);
  uint64_t data_bytes() const { return data_bytes_; }
  size_t count() const { return entries_.size(); }
  const std::filesystem::path& path() const { return final_path_; }
  // True while the data area is written with O_DIRECT.
  bool direct() const { return direct_fd_ >= 0; }
  // Writes the header, fsyncs and renames to the final name.
  void finish();

  // fsyncs what was written so far and returns the state to reopen it from.
  SafetensorsWriterState checkpoint();
  // Resume support: after a failed write (a full disk) keep the temporary
  // instead of removing it, and on destruction leave it for a later reopen().
  void keep_file() { keep_file_ = true; }
  // Reopens the unfinished file of an earlier process at `state`: its
  // temporary (cut back to the state's length), or else one of
  // `finished_copies` that the earlier process completed after the state was
  // taken, whose first tensors must be exactly the state's (their data is
  // copied back behind a fresh reserve). Throws when neither is usable.
  static std::unique_ptr<SafetensorsWriter> reopen(std::filesystem::path final_path, SafetensorsWriterOptions options,
                                                   const SafetensorsWriterState& state,
                                                   const std::vector<std::filesystem::path>& finished_copies);

 private:
  using Entry = WrittenTensor;
  struct ReopenTag {};
  SafetensorsWriter(ReopenTag, std::filesystem::path final_path, SafetensorsWriterOptions options);
  template <typename Body>
  void guarded(Body&& body);
  void check_new_tensor(const std::string& name, const Shape& shape) const;
  std::string header_json() const;
  void rewrite_with_header(const std::string& header);
  void discard() noexcept;
  void close_files() noexcept;

  // Data area writes (see the .cc file's "Direct writes").
  void start_direct();
  void drop_unlisted();
  void append(const void* src, uint64_t n);
  void flush_stage();
  void write_stage();
  void trim_file();
  void load_stage(uint64_t at);
  void stop_direct() noexcept;
  void wait_in_flight();

  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };

  std::filesystem::path final_path_, tmp_path_;
  SafetensorsWriterOptions options_;
  uint64_t reserve_ = 0;  // header bytes reserved (multiple of 8)
  int fd_ = -1;           // buffered: header, truncation, fsync, reads
  uint64_t data_bytes_ = 0;
  uint64_t pos_ = 0;       // file offset of the next data byte
  uint64_t file_end_ = 0;  // the file's length is at most this
  // O_DIRECT descriptor of the same file and its staging buffer, which holds
  // the file's bytes [stage_off_, pos_); stage_off_ is 4096-aligned.
  int direct_fd_ = -1;
  std::unique_ptr<uint8_t, FreeDeleter> stage_;
  // The stage last filled, while a background thread writes it at in_flight_off_.
  std::unique_ptr<uint8_t, FreeDeleter> spare_;
  std::future<bool> in_flight_;
  uint64_t in_flight_off_ = 0;
  uint64_t stage_cap_ = 0, stage_off_ = 0;
  bool stage_dirty_ = false;  // holds bytes not yet written
  std::vector<Entry> entries_;
  std::set<std::string> names_;
  enum class State { Open, Finished, Failed } state_ = State::Open;
  bool keep_file_ = false;
};

struct ShardedWriterOptions {
  std::string stem = "quant_model_weights";
  // 0: a single "<stem>.safetensors" and no index.
  uint64_t max_shard_bytes = 0;
  uint64_t header_reserve = 1u << 20;
  uint64_t direct_stage_bytes = SafetensorsWriterOptions{}.direct_stage_bytes;  // per shard writer
};

// msModelSlim's BufferedSafetensorsWriter layout, streamed: before a tensor is
// added, if the open shard's bytes + the tensor's bytes >= max_shard_bytes and
// the shard is non-empty, the shard is closed; a tensor larger than the limit
// thus ends up alone in its shard.
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::filesystem::path dir, ShardedWriterOptions options);
  ~ShardedSafetensorsWriter();  // unless finish() succeeded, removes every shard written
  ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
  ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;

  void add(const std::string& name, const Tensor& t);
  // `data` holds numel(shape) × dtype_size(dtype) bytes.
  void add(const std::string& name, DType dtype, const Shape& shape, const void* data);
  void add_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source);
  size_t count() const { return weight_map_.size(); }
  uint64_t total_bytes() const { return total_bytes_; }
  // Closes the last shard, renames "<stem>-{i:05d}-of-00000.safetensors" to
  // "-of-{N:05d}" and writes "<stem>.safetensors.index.json"
  // ({"metadata":{"total_size":N},"weight_map":{...}}, indent 2) when sharded.
  // Returns the weight map (tensor -> file name) in write order.
  std::vector<std::pair<std::string, std::string>> finish();

  // Resume support: the state after an fsync of the open shard, and its
  // restoration into a writer that has had nothing added yet (same dir and
  // options). resume() puts back closed shards a crashed finish() renamed,
  // removes files written after the state was taken, and throws when the
  // files no longer hold what the state describes.
  nlohmann::json checkpoint();
  void resume(const nlohmann::json& state);
  // Leave every file as it is on destruction, for a later resume(); also
  // keeps the open shard's temporary when a write fails. Set before adding.
  void keep_files() { keep_files_ = true; if (current_) current_->keep_file(); }
  // For the shards opened from now on (SafetensorsWriterOptions::direct_stage_bytes).
  void set_direct_stage_bytes(uint64_t n) { options_.direct_stage_bytes = n; }

 private:
  // From `source` when it is set, else from `data`.
  void add_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source, const void* data);
  std::string shard_name(size_t index, size_t count) const;  // 1-based index
  SafetensorsWriterOptions shard_options() const {
    return {options_.header_reserve, {}, true, options_.direct_stage_bytes};
  }
  void close_shard();
  void cleanup() noexcept;

  std::filesystem::path dir_;
  ShardedWriterOptions options_;
  std::unique_ptr<SafetensorsWriter> current_;
  size_t shards_closed_ = 0;
  std::vector<std::pair<std::string, size_t>> weight_map_;  // tensor -> shard index (1-based)
  std::set<std::string> names_;
  uint64_t total_bytes_ = 0;
  size_t final_count_ = 0;  // N once shards are being renamed
  bool finished_ = false;
  bool keep_files_ = false;
};

// Test hook: after `n` more bytes the write path fails as if the disk were
// full (ENOSPC), in every writer of the process. n < 0 disables it. While it
// is armed, data goes through the page cache, never O_DIRECT.
void set_write_fault_after_bytes_for_testing(int64_t n);
// Test hook: the next O_DIRECT write of any writer fails with `err` (EINVAL:
// the file system refuses it and the writer goes on buffered; others: a
// write error). 0 disables it.
void set_direct_write_error_for_testing(int err);

}  // namespace lwq
