#include "policy/idle_windows.h"

#include <gtest/gtest.h>

#include <limits>
#include <random>
#include <vector>

namespace thaw::policy {
namespace {

constexpr Micros kSecond = kMicrosPerSecond;
constexpr Micros kMinute = 60 * kSecond;
constexpr Micros kMilli = kMicrosPerMilli;

// The idle times one after the other (each ends the next), no work between.
IdleHistory HistoryOf(const std::vector<Micros>& idle, Micros half_life_us = 24 * 3600 * kSecond) {
  IdleHistory h(half_life_us);
  Micros now = 0;
  for (Micros t : idle) h.Record(t, now += std::max<Micros>(t, 0));
  return h;
}

// What a plan does to these idle times: cold starts and instance time held.
struct Outcome {
  int cold = 0;
  double held_s = 0;
};
Outcome Apply(const IdleWindows& w, const std::vector<Micros>& idle, Micros lead_us) {
  Outcome out;
  for (Micros t : idle) {
    bool warm = t <= w.hold_until_us;
    double held = static_cast<double>(std::min(t, w.hold_until_us));
    if (w.prewarm_at_us) {
      const Micros start = *w.prewarm_at_us - lead_us;
      warm = warm || (t >= *w.prewarm_at_us && t <= w.keep_until_us);
      held += static_cast<double>(std::clamp(t - start, Micros{0}, w.keep_until_us - start));
    }
    out.cold += warm ? 0 : 1;
    out.held_s += held / kSecond;
  }
  return out;
}

TEST(IdleHistoryTest, BinsAreQuarterDoublingsFromTenMilliseconds) {
  EXPECT_EQ(IdleHistory::Edge(0), 0);
  EXPECT_EQ(IdleHistory::Edge(1), kIdleBinBaseUs);
  EXPECT_EQ(IdleHistory::Edge(5), 2 * kIdleBinBaseUs);
  EXPECT_EQ(IdleHistory::BinOf(0), 0);
  EXPECT_EQ(IdleHistory::BinOf(kIdleBinBaseUs - 1), 0);
  EXPECT_EQ(IdleHistory::BinOf(kIdleBinBaseUs), 1);
  EXPECT_EQ(IdleHistory::BinOf(2 * kIdleBinBaseUs), 5);
  for (int i = 0; i < kIdleBins; ++i) {
    EXPECT_LT(IdleHistory::Edge(i), IdleHistory::Edge(i + 1));
    EXPECT_EQ(IdleHistory::BinOf(IdleHistory::Edge(i)), i);
  }
  EXPECT_GT(IdleHistory::Edge(kIdleBins), 48 * 3600 * kSecond);  // two days fit
  EXPECT_EQ(IdleHistory::BinOf(IdleHistory::Edge(kIdleBins)), kIdleBins);
}

TEST(IdleHistoryTest, OldSamplesWeighHalfAfterAHalfLife) {
  IdleHistory h(/*half_life_us=*/4 * kSecond);
  h.Record(kSecond, 10 * kSecond);
  for (int i = 1; i <= 1000; ++i) h.Record(100 * kMilli, 10 * kSecond);  // a burst: no time passes, no decay
  EXPECT_NEAR(h.bins()[static_cast<size_t>(IdleHistory::BinOf(kSecond))], 1, 1e-12);
  h.Record(kMinute, 14 * kSecond);
  EXPECT_NEAR(h.bins()[static_cast<size_t>(IdleHistory::BinOf(kSecond))], 0.5, 1e-12);
  EXPECT_NEAR(h.weight(), 1001 * 0.5 + 1, 1e-9);
  h.Record(-5, 14 * kSecond);  // counts as 0
  EXPECT_NEAR(h.bins()[0], 1, 1e-12);
  h.Record(100LL * 24 * 3600 * kSecond, 14 * kSecond);  // beyond the last edge
  EXPECT_NEAR(h.overflow(), 1, 1e-12);
}

// A timer every 15 min against fixed 10 min: fixed misses every call. The
// plan unloads at once and pre-warms around the next call: no cold start,
// a fraction of the time held.
TEST(IdleWindowsTest, PeriodicCallerBeyondTheFixedKeepAliveIsPrewarmed) {
  std::vector<Micros> idle(40, 15 * kMinute);
  const IdleWindows w = PlanIdleWindows(HistoryOf(idle), {.fixed_keep_us = 10 * kMinute, .lead_us = kSecond});
  EXPECT_FALSE(w.fixed);
  EXPECT_EQ(w.hold_until_us, 0);
  ASSERT_TRUE(w.prewarm_at_us.has_value());
  EXPECT_LE(*w.prewarm_at_us, 15 * kMinute);
  EXPECT_GE(w.keep_until_us, 15 * kMinute);
  EXPECT_NEAR(w.fixed_cold_share, 1, 1e-9);
  EXPECT_LT(w.cold_share, 0.5);  // pessimistic: 40 samples leave room for doubt
  const Outcome plan = Apply(w, idle, kSecond);
  const Outcome fixed = Apply({.hold_until_us = 10 * kMinute}, idle, 0);
  EXPECT_EQ(plan.cold, 0);
  EXPECT_EQ(fixed.cold, 40);
  EXPECT_LT(plan.held_s, 0.4 * fixed.held_s);
}

// Calls 5 to 40 s apart: fixed 10 min never misses and holds each instance
// only until the next call, so no plan beats it on the history.
TEST(IdleWindowsTest, GapsInsideTheFixedKeepAliveKeepTheFixedPlan) {
  std::vector<Micros> idle;
  for (int i = 0; i < 50; ++i) idle.push_back(i % 10 ? 5 * kSecond : 40 * kSecond);
  const IdleWindows w = PlanIdleWindows(HistoryOf(idle), {.fixed_keep_us = 10 * kMinute});
  EXPECT_TRUE(w.fixed);
  EXPECT_EQ(w.hold_until_us, 10 * kMinute);
}

// Gaps of seconds, or of hours: fixed 10 min misses the hours anyway and
// holds 10 min before each. With enough of them seen, the plan drops the
// instance after min_hold: about the same cold starts, far less memory.
// With few, it does not trust that nothing comes between 1 and 10 min.
TEST(IdleWindowsTest, GapsBeyondTheFixedKeepAliveAreNotWaitedForOnceSeenOften) {
  auto gaps = [](int n) {
    std::mt19937_64 rng(3);
    std::exponential_distribution<double> hours(1.0 / 7200);  // 1 h + a mean of 2 h: unpredictable
    std::vector<Micros> idle;
    for (int i = 0; i < n; ++i)
      idle.push_back(i % 3 ? 5 * kSecond : static_cast<Micros>((3600 + hours(rng)) * kSecond));
    return idle;
  };
  const Micros no_decay = std::numeric_limits<Micros>::max() / 4;
  EXPECT_TRUE(PlanIdleWindows(HistoryOf(gaps(30), no_decay), {.fixed_keep_us = 10 * kMinute}).fixed);
  const std::vector<Micros> idle = gaps(300);
  const IdleWindows w = PlanIdleWindows(HistoryOf(idle, no_decay), {.fixed_keep_us = 10 * kMinute});
  EXPECT_FALSE(w.fixed);
  EXPECT_EQ(w.hold_until_us, kMinute);  // min_hold: bursts may pause longer than seen
  EXPECT_FALSE(w.prewarm_at_us.has_value());
  const Outcome plan = Apply(w, idle, 0);
  const Outcome fixed = Apply({.hold_until_us = 10 * kMinute}, idle, 0);
  EXPECT_EQ(plan.cold, fixed.cold);
  EXPECT_LT(plan.held_s, 0.2 * fixed.held_s);
}

// Two modes: 5 s gaps inside bursts, 30 min between them. Fixed 10 min pays
// a cold start per burst and holds each instance 10 min after it; the plan
// keeps through the bursts, unloads, and pre-warms for the next burst.
TEST(IdleWindowsTest, BurstsWithLongPausesGetASecondWindow) {
  std::vector<Micros> idle;
  for (int i = 0; i < 100; ++i) idle.push_back(i % 5 ? 5 * kSecond : 30 * kMinute);
  const IdleWindows w = PlanIdleWindows(HistoryOf(idle), {.fixed_keep_us = 10 * kMinute, .lead_us = kSecond});
  EXPECT_FALSE(w.fixed);
  EXPECT_GE(w.hold_until_us, 5 * kSecond);
  ASSERT_TRUE(w.prewarm_at_us.has_value());
  const Outcome plan = Apply(w, idle, kSecond);
  const Outcome fixed = Apply({.hold_until_us = 10 * kMinute}, idle, 0);
  EXPECT_EQ(fixed.cold, 20);
  EXPECT_LE(plan.cold, 2);
  EXPECT_LT(plan.held_s, fixed.held_s);
}

// A memoryless caller (exponential gaps): nothing beats fixed clearly, so
// the plan is fixed's.
TEST(IdleWindowsTest, ExponentialGapsKeepTheFixedPlan) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> gap(1.0 / 600);  // mean 10 min
  std::vector<Micros> idle;
  for (int i = 0; i < 200; ++i) idle.push_back(static_cast<Micros>(gap(rng) * kSecond));
  const IdleWindows w = PlanIdleWindows(HistoryOf(idle), {.fixed_keep_us = 10 * kMinute});
  EXPECT_TRUE(w.fixed) << w.hold_until_us << " " << w.prewarm_at_us.value_or(-1) << " " << w.keep_until_us << " cold "
                       << w.cold_share << " vs " << w.fixed_cold_share << " held " << w.held_us << " vs "
                       << w.fixed_held_us;
  EXPECT_EQ(w.hold_until_us, 10 * kMinute);
  EXPECT_FALSE(w.prewarm_at_us.has_value());
}

// Levels: with the template the fixed policy would hold for 5 min (at twice
// an instance's memory), exponential gaps get a longer warm window instead,
// for at most fixed's memory (instances and template), and fewer cold starts.
TEST(IdleWindowsTest, TheTemplatesMemoryBuysALongerWarmWindow) {
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> gap(1.0 / 1800);  // mean 30 min
  std::vector<Micros> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(static_cast<Micros>(gap(rng) * kSecond));
  const IdleWindows w = PlanIdleWindows(
      HistoryOf(idle), {.fixed_keep_us = 10 * kMinute, .template_keep_us = 5 * kMinute, .template_weight = 2});
  EXPECT_FALSE(w.fixed);
  EXPECT_GT(w.hold_until_us, 15 * kMinute) << w.hold_until_us;
  EXPECT_EQ(w.template_until_us, kMinute);  // min_hold_us: kept through a burst's short pauses only
  EXPECT_LT(w.cold_share, 0.9 * w.fixed_cold_share);
  EXPECT_LE(w.held_us, w.fixed_held_us * (1 + 1e-9));
  // Without a template to trade, the same history keeps the fixed plan.
  EXPECT_TRUE(PlanIdleWindows(HistoryOf(idle), {.fixed_keep_us = 10 * kMinute}).fixed);
}

// Safe by construction: on whatever history, the plan's (pessimistic) cold
// share is at most 5 % above fixed's, its time held at most fixed's, and so
// are the outcomes of the
// plan on that history's samples, up to the bins' uniform spread.
TEST(IdleWindowsTest, NeverWorseThanFixedOnTheHistory) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::lognormal_distribution<double> gap(std::uniform_real_distribution<double>(0, 8)(rng),
                                            std::uniform_real_distribution<double>(0.05, 3)(rng));
    std::vector<Micros> idle;
    const int n = 20 + static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) idle.push_back(static_cast<Micros>(gap(rng) * kSecond));
    const Micros fixed_keep = (1 + static_cast<Micros>(rng() % 60)) * kMinute;
    // No decay: the history is exactly these samples.
    const IdleHistory history = HistoryOf(idle, std::numeric_limits<Micros>::max() / 4);
    const IdleWindows w = PlanIdleWindows(history, {.fixed_keep_us = fixed_keep, .lead_us = kSecond});
    EXPECT_LE(w.cold_share, w.fixed_cold_share * 1.05 + 1e-9) << trial;  // max_cold_increase
    EXPECT_LE(w.held_us, w.fixed_held_us * (1 + 1e-9) + 1) << trial;
    if (w.fixed) continue;
    const Outcome plan = Apply(w, idle, kSecond);
    const Outcome fixed = Apply({.hold_until_us = fixed_keep}, idle, 0);
    // Bins are 19 % wide, so the realised outcome may differ by a bin's share.
    EXPECT_LE(plan.cold, fixed.cold + n / 10 + 1) << trial;
    EXPECT_LE(plan.held_s, fixed.held_s * 1.2 + 1) << trial;
  }
}

TEST(IdleWindowsTest, EmptyHistoryIsFixed) {
  const IdleWindows w = PlanIdleWindows(IdleHistory(), {.fixed_keep_us = 10 * kMinute});
  EXPECT_TRUE(w.fixed);
  EXPECT_EQ(w.hold_until_us, 10 * kMinute);
}

}  // namespace
}  // namespace thaw::policy
