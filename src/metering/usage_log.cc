#include "metering/usage_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "base/log.h"
#include "metering/usage_json.h"

namespace thaw::metering {

StatusOr<std::unique_ptr<UsageLog>> UsageLog::Open(const std::string& path, UsageLogOptions options) {
  if (options.flush_at_bytes < 1 || options.max_buffer_bytes < options.flush_at_bytes)
    return InvalidArgument("usage log: need 1 <= flush_at_bytes <= max_buffer_bytes");
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
  if (Status flushed = Flush(); !flushed.ok())
    LogEvent(LogLevel::kError, "usage_log_error", "error=" + LogValue(flushed.message()));
  if (fd_ >= 0) ::close(fd_);
}

Status UsageLog::Append(const UsageRecord& record) {
  Status flushed;
  if (buffer_.size() >= options_.max_buffer_bytes) {
    // Only reached after a failed write: try again before giving up on this record.
    flushed = Flush();
    if (buffer_.size() >= options_.max_buffer_bytes) {
      ++dropped_records_;
      return flushed;
    }
  }
  buffer_ += EncodeUsageRecord(record);
  buffer_ += '\n';
  if (buffer_.size() >= options_.flush_at_bytes) return Flush();
  return flushed;
}

Status UsageLog::Flush() {
  size_t written = 0;
  Status status;
  while (written < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + written, buffer_.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      status = Unavailable("cannot write usage log '" + path_ + "': " + (n < 0 ? std::strerror(errno) : "wrote nothing"));
      break;
    }
    written += static_cast<size_t>(n);
  }
  buffer_.erase(0, written);
  return status;
}

Micros RecordWallUs(const UsageRecord& record) {
  if (const auto* r = std::get_if<InvocationRecord>(&record)) return r->arrival_wall_us;
  if (const auto* r = std::get_if<InstanceRecord>(&record)) return r->stop_wall_us;
  return std::get<ProvisionedRecord>(record).end_wall_us;
}

std::optional<UsageRecord> SelectSince(UsageRecord record, Micros since_wall_us) {
  if (RecordWallUs(record) < since_wall_us) return std::nullopt;
  if (auto* p = std::get_if<ProvisionedRecord>(&record)) p->start_wall_us = std::max(p->start_wall_us, since_wall_us);
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
