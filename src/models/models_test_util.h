// Helpers shared by the models tests: golden folders and scratch copies.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "util/error.h"

namespace lwq::test {

inline std::filesystem::path golden_dir(const std::string& name) {
  return std::filesystem::path(LWQ_SOURCE_DIR) / "tests/data/goldens" / name;
}

inline std::filesystem::path stories_dir() { return std::filesystem::path(LWQ_SOURCE_DIR) / "examples/stories260K"; }

// A fresh folder under the system temp dir, removed with its contents.
struct ScratchDir {
  std::filesystem::path path;
  ScratchDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("lwq_models_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// The message of the lwq::Error `body` throws, or "(no error)".
inline std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// max |a − b| / max |b| over the whole tensor.
inline double max_rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0.0, den = 0.0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(static_cast<double>(a[i]) - b[i]));
    den = std::max(den, std::abs(static_cast<double>(b[i])));
  }
  return den > 0 ? num / den : num;
}

}  // namespace lwq::test
