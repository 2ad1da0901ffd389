// Resuming the sharded writer from a checkpoint taken by an earlier process:
// the "crash" is a copy of the output folder taken at some later moment (open
// temporaries included), from which a fresh writer must finish the same bytes.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>

#include "io/io_test_util.h"
#include "io/safetensors_writer.h"
#include "util/error.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;
using namespace lwq::testing;

Tensor tensor_of(size_t n, uint32_t seed) {
  Tensor t(DType::I8, {static_cast<int64_t>(n)});
  auto bytes = random_bytes(n, seed);
  std::copy(bytes.begin(), bytes.end(), t.bytes.begin());
  return t;
}

constexpr size_t kTensors = 12;

ShardedWriterOptions options(uint64_t max_shard_bytes) {
  ShardedWriterOptions o;
  o.stem = "w";
  o.max_shard_bytes = max_shard_bytes;
  o.header_reserve = 256;  // small, so some shards take the rewrite path at finish
  return o;
}

void add_range(ShardedSafetensorsWriter& w, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) w.add("t" + std::to_string(i), tensor_of(100 + 37 * i, i));
}

void copy_folder(const fs::path& from, const fs::path& to) {
  fs::remove_all(to);
  fs::copy(from, to, fs::copy_options::recursive);
}

std::map<std::string, std::string> folder_bytes(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out[e.path().filename().string()] = read_bytes(e.path());
  return out;
}

// State after `at` tensors; the crash copy is taken after `crash_after`
// tensors (kTensors + 1 = after finish()).
void check_resume(uint64_t max_shard_bytes, size_t at, size_t crash_after) {
  SCOPED_TRACE("shard limit " + std::to_string(max_shard_bytes) + ", state at " + std::to_string(at) +
               ", crash after " + std::to_string(crash_after));
  TempDir tmp;
  {
    ShardedSafetensorsWriter clean(tmp / "clean", options(max_shard_bytes));
    add_range(clean, 0, kTensors);
    clean.finish();
  }
  nlohmann::json state;
  {
    ShardedSafetensorsWriter w(tmp / "run", options(max_shard_bytes));
    add_range(w, 0, at);
    state = w.checkpoint();
    add_range(w, at, std::min(crash_after, kTensors));
    if (crash_after > kTensors) w.finish();
    copy_folder(tmp / "run", tmp / "crashed");
  }
  ShardedSafetensorsWriter resumed(tmp / "crashed", options(max_shard_bytes));
  resumed.resume(nlohmann::json::parse(state.dump()));  // through text, as from the manifest
  add_range(resumed, at, kTensors);
  resumed.finish();
  EXPECT_EQ(folder_bytes(tmp / "crashed"), folder_bytes(tmp / "clean"));
}

TEST(WriterResume, FromEveryCrashPointShardedAndSingle) {
  for (uint64_t limit : {uint64_t{0}, uint64_t{700}, uint64_t{2000}})
    for (size_t at : {size_t{0}, size_t{3}, size_t{7}})
      for (size_t crash_after : {at, at + 2, size_t{kTensors}, size_t{kTensors + 1}})
        check_resume(limit, at, crash_after);
}

TEST(WriterResume, RefusesFilesThatNoLongerMatchTheState) {
  TempDir tmp;
  nlohmann::json state;
  {
    ShardedSafetensorsWriter w(tmp / "run", options(700));
    add_range(w, 0, 6);
    state = w.checkpoint();
    copy_folder(tmp / "run", tmp / "crashed");
  }
  // The first closed shard disappeared.
  fs::remove(tmp / "crashed" / "w-00001-of-00000.safetensors");
  ShardedSafetensorsWriter a(tmp / "crashed", options(700));
  EXPECT_THROW(a.resume(state), Error);
  // The open shard's temporary was cut short.
  copy_folder(tmp / "run", tmp / "crashed2");
  for (const auto& e : fs::directory_iterator(tmp / "crashed2"))
    if (e.path().extension() == ".tmp") fs::resize_file(e.path(), 100);
  ShardedSafetensorsWriter b(tmp / "crashed2", options(700));
  EXPECT_THROW(b.resume(state), Error);
}

}  // namespace
}  // namespace lwq
