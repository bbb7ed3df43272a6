#include "sim/planner.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <thread>
#include <tuple>

namespace thaw::sim {

int ThreadsForMemory(int64_t memory_mb) { return std::max<int>(1, static_cast<int>(memory_mb / 1769)); }

int64_t MinimumMemoryMb(const ProfileFile& profile) {
  auto rss = profile.memory_kb.find("rss");
  if (rss == profile.memory_kb.end() || rss->second <= 0) return 0;
  return static_cast<int64_t>(std::ceil(static_cast<double>(rss->second) / 1024.0 * 1.25));
}

namespace {

struct BatchingChoice {
  thaw::Batching mode;
  int max_batch_size;
  Micros delay_us;
};

// The same run's usage at `ratio` x its memory_mb: every GB-s scales but
// the shared zygote's, which no model's size changes.
policy::UsageTotals ScaledToMemory(policy::UsageTotals u, double ratio) {
  const double zygote = u.held.zygote_gb_s;
  for (double* gb_s : {&u.on_demand_duration_gb_s, &u.init_gb_s, &u.provisioned_capacity_gb_s,
                       &u.provisioned_duration_gb_s, &u.idle_warm_gb_s, &u.held.busy_gb_s, &u.held.idle_warm_gb_s,
                       &u.held.provisioned_gb_s, &u.held.template_gb_s, &u.held.standby_gb_s})
    *gb_s *= ratio;
  u.held.zygote_gb_s = zygote;
  return u;
}

std::string Label(const ModelConfig& c) {
  std::string batching = c.batching == thaw::Batching::kOff
                             ? std::string("no batching")
                             : std::string(BatchingName(c.batching)) + " " + std::to_string(c.max_batch_size) +
                                   (c.batching == thaw::Batching::kFixed
                                        ? " " + std::to_string(c.max_queue_delay_us / 1000) + " ms"
                                        : "");
  return std::to_string(c.memory_mb) + " MB/" + std::to_string(c.threads) + "t, " + batching + ", max " +
         std::to_string(c.max_concurrency) + ", provisioned " + std::to_string(c.min_instances) + ", keep-alive " +
         std::string(KeepAliveName(c.keep_alive_policy)) +
         (c.keep_alive_policy == KeepAlive::kFixed      ? " " + std::to_string(c.keep_alive_s) + " s"
          : c.keep_alive_policy == KeepAlive::kAdaptive ? " (vs " + std::to_string(c.keep_alive_s) + " s)"
                                                        : "") +
         (c.start_path == StartPath::kTemplate ? ", template keep-alive " + std::to_string(c.template_keep_alive_s) + " s"
                                                : "");
}

template <typename T>
std::vector<T> WithValue(std::vector<T> grid, T value) {
  grid.push_back(value);
  std::sort(grid.begin(), grid.end());
  grid.erase(std::unique(grid.begin(), grid.end()), grid.end());
  return grid;
}

}  // namespace

StatusOr<PlanResult> Plan(const ModelConfig& base, const ProfileFile& profile, const std::vector<SimArrival>& arrivals,
                          const policy::PriceSheet& prices, const PlanOptions& o,
                          const std::function<void(int, int)>& progress) {
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
  for (int64_t s : WithValue(o.keep_alive_s, base.keep_alive_s)) keep_alives.push_back({KeepAlive::kFixed, s});
  if (o.try_adaptive)
    for (int64_t s : WithValue(std::vector<int64_t>{600}, base.keep_alive_s)) keep_alives.push_back({KeepAlive::kAdaptive, s});
  if (o.try_histogram) keep_alives.push_back({KeepAlive::kHistogram, 600});
  std::vector<int> max_concurrency = WithValue(WithValue(o.max_concurrency, base.max_concurrency), 2 * base.max_concurrency);
  std::erase_if(max_concurrency, [](int n) { return n < 1 || n > 1000; });
  const std::vector<int> min_instances = WithValue(o.min_instances, base.min_instances);
  // A template is held only on the template path: elsewhere the setting changes nothing.
  const std::vector<int64_t> template_keep_alives =
      base.start_path == StartPath::kTemplate ? WithValue(o.template_keep_alive_s, base.template_keep_alive_s)
                                              : std::vector<int64_t>{base.template_keep_alive_s};
  std::vector<std::tuple<KeepAlive, int64_t, int64_t>> keep_choices;  // policy, keep_alive_s, template_keep_alive_s
  for (const auto& [policy, keep] : keep_alives)
    for (int64_t template_keep : template_keep_alives) keep_choices.emplace_back(policy, keep, template_keep);

  // Memory sizes by thread count: one simulation per thread count serves them all.
  const int64_t floor_mb = MinimumMemoryMb(profile);
  // Thread counts: those asked for, else those the profile measured (and the config's).
  std::vector<int> thread_choices = o.threads;
  if (thread_choices.empty())
    for (const auto& [threads, table] : profile.exec_us_by_threads) thread_choices.push_back(threads);
  std::map<int, std::vector<int64_t>> sizes_by_threads;
  for (int64_t memory : WithValue(o.memory_mb, base.memory_mb)) {
    if (memory < floor_mb && memory != base.memory_mb) continue;
    if (thread_choices.empty()) {  // a profile of one table: the size sets the threads
      sizes_by_threads[ThreadsForMemory(memory)].push_back(memory);
      continue;
    }
    for (int threads : WithValue(thread_choices, base.threads))
      if (threads <= ThreadsForMemory(memory) || (memory == base.memory_mb && threads == base.threads))
        sizes_by_threads[threads].push_back(memory);
  }

  // The runs: (config simulated, the configs it stands for).
  struct Run {
    ModelConfig simulated;
    std::vector<ModelConfig> sizes;
    bool is_input = false;
  };
  std::vector<Run> runs;
  runs.push_back({base, {base}, true});
  for (const auto& [threads, sizes] : sizes_by_threads)
    for (const BatchingChoice& b : batchings)
      for (int max : max_concurrency)
        for (int min : min_instances) {
          if (min > max) continue;
          for (const auto& [policy, keep, template_keep] : keep_choices) {
            Run run;
            for (int64_t memory : sizes) {
              ModelConfig c = base;
              c.memory_mb = memory;
              c.threads = threads;
              c.batching = b.mode;
              c.max_batch_size = b.max_batch_size;
              c.max_queue_delay_us = b.delay_us;
              c.preferred_batch_sizes.clear();
              c.slo_p99_ms = std::min<double>(o.slo_p99_ms, static_cast<double>(c.timeout_ms));
              c.max_concurrency = max;
              c.min_instances = min;
              c.keep_alive_policy = policy;
              c.keep_alive_s = keep;
              c.template_keep_alive_s = template_keep;
              if (ValidateModelConfig(c, "plan").ok()) run.sizes.push_back(std::move(c));
            }
            if (run.sizes.empty()) continue;
            run.simulated = run.sizes.front();
            runs.push_back(std::move(run));
          }
        }

  // Every run is a pure Simulate on its own inputs: they go to worker
  // threads; the progress callback runs on the calling thread only.
  std::vector<std::optional<StatusOr<SimResult>>> sims(runs.size());
  std::atomic<size_t> next_run{0}, done_runs{0};
  auto work = [&](bool report) {
    for (size_t i; (i = next_run.fetch_add(1)) < runs.size();) {
      SimModel model{runs[i].simulated, profile.ForThreads(runs[i].simulated.threads)};
      sims[i] = Simulate({model}, arrivals, prices, {.seed = o.seed});
      const size_t done = done_runs.fetch_add(1) + 1;
      if (report && progress) progress(static_cast<int>(done), static_cast<int>(runs.size()));
    }
  };
  const int parallelism = o.parallelism > 0 ? o.parallelism : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<std::thread> workers;
  for (int t = 1; t < parallelism; ++t) workers.emplace_back(work, false);
  work(true);
  for (std::thread& w : workers) w.join();

  PlanResult result;
  auto candidate_of = [&](const ModelConfig& config, const ModelConfig& simulated, const SimResult& sim, bool is_input) {
    const metering::ModelUsage& total = sim.report.total;
    const policy::UsageTotals usage =
        ScaledToMemory(total.usage, static_cast<double>(config.memory_mb) / static_cast<double>(simulated.memory_mb));
    const policy::Bill bill = policy::ComputeBill(usage, prices);
    Candidate c;
    c.config = config;
    c.is_input = is_input;
    c.label = (is_input ? "your config: " : "") + Label(config);
    c.p99_ms = total.p99_ms;
    c.dollars = bill.total_usd;
    c.host_dollars = bill.host_usd;
    c.objective = o.bill_weight * bill.total_usd + o.host_weight * bill.host_usd;
    c.dollars_per_million = total.ok > 0 ? bill.total_usd / static_cast<double>(total.ok) * 1e6 : 0;
    c.cold_starts = sim.cold_starts;
    c.errors = sim.rejected_429 + sim.deadline_504;
    c.meets_slo = c.errors == 0 && c.p99_ms <= o.slo_p99_ms;
    return c;
  };
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    const StatusOr<SimResult>& sim = *sims[i];
    if (!sim.ok()) return sim.status();
    ++result.simulations;
    for (const ModelConfig& config : r.sizes) result.candidates.push_back(candidate_of(config, r.simulated, *sim, r.is_input));
  }
  // Always on, provisioned for the peak the input config reached.
  {
    ModelConfig always = base;
    always.min_instances = std::max(1, sims[0]->ok() ? (*sims[0])->max_instances : 1);
    always.max_concurrency = std::max(always.max_concurrency, always.min_instances);
    SimModel model{always, profile.ForThreads(always.threads)};
    auto sim = Simulate({model}, arrivals, prices, {.seed = o.seed});
    if (!sim.ok()) return sim.status();
    ++result.simulations;
    Candidate c = candidate_of(always, always, *sim, false);
    c.label = "always on (" + std::to_string(always.min_instances) + " provisioned for the peak): " + Label(always);
    result.always_on = std::move(c);
  }
  // Pareto front over (objective, p99) among error-free candidates; of settings
  // with the same point, the first tried stands for them.
  for (size_t i = 0; i < result.candidates.size(); ++i) {
    Candidate& c = result.candidates[i];
    if (c.errors) continue;
    c.pareto = std::none_of(result.candidates.begin(), result.candidates.end(), [&](const Candidate& d) {
      return !d.errors && d.objective <= c.objective && d.p99_ms <= c.p99_ms &&
             (d.objective < c.objective || d.p99_ms < c.p99_ms);
    });
    for (size_t j = 0; j < i && c.pareto; ++j)
      if (result.candidates[j].pareto && result.candidates[j].objective == c.objective &&
          result.candidates[j].p99_ms == c.p99_ms)
        c.pareto = false;
  }
  std::stable_sort(result.candidates.begin(), result.candidates.end(),
                   [](const Candidate& a, const Candidate& b) { return a.objective < b.objective; });
  for (size_t i = 0; i < result.candidates.size(); ++i) {
    if (result.candidates[i].is_input) result.input = i;
    if (result.candidates[i].meets_slo && !result.best) result.best = i;
  }
  return result;
}

}  // namespace thaw::sim
