// Fleet: what N machines, each running thaw, would do with one trace when a
// ModelMesh-like router places the models on them -- planning past one
// machine on paper (`thaw simulate --nodes N`).
//
// Placement (PlaceOnFleet, pure, in arrival order), as ModelMesh places
// models on serving-runtime pods:
//  - memory-bounded: each node holds models whose sizes (memory_mb) sum to at
//    most node_memory_mb; a model called where it is held nowhere is placed
//    on the node with the most free memory, or when none has room, on the
//    node holding the fleet's least recently called model, unloading that
//    node's least recently used models until it fits (LRU);
//  - copies for hot models: a model whose calls over the last rate_window_us
//    exceed copy_rate_per_s per copy gets another copy on another node;
//    calls go round robin over its copies.
// Then each node runs the single-machine simulator (sim/simulator.h) on the
// calls routed to it, with node_memory_mb as its memory budget, and all
// nodes' usage records make one report (exact fleet p50/p99 and cost). A
// model the router unloads from a node gets no more calls there; its idle
// instances there stop by keep-alive or the node's budget (ModelMesh's
// unloadModel would stop them at once, so memory held is an upper bound).
// Deterministic for a seed. Errors: those of Simulate; kInvalidArgument for
// options out of range.
#pragma once

#include <vector>

#include "sim/simulator.h"

namespace thaw::sim {

struct FleetOptions {
  int nodes = 1;                          // 1..1024
  int64_t node_memory_mb = 16384;         // per node: the router's capacity and thaw's --memory-mb
  double copy_rate_per_s = 20;            // calls/s per copy above which a model gets another copy
  Micros rate_window_us = 10'000'000;     // the window that rate is measured over
  SimOptions sim;                         // for every node (memory_budget_mb is node_memory_mb)
};

Status Validate(const FleetOptions& options);

// Where each call goes, and what the router did.
struct FleetPlacement {
  std::vector<std::vector<SimArrival>> arrivals_by_node;  // model indices as given
  int64_t placements = 0;   // a model put on a node (first copy or after an unload)
  int64_t copies_added = 0; // further copies of hot models
  int64_t unloads = 0;      // models unloaded to make room (LRU)
  std::vector<int64_t> placements_by_node, unloads_by_node;
};

FleetPlacement PlaceOnFleet(const std::vector<SimModel>& models, const std::vector<SimArrival>& arrivals,
                            const FleetOptions& options);

struct FleetNodeResult {
  SimResult result;           // this node's run (its report: its calls and memory)
  int64_t placements = 0, unloads = 0;
  double mean_held_mb = 0;    // memory held over the run (instances, templates, zygote), averaged
};

struct FleetResult {
  std::vector<FleetNodeResult> nodes;
  metering::UsageReport report;  // all nodes' records together
  FleetPlacement placement;      // without the arrivals
  Micros duration_us = 0;        // first to last call
};

StatusOr<FleetResult> SimulateFleet(const std::vector<SimModel>& models, const std::vector<SimArrival>& arrivals,
                                    const policy::PriceSheet& prices, const FleetOptions& options);

}  // namespace thaw::sim
