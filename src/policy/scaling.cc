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

int QueuedExecutions(int64_t queued_rows, int serving_slots, int64_t batch_rows) {
  batch_rows = std::max<int64_t>(1, batch_rows);
  const int64_t uncovered = std::max<int64_t>(0, queued_rows - static_cast<int64_t>(serving_slots) * batch_rows);
  return static_cast<int>((uncovered + batch_rows - 1) / batch_rows);
}

}  // namespace thaw::policy
