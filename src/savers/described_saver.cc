#include "savers/described_saver.h"

#include "io/safetensors_writer.h"
#include "util/error.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {
constexpr uint64_t kGiB = 1073741824ull;
}

DescribedSaver::DescribedSaver(fs::path out_dir, int64_t part_file_size_gb, const std::string& stem)
    : out_dir_(std::move(out_dir)) {
  if (part_file_size_gb < 0) fail("part_file_size must be >= 0, got {}", part_file_size_gb);
  ShardedWriterOptions opts;
  opts.stem = stem;
  opts.max_shard_bytes = static_cast<uint64_t>(part_file_size_gb) * kGiB;
  writer_ = std::make_unique<ShardedSafetensorsWriter>(out_dir_, opts);
}

DescribedSaver::~DescribedSaver() = default;

void DescribedSaver::add(const std::string& name, const Tensor& t, const std::string& type) {
  add_undescribed(name, t);
  description_.emplace_back(name, type);
}

void DescribedSaver::add_undescribed(const std::string& name, const Tensor& t) {
  writer_->add(name, t);
  summary_.tensors += 1;
  summary_.bytes += t.nbytes();
}

void DescribedSaver::save_float_rows(const std::string& name, DType dtype, const Shape& shape,
                                     const RowSource& source) {
  writer_->add_rows(name, dtype, shape, source);
  description_.emplace_back(name, "FLOAT");
  summary_.tensors += 1;
  summary_.bytes += static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
}

void DescribedSaver::add(const DescribedTensor& t) {
  const Tensor& shape_of = t.tensor;
  const uint64_t nbytes = static_cast<uint64_t>(shape_numel(shape_of.shape)) * dtype_size(shape_of.dtype);
  writer_->add(t.name, shape_of.dtype, shape_of.shape, t.bytes());
  description_.emplace_back(t.name, t.type);
  summary_.tensors += 1;
  summary_.bytes += nbytes;
}

std::vector<std::pair<std::string, std::string>> DescribedSaver::finish_weights() {
  auto weight_map = writer_->finish();
  summary_.files = 0;
  std::string last_file;
  for (const auto& [tensor, file] : weight_map)
    if (summary_.files == 0 || file != last_file) ++summary_.files, last_file = file;
  return weight_map;
}

nlohmann::json DescribedSaver::checkpoint() {
  nlohmann::json state;
  state["writer"] = writer_->checkpoint();
  state["description"] = description_;
  state["tensors"] = summary_.tensors;
  state["bytes"] = summary_.bytes;
  save_state(state);
  return state;
}

void DescribedSaver::keep_files_for_resume() { writer_->keep_files(); }

void DescribedSaver::set_write_stage_bytes(uint64_t n) { writer_->set_direct_stage_bytes(n); }

void DescribedSaver::resume(const nlohmann::json& state) {
  try {
    writer_->resume(state.at("writer"));
    description_ = state.at("description").get<std::vector<std::pair<std::string, std::string>>>();
    summary_.tensors = state.at("tensors").get<size_t>();
    summary_.bytes = state.at("bytes").get<uint64_t>();
    load_state(state);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed saver state: {}", out_dir_.string(), e.what());
  }
}

}  // namespace lwq
