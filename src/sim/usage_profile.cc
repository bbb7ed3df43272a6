#include "sim/usage_profile.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <optional>

namespace thaw::sim {

double MedianOf(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::nth_element(samples.begin(), samples.begin() + static_cast<ptrdiff_t>(samples.size() / 2), samples.end());
  return samples[samples.size() / 2];
}

namespace {

// Quantiles 0, 0.001, ..., 1 of sorted samples (at least 2), linear between
// order statistics, each divided by `scale`.
std::vector<double> Quantiles(const std::vector<double>& sorted, double scale) {
  std::vector<double> out;
  out.reserve(ModelProfile::kSpreadPoints);
  for (size_t p = 0; p < ModelProfile::kSpreadPoints; ++p) {
    const double x = static_cast<double>(p) / static_cast<double>(ModelProfile::kSpreadPoints - 1) *
                     static_cast<double>(sorted.size() - 1);
    const size_t i = std::min(static_cast<size_t>(x), sorted.size() - 2);
    out.push_back((sorted[i] + (sorted[i + 1] - sorted[i]) * (x - static_cast<double>(i))) / scale);
  }
  return out;
}

}  // namespace

std::vector<double> SpreadOverMedian(std::vector<double> samples) {
  if (samples.size() < 2) return {};
  std::sort(samples.begin(), samples.end());
  const double median = samples[samples.size() / 2];
  if (median <= 0) return {};
  return Quantiles(samples, median);
}

double CoefficientOfVariation(const std::vector<double>& samples) {
  if (samples.size() < 2) return 0;
  double mean = 0, var = 0;
  for (double x : samples) mean += x;
  mean /= static_cast<double>(samples.size());
  for (double x : samples) var += (x - mean) * (x - mean);
  var /= static_cast<double>(samples.size() - 1);
  return mean > 0 ? std::sqrt(var) / mean : 0;
}

void UsageProfileBuilder::Add(const metering::UsageRecord& record) {
  // Every instance that got ready (busy or idle for a while) is a start, whether or not a request waited
  // for it (pre-warmed, scaled out ahead); the start a cold request reports is kept when there is one.
  if (const auto* instance = std::get_if<metering::InstanceRecord>(&record)) {
    if (instance->model == model_ && instance->instance_id != 0 && !instance->start_path.empty() &&
        instance->init_us > 0 && instance->busy_us + instance->idle_us > 0)
      init_by_instance_.emplace(instance->instance_id, std::make_pair(instance->start_path, instance->init_us));
    return;
  }
  const auto* r = std::get_if<metering::InvocationRecord>(&record);
  if (!r || r->model != model_ || r->http_status != 200 || r->batch_rows < 1 || r->instance_id == 0) return;
  const Micros end_wall_us = r->arrival_wall_us + r->latency_us;
  Micros& last_end = last_end_wall_us_by_instance_[r->instance_id];
  if (last_end == end_wall_us) return;  // another request of the same execution
  // The idle gap before this execution: from the end of the instance's previous one (0: none yet).
  const std::optional<Micros> gap_us =
      last_end == 0 ? std::nullopt : std::optional<Micros>(r->arrival_wall_us + r->queue_us - last_end);
  last_end = end_wall_us;
  if (r->cold_start) {
    if (!r->start_path.empty()) init_by_instance_.insert_or_assign(r->instance_id, std::make_pair(r->start_path, r->init_us));
    return;
  }
  const double round_trip = static_cast<double>(std::max<Micros>(1, r->latency_us - r->queue_us));
  round_trip_us_by_rows_[r->batch_rows].push_back(round_trip);
  if (gap_us && *gap_us >= 0)
    gap_and_round_trip_by_rows_[r->batch_rows].push_back(
        {ModelProfile::SmoothIdle(&smoothed_log_gap_by_instance_[r->instance_id], *gap_us), round_trip});
  ++warm_executions_;
}

StatusOr<ProfileFile> UsageProfileBuilder::Build() const {
  ProfileFile out;
  out.model = model_;
  const std::vector<double>* most = nullptr;
  int64_t most_rows = 0;
  for (const auto& [rows, samples] : round_trip_us_by_rows_) {
    if (samples.size() < kMinSamplesPerRows) continue;
    out.profile.exec_us_by_rows.push_back({rows, std::max<Micros>(1, std::llround(MedianOf(samples)))});
    if (!most || samples.size() > most->size()) {
      most = &samples;
      most_rows = rows;
    }
  }
  if (!most)
    return InvalidArgument("the usage log has fewer than " + std::to_string(kMinSamplesPerRows) +
                           " warm executions of any one batch size for model '" + model_ + "' (" +
                           std::to_string(warm_executions_) + " in all)");
  out.profile.exec_spread = SpreadOverMedian(*most);
  out.profile.exec_cv = CoefficientOfVariation(*most);
  // Time by the idle gap before it: bins of gaps, each its median gap and median time.
  if (auto it = gap_and_round_trip_by_rows_.find(most_rows); it != gap_and_round_trip_by_rows_.end()) {
    static constexpr Micros kEdges[] = {0, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000,
                                        1000000, 5000000};
    const double overall = MedianOf(*most);
    std::vector<std::pair<Micros, double>> table;
    for (size_t b = 0; b < std::size(kEdges); ++b) {
      const Micros lo = kEdges[b], hi = b + 1 < std::size(kEdges) ? kEdges[b + 1] : INT64_MAX;
      std::vector<double> gaps, times;
      for (const auto& [gap, time] : it->second)
        if (gap >= lo && gap < hi) {
          gaps.push_back(static_cast<double>(gap));
          times.push_back(time);
        }
      if (times.size() < kMinSamplesPerRows) continue;
      table.push_back({std::max<Micros>(1, std::llround(MedianOf(gaps))), MedianOf(times) / overall});
    }
    // (Bins are disjoint and each median gap lies in its bin: the table is sorted.)
    if (table.size() >= 2) {
      out.profile.exec_factor_by_idle_us = table;
      // Additive: each time's excess over its gap's median, in medians, plus 1
      // (at least 0.01: a spread is positive; the simulator floors a draw anyway).
      std::vector<double> excess;
      for (const auto& [gap, time] : it->second)
        excess.push_back(std::max(0.01, 1 + (time - overall * out.profile.IdleFactor(gap)) / overall));
      std::sort(excess.begin(), excess.end());
      out.profile.exec_spread = Quantiles(excess, 1.0);  // two bins of kMinSamplesPerRows: enough samples
    }
  }
  std::map<std::string, std::vector<double>> init_us_by_path;
  for (const auto& [instance, path_and_init] : init_by_instance_)
    init_us_by_path[path_and_init.first].push_back(static_cast<double>(path_and_init.second));
  for (const auto& [path, samples] : init_us_by_path) out.profile.start_us[path] = std::llround(MedianOf(samples));
  if (Status valid = out.profile.Validate(); !valid.ok()) return valid;
  return out;
}

}  // namespace thaw::sim
