// Planner: which settings meet a p99 latency target at the lowest cost for
// a given trace? It simulates (simulator.h) the input config as given and
// every combination of a grid of settings, and keeps the Pareto front of
// (p99, cost). Cost is the objective: bill_weight x the Lambda-style bill +
// host_weight x the host cost of the memory held (idle-warm instances,
// templates and standbys included), both reported:
//   memory_mb        Lambda-like sizes and the config's own, at least the
//                    profile's measured RSS + 25 %;
//   threads          each thread count the profile measured (and the
//                    config's) up to what the size allows, as Lambda sets
//                    vCPUs (one per 1,769 MB, at least 1); it picks the
//                    profile's execution table;
//   batching         off; fixed at max_batch_size 4/8/16 with 1 ms and 5 ms
//                    windows; adaptive with slo_p99_ms = the target;
//   min_instances    provisioned concurrency 0, 1, 2, 4 and the config's;
//   max_concurrency  1, the config's, twice the config's;
//   keep-alive       fixed 0 s, 10 s, 60 s, 600 s and the config's; adaptive
//                    with 600 s and the config's as its reference; histogram
//                    only if asked (try_histogram: it loses to fixed on
//                    bursty traffic, bench/keep_alive);
//   template keep-alive  60 s, 300 s and the config's (template path only).
// Everything else comes from the base config. Sizes with the same thread
// count are simulated once: a run at another size differs only in GB-s,
// which scale with memory_mb (all but the shared zygote's). A candidate
// meets the target when its p99 <= slo_p99_ms and no request got 429 or 504.
// For comparison it also simulates the base config always on, provisioned
// for the peak: min_instances = the most instances the input config's run
// had live at once. Simulations run on `parallelism` threads (each a pure
// Simulate on its own inputs); the result does not depend on how many.
// Guarantees: the input config is a candidate, so a plan is never costlier
// than it when it meets the target; deterministic for a seed (every
// candidate runs the same trace with the same seed). Errors: those of
// Simulate. Thread safety: pure.
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
  // The grid; the base config's own value is always added to each.
  std::vector<int64_t> memory_mb = {128, 256, 512, 1024, 1769, 3538};
  std::vector<int> min_instances = {0, 1, 2, 4};
  std::vector<int> max_concurrency = {1};  // and the config's, and twice it
  std::vector<int64_t> keep_alive_s = {0, 10, 60, 600};
  std::vector<int64_t> template_keep_alive_s = {60, 300};  // template path only
  std::vector<int> threads;  // empty: the thread counts the profile measured
  bool try_adaptive = true;
  bool try_histogram = false;
  int parallelism = 0;  // simulation threads; 0 = the machine's cores
  std::vector<int> max_batch_sizes = {4, 8, 16};
  std::vector<Micros> batch_delays_us = {1000, 5000};
  uint64_t seed = 1;
  // The objective: bill_weight x Lambda-style bill + host_weight x host cost.
  double bill_weight = 1;
  double host_weight = 1;
};

struct Candidate {
  ModelConfig config;
  bool is_input = false;  // the base config as given
  double p99_ms = 0;
  double dollars = 0;        // the Lambda-style bill
  double host_dollars = 0;   // the host cost of the memory held
  double objective = 0;      // bill_weight x dollars + host_weight x host_dollars
  double dollars_per_million = 0;
  int64_t cold_starts = 0;
  int64_t errors = 0;  // 429 + 504
  bool meets_slo = false;
  bool pareto = false;  // no other candidate is both cheaper (objective) and faster
  std::string label;    // short description of the settings tried
};

struct PlanResult {
  std::vector<Candidate> candidates;      // every one evaluated, cheapest (objective) first
  std::optional<size_t> best;             // index of the cheapest meeting the target
  size_t input = 0;                       // index of the base config as given
  int simulations = 0;                    // runs of the simulator (sizes sharing a thread count share one)
  std::optional<Candidate> always_on;     // the base config provisioned for its peak, not in `candidates`
};

// The smallest memory_mb the profile's measured resident memory allows
// (RSS + 25 %); 0 when it measured none.
int64_t MinimumMemoryMb(const ProfileFile& profile);

// Lambda's rule: one vCPU per 1,769 MB.
int ThreadsForMemory(int64_t memory_mb);

// `progress(done, total)` is called after each simulation (may be empty).
StatusOr<PlanResult> Plan(const ModelConfig& base, const ProfileFile& profile, const std::vector<SimArrival>& arrivals,
                          const policy::PriceSheet& prices, const PlanOptions& options,
                          const std::function<void(int, int)>& progress = {});

}  // namespace thaw::sim
