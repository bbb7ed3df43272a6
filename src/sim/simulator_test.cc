// Simulator tests, in virtual time: every figure is computed from the
// profile and the trace, so the expectations are exact.
#include "sim/simulator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

namespace thaw::sim {
namespace {

constexpr Micros kMs = kMicrosPerMilli;
constexpr Micros kS = kMicrosPerSecond;

SimModel Model(std::string name = "m") {
  SimModel m;
  m.config.name = name;
  m.config.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  m.config.outputs = {{"y", DataType::kFp32, {-1, 2}}};
  m.config.keep_alive_s = 10;
  m.config.max_concurrency = 4;
  m.profile.exec_us_by_rows = {{1, 2 * kMs}, {8, 4 * kMs}};
  m.profile.start_us = {{"template", 5 * kMs}, {"exec", 500 * kMs}};
  return m;
}

std::vector<SimArrival> Every(Micros gap, int n, Micros start = 0) {
  std::vector<SimArrival> out;
  for (int i = 0; i < n; ++i) out.push_back({start + i * gap, 0, 1});
  return out;
}

const metering::ModelUsage& Row(const SimResult& r) { return r.report.models.at(0); }

// A template-path model, as live: its first instance starts from the zygote
// (level "prepared") while its template starts; once the template is ready,
// starts fork its standby; the template is released template_keep_alive_s
// after the last call, and its memory held is metered.
TEST(SimulatorTest, TemplateIsACacheWithItsStartLevels) {
  SimModel m = Model();
  m.config.start_path = StartPath::kTemplate;
  m.config.template_standby = true;
  m.config.keep_alive_s = 0;
  m.config.template_keep_alive_s = 60;
  m.config.memory_mb = 1024;
  m.profile.start_us = {{"prepared", 30 * kMs}, {"standby", 2 * kMs}, {"template_start", 500 * kMs}};
  // Calls at 0, 1 s and 2 s; each instance stops right after its call.
  auto result = Simulate({m}, Every(kS, 3), policy::PriceSheet{});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->cold_starts, 3);
  EXPECT_EQ(result->template_starts, 1);
  EXPECT_EQ(result->starts_by_level.at("prepared"), 1);
  EXPECT_EQ(result->starts_by_level.at("standby"), 2);
  // Latency: 30 ms start + 2 ms for the first, 2 + 2 ms for the others.
  EXPECT_NEAR(Row(*result).p50_ms, 4.0, 0.05);
  // Held from the first call to the end of the trace (the last event: the
  // third call's answer at 2.004 s), template and standby 1 GB each.
  const policy::HeldMemory& held = result->report.total.usage.held;
  EXPECT_NEAR(held.template_gb_s, 2.004, 1e-6);
  EXPECT_NEAR(held.standby_gb_s, 2.004, 1e-6);
  EXPECT_EQ(held.zygote_gb_s, 0);
}

// Three models called in turn under a budget that holds two instances at
// their memory_mb: charged memory_mb, each call evicts the next model's idle
// instance (LRU thrashing: every call cold); charged what an instance was
// measured to use (profile memory, as the server reads its cgroup), all
// three stay warm.
TEST(SimulatorTest, MeasuredMemoryChargeKeepsMoreInstancesWarmInTheSameBudget) {
  std::vector<SimModel> models;
  for (const char* name : {"a", "b", "c"}) {
    SimModel m = Model(name);
    m.config.memory_mb = 1024;
    m.profile.instance_memory_kb = 50 * 1024;
    models.push_back(m);
  }
  std::vector<SimArrival> calls;
  for (int i = 0; i < 30; ++i) calls.push_back({i * kS, static_cast<uint32_t>(i % 3), 1});
  SimOptions options{.memory_budget_mb = 2048, .memory_charge = sched::MemoryCharge::kConfigured};
  auto configured = Simulate(models, calls, policy::PriceSheet{}, options);
  ASSERT_TRUE(configured.ok()) << configured.status().ToString();
  EXPECT_EQ(configured->cold_starts, 30);
  options.memory_charge = sched::MemoryCharge::kMeasured;
  auto measured = Simulate(models, calls, policy::PriceSheet{}, options);
  ASSERT_TRUE(measured.ok()) << measured.status().ToString();
  EXPECT_EQ(measured->cold_starts, 3);
  EXPECT_EQ(measured->max_instances, 1);
}

TEST(SimulatorTest, ProfileInterpolatesAndExtrapolates) {
  ModelProfile p;
  p.exec_us_by_rows = {{1, 1000}, {5, 2000}};
  EXPECT_EQ(p.ExecUs(1), 1000);
  EXPECT_EQ(p.ExecUs(3), 1500);
  EXPECT_EQ(p.ExecUs(9), 3000);
  EXPECT_TRUE(p.Validate().ok());
  p.exec_us_by_rows = {{5, 1}, {1, 2}};
  EXPECT_FALSE(p.Validate().ok());
}

// A caller every second with keep_alive 10 s: one cold start, then warm.
TEST(SimulatorTest, FixedKeepAliveKeepsTheInstanceWarm) {
  auto result = Simulate({Model()}, Every(kS, 20), policy::PriceSheet{});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->cold_starts, 1);
  EXPECT_EQ(Row(*result).ok, 20);
  EXPECT_EQ(Row(*result).cold_starts, 1);
  // Latency: 5 ms start + 2 ms for the first, 2 ms for the rest.
  EXPECT_NEAR(Row(*result).p50_ms, 2.0, 0.05);
  EXPECT_EQ(result->max_instances, 1);
}

