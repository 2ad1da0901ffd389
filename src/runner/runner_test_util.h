// Shared fixtures of the runner tests: temp folders, configs, output readers.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <set>
#include <string>

#include "config/quant_config.h"
#include "io/checkpoint.h"
#include "io/safetensors_writer.h"
#include "util/error.h"
#include "runner/quant_runner.h"
#include "util/file_util.h"

namespace lwq::testing_util {

namespace fs = std::filesystem;

inline fs::path repo() { return LWQ_SOURCE_DIR; }
inline fs::path stories() { return repo() / "examples" / "stories260K"; }

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() / ("lwq_runner_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

inline QuantJob make_job(const fs::path& model, const fs::path& save, const std::string& config_file,
                         int max_samples = 6) {
  QuantJob job;
  job.model_path = model;
  job.save_path = save;
  job.config = load_service_config(config_file);
  job.builtin_calib_dir = repo() / "calib";
  job.max_calib_samples = max_samples;
  return job;
}

inline QuantJob make_job_yaml(const fs::path& model, const fs::path& save, const std::string& yaml,
                              int max_samples = 6) {
  QuantJob job;
  job.model_path = model;
  job.save_path = save;
  job.config = parse_service_config(yaml, "test.yaml");
  job.builtin_calib_dir = repo() / "calib";
  job.max_calib_samples = max_samples;
  return job;
}

inline fs::path golden(const std::string& name) { return repo() / "tests/data/goldens" / name; }

// The golden's weights and config with the stories260K tokenizer (vocab 512 both: the MoE goldens).
inline fs::path with_tokenizer(const fs::path& model, const fs::path& to) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(model))
    if (e.path().filename() != "reference.safetensors") fs::copy_file(e.path(), to / e.path().filename());
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(stories() / f, to / f);
  return to;
}

// A process-list entry: static W8A8 (per-tensor asymmetric activations,
// per-channel symmetric weights) on every Linear; append `exclude:` lines.
inline constexpr const char* kW8A8Static = R"(
    - type: linear_quant
      qconfig:
        act: {scope: per_tensor, dtype: int8, symmetric: false, method: minmax}
        weight: {scope: per_channel, dtype: int8, symmetric: true, method: minmax}
)";

inline nlohmann::ordered_json read_json(const fs::path& p) {
  return nlohmann::ordered_json::parse(read_text_file(p));
}

// A copy of a model folder whose config.json is edited by `edit`.
template <typename Edit>
fs::path copy_model(const fs::path& from, const fs::path& to, Edit edit) {
  fs::create_directories(to);
  for (const auto& e : fs::directory_iterator(from))
    if (e.is_regular_file()) fs::copy_file(e.path(), to / e.path().filename());
  auto cfg = read_json(to / "config.json");
  edit(cfg);
  std::ofstream(to / "config.json") << cfg.dump(2);
  return to;
}

// A copy of a single-file model folder whose tensor `name` is changed by
// `edit` (given and returning the tensor; dtype and shape may change).
template <typename Edit>
fs::path copy_model_with_tensor(const fs::path& from, const fs::path& to, const std::string& name, Edit edit) {
  copy_model(from, to, [](auto&) {});
  Checkpoint ckpt = Checkpoint::open(from / "model.safetensors");
  fs::remove(to / "model.safetensors");
  SafetensorsWriter w(to / "model.safetensors");
  for (const auto& n : ckpt.tensor_names()) w.add(n, n == name ? edit(ckpt.read(n)) : ckpt.read(n));
  w.finish();
  return to;
}

// Every regular file of `a` equals the same file of `b`, and both hold the same names.
inline void expect_same_folder(const fs::path& a, const fs::path& b) {
  std::set<std::string> names_a, names_b;
  for (const auto& e : fs::directory_iterator(a)) names_a.insert(e.path().filename().string());
  for (const auto& e : fs::directory_iterator(b)) names_b.insert(e.path().filename().string());
  EXPECT_EQ(names_a, names_b);
  for (const auto& n : names_a) {
    if (!names_b.count(n)) continue;
    if (fs::is_directory(a / n)) {
      expect_same_folder(a / n, b / n);  // optional/ (quarot)
      continue;
    }
    EXPECT_TRUE(read_text_file(a / n) == read_text_file(b / n)) << n << " differs";
  }
}

// Expects `body` to throw lwq::Error whose message holds every one of `parts`.
inline void expect_error(const std::function<void()>& body, std::initializer_list<std::string> parts) {
  try {
    body();
    FAIL() << "expected an error";
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace lwq::testing_util
