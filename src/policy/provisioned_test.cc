#include "policy/provisioned.h"

#include <gtest/gtest.h>

#include <vector>

namespace thaw::policy {
namespace {

constexpr Micros kMinute = 60 * kMicrosPerSecond;
constexpr Micros kDay = 1440 * kMinute;
// 2024-01-01, a Monday, 00:00 UTC.
constexpr Micros kWeekStart = 19723 * kDay;

// Wall time on the week of 2024-01-01: day 0 = Monday.
Micros At(int day, int hour, int minute) { return kWeekStart + day * kDay + (hour * 60 + minute) * kMinute; }

constexpr int kFri = 4, kSat = 5, kSun = 6;

TEST(ProvisionedTest, NoScheduleIsTheBaseFloorForever) {
  ProvisionedFloor floor = MinInstancesAt({}, 2, At(0, 12, 0));
  EXPECT_EQ(floor.min_instances, 2);
  EXPECT_FALSE(floor.next_change_wall_us.has_value());
}

TEST(ProvisionedTest, WeekdayBusinessHours) {
  const ProvisionedWindow schedule[] = {
      {.days_mask = kWeekdays, .start_minute = 8 * 60, .end_minute = 18 * 60, .min_instances = 4}};
  ProvisionedFloor floor = MinInstancesAt(schedule, 1, At(0, 7, 59));
  EXPECT_EQ(floor.min_instances, 1);
  EXPECT_EQ(floor.next_change_wall_us, At(0, 8, 0));

  floor = MinInstancesAt(schedule, 1, At(0, 8, 0));
  EXPECT_EQ(floor.min_instances, 4);
  EXPECT_EQ(floor.next_change_wall_us, At(0, 18, 0));

  floor = MinInstancesAt(schedule, 1, At(2, 17, 59) + 59 * kMicrosPerSecond);
  EXPECT_EQ(floor.min_instances, 4);
  EXPECT_EQ(floor.next_change_wall_us, At(2, 18, 0));

  // Friday evening: nothing until Monday morning.
  floor = MinInstancesAt(schedule, 1, At(kFri, 18, 0));
  EXPECT_EQ(floor.min_instances, 1);
  EXPECT_EQ(floor.next_change_wall_us, At(7, 8, 0));
  EXPECT_EQ(MinInstancesAt(schedule, 1, At(kSat, 12, 0)).min_instances, 1);
}

TEST(ProvisionedTest, WindowCrossingMidnight) {
  // Fridays 22:00 to Saturday 02:00.
  const ProvisionedWindow schedule[] = {
      {.days_mask = kFriday, .start_minute = 22 * 60, .end_minute = 2 * 60, .min_instances = 3}};
  EXPECT_EQ(MinInstancesAt(schedule, 0, At(kFri, 21, 59)).min_instances, 0);
  ProvisionedFloor floor = MinInstancesAt(schedule, 0, At(kFri, 23, 0));
  EXPECT_EQ(floor.min_instances, 3);
  EXPECT_EQ(floor.next_change_wall_us, At(kSat, 2, 0));
  EXPECT_EQ(MinInstancesAt(schedule, 0, At(kSat, 1, 59)).min_instances, 3);  // Saturday need not be in the mask
  floor = MinInstancesAt(schedule, 0, At(kSat, 2, 0));
  EXPECT_EQ(floor.min_instances, 0);
  EXPECT_EQ(floor.next_change_wall_us, At(kFri + 7, 22, 0));
  EXPECT_EQ(MinInstancesAt(schedule, 0, At(kSat, 23, 0)).min_instances, 0);  // Saturday's own night is not
  EXPECT_EQ(MinInstancesAt(schedule, 0, At(3, 23, 0)).min_instances, 0);     // nor Thursday's
}

TEST(ProvisionedTest, SundayNightWrapsIntoMonday) {
  const ProvisionedWindow schedule[] = {
      {.days_mask = kSunday, .start_minute = 23 * 60, .end_minute = 60, .min_instances = 2}};
  EXPECT_EQ(MinInstancesAt(schedule, 0, At(kSun, 23, 30)).min_instances, 2);
  ProvisionedFloor floor = MinInstancesAt(schedule, 0, At(7, 0, 30));  // the next Monday
  EXPECT_EQ(floor.min_instances, 2);
  EXPECT_EQ(floor.next_change_wall_us, At(7, 1, 0));
  // 1970-01-05, the first Monday after the epoch (a Thursday).
  EXPECT_EQ(MinInstancesAt(schedule, 0, 4 * kDay + 30 * kMinute).min_instances, 2);
}

TEST(ProvisionedTest, OverlappingWindowsTakeTheHighestAndNeverLowerTheBase) {
  const ProvisionedWindow schedule[] = {
      {.days_mask = kEveryDay, .start_minute = 9 * 60, .end_minute = 17 * 60, .min_instances = 2},
      {.days_mask = kEveryDay, .start_minute = 12 * 60, .end_minute = 13 * 60, .min_instances = 5},
      {.days_mask = kEveryDay, .start_minute = 0, .end_minute = 1440, .min_instances = 0},
  };
  EXPECT_EQ(MinInstancesAt(schedule, 1, At(1, 8, 0)).min_instances, 1);
  ProvisionedFloor floor = MinInstancesAt(schedule, 1, At(1, 10, 0));
  EXPECT_EQ(floor.min_instances, 2);
  EXPECT_EQ(floor.next_change_wall_us, At(1, 12, 0));
  floor = MinInstancesAt(schedule, 1, At(1, 12, 30));
  EXPECT_EQ(floor.min_instances, 5);
  EXPECT_EQ(floor.next_change_wall_us, At(1, 13, 0));
}

TEST(ProvisionedTest, AlwaysOnWindowNeverChanges) {
  const ProvisionedWindow schedule[] = {{.days_mask = kEveryDay, .start_minute = 0, .end_minute = 1440, .min_instances = 3}};
  ProvisionedFloor floor = MinInstancesAt(schedule, 0, At(2, 5, 0));
  EXPECT_EQ(floor.min_instances, 3);
  EXPECT_FALSE(floor.next_change_wall_us.has_value());
}

TEST(ProvisionedTest, ValidateNamesTheWindowAndField) {
  auto expect_bad = [](ProvisionedWindow w, const std::string& field) {
    const ProvisionedWindow schedule[] = {{}, w};
    Status s = Validate(schedule);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find("windows[1]." + field), std::string::npos) << s.message();
  };
  EXPECT_TRUE(Validate(std::vector<ProvisionedWindow>{{}, {.start_minute = 1380, .end_minute = 60}}).ok());
  expect_bad({.days_mask = 0}, "days_mask");
  expect_bad({.days_mask = 0x80}, "days_mask");
  expect_bad({.start_minute = 1440}, "start_minute");
  expect_bad({.start_minute = -1}, "start_minute");
  expect_bad({.end_minute = 0}, "end_minute");
  expect_bad({.end_minute = 1441}, "end_minute");
  expect_bad({.start_minute = 600, .end_minute = 600}, "end_minute");
  expect_bad({.min_instances = -1}, "min_instances");
  EXPECT_EQ(Validate(std::vector<ProvisionedWindow>(65)).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace thaw::policy