// With keep_alive 0 every call of a periodic caller is cold.
// A 15-minute timer against keep_alive 10 min, on the template path. Fixed
// misses every call and holds the instance 10 min and the template 5 min
// after each. The adaptive policy learns the period from its first idle
// times, then unloads at once (template too) and pre-warms for each call.
TEST(SimulatorTest, AdaptiveKeepAlivePrewarmsATimerThatFixedMisses) {
  auto run = [](KeepAlive policy) {
    SimModel m = Model();
    m.config.start_path = StartPath::kTemplate;
    m.config.keep_alive_s = 600;
    m.config.keep_alive_policy = policy;
    m.profile.start_us = {{"prepared", 30 * kMs}, {"standby", 2 * kMs}, {"template_start", 500 * kMs}};
    auto result = Simulate({m}, Every(900 * kS, 48), policy::PriceSheet{});
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return *result;
  };
  const SimResult fixed = run(KeepAlive::kFixed), adaptive = run(KeepAlive::kAdaptive);
  EXPECT_EQ(fixed.cold_starts, 48);
  EXPECT_LE(adaptive.cold_starts, 12);  // the first min_samples (10) idle periods, and the first call
  const policy::HeldMemory& f = fixed.report.total.usage.held;
  const policy::HeldMemory& a = adaptive.report.total.usage.held;
  // The template fixed holds 5 min after each call is released after one,
  // and what that saves keeps the instance warm: less memory in all.
  const double fixed_total = f.idle_warm_gb_s + f.template_gb_s + f.standby_gb_s;
  const double adaptive_total = a.idle_warm_gb_s + a.template_gb_s + a.standby_gb_s;
  EXPECT_LT(a.template_gb_s + a.standby_gb_s, 0.5 * (f.template_gb_s + f.standby_gb_s));
  EXPECT_LT(adaptive_total, 0.9 * fixed_total) << adaptive_total << " vs " << fixed_total;
}

// The keep-alive pool: the timer's plan saves (its template goes after a
// minute; its instance is pre-warmed rather than held), and a Poisson model
// whose gaps often outlast 10 min spends the saving on a longer window: fewer
// of its calls are cold than on its own budget, and the node still holds
// less than under fixed keep-alive.
TEST(SimulatorTest, KeepAlivePoolSpendsOneModelsSavingOnAnother) {
  std::vector<SimArrival> arrivals;
  for (const SimArrival& a : Every(900 * kS, 96)) arrivals.push_back(a);  // a day of 15 min timer calls
  std::mt19937_64 rng(5);
  std::exponential_distribution<double> gap(1.0 / 1200);  // mean 20 min
  for (double t = gap(rng); t < 86400; t += gap(rng)) arrivals.push_back({static_cast<Micros>(t * kS), 1, 1});
  std::sort(arrivals.begin(), arrivals.end(), [](const SimArrival& a, const SimArrival& b) { return a.time_us < b.time_us; });
  auto run = [&](KeepAlive policy, bool pool) {
    std::vector<SimModel> models = {Model("timer"), Model("poisson")};
    for (SimModel& m : models) {
      m.config.start_path = StartPath::kTemplate;
      m.config.keep_alive_s = 600;
      m.config.keep_alive_policy = policy;
      m.profile.start_us = {{"prepared", 30 * kMs}, {"standby", 2 * kMs}, {"template_start", 500 * kMs}};
    }
    auto result = Simulate(models, arrivals, policy::PriceSheet{}, {.keep_alive_pool = pool});
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    return *result;
  };
  auto held = [](const SimResult& r) {
    const policy::HeldMemory& h = r.report.total.usage.held;
    return h.idle_warm_gb_s + h.busy_gb_s + h.template_gb_s + h.standby_gb_s;
  };
  const SimResult fixed = run(KeepAlive::kFixed, true), own = run(KeepAlive::kAdaptive, false),
                  pooled = run(KeepAlive::kAdaptive, true);
  auto cold = [](const SimResult& r, const std::string& model) {
    for (const auto& row : r.report.models)
      if (row.model == model) return row.cold_starts;
    ADD_FAILURE() << "no row for " << model;
    return int64_t{0};
  };
  EXPECT_EQ(cold(fixed, "timer"), 96);
  EXPECT_LE(cold(pooled, "timer"), 12);  // too few idle times for the first 10, and the first call
  const int64_t fixed_cold = cold(fixed, "poisson"), own_cold = cold(own, "poisson"), pooled_cold = cold(pooled, "poisson");
  EXPECT_LT(pooled_cold, own_cold) << "fixed " << fixed_cold;
  EXPECT_LT(own_cold, fixed_cold);  // the model's own template, traded for instance time
  EXPECT_LT(held(pooled), held(fixed)) << held(own);
  EXPECT_GT(held(pooled), held(own));  // the saving was spent
}

