// thaw-worker --describe FILE [--input NAME:DATATYPE:DIMS]...: what `thaw
// init` asks of a TorchScript file, in a process that links libtorch (the
// thaw binary does not). DIMS are sizes joined by 'x' ("2x4"; empty for a
// scalar) and stand for forward's arguments in order (an example call);
// without --input, shapes are read from the graph (backend.h,
// DescribeTorchScriptFile).
//
// Prints one JSON object on stdout:
//   {"inputs": [{"name": N, "datatype": D, "shape": [..]}, ...], "outputs": [...]}
// or, when the file cannot be served, {"problem": P, "message": M,
// "file_version": V, "max_file_version": W, "input": I} (P as
// ModelFileDescription's problem) and exits 1. A bad command line exits 64
// with the usage on stderr.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "repo/model_config.h"

namespace thaw {

struct DescribeArgs {
  std::string model_file;
  std::vector<TensorSpec> example_inputs;
};

// Parses the arguments after the program name (argv[1] is "--describe").
StatusOr<DescribeArgs> ParseDescribeArgs(int argc, const char* const* argv);

// Describes the file and prints the JSON; returns the exit code.
int RunDescribe(const DescribeArgs& args);

}  // namespace thaw
