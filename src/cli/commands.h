// The commands of `thaw`, one entry each: the line `thaw --help` lists for
// it and the usage and flags `thaw CMD --help` (or `thaw help CMD`) prints.
// Adding a command is one entry in kCommands (commands.cc) with its help
// function, plus its dispatch in main.cc.
// Thread safety: constant data and pure functions.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace thaw::cli {

struct CommandDoc {
  std::string_view name;     // "serve": thaw serve
  std::string_view summary;  // one line for the overview
  std::string (*help)();     // usage lines and flags, indented as in the overview
};

// Every command, in the order thaw --help lists them.
std::span<const CommandDoc> Commands();
// nullptr for a name that is not a command.
const CommandDoc* FindCommand(std::string_view name);

// The overview: one line per command and how to get a command's help.
std::string HelpText();
// "Usage:\n" and the command's help; empty for a name that is not a command.
std::string CommandHelp(std::string_view name);

std::string ServeHelp();
std::string LoadHelp();
std::string CostHelp();
std::string SimulateHelp();
std::string PlanHelp();
std::string ReplayHelp();
std::string ProfileHelp();
std::string OptimizeHelp();
std::string VariantsHelp();
std::string DeployHelp();

}  // namespace thaw::cli
