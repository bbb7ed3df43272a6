#include "trace/suite.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>
#include <set>

#include "trace/synthetic.h"
#include "trace/text.h"

namespace thaw::trace {
namespace {

using internal::Uniform01;

constexpr double kHour = 3600, kDay = 86400, kMinute = 60;

std::string Name(std::string_view trace, std::string_view kind, int index) {
  char number[12];  // any int
  std::snprintf(number, sizeof number, "%02d", index);
  return std::string(trace) + "-" + std::string(kind) + "-" + number;
}

// Parameters are drawn from their own engine, so a function's arrivals
// (seeded by its index) do not depend on how many draws the others made.
struct Draws {
  explicit Draws(uint64_t seed) : engine(seed * 0x9E3779B97F4A7C15ULL + 17) {}
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform01(engine); }
  double LogUniform(double lo, double hi) { return std::exp(Uniform(std::log(lo), std::log(hi))); }
  std::mt19937_64 engine;
};

SyntheticOptions Function(std::string name, uint64_t seed, int index) {
  return {.function = std::move(name), .seed = seed * 1000003 + static_cast<uint64_t>(index)};
}

// `count` functions, function i made by make(i) in index order (so the
// parameter draws happen in that order), merged into one trace.
template <typename Make>
StatusOr<Trace> Functions(int count, Make make) {
  std::vector<Trace> parts;
  for (int i = 0; i < count; ++i) {
    StatusOr<Trace> part = make(i);
    if (!part.ok()) return part.status();
    parts.push_back(std::move(*part));
  }
  return MergeTraces(parts);
}

// An on/off process with the given mean rate: bursts at on_rate_per_s lasting
// mean_on_s on average, off periods sized so the long-run rate is the mean.
// A mean at or above the on rate is plain Poisson.
StatusOr<Trace> Batches(double mean_rate_per_s, double on_rate_per_s, double mean_on_s, double duration_s,
                        const SyntheticOptions& f) {
  if (mean_rate_per_s >= on_rate_per_s * 0.9)
    return MakePoissonTrace({.rate_per_s = mean_rate_per_s, .duration_s = duration_s}, f);
  const double on_share = mean_rate_per_s / on_rate_per_s;
  return MakeOnOffTrace({.on_rate_per_s = on_rate_per_s,
                         .off_rate_per_s = 0,
                         .mean_on_s = mean_on_s,
                         .mean_off_s = mean_on_s * (1 - on_share) / on_share,
                         .duration_s = duration_s},
                        f);
}

// A cron-like period near the one a daily count implies.
double TimerPeriodS(double daily_count) {
  static constexpr std::array<double, 11> kMinutes = {1, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440};
  const double wanted = kDay / daily_count / kMinute;
  double best = kMinutes[0];
  for (double m : kMinutes)
    if (std::abs(std::log(m / wanted)) < std::abs(std::log(best / wanted))) best = m;
  return best * kMinute;
}

StatusOr<Trace> AzureMix(uint64_t seed) {
  constexpr std::string_view kTrace = "azure-mix";
  const double duration = kDay;
  Draws draw(seed);
  return Functions(60, [&](int i) -> StatusOr<Trace> {
    // Trigger by share of functions: HTTP 55 % (with the 5 % of others), queue 15 %, event 2 %, timer 16 %, orchestration 7 %.
    const double t = draw.Uniform(0, 1);
    const std::string_view kind = t < 0.60 ? "http" : t < 0.75 ? "queue" : t < 0.77 ? "event" : t < 0.93 ? "timer" : "orchestration";
    // Daily count: 45 % at most 24 (once an hour), 81 % at most 1440 (once a minute), the rest up to 10^5.5.
    const double c = draw.Uniform(0, 1);
    const double daily = c < 0.45 ? draw.LogUniform(1, 24) : c < 0.81 ? draw.LogUniform(24, 1440) : draw.LogUniform(1440, 3.16e5);
    const double rate = daily / kDay;
    const double phase = draw.Uniform(0, 1);
    const SyntheticOptions f = Function(Name(kTrace, kind, i), seed, i);
    if (kind == "http")
      return MakeDiurnalTrace({.mean_rate_per_s = rate, .peak_to_trough = 3, .period_s = kDay, .duration_s = duration}, f);
    if (kind == "queue") return Batches(rate, 2, 20, duration, f);
    if (kind == "event") return Batches(rate, 5, 5, duration, f);
    if (kind == "timer") {
      const double period = TimerPeriodS(daily);
      return MakePeriodicTrace({.period_s = period, .jitter_s = 1, .phase_s = phase * period, .duration_s = duration},
                               f.function, f.seed);
    }
    return Batches(rate, 1, 5, duration, f);
  });
}

StatusOr<Trace> Timers(uint64_t seed) {
  static constexpr std::array<double, 12> kPeriodMinutes = {1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 240};
  Draws draw(seed);
  return Functions(12, [&](int i) -> StatusOr<Trace> {
    const double period = kPeriodMinutes[static_cast<size_t>(i)] * kMinute;
    const SyntheticOptions f = Function(Name("timers", "timer", i), seed, i);
    return MakePeriodicTrace({.period_s = period, .jitter_s = 1, .phase_s = draw.Uniform(0, period), .duration_s = kDay},
                             f.function, f.seed);
  });
}

StatusOr<Trace> BurstyInference(uint64_t seed) {
  static constexpr std::array<double, 6> kOffMinutes = {1, 2, 5, 10, 20, 40};
  Draws draw(seed);
  return Functions(12, [&](int i) -> StatusOr<Trace> {
    const double on_rate = draw.Uniform(5, 30), mean_on = draw.LogUniform(5, 60);
    return MakeOnOffTrace({.on_rate_per_s = on_rate,
                           .off_rate_per_s = 0,
                           .mean_on_s = mean_on,
                           .mean_off_s = kOffMinutes[static_cast<size_t>(i / 2)] * kMinute,
                           .duration_s = 12 * kHour},
                          Function(Name("bursty-inference", "stream", i), seed, i));
  });
}

StatusOr<Trace> DiurnalHttp(uint64_t seed) {
  Draws draw(seed);
  return Functions(12, [&](int i) -> StatusOr<Trace> {
    const double rate = draw.LogUniform(1 / kHour, 1), peak = draw.Uniform(4, 10);
    return MakeDiurnalTrace({.mean_rate_per_s = rate, .peak_to_trough = peak, .period_s = kDay, .duration_s = 2 * kDay},
                            Function(Name("diurnal-http", "http", i), seed, i));
  });
}

StatusOr<Trace> SparsePoisson(uint64_t seed) {
  Draws draw(seed);
  return Functions(12, [&](int i) -> StatusOr<Trace> {
    const double rate = draw.LogUniform(1 / (4 * kHour), 1 / (2 * kMinute));
    return MakePoissonTrace({.rate_per_s = rate, .duration_s = 2 * kDay},
                            Function(Name("sparse-poisson", "poisson", i), seed, i));
  });
}

// The second half of a drift function: `later` shifted by 12 h, after `earlier`.
StatusOr<Trace> Halves(StatusOr<Trace> earlier, StatusOr<Trace> later) {
  if (!earlier.ok()) return earlier.status();
  if (!later.ok()) return later.status();
  const Micros half = static_cast<Micros>(12 * kHour * kMicrosPerSecond);
  Trace joined = std::move(*earlier);
  for (Arrival a : later->arrivals) {
    a.time_us += half;
    joined.arrivals.push_back(a);
  }
  joined.end_us = 2 * half;
  return joined;
}

StatusOr<Trace> Drift(uint64_t seed) {
  const double half = 12 * kHour;
  return Functions(8, [&](int i) -> StatusOr<Trace> {
    const SyntheticOptions f = Function(Name("drift", "function", i), seed, i);
    SyntheticOptions g = f;
    g.seed += 500;
    auto timer = [&](double minutes, const SyntheticOptions& o) {
      return MakePeriodicTrace({.period_s = minutes * kMinute, .jitter_s = 1, .phase_s = 7, .duration_s = half}, o.function, o.seed);
    };
    auto bursts = [&](double off_minutes, const SyntheticOptions& o) {
      return MakeOnOffTrace({.on_rate_per_s = 10, .off_rate_per_s = 0, .mean_on_s = 20, .mean_off_s = off_minutes * kMinute,
                             .duration_s = half}, o);
    };
    auto poisson = [&](double per_s, const SyntheticOptions& o) {
      return MakePoissonTrace({.rate_per_s = per_s, .duration_s = half}, o);
    };
    switch (i % 4) {
      case 0: return Halves(timer(20, f), bursts(3, g));  // timer, then bursts
      case 1: return Halves(bursts(5, f), timer(45, g));  // bursts, then a timer
      case 2: return Halves(poisson(1 / kMinute, f), poisson(1 / (30 * kMinute), g));  // busy, then sparse
      default: return Halves(timer(5 + i, f), timer(25 + i, g));  // the period changes
    }
  });
}

struct Entry {
  SuiteTraceInfo info;
  std::function<StatusOr<Trace>(uint64_t)> make;
};

const std::vector<Entry>& Entries() {
  static const std::vector<Entry> entries = {
      {{"azure-mix", "Azure Functions mix: triggers and daily counts by published shares, 1 to 3e5 calls a day", kDay, 60}, AzureMix},
      {{"timers", "timer-triggered functions, periods 1 min to 4 h, +-1 s jitter", kDay, 12}, Timers},
      {{"bursty-inference", "inference streams: 5-30 req/s for 5-60 s, then 1-40 min of nothing", 12 * kHour, 12}, BurstyInference},
      {{"diurnal-http", "HTTP callers with a daily cycle, peak 4-10x trough, 1/h to 1/s", 2 * kDay, 12}, DiurnalHttp},
      {{"sparse-poisson", "memoryless callers, one per 2 min to one per 4 h", 2 * kDay, 12}, SparsePoisson},
      {{"drift", "patterns that change at 12 h: timer to bursts, bursts to timer, busy to sparse, period change", kDay, 8}, Drift},
  };
  return entries;
}

}  // namespace

