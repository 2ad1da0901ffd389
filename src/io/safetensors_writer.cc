#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <regex>

#include "io/safetensors_reader.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {

namespace fs = std::filesystem;

namespace {

std::atomic<int64_t> g_fault_budget{-1};
std::atomic<int> g_direct_error{0};

bool fault_armed() { return g_fault_budget.load() >= 0; }

// Bytes the next write may pass before the injected fault; -1 when disarmed.
size_t allowed_by_fault(size_t n) {
  int64_t budget = g_fault_budget.load();
  if (budget < 0) return n;
  size_t allowed = std::min<uint64_t>(n, static_cast<uint64_t>(budget));
  g_fault_budget.store(budget - static_cast<int64_t>(allowed));
  return allowed;
}

// Writes all n bytes at `offset`; `what` names the file for errors.
void pwrite_all(int fd, const void* src, uint64_t n, uint64_t offset, const std::string& what) {
  auto* in = static_cast<const uint8_t*>(src);
  while (n > 0) {
    size_t chunk = allowed_by_fault(static_cast<size_t>(std::min<uint64_t>(n, 1u << 30)));
    if (chunk == 0) fail("cannot write {}: {}", what, std::strerror(ENOSPC));
    ssize_t put = ::pwrite(fd, in, chunk, static_cast<off_t>(offset));
    if (put < 0) {
      if (errno == EINTR) continue;
      fail("cannot write {}: {}", what, std::strerror(errno));
    }
    in += put;
    offset += static_cast<uint64_t>(put);
    n -= static_cast<uint64_t>(put);
  }
}

// O_DIRECT needs offsets, lengths and memory aligned to the device's logical
// block; 4096 covers every common one.
constexpr uint64_t kDirectBlock = 4096;
uint64_t align_down(uint64_t n) { return n / kDirectBlock * kDirectBlock; }
uint64_t align_up(uint64_t n) { return (n + kDirectBlock - 1) / kDirectBlock * kDirectBlock; }

// Writes n bytes (whole blocks) at `offset` on an O_DIRECT descriptor. Returns
// false when the file system refuses the write (EINVAL: it took the O_DIRECT
// open but not this alignment); other failures throw as pwrite_all's do.
bool pwrite_direct(int fd, const uint8_t* src, uint64_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    ssize_t put = -1;
    if (int err = g_direct_error.exchange(0)) errno = err;
    else put = ::pwrite(fd, src, static_cast<size_t>(std::min<uint64_t>(n, 1u << 30)), static_cast<off_t>(offset));
    if (put < 0) {
      if (errno == EINTR) continue;
      if (errno == EINVAL) return false;
      fail("cannot write {}: {}", what, std::strerror(errno));
    }
    if (put == 0) fail("cannot write {}: an O_DIRECT write of {} bytes wrote nothing", what, n);
    const uint64_t done = static_cast<uint64_t>(put);
    if (done < n && done % kDirectBlock != 0)
      fail("cannot write {}: an O_DIRECT write of {} bytes at offset {} stopped after {}, inside a block", what, n,
           offset, done);
    src += done, offset += done, n -= done;
  }
  return true;
}

void copy_range(int src, uint64_t src_off, int dst, uint64_t dst_off, uint64_t n, const std::string& what) {
  // copy_file_range avoids a trip through user space; the fault hook needs
  // the buffered path, as do file systems without it.
  if (g_fault_budget.load() < 0) {
    while (n > 0) {
      loff_t in = static_cast<loff_t>(src_off), out = static_cast<loff_t>(dst_off);
      ssize_t done = ::copy_file_range(src, &in, dst, &out, std::min<uint64_t>(n, 1u << 30), 0);
      if (done < 0 && errno == EINTR) continue;
      if (done <= 0) break;  // fall back below (EXDEV, ENOSYS, EINVAL, ...) or a real error found again there
      src_off += done, dst_off += done, n -= done;
    }
  }
  std::vector<uint8_t> buf(std::min<uint64_t>(n, 8u << 20));
  while (n > 0) {
    size_t chunk = std::min<uint64_t>(n, buf.size());
    ssize_t got = ::pread(src, buf.data(), chunk, static_cast<off_t>(src_off));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail("cannot read back {}: {}", what, std::strerror(errno));
    if (got == 0) fail("cannot read back {}: unexpected end of file", what);
    pwrite_all(dst, buf.data(), static_cast<uint64_t>(got), dst_off, what);
    src_off += got, dst_off += got, n -= got;
  }
}

