// A model's weights as one name -> tensor mapping, whether they sit in one
// .safetensors file or in shards listed by a *.safetensors.index.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/safetensors_reader.h"
#include "tensor/tensor.h"

namespace lwq {

class Checkpoint {
 public:
  // `path` is one of: a folder with model.safetensors; a folder with one
  // <anything>.safetensors.index.json (sharded, "weight_map"); a folder with
  // exactly one *.safetensors; a .safetensors file; a .safetensors.index.json file.
  static Checkpoint open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  // Index order for sharded checkpoints, header order otherwise.
  std::vector<std::string> tensor_names() const;
  size_t size() const { return order_.size(); }
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;  // throws when absent
  Tensor read(std::string_view name) const;             // reads only that tensor
  void read_into(std::string_view name, void* dst) const;
  // Element `index` along the first dimension of tensor `name`.
  Tensor read_slice(std::string_view name, int64_t index) const;
  // Rows [begin, begin + count) along the first dimension, into `dst`.
  void read_rows(std::string_view name, int64_t begin, int64_t count, void* dst) const;
  // Bytes [byte_offset, byte_offset + n) of tensor `name`, mapped (SafetensorsFile::map_range).
  MappedBytes map_range(std::string_view name, uint64_t byte_offset, uint64_t n, bool populate) const;
  uint64_t total_bytes() const;
  // The file holding `name` (throws when absent).
  const std::filesystem::path& file_of(std::string_view name) const;
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  struct Entry {
    size_t file;    // index into files_
    size_t tensor;  // index into files_[file].tensors()
  };
  const Entry& entry(std::string_view name) const;
  void add_file_tensors(size_t file_index);
  static Checkpoint open_sharded(const std::filesystem::path& index_path);
  static Checkpoint open_single(const std::filesystem::path& file);

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;
  std::vector<std::string> order_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace lwq
