#include "io/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/io_test_util.h"
#include "io/safetensors_writer.h"

namespace lwq {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;
using testing::TempDir;

const fs::path kStoriesDir = LWQ_SOURCE_DIR "/examples/stories260K";

void write_file(const fs::path& path, const std::vector<std::pair<std::string, Tensor>>& tensors) {
  SafetensorsWriter w(path);
  for (const auto& [name, t] : tensors) w.add(name, t);
  w.finish();
}

TEST(Checkpoint, OpensStories260KFolder) {
  Checkpoint c = Checkpoint::open(kStoriesDir);
  std::vector<std::string> names = c.tensor_names();
  ASSERT_EQ(names.size(), 47u);
  EXPECT_EQ(names[0], "model.embed_tokens.weight");
  EXPECT_EQ(c.info("model.embed_tokens.weight").shape, (Shape{512, 64}));
  for (int l = 0; l < 5; ++l) {
    EXPECT_EQ(c.info(fmt::format("model.layers.{}.self_attn.q_proj.weight", l)).shape, (Shape{64, 64}));
    EXPECT_EQ(c.info(fmt::format("model.layers.{}.self_attn.k_proj.weight", l)).shape, (Shape{32, 64}));
  }
  EXPECT_FALSE(c.contains("model.layers.5.self_attn.q_proj.weight"));
  EXPECT_TRUE(c.contains("model.norm.weight"));
  // The data area of the file is exactly the tensors (1044992 bytes, 4856-byte header).
  EXPECT_EQ(c.total_bytes(), 1044992u - 8u - 4856u);
  Tensor norm = c.read("model.norm.weight");
  EXPECT_EQ(norm.shape, Shape{64});
  EXPECT_EQ(c.file_of("model.norm.weight"), kStoriesDir / "model.safetensors");
}

TEST(Checkpoint, OpensASingleFilePath) {
  Checkpoint c = Checkpoint::open(kStoriesDir / "model.safetensors");
  EXPECT_EQ(c.size(), 47u);
  EXPECT_EQ(c.read("model.embed_tokens.weight").bytes,
            Checkpoint::open(kStoriesDir).read("model.embed_tokens.weight").bytes);
}

TEST(Checkpoint, FolderWithOneOtherNamedFile) {
  TempDir dir;
  write_file(dir / "weights.safetensors", {{"a", tensor_f32({2}, {1.0f, 2.0f})}});
  Checkpoint c = Checkpoint::open(dir.path);
  EXPECT_EQ(c.tensor_names(), std::vector<std::string>{"a"});
  EXPECT_EQ(c.read("a").data<float>()[1], 2.0f);
}

TEST(Checkpoint, ShardedFolderFollowsIndexOrder) {
  TempDir dir;
  write_file(dir / "model-00001-of-00002.safetensors",
             {{"x", tensor_f32({1}, {1.0f})}, {"y", tensor_f32({1}, {2.0f})}});
  write_file(dir / "model-00002-of-00002.safetensors", {{"b", tensor_f32({2}, {3.0f, 4.0f})}});
  testing::write_bytes(dir / "model.safetensors.index.json",
                       R"({"metadata":{"total_size":16},"weight_map":{)"
                       R"("y":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors",)"
                       R"("x":"model-00001-of-00002.safetensors"}})");
  Checkpoint c = Checkpoint::open(dir.path);
  EXPECT_EQ(c.tensor_names(), (std::vector<std::string>{"y", "b", "x"}));
  EXPECT_EQ(c.read("b").data<float>()[1], 4.0f);
  EXPECT_EQ(c.read("y").data<float>()[0], 2.0f);
  EXPECT_EQ(c.total_bytes(), 16u);
  EXPECT_EQ(c.files().size(), 2u);
  // The index file itself is a valid path too.
  EXPECT_EQ(Checkpoint::open(dir / "model.safetensors.index.json").size(), 3u);
}