int create_file(const fs::path& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {} ({}): {}", what, path.string(), std::strerror(errno));
  return fd;
}

void sync_and_close(int& fd, const std::string& what) {
  int rc = ::fsync(fd);
  int err = errno;
  int rc2 = ::close(fd);
  fd = -1;
  if (rc != 0) fail("cannot write {}: fsync failed: {}", what, std::strerror(err));
  if (rc2 != 0) fail("cannot write {}: close failed: {}", what, std::strerror(errno));
}

std::string length_prefix(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out;
}

uint64_t round_up8(uint64_t n) { return (n + 7) / 8 * 8; }

}  // namespace

void set_write_fault_after_bytes_for_testing(int64_t n) { g_fault_budget.store(n < 0 ? -1 : n); }
void set_direct_write_error_for_testing(int err) { g_direct_error.store(err); }

// ---------------------------------------------------------------- SafetensorsWriter

SafetensorsWriter::SafetensorsWriter(fs::path final_path, SafetensorsWriterOptions options)
    : final_path_(std::move(final_path)), options_(std::move(options)) {
  tmp_path_ = final_path_;
  tmp_path_ += ".tmp";
  reserve_ = round_up8(std::min<uint64_t>(options_.header_reserve, kMaxSafetensorsHeaderBytes));
  pos_ = 8 + reserve_;
  fd_ = create_file(tmp_path_, final_path_.string());
  start_direct();
}

SafetensorsWriter::~SafetensorsWriter() {
  if (state_ == State::Finished) return;
  if (keep_file_) {
    close_files();
    return;
  }
  discard();
}

