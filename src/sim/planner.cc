#include "sim/planner.h"

#include <algorithm>

namespace thaw::sim {

int ThreadsForMemory(int64_t memory_mb) { return std::max<int>(1, static_cast<int>(memory_mb / 1769)); }

StatusOr<PlanResult> Plan(const ModelConfig& base, const ProfileFile& profile, const std::vector<SimArrival>& arrivals,
                          const policy::PriceSheet& prices, const PlanOptions& o,
                          const std::function<void(int, int)>& progress) {
  struct BatchingChoice {
    thaw::Batching mode;
    int max_batch_size;
    Micros delay_us;
  };
  std::vector<BatchingChoice> batchings = {{thaw::Batching::kOff, base.max_batch_size, base.max_queue_delay_us}};
  const bool can_batch = std::all_of(base.inputs.begin(), base.inputs.end(),
                                     [](const TensorSpec& s) { return !s.shape.empty() && s.shape[0] == -1; }) &&
                         std::all_of(base.outputs.begin(), base.outputs.end(),
                                     [](const TensorSpec& s) { return !s.shape.empty() && s.shape[0] == -1; });
  if (can_batch) {
    for (int size : o.max_batch_sizes)
      for (Micros delay : o.batch_delays_us) batchings.push_back({thaw::Batching::kFixed, size, delay});
    for (int size : o.max_batch_sizes) batchings.push_back({thaw::Batching::kAdaptive, size, 10000});
  }
  std::vector<std::pair<KeepAlive, int64_t>> keep_alives;
  for (int64_t s : o.keep_alive_s) keep_alives.push_back({KeepAlive::kFixed, s});
  if (o.try_histogram) keep_alives.push_back({KeepAlive::kHistogram, 600});

  std::vector<ModelConfig> configs;
  std::vector<std::string> labels;
  for (int64_t memory : o.memory_mb)
    for (const BatchingChoice& b : batchings)
      for (int min : o.min_instances) {
        if (min > base.max_concurrency) continue;
        for (const auto& [policy, keep] : keep_alives) {
          ModelConfig c = base;
          c.memory_mb = memory;
          c.threads = ThreadsForMemory(memory);
          c.batching = b.mode;
          c.max_batch_size = b.max_batch_size;
          c.max_queue_delay_us = b.delay_us;
          c.preferred_batch_sizes.clear();
          c.slo_p99_ms = std::min<double>(o.slo_p99_ms, static_cast<double>(c.timeout_ms));
          c.min_instances = min;
          c.keep_alive_policy = policy;
          c.keep_alive_s = keep;
          if (!ValidateModelConfig(c, "plan").ok()) continue;
          configs.push_back(c);
          labels.push_back(std::to_string(memory) + " MB/" + std::to_string(c.threads) + "t, " +
                           (b.mode == thaw::Batching::kOff
                                ? std::string("no batching")
                                : std::string(BatchingName(b.mode)) + " " + std::to_string(b.max_batch_size) +
                                      (b.mode == thaw::Batching::kFixed ? " " + std::to_string(b.delay_us / 1000) + " ms"
                                                                        : "")) +
                           ", provisioned " + std::to_string(min) + ", keep-alive " + std::string(KeepAliveName(policy)) +
                           (policy == KeepAlive::kFixed ? " " + std::to_string(keep) + " s" : ""));
        }
      }

  PlanResult result;
  for (size_t i = 0; i < configs.size(); ++i) {
    SimModel model{configs[i], profile.ForThreads(configs[i].threads)};
    auto run = Simulate({model}, arrivals, prices, {.seed = o.seed});
    if (!run.ok()) return run.status();
    const metering::ModelUsage& total = run->report.total;
    Candidate c;
    c.config = configs[i];
    c.label = labels[i];
    c.p99_ms = total.p99_ms;
    c.dollars = total.bill.total_usd;
    c.dollars_per_million = total.usd_per_million_ok;
    c.cold_starts = run->cold_starts;
    c.errors = run->rejected_429 + run->deadline_504;
    c.meets_slo = c.errors == 0 && c.p99_ms <= o.slo_p99_ms;
    result.candidates.push_back(std::move(c));
    if (progress) progress(static_cast<int>(i + 1), static_cast<int>(configs.size()));
  }
  // Pareto front over (dollars, p99) among error-free candidates; of settings
  // with the same point, the first tried stands for them.
  for (size_t i = 0; i < result.candidates.size(); ++i) {
    Candidate& c = result.candidates[i];
    if (c.errors) continue;
    c.pareto = std::none_of(result.candidates.begin(), result.candidates.end(), [&](const Candidate& d) {
      return !d.errors && d.dollars <= c.dollars && d.p99_ms <= c.p99_ms && (d.dollars < c.dollars || d.p99_ms < c.p99_ms);
    });
    for (size_t j = 0; j < i && c.pareto; ++j)
      if (result.candidates[j].pareto && result.candidates[j].dollars == c.dollars && result.candidates[j].p99_ms == c.p99_ms)
        c.pareto = false;
  }
  std::stable_sort(result.candidates.begin(), result.candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.dollars < b.dollars; });
  for (size_t i = 0; i < result.candidates.size(); ++i)
    if (result.candidates[i].meets_slo) {
      result.best = i;
      break;
    }
  return result;
}

}  // namespace thaw::sim
