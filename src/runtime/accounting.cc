#include "runtime/accounting.h"

#include <algorithm>

#include "base/log.h"

namespace thaw {

ColdStartBreakdown ColdStartOf(const StartTimes& start, Micros arrival_us, Micros dispatched_us,
                               Micros first_inference_us, Micros total_us) {
  ColdStartBreakdown cold;
  cold.queue_us = std::max<Micros>(0, start.spawn_start_us - arrival_us) + (dispatched_us - start.ready_us);
  cold.init_us = std::max<Micros>(0, start.ready_us - start.spawn_start_us);
  cold.spawner_wait_us = std::clamp<Micros>(start.spawner_wait_us, 0, cold.init_us);
  // A fork's spawn_done is the child's first moment (worker clock, the same
  // monotonic clock): what is left after the wait for its spawner is the fork.
  cold.spawn_us = std::max<Micros>(0, start.spawn_done_us - start.spawn_start_us - cold.spawner_wait_us);
  // For exec, the time from posix_spawn to main() is the loader and the
  // engines' static initialisation.
  cold.runtime_init_us = start.runtime_init_us + (start.path == StartPath::kExec
                                                      ? std::max<Micros>(0, start.worker_started_us - start.spawn_done_us)
                                                      : 0);
  cold.model_load_us = start.model_load_us;
  cold.warmup_us = start.warmup_us;
  // The rest of the whole start: after the worker's Ready, until dispatchable.
  const Micros measured =
      cold.spawner_wait_us + cold.spawn_us + cold.runtime_init_us + cold.model_load_us + cold.warmup_us;
  cold.attach_us = std::max<Micros>(0, cold.init_us - measured);
  // Parts measured in the worker may overshoot the runtime's view by clock
  // reads: init is never less than the parts it is made of.
  cold.init_us = std::max(cold.init_us, measured);
  cold.first_inference_us = first_inference_us;
  cold.total_us = total_us;
  return cold;
}

std::array<std::pair<std::string_view, Micros>, 10> ColdStartParts(const ColdStartBreakdown& c) {
  return {{{"queue", c.queue_us},
           {"spawner_wait", c.spawner_wait_us},
           {"spawn", c.spawn_us},
           {"runtime_init", c.runtime_init_us},
           {"model_load", c.model_load_us},
           {"warmup", c.warmup_us},
           {"attach", c.attach_us},
           {"first_inference", c.first_inference_us},
           {"init", c.init_us},
           {"total", c.total_us}}};
}

std::string ColdStartFields(std::string_view model, uint64_t instance_id, StartPath path, StartLevel level,
                            const ColdStartBreakdown& cold) {
  std::string fields = LogFields({{"model", std::string(model)}, {"instance", std::to_string(instance_id)},
                                  {"start_path", std::string(StartPathName(path))},
                                  {"start_level", std::string(StartLevelName(level))}});
  for (const auto& [name, us] : ColdStartParts(cold)) {
    fields += ' ';
    fields += name;
    fields += "_ms=";
    fields += MillisText(us);
  }
  return fields;
}

metering::InvocationRecord InvocationRecordOf(const std::string& model, int64_t memory_mb, uint64_t request_id,
                                              const InferOutcome& outcome, Micros wall_now_us) {
  const InvocationTiming& t = outcome.timing;
  metering::InvocationRecord r;
  r.model = model;
  r.request_id = request_id;
  r.instance_id = t.instance_id;
  r.arrival_wall_us = wall_now_us - t.total_us;
  r.latency_us = t.total_us;
  r.queue_us = t.queue_us;
  r.batch_wait_us = t.batch_wait_us;
  r.compute_us = t.compute_us;
  r.http_status = outcome.status.ok() ? 200 : HttpStatusFor(outcome.status.code());
  r.memory_mb = memory_mb;
  // Requests that never reached an instance ran in no execution.
  const bool ran = t.instance_id != 0;
  r.batch_rows = ran ? t.batch_size : 0;
  r.batch_requests = ran ? t.batch_requests : 0;
  r.share = ran ? t.batch_share : 0;
  r.cold_start = t.cold_start;
  if (t.cold_start) r.init_us = t.cold.init_us;  // the whole start, not only the spawn step
  r.provisioned = t.provisioned;
  if (ran) r.start_path = std::string(StartPathName(t.start_path));
  return r;
}

}  // namespace thaw
