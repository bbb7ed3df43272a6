#include "load/arrivals.h"

#include <gtest/gtest.h>

#include <cmath>

namespace thaw::load {
namespace {

std::vector<Micros> Arrivals(ArrivalOptions options) {
  auto arrivals = MakeArrivals(options);
  EXPECT_TRUE(arrivals.ok()) << arrivals.status().ToString();
  return arrivals.ok() ? *arrivals : std::vector<Micros>{};
}

TEST(ArrivalsTest, SameSeedSameSchedule) {
  ArrivalOptions options{.process = ArrivalProcess::kPoisson, .rate_per_s = 500, .duration_s = 10, .seed = 42};
  EXPECT_EQ(Arrivals(options), Arrivals(options));
  ArrivalOptions other = options;
  other.seed = 43;
  EXPECT_NE(Arrivals(options), Arrivals(other));
}

TEST(ArrivalsTest, PoissonSortedAndInsideTheDuration) {
  auto offsets = Arrivals({.process = ArrivalProcess::kPoisson, .rate_per_s = 20000, .duration_s = 2, .seed = 7});
  ASSERT_FALSE(offsets.empty());
  EXPECT_TRUE(std::is_sorted(offsets.begin(), offsets.end()));
  EXPECT_GE(offsets.front(), 0);
  EXPECT_LT(offsets.back(), 2 * kMicrosPerSecond);
}

TEST(ArrivalsTest, PoissonMeanRateAndExponentialGaps) {
  // 100k arrivals expected: the count's standard deviation is ~0.3 %.
  const double rate = 10000;
  auto offsets = Arrivals({.process = ArrivalProcess::kPoisson, .rate_per_s = rate, .duration_s = 10, .seed = 1});
  const double measured_rate = static_cast<double>(offsets.size()) / 10.0;
  EXPECT_NEAR(measured_rate, rate, 0.03 * rate);

  // Exponential gaps: standard deviation equals the mean (CV = 1); a
  // constant-rate or bursty process would be far from 1.
  double sum = 0, sum_sq = 0;
  for (size_t i = 1; i < offsets.size(); ++i) {
    const double gap = static_cast<double>(offsets[i] - offsets[i - 1]);
    sum += gap;
    sum_sq += gap * gap;
  }
  const double n = static_cast<double>(offsets.size() - 1);
  const double mean = sum / n;
  const double cv = std::sqrt(sum_sq / n - mean * mean) / mean;
  EXPECT_NEAR(mean, 100.0, 3.0);  // microseconds
  EXPECT_NEAR(cv, 1.0, 0.03);
}

TEST(ArrivalsTest, ConstantRateIsExact) {
  auto offsets = Arrivals({.process = ArrivalProcess::kConstant, .rate_per_s = 1000, .duration_s = 2});
  ASSERT_EQ(offsets.size(), 2000u);
  for (size_t i = 0; i < offsets.size(); ++i) ASSERT_EQ(offsets[i], static_cast<Micros>(i) * 1000);

  // A gap that is not a whole number of microseconds does not drift.
  auto thirds = Arrivals({.process = ArrivalProcess::kConstant, .rate_per_s = 3000, .duration_s = 1});
  ASSERT_EQ(thirds.size(), 3000u);
  EXPECT_EQ(thirds[3], 1000);
  EXPECT_EQ(thirds[2999], 999667);
}

TEST(ArrivalsTest, BadOptionsAreInvalidArgument) {
  EXPECT_EQ(MakeArrivals({.rate_per_s = 0, .duration_s = 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeArrivals({.rate_per_s = -5, .duration_s = 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeArrivals({.rate_per_s = NAN, .duration_s = 1}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeArrivals({.rate_per_s = 10, .duration_s = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeArrivals({.rate_per_s = 1e9, .duration_s = 1e6}).status().code(), StatusCode::kInvalidArgument);
}

TEST(ArrivalsTest, ProcessNames) {
  EXPECT_EQ(*ParseArrivalProcess("poisson"), ArrivalProcess::kPoisson);
  EXPECT_EQ(*ParseArrivalProcess("constant"), ArrivalProcess::kConstant);
  EXPECT_EQ(ArrivalProcessName(ArrivalProcess::kConstant), "constant");
  EXPECT_FALSE(ParseArrivalProcess("bursty").ok());
}

}  // namespace
}  // namespace thaw::load
