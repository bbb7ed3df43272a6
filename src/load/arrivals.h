// Arrival schedules for the load generator: when each request should be
// sent, as offsets in microseconds from the start of a run, sorted
// ascending. A schedule is a plain vector so that anything can produce one:
// the generators here (Poisson, constant rate) or, later, a trace replayer
// with recorded timestamps.
// Guarantees: pure and deterministic; the same options (including the seed)
// give the same schedule on every machine with the same standard library.
// Every offset is in [0, duration).
// Errors: kInvalidArgument for a non-positive or non-finite rate or duration,
// or a schedule above kMaxArrivals requests (it would not fit in memory
// usefully and no single client could send it).
// Thread safety: free functions on values; safe from any thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::load {

enum class ArrivalProcess {
  kPoisson,   // exponential gaps: independent arrivals, like many users
  kConstant,  // exactly 1/rate apart: a fixed-rate client
};

// "poisson" or "constant"; anything else is kInvalidArgument.
StatusOr<ArrivalProcess> ParseArrivalProcess(std::string_view name);
std::string_view ArrivalProcessName(ArrivalProcess process);

struct ArrivalOptions {
  ArrivalProcess process = ArrivalProcess::kPoisson;
  double rate_per_s = 0;   // mean arrivals per second; > 0
  double duration_s = 0;   // the schedule covers [0, duration_s); in (0, kMaxDurationS]
  uint64_t seed = 1;       // Poisson only
};

constexpr size_t kMaxArrivals = 100'000'000;
constexpr double kMaxDurationS = 1e9;  // keeps offsets far inside int64 microseconds

StatusOr<std::vector<Micros>> MakeArrivals(const ArrivalOptions& options);

}  // namespace thaw::load
