#include "metering/usage_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <variant>

#include "base/log.h"
#include "metering/usage_json.h"

namespace thaw::metering {

StatusOr<std::unique_ptr<UsageLog>> UsageLog::Open(const std::string& path, UsageLogOptions options) {
  if (options.flush_at_bytes < 1 || options.max_buffer_bytes < options.flush_at_bytes)
    return InvalidArgument("usage log: need 1 <= flush_at_bytes <= max_buffer_bytes");
  if (options.flush_interval_ms < 1 || options.max_retry_interval_ms < options.flush_interval_ms)
    return InvalidArgument("usage log: need 1 <= flush_interval_ms <= max_retry_interval_ms");
  // O_RDWR only to look at the last byte; all writes append.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Unavailable("cannot open usage log '" + path + "': " + std::strerror(errno));
  std::unique_ptr<UsageLog> log(new UsageLog(path, fd, options));
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) == 1 && last != '\n') log->buffer_ = "\n";
  }
  return log;
}

UsageLog::~UsageLog() {
  if (fd_ < 0) return;
  if (Status closed = Close(); !closed.ok())
    LogEvent(LogLevel::kError, "usage_log_lost", LogFields({{"path", LogValue(path_)}, {"error", LogValue(closed.message())}}));
}

Status UsageLog::Append(const UsageRecord& record) {
  if (fd_ < 0 || buffer_.size() >= options_.max_buffer_bytes) {
    ++dropped_records_;
    return fd_ < 0 ? Unavailable("usage log '" + path_ + "' is closed; record dropped")
                   : ResourceExhausted("usage log '" + path_ + "': " + std::to_string(buffer_.size()) +
                                       " bytes wait to be written (max_buffer_bytes); record dropped" +
                                       (last_error_.empty() ? "" : "; last write error: " + last_error_));
  }
  buffer_ += EncodeUsageRecord(record);
  buffer_ += '\n';
  ++buffered_records_;
  // While writes fail, only the owner's (backed-off) Flush retries.
  if (buffer_.size() >= options_.flush_at_bytes && !failing()) return Flush();
  return Status::Ok();
}

Status UsageLog::Flush() {
  if (fd_ < 0) return buffer_.empty() ? Status::Ok() : Unavailable("usage log '" + path_ + "' is closed");
  size_t written = 0;
  Status status;
  while (written < buffer_.size()) {
    const ssize_t n = options_.write_for_test
                          ? options_.write_for_test(fd_, buffer_.data() + written, buffer_.size() - written)
                          : ::write(fd_, buffer_.data() + written, buffer_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      last_error_ = n < 0 ? std::strerror(errno) : "write returned 0";
      status = Unavailable("cannot write usage log '" + path_ + "': " + last_error_);
      break;
    }
    written += static_cast<size_t>(n);
  }
  // Lines wholly written leave the count; a partly written one stays.
  buffered_records_ -= std::count(buffer_.begin(), buffer_.begin() + static_cast<std::ptrdiff_t>(written), '\n');
  if (buffered_records_ < 0) buffered_records_ = 0;  // the torn-line newline Open may add
  buffer_.erase(0, written);
  if (status.ok()) {
    consecutive_failures_ = 0;
    last_error_.clear();
  } else {
    ++write_errors_;
    ++consecutive_failures_;
  }
  return status;
}

Status UsageLog::Close() {
  if (fd_ < 0) return Status::Ok();
  Status flushed = Flush();
  const int64_t unwritten = buffered_records_;
  ::close(fd_);
  fd_ = -1;
  dropped_records_ += unwritten;
  buffered_records_ = 0;
  buffer_.clear();
  if (dropped_records_ == 0) return Status::Ok();
  return Unavailable(std::to_string(dropped_records_) + " usage record(s) were never written to '" + path_ + "' (" +
                  std::to_string(unwritten) + " still buffered at close, " +
                  std::to_string(dropped_records_ - unwritten) + " dropped earlier with the buffer full)" +
                  (flushed.ok() ? std::string() : ": " + last_error_));
}

UsageLogHealth UsageLog::health() const {
  return UsageLogHealth{.ok = !failing(),
                        .error = last_error_,
                        .buffered_records = buffered_records_,
                        .buffered_bytes = buffer_.size(),
                        .dropped_records = dropped_records_,
                        .write_errors = write_errors_};
}

int64_t UsageLog::next_flush_delay_ms() const {
  int64_t delay = options_.flush_interval_ms;
  for (int i = 0; i < consecutive_failures_ && delay < options_.max_retry_interval_ms; ++i) delay *= 2;
  return std::min(delay, options_.max_retry_interval_ms);
}

Micros RecordWallUs(const UsageRecord& record) {
  static_assert(std::variant_size_v<UsageRecord> == 4, "give every kind of record its time");
  if (const auto* r = std::get_if<InvocationRecord>(&record)) return r->arrival_wall_us;
  if (const auto* r = std::get_if<InstanceRecord>(&record)) return r->stop_wall_us;
  if (const auto* r = std::get_if<ProvisionedRecord>(&record)) return r->end_wall_us;
  return std::get<HeldRecord>(record).end_wall_us;
}

std::optional<UsageRecord> SelectSince(UsageRecord record, Micros since_wall_us) {
  if (RecordWallUs(record) < since_wall_us) return std::nullopt;
  // Intervals accrue by the second: keep the part from since_wall_us on.
  if (auto* p = std::get_if<ProvisionedRecord>(&record)) p->start_wall_us = std::max(p->start_wall_us, since_wall_us);
  if (auto* h = std::get_if<HeldRecord>(&record)) h->start_wall_us = std::max(h->start_wall_us, since_wall_us);
  return record;
}

Status ReadUsageLog(const std::string& path, Micros since_wall_us, const std::function<void(UsageRecord)>& each) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    if (error == ENOENT) return NotFound("usage log '" + path + "' does not exist");
    return Unavailable("cannot read usage log '" + path + "': " + std::strerror(error));
  }
  std::string line;
  int64_t line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (line.empty()) continue;
    auto record = DecodeUsageRecord(line);
    if (!record.ok())
      return InvalidArgument("usage log '" + path + "' line " + std::to_string(line_number) + ": " +
                             record.status().message());
    if (auto selected = SelectSince(std::move(record).value(), since_wall_us)) each(std::move(*selected));
  }
  if (file.bad()) return Unavailable("cannot read usage log '" + path + "' after line " + std::to_string(line_number));
  return Status::Ok();
}

StatusOr<std::vector<UsageRecord>> ReadUsageLog(const std::string& path, Micros since_wall_us) {
  std::vector<UsageRecord> records;
  THAW_RETURN_IF_ERROR(ReadUsageLog(path, since_wall_us, [&](UsageRecord r) { records.push_back(std::move(r)); }));
  return records;
}

}  // namespace thaw::metering
