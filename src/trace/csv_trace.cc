#include "trace/csv_trace.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <unordered_map>
#include <vector>

#include "trace/text.h"

namespace thaw::trace {

using internal::FieldSplitter;
using internal::LineReader;
using internal::Quoted;
using internal::TrimBlanks;

Status Validate(const CsvTraceOptions& options) {
  if (!std::isfinite(options.time_scale) || options.time_scale <= 0)
    return InvalidArgument("time_scale must be a positive number");
  if (options.default_function.empty()) return InvalidArgument("default_function must not be empty");
  if (options.max_arrivals > kMaxArrivals)
    return InvalidArgument("max_arrivals must be at most " + std::to_string(kMaxArrivals));
  return Status::Ok();
}

namespace {

std::string Where(const std::string& source, int64_t line) { return source + " line " + std::to_string(line); }

// Up to `max` fields of the line, trimmed; returns how many there were
// (possibly more than max, which the caller reports).
int SplitFields(std::string_view line, std::string_view* fields, int max) {
  FieldSplitter splitter(line);
  std::string_view field;
  int n = 0;
  while (splitter.Next(field)) {
    if (n < max) fields[n] = TrimBlanks(field);
    ++n;
  }
  return n;
}

bool IsTimeHeader(std::string_view field) { return field == "timestamp_s" || field == "time_s"; }

StatusOr<Trace> Read(LineReader& lines, const CsvTraceOptions& options, const std::string& source) {
  if (Status valid = Validate(options); !valid.ok()) return InvalidArgument(source + ": " + valid.message());
  Trace trace;
  std::unordered_map<std::string, uint32_t> index;
  // Consecutive lines usually name the same model: skip the map lookup.
  std::string last_name;
  uint32_t last_index = 0;
  bool have_last = false;

  int header_columns = 0;  // 0: no header (rows have 1 or 2 columns)
  bool first = true;
  std::string_view line;
  std::string_view fields[2];
  const double us_per_s = kMicrosPerSecond / options.time_scale;
  while (lines.Next(line)) {
    if (TrimBlanks(line).empty()) continue;
    const int64_t number = lines.line_number();
    const int n = SplitFields(line, fields, 2);
    const bool first_line = first;
    if (first) {
      first = false;
      if (IsTimeHeader(fields[0])) {
        if (n > 2 || (n == 2 && fields[1] != "model"))
          return InvalidArgument(Where(source, number) + ": the header must be timestamp_s[,model] or time_s[,model]");
        header_columns = n;
        continue;
      }
    }
    if (n > 2 || (header_columns != 0 && n != header_columns))
      return InvalidArgument(Where(source, number) + ": " + std::to_string(n) + " columns, expected " +
                             (header_columns == 0 ? "timestamp_s[,model]" : std::to_string(header_columns) +
                                                                                " as in the header"));
    const std::optional<double> seconds = internal::ParseFinite(fields[0]);
    if (!seconds || *seconds < 0)
      return InvalidArgument(Where(source, number) + ": timestamp " + Quoted(fields[0]) +
                             " is not a number of seconds >= 0" +
                             (first_line ? " (a header must be timestamp_s[,model] or time_s[,model])" : ""));
    const double time_us = *seconds * us_per_s;
    if (time_us > kMaxTimeS * kMicrosPerSecond)
      return InvalidArgument(Where(source, number) + ": timestamp " + Quoted(fields[0]) + " is beyond 4e9 s" +
                             (options.time_scale != 1.0 ? " after time_scale" : ""));
    const std::string_view name = n == 2 ? fields[1] : std::string_view(options.default_function);
    if (name.empty()) return InvalidArgument(Where(source, number) + ": the model name is empty");
    if (!have_last || name != last_name) {
      last_name.assign(name);
      auto [it, inserted] = index.emplace(last_name, static_cast<uint32_t>(trace.functions.size()));
      if (inserted) {
        if (trace.functions.size() >= UINT32_MAX) return InvalidArgument(Where(source, number) + ": too many models");
        trace.functions.push_back(last_name);
      }
      last_index = it->second;
      have_last = true;
    }
    if (trace.arrivals.size() >= options.max_arrivals)
      return InvalidArgument(source + " has more than " + std::to_string(options.max_arrivals) + " requests");
    trace.arrivals.push_back({static_cast<Micros>(std::llround(time_us)), last_index});
  }
  if (lines.failed()) return Unavailable("cannot read " + source + " after line " + std::to_string(lines.line_number()));

  std::stable_sort(trace.arrivals.begin(), trace.arrivals.end(),
                   [](const Arrival& a, const Arrival& b) { return a.time_us < b.time_us; });
  if (options.rebase_to_first && !trace.arrivals.empty()) {
    const Micros origin = trace.arrivals.front().time_us;
    for (Arrival& a : trace.arrivals) a.time_us -= origin;
  }
  return trace;
}

}  // namespace

StatusOr<Trace> ParseCsvTrace(std::string_view csv, const CsvTraceOptions& options, const std::string& source) {
  LineReader lines(csv);
  return Read(lines, options, source);
}

StatusOr<Trace> ReadCsvTrace(std::istream& in, const CsvTraceOptions& options, const std::string& source) {
  LineReader lines(in);
  return Read(lines, options, source);
}

StatusOr<Trace> ReadCsvTraceFile(const std::string& path, const CsvTraceOptions& options) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    if (error == ENOENT) return NotFound("csv trace '" + path + "' does not exist");
    return Unavailable("cannot read csv trace '" + path + "': " + std::strerror(error));
  }
  return ReadCsvTrace(file, options, "'" + path + "'");
}

}  // namespace thaw::trace
