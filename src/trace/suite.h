// The trace suite: synthetic multi-function traces generated to match
// published characteristics of production serverless and inference traffic,
// for developing and judging policies (bench/keep_alive, thaw plan). Every
// trace is seeded and deterministic; docs/trace_suite.md lists each with its
// parameters and the source of each characteristic.
//
// Sources (docs/trace_suite.md has the detail):
//  [azure] Shahrad et al., "Serverless in the Wild", USENIX ATC 2020 (Azure
//    Functions, two weeks of 2019): invocation rates span 8 orders of
//    magnitude; 45 % of applications are invoked at most once an hour on
//    average and 81 % at most once a minute; triggers by share of functions:
//    HTTP 55 %, queue 15 %, event 2 %, timer 16 %, orchestration 7 %; timers
//    are periodic (inter-arrival CV near 0); load follows the day.
//  [inference] published LLM- and model-serving request traces: bursts of
//    seconds with tens of requests, then minutes with none.
//
// The traces (each function is one model in a per-function simulation):
//   azure-mix         24 h, 60 functions: triggers and daily counts drawn by
//                     [azure]'s shares; HTTP diurnal Poisson, queue and event
//                     on/off batches, timers periodic at cron-like periods,
//                     orchestrations short bursts.
//   timers            24 h, 12 timer functions, periods 1 min to 4 h, +-1 s jitter.
//   bursty-inference  12 h, 12 functions: on/off, 5-30 req/s for 5-60 s,
//                     then 1-40 min of nothing ([inference]).
//   diurnal-http      48 h, 12 functions: Poisson with a daily cycle, peak
//                     4-10x the trough, mean 1/h to 1/s.
//   sparse-poisson    48 h, 12 functions: memoryless callers, one per 2 min
//                     to one per 4 h (no policy can predict them).
//   drift             24 h, 8 functions whose pattern changes at 12 h.
//
// Guarantees: the same name and seed give the same trace with any standard
// library (mt19937_64's raw output only); every trace passes Validate, its
// functions are named "<trace>-<kind>-NN", end_us is its duration.
// Errors: kNotFound for a name not in the suite (the message lists them).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "trace/trace.h"

namespace thaw::trace {

struct SuiteTraceInfo {
  std::string name;
  std::string description;  // one line: what it models and why it is in the suite
  double duration_s = 0;
  int functions = 0;
};

const std::vector<SuiteTraceInfo>& TraceSuite();

StatusOr<Trace> MakeSuiteTrace(std::string_view name, uint64_t seed = 1);

// A timer-triggered function: calls every period_s from phase_s, each
// displaced by a uniform jitter in [-jitter_s, jitter_s] (clamped to the
// trace). period_s > 0, 0 <= jitter_s < period_s / 2, phase_s >= 0.
struct PeriodicTraceOptions {
  double period_s = 0;
  double jitter_s = 0;
  double phase_s = 0;
  double duration_s = 0;
};
StatusOr<Trace> MakePeriodicTrace(const PeriodicTraceOptions& options, const std::string& function, uint64_t seed);

// One trace of several: functions appended in order (names must differ),
// arrivals merged by (time, function). end_us is the largest.
StatusOr<Trace> MergeTraces(const std::vector<Trace>& traces);

}  // namespace thaw::trace