void SafetensorsWriter::close_files() noexcept {
  stop_direct();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void SafetensorsWriter::discard() noexcept {
  close_files();
  std::error_code ec;
  fs::remove(tmp_path_, ec);
  fs::path tmp2 = tmp_path_;
  tmp2 += "2";
  fs::remove(tmp2, ec);
  state_ = State::Failed;
}

SafetensorsWriter::SafetensorsWriter(ReopenTag, fs::path final_path, SafetensorsWriterOptions options)
    : final_path_(std::move(final_path)), options_(std::move(options)) {
  tmp_path_ = final_path_;
  tmp_path_ += ".tmp";
}

SafetensorsWriterState SafetensorsWriter::checkpoint() {
  SafetensorsWriterState state;
  guarded([&] {
    drop_unlisted();
    flush_stage();
    if (::fsync(fd_) != 0) fail("cannot write {}: fsync failed: {}", final_path_.string(), std::strerror(errno));
    state.reserve = reserve_;
    state.data_bytes = data_bytes_;
    state.tensors = entries_;
  });
  return state;
}

namespace {

// True when `file`'s tensors include every tensor of `state` at the same
// data offsets with the same dtype and shape.
bool holds_state_prefix(const SafetensorsFile& file, const SafetensorsWriterState& state) {
  for (const WrittenTensor& t : state.tensors) {
    const TensorInfo* info = file.find(t.name);
    if (!info || info->dtype != t.dtype || info->shape != t.shape) return false;
    if (info->offset != file.data_start() + t.begin || info->nbytes != t.end - t.begin) return false;
  }
  return file.file_size() >= file.data_start() + state.data_bytes;
}

}  // namespace

std::unique_ptr<SafetensorsWriter> SafetensorsWriter::reopen(fs::path final_path, SafetensorsWriterOptions options,
                                                             const SafetensorsWriterState& state,
                                                             const std::vector<fs::path>& finished_copies) {
  std::unique_ptr<SafetensorsWriter> w(new SafetensorsWriter(ReopenTag{}, std::move(final_path), std::move(options)));
  w->reserve_ = state.reserve;
  w->data_bytes_ = state.data_bytes;
  w->entries_ = state.tensors;
  for (const auto& e : state.tensors) w->names_.insert(e.name);
  const uint64_t length = 8 + state.reserve + state.data_bytes;
  std::error_code ec;
  std::vector<fs::path> copies = finished_copies;
  if (fs::is_regular_file(w->tmp_path_, ec)) {
    // An unfinished temporary has no length prefix yet (its first 8 bytes are
    // a hole); one with a prefix was being finished and may have been
    // rewritten with a smaller header, so it is read as a finished copy.
    int fd = ::open(w->tmp_path_.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("cannot reopen {}: {}", w->tmp_path_.string(), std::strerror(errno));
    uint8_t prefix[8] = {};
    bool unfinished = ::pread(fd, prefix, 8, 0) == 8 && std::all_of(prefix, prefix + 8, [](uint8_t b) { return b == 0; });
    if (unfinished && fs::file_size(w->tmp_path_, ec) >= length) {
      w->fd_ = fd;
      if (::ftruncate(w->fd_, static_cast<off_t>(length)) != 0)
        fail("cannot cut {} back to {} bytes: {}", w->tmp_path_.string(), length, std::strerror(errno));
      w->pos_ = w->file_end_ = length;
      w->start_direct();
      return w;
    }
    ::close(fd);
    fs::path source = w->tmp_path_;
    source += ".resume-source";
    fs::rename(w->tmp_path_, source, ec);
    if (!ec) copies.insert(copies.begin(), source);
  }
  for (const fs::path& copy : copies) {
    if (!fs::is_regular_file(copy, ec)) continue;
    SafetensorsFile done = SafetensorsFile::open(copy);
    if (!holds_state_prefix(done, state))
      fail("{} does not start with the {} tensors recorded for resuming", copy.string(), state.tensors.size());
    w->fd_ = create_file(w->tmp_path_, w->final_path_.string());
    int src = ::open(copy.c_str(), O_RDONLY | O_CLOEXEC);
    if (src < 0) fail("cannot open {}: {}", copy.string(), std::strerror(errno));
    try {
      copy_range(src, done.data_start(), w->fd_, 8 + state.reserve, state.data_bytes, w->final_path_.string());
    } catch (...) {
      ::close(src);
      throw;
    }
    ::close(src);
    fs::remove(copy, ec);
    w->pos_ = w->file_end_ = length;
    w->start_direct();
    return w;
  }
  fail("cannot resume {}: neither its temporary nor a finished copy holds the {} bytes recorded",
       w->final_path_.string(), state.data_bytes);
}

template <typename Body>
void SafetensorsWriter::guarded(Body&& body) {
  if (state_ == State::Finished) fail("{}: writer already finished", final_path_.string());
  if (state_ == State::Failed) fail("{}: writer failed earlier; its file was removed", final_path_.string());
  try {
    body();
  } catch (...) {
    if (keep_file_) state_ = State::Failed;  // the file stays for a resume; the destructor closes it
    else discard();
    throw;
  }
}

void SafetensorsWriter::add(const std::string& name, const Tensor& t) {
  if (static_cast<int64_t>(t.bytes.size()) != t.numel() * static_cast<int64_t>(dtype_size(t.dtype)))
    fail("{}: tensor '{}' holds {} bytes but shape {} of {} needs {}", final_path_.string(), name, t.bytes.size(),
         shape_str(t.shape), dtype_name(t.dtype), t.numel() * static_cast<int64_t>(dtype_size(t.dtype)));
  add(name, t.dtype, t.shape, t.bytes.data());
}

void SafetensorsWriter::check_new_tensor(const std::string& name, const Shape& shape) const {
  // Bad arguments are the caller's bug, not a broken file: the writer stays usable.
  if (state_ != State::Open) return;
  if (name.empty() || name == "__metadata__") fail("{}: invalid tensor name '{}'", final_path_.string(), name);
  if (names_.count(name)) fail("{}: tensor '{}' added twice", final_path_.string(), name);
  for (int64_t d : shape)
    if (d < 0) fail("{}: tensor '{}' has negative shape {}", final_path_.string(), name, shape_str(shape));
}

void SafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
  check_new_tensor(name, shape);
  guarded([&] {
    const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
    drop_unlisted();
    append(data, nbytes);
    entries_.push_back({name, dtype, shape, data_bytes_, data_bytes_ + nbytes});
    names_.insert(name);
    data_bytes_ += nbytes;
  });
}

void SafetensorsWriter::add_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source,
                                 uint64_t block_bytes) {
  check_new_tensor(name, shape);
  const int64_t rows = shape.empty() ? 1 : shape[0];
  const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  const uint64_t row_bytes = rows > 0 ? nbytes / static_cast<uint64_t>(rows) : 0;
  const int64_t block = std::max<int64_t>(1, static_cast<int64_t>(block_bytes / std::max<uint64_t>(row_bytes, 1)));
  std::vector<uint8_t> buffer(static_cast<size_t>(std::min(block, rows) * row_bytes));
  // A source that throws leaves the tensor unlisted (its bytes are overwritten by the next one).
  guarded([&] { drop_unlisted(); });
  for (int64_t r = 0; r < rows; r += block) {
    const int64_t n = std::min(block, rows - r);
    source(r, n, buffer.data());
    guarded([&] { append(buffer.data(), static_cast<uint64_t>(n) * row_bytes); });
  }
  guarded([&] {
    entries_.push_back({name, dtype, shape, data_bytes_, data_bytes_ + nbytes});
    names_.insert(name);
    data_bytes_ += nbytes;
  });
}

