#include "trace/azure_trace.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "trace/text.h"

namespace thaw::trace {

using internal::FieldSplitter;
using internal::LineReader;
using internal::Quoted;

StatusOr<Spread> ParseSpread(std::string_view name) {
  if (name == "uniform") return Spread::kUniform;
  if (name == "poisson") return Spread::kPoisson;
  return InvalidArgument("spread must be 'uniform' or 'poisson', got '" + std::string(name) + "'");
}

std::string_view SpreadName(Spread spread) { return spread == Spread::kUniform ? "uniform" : "poisson"; }

Status Validate(const AzureTraceOptions& options) {
  if (options.select == AzureSelect::kTopN && options.top_n < 1) return InvalidArgument("top_n must be >= 1");
  if (options.select == AzureSelect::kNamed && options.names.empty())
    return InvalidArgument("selecting functions by name needs at least one name");
  if (options.start_minute < 0 || options.start_minute >= kAzureMinutesPerDay)
    return InvalidArgument("start_minute must be in [0, 1440), got " + std::to_string(options.start_minute));
  if (options.num_minutes < 1 || options.num_minutes > kAzureMinutesPerDay - options.start_minute)
    return InvalidArgument("num_minutes must be in [1, " + std::to_string(kAzureMinutesPerDay - options.start_minute) +
                           "] for start_minute " + std::to_string(options.start_minute) + ", got " +
                           std::to_string(options.num_minutes));
  // Above 6e7 a minute would last less than a microsecond and its arrivals
  // could not stay inside it.
  if (!std::isfinite(options.time_scale) || options.time_scale <= 0 || options.time_scale > 6e7)
    return InvalidArgument("time_scale must be in (0, 6e7]");
  if (options.num_minutes * 60.0 / options.time_scale > kMaxTimeS)
    return InvalidArgument("time_scale is so small that the trace would last more than 4e9 s");
  if (options.max_arrivals > kMaxArrivals)
    return InvalidArgument("max_arrivals must be at most " + std::to_string(kMaxArrivals));
  return Status::Ok();
}

namespace {

constexpr int kFixedColumns = 4;  // HashOwner, HashApp, HashFunction, Trigger
constexpr int kColumns = kFixedColumns + kAzureMinutesPerDay;

std::string Where(const std::string& source, int64_t line) { return source + " line " + std::to_string(line); }

std::string Where(const std::string& source, int64_t line, int column) {
  return Where(source, line) + ", column " + std::to_string(column);
}

Status CheckHeader(std::string_view line, const std::string& source) {
  static constexpr std::string_view kFixed[kFixedColumns] = {"HashOwner", "HashApp", "HashFunction", "Trigger"};
  FieldSplitter fields(line);
  std::string_view field;
  int column = 0;
  char minute[8];
  while (fields.Next(field)) {
    ++column;
    if (column > kColumns) continue;  // counted, reported below
    std::string_view expected;
    if (column <= kFixedColumns) {
      expected = kFixed[column - 1];
    } else {
      auto [end, err] = std::to_chars(minute, minute + sizeof minute, column - kFixedColumns);
      expected = std::string_view(minute, static_cast<size_t>(end - minute));
    }
    if (field != expected)
      return InvalidArgument(Where(source, 1, column) + ": expected header '" + std::string(expected) + "', got " +
                             Quoted(field) + " (is this an invocations_per_function file?)");
  }
  if (column != kColumns)
    return InvalidArgument(Where(source, 1) + ": the header has " + std::to_string(column) +
                           " columns, expected 1444 (HashOwner,HashApp,HashFunction,Trigger,1..1440)");
  return Status::Ok();
}

// One data row, its text fields borrowed from the line.
struct RowView {
  std::string_view owner, app, function;
  uint64_t total = 0;  // invocations within the minute range
};

// Parses and checks every column; keeps the counts of the minute range in
// `counts` (resized to num_minutes).
Status ParseRow(std::string_view line, int64_t line_number, const AzureTraceOptions& options,
                const std::string& source, RowView& row, std::vector<uint32_t>& counts) {
  counts.assign(static_cast<size_t>(options.num_minutes), 0);
  row.total = 0;
  const int first = kFixedColumns + 1 + options.start_minute;  // column of the first kept minute
  const int last = first + options.num_minutes - 1;
  FieldSplitter fields(line);
  std::string_view field;
  int column = 0;
  while (fields.Next(field)) {
    ++column;
    if (column > kColumns)
      return InvalidArgument(Where(source, line_number) + ": more than 1444 columns");
    switch (column) {
      case 1: row.owner = field; continue;
      case 2: row.app = field; continue;
      case 3:
        if (field.empty()) return InvalidArgument(Where(source, line_number, 3) + ": HashFunction is empty");
        row.function = field;
        continue;
      case 4: continue;  // Trigger: not needed
      default: break;
    }
    const std::optional<uint64_t> count = internal::ParseCount(field);
    if (!count || *count > UINT32_MAX)
      return InvalidArgument(Where(source, line_number, column) + " (minute " + std::to_string(column - kFixedColumns) +
                             "): " + Quoted(field) + " is not a non-negative integer count" +
                             (count ? " below 2^32" : ""));
    if (column >= first && column <= last) {
      counts[static_cast<size_t>(column - first)] = static_cast<uint32_t>(*count);
      row.total += *count;
    }
  }
  if (column != kColumns)
    return InvalidArgument(Where(source, line_number) + ": " + std::to_string(column) + " columns, expected 1444");
  return Status::Ok();
}

// Assigns function indices and makes the arrivals of kept rows.
class TraceBuilder {
 public:
  TraceBuilder(const AzureTraceOptions& options, const std::string& source) : options_(options), source_(source) {
    // Minute boundaries from the index, not by adding lengths, so rounding
    // never drifts.
    bounds_.resize(static_cast<size_t>(options.num_minutes) + 1);
    const double minute_us = 60.0 * kMicrosPerSecond / options.time_scale;
    for (size_t m = 0; m < bounds_.size(); ++m)
      bounds_[m] = static_cast<Micros>(std::llround(static_cast<double>(m) * minute_us));
  }

