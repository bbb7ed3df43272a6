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
// lost against the base (from each variant.json). With --measure it also
// profiles each one on this machine (`thaw profile`, real workers: warm
// round trip at 1 and 8 rows, cold start forked from a template and from a
// fresh process, memory of a warm instance), writes the profile beside its
// config (<dir>/profile.json, which `thaw plan --accuracy-floor` reads),
// and prices a Poisson stream at --rate with each model's own config in the
// simulator (GB-s and $ per 1 M requests), with ratios against the base.
#pragma once

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "base/status.h"

namespace thaw::cli {

struct OptimizeCommandOptions {
  std::string model;
  std::string repo;                 // empty: the bundled examples
  std::string methods = "all";      // "all" or a comma-separated list
  std::string out_root;             // empty: the repository
  int epochs = 0;                   // 0: the script's defaults (distill 8 CNN, 3 encoder; fine-tune 1)
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
  bool measure = false;
  std::string request_path;  // empty: <repo>/../requests/<model>.json, used for every variant
  int cold_reps = 5;
  int reps = 100;             // executions per batch size
  int served_s = 0;           // thaw profile --served-s (0: in-process round trips only)
  double rate_per_s = 10;     // the priced stream
  double duration_s = 3600;
};

// One row of the table: a model (the base or a variant) as its files say,
// and with --measure what was measured.
struct VariantRow {
  std::string name, method;  // method "base" for the base model
  double file_bytes = 0, parameters = 0;
  double accuracy = NAN;      // test accuracy; NaN when unknown
  double delta_points = NAN;  // against the base, measured in the same run
  bool measured = false;
  double b1_ms = NAN, b8_ms = NAN, cold_template_ms = NAN, cold_exec_ms = NAN;
  double rss_mb = NAN, private_mb = NAN;
  double gb_s_per_million = NAN, usd_per_million = NAN;
};

// The base model (first) and each directory of `repo` whose variant.json
// names `model` as its base, by name. kNotFound without the base's config.
StatusOr<std::vector<VariantRow>> ReadVariants(const std::filesystem::path& repo, const std::string& model);

// Arguments after the command word; false with an error naming the flag.
bool ParseOptimizeArgs(const std::vector<std::string>& args, OptimizeCommandOptions* options, std::string* error);
bool ParseVariantsArgs(const std::vector<std::string>& args, VariantsCommandOptions* options, std::string* error);
int RunOptimize(const OptimizeCommandOptions& options);
int RunVariants(const VariantsCommandOptions& options);

}  // namespace thaw::cli
