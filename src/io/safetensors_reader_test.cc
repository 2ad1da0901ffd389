#include "io/safetensors_reader.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_util.h"

namespace lwq {
namespace {

using testing::expect_error;
using testing::TempDir;
using testing::write_safetensors_raw;

const std::filesystem::path kStories = LWQ_SOURCE_DIR "/examples/stories260K/model.safetensors";
// The llama2.c checkpoint stories260K.safetensors was converted from: a header of
// seven int32 (dim, hidden, layers, heads, kv heads, vocab, seq len), then the
// token embedding table, then the per-layer attention RMSNorm weights, all f32.
const std::filesystem::path kStoriesBin = LWQ_SOURCE_DIR "/examples/stories260K/original/stories260K.bin";

TEST(SafetensorsReader, ReadsStories260K) {
  SafetensorsFile f = SafetensorsFile::open(kStories);
  ASSERT_EQ(f.tensors().size(), 47u);  // written by Python safetensors
  EXPECT_EQ(f.tensors()[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  const TensorInfo* emb = f.find("model.embed_tokens.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::F32);
  EXPECT_EQ(emb->shape, (Shape{512, 64}));
  EXPECT_EQ(emb->offset, f.data_start());
  EXPECT_EQ(f.info("model.layers.0.self_attn.q_proj.weight").shape, (Shape{64, 64}));
  EXPECT_EQ(f.info("model.layers.0.self_attn.k_proj.weight").shape, (Shape{32, 64}));
  EXPECT_NE(f.find("model.layers.4.mlp.down_proj.weight"), nullptr);
  EXPECT_EQ(f.find("model.layers.5.mlp.down_proj.weight"), nullptr);
  EXPECT_EQ(f.find("nope"), nullptr);
  uint64_t sum = 0;
  for (const auto& t : f.tensors()) sum += t.nbytes;
  EXPECT_EQ(sum, f.file_size() - f.data_start());  // Python packs tensors without gaps
}

TEST(SafetensorsReader, ValuesMatchTheOriginalLlama2cCheckpoint) {
  std::string bin = testing::read_bytes(kStoriesBin);
  ASSERT_GT(bin.size(), 28u);
  int32_t cfg[7];
  std::memcpy(cfg, bin.data(), sizeof cfg);
  const int dim = cfg[0], layers = cfg[2], vocab = cfg[5];
  ASSERT_EQ(dim, 64);
  ASSERT_EQ(layers, 5);
  SafetensorsFile f = SafetensorsFile::open(kStories);
  Tensor emb = f.read("model.embed_tokens.weight");
  ASSERT_EQ(emb.nbytes(), size_t(vocab) * dim * 4);
  EXPECT_EQ(std::memcmp(emb.bytes.data(), bin.data() + 28, emb.nbytes()), 0);
  size_t off = 28 + size_t(vocab) * dim * 4;
  for (int l = 0; l < layers; ++l) {
    std::vector<float> norm(dim);
    f.read_into(f.info(fmt::format("model.layers.{}.input_layernorm.weight", l)), norm.data());
    EXPECT_EQ(std::memcmp(norm.data(), bin.data() + off + size_t(l) * dim * 4, dim * 4), 0) << "layer " << l;
  }
}

TEST(SafetensorsReader, MissingTensorNamesFileAndTensor) {
  SafetensorsFile f = SafetensorsFile::open(kStories);
  expect_error([&] { f.read("model.layers.9.mlp.up_proj.weight"); },
               {"model.layers.9.mlp.up_proj.weight", "model.safetensors"});
}

TEST(SafetensorsReader, MissingFile) {
  TempDir dir;
  expect_error([&] { SafetensorsFile::open(dir / "absent.safetensors"); }, {"absent.safetensors"});
}

TEST(SafetensorsReader, KeepsHeaderOrderAndAcceptsTrailingSpaces) {
  TempDir dir;
  std::string header = R"({"z":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("a":{"dtype":"I16","shape":[1],"data_offsets":[2,4]}})";
  header += "       ";
  write_safetensors_raw(dir / "x.safetensors", header, std::string("\x01\x02\x03\x04", 4));
  SafetensorsFile f = SafetensorsFile::open(dir / "x.safetensors");
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "z");
  EXPECT_EQ(f.tensors()[1].name, "a");
  EXPECT_TRUE(f.metadata().empty());
  Tensor a = f.read("a");
  EXPECT_EQ(a.dtype, DType::I16);
  EXPECT_EQ(a.data<int16_t>()[0], 0x0403);
}

TEST(SafetensorsReader, ShortReadAfterTruncationIsAnError) {
  TempDir dir;
  std::string header = R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  write_safetensors_raw(dir / "t.safetensors", header, std::string(16, '\0'));
  SafetensorsFile f = SafetensorsFile::open(dir / "t.safetensors");
  std::filesystem::resize_file(dir / "t.safetensors", 8 + header.size() + 6);
  expect_error([&] { f.read("t"); }, {"t.safetensors", "'t'", "unexpected end of file"});
}

// ---- one test per malformed-file case: the message names the file and the problem

struct BadFile : ::testing::Test {
  TempDir dir;
  std::filesystem::path path = dir / "bad.safetensors";
  void expect_open_error(std::initializer_list<std::string> parts) {
    expect_error([&] { SafetensorsFile::open(path); }, parts);
    expect_error([&] { SafetensorsFile::open(path); }, {"bad.safetensors"});
  }
  void with_header(const std::string& header, size_t data_bytes = 16) {
    write_safetensors_raw(path, header, std::string(data_bytes, '\0'));
  }
};

TEST_F(BadFile, ShorterThanEightBytes) {
  testing::write_bytes(path, "abc");
  expect_open_error({"too short", "3 bytes"});
}

TEST_F(BadFile, EmptyFile) {
  testing::write_bytes(path, "");
  expect_open_error({"too short"});
}

TEST_F(BadFile, HeaderLengthOverLimit) {
  testing::write_bytes(path, testing::le64(100'000'001) + "{}");
  expect_open_error({"header length 100000001", "limit"});
}

TEST_F(BadFile, HeaderLengthBeyondFileEnd) {
  testing::write_bytes(path, testing::le64(50) + "{}");
  expect_open_error({"header length 50", "beyond the end"});
}

TEST_F(BadFile, HeaderNotJson) {
  with_header(R"({"t":{"dtype":"F32",)");
  expect_open_error({"invalid JSON"});
}

TEST_F(BadFile, HeaderNotObject) {
  with_header("[1, 2]");
  expect_open_error({"must be a JSON object"});
}

TEST_F(BadFile, EntryNotObject) {
  with_header(R"({"t": 5})");
  expect_open_error({"'t'", "must be an object"});
}

TEST_F(BadFile, MissingDtype) {
  with_header(R"({"t":{"shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"'t'", "missing \"dtype\""});
}

TEST_F(BadFile, MissingShape) {
  with_header(R"({"t":{"dtype":"F32","data_offsets":[0,16]}})");
  expect_open_error({"'t'", "missing \"shape\""});
}

TEST_F(BadFile, MissingDataOffsets) {
  with_header(R"({"t":{"dtype":"F32","shape":[4]}})");
  expect_open_error({"'t'", "missing \"data_offsets\""});
}

TEST_F(BadFile, UnknownDtype) {
  with_header(R"({"t":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})");
  expect_open_error({"'t'", "unknown dtype 'F128'", "F8_E4M3", "BOOL"});
}

TEST_F(BadFile, NegativeShape) {
  with_header(R"({"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})");
  expect_open_error({"'t'", "non-negative integers"});
}

TEST_F(BadFile, NonIntegerShape) {
  with_header(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,10]}})");
  expect_open_error({"'t'", "non-negative integers"});
}

