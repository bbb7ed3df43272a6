#include "trace/synthetic.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

#include "trace/text.h"

namespace thaw::trace {

namespace {

using internal::ExponentialGap;
using internal::Uniform01;

Status CheckRate(double rate, const char* name, bool zero_ok) {
  if (!std::isfinite(rate) || rate < 0 || (!zero_ok && rate == 0))
    return InvalidArgument(std::string(name) + " must be a " + (zero_ok ? "non-negative" : "positive") + " number");
  return Status::Ok();
}

Status CheckCommon(double duration_s, double mean_rate_per_s, const SyntheticOptions& synthetic) {
  if (synthetic.function.empty()) return InvalidArgument("the function name must not be empty");
  if (synthetic.max_arrivals > kMaxArrivals)
    return InvalidArgument("max_arrivals must be at most " + std::to_string(kMaxArrivals));
  if (!std::isfinite(duration_s) || duration_s <= 0 || duration_s > kMaxTimeS)
    return InvalidArgument("duration must be a positive number of seconds, at most 4e9");
  // Fail before generating: Poisson counts exceed the mean by a few
  // standard deviations at most.
  const double expected = mean_rate_per_s * duration_s;
  if (expected + 6 * std::sqrt(expected) > static_cast<double>(synthetic.max_arrivals))
    return InvalidArgument("rate x duration asks for more than " + std::to_string(synthetic.max_arrivals) +
                           " arrivals");
  return Status::Ok();
}

Status TooMany(const SyntheticOptions& synthetic) {
  return InvalidArgument("the trace drew more than " + std::to_string(synthetic.max_arrivals) + " arrivals");
}

Trace OneFunction(const SyntheticOptions& synthetic, double duration_s) {
  Trace trace;
  trace.functions.push_back(synthetic.function);
  trace.end_us = static_cast<Micros>(std::llround(duration_s * kMicrosPerSecond));
  return trace;
}

// Appends Poisson arrivals at rate_per_s in [start_us, end_us). The time is
// kept in double microseconds and rounded per arrival, so sub-microsecond
// gaps do not bias the rate.
Status AppendPoisson(std::mt19937_64& engine, double rate_per_s, double start_us, Micros end_us,
                     const SyntheticOptions& synthetic, Trace& trace) {
  if (rate_per_s <= 0) return Status::Ok();
  const double mean_gap_us = kMicrosPerSecond / rate_per_s;
  double t = start_us;
  while (true) {
    t += ExponentialGap(engine, mean_gap_us);
    if (t >= static_cast<double>(end_us)) break;
    const Micros at = static_cast<Micros>(std::llround(t));
    if (at >= end_us) break;
    if (trace.arrivals.size() >= synthetic.max_arrivals) return TooMany(synthetic);
    trace.arrivals.push_back({at, 0});
  }
  return Status::Ok();
}

double Amplitude(const DiurnalTraceOptions& options) {
  return (options.peak_to_trough - 1) / (options.peak_to_trough + 1);
}

}  // namespace

StatusOr<Trace> MakePoissonTrace(const PoissonTraceOptions& options, const SyntheticOptions& synthetic) {
  THAW_RETURN_IF_ERROR(CheckRate(options.rate_per_s, "rate_per_s", false));
  THAW_RETURN_IF_ERROR(CheckCommon(options.duration_s, options.rate_per_s, synthetic));
  Trace trace = OneFunction(synthetic, options.duration_s);
  std::mt19937_64 engine(synthetic.seed);
  THAW_RETURN_IF_ERROR(AppendPoisson(engine, options.rate_per_s, 0, trace.end_us, synthetic, trace));
  return trace;
}

double DiurnalRatePerS(const DiurnalTraceOptions& options, double t_s) {
  return options.mean_rate_per_s *
         (1 + Amplitude(options) * std::sin(2 * std::numbers::pi * t_s / options.period_s));
}

StatusOr<Trace> MakeDiurnalTrace(const DiurnalTraceOptions& options, const SyntheticOptions& synthetic) {
  THAW_RETURN_IF_ERROR(CheckRate(options.mean_rate_per_s, "mean_rate_per_s", false));
  if (!std::isfinite(options.peak_to_trough) || options.peak_to_trough < 1)
    return InvalidArgument("peak_to_trough must be a number >= 1");
  if (!std::isfinite(options.period_s) || options.period_s <= 0)
    return InvalidArgument("period_s must be a positive number of seconds");
  THAW_RETURN_IF_ERROR(CheckCommon(options.duration_s, options.mean_rate_per_s, synthetic));
  Trace trace = OneFunction(synthetic, options.duration_s);
  std::mt19937_64 engine(synthetic.seed);
  // Thinning (Lewis and Shedler): candidates at the peak rate, each kept
  // with probability rate(t) / peak rate.
  const double peak_rate = options.mean_rate_per_s * (1 + Amplitude(options));
  const double mean_gap_us = kMicrosPerSecond / peak_rate;
  const double end_us = static_cast<double>(trace.end_us);
  double t = 0;
  while (true) {
    t += ExponentialGap(engine, mean_gap_us);
    if (t >= end_us) break;
    const double keep = DiurnalRatePerS(options, t / kMicrosPerSecond) / peak_rate;
    if (Uniform01(engine) >= keep) continue;
    const Micros at = static_cast<Micros>(std::llround(t));
    if (at >= trace.end_us) break;
    if (trace.arrivals.size() >= synthetic.max_arrivals) return TooMany(synthetic);
    trace.arrivals.push_back({at, 0});
  }
  return trace;
}

namespace {

Status CheckOnOff(const OnOffTraceOptions& options, const SyntheticOptions& synthetic) {
  THAW_RETURN_IF_ERROR(CheckRate(options.on_rate_per_s, "on_rate_per_s", false));
  THAW_RETURN_IF_ERROR(CheckRate(options.off_rate_per_s, "off_rate_per_s", true));
  if (!std::isfinite(options.mean_on_s) || options.mean_on_s <= 0 || !std::isfinite(options.mean_off_s) ||
      options.mean_off_s <= 0)
    return InvalidArgument("mean_on_s and mean_off_s must be positive numbers of seconds");
  const double cycle_s = options.mean_on_s + options.mean_off_s;
  const double mean_rate =
      (options.on_rate_per_s * options.mean_on_s + options.off_rate_per_s * options.mean_off_s) / cycle_s;
  THAW_RETURN_IF_ERROR(CheckCommon(options.duration_s, mean_rate, synthetic));
  // The periods are materialised too.
  if (2 * options.duration_s / cycle_s > static_cast<double>(synthetic.max_arrivals))
    return InvalidArgument("on/off periods this short over this duration would be more than " +
                           std::to_string(synthetic.max_arrivals) + " periods");
  return Status::Ok();
}

// Separate streams for the periods and the arrivals, so the periods can be
// recomputed (MakeOnOffPeriods) without drawing the arrivals.
constexpr uint64_t kPeriodStream = 1;
constexpr uint64_t kArrivalStream = 2;

std::vector<OnOffPeriod> Periods(const OnOffTraceOptions& options, const SyntheticOptions& synthetic) {
  std::mt19937_64 engine(internal::MixSeed(synthetic.seed, kPeriodStream));
  const Micros end_us = static_cast<Micros>(std::llround(options.duration_s * kMicrosPerSecond));
  bool on = Uniform01(engine) < options.mean_on_s / (options.mean_on_s + options.mean_off_s);
  std::vector<OnOffPeriod> periods;
  // Boundaries accumulate in double microseconds and are rounded one by one,
  // so rounding does not drift.
  double t = 0;
  Micros start = 0;
  while (start < end_us) {
    t += ExponentialGap(engine, (on ? options.mean_on_s : options.mean_off_s) * kMicrosPerSecond);
    const Micros stop = std::min(end_us, static_cast<Micros>(std::llround(t)));
    // A period shorter than a microsecond vanishes; its state still flips.
    if (stop > start) {
      if (!periods.empty() && periods.back().on == on)
        periods.back().end_us = stop;  // after a vanished period: merge
      else
        periods.push_back({start, stop, on});
      start = stop;
    }
    on = !on;
  }
  return periods;
}

}  // namespace

StatusOr<std::vector<OnOffPeriod>> MakeOnOffPeriods(const OnOffTraceOptions& options,
                                                    const SyntheticOptions& synthetic) {
  THAW_RETURN_IF_ERROR(CheckOnOff(options, synthetic));
  return Periods(options, synthetic);
}

StatusOr<Trace> MakeOnOffTrace(const OnOffTraceOptions& options, const SyntheticOptions& synthetic) {
  THAW_RETURN_IF_ERROR(CheckOnOff(options, synthetic));
  Trace trace = OneFunction(synthetic, options.duration_s);
  std::mt19937_64 engine(internal::MixSeed(synthetic.seed, kArrivalStream));
  // Exponential gaps are memoryless, so restarting the gap at each period's
  // start is exact.
  for (const OnOffPeriod& p : Periods(options, synthetic))
    THAW_RETURN_IF_ERROR(AppendPoisson(engine, p.on ? options.on_rate_per_s : options.off_rate_per_s,
                                       static_cast<double>(p.start_us), p.end_us, synthetic, trace));
  return trace;
}

}  // namespace thaw::trace
