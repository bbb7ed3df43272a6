// Admission and back-pressure: whether a request may join a model's queue,
// its deadline, which queued requests have expired, and whether a cold start
// fits the node's memory budget (and whom to evict for it).
//
// Guarantees:
//  - Admit matches Runtime::Infer: a request is admitted while the requests
//    waiting beyond all instance slots (max_concurrency x
//    instance_concurrency - in_flight) stay <= max_queue; else
//    kResourceExhausted (429).
//  - A request expires when now >= its deadline; an expired queued request
//    must fail with 504 and never run.
//  - PlanColdStart evicts only idle instances of other models, in the
//    requested order (least recently used first, or cheapest to restart
//    first), and only as many as needed; when even all of them would not
//    make room it evicts nothing and returns kUnavailable (503).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::policy {

struct AdmissionOptions {
  int max_concurrency = 4;       // instances of the model; >= 1
  int instance_concurrency = 1;  // requests one instance runs at once; >= 1
  int max_queue = 128;           // requests that may wait beyond all slots; >= 0
};

Status Validate(const AdmissionOptions& options);

struct QueueState {
  int queued = 0;     // waiting for a slot, not counting the new request
  int in_flight = 0;  // running on instances
};

// Ok to queue one more request, or kResourceExhausted.
Status Admit(const QueueState& state, const AdmissionOptions& options);

// arrival + min(model_timeout_ms, requested_timeout_ms). kInvalidArgument when
// the requested timeout is <= 0 (or the model's is).
StatusOr<Micros> RequestDeadline(Micros arrival_us, int64_t model_timeout_ms,
                                 std::optional<int64_t> requested_timeout_ms);

struct QueuedRequest {
  uint64_t id = 0;
  Micros deadline_us = 0;
};

struct ExpiryScan {
  std::vector<uint64_t> expired;          // in queue order: fail with 504, never dispatch
  std::optional<Micros> next_deadline_us;  // earliest deadline still ahead; nullopt if none
};

ExpiryScan ExpiredRequests(std::span<const QueuedRequest> queue, Micros now_us);

// A live instance on the node (starting, busy or idle).
struct LiveInstance {
  std::string model;
  uint64_t id = 0;
  int64_t memory_mb = 0;
  bool idle = false;
  Micros last_used_us = 0;  // end of its last request (or when it became ready)
  // What evicting it costs its model's next start: how much longer that
  // start takes than one that would have found it (kEvictionCostUnknown
  // when not measured yet: treated as dearest).
  Micros restart_cost_us = 0;
};

constexpr Micros kEvictionCostUnknown = std::numeric_limits<Micros>::max();

// Whom a start evicts first, among the idle instances of other models.
enum class EvictionOrder {
  kLeastRecentlyUsed,  // oldest last use first
  kCheapestRestart,    // lowest restart_cost_us first; ties oldest last use first
};
std::string_view EvictionOrderName(EvictionOrder order);
std::optional<EvictionOrder> ParseEvictionOrder(std::string_view name);  // "lru", "cheapest_restart

struct Eviction {
  std::string model;
  uint64_t id = 0;
};

struct ColdStartPlan {
  std::vector<Eviction> evict;  // stop these first (empty: it fits as is)
  int64_t used_mb = 0;          // in use by live instances now
  int64_t free_mb_after = 0;    // left in the budget after the evictions and the new instance
};

// Plan room for a new instance of `requesting_model` needing need_mb under a
// node-wide budget_mb. kInvalidArgument when need_mb or budget_mb is <= 0;
// kUnavailable when it cannot fit.
StatusOr<ColdStartPlan> PlanColdStart(int64_t need_mb, int64_t budget_mb, std::span<const LiveInstance> live,
                                      std::string_view requesting_model,
                                      EvictionOrder order = EvictionOrder::kLeastRecentlyUsed);

}  // namespace thaw::policy
