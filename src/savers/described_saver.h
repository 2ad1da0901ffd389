// What the msModelSlim formats have in common: safetensors shards written in
// order, a description (tensor → type) in write order, counters, and the
// resume state of all three. ascendv1 and mindie differ only in names,
// accepted types and the description's extra entries (their own files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "savers/linear_tensors.h"
#include "savers/saver.h"

namespace lwq {

class ShardedSafetensorsWriter;

class DescribedSaver : public Saver {
 public:
  ~DescribedSaver() override;

  nlohmann::json checkpoint() final;
  void resume(const nlohmann::json& state) final;
  void keep_files_for_resume() final;
  void set_write_stage_bytes(uint64_t n) final;
  void save_float_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source) final;

 protected:
  // `stem` names the shards ("<stem>-0000i-of-0000N.safetensors", or
  // "<stem>.safetensors" when part_file_size_gb is 0).
  DescribedSaver(std::filesystem::path out_dir, int64_t part_file_size_gb, const std::string& stem);

  void add(const std::string& name, const Tensor& t, const std::string& type);
  void add(const DescribedTensor& t);  // borrowed bytes are written from where they lie
  // A tensor written without a description entry (quarot's online rotations).
  void add_undescribed(const std::string& name, const Tensor& t);
  // Closes the shards; sets summary_.files. Returns the weight map in write order.
  std::vector<std::pair<std::string, std::string>> finish_weights();
  // The format's own state beside the shared one.
  virtual void save_state(nlohmann::json& state) const = 0;
  virtual void load_state(const nlohmann::json& state) = 0;

  std::filesystem::path out_dir_;
  std::vector<std::pair<std::string, std::string>> description_;  // write order
  SaveSummary summary_;

 private:
  std::unique_ptr<ShardedSafetensorsWriter> writer_;
};

}  // namespace lwq
