// The usage log: usage records appended to a file as JSON lines
// (usage_json.h), and read back for `thaw cost`.
//
// Writing. UsageLog opens the file for appending (creating it, not its
// directory). Append only buffers; Flush writes the buffer with write(2) in
// whole lines. The caller owns timing: call Flush from a timer, every
// next_flush_delay_ms() (flush_interval_ms while writes succeed, doubling up
// to max_retry_interval_ms while they fail: the backoff), and Close at
// shutdown; the destructor closes too. No threads. Append flushes by itself
// once flush_at_bytes are buffered, so memory stays bounded while the timer is
// late, but not while writes are failing (no write per record on a full
// disk: the timer's Flush retries). If a write fails (disk full, EIO), the
// unwritten bytes stay buffered and are retried by the next Flush; once
// max_buffer_bytes are waiting, new records are dropped and counted in
// dropped_records(). Nothing is lost silently: health() says whether the last
// write failed and why, how many records wait and how many were dropped, and
// Close reports the records it could not write.
// One writer per file: lines of two processes could interleave mid-line
// after a short write.
// If the file does not end with a newline (a torn last line from a crash),
// the first write starts with one, so the torn line stays alone (and is
// reported by the reader).
//
// Reading. ReadUsageLog hands every record at or after since_wall_us to the
// caller, in file order. A record's time is its arrival (invocation), its
// stop (instance) or its end (provisioned or held interval); a provisioned
// or held interval that straddles since_wall_us is clipped to start there,
// since capacity and memory held accrue by the second. Instance records are not clipped (their idle time
// is not located in time). Empty lines are allowed; any other line that does
// not decode is an error naming the file and line number: nothing is skipped.
//
// Errors: kUnavailable for I/O failures (naming the path and errno text),
// kNotFound for a log that does not exist, kInvalidArgument for a bad line.
// Thread safety: UsageLog is not thread-safe (one owner, one thread);
// ReadUsageLog is safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <sys/types.h>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "metering/usage.h"

namespace thaw::metering {

struct UsageLogOptions {
  size_t flush_at_bytes = 1 << 20;     // Append flushes by itself at this many buffered bytes; >= 1
  size_t max_buffer_bytes = 16 << 20;  // while writes fail, drop new records beyond this; >= flush_at_bytes
  int64_t flush_interval_ms = 1000;    // the owner's flush period while writes succeed; >= 1
  int64_t max_retry_interval_ms = 30000;  // longest wait between retries while writes fail; >= flush_interval_ms
  // Stands in for write(2) when set (tests inject failures: return -1 with errno set).
  std::function<ssize_t(int fd, const char* data, size_t size)> write_for_test;
};

// The log's state, for /metrics and the ready route. `error` names the
// failure (errno text) but not the path, since it is shown to clients.
struct UsageLogHealth {
  bool ok = true;                // false while the last write failed
  std::string error;             // why the last write failed; empty when ok
  int64_t buffered_records = 0;  // waiting to be written
  size_t buffered_bytes = 0;
  int64_t dropped_records = 0;   // never written: the buffer was full (since open)
  int64_t write_errors = 0;      // failed write attempts (since open)
};

class UsageLog {
 public:
  // Opens (creates) `path` for appending. Errors: kUnavailable naming the path.
  static StatusOr<std::unique_ptr<UsageLog>> Open(const std::string& path, UsageLogOptions options = {});
  ~UsageLog();  // Close()s if not closed; a failure is logged (usage_log_lost)
  UsageLog(const UsageLog&) = delete;
  UsageLog& operator=(const UsageLog&) = delete;

  // Buffers the record's line. Returns OK unless it had to flush and the
  // write failed; the record is kept unless the buffer is full (then it is
  // dropped and counted).
  Status Append(const UsageRecord& record);
  // Writes everything buffered. On failure the rest stays buffered.
  Status Flush();
  // A last Flush, then closes the file; later Appends are dropped and
  // counted. Errors: kUnavailable saying how many records were never written
  // (buffered at close plus dropped before) and why; OK if none were lost.
  Status Close();

  const std::string& path() const { return path_; }
  size_t buffered_bytes() const { return buffer_.size(); }
  int64_t buffered_records() const { return buffered_records_; }
  int64_t dropped_records() const { return dropped_records_; }
  int64_t write_errors() const { return write_errors_; }
  bool failing() const { return consecutive_failures_ > 0; }
  UsageLogHealth health() const;
  // When the owner should call Flush next: flush_interval_ms, or after
  // failures flush_interval_ms * 2^failures, at most max_retry_interval_ms.
  int64_t next_flush_delay_ms() const;

 private:
  UsageLog(std::string path, int fd, UsageLogOptions options) : path_(std::move(path)), fd_(fd), options_(options) {}

  std::string path_;
  int fd_ = -1;
  UsageLogOptions options_;
  std::string buffer_;
  int64_t buffered_records_ = 0;  // whole lines in buffer_ (a partly written line counts)
  int64_t dropped_records_ = 0;
  int64_t write_errors_ = 0;
  int consecutive_failures_ = 0;
  std::string last_error_;
};

// since_wall_us for "everything".
inline constexpr Micros kSinceBeginning = std::numeric_limits<Micros>::min();

// A record's time for `since`: arrival (invocation), stop (instance), end
// (provisioned, held).
Micros RecordWallUs(const UsageRecord& record);

// The record as counted from since_wall_us on: nullopt if it is before;
// a provisioned or held interval straddling since_wall_us clipped to start there.
std::optional<UsageRecord> SelectSince(UsageRecord record, Micros since_wall_us);

// Calls `each` for every selected record, in file order.
Status ReadUsageLog(const std::string& path, Micros since_wall_us, const std::function<void(UsageRecord)>& each);
StatusOr<std::vector<UsageRecord>> ReadUsageLog(const std::string& path, Micros since_wall_us = kSinceBeginning);

}  // namespace thaw::metering
