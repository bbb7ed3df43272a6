// Keep-alive pool: one memory budget for the adaptive keep-alive plans of
// all models on a node, the memory the fixed policy would hold for them.
//
// Each adaptive plan is judged on its model's history (idle_windows.h) and
// reports what it expects to hold per idle period, and what the fixed policy
// would, in MB-us (instance time and template time at their charges). The
// pool keeps time-decayed sums of both. From their gap, the surplus, it sets
// one factor for every model: a plan may hold up to factor x fixed's memory
// (IdleWindowOptions::held_factor). Models whose plans save (a template
// released, a pause unloaded) so fund models whose longer windows cut cold
// starts: for Poisson arrivals, the cold starts one instance-second saves
// grow with the model's rate, so memory is worth more on busier models.
//
// Control: the factor steps up one level while the surplus exceeds
// raise_surplus and down one while it is below lower_surplus, at most once
// per min_step_interval_us, between 1 and the largest level.
//
// Guarantees: on the histories, the plans together hold about
// (1 - surplus) of fixed's memory; a surplus below lower_surplus brings the
// factor back towards 1, where each plan holds at most its own model's fixed
// memory (keep_alive.h). Cold starts stay per model: a plan's pessimistic
// cold share is at most 1.05x fixed's at every factor.
//
// Pure: no clock, no I/O; `now_us` in. Thread safety: a value type, not
// thread-safe. Errors: Validate.
#pragma once

#include "base/clock.h"
#include "base/status.h"

namespace thaw::policy {

struct KeepAlivePoolOptions {
  Micros half_life_us = 3600 * kMicrosPerSecond;  // the sums weigh half after this; > 0
  double raise_surplus = 0.10;                     // in (lower_surplus, 1)
  double lower_surplus = 0.03;                     // in [0, raise_surplus)
  Micros min_step_interval_us = 300 * kMicrosPerSecond;  // >= 0
  bool pooled = true;  // false: the factor stays 1 (each model on its own budget)
};

Status Validate(const KeepAlivePoolOptions& options);

class KeepAlivePool {
 public:
  // The factor's levels, lowest first.
  static constexpr double kLevels[] = {1, 1.25, 1.5, 2, 3, 4};

  explicit KeepAlivePool(const KeepAlivePoolOptions& options = {});  // requires Validate(options).ok()

  // An adaptive plan made at now_us (non-decreasing across calls) expects to
  // hold planned_mb_us per idle period where the fixed policy would hold
  // fixed_mb_us. May step the factor.
  void Record(double planned_mb_us, double fixed_mb_us, Micros now_us);

  double factor() const { return kLevels[level_]; }
  // 1 - planned / fixed over the decayed sums; 0 before any record.
  double surplus() const;

 private:
  KeepAlivePoolOptions options_;
  double planned_ = 0, fixed_ = 0;
  Micros last_us_ = 0;
  Micros last_step_us_ = 0;
  int level_ = 0;
};

}  // namespace thaw::policy
