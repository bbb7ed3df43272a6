// Executions as the runtime sends and answers them: the requests of one
// dispatch joined into one message (dim 0 is the batch), and an instance's
// answer split back into each request's outcome with its timings (queue,
// batch wait, compute, its share of the batch, and for a request that waited
// for its instance to start, where that time went).
// Errors: kInternal when requests do not join or outputs do not split back
// (requests share an execution only with equal shape keys, so a bug).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "ipc/messages.h"
#include "runtime/accounting.h"

namespace thaw {

// The message for execution `execution_id` from its requests' inputs, in
// dispatch order.
StatusOr<ipc::InferRequestMessage> ExecutionRequest(uint64_t execution_id, std::vector<std::vector<Tensor>> inputs,
                                                    std::vector<std::string> output_names);

// A request of an answered execution, as the runtime saw it.
struct AnsweredRequest {
  int64_t rows = 1;
  Micros arrival_us = 0;
  Micros dispatched_us = 0;
  Micros batch_wait_us = 0;
};

// The instance that ran it.
struct AnsweringInstance {
  uint64_t id = 0;
  bool provisioned = false;
  StartTimes start;  // path and ready_us decide cold starts
};

// Each request's outcome, in order: the instance's status, or its share of
// the outputs (kInternal for all if they do not split back). `now_us` is
// when the answer came.
std::vector<InferOutcome> AnswerOutcomes(const std::string& model, const Status& status, std::vector<Tensor> outputs,
                                         Micros compute_us, const std::vector<AnsweredRequest>& requests,
                                         const AnsweringInstance& instance, Micros now_us);

}  // namespace thaw
