// Command-line parsing for the `thaw` binary. Parsing is separate from
// running so it can be tested; errors are kInvalidArgument with a message
// that names the offending flag.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "load/arrivals.h"

namespace thaw::cli {

struct ServeOptions {
  std::string repo;         // model repository; empty = the bundled examples
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string worker_path;  // empty = thaw-worker beside the thaw binary
  int64_t memory_mb = 0;    // node memory budget for instances; 0 = 80 % of RAM
};

// `thaw load`: an open-loop load generator (src/load).
struct LoadCommandOptions {
  std::string url;            // http://host:port
  std::string model;
  std::string request_path;   // the request body, sent with every request
  double rate_per_s = 0;
  double duration_s = 0;
  load::ArrivalProcess arrivals = load::ArrivalProcess::kPoisson;
  uint64_t seed = 1;
  int max_connections = 256;
  double warmup_s = 0;
  double drain_timeout_s = 30;
  std::string json_path;      // empty = no JSON file
  std::string csv_path;       // empty = no CSV file
};

enum class CommandKind { kHelp, kVersion, kServe, kLoad };

struct Command {
  CommandKind kind = CommandKind::kHelp;
  ServeOptions serve;
  LoadCommandOptions load;
};

// args excludes argv[0].
StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args);

std::string HelpText();

}  // namespace thaw::cli
