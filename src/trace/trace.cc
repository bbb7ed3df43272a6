#include "trace/trace.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string_view>
#include <unordered_set>

namespace thaw::trace {

Micros Trace::Duration() const {
  return arrivals.empty() ? end_us : std::max(end_us, arrivals.back().time_us);
}

std::vector<uint64_t> Trace::CountPerFunction() const {
  std::vector<uint64_t> counts(functions.size(), 0);
  for (const Arrival& a : arrivals)
    if (a.function < counts.size()) ++counts[a.function];
  return counts;
}

int64_t Trace::FunctionIndex(const std::string& name) const {
  for (size_t i = 0; i < functions.size(); ++i)
    if (functions[i] == name) return static_cast<int64_t>(i);
  return -1;
}

Status Validate(const Trace& trace) {
  if (trace.functions.size() > UINT32_MAX) return InvalidArgument("more functions than a uint32 index can name");
  std::unordered_set<std::string_view> names;
  for (size_t i = 0; i < trace.functions.size(); ++i) {
    if (trace.functions[i].empty()) return InvalidArgument("function " + std::to_string(i) + " has an empty name");
    if (!names.insert(trace.functions[i]).second)
      return InvalidArgument("function name '" + trace.functions[i] + "' appears twice");
  }
  if (trace.end_us < 0) return InvalidArgument("end_us is negative");
  Micros previous = 0;
  for (size_t i = 0; i < trace.arrivals.size(); ++i) {
    const Arrival& a = trace.arrivals[i];
    if (a.time_us < previous)
      return InvalidArgument("arrival " + std::to_string(i) + " at " + std::to_string(a.time_us) +
                             " us is before the one before it (or before 0)");
    if (a.function >= trace.functions.size())
      return InvalidArgument("arrival " + std::to_string(i) + " names function " + std::to_string(a.function) +
                             " of " + std::to_string(trace.functions.size()));
    previous = a.time_us;
  }
  return Status::Ok();
}

namespace {

// A name the CSV reader would give back unchanged: it splits on ',' without
// quoting and trims blanks around fields.
bool CsvSafeName(const std::string& name) {
  if (name.empty() || name.front() == ' ' || name.front() == '\t' || name.back() == ' ' || name.back() == '\t')
    return false;
  return name.find_first_of(",\"\r\n") == std::string::npos;
}

}  // namespace

StatusOr<std::string> WriteCsv(const Trace& trace) {
  if (Status valid = Validate(trace); !valid.ok()) return valid;
  const std::vector<uint64_t> counts = trace.CountPerFunction();
  for (size_t i = 0; i < trace.functions.size(); ++i)
    if (counts[i] > 0 && !CsvSafeName(trace.functions[i]))
      return InvalidArgument("function name '" + trace.functions[i] +
                             "' cannot be written to CSV (empty, blanks at either end, or a comma, quote or line break)");
  size_t longest_name = 0;
  for (const std::string& name : trace.functions) longest_name = std::max(longest_name, name.size());
  std::string out = "timestamp_s,model\n";
  out.reserve(out.size() + trace.arrivals.size() * (20 + longest_name));
  char number[32];
  for (const Arrival& a : trace.arrivals) {
    // Integer arithmetic, not printf("%f") of a double: exact microseconds.
    const int n = std::snprintf(number, sizeof number, "%lld.%06lld,", static_cast<long long>(a.time_us / kMicrosPerSecond),
                                static_cast<long long>(a.time_us % kMicrosPerSecond));
    out.append(number, static_cast<size_t>(n));
    out += trace.functions[a.function];
    out += '\n';
  }
  return out;
}

Status WriteCsvFile(const Trace& trace, const std::string& path) {
  StatusOr<std::string> csv = WriteCsv(trace);
  if (!csv.ok()) return csv.status();
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return Unavailable("cannot open '" + path + "' for writing: " + std::strerror(errno));
  file.write(csv->data(), static_cast<std::streamsize>(csv->size()));
  file.close();
  if (!file) return Unavailable("cannot write '" + path + "'");
  return Status::Ok();
}

StatusOr<Trace> Window(const Trace& trace, Micros from_us, Micros to_us) {
  if (from_us < 0 || to_us <= from_us) return InvalidArgument("a trace window needs 0 <= from < to");
  Trace out;
  out.functions = trace.functions;
  out.end_us = to_us - from_us;
  for (const Arrival& a : trace.arrivals)
    if (a.time_us >= from_us && a.time_us < to_us) out.arrivals.push_back({a.time_us - from_us, a.function});
  return out;
}

}  // namespace thaw::trace
