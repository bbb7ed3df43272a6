#include "worker/describe.h"

#include <charconv>
#include <cstdio>
#include <string_view>

#include "backend/backend.h"
#include "base/json_writer.h"
#include "worker/worker.h"

namespace thaw {
namespace {

// NAME:DATATYPE:DIMS, split at the last two colons (a name may hold one).
StatusOr<TensorSpec> ParseInputArg(std::string_view text) {
  const size_t dims_at = text.rfind(':');
  const size_t type_at = dims_at == std::string_view::npos || dims_at == 0 ? std::string_view::npos
                                                                            : text.rfind(':', dims_at - 1);
  if (type_at == std::string_view::npos || type_at == 0)
    return InvalidArgument("--input '" + std::string(text) + "': expected NAME:DATATYPE:DIMS, e.g. x:FP32:2x4");
  TensorSpec spec;
  spec.name = std::string(text.substr(0, type_at));
  std::optional<DataType> type = ParseDataType(text.substr(type_at + 1, dims_at - type_at - 1));
  if (!type) return InvalidArgument("--input '" + std::string(text) + "': unknown datatype");
  spec.datatype = *type;
  std::string_view dims = text.substr(dims_at + 1);
  if (dims.empty()) return spec;  // a scalar
  while (true) {
    const size_t x = dims.find('x');
    const std::string_view part = dims.substr(0, x);
    int64_t dim = 0;
    auto [end, err] = std::from_chars(part.data(), part.data() + part.size(), dim);
    if (part.empty() || err != std::errc() || end != part.data() + part.size() || dim < 0)
      return InvalidArgument("--input '" + std::string(text) + "': bad dimension '" + std::string(part) + "'");
    spec.shape.push_back(dim);
    if (x == std::string_view::npos) return spec;
    dims = dims.substr(x + 1);
  }
}

}  // namespace

StatusOr<DescribeArgs> ParseDescribeArgs(int argc, const char* const* argv) {
  DescribeArgs args;
  if (argc < 3 || std::string_view(argv[1]) != "--describe")
    return InvalidArgument("expected --describe FILE [--input NAME:DATATYPE:DIMS]...");
  args.model_file = argv[2];
  for (int i = 3; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg != "--input" || i + 1 >= argc) return InvalidArgument("unexpected argument '" + std::string(arg) + "'");
    StatusOr<TensorSpec> spec = ParseInputArg(argv[++i]);
    if (!spec.ok()) return spec.status();
    args.example_inputs.push_back(std::move(spec).value());
  }
  return args;
}

int RunDescribe(const DescribeArgs& args) {
  SetIntraOpThreads(1);
  const ModelFileDescription d = DescribeTorchScriptFile(args.model_file, args.example_inputs);
  std::string out;
  JsonWriter w(&out);
  w.BeginObject();
  if (d.problem.empty()) {
    w.Key("inputs");
    WriteTensorSpecs(w, d.inputs);
    w.Key("outputs");
    WriteTensorSpecs(w, d.outputs);
  } else {
    w.Field("problem", d.problem).Field("message", d.engine_message);
    w.Key("file_version").Int(d.file_version).Key("max_file_version").Int(d.max_file_version);
    w.Field("input", d.input);
  }
  w.EndObject();
  std::fputs((out + "\n").c_str(), stdout);
  std::fflush(stdout);
  return d.problem.empty() ? kWorkerExitOk : kWorkerExitInitError;
}

}  // namespace thaw
