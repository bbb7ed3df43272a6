// Reader for the Azure Functions 2019 public trace (Shahrad et al., "Serverless
// in the Wild", ATC '20): the invocation-count files
// invocations_per_function_md.anon.dNN.csv. Each has the header
//   HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440
// and one row per function with its number of invocations in each minute of
// the day. The reader turns the counts into a Trace of request arrivals.
//
// Which functions: all rows, the top N by invocations within the chosen
// minutes, or the rows whose HashFunction (or "owner/app/function") is in a
// list. A function's name is its HashFunction, or "HashOwner/HashApp/
// HashFunction" with qualified_names (the dataset only promises HashFunction
// unique within an app).
// Times: minute m of the range starts at B(m) = round(m x 60 s / time_scale)
// microseconds (m = 0 is start_minute); time_scale 60 makes a trace minute
// last one second. The n invocations of a minute of length L = B(m+1) - B(m)
// are placed
//   kUniform: at B(m) + floor((i + 0.5) x L / n), i = 0..n-1 (evenly spaced);
//   kPoisson: at B(m) + floor(u x L), u uniform in [0, 1), sorted — a Poisson
//             process conditioned on the minute's count.
// Either way each minute keeps exactly its count, inside [B(m), B(m+1)).
//
// Guarantees: every row is checked (strictly, even rows and minutes not kept)
// before a trace is returned. Arrivals of all kept functions are merged into
// one list sorted by (time, function index). Function order: file order for
// kAll and kNamed; for kTopN, most invocations first (ties: file order); kTopN
// keeps only functions with at least one invocation in the range, so it may
// return fewer than N. end_us = B(num_minutes). kPoisson is deterministic: a
// function's arrivals depend only on the seed, its name, its counts and the
// minute range, not on which other functions are kept.
// Cost: one streaming pass; rows not kept are parsed and dropped; kTopN holds
// only N rows' counts at a time; arrivals are made only for kept rows.
// Errors: kInvalidArgument for bad options, a wrong header, a row with the
// wrong number of columns, or a count that is not a non-negative integer
// (messages name the line and the 1-based column), two kept functions with
// the same name, or more than max_arrivals arrivals; kNotFound for a kNamed
// name absent from the file, or a file that does not exist; kUnavailable for
// a file that cannot be read.
// Thread safety: pure functions on values, except reading the file.
#pragma once

#include <cstdint>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "trace/trace.h"

namespace thaw::trace {

constexpr int kAzureMinutesPerDay = 1440;

enum class AzureSelect {
  kAll,    // every row
  kTopN,   // the top_n rows with the most invocations in the minute range
  kNamed,  // rows whose HashFunction or "owner/app/function" is in `names`
};

enum class Spread {
  kUniform,  // evenly spaced within the minute
  kPoisson,  // uniformly at random within the minute (seeded)
};

// "uniform" or "poisson"; anything else is kInvalidArgument.
StatusOr<Spread> ParseSpread(std::string_view name);
std::string_view SpreadName(Spread spread);

struct AzureTraceOptions {
  AzureSelect select = AzureSelect::kAll;
  size_t top_n = 0;                // kTopN: >= 1
  std::vector<std::string> names;  // kNamed: non-empty; each must match a row
  bool qualified_names = false;    // name functions "owner/app/function"
  int start_minute = 0;                         // 0-based: column "1" is minute 0; in [0, 1440)
  int num_minutes = kAzureMinutesPerDay;        // >= 1; start_minute + num_minutes <= 1440
  double time_scale = 1.0;                      // trace time = real time / time_scale; in (0, 6e7]
  Spread spread = Spread::kUniform;
  uint64_t seed = 1;                            // kPoisson only
  size_t max_arrivals = kMaxArrivals;           // more kept invocations than this is an error
};

Status Validate(const AzureTraceOptions& options);

// `source` names the input in error messages (e.g. a path).
StatusOr<Trace> ParseAzureTrace(std::string_view csv, const AzureTraceOptions& options,
                                const std::string& source = "azure trace");
StatusOr<Trace> ReadAzureTrace(std::istream& in, const AzureTraceOptions& options,
                               const std::string& source = "azure trace");
StatusOr<Trace> ReadAzureTraceFile(const std::string& path, const AzureTraceOptions& options);

}  // namespace thaw::trace
