#include "settings/policy_options.h"

namespace thaw {

policy::AutoscalerOptions AutoscalerOptionsFor(const ModelConfig& c) {
  policy::AutoscalerOptions o;
  o.stable_window_us = c.stable_window_s * kMicrosPerSecond;
  o.panic_window_us = c.panic_window_s * kMicrosPerSecond;
  o.instance_concurrency = c.instance_concurrency;
  o.target_concurrency = c.target_concurrency > 0 ? c.target_concurrency : c.instance_concurrency;
  o.min_instances = c.min_instances;
  o.max_instances = c.max_concurrency;
  return o;
}

policy::KeepAliveOptions KeepAliveOptionsFor(const ModelConfig& c) {
  policy::KeepAliveOptions o;
  o.kind = c.keep_alive_policy == "histogram" ? policy::KeepAliveKind::kHistogram : policy::KeepAliveKind::kFixed;
  o.keep_alive_us = c.keep_alive_s * kMicrosPerSecond;
  o.bin_width_us = c.histogram_bin_ms * kMicrosPerMilli;
  o.range_us = c.histogram_range_s * kMicrosPerSecond;
  return o;
}

policy::BatchingOptions BatchingOptionsFor(const ModelConfig& c) {
  policy::BatchingOptions o;
  o.mode = c.batching == "fixed"      ? policy::BatchingMode::kFixed
           : c.batching == "adaptive" ? policy::BatchingMode::kAdaptive
                                      : policy::BatchingMode::kOff;
  o.max_batch_size = c.max_batch_size;
  o.max_queue_delay_us = c.max_queue_delay_us;
  o.preferred_batch_sizes = c.preferred_batch_sizes;
  o.slo_p99_ms = c.slo_p99_ms;
  return o;
}

}  // namespace thaw
