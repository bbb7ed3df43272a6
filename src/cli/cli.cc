#include "cli/cli.h"

#include <charconv>

namespace thaw::cli {
namespace {

StatusOr<uint16_t> ParsePort(const std::string& text) {
  unsigned value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc() || end != text.data() + text.size() || value > 65535)
    return InvalidArgument("--port must be an integer in [0, 65535], got '" + text + "'");
  return static_cast<uint16_t>(value);
}

}  // namespace

std::string HelpText() {
  return R"(thaw: serverless inference for machine-learning models on one machine.

Usage:
  thaw serve [--repo DIR] [--host ADDR] [--port N] [--memory-mb N] [--worker PATH]
      Serve every model in the repository DIR over the KServe v2 REST API.
      --repo    model repository (default: ./examples/models, else the
                bundled examples of this build)
      --host    address to listen on (default 127.0.0.1)
      --port    port to listen on (default 8080; 0 picks a free one)
      --memory-mb  budget for the memory_mb of live instances (default: 80 %
                of RAM); a cold start over it first stops the least recently
                used idle instances of other models, else gets 503
      --worker  the thaw-worker executable (default: beside thaw)
  thaw version      print the version
  thaw --help       print this help

Logs go to stderr, one line per event; THAW_LOG_LEVEL=debug|info|warning|error.
)";
}

StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args) {
  Command command;
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") return command;
  if (args[0] == "version" || args[0] == "--version") {
    command.kind = CommandKind::kVersion;
    return command;
  }
  if (args[0] != "serve") return InvalidArgument("unknown command '" + args[0] + "'; see 'thaw --help'");
  command.kind = CommandKind::kServe;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--help" || flag == "-h") {
      command.kind = CommandKind::kHelp;
      return command;
    }
    std::string value;
    std::string name = flag;
    if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
      name = flag.substr(0, eq);
      value = flag.substr(eq + 1);
    } else if (flag.starts_with("--")) {
      if (i + 1 >= args.size()) return InvalidArgument(flag + " needs a value");
      value = args[++i];
    } else {
      return InvalidArgument("unexpected argument '" + flag + "'; see 'thaw --help'");
    }
    if (name == "--repo") {
      command.serve.repo = value;
    } else if (name == "--host") {
      command.serve.host = value;
    } else if (name == "--port") {
      auto port = ParsePort(value);
      if (!port.ok()) return port.status();
      command.serve.port = *port;
    } else if (name == "--memory-mb") {
      int64_t mb = 0;
      auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), mb);
      if (err != std::errc() || end != value.data() + value.size() || mb < 128)
        return InvalidArgument("--memory-mb must be an integer >= 128, got '" + value + "'");
      command.serve.memory_mb = mb;
    } else if (name == "--worker") {
      command.serve.worker_path = value;
    } else {
      return InvalidArgument("unknown flag '" + name + "' for 'thaw serve'; see 'thaw --help'");
    }
  }
  return command;
}

}  // namespace thaw::cli
