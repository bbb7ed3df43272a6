// Concurrency autoscaler in the manner of Knative's KPA: from observations of
// a model's concurrency (requests in flight + queued) it reports how many
// instances the model should have.
//
// desired = ceil(average concurrency over a window / target concurrency per
// instance), clamped to [min_instances, max_instances]. Two windows: the
// stable window (60 s) and the panic window (6 s). When the panic-window
// desired count is >= panic_threshold x ready instances (0 ready counts as 1)
// the autoscaler panics: desired = max(panic, stable), and it never lowers
// desired while panicking. It leaves panic once a full stable window has
// passed without the panic condition.
//
// Averages are time-weighted: concurrency holds from one observation to the
// next. Time is cut into buckets (1 s) holding the integral of concurrency,
// so memory is stable_window_us / bucket_us buckets. The current bucket
// assumes the latest value holds to its end, so a burst counts at once.
//
// The autoscaler only reports; it never stops instances (keep-alive does).
// Errors: Validate; the constructor requires valid options.
// Thread safety: a value type; not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::policy {

struct AutoscalerOptions {
  Micros stable_window_us = 60 * kMicrosPerSecond;  // a multiple of bucket_us
  Micros panic_window_us = 6 * kMicrosPerSecond;    // a multiple of bucket_us, <= stable_window_us
  Micros bucket_us = 1 * kMicrosPerSecond;          // averaging resolution
  double panic_threshold = 2.0;                     // panic when panic desired >= this x ready; >= 1
  int instance_concurrency = 1;                     // requests one instance runs at once; >= 1
  double target_utilization = 0.7;                  // in (0, 1]
  // Per-instance concurrency to aim for; 0 means instance_concurrency x
  // target_utilization (Knative's soft target).
  double target_concurrency = 0.0;
  int min_instances = 0;
  int max_instances = 1;  // >= max(1, min_instances)
};

Status Validate(const AutoscalerOptions& options);

// The per-instance concurrency the autoscaler aims for.
double TargetConcurrency(const AutoscalerOptions& options);

struct AutoscaleObservation {
  Micros now_us = 0;
  int concurrency = 0;      // requests in flight + queued, from now until the next observation
  int ready_instances = 0;  // instances serving now
};

struct AutoscaleDecision {
  int desired_instances = 0;
  bool panicking = false;
  double stable_concurrency = 0;  // average over the stable window (for logs and status)
  double panic_concurrency = 0;   // average over the panic window
  // When to call Update again even without a new observation: the next bucket
  // boundary while either window holds load or while panicking; nullopt when
  // all is idle (nothing changes until the next observation).
  std::optional<Micros> next_wake_us;
};

class Autoscaler {
 public:
  explicit Autoscaler(const AutoscalerOptions& options);  // requires Validate(options).ok()

  // Record an observation and decide. Call on every change of concurrency or
  // ready instances, and at next_wake_us. A `now_us` earlier than a previous
  // one is treated as that previous time (time never runs backwards here).
  AutoscaleDecision Update(const AutoscaleObservation& observation);

  const AutoscalerOptions& options() const { return options_; }

 private:
  void Advance(Micros now_us);
  size_t Slot(int64_t bucket) const;
  int64_t SumLastBuckets(int64_t count) const;

  AutoscalerOptions options_;
  double target_ = 1.0;
  int64_t num_buckets_ = 1;
  int64_t panic_buckets_ = 1;
  // Ring of concurrency integrals (concurrency x us) for the last num_buckets_
  // buckets, the current one projected to its end with value_.
  std::vector<int64_t> buckets_;
  bool started_ = false;
  int64_t current_bucket_ = 0;
  Micros last_us_ = 0;
  int value_ = 0;
  bool panicking_ = false;
  Micros last_panic_condition_us_ = 0;
  int max_panic_desired_ = 0;
};

}  // namespace thaw::policy
