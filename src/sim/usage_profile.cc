#include "sim/usage_profile.h"

#include <algorithm>
#include <cmath>

namespace thaw::sim {

double MedianOf(std::vector<double> samples) {
  if (samples.empty()) return 0;
  std::nth_element(samples.begin(), samples.begin() + static_cast<ptrdiff_t>(samples.size() / 2), samples.end());
  return samples[samples.size() / 2];
}

std::vector<double> SpreadOverMedian(std::vector<double> samples) {
  if (samples.size() < 2) return {};
  std::sort(samples.begin(), samples.end());
  const double median = samples[samples.size() / 2];
  if (median <= 0) return {};
  std::vector<double> spread;
  spread.reserve(ModelProfile::kSpreadPoints);
  for (size_t p = 0; p < ModelProfile::kSpreadPoints; ++p) {
    const double x = static_cast<double>(p) / static_cast<double>(ModelProfile::kSpreadPoints - 1) *
                     static_cast<double>(samples.size() - 1);
    const size_t i = std::min(static_cast<size_t>(x), samples.size() - 2);
    spread.push_back((samples[i] + (samples[i + 1] - samples[i]) * (x - static_cast<double>(i))) / median);
  }
  return spread;
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
  const auto* r = std::get_if<metering::InvocationRecord>(&record);
  if (!r || r->model != model_ || r->http_status != 200 || r->batch_rows < 1 || r->instance_id == 0) return;
  const Micros end_wall_us = r->arrival_wall_us + r->latency_us;
  Micros& last_end = last_end_wall_us_by_instance_[r->instance_id];
  if (last_end == end_wall_us) return;  // another request of the same execution
  last_end = end_wall_us;
  if (r->cold_start) {
    init_us_by_path_[r->start_path].push_back(static_cast<double>(r->init_us));
    return;
  }
  round_trip_us_by_rows_[r->batch_rows].push_back(static_cast<double>(std::max<Micros>(1, r->latency_us - r->queue_us)));
  ++warm_executions_;
}

StatusOr<ProfileFile> UsageProfileBuilder::Build() const {
  ProfileFile out;
  out.model = model_;
  const std::vector<double>* most = nullptr;
  for (const auto& [rows, samples] : round_trip_us_by_rows_) {
    if (samples.size() < kMinSamplesPerRows) continue;
    out.profile.exec_us_by_rows.push_back({rows, std::max<Micros>(1, std::llround(MedianOf(samples)))});
    if (!most || samples.size() > most->size()) most = &samples;
  }
  if (!most)
    return InvalidArgument("the usage log has fewer than " + std::to_string(kMinSamplesPerRows) +
                           " warm executions of any one batch size for model '" + model_ + "' (" +
                           std::to_string(warm_executions_) + " in all)");
  out.profile.exec_spread = SpreadOverMedian(*most);
  out.profile.exec_cv = CoefficientOfVariation(*most);
  for (const auto& [path, samples] : init_us_by_path_)
    if (!path.empty()) out.profile.start_us[path] = std::llround(MedianOf(samples));
  if (Status valid = out.profile.Validate(); !valid.ok()) return valid;
  return out;
}

}  // namespace thaw::sim
