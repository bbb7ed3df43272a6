// Synthetic traces: seeded arrival processes for one function, for
// simulations when no recorded trace fits.
//   Poisson  homogeneous: exponential gaps at rate_per_s.
//   Diurnal  non-homogeneous Poisson with
//              rate(t) = mean_rate_per_s x (1 + a sin(2 pi t / period_s)),
//            a = (peak_to_trough - 1) / (peak_to_trough + 1), so the peak
//            (at t = period/4) is peak_to_trough times the trough (at
//            3 period/4); made by thinning a Poisson process at the peak rate.
//   On/off   a Markov-modulated Poisson process: alternating on and off
//            periods with exponential lengths (means mean_on_s, mean_off_s),
//            Poisson arrivals at on_rate_per_s during on periods and
//            off_rate_per_s during off periods. The first period is on with
//            probability mean_on / (mean_on + mean_off) (the stationary
//            share), so the process is stationary from t = 0.
//
// Guarantees: pure and deterministic: the same options and seed give the same
// trace with any standard library (only mt19937_64's raw output is used, as
// in load/arrivals.cc). Arrivals lie in [0, duration_s), rounded to the
// microsecond; end_us = duration. The trace has one function, named
// SyntheticOptions::function.
// Errors: kInvalidArgument for a non-finite or out-of-range option (rates and
// durations as documented per field; duration_s in (0, 4e9]), or when the
// trace would exceed max_arrivals.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "trace/trace.h"

namespace thaw::trace {

struct SyntheticOptions {
  std::string function = "default";  // the one function's name; non-empty
  uint64_t seed = 1;
  size_t max_arrivals = kMaxArrivals;
};

struct PoissonTraceOptions {
  double rate_per_s = 0;  // > 0
  double duration_s = 0;
};

struct DiurnalTraceOptions {
  double mean_rate_per_s = 0;  // > 0
  double peak_to_trough = 1;   // peak rate / trough rate; >= 1 (1: homogeneous)
  double period_s = 86400;     // > 0
  double duration_s = 0;
};

struct OnOffTraceOptions {
  double on_rate_per_s = 0;   // > 0
  double off_rate_per_s = 0;  // >= 0
  double mean_on_s = 0;       // > 0
  double mean_off_s = 0;      // > 0
  double duration_s = 0;
};

StatusOr<Trace> MakePoissonTrace(const PoissonTraceOptions& options, const SyntheticOptions& synthetic = {});
StatusOr<Trace> MakeDiurnalTrace(const DiurnalTraceOptions& options, const SyntheticOptions& synthetic = {});
StatusOr<Trace> MakeOnOffTrace(const OnOffTraceOptions& options, const SyntheticOptions& synthetic = {});

// The diurnal rate at t seconds, for analysis and plots.
double DiurnalRatePerS(const DiurnalTraceOptions& options, double t_s);

// One period of an on/off trace: [start_us, end_us).
struct OnOffPeriod {
  Micros start_us = 0;
  Micros end_us = 0;
  bool on = false;
};

// The periods MakeOnOffTrace uses for the same options and seed, in order,
// covering [0, duration) (the last one cut at the end). For analysis and
// tests: which arrivals fell in on periods.
StatusOr<std::vector<OnOffPeriod>> MakeOnOffPeriods(const OnOffTraceOptions& options,
                                                    const SyntheticOptions& synthetic = {});

}  // namespace thaw::trace
