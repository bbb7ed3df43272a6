#include "policy/provisioned.h"

#include <algorithm>
#include <string>
#include <vector>

namespace thaw::policy {
namespace {

constexpr Micros kMinuteUs = 60 * kMicrosPerSecond;
constexpr Micros kDayUs = 1440 * kMinuteUs;
constexpr Micros kWeekUs = 7 * kDayUs;
// 1970-01-01 was a Thursday: day 3 counting from Monday = 0.
constexpr Micros kEpochWeekOffsetUs = 3 * kDayUs;

Micros FloorMod(Micros a, Micros b) {
  const Micros r = a % b;
  return r < 0 ? r + b : r;
}

Micros WindowLengthUs(const ProvisionedWindow& w) {
  const int minutes = w.end_minute > w.start_minute ? w.end_minute - w.start_minute
                                                    : w.end_minute + 1440 - w.start_minute;
  return minutes * kMinuteUs;
}

// Starts of the window's occurrences, as offsets into the week from Monday 00:00 UTC.
std::vector<Micros> OccurrenceStarts(const ProvisionedWindow& w) {
  std::vector<Micros> starts;
  for (int day = 0; day < 7; ++day) {
    if (w.days_mask & (1 << day)) starts.push_back(day * kDayUs + w.start_minute * kMinuteUs);
  }
  return starts;
}

int FloorAtWeekOffset(std::span<const ProvisionedWindow> schedule, int base_min, Micros week_offset_us) {
  int floor = base_min;
  for (const ProvisionedWindow& w : schedule) {
    const Micros length = WindowLengthUs(w);
    for (Micros start : OccurrenceStarts(w)) {
      // Modulo the week, so Sunday's window that crosses midnight covers Monday morning.
      if (FloorMod(week_offset_us - start, kWeekUs) < length) floor = std::max(floor, w.min_instances);
    }
  }
  return floor;
}

}  // namespace

Status Validate(std::span<const ProvisionedWindow> schedule) {
  if (schedule.size() > 64) return InvalidArgument("provisioned schedule has " + std::to_string(schedule.size()) +
                                                   " windows; at most 64");
  for (size_t i = 0; i < schedule.size(); ++i) {
    const ProvisionedWindow& w = schedule[i];
    auto bad = [&](const std::string& field, const std::string& why) {
      return InvalidArgument("provisioned schedule windows[" + std::to_string(i) + "]." + field + " " + why);
    };
    if (w.days_mask == 0 || (w.days_mask & ~kEveryDay) != 0)
      return bad("days_mask", "must name at least one day and only bits 0..6");
    if (w.start_minute < 0 || w.start_minute > 1439) return bad("start_minute", "must be in [0, 1439]");
    if (w.end_minute < 1 || w.end_minute > 1440) return bad("end_minute", "must be in [1, 1440]");
    if (w.end_minute == w.start_minute) return bad("end_minute", "must differ from start_minute");
    if (w.min_instances < 0) return bad("min_instances", "must be >= 0");
  }
  return Status::Ok();
}

ProvisionedFloor MinInstancesAt(std::span<const ProvisionedWindow> schedule, int base_min, Micros wall_time_us) {
  const Micros offset = FloorMod(wall_time_us + kEpochWeekOffsetUs, kWeekUs);
  ProvisionedFloor result;
  result.min_instances = FloorAtWeekOffset(schedule, base_min, offset);

  // The floor can only change at a window's start or end: try them in time
  // order over the coming week.
  std::vector<Micros> ahead;
  for (const ProvisionedWindow& w : schedule) {
    for (Micros start : OccurrenceStarts(w)) {
      for (Micros edge : {start, start + WindowLengthUs(w)}) {
        const Micros delta = FloorMod(edge - offset, kWeekUs);
        ahead.push_back(delta == 0 ? kWeekUs : delta);
      }
    }
  }
  std::sort(ahead.begin(), ahead.end());
  ahead.erase(std::unique(ahead.begin(), ahead.end()), ahead.end());
  for (Micros delta : ahead) {
    if (FloorAtWeekOffset(schedule, base_min, FloorMod(offset + delta, kWeekUs)) != result.min_instances) {
      result.next_change_wall_us = wall_time_us + delta;
      break;
    }
  }
  return result;
}

}  // namespace thaw::policy