  Status Add(std::string name, std::span<const uint32_t> counts, uint64_t total, int64_t line) {
    if (auto [it, inserted] = lines_.emplace(name, line); !inserted)
      return InvalidArgument(source_ + ": lines " + std::to_string(it->second) + " and " + std::to_string(line) +
                             " both name function '" + name + "'" +
                             (options_.qualified_names ? "" : "; use qualified names (owner/app/function)"));
    if (total > options_.max_arrivals - trace_.arrivals.size())
      return InvalidArgument(source_ + ": the kept functions have more than " + std::to_string(options_.max_arrivals) +
                             " invocations in the chosen minutes; keep fewer functions (top N) or minutes");
    if (trace_.functions.size() >= UINT32_MAX) return InvalidArgument(source_ + ": too many functions");
    const auto index = static_cast<uint32_t>(trace_.functions.size());
    std::mt19937_64 engine;
    // Per-function stream: a function's arrivals do not depend on which
    // other functions are kept.
    if (options_.spread == Spread::kPoisson) engine.seed(internal::MixSeed(options_.seed, internal::NameHash(name)));
    trace_.functions.push_back(std::move(name));
    for (size_t m = 0; m < counts.size(); ++m) {
      const uint32_t n = counts[m];
      if (n == 0) continue;
      const Micros start = bounds_[m];
      const Micros length_us = bounds_[m + 1] - start;  // >= 1 (Validate caps time_scale)
      const double length = static_cast<double>(length_us);
      const size_t block = trace_.arrivals.size();
      for (uint32_t i = 0; i < n; ++i) {
        // (i + 0.5) x L / n, multiplied first: exact whenever the true value is
        // a whole number of microseconds.
        const double offset = options_.spread == Spread::kUniform ? (i + 0.5) * length / n
                                                                  : internal::Uniform01(engine) * length;
        const Micros offset_us = std::min(static_cast<Micros>(std::floor(offset)), length_us - 1);
        trace_.arrivals.push_back({start + offset_us, index});
      }
      if (options_.spread == Spread::kPoisson)
        std::sort(trace_.arrivals.begin() + static_cast<ptrdiff_t>(block), trace_.arrivals.end(),
                  [](const Arrival& a, const Arrival& b) { return a.time_us < b.time_us; });
    }
    return Status::Ok();
  }

  Trace Finish() && {
    // Each function's arrivals are sorted already; this merges them.
    std::sort(trace_.arrivals.begin(), trace_.arrivals.end(), [](const Arrival& a, const Arrival& b) {
      return a.time_us != b.time_us ? a.time_us < b.time_us : a.function < b.function;
    });
    trace_.end_us = bounds_.back();
    return std::move(trace_);
  }

