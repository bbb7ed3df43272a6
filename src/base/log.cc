#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "base/clock.h"

namespace thaw {
namespace {

LogLevel InitialLevel() {
  const char* env = std::getenv("THAW_LOG_LEVEL");
  return env ? ParseLogLevel(env, LogLevel::kInfo) : LogLevel::kInfo;
}

std::atomic<LogLevel>& MinLevel() {
  static std::atomic<LogLevel> level{InitialLevel()};
  return level;
}

// THAW_LOG_STREAM=stdout sends the lines to standard output (what container
// runtimes call the log); anything else, or unset, standard error.
int LogFd() {
  static const int fd = [] {
    const char* env = std::getenv("THAW_LOG_STREAM");
    return env && std::string_view(env) == "stdout" ? STDOUT_FILENO : STDERR_FILENO;
  }();
  return fd;
}

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO";
    case LogLevel::kWarning: return "WARN";
    case LogLevel::kError: return "ERROR";
  }
  return "INFO";
}

}  // namespace

void SetLogLevel(LogLevel level) { MinLevel().store(level); }

std::string LogFields(std::initializer_list<std::pair<std::string_view, std::string>> fields) {
  std::string out;
  for (const auto& [key, value] : fields) {
    if (!out.empty()) out += ' ';
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

std::string LogValue(std::string_view s) {
  bool quote = s.empty();
  std::string body;
  body.reserve(s.size());
  for (char c : s) {
    if (c == '\n' || c == '\r') {
      if (!body.empty() && body.back() != ' ') body += " | ";
      quote = true;
      continue;
    }
    if (c == ' ' || c == '"' || c == '=') quote = true;
    if (c == '"' || c == '\\') body += '\\';
    body += c;
  }
  return quote ? "\"" + body + "\"" : body;
}

LogLevel ParseLogLevel(std::string_view name, LogLevel fallback) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warning" || name == "warn") return LogLevel::kWarning;
  if (name == "error") return LogLevel::kError;
  return fallback;
}

void LogEvent(LogLevel level, std::string_view event, std::string_view fields) {
  if (level < MinLevel().load()) return;
  std::string line = WallTimeIso8601();
  line += ' ';
  line += LevelName(level);
  line += ' ';
  line += event;
  if (!fields.empty()) {
    line += ' ';
    line += fields;
  }
  line += '\n';
  // One write per line; a short write to a pipe of this size does not happen.
  ssize_t ignored = ::write(LogFd(), line.data(), line.size());
  (void)ignored;
}

}  // namespace thaw
