// Scaling and keep-alive policies: pure functions of a model's state and
// `now`. They never read a clock, sleep, lock or do I/O; the live runtime and
// the simulator call the same functions.
//
// Guarantees:
//  - InstancesToStart never takes a model above max_instances, and starts
//    only what queued work (beyond free slots and instances already
//    starting) or the min_instances floor calls for: scale-up is immediate.
//  - DecideKeepAlive stops an idle instance exactly when it has been idle for
//    keep_alive_us, never takes the model below min_instances, and returns
//    the next time it wants to be asked again.
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

struct IdleInstance {
  uint64_t id = 0;
  Micros idle_since_us = 0;  // when its last request finished (or it became ready)
};

struct KeepAliveDecision {
  std::vector<uint64_t> stop;            // instances to stop now, longest idle first
  std::optional<Micros> next_wake_us;    // when to decide again; nullopt = only on change
};

// `idle` lists the model's idle instances; `total_instances` counts all of its
// live instances (idle, busy and starting).
KeepAliveDecision DecideKeepAlive(std::span<const IdleInstance> idle, int total_instances, int min_instances,
                                  Micros keep_alive_us, Micros now_us);

}  // namespace thaw::policy
