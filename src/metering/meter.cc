#include "metering/meter.h"

#include "base/log.h"

namespace thaw::metering {

StatusOr<std::unique_ptr<Meter>> Meter::Create(MeterOptions options) {
  THAW_RETURN_IF_ERROR(policy::Validate(options.prices));
  std::unique_ptr<UsageLog> log;
  if (!options.usage_log_path.empty()) {
    auto opened = UsageLog::Open(options.usage_log_path, options.log);
    if (!opened.ok()) return opened.status();
    log = std::move(opened).value();
  }
  return std::unique_ptr<Meter>(new Meter(std::move(options), std::move(log)));
}

Meter::Meter(MeterOptions options, std::unique_ptr<UsageLog> log)
    : options_(std::move(options)),
      stats_(options_.prices.granularity_us),
      recent_(options_.recent_capacity),
      log_(std::move(log)) {}

void Meter::Record(UsageRecord record) {
  stats_.Add(record);
  if (log_) NoteLogResult(log_->Append(record));
  recent_.Add(std::move(record));
}

Status Meter::Flush() {
  if (!log_) return Status::Ok();
  Status flushed = log_->Flush();
  NoteLogResult(flushed);
  return flushed;
}

Status Meter::CloseLog() {
  if (!log_) return Status::Ok();
  return log_->Close();
}

std::optional<UsageLogHealth> Meter::log_health() const {
  if (!log_) return std::nullopt;
  return log_->health();
}

void Meter::NoteLogResult(const Status& status) {
  const int64_t dropped = log_->dropped_records();
  if (!log_->failing() && log_->buffered_bytes() == 0) {
    if (log_failing_)
      LogEvent(LogLevel::kInfo, "usage_log_recovered",
               LogFields({{"path", LogValue(log_->path())},
                          {"dropped_records", std::to_string(dropped - dropped_at_failure_)}}));
    log_failing_ = false;
    return;
  }
  if (status.ok()) return;
  if (!log_failing_) {
    log_failing_ = true;
    dropped_at_failure_ = dropped - (status.code() == StatusCode::kResourceExhausted ? 1 : 0);
    LogEvent(LogLevel::kError, "usage_log_error",
             LogFields({{"path", LogValue(log_->path())}, {"error", LogValue(status.message())},
                        {"buffered_records", std::to_string(log_->buffered_records())},
                        {"retry_in_ms", std::to_string(log_->next_flush_delay_ms())}}));
  }
  if (status.code() == StatusCode::kResourceExhausted && dropped == dropped_at_failure_ + 1)
    LogEvent(LogLevel::kError, "usage_log_dropping",
             LogFields({{"path", LogValue(log_->path())}, {"reason", LogValue(status.message())}}));
}

std::string Meter::StatsJson(std::span<const InstanceRecord> running) const { return ReportJson(Report(running)); }

std::string Meter::ModelStatsJson(std::string_view model, std::span<const InstanceRecord> running) const {
  return ModelReportJson(stats_.ModelReport(model, options_.prices, running), options_.prices, stats_.granularity_us());
}

void UsageFanOut::Record(UsageRecord record) {
  for (size_t i = 0; i < sinks_.size(); ++i) {
    if (i + 1 == sinks_.size()) sinks_[i]->Record(std::move(record));  // the last one may take it
    else sinks_[i]->Record(record);
  }
}

}  // namespace thaw::metering
