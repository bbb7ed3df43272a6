// Command-line parsing for the `thaw` binary. Parsing is separate from
// running so it can be tested; errors are kInvalidArgument with a message
// that names the offending flag.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace thaw::cli {

struct ServeOptions {
  std::string repo;         // model repository; empty = the bundled examples
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string worker_path;  // empty = thaw-worker beside the thaw binary
  int64_t memory_mb = 0;    // node memory budget for instances; 0 = 80 % of RAM
};

enum class CommandKind { kHelp, kVersion, kServe };

struct Command {
  CommandKind kind = CommandKind::kHelp;
  ServeOptions serve;
};

// args excludes argv[0].
StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args);

std::string HelpText();

}  // namespace thaw::cli
