#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

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
  void TearDown() override {
    set_write_fault_after_bytes_for_testing(-1);
    set_direct_write_error_for_testing(0);
  }
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

// ---- O_DIRECT writes: the same files as through the page cache

SafetensorsWriterOptions direct_options(bool direct, uint64_t header_reserve = 1u << 20) {
  SafetensorsWriterOptions o;
  o.header_reserve = header_reserve;
  o.direct_io = direct;
  o.direct_stage_bytes = 8192;  // small: many flushes, tensors across them
  return o;
}

// Tensors of sizes around the block (4096) and the stage (8192), some written
// a block of rows at a time.
struct Piece {
  std::string name;
  DType dtype;
  Shape shape;
  bool rows;
};
const std::vector<Piece> kPieces = {
    {"one", DType::U8, {1}, false},          {"b4095", DType::I8, {4095}, false},
    {"b4097", DType::I8, {4097}, true},      {"stage3", DType::I8, {3 * 8192 + 5}, true},
    {"bf16", DType::BF16, {37, 129}, true},  {"f32", DType::F32, {5, 1031}, false},
    {"empty", DType::BF16, {0, 9}, true},    {"i8", DType::I8, {3, 8192}, false},
    {"scalar", DType::F32, {}, false},       {"tail", DType::BF16, {2047}, true},
};

void add_pieces(SafetensorsWriter& w, size_t begin, size_t end) {
  for (size_t i = begin; i < end; ++i) {
    const Piece& p = kPieces[i];
    const Tensor t = random_tensor(p.dtype, p.shape, 500 + static_cast<uint32_t>(i));
    if (!p.rows) {
      w.add(p.name, t);
      continue;
    }
    const size_t row = p.shape.empty() || p.shape[0] == 0 ? 0 : t.nbytes() / p.shape[0];
    w.add_rows(p.name, p.dtype, p.shape, [&](int64_t row0, int64_t n, void* dst) {
      std::memcpy(dst, t.bytes.data() + row0 * row, n * row);
    }, 3000);
  }
}

// The pieces with a checkpoint after each (a flush of the stage at every kind
// of offset); returns whether the writer wrote with O_DIRECT.
bool write_pieces(const std::filesystem::path& path, const SafetensorsWriterOptions& options) {
  SafetensorsWriter w(path, options);
  for (size_t i = 0; i < kPieces.size(); ++i) {
    add_pieces(w, i, i + 1);
    w.checkpoint();
  }
  const bool direct = w.direct();
  w.finish();
  return direct;
}

// Reserves: the rewrite at finish(), the header in place with the data
// starting inside the first block, and the data starting on a block.
TEST_F(Writer, DirectWritesGiveTheSameBytes) {
  for (uint64_t reserve : {uint64_t{1} << 20, uint64_t{1000}, uint64_t{4088}}) {
    SCOPED_TRACE("reserve " + std::to_string(reserve));
    EXPECT_FALSE(write_pieces(dir / "buffered.safetensors", direct_options(false, reserve)));
    const bool direct = write_pieces(dir / "direct.safetensors", direct_options(true, reserve));
    EXPECT_EQ(testing::read_bytes(dir / "direct.safetensors"), testing::read_bytes(dir / "buffered.safetensors"));
    if (!direct) GTEST_SKIP() << dir.path << " does not take O_DIRECT: the direct path was not run";
    EXPECT_EQ(SafetensorsFile::open(dir / "direct.safetensors").tensors().size(), kPieces.size());
  }
}

// While the fault hook is armed, bytes go through the page cache (the fault
// then surfaces in the add() that crosses the budget); the stage takes over
// again once it is disarmed.
TEST_F(Writer, ArmedFaultHookBypassesTheStage) {
  write_pieces(dir / "buffered.safetensors", direct_options(false, 1000));
  {
    SafetensorsWriter w(dir / "d.safetensors", direct_options(true, 1000));
    add_pieces(w, 0, 3);
    set_write_fault_after_bytes_for_testing(int64_t{1} << 40);
    add_pieces(w, 3, 6);
    set_write_fault_after_bytes_for_testing(-1);
    add_pieces(w, 6, kPieces.size());
    w.finish();
  }
  EXPECT_EQ(testing::read_bytes(dir / "d.safetensors"), testing::read_bytes(dir / "buffered.safetensors"));
}

// A crash after a checkpoint at an unaligned length: the temporary holds the
// checkpoint's bytes, bytes added after it, and whatever else the crash left.
TEST_F(Writer, DirectWriterResumesFromACheckpoint) {
  write_pieces(dir / "clean.safetensors", direct_options(true, 1000));
  const size_t at = 4;
  SafetensorsWriterState state;
  {
    SafetensorsWriter w(dir / "r.safetensors", direct_options(true, 1000));
    w.keep_file();
    add_pieces(w, 0, at);
    state = w.checkpoint();
    EXPECT_NE((8 + state.reserve + state.data_bytes) % 4096, 0u);
    add_pieces(w, at, at + 2);
  }
  {
    std::ofstream tail(dir / "r.safetensors.tmp", std::ios::binary | std::ios::app);
    tail << std::string(5000, 'x');
  }
  auto w = SafetensorsWriter::reopen(dir / "r.safetensors", direct_options(true, 1000), state, {});
  const bool direct = w->direct();
  add_pieces(*w, at, kPieces.size());
  w->finish();
  EXPECT_EQ(testing::read_bytes(dir / "r.safetensors"), testing::read_bytes(dir / "clean.safetensors"));
  if (!direct) GTEST_SKIP() << dir.path << " does not take O_DIRECT: the direct path was not run";
}

