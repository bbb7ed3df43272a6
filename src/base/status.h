// Status: the outcome of an operation that can fail, with a small fixed set of
// codes. Each code has one meaning and one HTTP status (see HttpStatusFor):
//   kInvalidArgument   -> 400  the caller sent something wrong
//   kNotFound          -> 404  no such model / route
//   kResourceExhausted -> 429  over a concurrency or queue cap; retry later
//   kUnavailable       -> 503  cannot serve now (instance crashed, no memory)
//   kDeadlineExceeded  -> 504  the request's deadline passed
//   kInternal          -> 500  a bug or an engine failure
// No exceptions cross the data plane: functions return Status or StatusOr<T>.
// Thread safety: values; safe to copy between threads.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace thaw {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kResourceExhausted,
  kUnavailable,
  kDeadlineExceeded,
  kInternal,
};

class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

std::string_view StatusCodeName(StatusCode code);
// The HTTP status code a StatusCode maps to (200 for kOk).
int HttpStatusFor(StatusCode code);

// Either a value or a non-OK Status.
template <typename T>
class StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}          // NOLINT: implicit by design
  StatusOr(Status status) : v_(std::move(status)) {}   // NOLINT: must not be OK

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace thaw

#define THAW_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::thaw::Status thaw_status_ = (expr);   \
    if (!thaw_status_.ok()) return thaw_status_; \
  } while (0)
