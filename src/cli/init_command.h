// `thaw init MODEL_FILE [--name N] [--repo DIR] [--example-input FILE] [--force]`:
// turns a TorchScript file into a model directory `thaw serve --repo DIR`
// serves as it is: DIR/N/model.pt (a copy), a minimal config.json and a
// sample v2 request, request.json.
//
// The thaw binary does not link libtorch (it would slow every command), so
// the file is inspected by `thaw-worker --describe` (worker/describe.h),
// whose JSON answer ParseDescription reads. Everything else here is pure
// and unit-tested: argument parsing, the example-input file, the config and
// request written from a description, the error messages.
//
// Errors: a bad flag (exit 2); a file that cannot be served (missing, saved
// by a newer torch, not TorchScript, unloadable, no shape to read) or an
// existing model directory without --force (exit 1), each a message naming
// the file and what to do. Nothing is written unless the file was described.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "repo/model_config.h"

namespace thaw::cli {

struct InitCommandOptions {
  std::string model_file;
  std::string name;              // empty: DefaultModelName(model_file)
  std::string repo = "thaw-models";
  std::string example_input;     // a JSON file (ParseExampleInput); empty: shapes from the graph
  bool force = false;            // replace DIR/N's files
  std::string worker_path;       // empty: thaw-worker beside the thaw binary
};

std::string InitHelp();
// Arguments after `init`; false with an error naming the flag.
bool ParseInitArgs(const std::vector<std::string>& args, InitCommandOptions* options, std::string* error);

// A model name from a file name: its stem, every character but letters,
// digits, '_', '-' and '.' made '-'; "model" if nothing is left.
std::string DefaultModelName(std::string_view model_file);
// A name thaw serves under /v2/models/NAME: 1..128 of letters, digits, '_',
// '-' and '.', not starting with '.'.
bool ValidModelName(std::string_view name);

// The example input: a JSON object {"inputs": [{"name", "datatype",
// "shape"}, ...]}, i.e. a KServe v2 inference request (its "data" and other
// fields are ignored), one entry per forward argument in order. Shapes are
// the sizes of one call (no -1). kInvalidArgument naming `source` and field.
StatusOr<std::vector<TensorSpec>> ParseExampleInput(std::string_view json, const std::string& source);

// What thaw-worker --describe answered (see worker/describe.h).
struct InitDescription {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::string problem;  // empty: described
  std::string message;
  int64_t file_version = 0;
  int64_t max_file_version = 0;
  std::string input;
};
StatusOr<InitDescription> ParseDescription(std::string_view json);

// The error for a described problem, naming `model_file` and the fix.
std::string ProblemMessage(const std::string& model_file, const InitDescription& description);

// config.json for a described model: its inputs and outputs only (the
// rest is config.json's defaults: torchscript, model.pt, ...).
std::string InitConfigJson(const InitDescription& description);
// A v2 inference request for `inputs`: -1 dims as 1, floating data 0.5,
// integers 1, BOOL true.
std::string SampleRequestJson(const std::vector<TensorSpec>& inputs);
// What to run next: thaw serve and curl.
std::string NextSteps(const std::string& repo, const std::string& name);

int RunInit(const InitCommandOptions& options);

}  // namespace thaw::cli
