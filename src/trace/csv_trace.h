// Reader for plain CSV request logs: one request per line,
//   timestamp_s[,model]
// with an optional header line "timestamp_s" or "time_s", optionally followed
// by ",model". Timestamps are seconds from the trace's start (fractional
// allowed, >= 0, any order); the model column, when present, names the
// function ("default_function" otherwise). This is the format WriteCsv
// (trace.h) writes, so saved traces replay unchanged.
//
// Rules: blank lines are skipped; blanks around a field are ignored; no
// quoting (a model name cannot contain ','). With a header, every row has
// the header's columns; without one, each row has one or two.
// Times: round(timestamp_s x 1e6 / time_scale) microseconds; with
// rebase_to_first the earliest time is subtracted, so logs stamped with
// absolute (e.g. Unix-epoch) seconds start at 0.
//
// Guarantees: arrivals are sorted by time, stably (equal times keep file
// order); functions are numbered in order of their first line in the file;
// end_us is 0 (a log does not say when it ends, so Duration() is the last
// arrival's time).
// Errors: kInvalidArgument for bad options, a malformed line (the message
// names the source and line), a negative or non-finite timestamp, one later
// than 4e9 s after scaling, an empty model name, or more than max_arrivals
// lines; kNotFound for a file that does not exist; kUnavailable for a file
// that cannot be read.
// Thread safety: pure functions on values, except reading the file.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>

#include "base/status.h"
#include "trace/trace.h"

namespace thaw::trace {

struct CsvTraceOptions {
  double time_scale = 1.0;                       // trace time = timestamp / time_scale; > 0
  bool rebase_to_first = false;                  // subtract the earliest timestamp
  std::string default_function = "default";      // for rows without a model column; non-empty
  size_t max_arrivals = kMaxArrivals;
};

Status Validate(const CsvTraceOptions& options);

// `source` names the input in error messages (e.g. a path).
StatusOr<Trace> ParseCsvTrace(std::string_view csv, const CsvTraceOptions& options = {},
                              const std::string& source = "csv trace");
StatusOr<Trace> ReadCsvTrace(std::istream& in, const CsvTraceOptions& options = {},
                             const std::string& source = "csv trace");
StatusOr<Trace> ReadCsvTraceFile(const std::string& path, const CsvTraceOptions& options = {});

}  // namespace thaw::trace