TEST(Checkpoint, UnknownTensorNamesTheCheckpoint) {
  Checkpoint c = Checkpoint::open(kStoriesDir);
  expect_error([&] { c.info("lm_head.bias"); }, {"tensor 'lm_head.bias' not found in checkpoint", "stories260K"});
  expect_error([&] { c.read("lm_head.bias"); }, {"tensor 'lm_head.bias' not found in checkpoint"});
}

TEST(Checkpoint, MissingFolder) {
  TempDir dir;
  expect_error([&] { Checkpoint::open(dir / "nope"); }, {"model folder", "nope", "does not exist"});
}

TEST(Checkpoint, FolderWithoutSafetensors) {
  TempDir dir;
  testing::write_bytes(dir / "config.json", "{}");
  expect_error([&] { Checkpoint::open(dir.path); }, {"contains no weights", "model.safetensors"});
}

TEST(Checkpoint, SeveralFilesWithoutIndex) {
  TempDir dir;
  write_file(dir / "a.safetensors", {{"a", tensor_f32({1}, {1.0f})}});
  write_file(dir / "b.safetensors", {{"b", tensor_f32({1}, {1.0f})}});
  expect_error([&] { Checkpoint::open(dir.path); }, {"several .safetensors files", "a.safetensors, b.safetensors"});
}

TEST(Checkpoint, SeveralIndexFiles) {
  TempDir dir;
  testing::write_bytes(dir / "a.safetensors.index.json", R"({"weight_map":{}})");
  testing::write_bytes(dir / "b.safetensors.index.json", R"({"weight_map":{}})");
  expect_error([&] { Checkpoint::open(dir.path); }, {"several index files"});
}

TEST(Checkpoint, IndexReferencesMissingShard) {
  TempDir dir;
  testing::write_bytes(dir / "model.safetensors.index.json",
                       R"({"weight_map":{"w":"model-00001-of-00002.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir.path); },
               {"model.safetensors.index.json", "model-00001-of-00002.safetensors", "does not exist", "'w'"});
}

TEST(Checkpoint, TensorListedInIndexButAbsentFromShard) {
  TempDir dir;
  write_file(dir / "s1.safetensors", {{"a", tensor_f32({1}, {1.0f})}});
  testing::write_bytes(dir / "model.safetensors.index.json",
                       R"({"weight_map":{"a":"s1.safetensors","ghost":"s1.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir.path); },
               {"'ghost'", "model.safetensors.index.json", "missing from shard", "s1.safetensors"});
}

TEST(Checkpoint, IndexWithoutWeightMap) {
  TempDir dir;
  testing::write_bytes(dir / "model.safetensors.index.json", R"({"metadata":{}})");
  expect_error([&] { Checkpoint::open(dir.path); }, {"model.safetensors.index.json", "weight_map"});
}

TEST(Checkpoint, IndexNotJson) {
  TempDir dir;
  testing::write_bytes(dir / "model.safetensors.index.json", "{weight_map");
  expect_error([&] { Checkpoint::open(dir.path); }, {"model.safetensors.index.json", "invalid JSON"});
}

TEST(Checkpoint, IndexDuplicateTensor) {
  TempDir dir;
  write_file(dir / "s1.safetensors", {{"a", tensor_f32({1}, {1.0f})}});
  testing::write_bytes(dir / "model.safetensors.index.json",
                       R"({"weight_map":{"a":"s1.safetensors","a":"s1.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir.path); }, {"duplicate key 'a'"});
}

TEST(Checkpoint, ShardNameOutsideTheFolder) {
  TempDir dir;
  fs::create_directories(dir / "sub");
  write_file(dir / "s1.safetensors", {{"a", tensor_f32({1}, {1.0f})}});
  testing::write_bytes(dir / "sub" / "model.safetensors.index.json", R"({"weight_map":{"a":"../s1.safetensors"}})");
  expect_error([&] { Checkpoint::open(dir / "sub"); }, {"'../s1.safetensors'", "plain file name"});
}

TEST(Checkpoint, CorruptShardNamesTheShard) {
  TempDir dir;
  testing::write_bytes(dir / "model.safetensors", "xyz");
  expect_error([&] { Checkpoint::open(dir.path); }, {"model.safetensors", "too short"});
}

}  // namespace
}  // namespace lwq
