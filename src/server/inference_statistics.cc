#include "server/inference_statistics.h"

#include <cmath>
#include <variant>

#include "base/json_writer.h"

namespace thaw {
namespace {

void WriteDuration(JsonWriter& w, std::string_view key, uint64_t count, uint64_t ns) {
  w.Key(key).BeginObject().Field("count", count).Field("ns", ns).EndObject();
}

}  // namespace

void InferenceStatistics::Record(metering::UsageRecord record) {
  const auto* invocation = std::get_if<metering::InvocationRecord>(&record);
  if (!invocation) return;
  ModelStats& m = models_[invocation->model];
  const bool ok = invocation->http_status >= 200 && invocation->http_status < 300;
  if (!ok) {
    m.fail.Add(invocation->latency_us);
    return;
  }
  m.success.Add(invocation->latency_us);
  m.queue.Add(invocation->queue_us);
  // The request's own rows: its share of the execution it ran in.
  m.inference_count += static_cast<uint64_t>(
      std::max<int64_t>(1, std::llround(invocation->share * static_cast<double>(invocation->batch_rows))));
  m.last_inference_ms = std::max(m.last_inference_ms, (invocation->arrival_wall_us + invocation->latency_us) / 1000);
}

void InferenceStatistics::OnExecution(const ExecutionRecord& execution) {
  if (!execution.ok) return;
  ModelStats& m = models_[execution.model];
  ++m.execution_count;
  const Micros transfer_us = execution.round_trip_us - execution.compute_us;
  for (BatchStats* stats : {&m.executions, &m.by_rows[execution.rows]}) {
    stats->compute_input.Add(transfer_us);
    stats->compute_infer.Add(execution.compute_us);
    stats->compute_output.Add(0);
  }
}

std::string InferenceStatistics::Json(const std::vector<std::string>& models) const {
  static const ModelStats kNone;
  std::string json;
  JsonWriter w(&json);
  w.BeginObject().Key("model_stats").BeginArray();
  for (const std::string& name : models) {
    auto it = models_.find(name);
    const ModelStats& m = it == models_.end() ? kNone : it->second;
    w.BeginObject().Field("name", name).Field("version", "1").Field("last_inference", m.last_inference_ms);
    w.Field("inference_count", m.inference_count).Field("execution_count", m.execution_count);
    w.Key("inference_stats").BeginObject();
    WriteDuration(w, "success", m.success.count, m.success.ns);
    WriteDuration(w, "fail", m.fail.count, m.fail.ns);
    WriteDuration(w, "queue", m.queue.count, m.queue.ns);
    WriteDuration(w, "compute_input", m.executions.compute_input.count, m.executions.compute_input.ns);
    WriteDuration(w, "compute_infer", m.executions.compute_infer.count, m.executions.compute_infer.ns);
    WriteDuration(w, "compute_output", m.executions.compute_output.count, m.executions.compute_output.ns);
    WriteDuration(w, "cache_hit", 0, 0);  // thaw has no response cache
    WriteDuration(w, "cache_miss", 0, 0);
    w.EndObject().Key("batch_stats").BeginArray();
    for (const auto& [rows, stats] : m.by_rows) {
      w.BeginObject().Field("batch_size", rows);
      WriteDuration(w, "compute_input", stats.compute_input.count, stats.compute_input.ns);
      WriteDuration(w, "compute_infer", stats.compute_infer.count, stats.compute_infer.ns);
      WriteDuration(w, "compute_output", stats.compute_output.count, stats.compute_output.ns);
      w.EndObject();
    }
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return json;
}

}  // namespace thaw
