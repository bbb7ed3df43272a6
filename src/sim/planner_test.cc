// Planner tests in virtual time: the figures follow from the profile.
#include "sim/planner.h"

#include <gtest/gtest.h>

namespace thaw::sim {
namespace {

constexpr Micros kMs = kMicrosPerMilli;

ModelConfig Base() {
  ModelConfig c;
  c.name = "m";
  c.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  c.outputs = {{"y", DataType::kFp32, {-1, 2}}};
  c.max_concurrency = 4;
  return c;
}

ProfileFile Profile() {
  ProfileFile p;
  p.model = "m";
  p.profile.exec_us_by_rows = {{1, 2 * kMs}, {16, 6 * kMs}};
  p.profile.start_us = {{"template", 300 * kMs}};  // a slow start: cold starts break a tight SLO
  return p;
}

// A call every 5 s: keep-alive 0 makes each one cold (~302 ms); 10 s or more keeps it warm.
std::vector<SimArrival> Periodic() {
  std::vector<SimArrival> out;
  for (int i = 0; i < 200; ++i) out.push_back({i * 5 * kMicrosPerSecond, 0, 1});  // the one cold start stays above p99
  return out;
}

TEST(PlannerTest, CheapestMeetingTheSloIsChosenAndIsOnTheParetoFront) {
  PlanOptions o;
  o.slo_p99_ms = 50;
  o.memory_mb = {1024};
  o.min_instances = {0, 1};
  o.keep_alive_s = {0, 10};
  o.try_histogram = false;
  o.max_batch_sizes = {};
  auto plan = Plan(Base(), Profile(), Periodic(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  ASSERT_EQ(plan->candidates.size(), 4u);  // 1 memory x 1 batching x 2 provisioned x 2 keep-alive
  ASSERT_TRUE(plan->best.has_value());
  const Candidate& best = plan->candidates[*plan->best];
  EXPECT_TRUE(best.meets_slo);
  EXPECT_LE(best.p99_ms, 50);
  // Lambda bills neither keep-alive nor idle time; provisioned capacity costs.
  EXPECT_EQ(best.config.min_instances, 0);
  EXPECT_EQ(best.config.keep_alive_s, 10);
  for (const Candidate& c : plan->candidates)
    if (c.meets_slo) {
      EXPECT_GE(c.dollars, best.dollars);
    }
  EXPECT_TRUE(best.pareto);
  // keep-alive 0 without provisioning: every call cold, p99 above 300 ms.
  const auto cold = std::find_if(plan->candidates.begin(), plan->candidates.end(), [](const Candidate& c) {
    return c.config.keep_alive_s == 0 && c.config.min_instances == 0;
  });
  ASSERT_NE(cold, plan->candidates.end());
  EXPECT_FALSE(cold->meets_slo);
  EXPECT_GT(cold->p99_ms, 300);
}

TEST(PlannerTest, MemorySetsThreadsAsLambdaSetsVcpus) {
  EXPECT_EQ(ThreadsForMemory(128), 1);
  EXPECT_EQ(ThreadsForMemory(1769), 1);
  EXPECT_EQ(ThreadsForMemory(3538), 2);
  EXPECT_EQ(ThreadsForMemory(10240), 5);
}

}  // namespace
}  // namespace thaw::sim
