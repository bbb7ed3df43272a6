#include "sim/usage_profile.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

namespace thaw::sim {
namespace {

metering::InvocationRecord Warm(uint64_t instance, Micros arrival, Micros queue, Micros round_trip, int64_t rows = 1) {
  metering::InvocationRecord r;
  r.model = "fraud";
  r.instance_id = instance;
  r.arrival_wall_us = arrival;
  r.queue_us = queue;
  r.latency_us = queue + round_trip;
  r.batch_rows = rows;
  r.batch_requests = 1;
  r.start_path = "template";
  return r;
}

TEST(UsageProfileTest, RoundTripsByRowsWithTheirSpread) {
  UsageProfileBuilder builder("fraud");
  // 100 single-row executions of 100..199 us, after 0..99 us of queueing.
  for (int i = 0; i < 100; ++i) builder.Add(Warm(1, i * 10'000, i, 100 + i));
  // A batch of 4 rows from two requests ending together: one execution of 400 us.
  for (int i = 0; i < 30; ++i) {
    builder.Add(Warm(2, 2'000'000 + i * 10'000, 50, 400, 4));
    builder.Add(Warm(2, 2'000'000 + i * 10'000 + 20, 30, 400, 4));
  }
  metering::InvocationRecord cold = Warm(3, 5'000'000, 0, 3000);
  cold.cold_start = true;
  cold.init_us = 2500;
  builder.Add(cold);
  metering::InvocationRecord refused = Warm(1, 6'000'000, 0, 1);
  refused.http_status = 429;
  builder.Add(refused);
  metering::InvocationRecord other = Warm(1, 7'000'000, 0, 5);
  other.model = "fashion";
  builder.Add(other);
  builder.Add(metering::InstanceRecord{});

  EXPECT_EQ(builder.warm_executions(), 130);
  auto profile = builder.Build();
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  EXPECT_EQ(profile->model, "fraud");
  ASSERT_EQ(profile->profile.exec_us_by_rows.size(), 2u);
  EXPECT_EQ(profile->profile.exec_us_by_rows[0], (std::pair<int64_t, Micros>{1, 150}));
  EXPECT_EQ(profile->profile.exec_us_by_rows[1], (std::pair<int64_t, Micros>{4, 400}));
  // The spread is of the single-row executions (the most samples): 100/150 .. 199/150.
  ASSERT_EQ(profile->profile.exec_spread.size(), ModelProfile::kSpreadPoints);
  EXPECT_NEAR(profile->profile.exec_spread.front(), 100.0 / 150, 1e-9);
  EXPECT_NEAR(profile->profile.exec_spread.back(), 199.0 / 150, 1e-9);
  EXPECT_EQ(profile->profile.start_us.at("template"), 2500);
}

metering::InstanceRecord Instance(uint64_t id, const std::string& path, Micros init_us, Micros busy_us, Micros idle_us) {
  metering::InstanceRecord r;
  r.model = "fraud";
  r.instance_id = id;
  r.start_path = path;
  r.init_us = init_us;
  r.busy_us = busy_us;
  r.idle_us = idle_us;
  return r;
}

TEST(UsageProfileTest, StartTimesOfEveryInstanceThatGotReadyByPath) {
  UsageProfileBuilder builder("fraud");
  for (int i = 0; i < 30; ++i) builder.Add(Warm(1, i * 10'000, 0, 100));
  // Instance 2 served a cold request (init 2500) and then stopped (its record: 2700): the request's time counts.
  metering::InvocationRecord cold = Warm(2, 1'000'000, 0, 3000);
  cold.cold_start = true;
  cold.init_us = 2500;
  builder.Add(cold);
  builder.Add(Instance(2, "template", 2700, 3000, 600'000'000));
  // Pre-warmed from the zygote, no request waited for them: 60, 80 and 70 ms.
  builder.Add(Instance(3, "zygote", 60'000, 0, 1'000'000));
  builder.Add(Instance(4, "zygote", 80'000, 500, 1'000'000));
  builder.Add(Instance(5, "zygote", 70'000, 0, 2'000'000));
  // Never got ready (its whole life is init), another model's, no path: not starts.
  builder.Add(Instance(6, "exec", 900'000, 0, 0));
  metering::InstanceRecord other = Instance(7, "exec", 400'000, 0, 1000);
  other.model = "fashion";
  builder.Add(other);
  builder.Add(Instance(8, "", 5000, 0, 1000));

  auto profile = builder.Build();
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  EXPECT_EQ(profile->profile.start_us, (std::map<std::string, Micros>{{"template", 2500}, {"zygote", 70'000}}));
  EXPECT_EQ(builder.warm_executions(), 30);
}

TEST(UsageProfileTest, TooFewSamplesIsAnErrorNamingTheModel) {
  UsageProfileBuilder builder("fraud");
  for (int i = 0; i < 5; ++i) builder.Add(Warm(1, i * 10'000, 0, 100));
  auto profile = builder.Build();
  ASSERT_FALSE(profile.ok());
  EXPECT_EQ(profile.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(profile.status().message().find("'fraud'"), std::string::npos);
}

TEST(UsageProfileTest, SpreadOverMedianInterpolates) {
  std::vector<double> spread = SpreadOverMedian({4, 2, 1, 3, 5});  // median 3
  ASSERT_EQ(spread.size(), ModelProfile::kSpreadPoints);
  EXPECT_NEAR(spread[0], 1.0 / 3, 1e-12);
  EXPECT_NEAR(spread[500], 1.0, 1e-12);
  EXPECT_NEAR(spread[1000], 5.0 / 3, 1e-12);
  EXPECT_NEAR(spread[100], 1.4 / 3, 1e-12);  // 0.4 of the way from 1 to 2
  EXPECT_TRUE(SpreadOverMedian({7}).empty());
}

// Executions after a short idle gap take 50 us, after a long one 150 us:
// the table says so, and the spread is of each time over its gap's median.
// Runs of 50 executions 0.6 ms apart (50 us each) and 50 executions 100 ms
// apart (150 us each): the table keys each by its smoothed gap, which is
// the run's gap after its first few executions.
TEST(UsageProfileTest, TimeByIdleGapBeforeTheExecution) {
  UsageProfileBuilder builder("fraud");
  Micros t = 0;
  for (int i = 0; i < 400; ++i) {
    const bool long_gap = (i / 50) % 2;
    t += long_gap ? 100'000 : 600;
    const Micros round_trip = long_gap ? 150 : 50;
    builder.Add(Warm(1, t, 0, round_trip));
    t += round_trip;
  }
  auto profile = builder.Build();
  ASSERT_TRUE(profile.ok()) << profile.status().ToString();
  const auto& table = profile->profile.exec_factor_by_idle_us;
  ASSERT_GE(table.size(), 2u);
  EXPECT_LT(table.front().first, 1000);
  EXPECT_GE(table.back().first, 99'000);
  EXPECT_NEAR(table.back().second / table.front().second, 3.0, 1e-9);
  EXPECT_NEAR(profile->profile.IdleFactor(100'000) * static_cast<double>(profile->profile.ExecUs(1)), 150, 1);
  EXPECT_NEAR(profile->profile.IdleFactor(500) * static_cast<double>(profile->profile.ExecUs(1)), 50, 1);
  // Most times are their gap's median: the spread is 1 in the middle
  // (additive; the first executions of each run sit between the keys).
  EXPECT_NEAR(profile->profile.SpreadAt(0.5), 1.0, 1e-9);
}

// The smoothed gap: a steady gap is itself; one long gap after short ones
// moves it half way in log terms; the next short gaps bring it back.
TEST(UsageProfileTest, SmoothIdleFollowsTheRecentGaps) {
  std::optional<double> state;
  for (int i = 0; i < 10; ++i) EXPECT_EQ(ModelProfile::SmoothIdle(&state, 1'000), 1'000);
  EXPECT_EQ(ModelProfile::SmoothIdle(&state, 100'000), 10'000);  // sqrt(1e3 x 1e5)
  EXPECT_EQ(ModelProfile::SmoothIdle(&state, 1'000), 3'162);
  std::optional<double> fresh;
  EXPECT_EQ(ModelProfile::SmoothIdle(&fresh, 0), 1);  // a gap of 0 counts as 1 us
}

}  // namespace
}  // namespace thaw::sim
