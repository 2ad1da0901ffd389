#include "io/safetensors_writer.h"

#include <gtest/gtest.h>

#include <cstring>

#include "io/io_test_util.h"
#include "io/safetensors_reader.h"
#include "util/file_util.h"

namespace lwq {
namespace {

using testing::expect_error;
using testing::TempDir;

const DType kAllDtypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2,
                            DType::I64, DType::I32, DType::I16, DType::I8,   DType::U8,      DType::BOOL};

Tensor random_tensor(DType dtype, Shape shape, uint32_t seed) {
  Tensor t(dtype, shape);
  auto bytes = testing::random_bytes(t.nbytes(), seed);
  std::copy(bytes.begin(), bytes.end(), t.bytes.begin());
  return t;
}

SafetensorsWriterOptions reserve(uint64_t bytes) {
  SafetensorsWriterOptions o;
  o.header_reserve = bytes;
  return o;
}

// Every test leaves the fault hook disarmed, whatever happens.
struct Writer : ::testing::Test {
  TempDir dir;
  void TearDown() override { set_write_fault_after_bytes_for_testing(-1); }
};

TEST_F(Writer, ExactBytesOfASmallFile) {
  // Hand-written expectation of the format: compact JSON padded with spaces
  // to a multiple of 8, data right after it.
  {
    SafetensorsWriter w(dir / "a.safetensors");
    w.add("a", tensor_f32({2}, {1.0f, 2.0f}));
    w.finish();
  }
  std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";  // 54 bytes
  header += "  ";
  float values[2] = {1.0f, 2.0f};
  std::string expected = testing::le64(56) + header + std::string(reinterpret_cast<char*>(values), 8);
  EXPECT_EQ(testing::read_bytes(dir / "a.safetensors"), expected);
  EXPECT_EQ(dir.files(), std::vector<std::string>{"a.safetensors"});
}

TEST_F(Writer, RoundTripsEveryDtype) {
  std::vector<Tensor> written;
  {
    SafetensorsWriter w(dir / "all.safetensors");
    uint32_t seed = 1;
    for (DType d : kAllDtypes) {
      written.push_back(random_tensor(d, {3, 5}, seed++));
      w.add(std::string("t.") + std::string(dtype_name(d)), written.back());
    }
    w.add("scalar", random_tensor(DType::F32, {}, 99));
    w.add("empty", Tensor(DType::BF16, {0, 7}));
    EXPECT_EQ(w.count(), 14u);
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(dir / "all.safetensors");
  EXPECT_EQ(f.data_start() % 8, 0u);
  ASSERT_EQ(f.tensors().size(), 14u);
  for (size_t i = 0; i < std::size(kAllDtypes); ++i) {
    const TensorInfo& info = f.tensors()[i];
    EXPECT_EQ(info.name, std::string("t.") + std::string(dtype_name(kAllDtypes[i])));
    Tensor back = f.read(info.name);
    EXPECT_EQ(back.dtype, kAllDtypes[i]);
    EXPECT_EQ(back.shape, (Shape{3, 5}));
    EXPECT_EQ(back.bytes, written[i].bytes) << info.name;
  }
  EXPECT_EQ(f.read("scalar").shape, Shape{});
  EXPECT_EQ(f.read("scalar").nbytes(), 4u);
  EXPECT_EQ(f.read("empty").shape, (Shape{0, 7}));
  EXPECT_EQ(f.read("empty").nbytes(), 0u);
  EXPECT_TRUE(f.metadata().empty());
}

TEST_F(Writer, RawPointerOverload) {
  int32_t v[3] = {7, -8, 9};
  {
    SafetensorsWriter w(dir / "p.safetensors");
    w.add("v", DType::I32, {3}, v);
    EXPECT_EQ(w.data_bytes(), 12u);
    w.finish();
  }
  Tensor t = SafetensorsFile::open(dir / "p.safetensors").read("v");
  EXPECT_EQ(t.data<int32_t>()[1], -8);
}

// A tensor written a block of rows at a time (blocks of 3 rows here, the
// last one short) gives the same file as the whole tensor, and row reads
// give back any block.
TEST_F(Writer, RowsFromASourceMatchTheWholeTensor) {
  const Tensor t = random_tensor(DType::BF16, {10, 7}, 5);
  const Tensor small = random_tensor(DType::F32, {2}, 6);
  const size_t row = 7 * 2;
  {
    SafetensorsWriter w(dir / "whole.safetensors");
    w.add("a", small);
    w.add("t", t);
    w.finish();
  }
  std::vector<std::pair<int64_t, int64_t>> calls;
  {
    SafetensorsWriter w(dir / "rows.safetensors");
    w.add("a", small);
    w.add_rows("t", DType::BF16, {10, 7}, [&](int64_t row0, int64_t n, void* dst) {
      calls.emplace_back(row0, n);
      std::memcpy(dst, t.bytes.data() + row0 * row, n * row);
    }, 3 * row);
    w.finish();
  }
  EXPECT_EQ(calls, (std::vector<std::pair<int64_t, int64_t>>{{0, 3}, {3, 3}, {6, 3}, {9, 1}}));
  EXPECT_EQ(read_text_file(dir / "rows.safetensors"), read_text_file(dir / "whole.safetensors"));
  std::vector<uint8_t> back(4 * row);
  const SafetensorsFile f = SafetensorsFile::open(dir / "rows.safetensors");
  f.read_rows(f.info("t"), 5, 4, back.data());
  EXPECT_EQ(0, std::memcmp(back.data(), t.bytes.data() + 5 * row, back.size()));
  expect_error([&] { f.read_rows(f.info("t"), 8, 3, back.data()); }, {"rows 8..11 of tensor 't'"});
}

TEST_F(Writer, LargeDataKeepsThePaddedReservedHeader) {
  Tensor big = random_tensor(DType::U8, {1000}, 5);
  {
    SafetensorsWriter w(dir / "b.safetensors", reserve(196));  // rounded to 200
    w.add("small", tensor_f32({1}, {3.0f}));
    w.add("big", big);
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(dir / "b.safetensors");
  EXPECT_EQ(f.data_start(), 8u + 200u);
  EXPECT_EQ(f.file_size(), 8u + 200u + 1004u);
  EXPECT_EQ(f.read("big").bytes, big.bytes);
  EXPECT_EQ(f.read("small").data<float>()[0], 3.0f);
}

TEST_F(Writer, HeaderOverflowingTheReserveIsRewrittenExactly) {
  std::vector<Tensor> ts;
  {
    SafetensorsWriter w(dir / "o.safetensors", reserve(16));
    for (int i = 0; i < 20; ++i) {
      ts.push_back(random_tensor(DType::I16, {50}, 100 + i));
      w.add(fmt::format("layer.{}.weight", i), ts.back());
    }
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(dir / "o.safetensors");
  EXPECT_GT(f.data_start(), 8u + 16u);
  EXPECT_EQ(f.data_start() % 8, 0u);
  EXPECT_EQ(f.file_size(), f.data_start() + 20u * 100u);
  // No more than 7 padding spaces: the header is exact.
  std::string raw = testing::read_bytes(dir / "o.safetensors");
  EXPECT_EQ(raw.substr(0, f.data_start()).find("        "), std::string::npos);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(f.read(fmt::format("layer.{}.weight", i)).bytes, ts[i].bytes);
  EXPECT_EQ(dir.files(), std::vector<std::string>{"o.safetensors"});
}

TEST_F(Writer, MetadataOnlyWhenGiven) {
  {
    SafetensorsWriter w(dir / "m.safetensors", SafetensorsWriterOptions{.header_reserve = 1u << 20, .metadata = {{"format", "pt"}}});
    w.add("x", tensor_f32({1}, {1.0f}));
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(dir / "m.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  {
    SafetensorsWriter w(dir / "n.safetensors");
    w.add("x", tensor_f32({1}, {1.0f}));
    w.finish();
  }
  EXPECT_EQ(testing::read_bytes(dir / "n.safetensors").find("__metadata__"), std::string::npos);
}

TEST_F(Writer, EmptyFileIsValid) {
  {
    SafetensorsWriter w(dir / "e.safetensors");
    w.finish();
  }
  EXPECT_TRUE(SafetensorsFile::open(dir / "e.safetensors").tensors().empty());
}

TEST_F(Writer, BadArgumentsThrowAndLeaveTheWriterUsable) {
  SafetensorsWriter w(dir / "x.safetensors");
  w.add("a", tensor_f32({1}, {1.0f}));
  expect_error([&] { w.add("a", tensor_f32({1}, {2.0f})); }, {"'a' added twice", "x.safetensors"});
  expect_error([&] { w.add("__metadata__", tensor_f32({1}, {2.0f})); }, {"invalid tensor name"});
  Tensor wrong = tensor_f32({2}, {1.0f, 2.0f});
  wrong.bytes.pop_back();
  expect_error([&] { w.add("w", wrong); }, {"'w'", "holds 7 bytes", "needs 8"});
  w.add("b", tensor_f32({1}, {2.0f}));
  w.finish();
  expect_error([&] { w.add("c", tensor_f32({1}, {2.0f})); }, {"already finished"});
  EXPECT_EQ(SafetensorsFile::open(dir / "x.safetensors").tensors().size(), 2u);
}

TEST_F(Writer, AbandonedWriterLeavesNothing) {
  {
    SafetensorsWriter w(dir / "gone.safetensors");
    w.add("a", tensor_f32({1}, {1.0f}));
    EXPECT_EQ(dir.files(), std::vector<std::string>{"gone.safetensors.tmp"});
  }
  EXPECT_TRUE(dir.files().empty());
}

TEST_F(Writer, UncreatableFileIsAnError) {
  expect_error([&] { SafetensorsWriter w(dir / "no" / "such" / "dir.safetensors"); }, {"dir.safetensors"});
}

// ---- disk-full faults: a clean error naming the file, and no file left at all

TEST_F(Writer, FaultWhileAddingData) {
  SafetensorsWriter w(dir / "f.safetensors");
  w.add("a", random_tensor(DType::U8, {64}, 1));
  set_write_fault_after_bytes_for_testing(30);
  expect_error([&] { w.add("b", random_tensor(DType::U8, {64}, 2)); }, {"f.safetensors", "No space left"});
  EXPECT_TRUE(dir.files().empty());
  set_write_fault_after_bytes_for_testing(-1);
  expect_error([&] { w.add("c", random_tensor(DType::U8, {64}, 3)); }, {"failed earlier"});
  expect_error([&] { w.finish(); }, {"failed earlier"});
  EXPECT_TRUE(dir.files().empty());
}

TEST_F(Writer, FaultWhileWritingThePaddedHeader) {
  SafetensorsWriter w(dir / "h.safetensors", reserve(64));
  w.add("a", random_tensor(DType::U8, {1000}, 1));
  set_write_fault_after_bytes_for_testing(20);
  expect_error([&] { w.finish(); }, {"h.safetensors", "No space left"});
  EXPECT_TRUE(dir.files().empty());
}

TEST_F(Writer, FaultWhileRewritingWithAnExactHeader) {
  SafetensorsWriter w(dir / "r.safetensors", reserve(8));
  for (int i = 0; i < 4; ++i) w.add(fmt::format("t{}", i), random_tensor(DType::U8, {500}, i));
  set_write_fault_after_bytes_for_testing(300);  // header fits, the data copy does not
  expect_error([&] { w.finish(); }, {"r.safetensors", "No space left"});
  EXPECT_TRUE(dir.files().empty());
}

}  // namespace
}  // namespace lwq
