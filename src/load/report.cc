#include "load/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "base/format.h"
#include "base/json_writer.h"

namespace thaw::load {
namespace {

Percentiles ComputePercentiles(std::vector<Micros> values) {
  Percentiles p;
  p.count = static_cast<int64_t>(values.size());
  if (values.empty()) return p;
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
    rank = std::clamp<size_t>(rank, 1, values.size());
    return static_cast<double>(values[rank - 1]) / kMicrosPerMilli;
  };
  double sum = 0;
  for (Micros v : values) sum += static_cast<double>(v);
  p.mean_ms = sum / static_cast<double>(values.size()) / kMicrosPerMilli;
  p.p50_ms = at(0.50);
  p.p90_ms = at(0.90);
  p.p99_ms = at(0.99);
  p.p999_ms = at(0.999);
  p.max_ms = static_cast<double>(values.back()) / kMicrosPerMilli;
  return p;
}

std::string Fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, value);
  return buf;
}


void WritePercentiles(JsonWriter& w, const Percentiles& p) {
  w.BeginObject().Field("count", p.count);
  for (const auto& [key, ms] : {std::pair<std::string_view, double>{"mean_ms", p.mean_ms}, {"p50_ms", p.p50_ms},
                                {"p90_ms", p.p90_ms}, {"p99_ms", p.p99_ms}, {"p999_ms", p.p999_ms},
                                {"max_ms", p.max_ms}})
    w.Key(key).Raw(Fixed(ms, 3));
  w.EndObject();
}

}  // namespace

LoadSummary Summarize(const LoadResult& result, double schedule_duration_s) {
  LoadSummary s;
  s.schedule_duration_s = schedule_duration_s;
  s.scheduled = static_cast<int64_t>(result.requests.size());
  s.warmup_requests = result.warmup_requests;
  s.connections_opened = result.connections_opened;
  s.stale_retries = result.stale_retries;
  std::map<int, int64_t> statuses;
  std::vector<Micros> latencies, lateness;
  latencies.reserve(result.requests.size());
  lateness.reserve(result.requests.size());
  Micros first_send = 0, last_ok = 0;
  bool any_sent = false, any_ok = false;
  double batch_sum = 0;
  int64_t refused = 0, reset = 0, other_errors = 0;
  std::set<int64_t> instances;
  for (const RequestRecord& r : result.requests) {
    if (r.send_lateness_us >= 0) {
      ++s.sent;
      lateness.push_back(r.send_lateness_us);
      const Micros sent_at = r.offset_us + r.send_lateness_us;
      first_send = any_sent ? std::min(first_send, sent_at) : sent_at;
      any_sent = true;
    }
    switch (r.outcome) {
      case Outcome::kResponse: {
        ++s.responses;
        ++statuses[r.status];
        if (r.status >= 200 && r.status < 300) {
          ++s.ok_2xx;
          latencies.push_back(r.latency_us);
          const Micros done_at = r.offset_us + r.latency_us;
          last_ok = any_ok ? std::max(last_ok, done_at) : done_at;
          any_ok = true;
          if (r.instance >= 0) instances.insert(r.instance);
        }
        if (r.batch_size >= 0) {
          ++s.batch_size_responses;
          batch_sum += r.batch_size;
        }
        break;
      }
      case Outcome::kClientOverload: ++s.client_overload; break;
      case Outcome::kTimeout: ++s.timeouts; break;
      case Outcome::kError:
        ++s.errors;
        if (r.error == ErrorCause::kConnectionRefused) ++refused;
        else if (r.error == ErrorCause::kConnectionReset) ++reset;
        else ++other_errors;
        break;
    }
  }
  auto fail = [&s](std::string key, std::string label, int64_t count) {
    if (count > 0) s.failures.push_back({std::move(key), std::move(label), count});
  };
  fail("connection_refused", "connection refused", refused);
  fail("connection_reset", "connection reset", reset);
  fail("timeout", "timeout", s.timeouts);
  fail("http_429", "HTTP 429", statuses.count(429) ? statuses[429] : 0);
  fail("http_503", "HTTP 503", statuses.count(503) ? statuses[503] : 0);
  for (const auto& [status, count] : statuses)
    if ((status < 200 || status >= 300) && status != 429 && status != 503)
      fail("http_" + std::to_string(status), "HTTP " + std::to_string(status), count);
  fail("client_overload", "client overload", s.client_overload);
  fail("other_error", "other error", other_errors);
  s.distinct_instances = static_cast<int64_t>(instances.size());
  s.status_counts.assign(statuses.begin(), statuses.end());
  if (schedule_duration_s > 0) s.offered_rate_per_s = static_cast<double>(s.scheduled) / schedule_duration_s;
  if (any_ok && last_ok > first_send)
    s.achieved_per_s = static_cast<double>(s.ok_2xx) * kMicrosPerSecond / static_cast<double>(last_ok - first_send);
  s.latency = ComputePercentiles(std::move(latencies));
  s.send_lateness = ComputePercentiles(std::move(lateness));
  if (s.batch_size_responses > 0) s.mean_batch_size = batch_sum / static_cast<double>(s.batch_size_responses);
  s.parameters = result.parameters;
  return s;
}

