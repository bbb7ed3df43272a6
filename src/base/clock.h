// Clock: the one source of time. Everything that needs "now" takes a Clock&;
// policies take `now` as an argument instead. RealClock (clock.cc) is the only
// code in thaw that reads the system clock; ManualClock drives tests in
// virtual time. Times are microseconds on a monotonic scale whose origin is
// unspecified; only differences are meaningful.
// Thread safety: RealClock is safe from any thread; ManualClock is not.
#pragma once

#include <cstdint>
#include <string>

namespace thaw {

using Micros = int64_t;

constexpr Micros kMicrosPerMilli = 1000;
constexpr Micros kMicrosPerSecond = 1000 * 1000;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Micros NowMicros() const = 0;
  // Wall-clock time, microseconds since the Unix epoch (UTC), for schedules
  // that follow the calendar. May jump; never use it to measure durations.
  virtual Micros WallMicros() const = 0;
};

// Monotonic system time.
class RealClock final : public Clock {
 public:
  Micros NowMicros() const override;
  Micros WallMicros() const override;
};

// Virtual time that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(Micros start = 0) : now_(start) {}
  Micros NowMicros() const override { return now_; }
  // Wall time moves with the monotonic time, from a settable origin.
  Micros WallMicros() const override { return now_ + wall_offset_; }
  void Advance(Micros delta) { now_ += delta; }
  void Set(Micros t) { now_ = t; }
  void SetWall(Micros wall) { wall_offset_ = wall - now_; }

 private:
  Micros now_;
  Micros wall_offset_ = 0;
};

// A duration in milliseconds with three decimals ("12.345"), for logs and
// JSON timing fields.
std::string MillisText(Micros us);

// Wall-clock time as "YYYY-MM-DDTHH:MM:SS.mmmZ", for log lines only.
std::string WallTimeIso8601();

}  // namespace thaw
