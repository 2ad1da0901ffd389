#include "io/checkpoint.h"

#include <algorithm>
#include <map>

#include "io/json_strict.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Regular files in `dir` whose names end with `suffix`, sorted by name.
std::vector<fs::path> files_ending_with(const fs::path& dir, std::string_view suffix) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && ends_with(e.path().filename().string(), suffix)) out.push_back(e.path());
  }
  if (ec) fail("cannot list model folder {}: {}", dir.string(), ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::string join_names(const std::vector<fs::path>& paths) {
  std::string s;
  for (const auto& p : paths) s += (s.empty() ? "" : ", ") + p.filename().string();
  return s;
}

// Shard names come from a file we do not control: keep them inside the folder.
void check_shard_name(const std::string& name, const std::string& index) {
  fs::path p(name);
  if (name.empty() || p.is_absolute() || p.has_parent_path() || name == "." || name == "..")
    fail("{}: weight_map names shard '{}', expected a plain file name in the same folder", index, name);
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("model folder {} does not exist", path.string());
  if (fs::is_regular_file(path, ec)) {
    const std::string name = path.filename().string();
    if (ends_with(name, ".safetensors.index.json")) return open_sharded(path);
    if (ends_with(name, ".safetensors")) return open_single(path);
    fail("{} is neither a .safetensors file nor a .safetensors.index.json file", path.string());
  }
  if (!fs::is_directory(path, ec)) fail("model path {} is neither a folder nor a file", path.string());

  Checkpoint c;
  if (fs::is_regular_file(path / "model.safetensors", ec)) {
    c = open_single(path / "model.safetensors");
  } else if (auto indexes = files_ending_with(path, ".safetensors.index.json"); !indexes.empty()) {
    if (indexes.size() > 1)
      fail("model folder {} has several index files ({}); expected one", path.string(), join_names(indexes));
    c = open_sharded(indexes[0]);
  } else {
    auto files = files_ending_with(path, ".safetensors");
    if (files.empty())
      fail("model folder {} contains no weights: expected model.safetensors, a *.safetensors.index.json "
           "or a single *.safetensors file",
           path.string());
    if (files.size() > 1)
      fail("model folder {} has several .safetensors files ({}) but no *.safetensors.index.json listing them",
           path.string(), join_names(files));
    c = open_single(files[0]);
  }
  c.path_ = path;
  return c;
}

Checkpoint Checkpoint::open_single(const fs::path& file) {
  Checkpoint c;
  c.path_ = file;
  c.files_.push_back(SafetensorsFile::open(file));
  c.add_file_tensors(0);
  return c;
}

void Checkpoint::add_file_tensors(size_t file_index) {
  const auto& tensors = files_[file_index].tensors();
  for (size_t i = 0; i < tensors.size(); ++i) {
    entries_.emplace(tensors[i].name, Entry{file_index, i});
    order_.push_back(tensors[i].name);
  }
}

Checkpoint Checkpoint::open_sharded(const fs::path& index_path) {
  const std::string index = index_path.string();
  nlohmann::ordered_json doc = parse_json_strict(read_text_file(index_path), index);
  if (!doc.is_object()) fail("{}: expected a JSON object with \"weight_map\"", index);
  auto wm = doc.find("weight_map");
  if (wm == doc.end() || !wm->is_object()) fail("{}: missing \"weight_map\" object", index);

  Checkpoint c;
  c.path_ = index_path;
  const fs::path dir = index_path.parent_path();
  std::map<std::string, size_t> file_by_name;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) fail("{}: weight_map entry '{}' must be a file name, got {}", index, tensor, shard.dump());
    const std::string& shard_name = shard.get_ref<const std::string&>();
    auto it = file_by_name.find(shard_name);
    if (it == file_by_name.end()) {
      check_shard_name(shard_name, index);
      fs::path shard_path = dir / shard_name;
      std::error_code ec;
      if (!fs::is_regular_file(shard_path, ec))
        fail("{}: shard {} (holding tensor '{}') does not exist", index, shard_path.string(), tensor);
      c.files_.push_back(SafetensorsFile::open(shard_path));
      it = file_by_name.emplace(shard_name, c.files_.size() - 1).first;
    }
    const SafetensorsFile& f = c.files_[it->second];
    const TensorInfo* info = f.find(tensor);
    if (!info)
      fail("tensor '{}' is listed in {} but missing from shard {}", tensor, index, f.path().string());
    c.entries_.emplace(tensor, Entry{it->second, static_cast<size_t>(info - f.tensors().data())});
    c.order_.push_back(tensor);
  }
  return c;
}

std::vector<std::string> Checkpoint::tensor_names() const { return order_; }

bool Checkpoint::contains(std::string_view name) const { return entries_.count(std::string(name)) > 0; }

const Checkpoint::Entry& Checkpoint::entry(std::string_view name) const {
  auto it = entries_.find(std::string(name));
  if (it == entries_.end()) fail("tensor '{}' not found in checkpoint {}", name, path_.string());
  return it->second;
}

const TensorInfo& Checkpoint::info(std::string_view name) const {
  const Entry& e = entry(name);
  return files_[e.file].tensors()[e.tensor];
}

Tensor Checkpoint::read(std::string_view name) const {
  const Entry& e = entry(name);
  return files_[e.file].read(files_[e.file].tensors()[e.tensor]);
}

void Checkpoint::read_into(std::string_view name, void* dst) const {
  const Entry& e = entry(name);
  files_[e.file].read_into(files_[e.file].tensors()[e.tensor], dst);
}

Tensor Checkpoint::read_slice(std::string_view name, int64_t index) const {
  const Entry& e = entry(name);
  return files_[e.file].read_slice(files_[e.file].tensors()[e.tensor], index);
}

void Checkpoint::read_rows(std::string_view name, int64_t begin, int64_t count, void* dst) const {
  const Entry& e = entry(name);
  files_[e.file].read_rows(files_[e.file].tensors()[e.tensor], begin, count, dst);
}

MappedBytes Checkpoint::map_range(std::string_view name, uint64_t byte_offset, uint64_t n, bool populate) const {
  const Entry& e = entry(name);
  return files_[e.file].map_range(files_[e.file].tensors()[e.tensor], byte_offset, n, populate);
}

const fs::path& Checkpoint::file_of(std::string_view name) const { return files_[entry(name).file].path(); }

uint64_t Checkpoint::total_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, e] : entries_) total += files_[e.file].tensors()[e.tensor].nbytes;
  return total;
}

}  // namespace lwq
