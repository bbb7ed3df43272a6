// Provisioned concurrency: a model's min_instances floor, raised by an
// optional weekly schedule of windows in UTC (e.g. "weekdays 08:00-18:00: 4").
//
// A window is in force from start_minute on each day in its mask until
// end_minute; an end before the start means the window crosses
// midnight into the next day (which need not be in the mask). The floor in
// force is the largest of base_min and the min_instances of every window in
// force, so windows only raise it.
// Times are wall-clock microseconds since the Unix epoch (UTC), not the
// monotonic Micros of base/clock.h: the caller converts a wake-up back.
// Errors: Validate names the window and field.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::policy {

// Day bits for ProvisionedWindow::days_mask.
constexpr uint8_t kMonday = 1 << 0, kTuesday = 1 << 1, kWednesday = 1 << 2, kThursday = 1 << 3,
                  kFriday = 1 << 4, kSaturday = 1 << 5, kSunday = 1 << 6;
constexpr uint8_t kWeekdays = kMonday | kTuesday | kWednesday | kThursday | kFriday;
constexpr uint8_t kEveryDay = kWeekdays | kSaturday | kSunday;

struct ProvisionedWindow {
  uint8_t days_mask = kEveryDay;  // days the window starts on; non-zero, bits 0..6 (Monday..Sunday)
  int start_minute = 0;           // minute of the day, UTC, in [0, 1439]
  int end_minute = 1440;          // in [1, 1440], != start_minute; < start_minute crosses midnight
  int min_instances = 0;          // >= 0
};

// At most 64 windows.
Status Validate(std::span<const ProvisionedWindow> schedule);

struct ProvisionedFloor {
  int min_instances = 0;
  std::optional<Micros> next_change_wall_us;  // when the floor next changes; nullopt: never
};

// The floor in force at wall_time_us and when it next changes.
ProvisionedFloor MinInstancesAt(std::span<const ProvisionedWindow> schedule, int base_min, Micros wall_time_us);

}  // namespace thaw::policy
