#include "policy/autoscaler.h"

#include <gtest/gtest.h>

#include <functional>

namespace thaw::policy {
namespace {

constexpr Micros kSecond = kMicrosPerSecond;

AutoscalerOptions Options() {
  AutoscalerOptions options;
  options.max_instances = 100;
  return options;
}

// Calls Update at every wake the autoscaler asks for in [from, until), with
// the load `concurrency(t)` and `ready(t)`, then once at `until`. Returns the
// last decision; `each` sees every decision.
AutoscaleDecision Drive(Autoscaler& autoscaler, Micros from, Micros until, const std::function<int(Micros)>& concurrency,
                        const std::function<int(Micros)>& ready,
                        const std::function<void(Micros, const AutoscaleDecision&)>& each = nullptr) {
  Micros now = from;
  while (true) {
    AutoscaleDecision d = autoscaler.Update({.now_us = now, .concurrency = concurrency(now), .ready_instances = ready(now)});
    if (each) each(now, d);
    if (now == until) return d;
    now = d.next_wake_us ? std::min(*d.next_wake_us, until) : until;
  }
}

std::function<int(Micros)> Constant(int value) {
  return [value](Micros) { return value; };
}

TEST(AutoscalerTest, ValidateNamesTheField) {
  EXPECT_TRUE(Validate(Options()).ok());
  auto expect_bad = [](AutoscalerOptions o, const std::string& field) {
    Status s = Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find("'" + field + "'"), std::string::npos) << s.message();
  };
  AutoscalerOptions o = Options();
  o.bucket_us = 0;
  expect_bad(o, "bucket_us");
  o = Options();
  o.stable_window_us = 60 * kSecond + 1;
  expect_bad(o, "stable_window_us");
  o = Options();
  o.panic_window_us = 120 * kSecond;
  expect_bad(o, "panic_window_us");
  o = Options();
  o.panic_threshold = 0.5;
  expect_bad(o, "panic_threshold");
  o = Options();
  o.target_utilization = 0;
  expect_bad(o, "target_utilization");
  o = Options();
  o.target_concurrency = 2;  // more than one instance runs
  expect_bad(o, "target_concurrency");
  o = Options();
  o.instance_concurrency = 0;
  expect_bad(o, "instance_concurrency");
  o = Options();
  o.min_instances = 5;
  o.max_instances = 4;
  expect_bad(o, "max_instances");
}

TEST(AutoscalerTest, TargetIsUtilisationOfInstanceConcurrency) {
  AutoscalerOptions o = Options();
  o.instance_concurrency = 10;
  EXPECT_DOUBLE_EQ(TargetConcurrency(o), 7.0);
  o.target_concurrency = 5;
  EXPECT_DOUBLE_EQ(TargetConcurrency(o), 5.0);
}

TEST(AutoscalerTest, SteadyLoadGivesCeilOfLoadOverTarget) {
  for (auto [load, expected] : {std::pair{5, 8}, {7, 10}, {1, 2}, {14, 20}}) {
    Autoscaler autoscaler(Options());
    // Instances already there, so no panic: only the stable window speaks.
    AutoscaleDecision d = Drive(autoscaler, 0, 120 * kSecond, Constant(load), Constant(expected));
    EXPECT_EQ(d.desired_instances, expected) << "load " << load;
    EXPECT_FALSE(d.panicking);
    EXPECT_DOUBLE_EQ(d.stable_concurrency, load);
    // A full window of the same load: nothing changes until the next observation.
    EXPECT_FALSE(d.next_wake_us.has_value());
  }
}

TEST(AutoscalerTest, AverageIsTimeWeighted) {
  AutoscalerOptions o = Options();
  o.stable_window_us = 10 * kSecond;
  o.panic_window_us = 1 * kSecond;
  Autoscaler autoscaler(o);
  autoscaler.Update({.now_us = 0, .concurrency = 6, .ready_instances = 10});
  autoscaler.Update({.now_us = 2500 * kMicrosPerMilli, .concurrency = 0, .ready_instances = 10});
  AutoscaleDecision d = autoscaler.Update({.now_us = 9500 * kMicrosPerMilli, .concurrency = 0, .ready_instances = 10});
  EXPECT_DOUBLE_EQ(d.stable_concurrency, 6 * 2.5 / 10);
  EXPECT_EQ(d.desired_instances, 3);  // ceil(1.5 / 0.7)
  // The load leaves the window with bucket 2, so it wakes each bucket until then.
  ASSERT_TRUE(d.next_wake_us.has_value());
  EXPECT_EQ(*d.next_wake_us, 10 * kSecond);
  d = Drive(autoscaler, 10 * kSecond, 13 * kSecond, Constant(0), Constant(0));
  EXPECT_EQ(d.desired_instances, 0);
  EXPECT_FALSE(d.next_wake_us.has_value());
}

TEST(AutoscalerTest, BurstPanicsAtOnceHoldsAndLeavesAfterACalmStableWindow) {
  Autoscaler autoscaler(Options());
  auto ready = Constant(2);  // the instances the burst found
  // A minute of light load: 1 request, 2 instances.
  AutoscaleDecision d = Drive(autoscaler, 0, 60 * kSecond - 1, Constant(1), ready);
  EXPECT_EQ(d.desired_instances, 2);
  EXPECT_FALSE(d.panicking);

  // Burst of 20 from 60 s to 70 s. Panic at the first observation.
  auto load = [](Micros t) { return t >= 60 * kSecond && t < 70 * kSecond ? 20 : 1; };
  d = autoscaler.Update({.now_us = 60 * kSecond, .concurrency = 20, .ready_instances = 2});
  EXPECT_TRUE(d.panicking);
  EXPECT_GT(d.desired_instances, 2);

  // While panicking desired never goes down, even after the burst ends.
  int last_desired = d.desired_instances;
  Micros left_panic_at = -1;
  int max_desired = 0;
  Drive(autoscaler, 60 * kSecond, 200 * kSecond, load, ready, [&](Micros now, const AutoscaleDecision& d) {
    if (d.panicking) {
      EXPECT_GE(d.desired_instances, last_desired) << "scaled down while panicking at " << now;
      last_desired = d.desired_instances;
      max_desired = std::max(max_desired, d.desired_instances);
    } else if (left_panic_at < 0) {
      left_panic_at = now;
      EXPECT_EQ(d.desired_instances, 2) << "back to the stable count";
    }
  });
  EXPECT_EQ(max_desired, 29);  // ceil(20 / 0.7): a full panic window of the burst
  // The panic window (buckets k-5..k) last holds a burst bucket (69) at 74 s,
  // the last time the condition holds; a full stable window later panic ends.
  EXPECT_EQ(left_panic_at, 134 * kSecond);
}

TEST(AutoscalerTest, ClampsToMinAndMax) {
  AutoscalerOptions o = Options();
  o.min_instances = 2;
  o.max_instances = 3;
  Autoscaler idle(o);
  EXPECT_EQ(idle.Update({.now_us = 0, .concurrency = 0, .ready_instances = 0}).desired_instances, 2);
  EXPECT_FALSE(idle.Update({.now_us = 5 * kSecond, .concurrency = 0, .ready_instances = 2}).next_wake_us.has_value());
  Autoscaler busy(o);
  EXPECT_EQ(Drive(busy, 0, 120 * kSecond, Constant(50), Constant(3)).desired_instances, 3);
}

TEST(AutoscalerTest, TimeNeverRunsBackwards) {
  Autoscaler autoscaler(Options());
  autoscaler.Update({.now_us = 10 * kSecond, .concurrency = 3, .ready_instances = 5});
  // An observation stamped earlier counts as made at 10 s.
  AutoscaleDecision d = autoscaler.Update({.now_us = 5 * kSecond, .concurrency = 3, .ready_instances = 5});
  EXPECT_EQ(*d.next_wake_us, 11 * kSecond);
  EXPECT_DOUBLE_EQ(d.stable_concurrency, 3.0 / 60);
}

}  // namespace
}  // namespace thaw::policy
