#include "backend/backend.h"

#include "backend/torch_backend.h"

namespace thaw {

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
