#include "policy/autoscaler.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace thaw::policy {
namespace {

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t FloorMod(int64_t a, int64_t b) { return a - FloorDiv(a, b) * b; }

// ceil(x) that ignores floating-point noise: 7 / 0.7 must be 10, not 11.
int CeilTolerant(double x) { return std::max(0, static_cast<int>(std::ceil(x - 1e-9))); }

}  // namespace

Status Validate(const AutoscalerOptions& o) {
  auto bad = [](const std::string& field, const std::string& why) {
    return InvalidArgument("autoscaler option '" + field + "' " + why);
  };
  if (o.bucket_us <= 0) return bad("bucket_us", "must be > 0");
  if (o.stable_window_us <= 0 || o.stable_window_us % o.bucket_us != 0)
    return bad("stable_window_us", "must be a positive multiple of bucket_us");
  if (o.stable_window_us / o.bucket_us > 100000) return bad("stable_window_us", "must span at most 100000 buckets");
  if (o.panic_window_us <= 0 || o.panic_window_us % o.bucket_us != 0)
    return bad("panic_window_us", "must be a positive multiple of bucket_us");
  if (o.panic_window_us > o.stable_window_us) return bad("panic_window_us", "must be <= stable_window_us");
  if (!(o.panic_threshold >= 1.0)) return bad("panic_threshold", "must be >= 1");
  if (o.instance_concurrency < 1) return bad("instance_concurrency", "must be >= 1");
  if (!(o.target_utilization > 0.0 && o.target_utilization <= 1.0))
    return bad("target_utilization", "must be in (0, 1]");
  if (!(o.target_concurrency >= 0.0) || o.target_concurrency > o.instance_concurrency)
    return bad("target_concurrency", "must be in [0, instance_concurrency] (0 = instance_concurrency x target_utilization)");
  if (o.min_instances < 0) return bad("min_instances", "must be >= 0");
  if (o.max_instances < std::max(1, o.min_instances)) return bad("max_instances", "must be >= max(1, min_instances)");
  return Status::Ok();
}

double TargetConcurrency(const AutoscalerOptions& o) {
  return o.target_concurrency > 0 ? o.target_concurrency : o.instance_concurrency * o.target_utilization;
}

Autoscaler::Autoscaler(const AutoscalerOptions& options)
    : options_(options),
      target_(TargetConcurrency(options)),
      num_buckets_(options.stable_window_us / options.bucket_us),
      panic_buckets_(options.panic_window_us / options.bucket_us),
      buckets_(static_cast<size_t>(num_buckets_), 0) {}

size_t Autoscaler::Slot(int64_t bucket) const { return static_cast<size_t>(FloorMod(bucket, num_buckets_)); }

void Autoscaler::Advance(Micros now_us) {
  const int64_t bucket = FloorDiv(now_us, options_.bucket_us);
  if (!started_) {
    // Before the first observation the model had no load: the ring is zero.
    started_ = true;
    current_bucket_ = bucket;
    last_us_ = now_us;
    return;
  }
  if (now_us <= last_us_) return;
  // Buckets passed since the last observation held value_ throughout; the
  // current one already holds value_ projected to its end.
  for (int64_t b = std::max(current_bucket_ + 1, bucket - num_buckets_ + 1); b <= bucket; ++b) {
    buckets_[Slot(b)] = static_cast<int64_t>(value_) * options_.bucket_us;
  }
  current_bucket_ = std::max(current_bucket_, bucket);
  last_us_ = now_us;
}

int64_t Autoscaler::SumLastBuckets(int64_t count) const {
  // Walks the ring from the oldest of the `count` buckets, without a
  // division per bucket (this runs on every event, live and simulated).
  int64_t sum = 0;
  size_t slot = Slot(current_bucket_ - count + 1);
  for (int64_t i = 0; i < count; ++i) {
    sum += buckets_[slot];
    if (++slot == buckets_.size()) slot = 0;
  }
  return sum;
}

AutoscaleDecision Autoscaler::Update(const AutoscaleObservation& observation) {
  Advance(observation.now_us);
  const Micros now = last_us_;
  const int concurrency = std::max(0, observation.concurrency);
  if (concurrency != value_) {
    const Micros bucket_end = (current_bucket_ + 1) * options_.bucket_us;
    buckets_[Slot(current_bucket_)] += static_cast<int64_t>(concurrency - value_) * (bucket_end - now);
    value_ = concurrency;
  }

  AutoscaleDecision decision;
  decision.stable_concurrency =
      static_cast<double>(SumLastBuckets(num_buckets_)) / static_cast<double>(options_.stable_window_us);
  decision.panic_concurrency =
      static_cast<double>(SumLastBuckets(panic_buckets_)) / static_cast<double>(options_.panic_window_us);
  const int stable_desired = CeilTolerant(decision.stable_concurrency / target_);
  const int panic_desired = CeilTolerant(decision.panic_concurrency / target_);

  const int ready = std::max(1, observation.ready_instances);
  if (panic_desired >= options_.panic_threshold * ready) {
    if (!panicking_) max_panic_desired_ = 0;
    panicking_ = true;
    last_panic_condition_us_ = now;
  } else if (panicking_ && now >= last_panic_condition_us_ + options_.stable_window_us) {
    // The surge has had a full stable window to show in the stable average.
    panicking_ = false;
    max_panic_desired_ = 0;
  }

  int desired = stable_desired;
  if (panicking_) {
    desired = std::max(desired, panic_desired);
    max_panic_desired_ = std::max(max_panic_desired_, desired);
    desired = max_panic_desired_;  // no scale-down while panicking
  }
  decision.desired_instances = std::clamp(desired, options_.min_instances, options_.max_instances);
  decision.panicking = panicking_;

  // Nothing changes without a new observation once every bucket holds the
  // current value for its whole length and there is no panic to leave.
  const int64_t full = static_cast<int64_t>(value_) * options_.bucket_us;
  const bool steady = std::all_of(buckets_.begin(), buckets_.end(), [&](int64_t b) { return b == full; });
  if (panicking_ || !steady) decision.next_wake_us = (current_bucket_ + 1) * options_.bucket_us;
  return decision;
}

}  // namespace thaw::policy
