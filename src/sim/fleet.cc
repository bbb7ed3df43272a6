#include "sim/fleet.h"

#include <algorithm>
#include <deque>
#include <list>
#include <unordered_map>

namespace thaw::sim {

Status Validate(const FleetOptions& o) {
  if (o.nodes < 1 || o.nodes > 1024) return InvalidArgument("nodes must be in [1, 1024]");
  if (o.node_memory_mb < 128) return InvalidArgument("node_memory_mb must be >= 128");
  if (!(o.copy_rate_per_s > 0)) return InvalidArgument("copy_rate_per_s must be > 0");
  if (o.rate_window_us < 1'000) return InvalidArgument("rate_window_us must be >= 1000");
  return Status::Ok();
}

FleetPlacement PlaceOnFleet(const std::vector<SimModel>& models, const std::vector<SimArrival>& arrivals,
                            const FleetOptions& o) {
  FleetPlacement out;
  const size_t n = static_cast<size_t>(o.nodes);
  out.arrivals_by_node.resize(n);
  out.placements_by_node.assign(n, 0);
  out.unloads_by_node.assign(n, 0);
  // Per node: models held, least recently used first, and memory used.
  std::vector<std::list<uint32_t>> lru(n);
  std::vector<std::unordered_map<uint32_t, std::list<uint32_t>::iterator>> held(n);
  std::vector<int64_t> used_mb(n, 0);
  std::vector<std::vector<size_t>> copies(models.size());  // nodes holding each model
  std::vector<std::deque<Micros>> recent(models.size());
  std::vector<size_t> next_copy(models.size(), 0);
  auto size_of = [&](uint32_t m) { return models[m].config.memory_mb; };
  std::vector<std::unordered_map<uint32_t, Micros>> last_call(n);  // per node: each held model's last call

  auto unload = [&](size_t node, uint32_t m) {
    lru[node].erase(held[node].at(m));
    held[node].erase(m);
    last_call[node].erase(m);
    used_mb[node] -= size_of(m);
    std::erase(copies[m], node);
    ++out.unloads;
    ++out.unloads_by_node[node];
  };
  // Places m on the node with the most free memory among those not holding
  // it; when none has room for it, on the node whose least recently used
  // model was called the longest ago (one LRU over the fleet). False if every
  // node holds it already.
  auto place = [&](uint32_t m) {
    size_t best = n;
    for (size_t node = 0; node < n; ++node) {
      if (held[node].count(m)) continue;
      if (best == n || o.node_memory_mb - used_mb[node] > o.node_memory_mb - used_mb[best]) best = node;
    }
    if (best == n) return false;
    if (used_mb[best] + size_of(m) > o.node_memory_mb) {
      for (size_t node = 0; node < n; ++node) {
        if (held[node].count(m) || lru[node].empty()) continue;
        if (lru[best].empty() ||
            last_call[node].at(lru[node].front()) < last_call[best].at(lru[best].front()))
          best = node;
      }
    }
    while (used_mb[best] + size_of(m) > o.node_memory_mb && !lru[best].empty()) unload(best, lru[best].front());
    lru[best].push_back(m);
    held[best][m] = std::prev(lru[best].end());
    last_call[best][m] = 0;  // set by the call that placed it
    used_mb[best] += size_of(m);
    copies[m].push_back(best);
    ++out.placements_by_node[best];
    return true;
  };

  for (const SimArrival& a : arrivals) {
    const uint32_t m = a.model;
    auto& window = recent[m];
    window.push_back(a.time_us);
    while (!window.empty() && window.front() <= a.time_us - o.rate_window_us) window.pop_front();
    if (copies[m].empty()) {
      place(m);
      ++out.placements;
    } else {
      const double rate = static_cast<double>(window.size()) / (static_cast<double>(o.rate_window_us) / 1e6);
      if (rate > o.copy_rate_per_s * static_cast<double>(copies[m].size()) && copies[m].size() < n && place(m)) {
        ++out.copies_added;
        window.clear();  // measure the rate per copy afresh
      }
    }
    const size_t node = copies[m][next_copy[m]++ % copies[m].size()];
    lru[node].splice(lru[node].end(), lru[node], held[node].at(m));  // most recently used
    last_call[node][m] = a.time_us;
    out.arrivals_by_node[node].push_back(a);
  }
  return out;
}

StatusOr<FleetResult> SimulateFleet(const std::vector<SimModel>& models, const std::vector<SimArrival>& arrivals,
                                    const policy::PriceSheet& prices, const FleetOptions& options) {
  THAW_RETURN_IF_ERROR(Validate(options));
  FleetResult out;
  out.placement = PlaceOnFleet(models, arrivals, options);
  if (!arrivals.empty()) out.duration_us = arrivals.back().time_us - arrivals.front().time_us;
  metering::UsageStats all(prices.granularity_us);
  for (size_t node = 0; node < out.placement.arrivals_by_node.size(); ++node) {
    // The node's own model list: the models routed to it, indices remapped.
    std::vector<SimModel> local;
    std::unordered_map<uint32_t, uint32_t> index;
    std::vector<SimArrival> calls = std::move(out.placement.arrivals_by_node[node]);
    for (SimArrival& a : calls) {
      auto [it, added] = index.try_emplace(a.model, static_cast<uint32_t>(local.size()));
      if (added) local.push_back(models[a.model]);
      a.model = it->second;
    }
    SimOptions sim = options.sim;
    sim.memory_budget_mb = options.node_memory_mb;
    sim.on_record = [&all](const metering::UsageRecord& r) { all.Add(r); };
    FleetNodeResult node_result;
    if (!local.empty()) {
      auto result = Simulate(local, calls, prices, sim);
      if (!result.ok()) return result.status();
      node_result.result = std::move(result).value();
    }
    node_result.placements = out.placement.placements_by_node[node];
    node_result.unloads = out.placement.unloads_by_node[node];
    if (out.duration_us > 0)
      node_result.mean_held_mb =
          node_result.result.report.total.usage.held.total_gb_s() * 1024.0 / (static_cast<double>(out.duration_us) / 1e6);
    out.nodes.push_back(std::move(node_result));
  }
  out.placement.arrivals_by_node.clear();
  out.report = all.Report(prices);
  out.report.virtual_origin_wall_us = options.sim.start_wall_us;
  return out;
}

}  // namespace thaw::sim
