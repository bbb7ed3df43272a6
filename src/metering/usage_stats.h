// Usage statistics: an incremental summary of usage records per model and
// for all models, priced with a price sheet (policy/pricing.h) into a cost
// report: as JSON for the HTTP API (GET /v2/stats, /v2/models/{m}/stats),
// and as a text table for `thaw cost`. Also RecentUsage, a bounded store of
// the latest records.
//
// What is counted, per model and in total:
//  - invocations, by HTTP status; 2xx ("ok"); cold starts (any status);
//  - latency p50/p90/p99 of 2xx invocations, from a log-bucketed histogram
//    (LatencyHistogram): memory is O(log(max/min)) buckets, never the
//    samples, and a percentile is within 1 % of the exact nearest-rank one;
//  - mean batch rows of 2xx invocations (the rows of the execution each ran in);
//  - billable usage (policy::UsageTotals): billed requests (invocations with
//    an instance), GB-s of on-demand executions, on-demand init, provisioned
//    capacity and executions on provisioned instances, all as pricing.h
//    defines them; and idle-but-warm GB-s of on-demand instances
//    (InstanceRecord idle_us x memory), which the price sheet does not price;
//  - memory held (policy::HeldMemory), priced by the host cost only:
//    on-demand instances' init + busy time (busy) and idle time (idle_warm),
//    provisioned instances' whole life, stop - start (provisioned), all x
//    their memory_mb; and HeldRecords' intervals x memory_mb by kind
//    (template, standby, zygote). Negative durations count as 0;
//  - instances stopped (InstanceRecords).
// Records without a model (the zygote's HeldRecords) are the platform's:
// they go to their own row, named kPlatformModel, after the models' rows
// (in the report's `models`, so the rows still add up to the total), not
// spread over the models.
// Durations are rounded to the granularity given at construction when a
// record is added (the rounding is per execution, so it cannot be redone
// later); Report takes the prices and bill_init from its sheet. Pass a sheet
// with the same granularity (Meter and `thaw cost` do); the report keeps
// both, and the table flags a difference.
//
// Thread safety: not thread-safe; one owner. Errors: none (records are
// taken as they are; decoding validated them).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "metering/usage.h"
#include "policy/pricing.h"

namespace thaw::metering {

// Counts of non-negative values (microseconds) in buckets growing by a
// factor gamma, so any value is represented within kRelativeError.
class LatencyHistogram {
 public:
  static constexpr double kRelativeError = 0.01;

  void Add(Micros value_us);  // values <= 0 count as 0
  void Merge(const LatencyHistogram& other);
  int64_t count() const { return count_; }
  // Nearest-rank percentile (q in [0, 1]): the value of rank ceil(q x count),
  // within kRelativeError of the exact one; 0 when empty.
  double QuantileUs(double q) const;

 private:
  int64_t count_ = 0;
  int64_t zeros_ = 0;           // values <= 0
  int first_index_ = 0;         // bucket index of counts_[0]
  std::vector<int64_t> counts_;
};

// The row of records without a model: memory the platform holds for no
// model in particular (the shared zygote).
inline constexpr std::string_view kPlatformModel = "(platform)";

// One row of a report: one model, the platform (kPlatformModel), or the
// total over all of them.
struct ModelUsage {
  std::string model;  // "" for the total
  int64_t invocations = 0;
  int64_t ok = 0;  // 2xx
  std::vector<std::pair<int, int64_t>> status_counts;  // ascending status
  int64_t cold_starts = 0;
  int64_t latency_count = 0;  // 2xx with a latency, = ok
  double p50_ms = 0, p90_ms = 0, p99_ms = 0;
  double mean_batch_rows = 0;  // over 2xx
  int64_t instances_stopped = 0;
  policy::UsageTotals usage;   // billed requests and GB-s
  policy::Bill bill;
  double usd_per_million_ok = 0;  // bill.total_usd per 1 M 2xx invocations; 0 without any
  double host_usd_per_million_ok = 0;  // bill.host_usd per 1 M 2xx invocations; 0 without any
};

struct UsageReport {
  policy::PriceSheet prices;
  Micros granularity_us = 0;     // the rounding applied to the GB-s
  int64_t records = 0;            // -1: not known (ParseReportJson of one model's row)
  Micros from_wall_us = 0;       // earliest start of a record; 0 with no records
  Micros to_wall_us = 0;         // latest end of a record
  // Set for a simulation's report: its records are in virtual time, this
  // being the wall time of virtual 0 (shown as seconds from it, not dates).
  std::optional<Micros> virtual_origin_wall_us;
  std::vector<ModelUsage> models;  // by model name, then the platform's row if it has records
  ModelUsage total;
};

class UsageStats {
 public:
  explicit UsageStats(Micros granularity_us = policy::PriceSheet{}.granularity_us);  // >= 1

  // Every kind of record; HeldRecords with an empty model go to the platform's row.
  void Add(const UsageRecord& record);

