#include "util/scratch.h"

#include <gtest/gtest.h>

#include <vector>

namespace lwq {
namespace {

// A block given back is what the next request of a fitting size gets: the
// pool maps nothing new for a buffer that recurs.
TEST(ScratchPool, ReusesAGivenBackBlockOfAFittingSize) {
  trim_scratch_pool();
  trim_scratch_pool();  // nothing idle from earlier tests
  void* first;
  {
    Scratch<float> a(1 << 20);  // 4 MiB
    first = a.data();
    a[0] = 1.0f;
    a[(1 << 20) - 1] = 2.0f;
  }
  const size_t mapped = scratch_pool_bytes();
  {
    Scratch<float> b(900000);  // smaller, within 4x: the same block
    EXPECT_EQ(b.data(), first);
    EXPECT_EQ(b.size(), 900000u);
  }
  EXPECT_EQ(scratch_pool_bytes(), mapped);
  {
    Scratch<int8_t> tiny(1000);  // a quarter of the idle block or less: not that block
    EXPECT_NE(static_cast<void*>(tiny.data()), first);
  }
}

// Growing past the block exchanges it; two live buffers never share one.
TEST(ScratchPool, LiveBuffersAreDistinctAndGrowByExchange) {
  Scratch<float> a(1000), b(1000);
  EXPECT_NE(a.data(), b.data());
  a[999] = 3.0f;
  a.resize(10);  // shrinking keeps the block and its contents
  EXPECT_EQ(a.size(), 10u);
  a.resize(1 << 22);
  EXPECT_EQ(a.size(), size_t{1} << 22);
  a[(1 << 22) - 1] = 4.0f;  // the new block is writable to its end
  EXPECT_EQ(a[(1 << 22) - 1], 4.0f);
  a.clear();
  EXPECT_TRUE(a.empty());
}

// A miss drops the idle blocks too small to serve it, and a trim the blocks
// no one took since the previous trim: the pool holds what recurs.
TEST(ScratchPool, MissesAndTrimsDropBlocksThatNoLongerServe) {
  trim_scratch_pool();
  trim_scratch_pool();
  const size_t base = scratch_pool_bytes();
  { Scratch<char> small(1 << 20); }
  EXPECT_EQ(scratch_pool_bytes(), base + (1 << 20));
  { Scratch<char> large(8 << 20); }  // the 1 MiB block cannot serve it and goes
  EXPECT_EQ(scratch_pool_bytes(), base + (8 << 20));
  trim_scratch_pool();  // taken since the last trim: kept
  EXPECT_EQ(scratch_pool_bytes(), base + (8 << 20));
  trim_scratch_pool();  // not taken since: unmapped
  EXPECT_EQ(scratch_pool_bytes(), base);
}

// Containers on the pool: small requests are plain heap memory, large ones
// pool blocks given back when the container frees them.
TEST(ScratchAllocator, VectorsOnThePool) {
  trim_scratch_pool();
  trim_scratch_pool();
  const size_t base = scratch_pool_bytes();
  std::vector<int8_t, ScratchAllocator<int8_t>> small(100, 7);
  EXPECT_EQ(scratch_pool_bytes(), base);
  std::vector<int8_t, ScratchAllocator<int8_t>> large(kScratchAllocatorMin, 5);
  EXPECT_GE(scratch_pool_bytes(), base + kScratchAllocatorMin);
  large.push_back(9);  // regrowth: a new block, the contents moved
  EXPECT_EQ(large.front(), 5);
  EXPECT_EQ(large.back(), 9);
  EXPECT_EQ(small[99], 7);
  large.clear();
  large.shrink_to_fit();  // the block goes back to the pool
  trim_scratch_pool();
  trim_scratch_pool();
  EXPECT_EQ(scratch_pool_bytes(), base);
}

}  // namespace
}  // namespace lwq
