// Reading one .safetensors file: the header is parsed and fully validated at
// open; tensor bytes are read on demand with pread, one tensor at a time, so
// a reader never touches (or pages in) tensors it does not ask for.
//
// Validation is as strict as the reference `safetensors` library (Rust core of
// the Python package): the 8-byte length must delimit exactly one JSON object
// (trailing spaces inside it are the writers' alignment padding), at most
// 100 MB; object keys are unique; "__metadata__" maps strings to strings;
// every tensor's dtype × shape equals its byte count (overflow-checked); and
// the tensors' data_offsets, sorted, tile the data area from 0 to the end of
// the file with no gap, no overlap and no trailing bytes. Zero-element tensors
// ([k, k]) are accepted and read as empty. Every violation is one lwq::Error
// naming the file, the tensor and what was expected.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/mapped_bytes.h"
#include "tensor/dtype.h"
#include "tensor/tensor.h"

namespace lwq {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t offset = 0;  // absolute byte offset in the file
  uint64_t nbytes = 0;
};

// Largest header accepted, as in the reference implementation (100 MB).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::filesystem::path& path);
  // The same validation over a whole file held in memory (fuzzers, tests):
  // `name` stands for the file in messages; read() copies from `bytes`.
  static SafetensorsFile parse(std::string bytes, const std::string& name);

  const std::filesystem::path& path() const { return path_; }
  // In the order of the header's JSON object.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(std::string_view name) const;
  // Throws naming the file and the tensor when absent.
  const TensorInfo& info(std::string_view name) const;
  Tensor read(std::string_view name) const;
  Tensor read(const TensorInfo& info) const;
  // Reads exactly info.nbytes into dst; a short read or I/O error throws.
  void read_into(const TensorInfo& info, void* dst) const;
  // Element `index` along the first dimension (shape = info.shape[1:]): one
  // expert of a fused [E, ...] tensor, without reading the others.
  Tensor read_slice(const TensorInfo& info, int64_t index) const;
  // Rows [begin, begin + count) along the first dimension, into `dst`.
  void read_rows(const TensorInfo& info, int64_t begin, int64_t count, void* dst) const;
  // Bytes [byte_offset, byte_offset + n) of the tensor's data, mapped rather
  // than copied (io/mapped_bytes.h); throws when the range is outside it.
  MappedBytes map_range(const TensorInfo& info, uint64_t byte_offset, uint64_t n, bool populate) const;
  // "__metadata__" (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return file_size_; }
  uint64_t data_start() const { return data_start_; }  // 8 + header length

 private:
  struct Handle;       // the open file, or the bytes given to parse()
  void load_header();  // validates the header; file_size_ and handle_ set
  // Exactly n bytes at `offset` (n == 0: nothing, dst may be null).
  void read_at(void* dst, uint64_t n, uint64_t offset, const std::string& what) const;

  std::filesystem::path path_;
  std::shared_ptr<const Handle> handle_;  // shared: copies read through one fd
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
  uint64_t file_size_ = 0;
  uint64_t data_start_ = 0;
};

}  // namespace lwq
