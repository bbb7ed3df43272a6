// `thaw deploy render --target knative|kserve|lambda|modelmesh`: writes the deployment files
// per model of a repository (and KServe's ServingRuntime) into --out, from
// each model's config.json (src/deploy/render.h says what maps to what).
// `thaw deploy mappings --target T`: the table of thaw settings and the
// engine's knobs, as the README shows it.
// Errors: a bad flag (exit 2); an invalid config, a value the engine
// cannot take, or a file that cannot be written (exit 1, naming the model
// and field); nothing is written unless every model renders.
#pragma once

#include <string>
#include <vector>

#include "deploy/render.h"

namespace thaw::cli {

struct DeployCommandOptions {
  std::string action;           // render or mappings
  deploy::Target target = deploy::Target::kKnative;
  bool target_given = false;
  std::string repo;             // empty: the bundled examples
  std::vector<std::string> models;  // empty: every model of the repository
  std::string out;              // empty: ./thaw-<target>
  deploy::RenderOptions render;
};

// Arguments after `deploy`; false with an error naming the flag.
bool ParseDeployArgs(const std::vector<std::string>& args, DeployCommandOptions* options, std::string* error);
int RunDeploy(const DeployCommandOptions& options);

}  // namespace thaw::cli
