// Meter: the server's UsageSink. Every record the runtime sends updates the
// running statistics (UsageStats), the bounded store of recent records
// (RecentUsage) and, if a path was given, the usage log (UsageLog, buffered).
// The owner calls Flush from a timer and at shutdown (the destructor
// flushes too); the Meter has no threads and no timers of its own.
//
// Usage-log write failures do not fail Record: the first failure of a run
// of failures is logged with its reason (usage_log_error), the first record
// dropped in a run too (usage_log_dropping), the end of the run as well
// (usage_log_recovered, with the records dropped during it); all are counted
// (log_health: write_errors, dropped_records), and Flush returns the latest
// one. Statistics and the recent store are always updated.
// Ownership: the runtime borrows the Meter as a UsageSink; it must outlive
// the runtime's last Record call.
// Thread safety: not thread-safe; Record, Flush and the JSON getters run on
// one thread (the server's io_context thread).
// Errors: Create fails on an invalid price sheet (kInvalidArgument) or a log
// that cannot be opened (kUnavailable, naming the path).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "metering/usage.h"
#include "metering/usage_log.h"
#include "metering/usage_stats.h"
#include "policy/pricing.h"

namespace thaw::metering {

struct MeterOptions {
  policy::PriceSheet prices;        // default: AWS Lambda x86 (see LoadPriceSheet)
  std::string usage_log_path;       // empty: keep no log
  UsageLogOptions log;
  size_t recent_capacity = RecentUsage::kDefaultCapacity;
};

class Meter final : public UsageSink {
 public:
  static StatusOr<std::unique_ptr<Meter>> Create(MeterOptions options);

  void Record(UsageRecord record) override;
  // Writes buffered log lines; OK without a log.
  Status Flush();
  // Flushes and closes the log (UsageLog::Close): kUnavailable saying how
  // many records were never written; OK without a log or with none lost.
  Status CloseLog();
  // When to call Flush next (UsageLog::next_flush_delay_ms); 1000 without a log.
  int64_t next_flush_delay_ms() const { return log_ ? log_->next_flush_delay_ms() : 1000; }
  // nullopt without a log.
  std::optional<UsageLogHealth> log_health() const;

  // GET /v2/stats: the report for every model and the total (ReportJson),
  // with the usage so far of the instances still `running` (UsageStats::Report).
  std::string StatsJson(std::span<const InstanceRecord> running = {}) const;
  // GET /v2/models/{m}/stats: one model's row (ModelReportJson); zeros for
  // a model without records (the caller decides whether the model exists).
  std::string ModelStatsJson(std::string_view model, std::span<const InstanceRecord> running = {}) const;

  UsageReport Report(std::span<const InstanceRecord> running = {}) const { return stats_.Report(options_.prices, running); }
  const UsageStats& stats() const { return stats_; }
  const RecentUsage& recent() const { return recent_; }
  const policy::PriceSheet& prices() const { return options_.prices; }
  const UsageLog* log() const { return log_.get(); }  // null without a log
  int64_t log_write_errors() const { return log_ ? log_->write_errors() : 0; }

 private:
  Meter(MeterOptions options, std::unique_ptr<UsageLog> log);
  void NoteLogResult(const Status& status);

  MeterOptions options_;
  UsageStats stats_;
  RecentUsage recent_;
  std::unique_ptr<UsageLog> log_;
  bool log_failing_ = false;   // in a run of failed writes: log again only after a success
  int64_t dropped_at_failure_ = 0;  // dropped_records when the run began
};

// Hands each record to several sinks in order (e.g. the Meter and the
// server's Prometheus metrics), since the runtime takes one sink. Borrows
// the sinks; they must outlive it. Not thread-safe.
class UsageFanOut final : public UsageSink {
 public:
  explicit UsageFanOut(std::vector<UsageSink*> sinks) : sinks_(std::move(sinks)) {}
  void Record(UsageRecord record) override;

 private:
  std::vector<UsageSink*> sinks_;
};

}  // namespace thaw::metering
