// Planner: which settings meet a p99 latency target at the lowest cost for
// a given trace? It simulates (simulator.h) every combination of a grid of
// settings and keeps the Pareto front of (p99, cost):
//   memory_mb      each size sets the thread count as Lambda sets vCPUs
//                  (one per 1,769 MB, at least 1), and so which execution
//                  table of the profile applies;
//   batching       off; fixed at max_batch_size 4/8/16 with 1 ms and 5 ms
//                  windows; adaptive with slo_p99_ms = the target;
//   min_instances  provisioned concurrency 0, 1, 2, 4;
//   keep-alive     fixed 0 s, 10 s, 60 s, 600 s; histogram.
// Everything else comes from the base config. A candidate meets the target
// when its p99 <= slo_p99_ms and no request got 429 or 504.
// Guarantees: deterministic for a seed (every candidate runs the same trace
// with the same seed). Errors: those of Simulate. Thread safety: pure.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sim/profile_json.h"
#include "sim/simulator.h"

namespace thaw::sim {

struct PlanOptions {
  double slo_p99_ms = 100;
  std::vector<int64_t> memory_mb = {1024, 1769, 3538};
  std::vector<int> min_instances = {0, 1, 2, 4};
  std::vector<int64_t> keep_alive_s = {0, 10, 60, 600};
  bool try_histogram = true;
  std::vector<int> max_batch_sizes = {4, 8, 16};
  std::vector<Micros> batch_delays_us = {1000, 5000};
  uint64_t seed = 1;
};

struct Candidate {
  ModelConfig config;
  double p99_ms = 0;
  double dollars = 0;
  double dollars_per_million = 0;
  int64_t cold_starts = 0;
  int64_t errors = 0;  // 429 + 504
  bool meets_slo = false;
  bool pareto = false;  // no other candidate is both cheaper and faster
  std::string label;    // short description of the settings tried
};

struct PlanResult {
  std::vector<Candidate> candidates;      // every one simulated, cheapest first
  std::optional<size_t> best;             // index of the cheapest meeting the target
};

// Lambda's rule: one vCPU per 1,769 MB.
int ThreadsForMemory(int64_t memory_mb);

// `progress(done, total)` is called after each simulation (may be empty).
StatusOr<PlanResult> Plan(const ModelConfig& base, const ProfileFile& profile, const std::vector<SimArrival>& arrivals,
                          const policy::PriceSheet& prices, const PlanOptions& options,
                          const std::function<void(int, int)>& progress = {});

}  // namespace thaw::sim
