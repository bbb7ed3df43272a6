// Request traces for trace-driven simulation: when each request arrives and
// for which function, as a time-ordered list. Traces come from recorded
// workloads (azure_trace.h: the Azure Functions 2019 public trace;
// csv_trace.h: one request per line) or from seeded generators
// (synthetic.h), and can be saved with WriteCsv and replayed with the CSV
// reader.
//
// Guarantees of every trace the readers and generators here return (Validate
// checks them): arrival times are >= 0 microseconds from the trace's start and
// non-decreasing; ties keep a documented, deterministic order; every
// `function` indexes `functions`; function names are unique and non-empty.
// A function may have no arrivals (e.g. an Azure function idle in the chosen
// minutes).
// Ownership: a Trace is a value that owns its vectors.
// Errors: WriteCsv rejects names the CSV format cannot carry; the file
// functions return kNotFound / kUnavailable naming the path.
// Thread safety: values and pure functions (WriteCsvFile writes a file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::trace {

struct Arrival {
  Micros time_us = 0;     // from the trace's start
  uint32_t function = 0;  // index into Trace::functions

  bool operator==(const Arrival&) const = default;
};

struct Trace {
  std::vector<std::string> functions;  // index = Arrival::function
  std::vector<Arrival> arrivals;       // time-ordered
  // The end of the period the trace covers, when the source knows it (the
  // Azure reader: the end of the last minute; generators: the duration);
  // 0 when it does not (a CSV log). When set, arrivals lie in [0, end_us).
  Micros end_us = 0;

  // How long the trace lasts: max(end_us, the last arrival's time); 0 for an
  // empty trace of unknown end. For rates: arrivals.size() / Duration().
  Micros Duration() const;
  // Arrivals per function, indexed like `functions`.
  std::vector<uint64_t> CountPerFunction() const;
  // The index of the function with this name, or -1.
  int64_t FunctionIndex(const std::string& name) const;

  bool operator==(const Trace&) const = default;
};

// Caps what a reader or generator materialises: 100M arrivals are 1.6 GB.
constexpr size_t kMaxArrivals = 100'000'000;
// The latest arrival time a trace may have, in seconds: Unix-epoch
// timestamps still fit (until 2096), and t x 1e6 < 2^53, so microseconds are
// exact in a double.
constexpr double kMaxTimeS = 4e9;

// kInvalidArgument naming the first broken guarantee above.
Status Validate(const Trace& trace);

// The arrivals in [from_us, to_us), shifted to start at 0; every function
// is kept (some may have no arrivals left); end_us = to_us - from_us.
// kInvalidArgument unless 0 <= from_us < to_us.
StatusOr<Trace> Window(const Trace& trace, Micros from_us, Micros to_us);

// The plain CSV format of csv_trace.h: a "timestamp_s,model" header, then
// one line per arrival in trace order, the time in seconds with exactly six
// decimals (microseconds, so reading it back with time_scale 1 gives the same
// times). Functions without arrivals are not written. kInvalidArgument when a
// name could not be read back as written: empty, or containing ',', a quote,
// a line break, or leading/trailing blanks.
StatusOr<std::string> WriteCsv(const Trace& trace);
// WriteCsv into a file (replaced). kUnavailable naming the path if it cannot
// be written.
Status WriteCsvFile(const Trace& trace, const std::string& path);

}  // namespace thaw::trace
