// Keep-alive policies: how long a model's instances stay loaded after its
// work runs out, and when to load one again ahead of the next request.
//
//  - kFixed: keep an idle instance for keep_alive_us, then stop it.
//  - kHistogram: the hybrid histogram policy of Shahrad et al. ("Serverless
//    in the Wild", USENIX ATC 2020). Per model, a histogram of idle times
//    (from the end of the model's last invocation to the next arrival). When
//    it is representative, unload at once, pre-warm at head x (1 - margin)
//    after the end and keep the instance (tail - pre-warm) x (1 + margin)
//    longer; head is the lower edge of the head percentile's bin, tail the
//    upper edge of the tail percentile's. With a head in the first bin it
//    does not unload, and keeps the instance until tail x (1 + margin).
//    Representative means: at least min_samples idle times, the coefficient
//    of variation of the bin counts above min_cv (a few dominant bins), and
//    at most max_out_of_range_fraction of idle times beyond the range. Where
//    the paper then predicts idle times with ARIMA, thaw falls back to the
//    fixed policy, as it does with too few samples or too spread a histogram.
//  - kAdaptive: windows planned from a decayed, logarithmic history of idle
//    times (idle_windows.h): keep the instance after the work ends for a
//    while or unload it at once, and pre-warm one (lead_us ahead, the
//    slowest start measured) for a window around the likely next arrival.
//    It chooses the level too: past its first minute idle it holds a warm
//    instance, not the template (IdleContext, idle_windows.h: Levels).
//    On the history the plan holds at most the memory of the fixed policy
//    (keep_alive_us, and the template it would hold; times the node's pool
//    factor, keep_alive_pool.h), and has a pessimistic cold share at most
//    1.05x fixed's (idle_windows.h), and it is the fixed plan unless it beats
//    it clearly; with fewer than min_samples idle times it is the fixed plan.
//
// Guarantees: decisions depend only on the arguments and recorded idle
// times; memory per model is range_us / bin_width_us counters. Pre-warm
// times ignore start-up time (the caller may start that much earlier).
// CheckIdleInstance ignores min_instances; Decide never goes below it.
// Errors: Validate; constructors require valid options.
// Thread safety: value types; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "policy/idle_windows.h"
#include "policy/scaling.h"

namespace thaw::policy {

enum class KeepAliveKind { kFixed, kHistogram, kAdaptive };

struct KeepAliveOptions {
  KeepAliveKind kind = KeepAliveKind::kFixed;
  Micros keep_alive_us = 600 * kMicrosPerSecond;  // fixed policy and fallback; >= 0
  // Histogram policy.
  Micros bin_width_us = 60 * kMicrosPerSecond;  // > 0
  Micros range_us = 4 * 3600 * kMicrosPerSecond;  // a multiple of bin_width_us; at most 1e6 bins
  double head_percentile = 5;    // pre-warm point, in [0, tail_percentile)
  double tail_percentile = 99;   // keep-alive end, in (head_percentile, 100]
  double margin_fraction = 0.10;  // pre-warm that much earlier, keep that much longer; [0, 1)
  int min_samples = 10;           // idle times needed before the histogram is trusted; >= 1
  double min_cv = 2.0;            // bin counts' coefficient of variation must exceed this; >= 0
  double max_out_of_range_fraction = 0.1;  // beyond range_us; thaw's default (the paper's OOB test); [0, 1]
  // Adaptive policy (min_samples too; see idle_windows.h).
  Micros history_half_life_us = 24 * 3600 * kMicrosPerSecond;  // a sample weighs half after this; > 0
  Micros min_hold_us = 60 * kMicrosPerSecond;  // shortest window kept after the work ends; >= 0
  double cold_cut_share = 0.9;               // of the best cut in cold starts a plan must keep; [0, 1]
  double min_gain_fraction = 0.05;           // a plan must beat fixed by this much on an axis; [0, 1)
};

Status Validate(const KeepAliveOptions& options);

// Idle times binned over [0, range_us); longer ones are only counted.
class IdleHistogram {
 public:
  explicit IdleHistogram(const KeepAliveOptions& options);  // requires Validate(options).ok()

  void Record(Micros idle_us);  // negative idle times count as 0

  int64_t total() const { return total_; }  // in range + out of range
  int64_t out_of_range() const { return out_of_range_; }
  const std::vector<int64_t>& bins() const { return bins_; }
  Micros bin_width_us() const { return bin_width_us_; }
  // Coefficient of variation (population) of the bin counts; 0 when empty.
  double BinCv() const;
  // Index of the first bin at which the in-range cumulative count reaches
  // `percentile` % of the in-range samples; requires some in-range sample.
  int PercentileBin(double percentile) const;

