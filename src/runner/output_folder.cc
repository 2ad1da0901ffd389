#include "runner/output_folder.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;

namespace {

// The path with every existing prefix resolved (symlinks followed), made absolute.
fs::path resolved(const fs::path& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p), ec);
  if (ec) r = fs::absolute(p).lexically_normal();
  if (r.filename().empty()) r = r.parent_path();
  return r;
}

// True when `inner` is `outer` or lies below it (both resolved).
bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

bool written_by_lwquant(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("quant_model_description", 0) == 0 && name.size() > 5 && name.ends_with(".json")) return true;
  }
  return false;
}

bool pid_alive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

// Earlier versions named their work folders ".<name>.lwquant-tmp-<pid>" and
// the folder moved aside during commit ".<name>.lwquant-old-<pid>"; a dead
// run's are removed (an aside folder whose replacement never arrived is put
// back).
void remove_dead_runs_leftovers(const fs::path& final_path) {
  const fs::path parent = final_path.parent_path();
  const std::string base = "." + final_path.filename().string();
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    std::string name = e.path().filename().string();
    for (const std::string tag : {".lwquant-tmp-", ".lwquant-old-"}) {
      if (name.rfind(base + tag, 0) != 0) continue;
      std::string pid_text = name.substr(base.size() + tag.size());
      char* end = nullptr;
      long pid = std::strtol(pid_text.c_str(), &end, 10);
      if (pid_text.empty() || *end != '\0' || pid_alive(pid)) continue;
      std::error_code ec2;
      if (tag == ".lwquant-old-" && !fs::exists(final_path)) {
        fs::rename(e.path(), final_path, ec2);
        if (!ec2) spdlog::warn("restored {} from {}, left by a run that died while replacing it", final_path.string(),
                               e.path().string());
        continue;
      }
      fs::remove_all(e.path(), ec2);
      if (!ec2) spdlog::info("removed {}, left by a dead run (pid {})", e.path().string(), pid);
    }
  }
}

}  // namespace

void check_save_path_is_not_input(const fs::path& save_path, const fs::path& model_path) {
  const fs::path save = resolved(save_path), model = resolved(model_path);
  if (save == model)
    fail("--save_path {} is the model folder {}; choose another folder (the input is never overwritten)",
         save_path.string(), model.string());
  if (is_within(save, model))
    fail("--save_path {} lies inside the model folder {}; choose a folder outside it", save_path.string(),
         model.string());
  if (is_within(model, save))
    fail("--save_path {} contains the model folder {}; replacing it would delete the model: choose another folder",
         save_path.string(), model.string());
}

OutputFolder::OutputFolder(fs::path final_path, bool overwrite) : overwrite_(overwrite) {
  final_ = fs::absolute(final_path).lexically_normal();
  if (final_.filename().empty()) final_ = final_.parent_path();
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    if (!fs::is_directory(final_)) fail("save path {} exists and is not a folder", final_.string());
    if (!fs::is_empty(final_)) {
      if (!overwrite)
        fail("save path {} exists and is not empty; pass --overwrite to replace it (the old content is kept "
             "until the new result is complete)", final_.string());
      if (!written_by_lwquant(final_))
        fail("save path {} is not empty and holds no quant_model_description*.json: --overwrite replaces only a "
             "folder lwquant wrote; choose another folder or empty this one", final_.string());
    }
  }
  fs::path parent = final_.parent_path();
  if (!fs::exists(parent)) {
    fs::create_directories(parent, ec);
    if (ec) fail("cannot create {}: {}", parent.string(), ec.message());
  }
  if (::access(parent.c_str(), W_OK) != 0) fail("save path {}: folder {} is not writable", final_.string(), parent.string());
  remove_dead_runs_leftovers(final_);

  temp_ = parent / ("." + final_.filename().string() + ".lwquant-partial");
  found_earlier_ = fs::is_directory(temp_, ec);
  if (!found_earlier_) {
    fs::remove(temp_, ec);  // a stray file of that name
    fs::create_directory(temp_, ec);
    if (ec) fail("cannot create work folder {}: {}", temp_.string(), ec.message());
  }
  const fs::path lock = temp_ / ".lock";
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) fail("cannot create {}: {}", lock.string(), std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd_);
    lock_fd_ = -1;
    fail("another lwquant run is writing {} (its work folder {} is locked); wait for it or stop it first",
         final_.string(), temp_.string());
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0 && ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
    // The pid is informational only.
  }
}

OutputFolder::~OutputFolder() {
  if (!committed_ && !keep_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

void OutputFolder::clear() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(temp_, ec))
    if (e.path().filename() != ".lock") fs::remove_all(e.path(), ec);
  found_earlier_ = false;
}

void OutputFolder::commit() {
  std::error_code ec;
  fs::remove(temp_ / ".lock", ec);  // the descriptor keeps the lock until the rename is done
  // Loaders check modes: MindIE refuses weights or descriptions with group-write
  // or any "other" bit (ascend_loaders.md §10 rule 1: 0600/0640); msModelSlim
  // writes 0600. Owner read/write, group read.
  for (const auto& entry : fs::directory_iterator(temp_)) {
    if (!entry.is_regular_file()) continue;
    fs::permissions(entry.path(), fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read,
                    fs::perm_options::replace, ec);
    if (ec) fail("cannot set the mode of {} to 0640: {}", entry.path().string(), ec.message());
  }
  sync_folder(temp_);
  fs::path old;
  if (fs::exists(final_)) {
    if (fs::is_empty(final_)) {
      fs::remove(final_, ec);
    } else {
      if (!overwrite_) fail("save path {} appeared during the run; not replacing it", final_.string());
      old = final_.parent_path() / ("." + final_.filename().string() + ".lwquant-old-" + std::to_string(::getpid()));
      fs::rename(final_, old, ec);
      if (ec) fail("cannot move old {} aside: {}", final_.string(), ec.message());
    }
  }
  fs::rename(temp_, final_, ec);
  if (ec) {
    if (!old.empty()) fs::rename(old, final_);
    fail("cannot rename {} to {}: {}", temp_.string(), final_.string(), ec.message());
  }
  committed_ = true;
  sync_folder(final_.parent_path());
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace lwq
