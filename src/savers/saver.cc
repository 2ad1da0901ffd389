#include "savers/saver.h"

#include "config/quant_config.h"
#include "savers/ascendv1_saver.h"
#include "savers/mindie_saver.h"
#include "util/error.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

// Several savers of one spec.save list: every call goes to each in order; the
// summary is the first saver's (the files of the others are counted in).
class FanOutSaver : public Saver {
 public:
  explicit FanOutSaver(std::vector<std::unique_ptr<Saver>> savers) : savers_(std::move(savers)) {}

  void save_float(const std::string& name, const Tensor& t) override {
    for (auto& s : savers_) s->save_float(name, t);
  }
  void save_float_rows(const std::string& name, DType dtype, const Shape& shape, const RowSource& source) override {
    for (auto& s : savers_) s->save_float_rows(name, dtype, shape, source);  // the rows are produced again for each
  }
  void save_linear(const QuantizedLinear& q) override {
    for (auto& s : savers_) s->save_linear(q);
  }
  void note_float_linear() override {
    for (auto& s : savers_) s->note_float_linear();
  }
  void set_description_optional(const nlohmann::ordered_json& optional) override {
    for (auto& s : savers_) s->set_description_optional(optional);
  }
  void untie_word_embeddings() override {
    for (auto& s : savers_) s->untie_word_embeddings();
  }
  void save_online_rotation(const std::string& linear, const KroneckerRotation& r, int64_t max_tp_size) override {
    for (auto& s : savers_) s->save_online_rotation(linear, r, max_tp_size);
  }
  SaveSummary finish(const fs::path& model_dir) override {
    SaveSummary total;
    for (size_t i = 0; i < savers_.size(); ++i) {
      SaveSummary s = savers_[i]->finish(model_dir);
      if (i == 0) total.model_quant_type = s.model_quant_type;
      total.tensors += s.tensors;
      total.bytes += s.bytes;
      total.files += s.files;
    }
    return total;
  }
  nlohmann::json checkpoint() override {
    nlohmann::json states = nlohmann::json::array();
    for (auto& s : savers_) states.push_back(s->checkpoint());
    return states;
  }
  void resume(const nlohmann::json& state) override {
    if (!state.is_array() || state.size() != savers_.size())
      fail("malformed saver state: expected the states of {} savers", savers_.size());
    for (size_t i = 0; i < savers_.size(); ++i) savers_[i]->resume(state[i]);
  }
  void set_write_stage_bytes(uint64_t n) override {
    for (auto& s : savers_) s->set_write_stage_bytes(n);
  }
  void keep_files_for_resume() override {
    for (auto& s : savers_) s->keep_files_for_resume();
  }

 private:
  std::vector<std::unique_ptr<Saver>> savers_;
};

std::unique_ptr<Saver> make_one(const SaverConfig& c, const fs::path& out_dir, DType model_dtype) {
  if (c.type == "ascendv1_saver") return std::make_unique<AscendV1Saver>(out_dir, c.part_file_size, model_dtype);
  if (c.type == "mindie_format_saver") return std::make_unique<MindieSaver>(out_dir, c.part_file_size);
  fail("{}: save type '{}' has no saver in lwquant", c.yaml_path, c.type);
}

}  // namespace

std::unique_ptr<Saver> make_saver(const std::vector<SaverConfig>& configs, const fs::path& out_dir,
                                  DType model_dtype) {
  if (configs.empty()) return std::make_unique<AscendV1Saver>(out_dir, 4, model_dtype);
  if (configs.size() == 1) return make_one(configs.front(), out_dir, model_dtype);
  std::vector<std::unique_ptr<Saver>> savers;
  for (const auto& c : configs) savers.push_back(make_one(c, out_dir, model_dtype));
  return std::make_unique<FanOutSaver>(std::move(savers));
}

}  // namespace lwq