const std::vector<SuiteTraceInfo>& TraceSuite() {
  static const std::vector<SuiteTraceInfo> infos = [] {
    std::vector<SuiteTraceInfo> out;
    for (const Entry& e : Entries()) out.push_back(e.info);
    return out;
  }();
  return infos;
}

StatusOr<Trace> MakeSuiteTrace(std::string_view name, uint64_t seed) {
  std::string names;
  for (const Entry& e : Entries()) {
    if (e.info.name == name) return e.make(seed);
    names += (names.empty() ? "" : ", ") + e.info.name;
  }
  return NotFound("no trace '" + std::string(name) + "' in the suite; it has " + names);
}

StatusOr<Trace> MakePeriodicTrace(const PeriodicTraceOptions& o, const std::string& function, uint64_t seed) {
  if (function.empty()) return InvalidArgument("the function name must not be empty");
  if (!(o.period_s > 0 && std::isfinite(o.period_s))) return InvalidArgument("period_s must be a positive number");
  if (!(o.jitter_s >= 0 && o.jitter_s < o.period_s / 2)) return InvalidArgument("jitter_s must be in [0, period_s / 2)");
  if (!(o.phase_s >= 0 && std::isfinite(o.phase_s))) return InvalidArgument("phase_s must be a non-negative number");
  if (!(o.duration_s > 0 && o.duration_s <= kMaxTimeS)) return InvalidArgument("duration must be a positive number of seconds, at most 4e9");
  if (o.duration_s / o.period_s > static_cast<double>(kMaxArrivals)) return InvalidArgument("the trace would have too many arrivals");
  std::mt19937_64 engine(seed);
  Trace trace;
  trace.functions.push_back(function);
  trace.end_us = static_cast<Micros>(std::llround(o.duration_s * kMicrosPerSecond));
  for (double t = o.phase_s; t < o.duration_s; t += o.period_s) {
    const double jittered = t + o.jitter_s * (2 * Uniform01(engine) - 1);
    const Micros at = std::clamp<Micros>(std::llround(jittered * kMicrosPerSecond), 0, trace.end_us - 1);
    trace.arrivals.push_back({at, 0});
  }
  // Jitter is below half a period: calls stay in order, except at the clamped ends.
  std::sort(trace.arrivals.begin(), trace.arrivals.end(), [](const Arrival& a, const Arrival& b) { return a.time_us < b.time_us; });
  return trace;
}

StatusOr<Trace> MergeTraces(const std::vector<Trace>& traces) {
  Trace merged;
  std::set<std::string> names;
  size_t total = 0;
  for (const Trace& t : traces) total += t.arrivals.size();
  if (total > kMaxArrivals) return InvalidArgument("the merged trace would have more than " + std::to_string(kMaxArrivals) + " arrivals");
  merged.arrivals.reserve(total);
  for (const Trace& t : traces) {
    const auto offset = static_cast<uint32_t>(merged.functions.size());
    for (const std::string& f : t.functions) {
      if (!names.insert(f).second) return InvalidArgument("function '" + f + "' is in two traces");
      merged.functions.push_back(f);
    }
    for (const Arrival& a : t.arrivals) merged.arrivals.push_back({a.time_us, a.function + offset});
    merged.end_us = std::max(merged.end_us, t.end_us);
  }
  std::stable_sort(merged.arrivals.begin(), merged.arrivals.end(), [](const Arrival& a, const Arrival& b) {
    return a.time_us != b.time_us ? a.time_us < b.time_us : a.function < b.function;
  });
  return merged;
}

}  // namespace thaw::trace
