#include "base/clock.h"

#include <gtest/gtest.h>

namespace thaw {
namespace {

TEST(ManualClockTest, MovesOnlyWhenTold) {
  ManualClock clock(100);
  EXPECT_EQ(clock.NowMicros(), 100);
  clock.Advance(50);
  EXPECT_EQ(clock.NowMicros(), 150);
  clock.Set(10);
  EXPECT_EQ(clock.NowMicros(), 10);
}

TEST(ManualClockTest, WallTimeMovesWithIt) {
  ManualClock clock(100);
  clock.SetWall(1'000'000);
  EXPECT_EQ(clock.WallMicros(), 1'000'000);
  clock.Advance(50);
  EXPECT_EQ(clock.WallMicros(), 1'000'050);
}

TEST(RealClockTest, WallTimeIsAfter2020) {
  EXPECT_GT(RealClock().WallMicros(), int64_t{1577836800} * kMicrosPerSecond);
}

TEST(RealClockTest, IsMonotonic) {
  RealClock clock;
  Micros a = clock.NowMicros();
  Micros b = clock.NowMicros();
  EXPECT_LE(a, b);
}

TEST(WallTimeTest, IsIso8601Utc) {
  std::string t = WallTimeIso8601();
  ASSERT_EQ(t.size(), 24u);
  EXPECT_EQ(t[4], '-');
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t.back(), 'Z');
}

}  // namespace
}  // namespace thaw
