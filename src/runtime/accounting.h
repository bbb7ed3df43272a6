// What requests and executions cost, as the runtime reports them: the
// timings of an invocation (queue, batch wait, compute, and for a cold start
// where its time went), the record of each execution (the metering hook),
// and the usage record (metering/usage.h) written for every request.
// Thread safety: value types and pure functions.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "metering/usage.h"
#include "repo/model_config.h"
#include "tensor/tensor.h"

namespace thaw {

// One execution on an instance: a batch of one or more requests, run and
// billed once (the metering hook: a request's cost is its share of this).
struct ExecutionRecord {
  std::string model;
  uint64_t instance_id = 0;
  int requests = 0;         // requests in the batch
  int64_t rows = 0;         // dim-0 rows in the batch
  Micros compute_us = 0;    // inside the backend
  Micros round_trip_us = 0; // dispatch to the instance's answer
  int64_t memory_mb = 0;    // the instance's configured memory
  bool ok = false;          // the batch ran and its outputs split back
};

// Where the time of a cold start went. The parts follow one another:
// queue (before the start was decided and, once ready, until dispatch),
// spawner_wait (a fork asked of a template or zygote still loading waits
// for it to be ready), spawn (posix_spawn, or the spawner's fork, until the
// process runs), runtime_init (exec: the dynamic loader and libtorch's
// static init before main(); all paths: setup in main() or after fork),
// model_load, warmup, attach (the worker's Ready until the runtime can
// dispatch to it: reading the frame, its memory cgroup move), and the first
// inference itself.
// init_us is the whole start, from the decision to start the instance until
// it could run the request (spawner_wait through attach): what the
// cold-start metric observes and the usage record bills as init.
struct ColdStartBreakdown {
  Micros queue_us = 0;
  Micros spawner_wait_us = 0;
  Micros spawn_us = 0;
  Micros runtime_init_us = 0;
  Micros model_load_us = 0;
  Micros warmup_us = 0;
  Micros attach_us = 0;
  Micros first_inference_us = 0;
  Micros init_us = 0;   // spawner_wait + spawn + runtime_init + model_load + warmup + attach
  Micros total_us = 0;  // the request's whole latency inside the server
};

// Timings of one invocation, for responses and logs.
struct InvocationTiming {
  Micros queue_us = 0;    // arrival to dispatch to an instance
  Micros batch_wait_us = 0;  // the part of queue_us spent with a slot free, waiting for the batch to fill
  Micros compute_us = 0;  // inside the backend
  Micros total_us = 0;    // arrival to completion
  int64_t batch_size = 1;   // rows in the execution this request ran in
  int batch_requests = 1;   // requests in that execution
  double batch_share = 1;   // this request's rows / batch_size: its share of the execution's cost
  bool provisioned = false; // ran on an instance of the model's provisioned floor
  bool cold_start = false;  // waited for an instance that became ready after it arrived
  StartPath start_path = StartPath::kExec;  // how that instance started
  StartLevel start_level = StartLevel::kExec;  // and from what
  ColdStartBreakdown cold;  // when cold_start
  uint64_t instance_id = 0;
  // With edge offload (server/upstream_client.h): "local" on the edge,
  // "upstream" on the central server it forwarded to; empty otherwise.
  std::string_view served_by;
};

struct InferOutcome {
  Status status;
  std::vector<Tensor> outputs;  // the model's outputs in config order (or the selected ones)
  InvocationTiming timing;
};

using InferCallback = std::function<void(InferOutcome)>;

// The parts of a cold start in order, named as responses, headers and logs
// name them (queue, spawner_wait, spawn, runtime_init, model_load, warmup,
// attach, first_inference, then the sums init and total).
std::array<std::pair<std::string_view, Micros>, 10> ColdStartParts(const ColdStartBreakdown& cold);

// One instance's start as the runtime saw it (its clock) and as the worker
// reported it in its Ready message.
struct StartTimes {
  StartPath path = StartPath::kExec;
  StartLevel level = StartLevel::kExec;
  Micros spawn_start_us = 0;  // the runtime asked for it
  Micros spawner_wait_us = 0; // fork: how long its spawner was still loading after spawn_start_us
  Micros spawn_done_us = 0;   // exec: posix_spawn returned; fork: the child runs
  Micros ready_us = 0;        // the runtime could dispatch to it (its Ready read, moved into its cgroup)
  Micros worker_started_us = 0;  // main() (exec) or the fork, on the worker's clock
  Micros runtime_init_us = 0;
  Micros model_load_us = 0;
  Micros warmup_us = 0;
};

// Where the time of a request that waited for `start` went.
ColdStartBreakdown ColdStartOf(const StartTimes& start, Micros arrival_us, Micros dispatched_us,
                               Micros first_inference_us, Micros total_us);

// The cold_start log line's fields.
std::string ColdStartFields(std::string_view model, uint64_t instance_id, StartPath path, StartLevel level,
                            const ColdStartBreakdown& cold);

// The usage record of a request answered (or refused) at `wall_now_us`.
metering::InvocationRecord InvocationRecordOf(const std::string& model, int64_t memory_mb, uint64_t request_id,
                                              const InferOutcome& outcome, Micros wall_now_us);

}  // namespace thaw
