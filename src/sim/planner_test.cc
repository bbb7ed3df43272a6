// Planner tests in virtual time: the figures follow from the profile.
#include "sim/planner.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

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
  o.max_concurrency = {4};
  o.keep_alive_s = {0, 10};
  o.template_keep_alive_s = {};  // the config's only
  o.try_histogram = false;
  o.try_adaptive = false;
  o.max_batch_sizes = {};
  ModelConfig base = Base();
  base.keep_alive_s = 10;
  auto plan = Plan(base, Profile(), Periodic(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  // The input, then 1 memory x 1 batching x 2 max_concurrency (4, twice 4) x 2 provisioned x 2 keep-alive.
  ASSERT_EQ(plan->candidates.size(), 9u);
  ASSERT_TRUE(plan->best.has_value());
  const Candidate& best = plan->candidates[*plan->best];
  EXPECT_TRUE(best.meets_slo);
  EXPECT_LE(best.p99_ms, 50);
  // Lambda bills neither keep-alive nor idle time; provisioned capacity costs.
  EXPECT_EQ(best.config.min_instances, 0);
  EXPECT_EQ(best.config.keep_alive_s, 10);
  for (const Candidate& c : plan->candidates)
    if (c.meets_slo) {
      EXPECT_GE(c.objective, best.objective);
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

PlanOptions SmallGrid() {
  PlanOptions o;
  o.slo_p99_ms = 50;
  o.memory_mb = {1024};
  o.min_instances = {0};
  o.max_concurrency = {};
  o.keep_alive_s = {10, 600};
  o.template_keep_alive_s = {};  // the config's only
  o.try_histogram = false;
  o.try_adaptive = false;
  o.max_batch_sizes = {};
  return o;
}

// The input config is evaluated as given, so a plan never costs more than it.
TEST(PlannerTest, InputConfigIsACandidateAndThePlanIsNeverCostlier) {
  ModelConfig base = Base();
  base.memory_mb = 3000;  // not in the grid; 1 thread as given
  base.threads = 1;
  base.keep_alive_s = 30;
  auto plan = Plan(base, Profile(), Periodic(), policy::PriceSheet{}, SmallGrid());
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Candidate& input = plan->candidates.at(plan->input);
  EXPECT_TRUE(input.is_input);
  EXPECT_EQ(input.config.memory_mb, 3000);
  EXPECT_EQ(input.config.threads, 1);
  EXPECT_EQ(input.config.keep_alive_s, 30);
  EXPECT_NE(input.label.find("your config"), std::string::npos);
  ASSERT_TRUE(input.meets_slo);
  ASSERT_TRUE(plan->best.has_value());
  EXPECT_LE(plan->candidates[*plan->best].objective, input.objective);
}

// Five bursts of ten calls a second apart, 200 s between bursts.
std::vector<SimArrival> BurstsWithGaps() {
  std::vector<SimArrival> out;
  for (int burst = 0; burst < 5; ++burst)
    for (int i = 0; i < 10; ++i) out.push_back({(burst * 210 + i) * kMicrosPerSecond, 0, 1});
  return out;
}

// Idle-warm time costs nothing on a Lambda bill but holds memory: with the
// host cost in the objective a 600 s keep-alive across 200 s gaps costs more
// than 10 s (cold starts whose init is billed); on the bill alone, less.
TEST(PlannerTest, HostCostDecidesBetweenKeepAlives) {
  auto find = [](const PlanResult& plan, int64_t keep) {
    for (const Candidate& c : plan.candidates)
      if (!c.is_input && c.config.keep_alive_s == keep && c.config.max_concurrency == 4) return c;
    ADD_FAILURE() << "no candidate with keep-alive " << keep;
    return Candidate{};
  };
  PlanOptions o = SmallGrid();
  o.slo_p99_ms = 1000;  // cold starts allowed
  ModelConfig base = Base();
  base.keep_alive_policy = KeepAlive::kFixed;  // fixed keep-alives only: the grid's
  auto plan = Plan(base, Profile(), BurstsWithGaps(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  const Candidate short_keep = find(*plan, 10), long_keep = find(*plan, 600);
  EXPECT_GT(short_keep.cold_starts, long_keep.cold_starts);
  EXPECT_GT(short_keep.dollars, long_keep.dollars);          // billed init
  EXPECT_GT(long_keep.host_dollars, short_keep.host_dollars);  // 4 x ~200 s held
  EXPECT_EQ(plan->candidates[*plan->best].config.keep_alive_s, 10);

  o.host_weight = 0;
  auto bill_plan = Plan(base, Profile(), BurstsWithGaps(), policy::PriceSheet{}, o);
  ASSERT_TRUE(bill_plan.ok());
  EXPECT_EQ(bill_plan->candidates[*bill_plan->best].config.keep_alive_s, 600);
}

// The template keep-alive is a dimension on the template path: across 200 s
// gaps a 60 s one releases the template (less memory held, more template
// starts) where 300 s holds it; other start paths do not vary it.
TEST(PlannerTest, TemplateKeepAliveIsTriedOnTheTemplatePath) {
  PlanOptions o = SmallGrid();
  o.slo_p99_ms = 1000;
  o.keep_alive_s = {10};
  o.template_keep_alive_s = {60};
  ProfileFile profile = Profile();
  profile.profile.start_us["template_start"] = 50 * kMs;
  ModelConfig base = Base();
  base.keep_alive_s = 10;
  base.template_keep_alive_s = 300;
  auto plan = Plan(base, profile, BurstsWithGaps(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::map<int64_t, Candidate> by_template_keep;
  for (const Candidate& c : plan->candidates)
    if (!c.is_input && c.config.max_concurrency == 4) by_template_keep[c.config.template_keep_alive_s] = c;
  ASSERT_EQ(by_template_keep.size(), 2u);
  EXPECT_LT(by_template_keep[60].host_dollars, by_template_keep[300].host_dollars);
  EXPECT_NE(by_template_keep[60].label.find("template keep-alive 60 s"), std::string::npos);

  base.start_path = StartPath::kZygote;
  auto zygote = Plan(base, profile, BurstsWithGaps(), policy::PriceSheet{}, o);
  ASSERT_TRUE(zygote.ok());
  for (const Candidate& c : zygote->candidates) EXPECT_EQ(c.config.template_keep_alive_s, 300);
}

// Sizes below the profile's measured RSS + 25 % are not tried; the config's own size is.
TEST(PlannerTest, MemoryGridStartsAtTheMeasuredRssAndHasTheConfigsSize) {
  ProfileFile profile = Profile();
  profile.memory_kb["rss"] = 300 * 1024;
  EXPECT_EQ(MinimumMemoryMb(profile), 375);
  PlanOptions o = SmallGrid();
  o.memory_mb = {128, 256, 512, 1024};
  ModelConfig base = Base();
  base.memory_mb = 640;
  auto plan = Plan(base, profile, Periodic(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::set<int64_t> sizes;
  for (const Candidate& c : plan->candidates) sizes.insert(c.config.memory_mb);
  EXPECT_EQ(sizes, (std::set<int64_t>{512, 640, 1024}));
}

// Sizes with the same thread count share one simulation; their costs are
// what simulating each would give.
TEST(PlannerTest, SizesSharingAThreadCountCostWhatTheirOwnRunWould) {
  PlanOptions o = SmallGrid();
  o.memory_mb = {512, 1024};
  o.keep_alive_s = {10};
  ModelConfig base = Base();
  base.memory_mb = 1024;
  base.keep_alive_s = 10;
  base.threads = 1;
  auto plan = Plan(base, Profile(), Periodic(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  // The input, then max_concurrency 4 and 8 at two sizes sharing one run
  // each; and the always-on run, not a candidate.
  EXPECT_EQ(plan->candidates.size(), 5u);
  EXPECT_EQ(plan->simulations, 4);
  for (const Candidate& c : plan->candidates) {
    if (c.is_input || c.config.memory_mb != 512) continue;
    auto own = Simulate({SimModel{c.config, Profile().ForThreads(1)}}, Periodic(), policy::PriceSheet{}, {.seed = o.seed});
    ASSERT_TRUE(own.ok());
    EXPECT_NEAR(c.dollars, own->report.total.bill.total_usd, 1e-12);
    EXPECT_NEAR(c.host_dollars, own->report.total.bill.host_usd, 1e-12);
    EXPECT_DOUBLE_EQ(c.p99_ms, own->report.total.p99_ms);
  }
}

TEST(PlannerTest, MemorySetsThreadsAsLambdaSetsVcpus) {
  EXPECT_EQ(ThreadsForMemory(128), 1);
  EXPECT_EQ(ThreadsForMemory(1769), 1);
  EXPECT_EQ(ThreadsForMemory(3538), 2);
  EXPECT_EQ(ThreadsForMemory(10240), 5);
}

// The wider grid: threads up to what each size allows (one per 1,769 MB),
// the adaptive keep-alive, and the always-on comparison, which costs more
// than the plan on a sparse trace. Any number of simulation threads gives
// the same plan.
TEST(PlannerTest, ThreadsAdaptiveKeepAliveAndAlwaysOn) {
  ProfileFile profile = Profile();
  profile.exec_us_by_threads = {{1, {{1, 2 * kMs}, {16, 6 * kMs}}}, {2, {{1, 1 * kMs}, {16, 3 * kMs}}}};
  PlanOptions o = SmallGrid();
  o.slo_p99_ms = 1000;
  o.memory_mb = {1024, 3538};
  o.try_adaptive = true;
  o.parallelism = 1;
  auto plan = Plan(Base(), profile, Periodic(), policy::PriceSheet{}, o);
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::set<std::pair<int64_t, int>> sizes;
  bool adaptive = false;
  for (const Candidate& c : plan->candidates) {
    sizes.insert({c.config.memory_mb, c.config.threads});
    adaptive = adaptive || c.config.keep_alive_policy == KeepAlive::kAdaptive;
  }
  EXPECT_TRUE(sizes.count({1024, 1}));
  EXPECT_FALSE(sizes.count({1024, 2}));  // 1,024 MB allows one thread
  EXPECT_TRUE(sizes.count({3538, 1}));
  EXPECT_TRUE(sizes.count({3538, 2}));
  EXPECT_TRUE(adaptive);
  ASSERT_TRUE(plan->always_on.has_value());
  EXPECT_GE(plan->always_on->config.min_instances, 1);
  ASSERT_TRUE(plan->best.has_value());
  EXPECT_LT(plan->candidates[*plan->best].objective, plan->always_on->objective);
  EXPECT_LE(plan->candidates[*plan->best].objective, plan->candidates[plan->input].objective);

  o.parallelism = 3;
  auto again = Plan(Base(), profile, Periodic(), policy::PriceSheet{}, o);
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->candidates.size(), plan->candidates.size());
  for (size_t i = 0; i < plan->candidates.size(); ++i) {
    EXPECT_EQ(again->candidates[i].label, plan->candidates[i].label);
    EXPECT_EQ(again->candidates[i].objective, plan->candidates[i].objective);
  }
}

}  // namespace
}  // namespace thaw::sim
