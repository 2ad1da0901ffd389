#include "io/safetensors_reader.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_util.h"
#include "io/safetensors_writer.h"

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

// ---- strictness as in the reference `safetensors` library: the length prefix,
// the JSON and the data_offsets must account for every byte of the file.

// A header padded with spaces to a multiple of 8, as writers do.
std::string padded(std::string header) {
  header.resize((header.size() + 7) / 8 * 8 + 8, ' ');  // at least 8 spaces of padding
  return header;
}

TEST_F(BadFile, HeaderLengthFourBytesShortIntoThePadding) {
  // The JSON still parses (the cut falls inside the padding), but the data
  // area would start 4 bytes early: every tensor would be read misaligned.
  std::string header = padded(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  testing::write_bytes(path, testing::le64(header.size() - 4) + header + std::string(16, '\x11'));
  expect_open_error({"4 trailing bytes after the last tensor", "'t' ends at 16 of a 20-byte data area",
                     "starts with 4 spaces", "looks 4 bytes short"});
}

TEST_F(BadFile, HeaderLengthTooLongIntoTheData) {
  std::string header = R"({"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
  testing::write_bytes(path, testing::le64(header.size() + 2) + header + "\x01\x02\x03\x04");
  expect_open_error({fmt::format("header (the {} bytes declared by the length prefix)", header.size() + 2),
                     "invalid JSON"});
}

TEST_F(BadFile, TrailingBytesAfterTheLastTensor) {
  with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
              16);
  expect_open_error({"4 trailing bytes after the last tensor", "'b' ends at 12 of a 16-byte data area",
                     "end exactly at the end of the file"});
}

TEST_F(BadFile, DataButNoTensors) {
  with_header(R"({"__metadata__":{"format":"pt"}})", 8);
  expect_open_error({"8 bytes follow a header that lists no tensors"});
}

TEST_F(BadFile, GapBetweenTensors) {
  with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})",
              16);
  expect_open_error({"tensor 'b'", "data_offsets [12, 16] leave a gap of 4 bytes after tensor 'a' (which ends at 8)"});
}

TEST_F(BadFile, GapBeforeTheFirstTensor) {
  with_header(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16);
  expect_open_error({"tensor 't'", "leave the first 8 bytes of the data area unused", "from offset 0"});
}

TEST_F(BadFile, IdenticalRangesOverlap) {
  with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
              R"("c":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
              16);
  expect_open_error({"tensor 'b' overlaps tensor 'a'", "[0, 8] begin inside [0, 8]"});
}

TEST(SafetensorsReader, OutOfOrderButContiguousOffsetsAreAccepted) {
  TempDir dir;
  // Older writers ordered the header by name; only the tiling matters.
  std::string header = R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]},)"
                       R"("b":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})";
  write_safetensors_raw(dir / "x.safetensors", header, "\x01\x02\x03\x04\x05\x06");
  SafetensorsFile f = SafetensorsFile::open(dir / "x.safetensors");
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // header order kept
  EXPECT_EQ(f.read("a").bytes, (std::vector<uint8_t>{5, 6}));
  EXPECT_EQ(f.read("b").bytes, (std::vector<uint8_t>{1, 2, 3, 4}));
}

TEST(SafetensorsReader, ZeroElementTensorsAreAcceptedAndReadEmpty) {
  TempDir dir;
  // Empty tensors own no bytes: [k, k] anywhere, before, between or after others.
  std::string header = R"({"e0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},)"
                       R"("t":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                       R"("e1":{"dtype":"BF16","shape":[3,0],"data_offsets":[2,2]},)"
                       R"("u":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},)"
                       R"("e2":{"dtype":"I64","shape":[0,5],"data_offsets":[3,3]}})";
  write_safetensors_raw(dir / "e.safetensors", header, "\x07\x08\x09");
  for (const SafetensorsFile& f : {SafetensorsFile::open(dir / "e.safetensors"),
                                   SafetensorsFile::parse(testing::read_bytes(dir / "e.safetensors"), "mem")}) {
    ASSERT_EQ(f.tensors().size(), 5u);
    for (const char* name : {"e0", "e1", "e2"}) {
      Tensor t = f.read(name);
      EXPECT_TRUE(t.bytes.empty()) << name;
      EXPECT_EQ(t.numel(), 0) << name;
      f.read_into(f.info(name), nullptr);  // nothing to copy: a null destination is fine
    }
    EXPECT_TRUE(to_f32(f.read("e0")).empty());  // no memcpy with the empty vector's null pointer
    EXPECT_TRUE(to_f32(f.read("e1")).empty());
    EXPECT_EQ(f.read("e1").shape, (Shape{3, 0}));
    EXPECT_EQ(f.read("u").bytes, std::vector<uint8_t>{9});
  }
}

TEST(SafetensorsReader, EmptyHeaderAndNoDataIsAValidFile) {
  TempDir dir;
  write_safetensors_raw(dir / "e.safetensors", "{}      ", "");
  SafetensorsFile f = SafetensorsFile::open(dir / "e.safetensors");
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.data_start(), 16u);
}