std::string SummaryText(const LoadSummary& s) {
  std::string out;
  auto line = [&](const std::string& label, const std::string& value) {
    out += "  " + label + std::string(label.size() < 18 ? 18 - label.size() : 1, ' ') + value + "\n";
  };
  if (s.client_overload > 0) {
    out += "  WARNING: " + std::to_string(s.client_overload) +
           " requests were not sent (client_overload): all connections were busy with earlier\n"
           "  requests, so the server never saw this part of the load; the generator's connection cap was\n"
           "  the limit. Raise --max-connections or lower --rate.\n";
  }
  line("offered", Fixed(s.offered_rate_per_s, 1) + " req/s  (" + std::to_string(s.scheduled) + " requests over " +
                      Fixed(s.schedule_duration_s, 1) + " s" +
                      (s.warmup_requests > 0 ? "; " + std::to_string(s.warmup_requests) + " warm-up not counted" : "") +
                      ")");
  line("achieved", Fixed(s.achieved_per_s, 1) + " req/s  (2xx responses, first send to last 2xx)");
  std::string statuses;
  for (const auto& [status, count] : s.status_counts)
    statuses += (statuses.empty() ? "" : "  ") + std::to_string(status) + ": " + std::to_string(count);
  line("status", statuses.empty() ? "(no responses)" : statuses);
  line("client_overload", std::to_string(s.client_overload) + (s.client_overload > 0 ? "  <-- generator-limited" : ""));
  std::string failures;
  for (const LoadSummary::Failure& f : s.failures)
    failures += (failures.empty() ? "" : "  ") + f.label + " " + std::to_string(f.count);
  line("failures", failures.empty() ? "none" : failures);
  const Percentiles& l = s.latency;
  line("latency (ms)", "p50 " + Fixed(l.p50_ms, 3) + "  p90 " + Fixed(l.p90_ms, 3) + "  p99 " + Fixed(l.p99_ms, 3) +
                           "  p99.9 " + Fixed(l.p999_ms, 3) + "  max " + Fixed(l.max_ms, 3) + "  (" +
                           std::to_string(l.count) + " 2xx only, from scheduled time)");
  line("send lateness", "p99 " + Fixed(s.send_lateness.p99_ms, 3) + " ms  max " + Fixed(s.send_lateness.max_ms, 3) + " ms");
  line("batch_size", s.batch_size_responses > 0 ? "mean " + Fixed(s.mean_batch_size, 2) + "  (" +
                                                      std::to_string(s.batch_size_responses) + " responses reported one)"
                                                : "(not reported)");
  std::string params;
  for (const ParameterMean& p : s.parameters)
    if (p.count > 0) params += (params.empty() ? "" : "  ") + p.name + " " + SignificantText(p.sum / static_cast<double>(p.count), 3);
  if (!params.empty()) line("server (mean)", params);
  if (s.distinct_instances > 0)
    line("instances", std::to_string(s.distinct_instances) + " distinct  (ids in 2xx responses)");
  line("connections", std::to_string(s.connections_opened) + " opened" +
                          (s.stale_retries > 0 ? ", " + std::to_string(s.stale_retries) + " stale resends" : ""));
  return out;
}

