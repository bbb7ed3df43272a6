// Idle windows: the planning core of the adaptive keep-alive policy
// (keep_alive.h, KeepAliveKind::kAdaptive).
//
// IdleHistory is a model's recent idle times (from the end of its work to the
// next arrival) in logarithmic bins, each sample weighing half as much after
// half_life_us of time, so the plan follows drift. Time, not a count of
// samples: a burst's thousands of short idle times must not wash out the
// few long ones between bursts, which decide the plan. PlanIdleWindows picks,
// for the next idle period, at most two windows in which one instance is
// kept warm: [0, hold_until] from the start of the period, and a pre-warm
// window [prewarm_at, keep_until] later (the instance is started lead_us
// before prewarm_at, so it is ready there). Outside the windows the model
// holds no instance, and an arrival there is a cold start.
//
// The choice, on the history's distribution (uniform inside a bin):
//  1. The reference is the fixed policy, one window [0, fixed_keep_us]. A
//     plan is judged by a pessimistic cold share: where it leaves part of
//     fixed's window uncovered, that part's share is estimated (k + 1) /
//     (n + 2) of the n idle times beyond the plan's first window (k fell
//     in it), and a plan's departure from fixed carries significance_z
//     standard errors. A plan that gives up part of fixed's window needs
//     min_samples_beyond idle times beyond its first window. Allowed plans
//     hold at most held_factor x fixed's expected memory and have a pessimistic
//     cold share at most (1 + max_cold_increase) x fixed's: never much
//     worse than fixed on either axis (on memory: on the node's, with a
//     factor above 1), by construction, on the history (and with that
//     margin for what it has not seen).
//  2. If some allowed plan cuts the pessimistic cold share by
//     min_gain_fraction, cold starts come first: with best_cold the lowest,
//     plans within (1 - cold_cut_share) of the way from best_cold back to
//     fixed's share qualify. Otherwise every allowed plan qualifies. The
//     qualifying plan holding the least memory wins.
//  3. Unless it beats fixed by min_gain_fraction on cold starts or on time
//     held, the plan is fixed's.
// Levels: a held template (with its standby) costs template_weight
// instances of memory and only makes extra instances start fast; for the next
// arrival a warm instance is the better level (no start at all) and the
// cheaper one whenever template_weight >= 1. So where the fixed policy would
// also hold the template for template_keep_us, an adaptive plan keeps it only
// for the first min(template_keep_us, min_hold_us, hold_until) of the idle
// period (a burst's short pauses keep their fast scale-out), and spends the
// memory saved on instance time. Memory held (held_us, the limit in 1) is
// instance time plus template time x template_weight, for both plans.
//
// Window ends lie on bin edges (bins are 2^(1/4) wide: 19 % margin) or at
// fixed_keep_us or min_hold_us; a first window shorter than min_hold_us is
// not used (a plan either keeps the instance that long or unloads it at
// once for a pre-warm), nor a pause shorter than it between the windows.
//
// Guarantees: pure and deterministic; memory is kIdleBins doubles x 2;
// PlanIdleWindows is O(P^3) in P, the bin edges of non-negligible bins
// (at most 2 x kIdleBins, typically a few dozen).
// Thread safety: value types; not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "base/clock.h"

namespace thaw::policy {

// Bin i > 0 covers [kIdleBinBaseUs x 2^((i-1)/4), kIdleBinBaseUs x 2^(i/4));
// bin 0 is [0, kIdleBinBaseUs); idle times beyond the last edge (about 2.2
// days) are counted as beyond every window.
constexpr Micros kIdleBinBaseUs = 10 * kMicrosPerMilli;
constexpr int kIdleBins = 100;

class IdleHistory {
 public:
  explicit IdleHistory(Micros half_life_us = 24 * 3600 * kMicrosPerSecond);  // > 0

  // An idle time that ended at now_us (non-decreasing across calls).
  // Negative idle times count as 0.
  void Record(Micros idle_us, Micros now_us);

  double weight() const { return total_; }  // decayed sample count
  double overflow() const { return overflow_; }
  const std::array<double, kIdleBins>& bins() const { return bins_; }
  static Micros Edge(int i);  // lower edge of bin i; Edge(kIdleBins) is the last upper edge
  static int BinOf(Micros idle_us);  // kIdleBins for beyond the last edge

 private:
  Micros half_life_us_;
  Micros last_us_ = 0;
  std::array<double, kIdleBins> bins_{};
  double overflow_ = 0;
  double total_ = 0;
};

struct IdleWindowOptions {
  Micros fixed_keep_us = 600 * kMicrosPerSecond;  // the reference fixed keep-alive
  Micros lead_us = 0;                             // start-to-ready of a pre-warmed instance
  Micros min_hold_us = 60 * kMicrosPerSecond;     // shortest first window worth having
  double cold_cut_share = 0.9;                    // in [0, 1]
  double min_gain_fraction = 0.05;                // in [0, 1)
  double significance_z = 2;                      // >= 0
  double min_samples_beyond = 10;                 // > 0
  double max_cold_increase = 0.05;                // >= 0
  // The template the fixed policy holds after the work ends: for how long
  // (0 = none, not on the template path) and its memory in instances
  // (template + standby charge / instance charge), times the share of idle
  // periods in which the fixed policy holds one (the model was hot).
  Micros template_keep_us = 0;  // >= 0
  double template_weight = 0;   // >= 0
  // Allowed plans hold at most this times fixed's memory: 1 on the model's
  // own budget, more when the node's other models saved (keep_alive_pool.h).
  double held_factor = 1;  // >= 1
};

struct IdleWindows {
  Micros hold_until_us = 0;                 // first window [0, hold_until]; 0 = unload at once
  std::optional<Micros> prewarm_at_us;      // second window, ready at prewarm_at (relative)
  Micros keep_until_us = 0;                 // its end (relative); = hold_until without one
  Micros template_until_us = 0;             // the template is kept until then (relative; fixed: template_keep_us)
  bool fixed = true;                        // the reference plan was kept
  // Expected per idle period, on the history: the share of idle periods
  // that end in a cold start (the plan's pessimistic one, as in 1), and
  // memory held in instance-us (instances, plus the template weighted); the
  // plan's and fixed's.
  double cold_share = 0, fixed_cold_share = 0;
  double held_us = 0, fixed_held_us = 0;
};

IdleWindows PlanIdleWindows(const IdleHistory& history, const IdleWindowOptions& options);

}  // namespace thaw::policy
