// A model profile calibrated from the server's own metering: the executions
// and cold starts a live `thaw serve` recorded in its usage log, instead of
// the isolated measurements of `thaw profile`. Live round trips include what
// an isolated run does not see -- the HTTP side sharing the event loop, the
// host waking an idle instance next to other processes -- so a simulator fed
// from production usage predicts that production's latency more closely.
//
// From each answered (200), warm invocation: its execution's round trip,
// latency_us - queue_us, keyed by the execution's rows (batch_rows). A
// batched execution appears once per request in the log and is counted once.
// exec_us_by_rows holds the median per row count seen at least
// kMinSamplesPerRows times; exec_spread and exec_cv come from the row count
// with the most samples. exec_factor_by_idle_us: for that row count, the
// executions binned by how long their instance sat idle before them (from
// the end of its previous execution; smoothed over its recent gaps,
// ModelProfile::SmoothIdle, as the simulator does), each bin with kMinSamplesPerRows
// samples giving (its median gap, its median time / the overall median);
// the spread is then of each time over its gap's median (at least two such
// bins, else no table and the plain spread). start_us holds, per start path
// the log shows ("exec", "zygote", "template"), the median start to ready of
// its instances: every instance that got ready (InstanceRecord, so starts no
// request waited for count too), with the init_us of a cold request in place
// of its instance's when there is one. Paths the server never started from
// are absent, and so is template_start (the log has no template's start to
// ready): CheckStartTimes (profile_json.h) refuses a config needing a missing
// path. Threads and memory are not in the log and are left out.
//
// Errors: kInvalidArgument when no row count has enough warm samples for the
// model. Thread safety: a value type fed from one thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "metering/usage.h"
#include "sim/profile_json.h"

namespace thaw::sim {

class UsageProfileBuilder {
 public:
  static constexpr size_t kMinSamplesPerRows = 20;

  explicit UsageProfileBuilder(std::string model) : model_(std::move(model)) {}

  // Records of other models, refused requests and provisioned records are ignored.
  void Add(const metering::UsageRecord& record);

  int64_t warm_executions() const { return warm_executions_; }
  StatusOr<ProfileFile> Build() const;

 private:
  std::string model_;
  std::map<int64_t, std::vector<double>> round_trip_us_by_rows_;
  // (smoothed idle gap before it, ModelProfile::SmoothIdle; round trip) by
  // rows, for executions after another on their instance.
  std::map<int64_t, std::vector<std::pair<Micros, double>>> gap_and_round_trip_by_rows_;
  std::map<uint64_t, std::optional<double>> smoothed_log_gap_by_instance_;
  // Start path and start to ready by instance: one sample per started instance.
  std::map<uint64_t, std::pair<std::string, Micros>> init_by_instance_;
  // Each instance's last execution's end: requests of one batch end together,
  // and the next execution's idle gap starts there.
  std::map<uint64_t, Micros> last_end_wall_us_by_instance_;
  int64_t warm_executions_ = 0;
};

// Quantiles 0, 0.001, ..., 1 of `samples` (linear between order statistics) over
// their median; empty for fewer than 2 samples. Shared with `thaw profile`.
std::vector<double> SpreadOverMedian(std::vector<double> samples);
double MedianOf(std::vector<double> samples);
double CoefficientOfVariation(const std::vector<double>& samples);

}  // namespace thaw::sim
