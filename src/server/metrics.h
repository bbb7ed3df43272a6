// PrometheusMetrics: the server's /metrics, in the Prometheus text
// exposition format (0.0.4). Counters and histograms are updated from usage
// records (one per request) and execution records (one per batch); gauges
// (instances by state, in-flight and queued requests) are read from the
// runtime when rendered; GB-seconds and dollars come from the metering
// report passed to Render, so they equal what /stats and `thaw cost` show.
//
// Names follow Prometheus conventions: base units in names (`_seconds`),
// `_total` on counters, one family per HELP/TYPE pair; label values escaped.
// Families:
//   thaw_requests_total{model,code}                      counter
//   thaw_request_duration_seconds{model}                 histogram, arrival to answer
//   thaw_queue_duration_seconds{model}                   histogram, arrival to dispatch
//   thaw_compute_duration_seconds{model}                 histogram, inside the backend
//   thaw_cold_starts_total{model,start_path}             counter
//   thaw_cold_start_duration_seconds{model,start_path}   histogram, instance start to ready
//   thaw_instance_oom_kills_total{model}                counter, instances OOM-killed at memory_mb
//   thaw_batch_rows{model}                               histogram, rows per execution
//   thaw_instances{model,state}                          gauge (starting, idle, busy, stopping)
//   thaw_in_flight_requests{model}, thaw_queued_requests{model}   gauges
//   thaw_gigabyte_seconds_total{model,kind}              counter (on_demand, init, provisioned,
//                                                        provisioned_duration, idle_warm)
//   thaw_cost_dollars_total{model}                       counter, the Lambda-style bill
//   thaw_memory_held_gigabyte_seconds_total{model,kind}  counter (busy, idle_warm, provisioned,
//                                                        template, standby, zygote); the zygote's
//                                                        model is "(platform)"
//   thaw_host_cost_dollars_total{model}                  counter, memory held at the host price
//   With a usage log (usage_log passed to Render):
//   thaw_usage_records_dropped_total                     counter, records never written (buffer full)
//   thaw_usage_log_write_errors_total                    counter, failed write attempts
//   thaw_usage_log_buffered_records                      gauge, records waiting to be written
//   thaw_usage_log_healthy                               gauge, 1 if the last write succeeded
// Thread safety: not thread-safe; use on the io_context thread.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "metering/usage.h"
#include "metering/usage_log.h"
#include "policy/pricing.h"
#include "runtime/runtime.h"

namespace thaw {

// Cumulative cost of one model, from the metering report.
struct ModelCostTotals {
  std::string model;
  double on_demand_gb_s = 0;
  double init_gb_s = 0;
  double provisioned_gb_s = 0;
  double provisioned_duration_gb_s = 0;
  double idle_warm_gb_s = 0;
  double dollars = 0;             // the Lambda-style bill (Bill::total_usd)
  policy::HeldMemory held;        // memory held, by kind
  double host_dollars = 0;        // the host cost of `held` (Bill::host_usd)
};

class PrometheusMetrics : public metering::UsageSink {
 public:
  void Record(metering::UsageRecord record) override;
  void OnExecution(const ExecutionRecord& execution);

  std::string Render(const Runtime& runtime, const std::vector<ModelCostTotals>& costs,
                     const std::optional<metering::UsageLogHealth>& usage_log = std::nullopt) const;

 private:
  struct Histogram {
    explicit Histogram(const std::vector<double>* bounds = nullptr) : bounds(bounds) {}
    const std::vector<double>* bounds;
    std::vector<uint64_t> counts;  // per bucket (not cumulative); last = +Inf
    double sum = 0;
    uint64_t count = 0;
    void Observe(double value);
  };
  struct ModelMetrics {
    std::map<int, uint64_t> requests_by_code;
    Histogram request_seconds, queue_seconds, compute_seconds, batch_rows;
    std::map<std::string, uint64_t> cold_starts;       // by start path
    std::map<std::string, Histogram> cold_start_seconds;
    uint64_t oom_kills = 0;  // instance records with stop_reason "oom"
  };
  ModelMetrics& For(const std::string& model);

  std::map<std::string, ModelMetrics> models_;
};

}  // namespace thaw
