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
  o.kind = c.keep_alive_policy == KeepAlive::kHistogram  ? policy::KeepAliveKind::kHistogram
           : c.keep_alive_policy == KeepAlive::kAdaptive ? policy::KeepAliveKind::kAdaptive
                                                         : policy::KeepAliveKind::kFixed;
  o.keep_alive_us = c.keep_alive_s * kMicrosPerSecond;
  o.bin_width_us = c.histogram_bin_ms * kMicrosPerMilli;
  o.range_us = c.histogram_range_s * kMicrosPerSecond;
  return o;
}

policy::TemplateCacheOptions TemplateCacheOptionsFor(const ModelConfig& c) {
  return {.keep_alive_us = c.template_keep_alive_s * kMicrosPerSecond};
}

policy::BatchingOptions BatchingOptionsFor(const ModelConfig& c) {
  policy::BatchingOptions o;
  o.mode = c.batching == Batching::kFixed      ? policy::BatchingMode::kFixed
           : c.batching == Batching::kAdaptive ? policy::BatchingMode::kAdaptive
                                               : policy::BatchingMode::kOff;
  o.max_batch_size = c.max_batch_size;
  o.max_queue_delay_us = c.max_queue_delay_us;
  o.preferred_batch_sizes = c.preferred_batch_sizes;
  o.slo_p99_ms = c.slo_p99_ms;
  return o;
}

policy::AdmissionOptions AdmissionOptionsFor(const ModelConfig& c) {
  return {.max_concurrency = c.max_concurrency, .instance_concurrency = c.instance_concurrency, .max_queue = c.max_queue};
}

std::vector<policy::ProvisionedWindow> ProvisionedWindowsFor(const ModelConfig& c) {
  std::vector<policy::ProvisionedWindow> windows;
  for (const ScheduleWindow& w : c.provisioned_schedule)
    windows.push_back({w.days_mask, w.start_minute, w.end_minute, w.min_instances});
  return windows;
}

Status ValidatePolicyOptions(const ModelConfig& c) {
  THAW_RETURN_IF_ERROR(policy::Validate(AutoscalerOptionsFor(c)));
  THAW_RETURN_IF_ERROR(policy::Validate(KeepAliveOptionsFor(c)));
  THAW_RETURN_IF_ERROR(policy::Validate(BatchingOptionsFor(c)));
  THAW_RETURN_IF_ERROR(policy::Validate(AdmissionOptionsFor(c)));
  return policy::Validate(ProvisionedWindowsFor(c));
}

}  // namespace thaw
