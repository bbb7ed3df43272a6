// One-line structured logging to stderr (stdout with THAW_LOG_STREAM=stdout,
// read once per process, inherited by workers): `<time> <level> <event> key=value ...`.
// Each call writes one line with a single write(2), so lines from several
// processes (server and workers) do not interleave.
// Thread safety: safe from any thread.
#pragma once

#include <initializer_list>
#include <string>
#include <utility>
#include <string_view>

namespace thaw {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// Lines below this level are dropped. Default kInfo; THAW_LOG_LEVEL=debug|info|warning|error.
void SetLogLevel(LogLevel level);
LogLevel ParseLogLevel(std::string_view name, LogLevel fallback);

// A field value for a log line: newlines become " | ", quotes and
// backslashes are escaped, and the value is quoted when it has spaces, '=' or
// quotes (or is empty), so every event stays one parseable line.
std::string LogValue(std::string_view value);

// "key=value key=value" from pairs, in order; values are written as given
// (pass free text through LogValue).
std::string LogFields(std::initializer_list<std::pair<std::string_view, std::string>> fields);

// `fields` is already formatted as "key=value key=value".
void LogEvent(LogLevel level, std::string_view event, std::string_view fields = {});

}  // namespace thaw
