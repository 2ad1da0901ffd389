#include "runner/calibration_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "runner/runner_test_util.h"

namespace lwq {
namespace {

using testing_util::TempDir;

// A buffer taken from one set and adopted by another (a unit's last forward
// running in its inputs' memory) keeps its values, leaves an empty slot
// behind, and is released once, by its new set: in memory and spilled.
TEST(HiddenSet, TakenBuffersMoveToTheAdoptingSet) {
  TempDir tmp;
  for (bool spill : {false, true}) {
    SCOPED_TRACE(spill ? "spilled" : "in memory");
    CalibrationStore store(spill ? 1 : uint64_t{1} << 30, tmp.path());
    store.plan(uint64_t{1} << 20);
    EXPECT_EQ(store.spilled(), spill);
    HiddenSet inputs(&store), outputs(&store);
    for (size_t n : {100u, 3000u, 7u}) {
      std::span<float> b = inputs.add(n);
      std::iota(b.begin(), b.end(), static_cast<float>(n));
    }
    outputs.adopt(inputs.take(1));
    outputs.add(5);
    EXPECT_TRUE(inputs[1].empty());
    EXPECT_EQ(inputs[0].size(), 100u);
    ASSERT_EQ(outputs.size(), 2u);
    ASSERT_EQ(outputs[0].size(), 3000u);
    EXPECT_EQ(outputs[0][0], 3000.0f);
    EXPECT_EQ(outputs[0][2999], 5999.0f);
    outputs.evict(0);  // spilled: its pages leave memory, the values stay in the file
    EXPECT_EQ(outputs[0][2999], 5999.0f);
    inputs.clear();  // the empty slot releases nothing
    EXPECT_EQ(outputs[0][1], 3001.0f);
    outputs.clear();
  }
}

}  // namespace
}  // namespace lwq