std::string NoSuccessReason(const LoadSummary& s) {
  if (s.ok_2xx > 0 || s.scheduled == 0) return "";
  std::string causes;
  bool refused = false;
  for (const LoadSummary::Failure& f : s.failures) {
    causes += (causes.empty() ? "" : ", ") + f.label + " " + std::to_string(f.count);
    refused = refused || f.key == "connection_refused";
  }
  return "no request succeeded: " + std::to_string(s.scheduled) + " of " + std::to_string(s.scheduled) +
         " failed" + (causes.empty() ? "" : ": " + causes) +
         (refused ? " (is a server listening at the url?)" : "");
}

int LoadExitCode(const LoadSummary& summary) { return NoSuccessReason(summary).empty() ? 0 : 1; }

std::string SummaryJson(const LoadSummary& s, const RunInfo& run) {
  std::string j;
  JsonWriter w(&j);
  auto fixed = [&w](std::string_view key, double value, int decimals) { w.Key(key).Raw(Fixed(value, decimals)); };
  w.BeginObject().Key("run").BeginObject().Field("url", run.url).Field("model", run.model).Field("arrivals", run.arrivals);
  fixed("rate_per_s", run.rate_per_s, 3);
  fixed("duration_s", run.duration_s, 3);
  fixed("warmup_s", run.warmup_s, 3);
  w.Field("seed", run.seed).Field("max_connections", run.max_connections);
  w.Field("protocol", run.protocol).EndObject();
  fixed("schedule_duration_s", s.schedule_duration_s, 3);
  w.Field("scheduled", s.scheduled).Field("warmup_requests", s.warmup_requests).Field("sent", s.sent);
  w.Field("responses", s.responses).Field("ok_2xx", s.ok_2xx).Field("client_overload", s.client_overload);
  w.Field("timeouts", s.timeouts).Field("errors", s.errors).Key("status_counts").BeginObject();
  for (const auto& [status, count] : s.status_counts) w.Field(std::to_string(status), count);
  w.EndObject();
  fixed("offered_rate_per_s", s.offered_rate_per_s, 3);
  fixed("achieved_per_s", s.achieved_per_s, 3);
  w.Key("latency_2xx");
  WritePercentiles(w, s.latency);
  w.Key("send_lateness");
  WritePercentiles(w, s.send_lateness);
  w.Key("batch_size").BeginObject().Field("responses", s.batch_size_responses);
  fixed("mean", s.mean_batch_size, 4);
  w.EndObject().Key("failures").BeginObject();
  for (const LoadSummary::Failure& f : s.failures) w.Field(f.key, f.count);
  w.EndObject().Field("distinct_instances", s.distinct_instances).Key("parameter_means").BeginObject();
  for (const ParameterMean& p : s.parameters) {
    if (p.count == 0) continue;
    w.Key(p.name).BeginObject();
    fixed("mean", p.sum / static_cast<double>(p.count), 6);
    w.Field("count", p.count).EndObject();
  }
  w.EndObject().Field("connections_opened", s.connections_opened).Field("stale_retries", s.stale_retries).EndObject();
  return j + "\n";
}

std::string RequestsCsv(const LoadResult& result) {
  std::string out = "offset_us,latency_us,status,batch_size,compute_ms,outcome,send_lateness_us\n";
  out.reserve(out.size() + result.requests.size() * 48);
  for (const RequestRecord& r : result.requests) {
    out += std::to_string(r.offset_us);
    out += ',';
    if (r.latency_us >= 0) out += std::to_string(r.latency_us);
    out += ',';
    out += std::to_string(r.status);
    out += ',';
    if (r.batch_size >= 0) out += std::to_string(r.batch_size);
    out += ',';
    if (r.compute_ms >= 0) {
      char text[32];
      std::snprintf(text, sizeof(text), "%.3f", r.compute_ms);
      out += text;
    }
    out += ',';
    out += OutcomeName(r.outcome);
    out += ',';
    if (r.send_lateness_us >= 0) out += std::to_string(r.send_lateness_us);
    out += '\n';
  }
  return out;
}

Status WriteTextFile(const std::string& path, const std::string& contents) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return Unavailable("cannot open '" + path + "' for writing: " + std::strerror(errno));
  file.write(contents.data(), static_cast<std::streamsize>(contents.size()));
  file.close();
  if (!file) return Unavailable("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace thaw::load