// ---------------------------------------------------------------- Direct writes
//
// The data area goes to the file with O_DIRECT where the file system allows
// it. Through the page cache, every page written costs system CPU to allocate
// (a 2-vCPU VM: 480 MB in 4 MiB pwrites took 1.7-1.9 s of system time
// buffered, 0.03 s with O_DIRECT; 5-8 % of a calibrated run's CPU, more of a
// data-free run's), and the run never reads its output back, so caching it
// only evicts the input model's pages. O_DIRECT writes need 4096-aligned
// offsets, lengths and memory, and are synchronous: appends are copied into a
// large aligned stage mirroring the file's bytes [stage_off_, pos_), written
// whole when full. The data area starts at 8 + reserve_, not on a block: the
// first stage starts at the block below, its leading bytes the reserve's
// (zeros; a hole until finish() writes the header). A flush of a partial
// stage writes its last block padded with zeros, cuts the file back to pos_
// and keeps that block, to write it again with the bytes that follow. The
// header, truncation, fsync, reopen and the read-backs stay on fd_.
//
// A full stage is written by a background thread while the next one fills
// (two stages): an O_DIRECT write returns only once the device has the data,
// and done in line it took the overlap of writing with reading and
// quantizing that the page cache gave (a data-free 1 GB run: 0.71 → 0.85 s).
// Whatever reads, cuts, syncs or writes the file otherwise waits for it
// first (wait_in_flight), and its errors surface there.

void SafetensorsWriter::start_direct() {
  if (!options_.direct_io) return;
  direct_fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_DIRECT | O_CLOEXEC);
  if (direct_fd_ < 0) return;  // no O_DIRECT here (EINVAL): buffered writes as before
  stage_cap_ = std::max(kDirectBlock, align_up(options_.direct_stage_bytes));
  stage_.reset(static_cast<uint8_t*>(std::aligned_alloc(kDirectBlock, stage_cap_)));
  spare_.reset(static_cast<uint8_t*>(std::aligned_alloc(kDirectBlock, stage_cap_)));
  try {
    if (!stage_ || !spare_) fail("cannot allocate two {}-byte write stages", stage_cap_);
    load_stage(pos_);
  } catch (const Error& e) {
    spdlog::debug("{}: writing through the page cache: {}", final_path_.string(), e.what());
    stop_direct();
  }
}

void SafetensorsWriter::stop_direct() noexcept {
  if (in_flight_.valid()) {
    try {
      in_flight_.get();  // a failure here is already on its way up, or the file is being discarded
    } catch (...) {
    }
  }
  if (direct_fd_ >= 0) ::close(direct_fd_);
  direct_fd_ = -1;
  stage_.reset();
  spare_.reset();
}

// Waits for the background write of the previous full stage and rethrows its
// error. One the file system refused goes through fd_, with what is staged
// since, and the writer stays buffered from then on.
void SafetensorsWriter::wait_in_flight() {
  if (!in_flight_.valid()) return;
  if (in_flight_.get()) return;
  spdlog::debug("{}: O_DIRECT write refused; writing through the page cache", final_path_.string());
  pwrite_all(fd_, spare_.get(), stage_cap_, in_flight_off_, final_path_.string());
  file_end_ = std::max(file_end_, in_flight_off_ + stage_cap_);
  if (stage_dirty_) pwrite_all(fd_, stage_.get(), pos_ - stage_off_, stage_off_, final_path_.string());
  file_end_ = std::max(file_end_, pos_);
  stop_direct();
}

