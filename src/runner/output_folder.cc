#include "runner/output_folder.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <string>

#include "util/error.h"

namespace lwq {
namespace fs = std::filesystem;

OutputFolder::OutputFolder(fs::path final_path, bool overwrite) : overwrite_(overwrite) {
  final_ = fs::absolute(final_path).lexically_normal();
  if (final_.filename().empty()) final_ = final_.parent_path();
  std::error_code ec;
  if (fs::exists(final_, ec)) {
    if (!fs::is_directory(final_)) fail("save path {} exists and is not a folder", final_.string());
    if (!fs::is_empty(final_) && !overwrite)
      fail("save path {} exists and is not empty; pass --overwrite to replace it (the old content is kept "
           "until the new result is complete)", final_.string());
  }
  fs::path parent = final_.parent_path();
  if (!fs::exists(parent)) {
    fs::create_directories(parent, ec);
    if (ec) fail("cannot create {}: {}", parent.string(), ec.message());
  }
  if (::access(parent.c_str(), W_OK) != 0) fail("save path {}: folder {} is not writable", final_.string(), parent.string());
  temp_ = parent / ("." + final_.filename().string() + ".lwquant-tmp-" + std::to_string(::getpid()));
  fs::remove_all(temp_, ec);
  fs::create_directory(temp_, ec);
  if (ec) fail("cannot create temporary folder {}: {}", temp_.string(), ec.message());
}

OutputFolder::~OutputFolder() {
  if (committed_) return;
  std::error_code ec;
  fs::remove_all(temp_, ec);
}

void OutputFolder::commit() {
  std::error_code ec;
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
  if (!old.empty()) fs::remove_all(old, ec);
}

}  // namespace lwq
