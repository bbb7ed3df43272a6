#include "server/metrics.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace thaw {
namespace {

const std::vector<double> kLatencyBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const std::vector<double> kColdStartBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,  0.5,    1,     2.5,  5,     10};
const std::vector<double> kBatchBounds = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

// The shortest text that reads back as the same double (0.0005, not 0.00050000000000000001).
std::string Number(double value) {
  char text[32];
  for (int precision = 6; precision <= 17; ++precision) {
    std::snprintf(text, sizeof(text), "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

// Label values may hold any text; the format escapes backslash, quote and newline.
std::string Escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

class Writer {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // labels: already formatted `k="v",k2="v2"` (may be empty).
  void Sample(std::string_view name, const std::string& labels, double value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += Number(value);
    out_ += '\n';
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string Label(std::string_view key, std::string_view value) {
  return std::string(key) + "=\"" + Escape(value) + "\"";
}

}  // namespace

void PrometheusMetrics::Histogram::Observe(double value) {
  if (counts.empty()) counts.assign(bounds->size() + 1, 0);
  const size_t bucket = std::lower_bound(bounds->begin(), bounds->end(), value) - bounds->begin();
  ++counts[bucket];
  sum += value;
  ++count;
}

PrometheusMetrics::ModelMetrics& PrometheusMetrics::For(const std::string& model) {
  auto it = models_.find(model);
  if (it != models_.end()) return it->second;
  ModelMetrics& m = models_[model];
  m.request_seconds = Histogram(&kLatencyBounds);
  m.queue_seconds = Histogram(&kLatencyBounds);
  m.compute_seconds = Histogram(&kLatencyBounds);
  m.batch_rows = Histogram(&kBatchBounds);
  return m;
}

void PrometheusMetrics::Record(metering::UsageRecord record) {
  if (const auto* instance = std::get_if<metering::InstanceRecord>(&record)) {
    if (instance->stop_reason == "oom") ++For(instance->model).oom_kills;
    return;
  }
  const auto* invocation = std::get_if<metering::InvocationRecord>(&record);
  if (!invocation) return;
  ModelMetrics& m = For(invocation->model);
  ++m.requests_by_code[invocation->http_status];
  m.request_seconds.Observe(invocation->latency_us / 1e6);
  m.queue_seconds.Observe(invocation->queue_us / 1e6);
  if (invocation->instance_id != 0) m.compute_seconds.Observe(invocation->compute_us / 1e6);
  if (invocation->cold_start) {
    ++m.cold_starts[invocation->start_path];
    auto [it, added] = m.cold_start_seconds.try_emplace(invocation->start_path, &kColdStartBounds);
    it->second.Observe(invocation->init_us / 1e6);
  }
}

void PrometheusMetrics::OnExecution(const ExecutionRecord& execution) {
  For(execution.model).batch_rows.Observe(static_cast<double>(execution.rows));
}

std::string PrometheusMetrics::Render(const Runtime& runtime, const std::vector<ModelCostTotals>& costs,
                                      const std::optional<metering::UsageLogHealth>& usage_log) const {
  Writer w;
  auto histogram = [&](std::string_view name, const std::string& labels, const Histogram& h) {
    uint64_t cumulative = 0;
    const std::string prefix = labels.empty() ? "" : labels + ",";
    const size_t buckets = h.bounds ? h.bounds->size() : 0;
    for (size_t i = 0; i < buckets; ++i) {
      cumulative += h.counts.empty() ? 0 : h.counts[i];
      w.Sample(std::string(name) + "_bucket", prefix + Label("le", Number((*h.bounds)[i])), static_cast<double>(cumulative));
    }
    w.Sample(std::string(name) + "_bucket", prefix + Label("le", "+Inf"), static_cast<double>(h.count));
    w.Sample(std::string(name) + "_sum", labels, h.sum);
    w.Sample(std::string(name) + "_count", labels, static_cast<double>(h.count));
  };

  w.Family("thaw_requests_total", "counter", "Inference requests answered, by model and HTTP status code.");
  for (const auto& [model, m] : models_)
    for (const auto& [code, n] : m.requests_by_code)
      w.Sample("thaw_requests_total", Label("model", model) + "," + Label("code", std::to_string(code)),
               static_cast<double>(n));

  const std::pair<std::string_view, std::string_view> latency_families[] = {
      {"thaw_request_duration_seconds", "Time from a request's arrival to its answer, inside the server."},
      {"thaw_queue_duration_seconds", "Time from a request's arrival to its dispatch to an instance."},
      {"thaw_compute_duration_seconds", "Time an execution spent inside the backend."}};
  for (const auto& [name, help] : latency_families) {
    w.Family(name, "histogram", help);
    for (const auto& [model, m] : models_) {
      const Histogram& h = name == latency_families[0].first   ? m.request_seconds
                           : name == latency_families[1].first ? m.queue_seconds
                                                               : m.compute_seconds;
      histogram(name, Label("model", model), h);
    }
  }

  w.Family("thaw_cold_starts_total", "counter", "Requests that waited for a new instance, by start path.");
  for (const auto& [model, m] : models_)
    for (const auto& [path, n] : m.cold_starts)
      w.Sample("thaw_cold_starts_total", Label("model", model) + "," + Label("start_path", path), static_cast<double>(n));
  w.Family("thaw_cold_start_duration_seconds", "histogram",
           "Instance start to ready, for instances a request waited for, by start path.");
  for (const auto& [model, m] : models_)
    for (const auto& [path, h] : m.cold_start_seconds)
      histogram("thaw_cold_start_duration_seconds", Label("model", model) + "," + Label("start_path", path), h);

  w.Family("thaw_instance_oom_kills_total", "counter",
           "Instances the kernel killed for exceeding their memory limit (memory_mb).");
  for (const auto& [model, m] : models_)
    w.Sample("thaw_instance_oom_kills_total", Label("model", model), static_cast<double>(m.oom_kills));

  w.Family("thaw_batch_rows", "histogram", "Rows (dim 0) per execution; one observation per batch.");
  for (const auto& [model, m] : models_) histogram("thaw_batch_rows", Label("model", model), m.batch_rows);

  // Gauges: the runtime's state now.
  std::vector<ModelStatus> statuses;
  for (const std::string& name : runtime.ModelNames())
    if (auto status = runtime.GetModelStatus(name); status.ok()) statuses.push_back(std::move(status).value());
  w.Family("thaw_instances", "gauge", "Instances by state.");
  static constexpr std::string_view kStates[] = {"starting", "idle", "busy", "stopping"};
  for (const ModelStatus& s : statuses) {
    int by_state[4] = {0, 0, 0, 0};
    for (const InstanceStatus& i : s.instances) ++by_state[static_cast<int>(i.state)];
    for (int state = 0; state < 4; ++state)
      w.Sample("thaw_instances", Label("model", s.name) + "," + Label("state", kStates[state]), by_state[state]);
  }
  w.Family("thaw_in_flight_requests", "gauge", "Requests running on instances.");
  for (const ModelStatus& s : statuses) {
    int in_flight = 0;
    for (const InstanceStatus& i : s.instances) in_flight += i.in_flight;
    w.Sample("thaw_in_flight_requests", Label("model", s.name), in_flight);
  }
  w.Family("thaw_queued_requests", "gauge", "Requests waiting for an instance slot or a batch.");
  for (const ModelStatus& s : statuses) w.Sample("thaw_queued_requests", Label("model", s.name), s.queued);

  w.Family("thaw_gigabyte_seconds_total", "counter",
           "Memory-time in GB-seconds: billed on-demand duration, billed init, provisioned capacity, "
           "duration on provisioned instances, and idle-but-warm instance time (not billed).");
  for (const ModelCostTotals& c : costs) {
    const std::pair<std::string_view, double> kinds[] = {{"on_demand", c.on_demand_gb_s},
                                                         {"init", c.init_gb_s},
                                                         {"provisioned", c.provisioned_gb_s},
                                                         {"provisioned_duration", c.provisioned_duration_gb_s},
                                                         {"idle_warm", c.idle_warm_gb_s}};
    for (const auto& [kind, value] : kinds)
      w.Sample("thaw_gigabyte_seconds_total", Label("model", c.model) + "," + Label("kind", kind), value);
  }
  w.Family("thaw_cost_dollars_total", "counter", "Cost under the server's price sheet, in US dollars.");
  for (const ModelCostTotals& c : costs) w.Sample("thaw_cost_dollars_total", Label("model", c.model), c.dollars);
  w.Family("thaw_memory_held_gigabyte_seconds_total", "counter",
           "Memory held in GB-seconds, by what held it: instances busy (init and executions), idle but warm, "
           "provisioned (whole life), templates, standbys, and the shared zygote (model \"(platform)\").");
  for (const ModelCostTotals& c : costs) {
    const std::pair<std::string_view, double> kinds[] = {{"busy", c.held.busy_gb_s},
                                                         {"idle_warm", c.held.idle_warm_gb_s},
                                                         {"provisioned", c.held.provisioned_gb_s},
                                                         {"template", c.held.template_gb_s},
                                                         {"standby", c.held.standby_gb_s},
                                                         {"zygote", c.held.zygote_gb_s}};
    for (const auto& [kind, value] : kinds)
      w.Sample("thaw_memory_held_gigabyte_seconds_total", Label("model", c.model) + "," + Label("kind", kind), value);
  }
  w.Family("thaw_host_cost_dollars_total", "counter",
           "Cost of the memory held at the price sheet's host price per GB-hour, in US dollars; not in "
           "thaw_cost_dollars_total.");
  for (const ModelCostTotals& c : costs)
    w.Sample("thaw_host_cost_dollars_total", Label("model", c.model), c.host_dollars);

  if (usage_log) {
    w.Family("thaw_usage_records_dropped_total", "counter",
             "Usage records never written to the usage log: its buffer was full while writes failed.");
    w.Sample("thaw_usage_records_dropped_total", "", static_cast<double>(usage_log->dropped_records));
    w.Family("thaw_usage_log_write_errors_total", "counter", "Failed attempts to write the usage log.");
    w.Sample("thaw_usage_log_write_errors_total", "", static_cast<double>(usage_log->write_errors));
    w.Family("thaw_usage_log_buffered_records", "gauge", "Usage records waiting to be written to the usage log.");
    w.Sample("thaw_usage_log_buffered_records", "", static_cast<double>(usage_log->buffered_records));
    w.Family("thaw_usage_log_healthy", "gauge", "1 if the last write of the usage log succeeded, 0 if it failed.");
    w.Sample("thaw_usage_log_healthy", "", usage_log->ok ? 1 : 0);
  }
  return w.Take();
}

}  // namespace thaw