// An execution after a long idle gap takes longer (the host waking the
// instance): calls 1 ms apart run at the short-gap factor, 1 s apart at the
// long-gap one.
TEST(SimulatorTest, ExecutionTimeFollowsTheIdleGapBeforeIt) {
  auto p50 = [](Micros gap) {
    SimModel m = Model();
    m.config.keep_alive_s = 600;
    m.profile.exec_factor_by_idle_us = {{500, 1.0}, {500'000, 4.0}};
    auto result = Simulate({m}, Every(gap, 200), policy::PriceSheet{});
    EXPECT_TRUE(result.ok());
    return Row(*result).p50_ms;
  };
  // 5 ms apart: idle 5 ms - its own time, so the time t solves t = 2 ms x factor(5 ms - t).
  double t_ms = 2;
  for (int i = 0; i < 100; ++i) t_ms = 2.0 * (1.0 + 3.0 * std::log((5000.0 - t_ms * 1000) / 500.0) / std::log(1000.0));
  EXPECT_NEAR(p50(5 * kMs), t_ms, 0.05);
  EXPECT_NEAR(p50(kS), 8.0, 0.1);  // beyond the last point: its factor
}

TEST(SimulatorTest, KeepAliveZeroMakesEveryCallCold) {
  SimModel m = Model();
  m.config.keep_alive_s = 0;
  auto result = Simulate({m}, Every(kS, 10), policy::PriceSheet{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->cold_starts, 10);
}

// One instance at most, stopped as soon as it idles, and a batching window:
// requests that arrive while it starts wait, and every one is answered.
// (This combination once looped forever; thaw plan's grid found it.)
TEST(SimulatorTest, OneInstanceWithKeepAliveZeroAndFixedBatchingAnswersAll) {
  for (thaw::Batching mode : {thaw::Batching::kFixed, thaw::Batching::kAdaptive}) {
    SimModel m = Model();
    m.config.max_concurrency = 1;
    m.config.keep_alive_s = 0;
    m.config.batching = mode;
    m.config.max_batch_size = 4;
    m.config.max_queue_delay_us = 1000;
    m.profile.start_us = {{"exec", 300 * kMs}};
    auto result = Simulate({m}, Every(200 * kMs, 50), policy::PriceSheet{});
    ASSERT_TRUE(result.ok()) << result.status().ToString();
    EXPECT_EQ(Row(*result).ok + result->rejected_429 + result->deadline_504, 50) << BatchingName(mode);
  }
}

// A burst beyond instances x slots + max_queue is refused with 429, as the server does.
TEST(SimulatorTest, BackPressureRefusesBeyondTheQueue) {
  SimModel m = Model();
  m.config.max_concurrency = 1;
  m.config.max_queue = 3;
  auto result = Simulate({m}, Every(0, 10), policy::PriceSheet{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->rejected_429, 6);  // 1 runs (the slot), 3 queue, 6 refused
  EXPECT_EQ(Row(*result).ok, 4);
}

// Batching uses the server's batcher: 8 simultaneous rows go as one execution.
TEST(SimulatorTest, FixedBatchingRunsOneExecutionForAFullBatch) {
  SimModel m = Model();
  m.config.batching = Batching::kFixed;
  m.config.max_batch_size = 8;
  m.config.max_queue_delay_us = 50 * kMs;
  m.config.max_concurrency = 1;
  std::vector<SimArrival> arrivals = Every(0, 1);             // teaches the cost first
  for (const SimArrival& a : Every(0, 8, kS)) arrivals.push_back(a);
  auto result = Simulate({m}, arrivals, policy::PriceSheet{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(Row(*result).ok, 9);
  EXPECT_NEAR(Row(*result).mean_batch_rows, (1 + 8 * 8) / 9.0, 1e-9);
  // Billed: 1 execution of 2 ms + 1 of 4 ms, at 1 GB: 6 ms = 0.006 GB-s.
  EXPECT_NEAR(Row(*result).usage.on_demand_duration_gb_s, 0.006, 1e-12);
}

// Queued past the deadline: 504 without running.
TEST(SimulatorTest, DeadlinesFailQueuedRequests) {
  SimModel m = Model();
  m.config.max_concurrency = 1;
  m.config.timeout_ms = 5;
  m.profile.exec_us_by_rows = {{1, 4 * kMs}};
  m.profile.start_us = {{"template", 0}};
  auto result = Simulate({m}, Every(0, 3), policy::PriceSheet{});
  ASSERT_TRUE(result.ok());
  // First runs 0-4 ms; second 4-8 ms ends past its 5 ms deadline; third expires queued at 5 ms.
  EXPECT_EQ(Row(*result).ok, 1);
  EXPECT_EQ(result->deadline_504, 2);
}

// Provisioned instances are billed for the whole trace and serve warm.
TEST(SimulatorTest, ProvisionedFloorIsWarmAndBilledForCapacity) {
  SimModel m = Model();
  m.config.min_instances = 1;
  auto result = Simulate({m}, Every(kS, 11, kS), policy::PriceSheet{});
  ASSERT_TRUE(result.ok());
  EXPECT_EQ(result->cold_starts, 0);
  // 1 instance x 11 s (0 to the last answer at 11.002 s) x 1 GB.
  EXPECT_NEAR(Row(*result).usage.provisioned_capacity_gb_s, 11.002, 1e-9);
}

TEST(SimulatorTest, SameSeedSameResult) {
  SimModel m = Model();
  m.profile.exec_cv = 0.5;
  auto a = Simulate({m}, Every(3 * kMs, 2000), policy::PriceSheet{}, {.seed = 7});
  auto b = Simulate({m}, Every(3 * kMs, 2000), policy::PriceSheet{}, {.seed = 7});
  auto c = Simulate({m}, Every(3 * kMs, 2000), policy::PriceSheet{}, {.seed = 8});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(Row(*a).p99_ms, Row(*b).p99_ms);
  EXPECT_EQ(Row(*a).bill.total_usd, Row(*b).bill.total_usd);
  EXPECT_NE(Row(*a).bill.total_usd, Row(*c).bill.total_usd);
}

// A spread of 1 up to quantile 0.985 and 10 from 0.986: about 1.5 % of
// executions take 10x the median, so p50 stays 2 ms while p99 is the slow tail.
std::vector<double> TailSpread() {
  std::vector<double> spread(ModelProfile::kSpreadPoints, 1.0);
  for (size_t i = 986; i < spread.size(); ++i) spread[i] = 10.0;
  return spread;
}

TEST(SimulatorTest, SpreadIsInterpolatedBetweenPercentiles) {
  ModelProfile p;
  p.exec_us_by_rows = {{1, 1000}};
  EXPECT_EQ(p.SpreadAt(0.5), 1.0);  // no spread: the median
  p.exec_spread = TailSpread();
  EXPECT_TRUE(p.Validate().ok());
  EXPECT_DOUBLE_EQ(p.SpreadAt(0.5), 1.0);
  EXPECT_NEAR(p.SpreadAt(0.9855), 5.5, 1e-9);
  EXPECT_DOUBLE_EQ(p.SpreadAt(1.0), 10.0);
  p.exec_spread[500] = 0.5;  // decreasing
  EXPECT_FALSE(p.Validate().ok());
  p.exec_spread.resize(101);
  EXPECT_FALSE(p.Validate().ok());
}

// One warm instance, callers 50 ms apart (never queued): latencies are the
// drawn executions, so the report shows the spread's tail.
TEST(SimulatorTest, ExecutionsFollowTheMeasuredSpread) {
  SimModel m = Model();
  m.config.min_instances = 1;
  m.profile.exec_spread = TailSpread();
  auto result = Simulate({m}, Every(50 * kMs, 4000, kS), policy::PriceSheet{}, {.seed = 3});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->cold_starts, 0);
  EXPECT_NEAR(Row(*result).p50_ms, 2.0, 0.1);
  EXPECT_GT(Row(*result).p99_ms, 15.0);  // 1.4 % of executions take 20 ms
  SimModel narrow = m;
  narrow.profile.exec_spread.assign(ModelProfile::kSpreadPoints, 1.0);
  auto flat = Simulate({narrow}, Every(50 * kMs, 4000, kS), policy::PriceSheet{}, {.seed = 3});
  ASSERT_TRUE(flat.ok());
  EXPECT_NEAR(Row(*flat).p99_ms, 2.0, 0.1);
}

TEST(SimulatorTest, BadInputsAreErrors) {
  EXPECT_FALSE(Simulate({Model()}, {{0, 1, 1}}, policy::PriceSheet{}).ok());            // no model 1
  EXPECT_FALSE(Simulate({Model()}, {{5, 0, 1}, {1, 0, 1}}, policy::PriceSheet{}).ok());  // unsorted
}

}  // namespace
}  // namespace thaw::sim