TEST_F(BadFile, HugeHeaderLength) {
  testing::write_bytes(path, testing::le64(UINT64_MAX) + "{}");
  expect_open_error({"header length 18446744073709551615 exceeds the limit of 100000000 bytes"});
  testing::write_bytes(path, testing::le64(100'000'000) + "{}");  // at the limit, but past the end
  expect_open_error({"header length 100000000 goes beyond the end of the file (10 bytes)"});
}

TEST_F(BadFile, ShapeTimesDtypeOverflows) {
  // numel fits in 64 bits, × 4 bytes does not: 2^62 × 4 = 2^64 would wrap to 0.
  with_header(R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0);
  expect_open_error({"'t'", "more than 2^64"});
  // numel itself wraps to 0: 2^32 × 2^32.
  with_header(R"({"t":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}})", 0);
  expect_open_error({"'t'", "more than 2^64"});
}

TEST_F(BadFile, DtypeNotAString) {
  with_header(R"({"t":{"dtype":5,"shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"'t'", "\"dtype\" must be a string, got 5"});
  with_header(R"({"t":{"dtype":"f32","shape":[4],"data_offsets":[0,16]}})");  // names are case-sensitive
  expect_open_error({"'t'", "unknown dtype 'f32'"});
}

TEST_F(BadFile, NonObjectJsonHeaders) {
  for (const char* h : {"null", "\"text\"", "42", "[]"}) {
    with_header(h, 0);
    expect_open_error({"header must be a JSON object"});
  }
  with_header("{}{}", 0);  // two values: exactly one is allowed
  expect_open_error({"invalid JSON"});
  with_header("", 0);
  expect_open_error({"invalid JSON"});
}

TEST_F(BadFile, DuplicateKeyInsideAnEntry) {
  with_header(R"({"t":{"dtype":"F32","dtype":"U8","shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"duplicate key 'dtype'"});
}

TEST_F(BadFile, MetadataMustBeAStringMap) {
  with_header(R"({"__metadata__":["pt"],"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"\"__metadata__\" must be an object of strings, got [\"pt\"]"});
  with_header(R"({"__metadata__":{"a":{"b":"c"}},"t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})");
  expect_open_error({"\"__metadata__\" value for 'a' must be a string"});
}

TEST_F(BadFile, HeaderNotUtf8) {
  with_header("{\"t\xff\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
  expect_open_error({"invalid JSON", "UTF-8"});
}

TEST_F(BadFile, HugeValuesAreCutShortInMessages) {
  with_header(R"({"t":{"dtype":"F32","shape":")" + std::string(100000, 'x') + R"(","data_offsets":[0,16]}})");
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_LT(std::string(e.what()).size(), 400u);
    EXPECT_NE(std::string(e.what()).find("\"shape\" must be an array"), std::string::npos);
  }
}

TEST(SafetensorsReader, ParseFromMemoryValidatesTheSameWay) {
  std::string header = R"({"t":{"dtype":"I16","shape":[2],"data_offsets":[0,4]}})";
  std::string file = testing::le64(header.size()) + header + std::string("\x01\x02\x03\x04", 4);
  SafetensorsFile f = SafetensorsFile::parse(file, "in-memory.safetensors");
  EXPECT_EQ(f.path().string(), "in-memory.safetensors");
  EXPECT_EQ(f.read("t").data<int16_t>()[1], 0x0403);
  expect_error([&] { SafetensorsFile::parse(file + "x", "in-memory.safetensors"); },
               {"in-memory.safetensors", "1 trailing bytes"});
  expect_error([&] { SafetensorsFile::parse(file.substr(0, 7), "m"); }, {"m: file is too short (7 bytes)"});
}

TEST(SafetensorsReader, WriterOutputPassesTheStrictChecks) {
  TempDir dir;
  // Both header paths of the writer: padded in place inside the reserve, and
  // rewritten with an exact header; with empty tensors among the others.
  for (uint64_t reserve : {uint64_t{8}, uint64_t{256}, uint64_t{4096}}) {
    SafetensorsWriterOptions o;
    o.header_reserve = reserve;
    o.metadata = {{"format", "pt"}};
    auto p = dir / fmt::format("w{}.safetensors", reserve);
    {
      SafetensorsWriter w(p, o);
      w.add("empty_first", Tensor(DType::F32, {0}));
      w.add("a", tensor_f32({64}, std::vector<float>(64, 1.5f)));
      w.add("empty_mid", Tensor(DType::BF16, {4, 0}));
      w.add("b", Tensor(DType::U8, {3}));
      w.add("empty_last", Tensor(DType::I8, {0}));
      w.finish();
    }
    SafetensorsFile f = SafetensorsFile::open(p);
    ASSERT_EQ(f.tensors().size(), 5u) << reserve;
    EXPECT_EQ(f.data_start() % 8, 0u) << reserve;
    EXPECT_EQ(f.file_size(), f.data_start() + 64 * 4 + 3) << reserve;
    EXPECT_EQ(to_f32(f.read("a"))[63], 1.5f);
    EXPECT_TRUE(f.read("empty_mid").bytes.empty());
  }
}

TEST_F(BadFile, DirectoryInsteadOfFile) {
  std::filesystem::create_directories(path);
  expect_error([&] { SafetensorsFile::open(path); }, {"bad.safetensors"});
}

}  // namespace
}  // namespace lwq
