#include "policy/keep_alive.h"

#include <gtest/gtest.h>

#include <functional>

namespace thaw::policy {
namespace {

constexpr Micros kSecond = kMicrosPerSecond;
constexpr Micros kMilli = kMicrosPerMilli;

// Small bins so tests stay short: 1 s bins over 60 s, fixed keep-alive 10 s.
KeepAliveOptions Options(KeepAliveKind kind) {
  KeepAliveOptions o;
  o.kind = kind;
  o.keep_alive_us = 10 * kSecond;
  o.bin_width_us = 1 * kSecond;
  o.range_us = 60 * kSecond;
  return o;
}

TEST(KeepAliveOptionsTest, ValidateNamesTheField) {
  EXPECT_TRUE(Validate(KeepAliveOptions()).ok());
  EXPECT_TRUE(Validate(Options(KeepAliveKind::kHistogram)).ok());
  auto expect_bad = [](KeepAliveOptions o, const std::string& field) {
    Status s = Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find("'" + field + "'"), std::string::npos) << s.message();
  };
  KeepAliveOptions o = Options(KeepAliveKind::kHistogram);
  o.keep_alive_us = -1;
  expect_bad(o, "keep_alive_us");
  o = Options(KeepAliveKind::kHistogram);
  o.bin_width_us = 0;
  expect_bad(o, "bin_width_us");
  o = Options(KeepAliveKind::kHistogram);
  o.range_us = 61 * kSecond + 1;
  expect_bad(o, "range_us");
  o = Options(KeepAliveKind::kHistogram);
  o.head_percentile = 100;
  expect_bad(o, "head_percentile");
  o = Options(KeepAliveKind::kHistogram);
  o.tail_percentile = 4;
  expect_bad(o, "tail_percentile");
  o = Options(KeepAliveKind::kHistogram);
  o.margin_fraction = 1;
  expect_bad(o, "margin_fraction");
  o = Options(KeepAliveKind::kHistogram);
  o.min_samples = 0;
  expect_bad(o, "min_samples");
  o = Options(KeepAliveKind::kHistogram);
  o.min_cv = -1;
  expect_bad(o, "min_cv");
  o = Options(KeepAliveKind::kHistogram);
  o.max_out_of_range_fraction = 1.5;
  expect_bad(o, "max_out_of_range_fraction");
}

TEST(FixedKeepAliveTest, StopsExactlyAtKeepAlive) {
  KeepAlivePolicy policy(Options(KeepAliveKind::kFixed));
  policy.OnArrival(0);
  const Micros ended = 1 * kSecond;
  IdlePlan plan = policy.OnIdle(ended);
  EXPECT_FALSE(plan.unload_now);
  EXPECT_FALSE(plan.prewarm_at_us.has_value());
  EXPECT_EQ(plan.keep_until_us, ended + 10 * kSecond);
  EXPECT_EQ(plan.source, PlanSource::kFixed);

  IdleVerdict before = policy.CheckIdleInstance(ended, ended + 10 * kSecond - 1);
  EXPECT_FALSE(before.stop);
  EXPECT_EQ(before.next_wake_us, ended + 10 * kSecond);
  IdleVerdict at = policy.CheckIdleInstance(ended, *before.next_wake_us);
  EXPECT_TRUE(at.stop);
  EXPECT_FALSE(at.next_wake_us.has_value());
}

TEST(FixedKeepAliveTest, ZeroKeepAliveUnloadsAtOnce) {
  KeepAliveOptions o = Options(KeepAliveKind::kFixed);
  o.keep_alive_us = 0;
  KeepAlivePolicy policy(o);
  EXPECT_TRUE(policy.OnIdle(5).unload_now);
  EXPECT_TRUE(policy.CheckIdleInstance(5, 5).stop);
}

TEST(IdleHistogramTest, BinsCountsAndPercentiles) {
  IdleHistogram h(Options(KeepAliveKind::kHistogram));
  h.Record(-5);                     // counts as 0
  h.Record(2500 * kMilli);          // bin 2
  h.Record(2999 * kMilli);          // bin 2
  h.Record(3 * kSecond);            // bin 3
  h.Record(60 * kSecond);           // out of range
  EXPECT_EQ(h.total(), 5);
  EXPECT_EQ(h.out_of_range(), 1);
  EXPECT_EQ(h.bins()[0], 1);
  EXPECT_EQ(h.bins()[2], 2);
  EXPECT_EQ(h.bins()[3], 1);
  EXPECT_EQ(h.PercentileBin(5), 0);
  EXPECT_EQ(h.PercentileBin(50), 2);
  EXPECT_EQ(h.PercentileBin(99), 3);
}

TEST(HistogramKeepAliveTest, PeriodicIdleTimesGiveAPrewarmWindow) {
  const KeepAliveOptions o = Options(KeepAliveKind::kHistogram);
  IdleHistogram h(o);
  for (int i = 0; i < 10; ++i) h.Record(20 * kSecond + i * 50 * kMilli);  // all in bin [20 s, 21 s)
  const Micros ended = 1000 * kSecond;
  IdlePlan plan = PlanIdlePeriod(o, h, ended);
  EXPECT_EQ(plan.source, PlanSource::kHistogram);
  EXPECT_TRUE(plan.unload_now);
  // Head 20 s less 10 %; kept until the tail (21 s) plus 10 % of the window.
  ASSERT_TRUE(plan.prewarm_at_us.has_value());
  EXPECT_EQ(*plan.prewarm_at_us, ended + 18 * kSecond);
  EXPECT_EQ(plan.keep_until_us, ended + 18 * kSecond + 3300 * kMilli);
}

TEST(HistogramKeepAliveTest, HeadInFirstBinKeepsLoadedUntilTheTail) {
  const KeepAliveOptions o = Options(KeepAliveKind::kHistogram);
  IdleHistogram h(o);
  for (int i = 0; i < 10; ++i) h.Record(i < 5 ? 200 * kMilli : 4 * kSecond + 100 * kMilli);
  IdlePlan plan = PlanIdlePeriod(o, h, 0);
  EXPECT_EQ(plan.source, PlanSource::kHistogram);
  EXPECT_FALSE(plan.unload_now);
  EXPECT_FALSE(plan.prewarm_at_us.has_value());
  EXPECT_EQ(plan.keep_until_us, 5500 * kMilli);  // tail 5 s, plus 10 %
}

TEST(HistogramKeepAliveTest, FallsBackToFixedWithTooFewSamples) {
  const KeepAliveOptions o = Options(KeepAliveKind::kHistogram);
  IdleHistogram h(o);
  for (int i = 0; i < 9; ++i) h.Record(20 * kSecond);
  IdlePlan plan = PlanIdlePeriod(o, h, 100);
  EXPECT_EQ(plan.source, PlanSource::kTooFewSamples);
  EXPECT_FALSE(plan.unload_now);
  EXPECT_FALSE(plan.prewarm_at_us.has_value());
  EXPECT_EQ(plan.keep_until_us, 100 + o.keep_alive_us);
  h.Record(20 * kSecond);
  EXPECT_EQ(PlanIdlePeriod(o, h, 100).source, PlanSource::kHistogram);
}

TEST(HistogramKeepAliveTest, FallsBackToFixedWhenTooSpread) {
  const KeepAliveOptions o = Options(KeepAliveKind::kHistogram);
  IdleHistogram h(o);
  for (int i = 0; i < 60; ++i) h.Record(i * kSecond + 1);  // one in every bin: CV 0
  EXPECT_DOUBLE_EQ(h.BinCv(), 0.0);
  IdlePlan plan = PlanIdlePeriod(o, h, 0);
  EXPECT_EQ(plan.source, PlanSource::kTooSpread);
  EXPECT_EQ(plan.keep_until_us, o.keep_alive_us);
}

TEST(HistogramKeepAliveTest, FallsBackToFixedWhenTooManyOutOfRange) {
  const KeepAliveOptions o = Options(KeepAliveKind::kHistogram);
  IdleHistogram h(o);
  for (int i = 0; i < 9; ++i) h.Record(20 * kSecond);
  h.Record(3600 * kSecond);  // 1 of 10 beyond the range: at the 10 % limit
  EXPECT_EQ(PlanIdlePeriod(o, h, 0).source, PlanSource::kHistogram);
  h.Record(3600 * kSecond);  // 2 of 11: over it
  IdlePlan plan = PlanIdlePeriod(o, h, 0);
  EXPECT_EQ(plan.source, PlanSource::kOutOfRange);
  EXPECT_EQ(plan.keep_until_us, o.keep_alive_us);
}

TEST(HistogramKeepAliveTest, BusyModelAgesSurplusInstancesByFixedKeepAlive) {
  KeepAlivePolicy policy(Options(KeepAliveKind::kHistogram));
  policy.OnArrival(0);  // busy: no plan
  EXPECT_FALSE(policy.plan().has_value());
  EXPECT_EQ(policy.CheckIdleInstance(2 * kSecond, 3 * kSecond).next_wake_us, 12 * kSecond);
  EXPECT_TRUE(policy.CheckIdleInstance(2 * kSecond, 12 * kSecond).stop);
}

TEST(HistogramKeepAliveTest, IdleInstanceStopsBeforePrewarmAndAtKeepUntil) {
  KeepAlivePolicy policy(Options(KeepAliveKind::kHistogram));
  Micros t = 0;
  for (int i = 0; i < 10; ++i) {
    policy.OnArrival(t);
    t += 100 * kMilli;
    policy.OnIdle(t);
    t += 30 * kSecond;
  }
  policy.OnArrival(t);
  const Micros ended = t + 100 * kMilli;
  IdlePlan plan = policy.OnIdle(ended);
  ASSERT_EQ(plan.source, PlanSource::kHistogram);
  ASSERT_TRUE(plan.prewarm_at_us.has_value());
  EXPECT_EQ(*plan.prewarm_at_us, ended + 27 * kSecond);
  EXPECT_TRUE(policy.CheckIdleInstance(ended, ended).stop);  // unload at once
  // The pre-warmed instance is kept until keep_until, then stopped.
  const Micros ready = *plan.prewarm_at_us + 500 * kMilli;
  IdleVerdict kept = policy.CheckIdleInstance(ready, ready);
  EXPECT_FALSE(kept.stop);
  EXPECT_EQ(kept.next_wake_us, plan.keep_until_us);
  EXPECT_TRUE(policy.CheckIdleInstance(ready, plan.keep_until_us).stop);
  // An arrival ends the idle period and records its idle time.
  policy.OnArrival(ended + 30 * kSecond);
  EXPECT_FALSE(policy.plan().has_value());
  EXPECT_EQ(policy.histogram().total(), 11);
}

KeepAlivePolicy TrainedOnPeriod(Micros idle, Micros* ended) {
  KeepAlivePolicy policy(Options(KeepAliveKind::kHistogram));
  Micros t = 0;
  for (int i = 0; i <= 10; ++i) {
    policy.OnArrival(t);
    t += 100 * kMilli;
    *ended = t;
    if (i < 10) {
      policy.OnIdle(t);
      t += idle;
    }
  }
  return policy;  // busy; the caller ends the invocation at *ended
}

TEST(KeepAliveDecideTest, UnloadsWaitsForPrewarmThenAsksForOne) {
  Micros ended = 0;
  KeepAlivePolicy policy = TrainedOnPeriod(30 * kSecond, &ended);
  IdlePlan plan = policy.OnIdle(ended);
  ASSERT_EQ(plan.source, PlanSource::kHistogram);
  const IdleInstance idle[] = {{.id = 9, .idle_since_us = ended}};
  KeepAliveActions now = policy.Decide(idle, 1, 0, ended);
  EXPECT_EQ(now.stop, std::vector<uint64_t>{9});
  EXPECT_FALSE(now.prewarm_now);
  EXPECT_EQ(now.next_wake_us, plan.prewarm_at_us);

  KeepAliveActions at_prewarm = policy.Decide({}, 0, 0, *plan.prewarm_at_us);
  EXPECT_TRUE(at_prewarm.prewarm_now);
  // Not while one is already starting, nor after keep_until.
  EXPECT_FALSE(policy.Decide({}, 1, 0, *plan.prewarm_at_us).prewarm_now);
  EXPECT_FALSE(policy.Decide({}, 0, 0, plan.keep_until_us).prewarm_now);

  const IdleInstance warmed[] = {{.id = 10, .idle_since_us = *plan.prewarm_at_us + kSecond}};
  KeepAliveActions kept = policy.Decide(warmed, 1, 0, *plan.prewarm_at_us + kSecond);
  EXPECT_TRUE(kept.stop.empty());
  EXPECT_EQ(kept.next_wake_us, plan.keep_until_us);
  KeepAliveActions expired = policy.Decide(warmed, 1, 0, plan.keep_until_us);
  EXPECT_EQ(expired.stop, std::vector<uint64_t>{10});
  EXPECT_FALSE(expired.prewarm_now);
  EXPECT_FALSE(expired.next_wake_us.has_value());
}

TEST(KeepAliveDecideTest, NeverBelowMinInstances) {
  Micros ended = 0;
  KeepAlivePolicy policy = TrainedOnPeriod(30 * kSecond, &ended);
  policy.OnIdle(ended);
  const IdleInstance idle[] = {{.id = 1, .idle_since_us = ended - kSecond}, {.id = 2, .idle_since_us = ended}};
  EXPECT_EQ(policy.Decide(idle, 2, 1, ended).stop, std::vector<uint64_t>{1});  // the longest idle goes
  EXPECT_TRUE(policy.Decide(idle, 2, 2, ended).stop.empty());
  // A provisioned instance is live, so no pre-warm is needed.
  EXPECT_FALSE(policy.Decide({}, 1, 1, *policy.plan()->prewarm_at_us).prewarm_now);
}

TEST(KeepAliveDecideTest, FixedPolicyWakesForTheEarliestExpiry) {
  KeepAlivePolicy policy(Options(KeepAliveKind::kFixed));
  policy.OnArrival(0);
  policy.OnIdle(5 * kSecond);
  const IdleInstance idle[] = {{.id = 1, .idle_since_us = 5 * kSecond}, {.id = 2, .idle_since_us = 2 * kSecond}};
  KeepAliveActions actions = policy.Decide(idle, 2, 0, 6 * kSecond);
  EXPECT_TRUE(actions.stop.empty());
  EXPECT_EQ(actions.next_wake_us, 12 * kSecond);
  actions = policy.Decide(idle, 2, 0, 12 * kSecond);
  EXPECT_EQ(actions.stop, std::vector<uint64_t>{2});
  EXPECT_EQ(actions.next_wake_us, 15 * kSecond);
}

// A tiny event loop over virtual time: one model, at most one instance, a
// caller that invokes it n times, the next arrival idle_after(i) after the
// i-th invocation ends. Like the runtime, it runs the keep-alive loop
// (KeepAlivePolicy::Decide) after every event and at the wake it asks for.
struct SimResult {
  int cold = 0;
  int warm = 0;
  Micros idle_loaded_us = 0;  // time an instance sat loaded and unused
};

SimResult Simulate(const KeepAliveOptions& options, int n, const std::function<Micros(int)>& idle_after,
                   Micros start_us, Micros run_us) {
  KeepAlivePolicy policy(options);
  SimResult result;
  enum class State { kNone, kStarting, kIdle, kBusy } state = State::kNone;
  Micros now = 0, next_arrival = 0, ready_at = 0, idle_since = 0;
  std::optional<Micros> wake;
  auto keep_alive_loop = [&] {
    std::vector<IdleInstance> idle;
    if (state == State::kIdle) idle.push_back({.id = 1, .idle_since_us = idle_since});
    KeepAliveActions actions = policy.Decide(idle, state == State::kNone ? 0 : 1, 0, now);
    if (!actions.stop.empty()) {
      result.idle_loaded_us += now - idle_since;
      state = State::kNone;
    }
    if (actions.prewarm_now) {
      state = State::kStarting;
      ready_at = now + start_us;
    }
    wake = actions.next_wake_us;
  };
  for (int i = 0; i < n; ++i) {
    // Timers due up to the next arrival, earliest first.
    while (true) {
      std::optional<Micros> next = wake;
      if (state == State::kStarting && (!next || ready_at < *next)) next = ready_at;
      if (!next || *next > next_arrival) break;
      now = *next;
      if (state == State::kStarting && ready_at == now) {
        state = State::kIdle;
        idle_since = now;
      }
      keep_alive_loop();
    }
    now = next_arrival;
    policy.OnArrival(now);
    Micros begin = now;
    if (state == State::kIdle) {
      ++result.warm;
      result.idle_loaded_us += now - idle_since;
    } else {
      ++result.cold;
      begin = state == State::kStarting ? ready_at : now + start_us;
    }
    state = State::kBusy;
    now = begin + run_us;
    policy.OnIdle(now);
    state = State::kIdle;
    idle_since = now;
    keep_alive_loop();
    next_arrival = now + idle_after(i);
  }
  return result;
}

TEST(HistogramKeepAliveTest, PeriodicCallerGetsWarmStartsWhereFixedGetsColdOnes) {
  // Every 20 s (plus up to 0.5 s of jitter) after the last call ended; the
  // fixed keep-alive of 10 s always lets the instance go just before.
  auto idle_after = [](int i) { return 20 * kSecond + (i * 137 % 500) * kMilli; };
  const Micros start = 1 * kSecond, run = 100 * kMilli;
  SimResult fixed = Simulate(Options(KeepAliveKind::kFixed), 30, idle_after, start, run);
  SimResult histogram = Simulate(Options(KeepAliveKind::kHistogram), 30, idle_after, start, run);
  EXPECT_EQ(fixed.cold, 30);
  EXPECT_EQ(fixed.warm, 0);
  // The first call and the 10 before the histogram is trusted are cold; the
  // rest find the pre-warmed instance.
  EXPECT_EQ(histogram.cold, 11);
  EXPECT_EQ(histogram.warm, 19);
  // And it holds memory for less time: about 1 s before each call, not 10 s after.
  EXPECT_EQ(fixed.idle_loaded_us, 29 * 10 * kSecond);
  EXPECT_LT(histogram.idle_loaded_us, fixed.idle_loaded_us / 2);
}

TEST(HistogramKeepAliveTest, FrequentCallerStaysWarmUnderBothPolicies) {
  // Idle times in the first bin: the histogram policy never unloads.
  auto idle_after = [](int i) { return 300 * kMilli + i * 10 * kMilli; };
  EXPECT_EQ(Simulate(Options(KeepAliveKind::kFixed), 30, idle_after, kSecond, 0).cold, 1);
  EXPECT_EQ(Simulate(Options(KeepAliveKind::kHistogram), 30, idle_after, kSecond, 0).cold, 1);
}

}  // namespace
}  // namespace thaw::policy

