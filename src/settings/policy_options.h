// How a model's settings (config.json, repo/model_config.h) become the
// options of the pure policies. The runtime and the simulator both use these,
// so a setting means the same thing live and simulated.
// Thread safety: pure functions. Errors: none here; callers Validate the result.
#pragma once

#include <vector>

#include "base/status.h"
#include "policy/admission.h"
#include "policy/autoscaler.h"
#include "policy/batching.h"
#include "policy/keep_alive.h"
#include "policy/provisioned.h"
#include "policy/template_cache.h"
#include "repo/model_config.h"

namespace thaw {

// Lambda-like default target: one instance per unit of instance_concurrency.
policy::AutoscalerOptions AutoscalerOptionsFor(const ModelConfig& config);
policy::KeepAliveOptions KeepAliveOptionsFor(const ModelConfig& config);
policy::BatchingOptions BatchingOptionsFor(const ModelConfig& config);
policy::AdmissionOptions AdmissionOptionsFor(const ModelConfig& config);
std::vector<policy::ProvisionedWindow> ProvisionedWindowsFor(const ModelConfig& config);
policy::TemplateCacheOptions TemplateCacheOptionsFor(const ModelConfig& config);

// Validates every policy's options for `config` (config validation covers
// them; a failure here is a bug, reported rather than crashed on).
Status ValidatePolicyOptions(const ModelConfig& config);

}  // namespace thaw