 private:
  const AzureTraceOptions& options_;
  const std::string& source_;
  std::vector<Micros> bounds_;
  std::unordered_map<std::string, int64_t> lines_;  // kept name -> its line
  Trace trace_;
};

// A row that may end up in the top N.
struct Candidate {
  std::string name;
  std::vector<uint32_t> counts;
  uint64_t total = 0;
  int64_t line = 0;
};

// More invocations first; ties by file order.
bool Ranks(const Candidate& a, const Candidate& b) { return a.total != b.total ? a.total > b.total : a.line < b.line; }

StatusOr<Trace> Read(LineReader& lines, const AzureTraceOptions& options, const std::string& source) {
  if (Status valid = Validate(options); !valid.ok()) return InvalidArgument(source + ": " + valid.message());
  std::string_view line;
  if (!lines.Next(line)) {
    if (lines.failed()) return Unavailable("cannot read " + source);
    return InvalidArgument(source + " is empty: expected the header line");
  }
  THAW_RETURN_IF_ERROR(CheckHeader(line, source));

  const std::unordered_set<std::string> wanted(options.names.begin(), options.names.end());
  const bool wants_qualified =
      std::any_of(options.names.begin(), options.names.end(), [](const std::string& n) { return n.find('/') != n.npos; });
  std::unordered_set<std::string> found;

  TraceBuilder builder(options, source);
  // kTopN: a heap whose front is the weakest of the best N so far.
  std::vector<Candidate> top;
  RowView row;
  std::vector<uint32_t> counts;
  std::string qualified;
  while (lines.Next(line)) {
    if (line.empty()) continue;
    const int64_t number = lines.line_number();
    THAW_RETURN_IF_ERROR(ParseRow(line, number, options, source, row, counts));
    if (options.qualified_names || wants_qualified) {
      qualified.assign(row.owner).append("/").append(row.app).append("/").append(row.function);
    }
    std::string name(options.qualified_names ? std::string_view(qualified) : row.function);
    switch (options.select) {
      case AzureSelect::kAll:
        THAW_RETURN_IF_ERROR(builder.Add(std::move(name), counts, row.total, number));
        break;
      case AzureSelect::kNamed: {
        std::string match(row.function);
        if (!wanted.contains(match)) {
          if (!wants_qualified || !wanted.contains(qualified)) break;
          match = qualified;
        }
        found.insert(std::move(match));
        THAW_RETURN_IF_ERROR(builder.Add(std::move(name), counts, row.total, number));
        break;
      }
      case AzureSelect::kTopN: {
        if (row.total == 0) break;
        Candidate candidate{.name = {}, .counts = {}, .total = row.total, .line = number};
        if (top.size() == options.top_n) {
          if (!Ranks(candidate, top.front())) break;
          std::pop_heap(top.begin(), top.end(), Ranks);
          top.pop_back();
        }
        candidate.name = std::move(name);
        candidate.counts = counts;
        top.push_back(std::move(candidate));
        std::push_heap(top.begin(), top.end(), Ranks);
        break;
      }
    }
  }
  if (lines.failed()) return Unavailable("cannot read " + source + " after line " + std::to_string(lines.line_number()));

  if (options.select == AzureSelect::kNamed) {
    std::string missing;
    std::unordered_set<std::string> reported;
    for (const std::string& name : options.names)
      if (!found.contains(name) && reported.insert(name).second)
        missing += (missing.empty() ? "'" : ", '") + name + "'";
    if (!missing.empty()) return NotFound(source + " has no function " + missing);
  }
  if (options.select == AzureSelect::kTopN) {
    std::sort(top.begin(), top.end(), Ranks);
    for (Candidate& c : top) THAW_RETURN_IF_ERROR(builder.Add(std::move(c.name), c.counts, c.total, c.line));
  }
  return std::move(builder).Finish();
}

}  // namespace

StatusOr<Trace> ParseAzureTrace(std::string_view csv, const AzureTraceOptions& options, const std::string& source) {
  LineReader lines(csv);
  return Read(lines, options, source);
}

StatusOr<Trace> ReadAzureTrace(std::istream& in, const AzureTraceOptions& options, const std::string& source) {
  LineReader lines(in);
  return Read(lines, options, source);
}

StatusOr<Trace> ReadAzureTraceFile(const std::string& path, const AzureTraceOptions& options) {
  // Rows are ~3.5 kB and a day's file ~50k rows: read in large blocks.
  std::vector<char> buffer(1 << 20);
  std::ifstream file;
  file.rdbuf()->pubsetbuf(buffer.data(), static_cast<std::streamsize>(buffer.size()));
  file.open(path, std::ios::binary);
  if (!file) {
    const int error = errno;
    if (error == ENOENT) return NotFound("azure trace '" + path + "' does not exist");
    return Unavailable("cannot read azure trace '" + path + "': " + std::strerror(error));
  }
  return ReadAzureTrace(file, options, "'" + path + "'");
}

}  // namespace thaw::trace