namespace thaw::policy {
namespace {

KeepAliveOptions Adaptive() {
  KeepAliveOptions o;
  o.kind = KeepAliveKind::kAdaptive;
  o.keep_alive_us = 600 * kMicrosPerSecond;
  return o;
}

// Arrivals every `gap` after the work of the one before ended (0 work time).
void CallEvery(KeepAlivePolicy& policy, Micros gap, int calls, Micros* now) {
  for (int i = 0; i < calls; ++i) {
    policy.OnIdle(*now);
    *now += gap;
    policy.OnArrival(*now);
  }
}

TEST(AdaptiveKeepAliveTest, FewerThanMinSamplesIsFixed) {
  KeepAlivePolicy policy(Adaptive());
  Micros now = 0;
  CallEvery(policy, 900 * kMicrosPerSecond, 9, &now);
  const IdlePlan plan = policy.OnIdle(now);
  EXPECT_EQ(plan.source, PlanSource::kTooFewSamples);
  EXPECT_FALSE(plan.windowed());
  EXPECT_EQ(plan.keep_until_us, now + 600 * kMicrosPerSecond);
  EXPECT_FALSE(policy.CheckIdleInstance(now, now + 599 * kMicrosPerSecond).stop);
  EXPECT_TRUE(policy.CheckIdleInstance(now, now + 600 * kMicrosPerSecond).stop);
}

// A 15 min timer against keep_alive 10 min: after min_samples calls the
// instance goes at once and is pre-warmed its start time (the lead) before
// the window the next call falls in.
TEST(AdaptiveKeepAliveTest, PeriodicCallerIsUnloadedAndPrewarmedWithTheLead) {
  KeepAlivePolicy policy(Adaptive());
  const Micros period = 900 * kMicrosPerSecond, lead = 2 * kMicrosPerSecond;
  Micros now = 0;
  CallEvery(policy, period, 12, &now);
  const IdlePlan plan = policy.OnIdle(now, {.lead_us = lead});
  ASSERT_EQ(plan.source, PlanSource::kAdaptive);
  EXPECT_TRUE(plan.unload_now);
  ASSERT_TRUE(plan.prewarm_at_us.has_value());
  EXPECT_LT(*plan.prewarm_at_us, now + period - lead);
  EXPECT_GT(*plan.prewarm_at_us, now + period / 2);
  EXPECT_GT(plan.keep_until_us, now + period);
  EXPECT_LT(plan.keep_until_us, now + 2 * period);
  EXPECT_LT(plan.cold_share, plan.fixed_cold_share);  // pessimistic after 12 idle times, still below
  EXPECT_NEAR(plan.fixed_cold_share, 1, 1e-9);
  // The instance idle at the start goes now; at the pre-warm one is asked for and kept.
  const IdleInstance idle[] = {{.id = 1, .idle_since_us = now}};
  EXPECT_EQ(policy.Decide(idle, 1, 0, now).stop, std::vector<uint64_t>{1});
  KeepAliveActions waiting = policy.Decide({}, 0, 0, now + 1);
  EXPECT_FALSE(waiting.prewarm_now);
  EXPECT_EQ(waiting.next_wake_us, plan.prewarm_at_us);
  EXPECT_TRUE(policy.Decide({}, 0, 0, *plan.prewarm_at_us).prewarm_now);
  const Micros ready = *plan.prewarm_at_us + lead;
  IdleVerdict kept = policy.CheckIdleInstance(ready, ready);
  EXPECT_FALSE(kept.stop);
  EXPECT_EQ(kept.next_wake_us, plan.keep_until_us);
  EXPECT_TRUE(policy.CheckIdleInstance(ready, plan.keep_until_us).stop);
  // Outside the windows the model holds nothing, not even its template.
  EXPECT_EQ(policy.TemplateReleaseAt(now), now);
  EXPECT_EQ(policy.TemplateReleaseAt(*plan.prewarm_at_us), plan.keep_until_us);
  EXPECT_EQ(policy.TemplateReleaseAt(plan.keep_until_us), plan.keep_until_us);
  policy.OnArrival(plan.keep_until_us);
  EXPECT_FALSE(policy.TemplateReleaseAt(plan.keep_until_us).has_value());
}

// Drift: the caller turns from a 15 min timer to calls 5 s apart. The old
// idle times fade and the plan goes back to keeping the instance.
TEST(AdaptiveKeepAliveTest, FollowsDrift) {
  KeepAlivePolicy policy(Adaptive());
  Micros now = 0;
  CallEvery(policy, 900 * kMicrosPerSecond, 30, &now);
  EXPECT_TRUE(policy.OnIdle(now).unload_now);
  policy.OnArrival(now);
  CallEvery(policy, 5 * kMicrosPerSecond, 300, &now);
  const IdlePlan plan = policy.OnIdle(now);
  EXPECT_FALSE(plan.unload_now);
  EXPECT_GE(plan.hold_until_us, now + 60 * kMicrosPerSecond);
}

}  // namespace
}  // namespace thaw::policy