// Starts the stage at `at`'s block, whose bytes before `at` are read back from
// the file (zeros past its end: the reserve's hole).
void SafetensorsWriter::load_stage(uint64_t at) {
  wait_in_flight();
  if (!stage_) {  // refused meanwhile: buffered from here
    pos_ = at;
    return;
  }
  stage_off_ = align_down(at);
  pos_ = at;
  stage_dirty_ = false;
  const uint64_t len = at - stage_off_;
  uint64_t got = 0;
  while (got < len) {
    ssize_t r = ::pread(fd_, stage_.get() + got, len - got, static_cast<off_t>(stage_off_ + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("cannot read back {}: {}", final_path_.string(), std::strerror(errno));
    if (r == 0) break;
    got += static_cast<uint64_t>(r);
  }
  std::memset(stage_.get() + got, 0, len - got);
}

// Moves the append position back to the end of the listed tensors: the bytes
// of a tensor whose source threw are overwritten by the next tensor, and cut
// off by a flush.
void SafetensorsWriter::drop_unlisted() {
  const uint64_t end = 8 + reserve_ + data_bytes_;
  if (pos_ == end) return;
  // Below the stage, the block holding `end` was written whole (its bytes
  // before `end` included) when the stage moved past it.
  if (stage_ && end < stage_off_) load_stage(end);
  else pos_ = end;
}

void SafetensorsWriter::append(const void* src, uint64_t n) {
  auto* in = static_cast<const uint8_t*>(src);
  // The fault hook counts bytes as they are written, and a stage would move
  // its fault past the add() whose bytes cross the budget (tests expect it
  // there): while it is armed, bytes go through fd_ (the staged ones first;
  // those were added before and do not count).
  if (stage_ && !fault_armed()) {
    while (n > 0 && stage_) {  // write_stage() drops the stage where O_DIRECT writes are refused
      const uint64_t used = pos_ - stage_off_, take = std::min(n, stage_cap_ - used);
      std::memcpy(stage_.get() + used, in, take);
      stage_dirty_ = true;
      in += take, pos_ += take, n -= take;
      if (pos_ - stage_off_ == stage_cap_) write_stage();
    }
    if (n == 0) return;
  }
  if (stage_) flush_stage();
  pwrite_all(fd_, in, n, pos_, final_path_.string());
  pos_ += n;
  file_end_ = std::max(file_end_, pos_);
  if (stage_) load_stage(pos_);
}

// Writes the stage, its last block padded with zeros, and keeps that block
// when it is partial.
void SafetensorsWriter::write_stage() {
  wait_in_flight();
  if (!stage_) return;  // refused: the staged bytes went through fd_
  const uint64_t len = pos_ - stage_off_, padded = align_up(len);
  if (len == stage_cap_) {  // full, hence whole blocks: written in the background
    std::swap(stage_, spare_);
    in_flight_off_ = stage_off_;
    in_flight_ = std::async(std::launch::async, [fd = direct_fd_, buf = spare_.get(), len, off = stage_off_,
                                                 what = final_path_.string()] {
      return pwrite_direct(fd, buf, len, off, what);
    });
    file_end_ = std::max(file_end_, stage_off_ + len);
    stage_off_ += len;
    stage_dirty_ = false;
    return;
  }
  std::memset(stage_.get() + len, 0, padded - len);
  if (!pwrite_direct(direct_fd_, stage_.get(), padded, stage_off_, final_path_.string())) {
    spdlog::debug("{}: O_DIRECT write refused; writing through the page cache", final_path_.string());
    pwrite_all(fd_, stage_.get(), len, stage_off_, final_path_.string());
    file_end_ = std::max(file_end_, pos_);
    stop_direct();
    return;
  }
  file_end_ = std::max(file_end_, stage_off_ + padded);
  const uint64_t keep = align_down(len);
  std::memmove(stage_.get(), stage_.get() + keep, len - keep);
  stage_off_ += keep;
  stage_dirty_ = false;
}

// Puts every appended byte in the file and ends the file at pos_: done before
// fd_ is synced, read or written.
void SafetensorsWriter::flush_stage() {
  if (stage_ && stage_dirty_) write_stage();
  wait_in_flight();
  trim_file();
}

void SafetensorsWriter::trim_file() {
  if (file_end_ <= pos_) return;
  if (::ftruncate(fd_, static_cast<off_t>(pos_)) != 0)
    fail("cannot write {}: cutting it to {} bytes failed: {}", final_path_.string(), pos_, std::strerror(errno));
  file_end_ = pos_;
}

std::string SafetensorsWriter::header_json() const {
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!options_.metadata.empty()) h["__metadata__"] = options_.metadata;
  for (const Entry& e : entries_) {
    h[e.name] = {{"dtype", std::string(dtype_name(e.dtype))}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  }
  return h.dump();
}

void SafetensorsWriter::rewrite_with_header(const std::string& header) {
  fs::path tmp2 = tmp_path_;
  tmp2 += "2";
  int out = create_file(tmp2, final_path_.string());
  try {
    pwrite_all(out, length_prefix(header.size()).data(), 8, 0, final_path_.string());
    pwrite_all(out, header.data(), header.size(), 8, final_path_.string());
    copy_range(fd_, 8 + reserve_, out, 8 + header.size(), data_bytes_, final_path_.string());
  } catch (...) {
    ::close(out);
    throw;
  }
  ::close(fd_);
  fd_ = out;
  std::error_code ec;
  fs::remove(tmp_path_, ec);
  fs::rename(tmp2, tmp_path_, ec);
  if (ec) fail("cannot write {}: rename {} failed: {}", final_path_.string(), tmp2.string(), ec.message());
}

void SafetensorsWriter::finish() {
  guarded([&] {
    drop_unlisted();
    flush_stage();
    stop_direct();  // the header, and a rewrite's copy, go through fd_
    std::string header = header_json();
    header.resize(round_up8(header.size()), ' ');
    if (header.size() > kMaxSafetensorsHeaderBytes)
      fail("{}: header of {} bytes is over the {} byte limit readers accept", final_path_.string(), header.size(),
           kMaxSafetensorsHeaderBytes);
    // Rewriting costs a copy of the data: done when the header does not fit,
    // or when the unused reserve would outweigh the data (small files).
    if (header.size() > reserve_ || reserve_ - header.size() > data_bytes_) {
      rewrite_with_header(header);
    } else {
      header.resize(reserve_, ' ');
      pwrite_all(fd_, length_prefix(header.size()).data(), 8, 0, final_path_.string());
      pwrite_all(fd_, header.data(), header.size(), 8, final_path_.string());
    }
    sync_and_close(fd_, final_path_.string());
    std::error_code ec;
    fs::rename(tmp_path_, final_path_, ec);
    if (ec) fail("cannot rename {} to {}: {}", tmp_path_.string(), final_path_.string(), ec.message());
    // Make the rename itself durable; failure here loses nothing written.
    int dir = ::open(final_path_.parent_path().empty() ? "." : final_path_.parent_path().c_str(),
                     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
      ::fsync(dir);
      ::close(dir);
    }
  });
  state_ = State::Finished;
}

// ---------------------------------------------------------------- ShardedSafetensorsWriter

ShardedSafetensorsWriter::ShardedSafetensorsWriter(fs::path dir, ShardedWriterOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  if (options_.stem.empty() || fs::path(options_.stem).has_parent_path())
    fail("invalid safetensors file stem '{}' (expected a plain name)", options_.stem);
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec || !fs::is_directory(dir_)) fail("cannot create output folder {}: {}", dir_.string(), ec.message());
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
  if (!finished_ && !keep_files_) cleanup();
}

std::string ShardedSafetensorsWriter::shard_name(size_t index, size_t count) const {
  if (options_.max_shard_bytes == 0) return options_.stem + ".safetensors";
  return fmt::format("{}-{:05d}-of-{:05d}.safetensors", options_.stem, index, count);
}

void ShardedSafetensorsWriter::cleanup() noexcept {
  current_.reset();  // removes its temporary
  std::error_code ec;
  for (size_t i = 1; i <= shards_closed_; ++i) {
    fs::remove(dir_ / shard_name(i, 0), ec);
    if (final_count_ > 0) fs::remove(dir_ / shard_name(i, final_count_), ec);
  }
}

void ShardedSafetensorsWriter::close_shard() {
  current_->finish();
  current_.reset();
  ++shards_closed_;
}

void ShardedSafetensorsWriter::add(const std::string& name, const Tensor& t) {
  if (static_cast<int64_t>(t.bytes.size()) != t.numel() * static_cast<int64_t>(dtype_size(t.dtype)))
    fail("{}: tensor '{}' holds {} bytes but shape {} of {} needs {}", dir_.string(), name, t.bytes.size(),
         shape_str(t.shape), dtype_name(t.dtype), t.numel() * static_cast<int64_t>(dtype_size(t.dtype)));
  add(name, t.dtype, t.shape, t.bytes.data());
}

void ShardedSafetensorsWriter::add(const std::string& name, DType dtype, const Shape& shape, const void* data) {
  add_rows(name, dtype, shape, {}, data);
}

void ShardedSafetensorsWriter::add_rows(const std::string& name, DType dtype, const Shape& shape,
                                        const RowSource& source) {
  add_rows(name, dtype, shape, source, nullptr);
}

void ShardedSafetensorsWriter::add_rows(const std::string& name, DType dtype, const Shape& shape,
                                        const RowSource& source, const void* data) {
  if (finished_) fail("{}: sharded writer already finished", dir_.string());
  if (names_.count(name)) fail("{}: tensor '{}' added twice", dir_.string(), name);
  const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  const uint64_t limit = options_.max_shard_bytes;
  if (limit > 0) {
    if (current_ && current_->count() > 0 && current_->data_bytes() + nbytes >= limit) close_shard();
    if (nbytes > limit)
      spdlog::warn("tensor '{}' ({} bytes) is larger than the shard size limit ({} bytes); it gets a shard of its own",
                   name, nbytes, limit);
  }
  if (!current_) {
    if (limit == 0 && shards_closed_ > 0) fail("{}: single-file writer already closed", dir_.string());
    current_ = std::make_unique<SafetensorsWriter>(dir_ / shard_name(shards_closed_ + 1, 0), shard_options());
    if (keep_files_) current_->keep_file();
  }
  if (source) current_->add_rows(name, dtype, shape, source);
  else current_->add(name, dtype, shape, data);
  names_.insert(name);
  weight_map_.emplace_back(name, shards_closed_ + 1);
  total_bytes_ += nbytes;
}

std::vector<std::pair<std::string, std::string>> ShardedSafetensorsWriter::finish() {
  if (finished_) fail("{}: sharded writer already finished", dir_.string());
  // Nothing added in single-file mode still yields an (empty) valid file.
  if (!current_ && options_.max_shard_bytes == 0 && shards_closed_ == 0)
    current_ = std::make_unique<SafetensorsWriter>(dir_ / shard_name(1, 0), shard_options());
  if (current_) close_shard();

  std::vector<std::pair<std::string, std::string>> result;
  if (options_.max_shard_bytes == 0) {
    for (const auto& [name, shard] : weight_map_) result.emplace_back(name, shard_name(1, 0));
    finished_ = true;
    return result;
  }
  final_count_ = shards_closed_;
  for (size_t i = 1; i <= shards_closed_; ++i) {
    std::error_code ec;
    fs::rename(dir_ / shard_name(i, 0), dir_ / shard_name(i, final_count_), ec);
    if (ec) fail("cannot rename shard {} to {}: {}", shard_name(i, 0), shard_name(i, final_count_), ec.message());
  }
  nlohmann::ordered_json index;
  index["metadata"]["total_size"] = total_bytes_;
  index["weight_map"] = nlohmann::ordered_json::object();
  for (const auto& [name, shard] : weight_map_) {
    result.emplace_back(name, shard_name(shard, final_count_));
    index["weight_map"][name] = result.back().second;
  }
  // Python's json.dump(indent=2): ASCII-escaped, no trailing newline.
  write_text_file_atomic(dir_ / (options_.stem + ".safetensors.index.json"), index.dump(2, ' ', true));
  finished_ = true;
  return result;
}


// ---------------------------------------------------------------- resume

namespace {

nlohmann::json tensors_to_json(const std::vector<WrittenTensor>& tensors) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : tensors)
    out.push_back({t.name, std::string(dtype_name(t.dtype)), t.shape, t.begin, t.end});
  return out;
}