  // `running`: instances still up, as InstanceRecords stopped now; their
  // usage so far is included (idle-warm, memory held) but they are not
  // counted as stopped, records or time span. Nothing is kept: their final
  // records replace them once they stop.
  UsageReport Report(const policy::PriceSheet& prices, std::span<const InstanceRecord> running = {}) const;
  // One model's row (kPlatformModel: the platform's); all zeros (named
  // `model`) if no record named it.
  ModelUsage ModelReport(std::string_view model, const policy::PriceSheet& prices,
                         std::span<const InstanceRecord> running = {}) const;

  int64_t records() const { return records_; }
  Micros granularity_us() const { return granularity_us_; }

 private:
  struct Accumulator {
    int64_t invocations = 0, ok = 0, cold_starts = 0, batch_rows_ok = 0, instances_stopped = 0;
    std::map<int, int64_t> status_counts;
    LatencyHistogram latency;
    policy::UsageTotals usage;
  };
  void AddTo(Accumulator& acc, const UsageRecord& record) const;
  // `acc` with the usage so far of the instances in `running` (of `model`; all for "").
  Accumulator WithRunning(Accumulator acc, std::string_view model, bool all,
                          std::span<const InstanceRecord> running) const;
  static ModelUsage Row(const std::string& model, const Accumulator& acc, const policy::PriceSheet& prices);

  Micros granularity_us_;
  policy::PriceSheet rounding_;  // only its granularity is used, by Add
  int64_t records_ = 0;
  Micros from_wall_us_ = 0, to_wall_us_ = 0;
  std::map<std::string, Accumulator, std::less<>> models_;
  Accumulator platform_;      // records without a model
  bool has_platform_ = false;
  Accumulator total_;
};

// The whole report: {"prices":{sheet},"granularity_ms":1,"records":N,
// "from_wall_us":..,"to_wall_us":..,"models":[row,...],"total":row}, where a row is
// {"model":"fraud","invocations":5,"ok":4,"status_counts":{"200":4,"429":1},
//  "cold_starts":1,"latency_ms":{"count":4,"p50":..,"p90":..,"p99":..},
//  "mean_batch_rows":2.5,"instances_stopped":1,"billed_requests":4,
//  "gb_s":{"on_demand_duration":..,"init":..,"provisioned_capacity":..,
//          "provisioned_duration":..,"idle_warm":..},
//  "usd":{"requests":..,"on_demand_duration":..,"init":..,"provisioned_capacity":..,
//         "provisioned_duration":..,"total":..},
//  "usd_per_million_ok":..,
//  "held_gb_s":{"busy":..,"idle_warm":..,"provisioned":..,"template":..,"standby":..,
//               "zygote":..,"total":..},
//  "host_usd":..,"host_usd_per_million_ok":..}
// (the total's "model" is "", the platform's "(platform)"). "usd" is the
// Lambda-style bill; "host_usd" the host cost of "held_gb_s", not in
// "usd"."total". One line, ending in a newline.
std::string ReportJson(const UsageReport& report);
// The report back from ReportJson's text, or from ModelReportJson's (one
// model: that row as the only model and as the total), e.g. a server's
// /v2/stats or /v2/models/{m}/usage, so a client prints it with
// ReportTable. Fields it does not know are ignored; a missing number is 0.
// Errors: kInvalidArgument naming `source` when the text is not such JSON.
StatusOr<UsageReport> ParseReportJson(std::string_view json, const std::string& source);
// One model: its row with "prices" and "granularity_ms" added.
std::string ModelReportJson(const ModelUsage& row, const policy::PriceSheet& prices, Micros granularity_us);
// For people: a header, one line per model, the total, and the dollars per
// component of the total; then memory held, one line per model and the
// total, and the host cost.
std::string ReportTable(const UsageReport& report);

// Two reports of the same trace side by side (thaw replay with --profile
// and --config: what the simulator predicted and what the live server
// measured): per model of either (by name) and the total, invocations, 2xx,
// cold starts, p50 and p99 of 2xx, billed GB-s, $ and memory held, each
// with the difference (replayed - simulated) and, where the simulated value
// is not 0, that difference in percent of it.
std::string CompareReportsTable(const UsageReport& simulated, const UsageReport& replayed);

// "YYYY-MM-DDTHH:MM:SSZ" for wall-clock microseconds since the Unix epoch.
std::string WallTimeText(Micros wall_us);

// The latest records, oldest first, at most `capacity`; when full the oldest
// is dropped and counted. At the default capacity it holds ~20 MB.
class RecentUsage {
 public:
  static constexpr size_t kDefaultCapacity = 100000;

  explicit RecentUsage(size_t capacity = kDefaultCapacity);  // capacity >= 1

  void Add(UsageRecord record);
  const std::deque<UsageRecord>& records() const { return records_; }
  // Records selected as ReadUsageLog selects them (usage_log.h).
  std::vector<UsageRecord> Since(Micros since_wall_us) const;
  size_t size() const { return records_.size(); }
  size_t capacity() const { return capacity_; }
  int64_t dropped() const { return dropped_; }

 private:
  size_t capacity_;
  std::deque<UsageRecord> records_;
  int64_t dropped_ = 0;
};

}  // namespace thaw::metering
