#include "io/safetensors_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>

#include "io/json_strict.h"
#include "util/error.h"

namespace lwq {

using json = nlohmann::ordered_json;

struct SafetensorsFile::Handle {
  int fd = -1;          // an open file, or
  std::string memory;   // the whole file in memory (parse())
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

// A JSON value for a message, cut short: headers can be 100 MB.
std::string short_dump(const json& v) {
  std::string s = v.dump();
  if (s.size() > 120) s = s.substr(0, 117) + "...";
  return s;
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
  if (!it->is_string()) bad_entry(w, "\"dtype\" must be a string, got {}", short_dump(*it));
  const auto& name = it->get_ref<const std::string&>();
  auto dtype = parse_dtype(name);
  if (!dtype) bad_entry(w, "unknown dtype '{}' (known: {})", name.size() > 40 ? name.substr(0, 40) + "..." : name,
                        dtype_names());
  return *dtype;
}

Shape entry_shape(const json& entry, const Where& w) {
  auto it = entry.find("shape");
  if (it == entry.end()) bad_entry(w, "missing \"shape\"");
  if (!it->is_array()) bad_entry(w, "\"shape\" must be an array, got {}", short_dump(*it));
  Shape shape;
  for (const auto& d : *it) {
    // nlohmann stores non-negative integer literals as unsigned, negative
    // ones as signed, anything with a fraction or exponent as float.
    if (!d.is_number_unsigned())
      bad_entry(w, "shape {} must hold non-negative integers", short_dump(*it));
    uint64_t v = d.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad_entry(w, "shape {} has a dimension too large", short_dump(*it));
    shape.push_back(static_cast<int64_t>(v));
  }
  return shape;
}

std::pair<uint64_t, uint64_t> entry_offsets(const json& entry, const Where& w) {
  auto it = entry.find("data_offsets");
  if (it == entry.end()) bad_entry(w, "missing \"data_offsets\"");
  if (!it->is_array() || it->size() != 2 || !(*it)[0].is_number_unsigned() ||
      !(*it)[1].is_number_unsigned())
    bad_entry(w, "\"data_offsets\" must be two non-negative integers [begin, end], got {}", short_dump(*it));
  uint64_t begin = (*it)[0].get<uint64_t>(), end = (*it)[1].get<uint64_t>();
  if (begin > end) bad_entry(w, "data_offsets [{}, {}] are not ascending", begin, end);
  return {begin, end};
}

// numel × element size, or nullopt on overflow (checked at every step, as the
// reference does: a product that wraps around could otherwise match).
std::optional<uint64_t> byte_size(const Shape& shape, DType dtype) {
  uint64_t numel = 1;
  for (int64_t d : shape) {
    auto u = static_cast<uint64_t>(d);
    if (u != 0 && numel > std::numeric_limits<uint64_t>::max() / u) return std::nullopt;
    numel *= u;
  }
  const uint64_t size = dtype_size(dtype);
  if (numel != 0 && size > std::numeric_limits<uint64_t>::max() / numel) return std::nullopt;
  return numel * size;
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& file) {
  if (!value.is_object())
    fail("{}: \"__metadata__\" must be an object of strings, got {}", file, short_dump(value));
  std::map<std::string, std::string> out;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      fail("{}: \"__metadata__\" value for '{}' must be a string, got {}", file, key, short_dump(v));
    out[key] = v.get<std::string>();
  }
  return out;
}

struct Span {
  uint64_t begin, end;  // relative to the data area
  const TensorInfo* info;
};

// The reference's rule: data_offsets sorted by (begin, end) must tile the data
// area exactly, from 0 to its end, so no byte of the file is unaccounted for.
// `head` is the start of the data area (to recognise header padding).
void check_coverage(std::vector<Span> spans, uint64_t data_size, uint64_t header_len, const std::string& head,
                    const std::string& file) {
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t expected = 0;
  const Span* prev = nullptr;
  for (const Span& s : spans) {
    if (s.begin < expected)
      fail("{}: tensor '{}' overlaps tensor '{}' in the data area: data_offsets [{}, {}] begin inside [{}, {}]", file,
           s.info->name, prev->info->name, s.begin, s.end, prev->begin, prev->end);
    if (s.begin > expected) {
      if (!prev)
        fail("{}: tensor '{}': data_offsets [{}, {}] leave the first {} bytes of the data area unused; tensors must "
             "cover the data area contiguously from offset 0",
             file, s.info->name, s.begin, s.end, s.begin);
      fail("{}: tensor '{}': data_offsets [{}, {}] leave a gap of {} bytes after tensor '{}' (which ends at {}); "
           "tensors must cover the data area contiguously",
           file, s.info->name, s.begin, s.end, s.begin - expected, prev->info->name, expected);
    }
    expected = s.end;
    prev = &s;
  }
  if (expected != data_size) {
    const uint64_t extra = data_size - expected;
    std::string hint;
    // A length prefix cut short by k bytes moves k bytes of the header's
    // space padding into the data area and leaves k bytes after the last tensor.
    if (!head.empty() && extra <= head.size() &&
        std::all_of(head.begin(), head.begin() + static_cast<std::ptrdiff_t>(extra), [](char c) { return c == ' '; }))
      hint = fmt::format("; the data area starts with {} spaces: the header length {} looks {} bytes short", extra,
                         header_len, extra);
    if (!prev)
      fail("{}: {} bytes follow a header that lists no tensors: expected the file to end after the header{}", file,
           extra, hint);
    fail("{}: {} trailing bytes after the last tensor ('{}' ends at {} of a {}-byte data area): the data_offsets must "
         "end exactly at the end of the file{}",
         file, extra, prev->info->name, expected, data_size, hint);
  }
}

}  // namespace

