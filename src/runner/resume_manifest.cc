#include "runner/resume_manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include <cstring>

#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

// Bumped whenever the meaning of the committed state changes.
constexpr int kFormat = 1;
constexpr char kManifest[] = "resume.json";
constexpr char kCalibMagic[8] = {'L', 'W', 'Q', 'C', 'A', 'L', 'I', 'B'};

nlohmann::json processor_identity(const ProcessorConfig& p) {
  nlohmann::json j = {{"type", p.type}, {"include", p.include}, {"exclude", p.exclude}};
  if (p.type == "linear_quant")
    j["qconfig"] = {{"act", describe(p.qconfig.act)}, {"act_ext", p.qconfig.act.ext},
                    {"weight", describe(p.qconfig.weight)}, {"weight_ext", p.qconfig.weight.ext}};
  nlohmann::json children = nlohmann::json::array();
  for (const auto& c : p.configs) children.push_back(processor_identity(c));
  if (!children.empty()) j["configs"] = std::move(children);
  return j;
}

nlohmann::json file_identity(const fs::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) return {{"file", file.string()}, {"missing", true}};
  return {{"file", file.filename().string()},
          {"size", static_cast<uint64_t>(st.st_size)},
          {"mtime_ns", static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec}};
}

std::string calib_file_name(int units_done) { return "calib_state_" + std::to_string(units_done) + ".bin"; }

// Streamed, so the states are never copied: they can be a large part of memory.
void write_calibration(const fs::path& file, const std::vector<std::span<const float>>& samples) {
  fs::path tmp = file;
  tmp += ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create {}: {}", tmp.string(), std::strerror(errno));
  int err = 0;
  auto put = [&](const void* src, size_t n) {
    const char* p = static_cast<const char*>(src);
    while (n > 0 && err == 0) {
      ssize_t done = ::write(fd, p, std::min<size_t>(n, 1u << 30));
      if (done < 0 && errno == EINTR) continue;
      if (done <= 0) err = done < 0 ? errno : ENOSPC;
      else p += done, n -= static_cast<size_t>(done);
    }
  };
  put(kCalibMagic, sizeof kCalibMagic);
  uint64_t count = samples.size();
  put(&count, 8);
  for (const auto& s : samples) {
    uint64_t n = s.size();
    put(&n, 8);
    put(s.data(), s.size_bytes());
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), file.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    fail("cannot write calibration state {}: {}", file.string(), std::strerror(err));
  }
}

std::vector<std::vector<float>> read_calibration(const fs::path& file, const std::vector<size_t>& expected) {
  std::string bytes = read_text_file(file);
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    if (bytes.size() - pos < n) fail("{} is truncated", file.string());
    if (n) std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  char magic[8];
  take(magic, 8);
  if (std::memcmp(magic, kCalibMagic, 8) != 0) fail("{} is not a calibration state file", file.string());
  uint64_t count = 0;
  take(&count, 8);
  if (count != expected.size()) fail("{} holds {} samples, expected {}", file.string(), count, expected.size());
  std::vector<std::vector<float>> out(count);
  for (size_t s = 0; s < count; ++s) {
    uint64_t n = 0;
    take(&n, 8);
    if (n != expected[s]) fail("{}: sample {} holds {} values, expected {}", file.string(), s, n, expected[s]);
    out[s].resize(n);
    take(out[s].data(), n * sizeof(float));
  }
  if (pos != bytes.size()) fail("{} has {} trailing bytes", file.string(), bytes.size() - pos);
  return out;
}

}  // namespace

nlohmann::json run_identity(const RunIdentityInputs& in) {
  nlohmann::json process = nlohmann::json::array();
  for (const auto& p : in.config->process) process.push_back(processor_identity(p));
  nlohmann::json save = nlohmann::json::array();
  for (const auto& s : in.config->save) save.push_back({{"type", s.type}, {"part_file_size", s.part_file_size}});
  nlohmann::json model = nlohmann::json::array();
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(in.model_path, ec))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) model.push_back(file_identity(f));
  return {{"format", kFormat},
          {"runner", std::string(to_string(in.config->runner))},
          {"process", process},
          {"save", save},
          {"model_files", model},
          {"calibration", in.calib_file.empty() ? nlohmann::json() : file_identity(in.calib_file)},
          {"max_calib_samples", in.max_calib_samples},
          {"report", in.report},
          {"full_report", in.full_report}};
}

void commit_resume_point(const fs::path& work_dir, const nlohmann::json& identity, const ResumePoint& point,
                         const std::vector<std::span<const float>>& calibration) {
  nlohmann::json manifest = {{"identity", identity},
                             {"units_done", point.units_done},
                             {"saver", point.saver},
                             {"runner", point.runner}};
  if (!calibration.empty()) {
    write_calibration(work_dir / calib_file_name(point.units_done), calibration);
    manifest["calibration_file"] = calib_file_name(point.units_done);
  }
  write_text_file_durable(work_dir / kManifest, manifest.dump());
  std::error_code ec;
  if (point.units_done > 0) fs::remove(work_dir / calib_file_name(point.units_done - 1), ec);
}

std::optional<ResumePoint> load_resume_point(const fs::path& work_dir, const nlohmann::json& identity,
                                             const std::vector<size_t>& expected_sizes, std::string& why_not) {
  const fs::path file = work_dir / kManifest;
  if (!fs::exists(file)) {
    why_not = "it holds no committed unit";
    return std::nullopt;
  }
  try {
    nlohmann::json manifest = nlohmann::json::parse(read_text_file(file));
    if (manifest.at("identity") != identity) {
      const nlohmann::json& old = manifest.at("identity");
      std::string diff;
      for (const auto& [key, value] : identity.items())
        if (!old.contains(key) || old.at(key) != value) diff += (diff.empty() ? "" : ", ") + key;
      why_not = "it was made with a different " + (diff.empty() ? std::string("lwquant version") : diff);
      return std::nullopt;
    }
    ResumePoint point;
    point.units_done = manifest.at("units_done").get<int>();
    point.saver = manifest.at("saver");
    point.runner = manifest.at("runner");
    if (!expected_sizes.empty()) {
      if (!manifest.contains("calibration_file")) {
        why_not = "it holds no calibration state";
        return std::nullopt;
      }
      point.calibration =
          read_calibration(work_dir / manifest.at("calibration_file").get<std::string>(), expected_sizes);
    }
    return point;
  } catch (const nlohmann::json::exception& e) {
    why_not = std::string("its manifest is unreadable (") + e.what() + ")";
  } catch (const Error& e) {
    why_not = e.what();
  }
  return std::nullopt;
}

void remove_resume_files(const fs::path& work_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(work_dir, ec)) {
    std::string name = e.path().filename().string();
    if (name == kManifest || name.rfind("calib_state_", 0) == 0) fs::remove(e.path(), ec);
  }
  sync_folder(work_dir);
}

}  // namespace lwq
