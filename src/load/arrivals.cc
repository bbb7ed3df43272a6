#include "load/arrivals.h"

#include <cmath>
#include <random>
#include <string>

namespace thaw::load {

StatusOr<ArrivalProcess> ParseArrivalProcess(std::string_view name) {
  if (name == "poisson") return ArrivalProcess::kPoisson;
  if (name == "constant") return ArrivalProcess::kConstant;
  return InvalidArgument("arrival process must be 'poisson' or 'constant', got '" + std::string(name) + "'");
}

std::string_view ArrivalProcessName(ArrivalProcess process) {
  return process == ArrivalProcess::kPoisson ? "poisson" : "constant";
}

StatusOr<std::vector<Micros>> MakeArrivals(const ArrivalOptions& options) {
  if (!std::isfinite(options.rate_per_s) || options.rate_per_s <= 0)
    return InvalidArgument("rate must be a positive number of requests per second");
  if (!std::isfinite(options.duration_s) || options.duration_s <= 0 || options.duration_s > kMaxDurationS)
    return InvalidArgument("duration must be a positive number of seconds, at most 1e9");
  const double expected = options.rate_per_s * options.duration_s;
  // Poisson counts exceed the mean by a few standard deviations at most.
  if (expected + 6 * std::sqrt(expected) > static_cast<double>(kMaxArrivals))
    return InvalidArgument("rate x duration asks for more than " + std::to_string(kMaxArrivals) + " requests");
  const double end_us = options.duration_s * kMicrosPerSecond;
  std::vector<Micros> offsets;
  offsets.reserve(static_cast<size_t>(expected) + 1);

  if (options.process == ArrivalProcess::kConstant) {
    // Computed from the index, not by adding gaps, so rounding never drifts.
    const double gap_us = kMicrosPerSecond / options.rate_per_s;
    for (size_t i = 0;; ++i) {
      const double t = static_cast<double>(i) * gap_us;
      if (t >= end_us) break;
      offsets.push_back(static_cast<Micros>(std::llround(t)));
    }
    return offsets;
  }

  // The time is accumulated in double microseconds and rounded per arrival,
  // so sub-microsecond gaps at very high rates do not bias the mean rate.
  // std::exponential_distribution's algorithm is implementation-defined, so
  // the gap is drawn by inversion from the engine's raw 64-bit output, which
  // the standard fixes: the same seed gives the same schedule everywhere.
  std::mt19937_64 engine(options.seed);
  const double mean_gap_us = kMicrosPerSecond / options.rate_per_s;
  double t = 0;
  while (true) {
    // u in (0, 1]: 53 random bits, never 0, so log(u) is finite.
    const double u = (static_cast<double>(engine() >> 11) + 1.0) * 0x1.0p-53;
    t += -std::log(u) * mean_gap_us;
    if (t >= end_us) break;
    Micros offset = static_cast<Micros>(std::llround(t));
    if (offset >= static_cast<Micros>(end_us)) break;
    offsets.push_back(offset);
  }
  return offsets;
}

}  // namespace thaw::load
