#include "io/safetensors_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>

#include "io/json_strict.h"
#include "util/error.h"

namespace lwq {

using json = nlohmann::ordered_json;

struct SafetensorsFile::Handle {
  int fd = -1;
  ~Handle() {
    if (fd >= 0) ::close(fd);
  }
};

namespace {

// Reads exactly n bytes at `offset`; `what` names the file for errors.
void pread_exact(int fd, void* dst, uint64_t n, uint64_t offset, const std::string& what) {
  auto* out = static_cast<uint8_t*>(dst);
  while (n > 0) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      fail("{}: read error at byte {}: {}", what, offset, std::strerror(errno));
    }
    if (got == 0) fail("{}: unexpected end of file at byte {} ({} bytes missing)", what, offset, n);
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

struct Where {
  const std::string& file;
  const std::string& tensor;
};

template <typename... Args>
[[noreturn]] void bad_entry(const Where& w, fmt::format_string<Args...> format, Args&&... args) {
  fail("{}: tensor '{}': {}", w.file, w.tensor, fmt::format(format, std::forward<Args>(args)...));
}

DType entry_dtype(const json& entry, const Where& w) {
  auto it = entry.find("dtype");
  if (it == entry.end()) bad_entry(w, "missing \"dtype\"");
  if (!it->is_string()) bad_entry(w, "\"dtype\" must be a string, got {}", it->dump());
  const auto& name = it->get_ref<const std::string&>();
  auto dtype = parse_dtype(name);
  if (!dtype) bad_entry(w, "unknown dtype '{}' (known: {})", name, dtype_names());
  return *dtype;
}

Shape entry_shape(const json& entry, const Where& w) {
  auto it = entry.find("shape");
  if (it == entry.end()) bad_entry(w, "missing \"shape\"");
  if (!it->is_array()) bad_entry(w, "\"shape\" must be an array, got {}", it->dump());
  Shape shape;
  for (const auto& d : *it) {
    // nlohmann stores non-negative integer literals as unsigned, negative
    // ones as signed, anything with a fraction or exponent as float.
    if (!d.is_number_unsigned())
      bad_entry(w, "shape {} must hold non-negative integers", it->dump());
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad_entry(w, "shape {} has a dimension too large", it->dump());
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

std::pair<uint64_t, uint64_t> entry_offsets(const json& entry, const Where& w) {
  auto it = entry.find("data_offsets");
  if (it == entry.end()) bad_entry(w, "missing \"data_offsets\"");
  if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_unsigned() ||
      !(*it)[1].is_number_unsigned())
    bad_entry(w, "\"data_offsets\" must be two non-negative integers [begin, end], got {}", it->dump());
  uint64_t begin = (*it)[0].get<uint64_t>(), end = (*it)[1].get<uint64_t>();
  if (begin > end) bad_entry(w, "data_offsets [{}, {}] are not ascending", begin, end);
  return {begin, end};
}

// numel × element size, or nullopt on overflow.
std::optional<uint64_t> byte_size(const Shape& shape, DType dtype) {
  uint64_t n = dtype_size(dtype);
  for (int64_t d : shape) {
    auto u = static_cast<uint64_t>(d);
    if (u != 0 && n > std::numeric_limits<uint64_t>::max() / u) return std::nullopt;
    n *= u;
  }
  return n;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& file) {
  if (!value.is_object()) fail("{}: \"__metadata__\" must be an object of strings", file);
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) fail("{}: \"__metadata__\" value for '{}' must be a string, got {}", file, key, v.dump());
    out[key] = v.get<std::string>();
  }
  return out;
}

// Entries sorted by offset must not share bytes (empty tensors own none).
void check_no_overlap(const std::vector<TensorInfo>& tensors, const std::string& file) {
  std::vector<const TensorInfo*> sorted;
  for (const auto& t : tensors)
    if (t.nbytes > 0) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    const TensorInfo& prev = *sorted[i - 1];
    if (sorted[i]->offset < prev.offset + prev.nbytes)
      fail("{}: tensor '{}' overlaps tensor '{}' in the data area", file, sorted[i]->name, prev.name);
  }
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::filesystem::path& path) {
  SafetensorsFile f;
  f.path_ = path;
  const std::string file = path.string();
  auto handle = std::make_shared<Handle>();
  handle->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (handle->fd < 0) fail("cannot open {}: {}", file, std::strerror(errno));
  struct stat st {};
  if (::fstat(handle->fd, &st) != 0) fail("cannot stat {}: {}", file, std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail("{} is not a regular file", file);
  f.file_size_ = static_cast<uint64_t>(st.st_size);
  f.handle_ = handle;

  if (f.file_size_ < 8)
    fail("{}: file is too short ({} bytes) to be a safetensors file (needs an 8-byte header length)", file,
         f.file_size_);
  uint8_t len_bytes[8];
  pread_exact(handle->fd, len_bytes, 8, 0, file);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail("{}: header length {} exceeds the limit of {} bytes (not a safetensors file?)", file, header_len,
         kMaxSafetensorsHeaderBytes);
  if (header_len > f.file_size_ - 8)
    fail("{}: header length {} goes beyond the end of the file ({} bytes)", file, header_len, f.file_size_);
  f.data_start_ = 8 + header_len;
  const uint64_t data_size = f.file_size_ - f.data_start_;

  std::string text(header_len, '\0');
  pread_exact(handle->fd, text.data(), header_len, 8, file);
  json header = parse_json_strict(text, file + ": header");
  if (!header.is_object()) fail("{}: header must be a JSON object, got {}", file, header.type_name());

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      f.metadata_ = parse_metadata(entry, file);
      continue;
    }
    Where w{file, name};
    if (!entry.is_object()) bad_entry(w, "entry must be an object, got {}", entry.dump());
    TensorInfo info;
    info.name = name;
    info.dtype = entry_dtype(entry, w);
    info.shape = entry_shape(entry, w);
    auto [begin, end] = entry_offsets(entry, w);
    if (end > data_size)
      bad_entry(w, "data_offsets [{}, {}] lie outside the data area ({} bytes)", begin, end, data_size);
    auto expected = byte_size(info.shape, info.dtype);
    if (!expected || *expected != end - begin)
      bad_entry(w, "data_offsets [{}, {}] span {} bytes but shape {} of {} needs {}", begin, end, end - begin,
                shape_str(info.shape), dtype_name(info.dtype),
                expected ? fmt::to_string(*expected) : std::string("more than 2^64"));
    info.offset = f.data_start_ + begin;
    info.nbytes = end - begin;
    f.by_name_.emplace(name, f.tensors_.size());
    f.tensors_.push_back(std::move(info));
  }
  check_no_overlap(f.tensors_, file);
  return f;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  auto it = by_name_.find(std::string(name));
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::info(std::string_view name) const {
  const TensorInfo* info = find(name);
  if (!info) fail("tensor '{}' not found in {}", name, path_.string());
  return *info;
}

Tensor SafetensorsFile::read(std::string_view name) const { return read(info(name)); }

Tensor SafetensorsFile::read(const TensorInfo& info) const {
  Tensor t;
  t.dtype = info.dtype;
  t.shape = info.shape;
  t.bytes.resize(info.nbytes);
  read_into(info, t.bytes.data());
  return t;
}

void SafetensorsFile::read_into(const TensorInfo& info, void* dst) const {
  if (!handle_) fail("safetensors file {} is not open", path_.string());
  pread_exact(handle_->fd, dst, info.nbytes, info.offset, fmt::format("{} (tensor '{}')", path_.string(), info.name));
}

}  // namespace lwq
