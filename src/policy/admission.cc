#include "policy/admission.h"

#include <algorithm>

namespace thaw::policy {

Status Validate(const AdmissionOptions& o) {
  if (o.max_concurrency < 1) return InvalidArgument("admission option 'max_concurrency' must be >= 1");
  if (o.instance_concurrency < 1) return InvalidArgument("admission option 'instance_concurrency' must be >= 1");
  if (o.max_queue < 0) return InvalidArgument("admission option 'max_queue' must be >= 0");
  return Status::Ok();
}

Status Admit(const QueueState& state, const AdmissionOptions& options) {
  // Slots not yet running anything absorb queued requests before max_queue
  // counts: the same test as Runtime::Infer.
  const int slots = options.max_concurrency * options.instance_concurrency;
  const int unused_slots = std::max(0, slots - state.in_flight);
  if (state.queued >= options.max_queue + unused_slots) {
    return ResourceExhausted("at max_concurrency=" + std::to_string(options.max_concurrency) +
                             " with max_queue=" + std::to_string(options.max_queue) +
                             " requests queued; retry later");
  }
  return Status::Ok();
}

StatusOr<Micros> RequestDeadline(Micros arrival_us, int64_t model_timeout_ms,
                                 std::optional<int64_t> requested_timeout_ms) {
  if (model_timeout_ms <= 0) return InvalidArgument("model 'timeout_ms' must be a positive integer");
  int64_t timeout_ms = model_timeout_ms;
  if (requested_timeout_ms) {
    if (*requested_timeout_ms <= 0) return InvalidArgument("parameter 'timeout_ms' must be a positive integer");
    timeout_ms = std::min(timeout_ms, *requested_timeout_ms);
  }
  return arrival_us + timeout_ms * kMicrosPerMilli;
}

ExpiryScan ExpiredRequests(std::span<const QueuedRequest> queue, Micros now_us) {
  ExpiryScan scan;
  for (const QueuedRequest& request : queue) {
    if (request.deadline_us <= now_us) {
      scan.expired.push_back(request.id);
    } else if (!scan.next_deadline_us || request.deadline_us < *scan.next_deadline_us) {
      scan.next_deadline_us = request.deadline_us;
    }
  }
  return scan;
}

std::string_view EvictionOrderName(EvictionOrder order) {
  return order == EvictionOrder::kCheapestRestart ? "cheapest_restart" : "lru";
}

std::optional<EvictionOrder> ParseEvictionOrder(std::string_view name) {
  if (name == "lru") return EvictionOrder::kLeastRecentlyUsed;
  if (name == "cheapest_restart") return EvictionOrder::kCheapestRestart;
  return std::nullopt;
}

StatusOr<ColdStartPlan> PlanColdStart(int64_t need_mb, int64_t budget_mb, std::span<const LiveInstance> live,
                                      std::string_view requesting_model, EvictionOrder order) {
  if (need_mb <= 0) return InvalidArgument("memory need must be > 0 MB, is " + std::to_string(need_mb));
  if (budget_mb <= 0) return InvalidArgument("memory budget must be > 0 MB, is " + std::to_string(budget_mb));
  ColdStartPlan plan;
  for (const LiveInstance& instance : live) plan.used_mb += instance.memory_mb;
  int64_t free_mb = budget_mb - plan.used_mb - need_mb;
  if (free_mb >= 0) {
    plan.free_mb_after = free_mb;
    return plan;
  }

  // Idle instances of the requesting model are not candidates: had it one,
  // it would not need a cold start.
  std::vector<const LiveInstance*> candidates;
  for (const LiveInstance& instance : live) {
    if (instance.idle && instance.model != requesting_model) candidates.push_back(&instance);
  }
  std::stable_sort(candidates.begin(), candidates.end(), [order](const LiveInstance* a, const LiveInstance* b) {
    if (order == EvictionOrder::kCheapestRestart && a->restart_cost_us != b->restart_cost_us)
      return a->restart_cost_us < b->restart_cost_us;
    return a->last_used_us < b->last_used_us;
  });
  for (const LiveInstance* instance : candidates) {
    if (free_mb >= 0) break;
    plan.evict.push_back({instance->model, instance->id});
    free_mb += instance->memory_mb;
  }
  if (free_mb < 0) {
    int64_t evictable_mb = 0;
    for (const LiveInstance* instance : candidates) evictable_mb += instance->memory_mb;
    return Unavailable("not enough memory for a new instance of '" + std::string(requesting_model) + "': needs " +
                       std::to_string(need_mb) + " MB; budget " + std::to_string(budget_mb) + " MB, " +
                       std::to_string(plan.used_mb) + " MB in use, " + std::to_string(evictable_mb) +
                       " MB held by idle instances of other models");
  }
  plan.free_mb_after = free_mb;
  return plan;
}

}  // namespace thaw::policy
