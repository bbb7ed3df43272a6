// The TorchScript backend (libtorch). Private to src/backend: this header
// includes no torch header, so backend.cc and tests stay cheap to compile;
// only torch_backend.cc sees libtorch.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace thaw {

// Loads config.ModelPath() with torch::jit::load, freezes and optimises it
// for inference, and warms it up (see backend.h).
StatusOr<std::unique_ptr<Backend>> CreateTorchScriptBackend(const ModelConfig& config, const Clock& clock,
                                                            BackendLoadTimings* timings,
                                                            const BackendLoadOptions& options);

// See WarmEngine.
Status WarmTorchScriptEngine();

// The frozen module as a flatbuffer, optimised when that serialises (see
// PrepareArtifact).
StatusOr<std::string> PrepareTorchScriptArtifact(const ModelConfig& config);

// at::set_num_threads for this process (see SetIntraOpThreads).
void SetTorchIntraOpThreads(int threads);

}  // namespace thaw
