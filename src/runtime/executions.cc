#include "runtime/executions.h"

#include <algorithm>

#include "tensor/batch.h"

namespace thaw {

StatusOr<ipc::InferRequestMessage> ExecutionRequest(uint64_t execution_id, std::vector<std::vector<Tensor>> inputs,
                                                    std::vector<std::string> output_names) {
  ipc::InferRequestMessage message;
  message.request_id = execution_id;
  message.output_names = std::move(output_names);
  if (inputs.size() == 1) {
    message.inputs = std::move(inputs.front());
    return message;
  }
  auto joined = ConcatBatch(inputs);
  if (!joined.ok()) return Internal("cannot batch requests: " + joined.status().message());
  message.inputs = std::move(joined).value();
  return message;
}

std::vector<InferOutcome> AnswerOutcomes(const std::string& model, const Status& status, std::vector<Tensor> outputs,
                                         Micros compute_us, const std::vector<AnsweredRequest>& requests,
                                         const AnsweringInstance& instance, Micros now_us) {
  int64_t batch_rows = 0;
  for (const AnsweredRequest& r : requests) batch_rows += r.rows;
  std::vector<std::vector<Tensor>> outputs_per_request;
  Status split = Status::Ok();
  if (status.ok() && requests.size() > 1) {
    std::vector<int64_t> rows;
    for (const AnsweredRequest& r : requests) rows.push_back(r.rows);
    auto parts = SplitBatch(outputs, rows);
    if (parts.ok()) outputs_per_request = std::move(parts).value();
    else split = Internal("model '" + model + "' returned outputs that do not split back into the batch: " +
                          parts.status().message());
  }
  std::vector<InferOutcome> outcomes(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    const AnsweredRequest& r = requests[i];
    InferOutcome& outcome = outcomes[i];
    outcome.status = !status.ok() ? status : split;
    if (outcome.status.ok())
      outcome.outputs = requests.size() == 1 ? std::move(outputs) : std::move(outputs_per_request[i]);
    InvocationTiming& t = outcome.timing;
    t.queue_us = r.dispatched_us - r.arrival_us;
    t.batch_wait_us = r.batch_wait_us;
    t.compute_us = compute_us;
    t.total_us = now_us - r.arrival_us;
    t.batch_size = batch_rows;
    t.batch_requests = static_cast<int>(requests.size());
    t.batch_share = static_cast<double>(r.rows) / static_cast<double>(std::max<int64_t>(1, batch_rows));
    t.cold_start = instance.start.ready_us > r.arrival_us;
    t.start_path = instance.start.path;
    t.start_level = instance.start.level;
    t.instance_id = instance.id;
    t.provisioned = instance.provisioned;
    if (t.cold_start) t.cold = ColdStartOf(instance.start, r.arrival_us, r.dispatched_us, compute_us, t.total_us);
  }
  return outcomes;
}

}  // namespace thaw
