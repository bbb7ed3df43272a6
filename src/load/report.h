// Summaries of a load run (load_generator.h): counts, rates and latency
// percentiles, as a short text table for people and JSON / CSV for scripts.
// Definitions:
//  offered rate      measured requests / schedule_duration_s
//  achieved          2xx responses / (last 2xx response - first send), per second
//  latency           response complete - scheduled send time, over 2xx responses
//                    only (errors and 429s are often fast and would flatter it)
//  send lateness     dispatch - scheduled time, over requests sent
// Percentiles are nearest-rank. A statistic with no data is 0, with its
// count 0 beside it.
// Thread safety: pure functions on values. Errors: only the file writers
// fail (kUnavailable naming the path).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "load/load_generator.h"

namespace thaw::load {

struct Percentiles {
  int64_t count = 0;
  double mean_ms = 0, p50_ms = 0, p90_ms = 0, p99_ms = 0, p999_ms = 0, max_ms = 0;
};

struct LoadSummary {
  double schedule_duration_s = 0;
  int64_t scheduled = 0;        // measured requests (warm-up excluded)
  int64_t warmup_requests = 0;
  int64_t sent = 0;
  int64_t responses = 0;        // any HTTP status
  int64_t ok_2xx = 0;
  int64_t client_overload = 0;  // not sent: the generator ran out of connections
  int64_t timeouts = 0;
  int64_t errors = 0;           // connection or protocol failures
  std::vector<std::pair<int, int64_t>> status_counts;  // ascending status
  double offered_rate_per_s = 0;
  double achieved_per_s = 0;
  Percentiles latency;          // 2xx only
  Percentiles send_lateness;
  int64_t batch_size_responses = 0;
  double mean_batch_size = 0;
  int64_t connections_opened = 0;
  int64_t stale_retries = 0;
  std::vector<ParameterMean> parameters;
  // Requests that did not get a 2xx, by cause, causes with a count only, in
  // this order: connection_refused, connection_reset, timeout, http_429,
  // http_503, http_<status> (other statuses, ascending), client_overload,
  // other_error.
  struct Failure {
    std::string key;    // as above; the JSON key
    std::string label;  // for people: "connection refused", "HTTP 429", ...
    int64_t count = 0;
  };
  std::vector<Failure> failures;
  int64_t distinct_instances = 0;  // instance ids seen in 2xx responses (parameters.instance)
};

// schedule_duration_s: how long the measured schedule lasts (for the offered
// rate), e.g. the --duration-s the schedule was made for.
LoadSummary Summarize(const LoadResult& result, double schedule_duration_s);

// What was run, echoed into the JSON so a result file explains itself.
struct RunInfo {
  std::string url;
  std::string model;
  std::string arrivals;       // "poisson", "constant", ...
  double rate_per_s = 0;
  double duration_s = 0;
  double warmup_s = 0;
  uint64_t seed = 0;
  int max_connections = 0;
  std::string protocol = "http";  // http (JSON tensors), http-binary or grpc
};

std::string SummaryText(const LoadSummary& summary);
// Why the run counts as failed: "" when a request got a 2xx or none was
// scheduled; else a sentence naming the failures by cause ("no request
// succeeded: 6 of 6 failed: connection refused 6 (is a server listening at
// the url?)").
std::string NoSuccessReason(const LoadSummary& summary);
// thaw load's exit status for a run that completed: 1 when NoSuccessReason
// is not empty, else 0.
int LoadExitCode(const LoadSummary& summary);
std::string SummaryJson(const LoadSummary& summary, const RunInfo& run);
// One row per measured request:
// offset_us,latency_us,status,batch_size,outcome,send_lateness_us
// (empty cells where there is no value; status 0 without a response).
std::string RequestsCsv(const LoadResult& result);

Status WriteTextFile(const std::string& path, const std::string& contents);

}  // namespace thaw::load