 private:
  Micros bin_width_us_;
  std::vector<int64_t> bins_;
  int64_t total_ = 0;
  int64_t out_of_range_ = 0;
};

// Why a plan looks as it does (for logs, status and tests).
enum class PlanSource { kFixed, kHistogram, kAdaptive, kTooFewSamples, kTooSpread, kOutOfRange };
std::string_view PlanSourceName(PlanSource source);

// What to do with a model whose last invocation just ended.
struct IdlePlan {
  bool unload_now = false;              // stop its idle instances at once
  Micros hold_until_us = 0;             // the instances idle now stay until then (= the start: unload now)
  std::optional<Micros> prewarm_at_us;  // start one instance then (histogram, adaptive)
  Micros keep_until_us = 0;             // stop an unused instance then (the pre-warmed one, if any)
  // Adaptive plans: the template is released then, and held again only in
  // the pre-warm window (idle_windows.h, Levels). Other plans: unused.
  Micros template_until_us = 0;
  PlanSource source = PlanSource::kFixed;
  // Adaptive plans: the share of idle periods expected to end cold on the
  // history, this plan's (pessimistic, idle_windows.h) and the fixed policy's,
  // and the memory each holds per idle period, in instance-us (a template
  // weighted by its charge). All 0 with too few idle times to plan from.
  double cold_share = 0, fixed_cold_share = 0;
  double held_us = 0, fixed_held_us = 0;

  bool windowed() const { return source == PlanSource::kHistogram || source == PlanSource::kAdaptive; }
};

// The plan for an idle period that began at `ended_us`, from the idle times
// recorded so far (the histogram policy's and the fixed one's). Pure.
IdlePlan PlanIdlePeriod(const KeepAliveOptions& options, const IdleHistogram& histogram, Micros ended_us);

struct IdleVerdict {
  bool stop = false;
  std::optional<Micros> next_wake_us;  // when to ask again about this instance; nullopt if stopped
};

// What the keep-alive planner is told about a model going idle (adaptive).
struct IdleContext {
  Micros lead_us = 0;            // how long a pre-warmed instance takes to be ready
  Micros template_keep_us = 0;   // the template keep-alive (0: no template path)
  double template_weight = 0;    // a template's charge (with standby) / an instance's
  bool fixed_holds_template = false;  // the fixed policy would hold one now (the model is hot)
  double held_factor = 1;  // the node's keep-alive pool factor (keep_alive_pool.h); >= 1
};

struct KeepAliveActions {
  std::vector<uint64_t> stop;          // idle instances to stop now, longest idle first
  bool prewarm_now = false;            // start one instance now: the plan's pre-warm is due and none is live
  std::optional<Micros> next_wake_us;  // when to decide again; nullopt = only on change
};

// One model's keep-alive state: its idle-time histogram and the plan for the
// current idle period.
class KeepAlivePolicy {
 public:
  explicit KeepAlivePolicy(const KeepAliveOptions& options);  // requires Validate(options).ok()

  // A request arrived. If the model was idle, records the idle time and ends
  // the idle period (the plan is dropped).
  void OnArrival(Micros now_us);
  // The model has nothing in flight or queued any more: an invocation just
  // ended at now_us. Starts an idle period and returns its plan. Call once
  // per idle period (when the model, not one instance, goes idle). The
  // context only matters to the adaptive policy.
  IdlePlan OnIdle(Micros now_us, const IdleContext& context = {});

  // For the keep-alive loop: should this idle instance (idle since
  // idle_since_us) stop now, and when to ask again. While the model is busy,
  // and under a fixed plan, an instance stops after keep_alive_us of its own
  // idleness. Under a windowed plan it stays until hold_until_us, stops
  // before the pre-warm time and at keep_until_us; in between it is the
  // pre-warmed instance.
  IdleVerdict CheckIdleInstance(Micros idle_since_us, Micros now_us) const;

  // The whole model at once, for the runtime's keep-alive loop: applies
  // CheckIdleInstance to each idle instance, never stops below min_instances
  // (total_instances counts idle, busy and starting ones), and asks for a
  // pre-warm when the plan's pre-warm time has come, its keep_until has not,
  // and no instance would be left. A replacement is asked for again if the
  // pre-warmed instance dies before keep_until. Under an adaptive plan only
  // the most recently idle instance is held past its own keep_alive_us.
  KeepAliveActions Decide(std::span<const IdleInstance> idle, int total_instances, int min_instances,
                          Micros now_us) const;

  // When the adaptive plan in force releases the model's template
  // (template_cache.h): now_us if it does now (past its template_until_us,
  // outside its pre-warm window), else the next such time. nullopt for other
  // plans, while busy, and while nothing is left to release it.
  std::optional<Micros> TemplateReleaseAt(Micros now_us) const;

  // The current idle period's plan; nullopt while the model is busy.
  const std::optional<IdlePlan>& plan() const { return plan_; }
  const IdleHistogram& histogram() const { return histogram_; }  // recorded under kHistogram only
  const IdleHistory& history() const { return history_; }        // recorded under kAdaptive only
  const KeepAliveOptions& options() const { return options_; }

 private:
  IdlePlan PlanAdaptive(Micros ended_us, const IdleContext& context);

  KeepAliveOptions options_;
  IdleHistogram histogram_;
  IdleHistory history_;
  // The adaptive windows last planned, reused until enough new idle times
  // (a sixteenth of the history's weight) or another context make them stale.
  std::optional<IdleWindows> windows_;
  IdleContext windows_context_;  // template_weight: times the share below
  // The share of idle periods at whose start the fixed policy would hold a
  // template (a running mean over the last ~32): the memory an adaptive plan
  // may trade is that template's, on average.
  double template_share_ = 0;
  double idle_periods_ = 0;
  double samples_since_windows_ = 0;
  std::optional<Micros> idle_since_us_;
  std::optional<IdlePlan> plan_;
};

}  // namespace thaw::policy
