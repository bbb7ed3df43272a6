// Deployment files for engines past one machine, from a repository's model
// configs: what `thaw deploy render` writes. Each thaw setting maps to the
// engine's own knob or is listed as having none, with what thaw does then
// (Mappings; the README's table is printed from it).
//
// The unit is a pod running `thaw serve` on the image of scripts/image:
//  - knative: one Knative Service (serving.knative.dev/v1) per model; its
//    pods serve that model alone (`--models NAME`), each pod running up to
//    max_concurrency instances of it, so containerConcurrency and the
//    autoscaling target are per pod, in requests.
//  - kserve: one ServingRuntime named `thaw` (serving.kserve.io/v1alpha1,
//    the v2 REST and gRPC protocols, formats pytorch, xgboost, onnx) and
//    one InferenceService (v1beta1, protocolVersion v2) per model, its
//    storageUri a repository holding the model's directory (KServe
//    downloads it to /mnt/models, as for Triton).
//  - lambda: one CloudFormation template (template.json) with, per model,
//    an AWS::Lambda::Function on the image (PackageType Image; its
//    `thaw serve` entrypoint runs in Lambda mode there, lambda/), an
//    AWS::Lambda::Url, and for min_instances > 0 a version and an alias
//    `live` with provisioned concurrency. Parameters: ImageUri, RoleArn.
//  - modelmesh: a multi-model ServingRuntime `thaw-modelmesh` whose pods run
//    thaw with ModelMesh's model-runtime API (`--modelmesh on`, gRPC port
//    8081 for both management and inference, capacity_mb of models) and an
//    InferenceService per model in ModelMesh mode (storageUri/<model>).
// Pod memory: pod_overhead_mb (server, zygote, a template and its standby)
// + max_concurrency x memory_mb, requested and limited; CPU requested:
// max_concurrency x threads.
//
// Guarantees: a model whose values the engine cannot take is refused with
// a status naming the model, the field and the engine's limit (a name that
// is not a DNS-1123 label, a timeout over max_revision_timeout_s, a window
// outside Knative's 6 s..1 h, a timeout over Lambda's 900 s); nothing is
// rendered then. The schema checks
// of the objects run outside (deploy/validate, npm kubernetes-models).
// Thread safety: pure functions on values.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "repo/model_config.h"

namespace thaw::deploy {

enum class Target { kKnative, kKServe, kLambda, kModelMesh };
std::string_view TargetName(Target target);  // knative, kserve, lambda, modelmesh
std::optional<Target> ParseTarget(std::string_view name);

struct RenderOptions {
  std::string image = "localhost/thaw:latest";  // scripts/image's default tag
  std::string namespace_name = "default";
  int max_scale = 0;                      // pods per model; 0 leaves the engine's default (unbounded)
  int64_t pod_overhead_mb = 512;          // server, zygote, template and standby, above the instances
  int64_t max_revision_timeout_s = 600;   // Knative's default max-revision-timeout-seconds
  std::string storage_uri;                // kserve, modelmesh: a repository holding <model>/ (required)
  int64_t capacity_mb = 4096;             // modelmesh: memory of models per pod (thaw's --memory-mb)
};

// InvalidArgument naming the field; the defaults are valid.
Status Validate(const RenderOptions& options);

struct RenderedFile {
  std::string name;  // file name, e.g. "fraud.json", "servingruntime-thaw.json"
  std::string json;  // one Kubernetes object
};

// Every model's objects (and kserve's ServingRuntime first). InvalidArgument
// naming the model and field when a value does not fit the engine.
StatusOr<std::vector<RenderedFile>> Render(Target target, const std::vector<ModelConfig>& models,
                                           const RenderOptions& options);

// How one config.json field is carried over: to which knob and how, or why
// there is no equivalent and what thaw does then.
struct SettingMapping {
  std::string_view field;
  std::string_view knob;  // empty: no equivalent
  std::string_view how;
};

// One entry per field of config.json (kModelConfigFields), in that order.
std::vector<SettingMapping> Mappings(Target target);

// Mappings as a markdown table (the README's, `thaw deploy mappings`).
std::string MappingTable(Target target);

}  // namespace thaw::deploy