// A folder under /dev/shm (tmpfs), removed with everything in it.
struct ShmDir {
  std::filesystem::path path = "/dev/shm/lwq_io_test_" + std::to_string(::getpid());
  ShmDir() { std::filesystem::create_directories(path); }
  ~ShmDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

bool takes_o_direct(const std::filesystem::path& file) {
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0644);
  if (fd >= 0) ::close(fd);
  std::error_code ec;
  std::filesystem::remove(file, ec);
  return fd >= 0;
}

// Where the file system refuses O_DIRECT the writer writes through the page
// cache. tmpfs refused it before Linux 6.6; later kernels take it, and this
// checks the direct path on tmpfs instead.
TEST_F(Writer, WritesWhereTheFileSystemHasNoODirect) {
  struct statfs fs_info;
  if (::statfs("/dev/shm", &fs_info) != 0 || fs_info.f_type != 0x01021994 /* TMPFS_MAGIC */)
    GTEST_SKIP() << "no tmpfs at /dev/shm";
  ShmDir shm;
  const bool expected = takes_o_direct(shm.path / "probe");
  EXPECT_EQ(write_pieces(shm.path / "s.safetensors", direct_options(true)), expected);
  write_pieces(dir / "buffered.safetensors", direct_options(false));
  EXPECT_EQ(testing::read_bytes(shm.path / "s.safetensors"), testing::read_bytes(dir / "buffered.safetensors"));
  if (expected) std::cout << "[ note ] this kernel's tmpfs takes O_DIRECT: only the direct path ran\n";
}

// A file system that takes the O_DIRECT open but refuses its writes (EINVAL):
// the writer goes on through the page cache.
TEST_F(Writer, RefusedDirectWritesGoOnBuffered) {
  write_pieces(dir / "buffered.safetensors", direct_options(false));
  {
    SafetensorsWriter w(dir / "d.safetensors", direct_options(true));
    if (!w.direct()) GTEST_SKIP() << dir.path << " does not take O_DIRECT";
    add_pieces(w, 0, 4);
    w.checkpoint();
    set_direct_write_error_for_testing(EINVAL);
    add_pieces(w, 4, kPieces.size());
    EXPECT_FALSE(w.direct());
    w.finish();
  }
  EXPECT_EQ(testing::read_bytes(dir / "d.safetensors"), testing::read_bytes(dir / "buffered.safetensors"));
}

// A failed O_DIRECT write is a failed write: the error names the file, the
// temporary is removed, or kept for a resume when asked.
TEST_F(Writer, DirectWriteErrors) {
  {
    SafetensorsWriter w(dir / "e.safetensors", direct_options(true));
    if (!w.direct()) GTEST_SKIP() << dir.path << " does not take O_DIRECT";
    w.add("a", random_tensor(DType::U8, {100}, 1));
    set_direct_write_error_for_testing(EIO);
    expect_error([&] { w.add("b", random_tensor(DType::U8, {20000}, 2)); },
                 {"cannot write", "e.safetensors", std::strerror(EIO)});
    EXPECT_TRUE(dir.files().empty());
    expect_error([&] { w.finish(); }, {"failed earlier"});
  }
  {
    SafetensorsWriter w(dir / "k.safetensors", direct_options(true));
    w.keep_file();
    w.add("a", random_tensor(DType::U8, {100}, 1));
    set_direct_write_error_for_testing(ENOSPC);
    expect_error([&] { w.checkpoint(); }, {"cannot write", "k.safetensors", "No space left"});
  }
  EXPECT_EQ(dir.files(), std::vector<std::string>{"k.safetensors.tmp"});
}

// A source that throws part-way leaves its tensor unlisted; the next tensor's
// bytes go where it started, and nothing of it stays at the end of the file.
// The failed tensor's bytes reach past the stage (written), or stay in it.
TEST_F(Writer, ThrowingRowSourceInDirectMode) {
  const Tensor a = random_tensor(DType::U8, {5000}, 1), next = random_tensor(DType::U8, {3000}, 2);
  auto write = [&](const std::string& file, bool direct, int64_t throw_at_row, bool then_next) {
    SafetensorsWriter w(dir / file, direct_options(direct, 1000));
    w.add("a", a);
    if (throw_at_row >= 0) {
      EXPECT_THROW(w.add_rows("bad", DType::U8, {30000, 1}, [&](int64_t row0, int64_t n, void* dst) {
        if (row0 + n > throw_at_row) throw Error("source failed");
        std::memset(dst, 0x5a, n);
      }, 1000), Error);
    }
    if (then_next) w.add("next", next);
    const bool d = w.direct();
    w.finish();
    return d;
  };
  for (bool then_next : {true, false}) {
    write("clean.safetensors", false, -1, then_next);
    for (int64_t throw_at_row : {2000, 20000}) {
      SCOPED_TRACE(fmt::format("throw at row {}, {}", throw_at_row, then_next ? "next tensor" : "finish"));
      write("buffered.safetensors", false, throw_at_row, then_next);
      const bool direct = write("direct.safetensors", true, throw_at_row, then_next);
      const std::string clean = testing::read_bytes(dir / "clean.safetensors");
      EXPECT_EQ(testing::read_bytes(dir / "direct.safetensors"), clean);
      EXPECT_EQ(testing::read_bytes(dir / "buffered.safetensors"), clean);
      EXPECT_NO_THROW(SafetensorsFile::open(dir / "direct.safetensors"));
      if (!direct) GTEST_SKIP() << dir.path << " does not take O_DIRECT: the direct path was not run";
    }
  }
}

}  // namespace
}  // namespace lwq
