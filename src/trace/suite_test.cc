#include "trace/suite.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

namespace thaw::trace {
namespace {

std::map<uint32_t, std::vector<Micros>> TimesByFunction(const Trace& t) {
  std::map<uint32_t, std::vector<Micros>> out;
  for (const Arrival& a : t.arrivals) out[a.function].push_back(a.time_us);
  return out;
}

double GapCv(const std::vector<Micros>& times) {
  if (times.size() < 3) return 0;
  double sum = 0, sum_sq = 0;
  const double n = static_cast<double>(times.size() - 1);
  for (size_t i = 1; i < times.size(); ++i) {
    const double g = static_cast<double>(times[i] - times[i - 1]);
    sum += g;
    sum_sq += g * g;
  }
  const double mean = sum / n;
  return std::sqrt(std::max(0.0, sum_sq / n - mean * mean)) / mean;
}

TEST(TraceSuiteTest, EveryTraceIsValidDeterministicAndAsListed) {
  ASSERT_EQ(TraceSuite().size(), 6u);
  for (const SuiteTraceInfo& info : TraceSuite()) {
    auto t = MakeSuiteTrace(info.name);
    ASSERT_TRUE(t.ok()) << info.name << ": " << t.status().ToString();
    EXPECT_TRUE(Validate(*t).ok()) << info.name;
    EXPECT_EQ(static_cast<int>(t->functions.size()), info.functions) << info.name;
    EXPECT_EQ(t->end_us, static_cast<Micros>(info.duration_s * kMicrosPerSecond)) << info.name;
    EXPECT_GT(t->arrivals.size(), 100u) << info.name;
    for (const std::string& f : t->functions) EXPECT_EQ(f.rfind(info.name + "-", 0), 0u) << f;
    auto again = MakeSuiteTrace(info.name);
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(*t == *again) << info.name;
    auto other = MakeSuiteTrace(info.name, 2);
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(*t == *other) << info.name;
  }
  EXPECT_EQ(MakeSuiteTrace("nope").status().code(), StatusCode::kNotFound);
  EXPECT_NE(MakeSuiteTrace("nope").status().message().find("azure-mix"), std::string::npos);
}

// The published shape: most functions rare (45 % at most hourly, 81 % at
// most once a minute), timers periodic, 8 orders of magnitude (here 5).
TEST(TraceSuiteTest, AzureMixHasThePublishedShape) {
  auto t = MakeSuiteTrace("azure-mix");
  ASSERT_TRUE(t.ok());
  const std::vector<uint64_t> counts = t->CountPerFunction();
  int hourly = 0, per_minute = 0;
  uint64_t most = 0, least = UINT64_MAX;
  for (uint64_t c : counts) {
    hourly += c <= 24 ? 1 : 0;
    per_minute += c <= 1440 ? 1 : 0;
    most = std::max(most, c);
    least = std::min(least, c);
  }
  const double n = static_cast<double>(counts.size());
  EXPECT_NEAR(hourly / n, 0.45, 0.15);
  EXPECT_NEAR(per_minute / n, 0.81, 0.12);
  EXPECT_GT(static_cast<double>(most) / static_cast<double>(std::max<uint64_t>(least, 1)), 1e3);
  int timers = 0;
  for (const auto& [f, times] : TimesByFunction(*t)) {
    if (t->functions[f].find("-timer-") == std::string::npos) continue;
    ++timers;
    if (times.size() >= 3) EXPECT_LT(GapCv(times), 0.05) << t->functions[f];  // +-1 s on a minute or more
  }
  EXPECT_GT(timers, 3);
}

// Bursty streams: inside a burst, gaps of a fraction of a second; between
// bursts, minutes. Their gaps' CV is far above a Poisson stream's 1.
TEST(TraceSuiteTest, BurstyInferenceIsBursty) {
  auto t = MakeSuiteTrace("bursty-inference");
  ASSERT_TRUE(t.ok());
  for (const auto& [f, times] : TimesByFunction(*t)) {
    EXPECT_GT(GapCv(times), 3) << t->functions[f];
    int long_gaps = 0;
    for (size_t i = 1; i < times.size(); ++i) long_gaps += times[i] - times[i - 1] > 30 * kMicrosPerSecond ? 1 : 0;
    EXPECT_GT(long_gaps, 5) << t->functions[f];
  }
}

TEST(PeriodicTraceTest, CallsEveryPeriodWithinTheJitter) {
  auto t = MakePeriodicTrace({.period_s = 60, .jitter_s = 1, .phase_s = 30, .duration_s = 3600}, "f", 3);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->arrivals.size(), 60u);
  for (size_t i = 0; i < t->arrivals.size(); ++i)
    EXPECT_LE(std::abs(static_cast<double>(t->arrivals[i].time_us) - (30 + 60.0 * static_cast<double>(i)) * 1e6), 1e6);
  EXPECT_FALSE(MakePeriodicTrace({.period_s = 60, .jitter_s = 30, .duration_s = 600}, "f", 1).ok());
  EXPECT_FALSE(MakePeriodicTrace({.period_s = 0, .duration_s = 600}, "f", 1).ok());
}

TEST(MergeTracesTest, MergesByTimeAndRejectsTwoFunctionsOfOneName) {
  auto a = MakePeriodicTrace({.period_s = 10, .duration_s = 100}, "a", 1);
  auto b = MakePeriodicTrace({.period_s = 10, .phase_s = 5, .duration_s = 200}, "b", 1);
  ASSERT_TRUE(a.ok() && b.ok());
  auto m = MergeTraces({*a, *b});
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(Validate(*m).ok());
  EXPECT_EQ(m->arrivals.size(), a->arrivals.size() + b->arrivals.size());
  EXPECT_EQ(m->end_us, b->end_us);
  EXPECT_EQ(m->arrivals[1].function, 1u);  // b at 5 s, after a at 0 s
  EXPECT_EQ(MergeTraces({*a, *a}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace thaw::trace
