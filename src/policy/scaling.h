// Scale-up on queued work: a pure function of a model's state. Like every
// policy here it never reads a clock, sleeps, locks or does I/O; the live
// runtime and the simulator call the same functions. IdleInstance is shared
// with the keep-alive policies (keep_alive.h).
//
// Guarantees:
//  - InstancesToStart never takes a model above max_instances, and starts
//    only what queued work (beyond free slots and instances already
//    starting) or the min_instances floor calls for: scale-up is immediate.
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/clock.h"

namespace thaw::policy {

struct ScalingLimits {
  int min_instances = 0;
  int max_instances = 1;
  int instance_concurrency = 1;
};

// A snapshot of one model's instances and queue.
struct ModelLoad {
  int ready_instances = 0;     // loaded and serving (idle or busy)
  int starting_instances = 0;  // started, not yet ready
  int free_slots = 0;          // over ready instances: instance_concurrency - in flight
  int queued = 0;              // requests waiting for a slot
};

// Number of instances to start now (>= 0).
int InstancesToStart(const ModelLoad& load, const ScalingLimits& limits);

// With batching, queued work in executions rather than requests: batching
// first. Each serving slot (ready, busy or free) takes up to batch_rows rows
// in its next execution; only the rows beyond that need instances, counted
// as executions of batch_rows. Use as ModelLoad::queued with free_slots 0.
int QueuedExecutions(int64_t queued_rows, int serving_slots, int64_t batch_rows);

struct IdleInstance {
  uint64_t id = 0;
  Micros idle_since_us = 0;  // when its last request finished (or it became ready)
};

}  // namespace thaw::policy
