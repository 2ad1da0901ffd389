#include "quant/observer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "util/error.h"

namespace lwq {
namespace {

TEST(MinMaxObserver, RunningMaxAggregationOverCalls) {
  MinMaxObserver obs;
  std::vector<float> a = {1.0f, -2.0f, 0.25f}, b = {3.0f, 0.5f};
  obs.update(a);
  obs.update(b);
  EXPECT_EQ(obs.calls(), 2);
  EXPECT_EQ(obs.min_val(), std::vector<float>{-2.0f});
  EXPECT_EQ(obs.max_val(), std::vector<float>{3.0f});
  QParams p = observer_qparams(obs, 8, false);
  EXPECT_NEAR(p.scale[0], 5.0 / 255, 1e-7);
  EXPECT_EQ(p.offset[0], round_half_even(2.0f / p.scale[0]) - 128);
}

TEST(MinMaxObserver, MeanAggregation) {
  MinMaxObserver obs(1, Aggregation::Mean);
  std::vector<float> a = {1.0f, -2.0f}, b = {3.0f, 0.5f};
  obs.update(a);
  obs.update(b);
  EXPECT_FLOAT_EQ(obs.min_val()[0], (-2.0f + 0.5f) / 2);
  EXPECT_FLOAT_EQ(obs.max_val()[0], (1.0f + 3.0f) / 2);
}

TEST(MinMaxObserver, PerChannelUsesLastDim) {
  MinMaxObserver obs(3);
  // [2 rows, 3 channels]
  std::vector<float> x = {1, -5, 2,
                          -1, 4, 7};
  obs.update(x);
  EXPECT_EQ(obs.min_val(), (std::vector<float>{-1, -5, 2}));
  EXPECT_EQ(obs.max_val(), (std::vector<float>{1, 4, 7}));
  std::vector<float> bad = {1, 2};
  EXPECT_THROW(obs.update(bad), Error);
}

TEST(MinMaxObserver, NoStatsAndReset) {
  MinMaxObserver obs;
  EXPECT_FALSE(obs.has_stats());
  EXPECT_THROW(obs.min_val(), Error);
  obs.update({});  // an expert that received no tokens
  EXPECT_THROW(obs.max_val(), Error);
  std::vector<float> x = {2.0f};
  obs.update(x);
  EXPECT_TRUE(obs.has_stats());
  obs.reset();
  EXPECT_THROW(obs.min_val(), Error);
}

TEST(MinMaxObserver, RejectsNonFinite) {
  MinMaxObserver obs;
  std::vector<float> x = {1.0f, std::nanf("")};
  EXPECT_THROW(obs.update(x), Error);
  EXPECT_THROW(MinMaxObserver(0), Error);
}

}  // namespace
}  // namespace lwq
