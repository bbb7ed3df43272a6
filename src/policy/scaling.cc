#include "policy/scaling.h"

#include <algorithm>

namespace thaw::policy {

int InstancesToStart(const ModelLoad& load, const ScalingLimits& limits) {
  const int live = load.ready_instances + load.starting_instances;
  const int headroom = std::max(0, limits.max_instances - live);
  // Queued work that neither free slots nor instances already starting will absorb.
  const int per_instance = std::max(1, limits.instance_concurrency);
  const int uncovered = load.queued - load.free_slots - load.starting_instances * per_instance;
  const int for_queue = uncovered > 0 ? (uncovered + per_instance - 1) / per_instance : 0;
  const int for_floor = std::max(0, limits.min_instances - live);
  return std::min(headroom, std::max(for_queue, for_floor));
}

KeepAliveDecision DecideKeepAlive(std::span<const IdleInstance> idle, int total_instances, int min_instances,
                                  Micros keep_alive_us, Micros now_us) {
  std::vector<IdleInstance> by_age(idle.begin(), idle.end());
  std::stable_sort(by_age.begin(), by_age.end(),
                   [](const IdleInstance& a, const IdleInstance& b) { return a.idle_since_us < b.idle_since_us; });
  KeepAliveDecision decision;
  int stoppable = std::max(0, total_instances - min_instances);
  for (const IdleInstance& instance : by_age) {
    if (stoppable == 0) break;  // the rest are the provisioned floor: no wake needed for them
    const Micros expires = instance.idle_since_us + keep_alive_us;
    if (expires <= now_us) {
      decision.stop.push_back(instance.id);
      --stoppable;
    } else {
      // Sorted by age, so this is the earliest future expiry.
      decision.next_wake_us = expires;
      break;
    }
  }
  return decision;
}

}  // namespace thaw::policy