std::vector<WrittenTensor> tensors_from_json(const nlohmann::json& j) {
  std::vector<WrittenTensor> out;
  for (const auto& t : j)
  {
    std::optional<DType> dtype = parse_dtype(t.at(1).get<std::string>());
    if (!dtype) fail("unknown dtype '{}' in writer state", t.at(1).get<std::string>());
    out.push_back({t.at(0).get<std::string>(), *dtype, t.at(2).get<Shape>(), t.at(3).get<uint64_t>(),
                   t.at(4).get<uint64_t>()});
  }
  return out;
}

}  // namespace

nlohmann::json ShardedSafetensorsWriter::checkpoint() {
  if (finished_) fail("{}: sharded writer already finished", dir_.string());
  nlohmann::json state;
  state["shards_closed"] = shards_closed_;
  state["total_bytes"] = total_bytes_;
  nlohmann::json map = nlohmann::json::array();
  for (const auto& [name, shard] : weight_map_) map.push_back({name, shard});
  state["weight_map"] = std::move(map);
  if (current_) {
    SafetensorsWriterState open = current_->checkpoint();
    state["open"] = {{"reserve", open.reserve}, {"data_bytes", open.data_bytes},
                     {"tensors", tensors_to_json(open.tensors)}};
  }
  sync_folder(dir_);
  return state;
}