void SafetensorsFile::read_at(void* dst, uint64_t n, uint64_t offset, const std::string& what) const {
  if (n == 0) return;  // dst may be null (an empty std::vector): no memcpy/pread with it
  const Handle& h = *handle_;
  if (h.fd >= 0) return pread_exact(h.fd, dst, n, offset, what);
  if (offset > h.memory.size() || n > h.memory.size() - offset)
    fail("{}: unexpected end of file at byte {} ({} bytes missing)", what, offset, n);
  std::memcpy(dst, h.memory.data() + offset, n);
}

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
  f.load_header();
  return f;
}

SafetensorsFile SafetensorsFile::parse(std::string bytes, const std::string& name) {
  SafetensorsFile f;
  f.path_ = name;
  auto handle = std::make_shared<Handle>();
  handle->memory = std::move(bytes);
  f.file_size_ = handle->memory.size();
  f.handle_ = handle;
  f.load_header();
  return f;
}

void SafetensorsFile::load_header() {
  const std::string file = path_.string();
  if (file_size_ < 8)
    fail("{}: file is too short ({} bytes) to be a safetensors file (needs an 8-byte header length)", file,
         file_size_);
  uint8_t len_bytes[8];
  read_at(len_bytes, 8, 0, file);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len_bytes[i];
  if (header_len > kMaxSafetensorsHeaderBytes)
    fail("{}: header length {} exceeds the limit of {} bytes (not a safetensors file?)", file, header_len,
         kMaxSafetensorsHeaderBytes);
  if (header_len > file_size_ - 8)
    fail("{}: header length {} goes beyond the end of the file ({} bytes)", file, header_len, file_size_);
  data_start_ = 8 + header_len;
  const uint64_t data_size = file_size_ - data_start_;

  std::string text(header_len, '\0');
  read_at(text.data(), header_len, 8, file);
  // Exactly one JSON value filling the declared length (trailing whitespace
  // allowed: writers pad with spaces to 8-byte alignment); keys unique.
  json header = parse_json_strict(
      text, fmt::format("{}: header (the {} bytes declared by the length prefix)", file, header_len));
  if (!header.is_object()) fail("{}: header must be a JSON object, got {}", file, header.type_name());

  std::vector<Span> spans;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      metadata_ = parse_metadata(entry, file);
      continue;
    }
    Where w{file, name};
    if (!entry.is_object()) bad_entry(w, "entry must be an object, got {}", short_dump(entry));
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
    info.offset = data_start_ + begin;
    info.nbytes = end - begin;
    by_name_.emplace(name, tensors_.size());
    tensors_.push_back(std::move(info));
    spans.push_back({begin, end, nullptr});
  }
  for (size_t i = 0; i < spans.size(); ++i) spans[i].info = &tensors_[i];
  std::string head(static_cast<size_t>(std::min<uint64_t>(data_size, 64)), '\0');
  read_at(head.data(), head.size(), data_start_, file);
  check_coverage(std::move(spans), data_size, header_len, head, file);
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
  if (info.nbytes == 0) return;  // zero-element tensor: nothing to read, dst may be null
  read_at(dst, info.nbytes, info.offset, fmt::format("{} (tensor '{}')", path_.string(), info.name));
}

Tensor SafetensorsFile::read_slice(const TensorInfo& info, int64_t index) const {
  if (!handle_) fail("safetensors file {} is not open", path_.string());
  if (info.shape.empty() || index < 0 || index >= info.shape[0])
    fail("{}: slice {} of tensor '{}' (shape {}) does not exist", path_.string(), index, info.name,
         shape_str(info.shape));
  Tensor t(info.dtype, Shape(info.shape.begin() + 1, info.shape.end()));
  const uint64_t n = t.nbytes();
  read_at(t.bytes.data(), n, info.offset + static_cast<uint64_t>(index) * n,
          fmt::format("{} (tensor '{}', slice {})", path_.string(), info.name, index));
  return t;
}

void SafetensorsFile::read_rows(const TensorInfo& info, int64_t begin, int64_t count, void* dst) const {
  if (!handle_) fail("safetensors file {} is not open", path_.string());
  if (info.shape.empty() || begin < 0 || count < 0 || begin > info.shape[0] - count)
    fail("{}: rows {}..{} of tensor '{}' (shape {}) do not exist", path_.string(), begin, begin + count, info.name,
         shape_str(info.shape));
  const uint64_t row = info.shape[0] > 0 ? info.nbytes / static_cast<uint64_t>(info.shape[0]) : 0;
  read_at(dst, row * static_cast<uint64_t>(count), info.offset + static_cast<uint64_t>(begin) * row,
          fmt::format("{} (tensor '{}', rows {}..{})", path_.string(), info.name, begin, begin + count));
}

MappedBytes SafetensorsFile::map_range(const TensorInfo& info, uint64_t byte_offset, uint64_t n, bool populate) const {
  if (!handle_) fail("safetensors file {} is not open", path_.string());
  if (byte_offset > info.nbytes || n > info.nbytes - byte_offset)
    fail("{}: bytes {}..{} are outside tensor '{}' ({} bytes)", path_.string(), byte_offset, byte_offset + n, info.name,
         info.nbytes);
  const Handle& h = *handle_;
  const uint64_t at = info.offset + byte_offset;
  if (h.fd < 0) return MappedBytes::borrow(reinterpret_cast<const uint8_t*>(h.memory.data()) + at, n);
  return MappedBytes::map(h.fd, at, n, populate, fmt::format("{} (tensor '{}')", path_.string(), info.name));
}

}  // namespace lwq
