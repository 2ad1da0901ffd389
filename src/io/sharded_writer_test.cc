#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <random>
#include <set>

#include "io/checkpoint.h"
#include "io/io_test_util.h"
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "util/file_util.h"

namespace lwq {
namespace {

using testing::expect_error;
using testing::TempDir;

Tensor u8_tensor(int64_t n, uint32_t seed) {
  Tensor t(DType::U8, {n});
  auto bytes = testing::random_bytes(static_cast<size_t>(n), seed);
  std::copy(bytes.begin(), bytes.end(), t.bytes.begin());
  return t;
}

struct Sharded : ::testing::Test {
  TempDir dir;
  void TearDown() override { set_write_fault_after_bytes_for_testing(-1); }

  // Writes tensors "t0", "t1", ... of the given byte sizes; returns the map.
  std::vector<std::pair<std::string, std::string>> write(const std::vector<int64_t>& sizes, uint64_t limit,
                                                         std::vector<Tensor>* kept = nullptr) {
    ShardedSafetensorsWriter w(dir.path, {.stem = "quant_model_weights", .max_shard_bytes = limit});
    for (size_t i = 0; i < sizes.size(); ++i) {
      Tensor t = u8_tensor(sizes[i], static_cast<uint32_t>(i));
      w.add(fmt::format("t{}", i), t);
      if (kept) kept->push_back(std::move(t));
    }
    return w.finish();
  }
  // Tensor names per shard file, from the files themselves.
  std::vector<std::string> shard_contents(const std::vector<std::string>& files) {
    std::vector<std::string> out;
    for (const auto& f : files) {
      std::string names;
      SafetensorsFile file = SafetensorsFile::open(dir / f);
      for (const auto& t : file.tensors()) names += (names.empty() ? "" : ",") + t.name;
      out.push_back(names);
    }
    return out;
  }
};

using Map = std::vector<std::pair<std::string, std::string>>;

TEST_F(Sharded, ClosesAShardWhenTheNextTensorWouldReachTheLimit) {
  Map map = write({400, 400, 400}, 1000);
  const std::string s1 = "quant_model_weights-00001-of-00002.safetensors";
  const std::string s2 = "quant_model_weights-00002-of-00002.safetensors";
  EXPECT_EQ(map, (Map{{"t0", s1}, {"t1", s1}, {"t2", s2}}));
  EXPECT_EQ(dir.files(), (std::vector<std::string>{s1, s2, "quant_model_weights.safetensors.index.json"}));
  EXPECT_EQ(shard_contents({s1, s2}), (std::vector<std::string>{"t0,t1", "t2"}));
  // json.dump(indent=2) layout, written out by hand.
  EXPECT_EQ(testing::read_bytes(dir / "quant_model_weights.safetensors.index.json"),
            "{\n"
            "  \"metadata\": {\n"
            "    \"total_size\": 1200\n"
            "  },\n"
            "  \"weight_map\": {\n"
            "    \"t0\": \"quant_model_weights-00001-of-00002.safetensors\",\n"
            "    \"t1\": \"quant_model_weights-00001-of-00002.safetensors\",\n"
            "    \"t2\": \"quant_model_weights-00002-of-00002.safetensors\"\n"
            "  }\n"
            "}");
}

TEST_F(Sharded, ReachingTheLimitExactlyAlsoCloses) {
  // 400 + 400 + 200 == 1000 >= 1000: msModelSlim flushes before t2.
  Map map = write({400, 400, 200}, 1000);
  EXPECT_EQ(map.back().second, "quant_model_weights-00002-of-00002.safetensors");
}

TEST_F(Sharded, JustUnderTheLimitStaysInOneShard) {
  Map map = write({400, 400, 199}, 1000);
  for (const auto& [name, file] : map) EXPECT_EQ(file, "quant_model_weights-00001-of-00001.safetensors");
}

TEST_F(Sharded, OversizedTensorGetsItsOwnShard) {
  Map map = write({100, 5000, 100}, 1000);
  ASSERT_EQ(map.size(), 3u);
  EXPECT_EQ(map[0].second, "quant_model_weights-00001-of-00003.safetensors");
  EXPECT_EQ(map[1].second, "quant_model_weights-00002-of-00003.safetensors");
  EXPECT_EQ(map[2].second, "quant_model_weights-00003-of-00003.safetensors");
}

TEST_F(Sharded, FirstTensorOverTheLimitDoesNotMakeAnEmptyShard) {
  Map map = write({5000, 100}, 1000);
  EXPECT_EQ(map, (Map{{"t0", "quant_model_weights-00001-of-00002.safetensors"},
                      {"t1", "quant_model_weights-00002-of-00002.safetensors"}}));
}

TEST_F(Sharded, RandomSizesObeyTheRuleAndReadBackThroughCheckpoint) {
  std::mt19937 rng(7);
  std::vector<int64_t> sizes;
  for (int i = 0; i < 60; ++i) sizes.push_back(static_cast<int64_t>(rng() % 700));
  sizes[17] = 3000;  // one oversized tensor
  const uint64_t limit = 1500;
  std::vector<Tensor> kept;
  Map map = write(sizes, limit, &kept);

  // Group consecutive tensors by shard and check msModelSlim's rule on each boundary.
  std::vector<std::vector<size_t>> shards;
  for (size_t i = 0; i < map.size(); ++i) {
    if (i == 0 || map[i].second != map[i - 1].second) shards.emplace_back();
    shards.back().push_back(i);
  }
  ASSERT_GT(shards.size(), 5u);
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    uint64_t bytes = 0;
    for (size_t i : shards[s]) bytes += sizes[i];
    total += bytes;
    // Inside a shard every tensor was added while pending + size < limit.
    uint64_t pending = 0;
    for (size_t k = 0; k < shards[s].size(); ++k) {
      if (k > 0) {
        EXPECT_LT(pending + sizes[shards[s][k]], limit) << "shard " << s;
      }
      pending += sizes[shards[s][k]];
    }
    if (s + 1 < shards.size()) {
      EXPECT_GE(bytes + sizes[shards[s + 1][0]], limit) << "shard " << s << " closed early";
    }
    SafetensorsFile f = SafetensorsFile::open(dir / map[shards[s][0]].second);
    EXPECT_EQ(f.file_size(), f.data_start() + bytes);
  }
  auto index = nlohmann::json::parse(testing::read_bytes(dir / "quant_model_weights.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_EQ(index["weight_map"].size(), sizes.size());

  Checkpoint c = Checkpoint::open(dir.path);
  std::vector<std::string> names = c.tensor_names();
  ASSERT_EQ(names.size(), sizes.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(names[i], fmt::format("t{}", i));
    EXPECT_EQ(c.read(names[i]).bytes, kept[i].bytes) << names[i];
    EXPECT_EQ(c.file_of(names[i]).filename().string(), map[i].second);
  }
  EXPECT_EQ(c.total_bytes(), total);
}

TEST_F(Sharded, ZeroLimitWritesOneFileWithoutIndex) {
  Map map = write({400, 400, 400}, 0);
  EXPECT_EQ(dir.files(), std::vector<std::string>{"quant_model_weights.safetensors"});
  for (const auto& [name, file] : map) EXPECT_EQ(file, "quant_model_weights.safetensors");
  EXPECT_EQ(Checkpoint::open(dir.path).tensor_names(), (std::vector<std::string>{"t0", "t1", "t2"}));
}

// The O_DIRECT stage size (one per shard writer, set for shards opened later)
// changes how the bytes reach the disk, never which bytes.
TEST_F(Sharded, StageSizeChangesNoByte) {
  const std::vector<int64_t> sizes = {5000, 70000, 123457, 9000, 300000};
  std::string files[2];
  for (int small = 0; small < 2; ++small) {
    const std::filesystem::path out = dir.path / (small ? "small" : "default");
    ShardedSafetensorsWriter w(out, {.stem = "quant_model_weights", .max_shard_bytes = 200000});
    if (small) w.set_direct_stage_bytes(4096);  // one block: a stage write per 4 KiB
    for (size_t i = 0; i < sizes.size(); ++i)
      w.add(fmt::format("t{}", i), u8_tensor(sizes[i], static_cast<uint32_t>(i)));
    w.finish();
    std::set<std::filesystem::path> names;
    for (const auto& e : std::filesystem::directory_iterator(out)) names.insert(e.path());
    for (const auto& p : names) files[small] += p.filename().string() + ":" + read_text_file(p);
  }
  EXPECT_EQ(files[0].size(), files[1].size());
  EXPECT_EQ(files[0], files[1]);
}

TEST_F(Sharded, DuplicateNameIsAnError) {
  ShardedSafetensorsWriter w(dir.path, {.stem = "w", .max_shard_bytes = 100});
  w.add("a", u8_tensor(10, 1));
  expect_error([&] { w.add("a", u8_tensor(10, 2)); }, {"'a' added twice"});
}

TEST_F(Sharded, DiskFullLeavesNoFilesBehind) {
  {
    ShardedSafetensorsWriter w(dir.path, {.stem = "w", .max_shard_bytes = 1000});
    for (int i = 0; i < 5; ++i) w.add(fmt::format("t{}", i), u8_tensor(400, i));  // two shards closed
    set_write_fault_after_bytes_for_testing(100);
    expect_error([&] { w.add("t5", u8_tensor(400, 5)); }, {"w-00003-of-00000.safetensors", "No space left"});
  }
  EXPECT_TRUE(dir.files().empty());
}

TEST_F(Sharded, DiskFullWhileClosingTheLastShard) {
  {
    ShardedSafetensorsWriter w(dir.path, {.stem = "w", .max_shard_bytes = 1000});
    for (int i = 0; i < 5; ++i) w.add(fmt::format("t{}", i), u8_tensor(400, i));
    set_write_fault_after_bytes_for_testing(10);
    expect_error([&] { w.finish(); }, {"w-00003-of-00000.safetensors", "No space left"});
  }
  EXPECT_TRUE(dir.files().empty());
}

TEST_F(Sharded, AbandonedWriterRemovesClosedShards) {
  {
    ShardedSafetensorsWriter w(dir.path, {.stem = "w", .max_shard_bytes = 1000});
    for (int i = 0; i < 5; ++i) w.add(fmt::format("t{}", i), u8_tensor(400, i));
    EXPECT_FALSE(dir.files().empty());
  }
  EXPECT_TRUE(dir.files().empty());
}

}  // namespace
}  // namespace lwq
