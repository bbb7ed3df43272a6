#include "policy/keep_alive_pool.h"

#include <gtest/gtest.h>

namespace thaw::policy {
namespace {

constexpr Micros kMinute = 60 * kMicrosPerSecond;

TEST(KeepAlivePoolTest, ValidateNamesTheField) {
  EXPECT_TRUE(Validate(KeepAlivePoolOptions{}).ok());
  const Status s = Validate({.raise_surplus = 0.02, .lower_surplus = 0.03});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("lower_surplus"), std::string::npos) << s.message();
  EXPECT_FALSE(Validate({.half_life_us = 0}).ok());
}

// Plans that save (half of fixed's memory) raise the factor one level per
// step interval, up to the top; plans spending all of fixed's and more bring
// it back down to 1.
TEST(KeepAlivePoolTest, SavingsRaiseTheFactorAndSpendingLowersIt) {
  KeepAlivePool pool;
  EXPECT_EQ(pool.factor(), 1);
  Micros now = 0;
  for (int i = 0; i < 200; ++i) pool.Record(50, 100, now += kMinute);
  EXPECT_NEAR(pool.surplus(), 0.5, 1e-9);
  EXPECT_EQ(pool.factor(), 4);
  for (int i = 0; i < 400; ++i) pool.Record(130, 100, now += kMinute);
  EXPECT_LT(pool.surplus(), 0);
  EXPECT_EQ(pool.factor(), 1);
}

TEST(KeepAlivePoolTest, StepsAtMostOncePerInterval) {
  KeepAlivePool pool({.min_step_interval_us = 10 * kMinute});
  Micros now = 10 * kMinute;
  pool.Record(0, 100, now);
  EXPECT_EQ(pool.factor(), 1.25);
  for (int i = 0; i < 9; ++i) pool.Record(0, 100, now += kMinute);
  EXPECT_EQ(pool.factor(), 1.25);
  pool.Record(0, 100, now += kMinute);
  EXPECT_EQ(pool.factor(), 1.5);
}

// Between lower_surplus and raise_surplus the factor holds.
TEST(KeepAlivePoolTest, HoldsInsideTheBand) {
  // A half-life of 1 us: the sums are the last record's, a minute later.
  KeepAlivePool pool({.half_life_us = 1, .min_step_interval_us = 0});
  Micros now = 0;
  for (int i = 0; i < 3; ++i) pool.Record(80, 100, now += kMinute);  // surplus 0.2: up three levels
  EXPECT_EQ(pool.factor(), 2);
  for (int i = 0; i < 100; ++i) pool.Record(95, 100, now += kMinute);
  EXPECT_NEAR(pool.surplus(), 0.05, 1e-9);
  EXPECT_EQ(pool.factor(), 2);
  pool.Record(98, 100, now += kMinute);
  EXPECT_EQ(pool.factor(), 1.5);
}

// The sums forget: after a day of spending, the savings of the day before
// weigh 2^-24 and no longer fund it.
TEST(KeepAlivePoolTest, OldSavingsFade) {
  KeepAlivePool pool({.min_step_interval_us = 0});
  Micros now = 0;
  for (int i = 0; i < 60; ++i) pool.Record(0, 100, now += kMinute);
  EXPECT_EQ(pool.factor(), 4);
  for (int i = 0; i < 24 * 60; ++i) pool.Record(100, 100, now += kMinute);
  EXPECT_NEAR(pool.surplus(), 0, 1e-3);
  EXPECT_EQ(pool.factor(), 1);
}

TEST(KeepAlivePoolTest, UnpooledStaysAtOne) {
  KeepAlivePool pool({.min_step_interval_us = 0, .pooled = false});
  for (int i = 1; i < 100; ++i) pool.Record(0, 100, i * kMinute);
  EXPECT_EQ(pool.factor(), 1);
  EXPECT_NEAR(pool.surplus(), 1, 1e-9);
}

}  // namespace
}  // namespace thaw::policy
