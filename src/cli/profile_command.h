// `thaw profile MODEL`: measures a model on this machine with real worker
// processes (an in-process Runtime, no HTTP) and writes a profile file
// (src/sim/profile_json.h) for `thaw simulate` and `thaw plan`:
//  - the round trip of one execution per batch size (median of --reps), at
//    each thread count asked for, and its coefficient of variation;
//  - the cold start per start path: start to ready of an instance a
//    request waited for (median of --cold-reps, each from zero instances);
//  - RSS, PSS and private memory of one warm instance;
//  - then what a request goes through when served: a `thaw serve` of the
//    model (this binary, a temporary repository, one provisioned instance)
//    gets --served-s of Poisson traffic over HTTP from the `thaw load`
//    generator, one phase per rate of --served-rates (each phase's length
//    in proportion to 1/sqrt(rate), so the slow phases still give enough
//    long gaps; the phases cycled four times, after a 2 s warm-up that is
//    not counted), and its usage log gives the round trips it saw
//    (sim/usage_profile.h): the HTTP side and event loop, the load
//    generator beside it, and how the time grows with the instance's idle
//    gap before an execution (rates 200, 50 and 5/s: gaps from well under
//    a millisecond to about a second, on a busy and on a quiet host). Their
//    distribution and gap factors replace the in-process spread, and the
//    difference of the medians at the request's rows is added to every
//    batch size's median.
// Shows a progress bar with an ETA on a terminal (stderr), nothing otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace thaw::cli {

struct ProfileCommandOptions {
  std::string model;
  std::string repo;          // empty: the bundled examples
  std::string request_path;  // empty: examples/requests/<model>.json
  std::string worker_path;   // empty: thaw-worker beside thaw
  std::string out_path;      // empty: <model>.profile.json
  std::string usage_log_path;  // set: build the profile from this usage log, measure nothing
  std::vector<int64_t> batch_sizes = {1, 2, 4, 8, 16};
  std::vector<int> threads = {1, 2};
  std::vector<std::string> start_paths = {"exec", "zygote", "template"};
  int reps = 30;          // executions per batch size and thread count
  int spread_reps = 300;  // single-row executions for the distribution (exec_spread)
  int gap_ms = 5;         // idle time between executions, as between requests of open-loop traffic
  int cold_reps = 5;
  int served_s = 60;          // HTTP-served measurement, all phases; 0 = skip it
  std::vector<double> served_rates = {200, 50, 5};  // requests per second, one phase each
  bool print_summary = true;  // the profile's summary on stdout once written (thaw variants prints its own table)
};

int RunProfile(const ProfileCommandOptions& options);
// Parses the arguments after "profile" (args excludes "thaw" and "profile");
// false with an error naming the flag.
bool ParseProfileArgs(const std::vector<std::string>& args, ProfileCommandOptions* options, std::string* error);

}  // namespace thaw::cli
