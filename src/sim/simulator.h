// Simulator: runs a request trace against models in virtual time with the
// server's own control loop, sched::Scheduler -- admission, deadlines and the
// deadline kill, scale-up, the autoscaler, keep-alive (fixed and histogram),
// the provisioned floor, batching, start retries and the memory budget --
// and the server's metering (metering::UsageStats and the pricing policy), so
// its report has the same rows as `thaw cost` and /v2/stats. The simulator
// only turns the scheduler's actions into virtual-time events; what an
// instance costs in time comes from a model profile.
//
// Model of an instance. It becomes ready start_us(start_path) after it is
// started; an execution of n rows takes exec_us(n) (the profile's table of
// medians, linear between measured sizes) times the profile's factor for how
// long the instance sat idle before it, times a factor drawn from the seed:
// from the measured distribution exec_spread when the profile has one, else
// a lognormal of coefficient of variation exec_cv. A request still running at
// its deadline is answered 504 then and its instance is stopped, as the
// runtime does. A template-path model's template is a cache, as live
// (sched::Scheduler, policy/template_cache.h): started when the model is
// wanted, ready after the profile's template_start, held (and counted against
// the memory budget, and metered as held memory) until its keep-alive; until
// it is ready, instances start from the zygote.
//
// Guarantees: deterministic for a seed; virtual time only (never reads a
// clock, never sleeps). Errors: kInvalidArgument for a trace function with no
// model, an invalid config or profile. Thread safety: none needed (pure).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "metering/usage_stats.h"
#include "policy/pricing.h"
#include "repo/model_config.h"
#include "sched/scheduler.h"

namespace thaw::sim {

// What a model costs in time on this machine (thaw profile writes it).
struct ModelProfile {
  // Round trip of an execution by batch rows (at the config's thread count):
  // sorted by rows, at least one entry. Sizes in between are interpolated,
  // beyond the last extrapolated from the last two.
  std::vector<std::pair<int64_t, Micros>> exec_us_by_rows;
  // Start to ready by how an instance starts (StartLevel, repo/model_config.h):
  // "exec"; "zygote" (from the zygote, the model not prepared); "prepared"
  // (from the zygote, its prepared artifact); "template" (forked from a
  // ready template); "standby" (a template's warmed standby); and
  // "template_start", a template's own start to ready. A missing level falls
  // back (standby to template, prepared to zygote), then to the entry of the
  // config's start path, then to 0; a missing template_start is 0.
  std::map<std::string, Micros> start_us;
  double exec_cv = 0;  // execution-time coefficient of variation; 0 = deterministic
  // The measured distribution of execution time relative to its median: the
  // ratio at quantiles 0, 0.001, ..., 1 (kSpreadPoints values, non-decreasing,
  // > 0): per mille, so the 1 % tail that decides a p99 is drawn finely. When present it replaces exec_cv: live tails are heavier than a
  // lognormal (wake-ups of an idle instance, the host's scheduling).
  static constexpr size_t kSpreadPoints = 1001;
  std::vector<double> exec_spread;
  // How an execution's time grows with how long its instance sat idle
  // before it (the host waking an idle process: its caches cold, its CPU in
  // a sleep state): (idle gap, factor on the median) sorted by gap, factors
  // relative to the median the table holds; linear in log(gap) between
  // points, the end values beyond them. Empty: factor 1. When present, the
  // spread is additive: (time - its gap's median) / the median, plus 1, so
  // an execution takes median x (factor + spread - 1), at least a tenth of
  // median x factor (measured: the tail beyond the median is about as long
  // after a long idle gap as after a short one, not factor times longer).
  std::vector<std::pair<Micros, double>> exec_factor_by_idle_us;
  // What the memory cgroup of a warm instance, and of a ready template,
  // peaked at (KiB; 0 = not measured): the scheduler's observations under
  // MemoryCharge::kMeasured, made after an instance's first execution and
  // when a template is ready, as the server makes them.
  int64_t instance_memory_kb = 0;
  int64_t template_memory_kb = 0;

  Micros ExecUs(int64_t rows) const;
  // exec_spread at quantile q in [0, 1], linear between points; 1 without a spread.
  double SpreadAt(double q) const;
  // exec_factor_by_idle_us at an idle gap; 1 without the table.
  double IdleFactor(Micros idle_us) const;
  // The gap executions are timed by is smoothed, not the last one alone: a
  // host's caches and clock speed follow the recent rate (measured live,
  // 20-50 ms after the last execution: 260 us at ~11 requests/s, 141 us
  // inside 200/s bursts). SmoothIdle folds an idle gap into an instance's
  // geometric moving average (the new gap weighing kIdleSmoothing; state
  // empty for a new instance) and returns the key for IdleFactor. The
  // simulator and UsageProfileBuilder both key by it.
  static constexpr double kIdleSmoothing = 0.5;
  static Micros SmoothIdle(std::optional<double>* log_state, Micros gap_us);
  Status Validate() const;
};

struct SimModel {
  ModelConfig config;  // as the server would load it (validated)
  ModelProfile profile;
};

// One arrival: when, and which model (index into the models given to Simulate).
struct SimArrival {
  Micros time_us = 0;
  uint32_t model = 0;
  int64_t rows = 1;
};

struct SimOptions {
  uint64_t seed = 1;
  // The node's memory budget for instances (RuntimeOptions::memory_budget_mb,
  // `thaw serve --memory-mb`); 0 = unlimited.
  int64_t memory_budget_mb = 0;
  sched::MemoryCharge memory_charge = sched::MemoryCharge::kConfigured;
  policy::EvictionOrder eviction_order = policy::EvictionOrder::kLeastRecentlyUsed;
  int max_starting_templates = 0;  // thaw serve --template-starts; 0 = no limit
  int template_admit_calls = 1;    // thaw serve --template-admit-calls
  bool keep_alive_pool = true;     // thaw serve --keep-alive-pool
  Micros start_wall_us = 0;  // wall time of virtual 0, for provisioned schedules and records
  // Every scheduler event, if set (sched::Replay reproduces the run's
  // decisions). Not owned.
  sched::EventLog* log = nullptr;
  // If set, replace the profile for the instance or execution they know:
  // for replaying a recorded run with its measured times.
  std::function<std::optional<Micros>(uint64_t instance_id)> start_us_of;
  std::function<std::optional<Micros>(uint64_t execution_id)> exec_us_of;
  // Every usage record the run makes, as it makes it (sim/fleet.h merges
  // nodes' records into one report).
  std::function<void(const metering::UsageRecord&)> on_record;
};

struct SimResult {
  metering::UsageReport report;  // per model and total, priced
  int64_t requests = 0;
  int64_t cold_starts = 0;
  std::map<std::string, int64_t> starts_by_level;  // instance starts by level ("standby", "prepared", ...)
  int64_t template_starts = 0;
  int64_t rejected_429 = 0;
  int64_t deadline_504 = 0;
  double busy_instance_s = 0, idle_instance_s = 0, provisioned_instance_s = 0;
  int64_t events = 0;  // event-loop iterations, for speed measurements
  int max_instances = 0;
};

// Arrivals must be sorted by time.
StatusOr<SimResult> Simulate(const std::vector<SimModel>& models, const std::vector<SimArrival>& arrivals,
                             const policy::PriceSheet& prices, const SimOptions& options = {});

}  // namespace thaw::sim
