// `thaw optimize MODEL`: makes smaller variants of a model in its
// repository: int8 (dynamic or static), pruned (magnitude or channels) and
// distilled. Each variant is a model directory of its own,
// <repo>/<model>-<method>, with the base's config and files and a
// variant.json of how it was made and its test accuracy beside the base's,
// both measured on the base's held-out split. Training, quantization and
// the accuracy measurement run in models/optimize.py on Debian's
// python3-torch (--python), seeded; its progress is shown as it runs.
// Errors: a missing model, script or interpreter, an unknown method or one
// that does not apply to the model, are reported before anything runs (the
// script's own check of the model's class prints its reason); exit 2 for
// bad arguments, the script's status otherwise.
//
// `thaw variants MODEL`: the model and its variants in a repository, side
// by side: method, file size, parameters, test accuracy and the points
// lost against the base (from each variant.json), from the files alone.
#pragma once

#include <string>
#include <vector>

namespace thaw::cli {

struct OptimizeCommandOptions {
  std::string model;
  std::string repo;                 // empty: the bundled examples
  std::string methods = "all";      // "all" or a comma-separated list
  std::string out_root;             // empty: the repository
  int epochs = 0;                   // 0: the script's defaults (distill 3, pruning fine-tune 1)
  double sparsity = 0.5;            // pruning: the share of weights or channels removed
  std::string python = "/usr/bin/python3";
  std::string script;               // empty: models/optimize.py of this source tree
  std::string request_path;         // with references_dir: write each variant's outputs for it
  std::string references_dir;
};

struct VariantsCommandOptions {
  std::string model;
  std::string repo;  // empty: the bundled examples
  bool json = false;
};

std::string OptimizeHelp();
std::string VariantsHelp();
// Arguments after the command word; false with an error naming the flag.
bool ParseOptimizeArgs(const std::vector<std::string>& args, OptimizeCommandOptions* options, std::string* error);
bool ParseVariantsArgs(const std::vector<std::string>& args, VariantsCommandOptions* options, std::string* error);
int RunOptimize(const OptimizeCommandOptions& options);
int RunVariants(const VariantsCommandOptions& options);

}  // namespace thaw::cli