TEST_F(BadFile, ShapeNotArray) {
  with_header(R"({"t":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})");
  expect_open_error({"'t'", "\"shape\" must be an array"});
}

TEST_F(BadFile, DataOffsetsWrongCount) {
  with_header(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0]}})");
  expect_open_error({"'t'", "two non-negative integers"});
}

TEST_F(BadFile, DataOffsetsNotIntegers) {
  with_header(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,"16"]}})");
  expect_open_error({"'t'", "two non-negative integers"});
}

TEST_F(BadFile, DataOffsetsNegative) {
  with_header(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[-1,-1]}})");
  expect_open_error({"'t'", "two non-negative integers"});
}

TEST_F(BadFile, DataOffsetsDescending) {
  with_header(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[16,0]}})");
  expect_open_error({"'t'", "not ascending"});
}

TEST_F(BadFile, OffsetsOutsideDataArea) {
  with_header(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 16);
  expect_open_error({"'t'", "outside the data area (16 bytes)"});
}

TEST_F(BadFile, OverlappingTensors) {
  with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})");
  expect_open_error({"'b' overlaps tensor 'a'"});
}

TEST_F(BadFile, ByteSizeMismatch) {
  with_header(R"({"t":{"dtype":"BF16","shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"'t'", "span 16 bytes", "[4] of BF16 needs 8"});
}

TEST_F(BadFile, ByteSizeOverflow) {
  with_header(R"({"t":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,16]}})");
  expect_open_error({"'t'", "more than 2^64"});
}

TEST_F(BadFile, DuplicateNames) {
  with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})");
  expect_open_error({"duplicate key 't'"});
}

TEST_F(BadFile, MetadataNotStrings) {
  with_header(R"({"__metadata__":{"format":1},"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"__metadata__", "'format'", "must be a string"});
}

TEST_F(BadFile, DirectoryInsteadOfFile) {
  std::filesystem::create_directories(path);
  expect_error([&] { SafetensorsFile::open(path); }, {"bad.safetensors"});
}

}  // namespace
}  // namespace lwq
