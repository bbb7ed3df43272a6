#include "backend/backend.h"

#include "backend/torch_backend.h"

namespace thaw {
namespace {

Tensor WarmupInput(const TensorSpec& spec, int64_t variable_dim) {
  Tensor t;
  t.name = spec.name;
  t.datatype = spec.datatype;
  for (int64_t d : spec.shape) t.shape.push_back(d < 0 ? variable_dim : d);
  const size_t count = static_cast<size_t>(ElementCount(t.shape));
  const size_t size = DataTypeSize(spec.datatype);
  t.data.assign(count * size, '\0');
  const bool floating = spec.datatype == DataType::kFp16 || spec.datatype == DataType::kFp32 ||
                        spec.datatype == DataType::kFp64;
  if (!floating)
    for (size_t i = 0; i < count; ++i) t.data[i * size] = 1;  // little-endian 1
  return t;
}

}  // namespace

Status WarmUp(Backend& backend, const ModelConfig& config, int runs) {
  std::vector<Tensor> outputs;
  for (int i = 0; i < runs; ++i) {
    // Variable dims cycle through 1, 2, 4: an executor that specialises on
    // shapes then has seen several, and a new batch size does not pay a
    // re-specialisation on the request path.
    std::vector<Tensor> inputs;
    for (const TensorSpec& spec : config.inputs) inputs.push_back(WarmupInput(spec, int64_t{1} << (i % 3)));
    Status s = backend.Run(inputs, &outputs);
    if (!s.ok()) {
      std::string shapes;
      for (const Tensor& t : inputs) shapes += (shapes.empty() ? "" : ",") + ShapeToString(t.shape);
      return InvalidArgument("model '" + config.name + "': warm-up with input shape(s) " + shapes +
                             " failed: " + s.message());
    }
  }
  return Status::Ok();
}


StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const Clock& clock,
                                                 BackendLoadTimings* timings) {
  BackendLoadTimings ignored;
  if (timings == nullptr) timings = &ignored;
  if (config.backend == "torchscript") return CreateTorchScriptBackend(config, clock, timings);
  return InvalidArgument("model '" + config.name + "': unknown backend '" + config.backend +
                         "' (supported: torchscript)");
}

void SetIntraOpThreads(int threads) { SetTorchIntraOpThreads(threads); }

}  // namespace thaw
