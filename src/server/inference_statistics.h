// InferenceStatistics: per-model counters in the shape of Triton's
// statistics extension, for GET /v2/models/stats and
// GET /v2/models/{m}[/versions/{v}]/stats (what tritonclient's
// get_inference_statistics() and perf_analyzer read). thaw's own usage and
// cost report is a different thing, at /v2/models/{m}/usage and /v2/stats.
//
// Fed from the runtime's records: one InvocationRecord per request (through
// the usage fan-out) and one ExecutionRecord per batch (on_execution).
//   success / fail     requests answered 2xx / otherwise; ns: arrival to answer
//   queue              successful requests; ns: arrival to dispatch (batch wait included)
//   compute_input      executions; ns: the round trip to the instance minus the
//                      backend's time (tensors to and from the instance's process)
//   compute_infer      executions; ns: inside the backend
//   compute_output     executions; ns: 0 (outputs travel back within compute_input's
//                      round trip; they are not timed apart)
//   inference_count    rows of successful requests (Triton counts batch rows)
//   execution_count    successful executions
//   last_inference     ms since the Unix epoch of the last answer; 0 if none
//   batch_stats        per execution size in rows: compute_input/infer/output as above
// Requests refused before they reach the runtime (malformed, unknown
// output) are not counted, as Triton does not count them.
//
// Thread safety: not thread-safe; use on the io_context thread (like
// PrometheusMetrics). Errors: none.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "metering/usage.h"
#include "runtime/accounting.h"

namespace thaw {

class InferenceStatistics : public metering::UsageSink {
 public:
  void Record(metering::UsageRecord record) override;
  void OnExecution(const ExecutionRecord& execution);

  // {"model_stats":[...]}: one entry per name in `models`, in that order,
  // version "1"; a model with no requests yet has zeros.
  std::string Json(const std::vector<std::string>& models) const;

 private:
  struct Duration {
    uint64_t count = 0;
    uint64_t ns = 0;
    void Add(int64_t us) {
      ++count;
      ns += static_cast<uint64_t>(us > 0 ? us : 0) * 1000;
    }
  };
  struct BatchStats {
    Duration compute_input, compute_infer, compute_output;
  };
  struct ModelStats {
    int64_t last_inference_ms = 0;
    uint64_t inference_count = 0;
    uint64_t execution_count = 0;
    Duration success, fail, queue;
    BatchStats executions;                 // all sizes
    std::map<int64_t, BatchStats> by_rows;  // per execution size
  };

  std::map<std::string, ModelStats> models_;
};

}  // namespace thaw