void ShardedSafetensorsWriter::resume(const nlohmann::json& state) {
  if (current_ || shards_closed_ > 0 || !weight_map_.empty()) fail("{}: resume() needs a fresh writer", dir_.string());
  try {
    const size_t closed = state.at("shards_closed").get<size_t>();
    // Files of this writer's stem: "<stem>.safetensors[.tmp]" or "<stem>-<i>-of-<n>.safetensors[.tmp|.tmp2]".
    const std::regex shard_re(std::regex_replace(options_.stem, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                              R"(-(\d{5})-of-(\d{5})\.safetensors(\.tmp2?)?)");
    std::map<size_t, std::vector<fs::path>> by_index;  // finished files per shard index
    std::vector<fs::path> stale;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      std::string name = entry.path().filename().string();
      std::smatch m;
      if (options_.max_shard_bytes > 0 && std::regex_match(name, m, shard_re)) {
        size_t index = std::stoul(m[1].str());
        if (m[3].matched) {  // a temporary: kept only as the open shard's (.tmp2: an unfinished rewrite)
          if (index != closed + 1 || m[2].str() != "00000" || m[3].str() != ".tmp") stale.push_back(entry.path());
        } else if (index > closed + 1) {
          stale.push_back(entry.path());
        } else {
          by_index[index].push_back(entry.path());
        }
      } else if (name == options_.stem + ".safetensors.index.json" || name == options_.stem + ".safetensors.tmp2") {
        stale.push_back(entry.path());
      }
    }
    std::error_code ec;
    for (const auto& p : stale) fs::remove(p, ec);
    for (size_t i = 1; i <= closed; ++i) {
      fs::path want = dir_ / shard_name(i, 0);
      if (fs::exists(want)) continue;
      auto it = by_index.find(i);
      if (it == by_index.end() || it->second.empty())
        fail("closed shard {} is missing", want.filename().string());
      fs::rename(it->second.front(), want);  // renamed by a finish() that did not complete
    }
    for (const auto& m : state.at("weight_map")) {
      weight_map_.emplace_back(m.at(0).get<std::string>(), m.at(1).get<size_t>());
      names_.insert(weight_map_.back().first);
    }
    total_bytes_ = state.at("total_bytes").get<uint64_t>();
    shards_closed_ = closed;
    if (state.contains("open")) {
      const auto& o = state.at("open");
      SafetensorsWriterState open{o.at("reserve").get<uint64_t>(), o.at("data_bytes").get<uint64_t>(),
                                  tensors_from_json(o.at("tensors"))};
      std::vector<fs::path> copies;
      if (auto it = by_index.find(closed + 1); it != by_index.end()) copies = it->second;
      if (options_.max_shard_bytes == 0) copies.push_back(dir_ / shard_name(1, 0));
      current_ = SafetensorsWriter::reopen(dir_ / shard_name(closed + 1, 0),
                                           shard_options(), open, copies);
      if (keep_files_) current_->keep_file();
    } else if (options_.max_shard_bytes == 0 && closed == 0) {
      fs::remove(dir_ / shard_name(1, 0), ec);
    }
    sync_folder(dir_);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed writer state: {}", dir_.string(), e.what());
  }
}

}  // namespace lwq
