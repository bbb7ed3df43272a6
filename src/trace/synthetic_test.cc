#include "trace/synthetic.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace thaw::trace {
namespace {

template <typename T>
T Ok(StatusOr<T> value) {
  EXPECT_TRUE(value.ok()) << value.status().ToString();
  return value.ok() ? std::move(value).value() : T{};
}

bool SortedInside(const Trace& trace, Micros end_us) {
  return std::is_sorted(trace.arrivals.begin(), trace.arrivals.end(),
                        [](const Arrival& a, const Arrival& b) { return a.time_us < b.time_us; }) &&
         (trace.arrivals.empty() || (trace.arrivals.front().time_us >= 0 && trace.arrivals.back().time_us < end_us));
}

int64_t CountIn(const Trace& trace, Micros start, Micros end) {
  auto lo = std::lower_bound(trace.arrivals.begin(), trace.arrivals.end(), start,
                             [](const Arrival& a, Micros t) { return a.time_us < t; });
  auto hi = std::lower_bound(trace.arrivals.begin(), trace.arrivals.end(), end,
                             [](const Arrival& a, Micros t) { return a.time_us < t; });
  return hi - lo;
}

TEST(SyntheticTest, PoissonMeanRateAndExponentialGaps) {
  // 100k arrivals expected: the count's standard deviation is ~0.3 %.
  Trace trace = Ok(MakePoissonTrace({.rate_per_s = 10'000, .duration_s = 10}));
  EXPECT_EQ(trace.functions, std::vector<std::string>{"default"});
  EXPECT_EQ(trace.end_us, 10 * kMicrosPerSecond);
  EXPECT_TRUE(SortedInside(trace, trace.end_us));
  EXPECT_TRUE(Validate(trace).ok());
  EXPECT_NEAR(static_cast<double>(trace.arrivals.size()) / 10.0, 10'000, 300);
  double sum = 0, sum_sq = 0;
  for (size_t i = 1; i < trace.arrivals.size(); ++i) {
    const double gap = static_cast<double>(trace.arrivals[i].time_us - trace.arrivals[i - 1].time_us);
    sum += gap;
    sum_sq += gap * gap;
  }
  const double n = static_cast<double>(trace.arrivals.size() - 1);
  const double mean = sum / n;
  EXPECT_NEAR(std::sqrt(sum_sq / n - mean * mean) / mean, 1.0, 0.03);  // exponential: CV = 1
}

TEST(SyntheticTest, SameSeedSameTrace) {
  const PoissonTraceOptions poisson{.rate_per_s = 500, .duration_s = 10};
  EXPECT_EQ(Ok(MakePoissonTrace(poisson, {.seed = 4})), Ok(MakePoissonTrace(poisson, {.seed = 4})));
  EXPECT_NE(Ok(MakePoissonTrace(poisson, {.seed = 4})), Ok(MakePoissonTrace(poisson, {.seed = 5})));

  const DiurnalTraceOptions diurnal{.mean_rate_per_s = 50, .peak_to_trough = 3, .period_s = 60, .duration_s = 120};
  EXPECT_EQ(Ok(MakeDiurnalTrace(diurnal, {.seed = 4})), Ok(MakeDiurnalTrace(diurnal, {.seed = 4})));
  EXPECT_NE(Ok(MakeDiurnalTrace(diurnal, {.seed = 4})), Ok(MakeDiurnalTrace(diurnal, {.seed = 5})));

  const OnOffTraceOptions on_off{
      .on_rate_per_s = 100, .off_rate_per_s = 1, .mean_on_s = 1, .mean_off_s = 3, .duration_s = 100};
  EXPECT_EQ(Ok(MakeOnOffTrace(on_off, {.seed = 4})), Ok(MakeOnOffTrace(on_off, {.seed = 4})));
  EXPECT_NE(Ok(MakeOnOffTrace(on_off, {.seed = 4})), Ok(MakeOnOffTrace(on_off, {.seed = 5})));
  Trace named = Ok(MakeOnOffTrace(on_off, {.function = "bert"}));
  EXPECT_EQ(named.functions, std::vector<std::string>{"bert"});
}

TEST(SyntheticTest, DiurnalPeakToTroughRatio) {
  // Twenty periods of 2400 s at a mean of 20/s: the peak windows (100 s
  // around t = period/4) hold ~64k arrivals, the trough windows ~16k, so the
  // ratio's standard deviation is ~1 %.
  const DiurnalTraceOptions options{
      .mean_rate_per_s = 20, .peak_to_trough = 4, .period_s = 2400, .duration_s = 48'000};
  Trace trace = Ok(MakeDiurnalTrace(options, {.seed = 11}));
  EXPECT_TRUE(SortedInside(trace, trace.end_us));
  EXPECT_NEAR(static_cast<double>(trace.arrivals.size()) / options.duration_s, 20, 0.6);  // 3 %

  int64_t peak = 0, trough = 0;
  const Micros half_window = 50 * kMicrosPerSecond, period = 2400 * kMicrosPerSecond;
  for (int k = 0; k < 20; ++k) {
    const Micros peak_at = k * period + period / 4, trough_at = k * period + 3 * period / 4;
    peak += CountIn(trace, peak_at - half_window, peak_at + half_window);
    trough += CountIn(trace, trough_at - half_window, trough_at + half_window);
  }
  // The window averages the sine: sin(d)/d with d = pi/24 half the window's angle.
  const double a = 3.0 / 5.0, d = std::numbers::pi / 24, s = std::sin(d) / d;
  const double expected = (1 + a * s) / (1 - a * s);  // 3.98
  const double measured = static_cast<double>(peak) / static_cast<double>(trough);
  EXPECT_NEAR(measured, expected, 0.05 * expected);
  EXPECT_NEAR(measured, 4.0, 0.2);

  EXPECT_DOUBLE_EQ(DiurnalRatePerS(options, 600), 32);   // peak: mean x 1.6
  EXPECT_DOUBLE_EQ(DiurnalRatePerS(options, 1800), 8);   // trough: mean x 0.4
}

TEST(SyntheticTest, DiurnalWithRatioOneIsHomogeneous) {
  Trace trace = Ok(MakeDiurnalTrace({.mean_rate_per_s = 1000, .peak_to_trough = 1, .period_s = 10, .duration_s = 100}));
  const int64_t first_half = CountIn(trace, 0, 50 * kMicrosPerSecond);
  EXPECT_NEAR(static_cast<double>(first_half) / static_cast<double>(trace.arrivals.size()), 0.5, 0.01);
  EXPECT_NEAR(static_cast<double>(trace.arrivals.size()), 100'000, 3'000);
}

TEST(SyntheticTest, OnOffArrivalsFollowThePeriods) {
  // 1000 cycles of 1 s on (100/s), 4 s off (5/s): ~100k arrivals on, ~20k off.
  const OnOffTraceOptions options{
      .on_rate_per_s = 100, .off_rate_per_s = 5, .mean_on_s = 1, .mean_off_s = 4, .duration_s = 5000};
  const SyntheticOptions synthetic{.seed = 21};
  const auto periods = Ok(MakeOnOffPeriods(options, synthetic));
  Trace trace = Ok(MakeOnOffTrace(options, synthetic));
  EXPECT_TRUE(SortedInside(trace, trace.end_us));

  // The periods alternate and tile [0, duration).
  ASSERT_FALSE(periods.empty());
  EXPECT_EQ(periods.front().start_us, 0);
  EXPECT_EQ(periods.back().end_us, 5000 * kMicrosPerSecond);
  double on_s = 0, on_count = 0;
  int64_t in_on = 0, in_off = 0;
  for (size_t i = 0; i < periods.size(); ++i) {
    ASSERT_LT(periods[i].start_us, periods[i].end_us);
    if (i > 0) {
      ASSERT_EQ(periods[i].start_us, periods[i - 1].end_us);
      ASSERT_NE(periods[i].on, periods[i - 1].on);
    }
    const int64_t n = CountIn(trace, periods[i].start_us, periods[i].end_us);
    const double length_s = static_cast<double>(periods[i].end_us - periods[i].start_us) / kMicrosPerSecond;
    if (periods[i].on) {
      in_on += n;
      on_s += length_s;
      ++on_count;
    } else {
      in_off += n;
    }
  }
  EXPECT_EQ(in_on + in_off, static_cast<int64_t>(trace.arrivals.size()));
  EXPECT_NEAR(on_s / 5000, 0.2, 0.03);          // the on share of time: 1 / (1 + 4)
  EXPECT_NEAR(on_s / on_count, 1.0, 0.1);       // mean on period
  EXPECT_NEAR(static_cast<double>(in_on) / on_s, 100, 3);                  // rate while on
  EXPECT_NEAR(static_cast<double>(in_off) / (5000 - on_s), 5, 0.25);       // rate while off
  // The share of arrivals in on periods: 100 x 1 / (100 x 1 + 5 x 4) = 0.833.
  EXPECT_NEAR(static_cast<double>(in_on) / static_cast<double>(trace.arrivals.size()), 100.0 / 120.0, 0.03);
}

TEST(SyntheticTest, OnOffWithSilentOffPeriods) {
  const OnOffTraceOptions options{
      .on_rate_per_s = 200, .off_rate_per_s = 0, .mean_on_s = 0.2, .mean_off_s = 1, .duration_s = 300};
  const auto periods = Ok(MakeOnOffPeriods(options));
  Trace trace = Ok(MakeOnOffTrace(options));
  ASSERT_FALSE(trace.arrivals.empty());
  for (const OnOffPeriod& p : periods)
    if (!p.on) {
      EXPECT_EQ(CountIn(trace, p.start_us, p.end_us), 0);
    }
}

TEST(SyntheticTest, RejectsBadOptions) {
  EXPECT_FALSE(MakePoissonTrace({.rate_per_s = 0, .duration_s = 1}).ok());
  EXPECT_FALSE(MakePoissonTrace({.rate_per_s = 1, .duration_s = 0}).ok());
  EXPECT_FALSE(MakePoissonTrace({.rate_per_s = NAN, .duration_s = 1}).ok());
  EXPECT_FALSE(MakePoissonTrace({.rate_per_s = 1, .duration_s = 5e9}).ok());
  EXPECT_FALSE(MakePoissonTrace({.rate_per_s = 1, .duration_s = 1}, {.function = ""}).ok());
  EXPECT_FALSE(MakePoissonTrace({.rate_per_s = 1e6, .duration_s = 1}, {.max_arrivals = 1000}).ok());
  EXPECT_FALSE(MakeDiurnalTrace({.mean_rate_per_s = 1, .peak_to_trough = 0.5, .duration_s = 1}).ok());
  EXPECT_FALSE(MakeDiurnalTrace({.mean_rate_per_s = 1, .peak_to_trough = INFINITY, .duration_s = 1}).ok());
  EXPECT_FALSE(MakeDiurnalTrace({.mean_rate_per_s = 1, .period_s = 0, .duration_s = 1}).ok());
  EXPECT_FALSE(MakeOnOffTrace({.on_rate_per_s = 0, .mean_on_s = 1, .mean_off_s = 1, .duration_s = 1}).ok());
  EXPECT_FALSE(MakeOnOffTrace({.on_rate_per_s = 1, .off_rate_per_s = -1, .mean_on_s = 1, .mean_off_s = 1,
                               .duration_s = 1}).ok());
  EXPECT_FALSE(MakeOnOffTrace({.on_rate_per_s = 1, .mean_on_s = 0, .mean_off_s = 1, .duration_s = 1}).ok());
  EXPECT_FALSE(MakeOnOffPeriods({.on_rate_per_s = 1, .mean_on_s = 1e-9, .mean_off_s = 1e-9, .duration_s = 1e6}).ok());
  auto too_many = MakePoissonTrace({.rate_per_s = 1000, .duration_s = 1}, {.max_arrivals = 1001});
  // Either the up-front estimate or the draw itself stops it; never more.
  if (too_many.ok()) {
    EXPECT_LE(too_many->arrivals.size(), 1001u);
  }
}

}  // namespace
}  // namespace thaw::trace
