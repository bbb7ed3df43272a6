#include "deploy/render.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "base/json_writer.h"

namespace thaw::deploy {
namespace {

constexpr int kHttpPort = 8080;
constexpr int kGrpcPort = 8081;
constexpr int64_t kKnativeMinWindowS = 6;     // autoscaling.knative.dev/window: 6s..1h
constexpr int64_t kKnativeMaxWindowS = 3600;

// The knobs both targets share (KServe's serverless mode runs a Knative
// Service and passes autoscaling.knative.dev annotations through).
constexpr std::string_view kInPod = "";

const std::vector<SettingMapping>& KnativeMappings() {
  static const std::vector<SettingMapping> table = {
      {"backend", kInPod, "in the pod: the image holds every engine; thaw loads the model's"},
      {"model_file", kInPod, "in the pod: the repository in the image (or mounted at /models)"},
      {"platform", kInPod, "reported in the v2 metadata, as on one machine"},
      {"inputs", kInPod, "in the pod: checked on every request (400 naming the tensor)"},
      {"outputs", kInPod, "in the pod"},
      {"memory_mb", "resources.requests/limits.memory",
       "pod memory = --pod-overhead-mb (512: server, zygote, template, standby) + max_concurrency x memory_mb; without a "
       "delegated cgroup in the pod thaw does not also limit each instance (its log says so)"},
      {"timeout_ms", "timeoutSeconds", "rounded up to seconds; thaw still enforces the exact deadline"},
      {"start_timeout_ms", kInPod, "in the pod: a start over it is killed and retried, as on one machine"},
      {"max_concurrency", "containerConcurrency, autoscaling.knative.dev/target",
       "instances per pod: containerConcurrency = max_concurrency x instance_concurrency (a hard cap per pod)"},
      {"instance_concurrency", "containerConcurrency", "its factor per instance (above)"},
      {"min_instances", "autoscaling.knative.dev/min-scale", "pods = ceil(min_instances / max_concurrency); thaw "
       "keeps min_instances warm inside them"},
      {"keep_alive_s", "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
       "the last pod is kept this long; inside a pod, instances still stop after keep_alive_s idle"},
      {"max_queue", kInPod, "no per-revision cap on Knative's queue (activator, queue-proxy); thaw bounds its own "
       "queue in the pod and answers 429 past it"},
      {"threads", "resources.requests.cpu", "cpu = max_concurrency x threads; no cpu limit (throttling adds "
       "latency)"},
      {"start_path", kInPod, "in the pod: instances start from the template, zygote or exec as configured"},
      {"template_standby", kInPod, "in the pod"},
      {"template_keep_alive_s", kInPod, "in the pod"},
      {"keep_alive_policy", kInPod, "Knative keeps pods for a fixed period; thaw's adaptive policy runs on the "
       "instances in the pod"},
      {"histogram_bin_ms", kInPod, "in the pod (histogram keep-alive)"},
      {"histogram_range_s", kInPod, "in the pod (histogram keep-alive)"},
      {"target_concurrency", "autoscaling.knative.dev/target",
       "per pod: target_concurrency (0: instance_concurrency) x max_concurrency, rounded up; metric concurrency"},
      {"stable_window_s", "autoscaling.knative.dev/window", "the same window (Knative: 6 s..1 h)"},
      {"panic_window_s", "autoscaling.knative.dev/panic-window-percentage",
       "100 x panic_window_s / stable_window_s (Knative: 1..100)"},
      {"provisioned_schedule", kInPod, "no time-based min-scale in Knative; thaw raises min_instances in running "
       "pods during a window, min-scale stays the floor"},
      {"batching", kInPod, "in the pod: thaw's batcher, inside containerConcurrency"},
      {"max_batch_size", kInPod, "in the pod"},
      {"max_queue_delay_us", kInPod, "in the pod"},
      {"preferred_batch_sizes", kInPod, "in the pod"},
      {"slo_p99_ms", kInPod, "no latency target in Knative; thaw's adaptive batcher uses it in the pod"},
  };
  return table;
}

std::vector<SettingMapping> KServeMappings() {
  std::vector<SettingMapping> table = KnativeMappings();
  for (SettingMapping& m : table) {
    if (m.field == "backend") {
      m.knob = "predictor.model.modelFormat.name";
      m.how = "torchscript: pytorch, xgboost: xgboost, onnx: onnx; the `thaw` ServingRuntime serves all three";
    } else if (m.field == "model_file") {
      m.knob = "predictor.model.storageUri";
      m.how = "a repository holding the model's directory (--storage-uri), downloaded to /mnt/models";
    } else if (m.field == "memory_mb") {
      m.knob = "predictor.model.resources.requests/limits.memory";
    } else if (m.field == "timeout_ms") {
      m.knob = "predictor.timeout";
    } else if (m.field == "max_concurrency") {
      m.knob = "predictor.containerConcurrency, predictor.scaleTarget";
    } else if (m.field == "instance_concurrency") {
      m.knob = "predictor.containerConcurrency";
    } else if (m.field == "min_instances") {
      m.knob = "predictor.minReplicas";
    } else if (m.field == "threads") {
      m.knob = "predictor.model.resources.requests.cpu";
    } else if (m.field == "target_concurrency") {
      m.knob = "predictor.scaleTarget, predictor.scaleMetric";
    } else if (m.field == "batching") {
      m.how = "in the pod; KServe's batcher sidecar is not rendered (it would queue in front of thaw's batcher)";
    }
  }
  return table;
}

std::vector<SettingMapping> LambdaMappings() {
  static const std::vector<SettingMapping> table = {
      {"backend", kInPod, "in the function: the image holds every engine; thaw loads the model's"},
      {"model_file", kInPod, "in the function's image (scripts/image copies the repository to /models)"},
      {"platform", kInPod, "reported in the v2 metadata"},
      {"inputs", kInPod, "checked on every event (an invocation error naming the tensor)"},
      {"outputs", kInPod, "in the function"},
      {"memory_mb", "MemorySize", "the same number (Lambda: 128..10240 MB, the range thaw allows); Lambda gives "
       "CPU in proportion"},
      {"timeout_ms", "Timeout", "rounded up to seconds (Lambda: at most 900); thaw still enforces the exact deadline"},
      {"start_timeout_ms", kInPod, "init: a model whose first instance does not start within it is an init error"},
      {"max_concurrency", "ReservedConcurrentExecutions", "the cap on the function's instances (execution "
       "environments)"},
      {"instance_concurrency", kInPod, "Lambda sends one event at a time to an execution environment"},
      {"min_instances", "ProvisionedConcurrencyConfig", "on an alias `live` of a published version: "
       "ProvisionedConcurrentExecutions = min_instances"},
      {"keep_alive_s", kInPod, "Lambda decides when an idle environment is reclaimed; not configurable"},
      {"max_queue", kInPod, "Lambda queues nothing for synchronous calls: past the reserved concurrency it throttles "
       "(429)"},
      {"threads", kInPod, "intra-op threads of the function's instance; Lambda's vCPUs follow MemorySize "
       "(1 vCPU at 1769 MB)"},
      {"start_path", kInPod, "init starts the model's first instance on this path inside the environment"},
      {"template_standby", kInPod, "inside the environment"},
      {"template_keep_alive_s", kInPod, "inside the environment"},
      {"keep_alive_policy", kInPod, "Lambda keeps environments by its own policy"},
      {"histogram_bin_ms", kInPod, "not used: Lambda keeps environments by its own policy"},
      {"histogram_range_s", kInPod, "not used: Lambda keeps environments by its own policy"},
      {"target_concurrency", kInPod, "Lambda scales one environment per concurrent request"},
      {"stable_window_s", kInPod, "Lambda scales per request, with no window"},
      {"panic_window_s", kInPod, "Lambda scales per request, with no window"},
      {"provisioned_schedule", kInPod, "not rendered: Application Auto Scaling scheduled actions on the alias's "
       "provisioned concurrency would carry it"},
      {"batching", kInPod, "one event per environment at a time: nothing to batch across requests"},
      {"max_batch_size", kInPod, "as batching"},
      {"max_queue_delay_us", kInPod, "as batching"},
      {"preferred_batch_sizes", kInPod, "as batching"},
      {"slo_p99_ms", kInPod, "no latency target in Lambda"},
  };
  return table;
}

std::vector<SettingMapping> ModelMeshMappings() {
  std::vector<SettingMapping> table = KServeMappings();
  for (SettingMapping& m : table) {
    if (m.field == "model_file") {
      m.knob = "predictor.model.storageUri";
      m.how = "ModelMesh's puller fetches the model's directory and calls loadModel with its local path";
    } else if (m.field == "memory_mb") {
      m.knob = "predictModelSize, loadModel.sizeInBytes";
      m.how = "ModelMesh places models by size: predicted = memory_mb, loaded = what the model's instance and "
              "template count against thaw's budget; the pod's capacity is --capacity-mb";
    } else if (m.field == "timeout_ms") {
      m.knob = kInPod;
      m.how = "in the runtime: thaw enforces it per request";
    } else if (m.field == "start_timeout_ms") {
      m.how = "loadModel fails with DEADLINE_EXCEEDED past it and unloads the model";
    } else if (m.field == "max_concurrency" || m.field == "instance_concurrency" || m.field == "target_concurrency" ||
               m.field == "stable_window_s" || m.field == "panic_window_s" || m.field == "threads") {
      m.knob = kInPod;
      m.how = "in the runtime: thaw scales the model's instances inside the pod; ModelMesh adds copies on other pods "
              "for hot models";
    } else if (m.field == "min_instances") {
      m.knob = kInPod;
      m.how = "once ModelMesh has loaded the model on a pod, thaw keeps min_instances warm there";
    } else if (m.field == "keep_alive_s") {
      m.knob = kInPod;
      m.how = "instances stop after keep_alive_s idle; the model stays loaded until ModelMesh unloads it (LRU)";
    } else if (m.field == "max_queue") {
      m.how = "in the runtime: 429 (RESOURCE_EXHAUSTED) past it";
    }
  }
  return table;
}

// A DNS-1123 label: what Kubernetes object names must be.
bool IsDnsLabel(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(name.front())) || !std::isalnum(static_cast<unsigned char>(name.back())))
    return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// The numbers a model's pod is rendered with.
struct PodShape {
  int container_concurrency = 1;
  int target = 1;
  int min_scale = 0;
  int64_t memory_mib = 0;
  int cpu = 1;
  int64_t timeout_s = 1;
  double panic_percentage = 10;
};

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

StatusOr<PodShape> ShapeOf(const ModelConfig& m, const RenderOptions& options) {
  auto bad = [&](std::string_view field, const std::string& why) {
    return InvalidArgument("model '" + m.name + "': " + std::string(field) + ": " + why);
  };
  if (!IsDnsLabel(m.name))
    return bad("name", "not a DNS-1123 label (lower-case letters, digits and '-', at most 63), which Kubernetes "
                       "object names must be; rename the model directory");
  PodShape shape;
  shape.container_concurrency = m.max_concurrency * m.instance_concurrency;
  const double per_instance = m.target_concurrency > 0 ? m.target_concurrency : m.instance_concurrency;
  shape.target = std::max(1, static_cast<int>(std::ceil(per_instance * m.max_concurrency)));
  shape.min_scale = static_cast<int>(CeilDiv(m.min_instances, m.max_concurrency));
  shape.memory_mib = options.pod_overhead_mb + m.max_concurrency * m.memory_mb;
  shape.cpu = m.max_concurrency * m.threads;
  shape.timeout_s = CeilDiv(m.timeout_ms, 1000);
  if (shape.timeout_s > options.max_revision_timeout_s)
    return bad("timeout_ms", std::to_string(m.timeout_ms) + " ms is over Knative's max-revision-timeout-seconds (" +
                                 std::to_string(options.max_revision_timeout_s) +
                                 " s); lower it or pass --max-revision-timeout-s as your cluster allows");
  if (m.stable_window_s < kKnativeMinWindowS || m.stable_window_s > kKnativeMaxWindowS)
    return bad("stable_window_s", std::to_string(m.stable_window_s) + " s is outside Knative's window (6..3600 s)");
  shape.panic_percentage = std::clamp(100.0 * m.panic_window_s / m.stable_window_s, 1.0, 100.0);
  return shape;
}

std::string NumberText(double v) {
  std::string out;
  AppendJsonNumber(&out, v);
  return out;
}

void WriteAutoscalingAnnotations(JsonWriter& w, const ModelConfig& m, const PodShape& shape,
                                 const RenderOptions& options, bool with_scale_bounds) {
  w.Field("autoscaling.knative.dev/class", "kpa.autoscaling.knative.dev");
  w.Field("autoscaling.knative.dev/metric", "concurrency");
  if (with_scale_bounds) {
    w.Field("autoscaling.knative.dev/target", std::to_string(shape.target));
    w.Field("autoscaling.knative.dev/min-scale", std::to_string(shape.min_scale));
    if (options.max_scale > 0) w.Field("autoscaling.knative.dev/max-scale", std::to_string(options.max_scale));
  }
  w.Field("autoscaling.knative.dev/scale-to-zero-pod-retention-period", std::to_string(m.keep_alive_s) + "s");
  w.Field("autoscaling.knative.dev/window", std::to_string(m.stable_window_s) + "s");
  w.Field("autoscaling.knative.dev/panic-window-percentage", NumberText(shape.panic_percentage));
}

void WriteResources(JsonWriter& w, const PodShape& shape) {
  const std::string memory = std::to_string(shape.memory_mib) + "Mi";
  w.Key("resources").BeginObject();
  w.Key("requests").BeginObject().Field("cpu", std::to_string(shape.cpu)).Field("memory", memory).EndObject();
  w.Key("limits").BeginObject().Field("memory", memory).EndObject();
  w.EndObject();
}

void WriteProbes(JsonWriter& w) {
  // The port is the container's (Knative refuses any other).
  w.Key("readinessProbe").BeginObject().Key("httpGet").BeginObject().Field("path", "/v2/health/ready");
  w.Field("port", kHttpPort).EndObject().Field("periodSeconds", 1).EndObject();
  w.Key("livenessProbe").BeginObject().Key("httpGet").BeginObject().Field("path", "/v2/health/live");
  w.Field("port", kHttpPort).EndObject().Field("periodSeconds", 10).EndObject();
}

void WriteSecurityContext(JsonWriter& w) {
  w.Key("securityContext").BeginObject().Field("runAsNonRoot", true).Field("runAsUser", 65534);
  w.Field("allowPrivilegeEscalation", false);
  w.Key("capabilities").BeginObject().Key("drop").BeginArray().String("ALL").EndArray().EndObject();
  w.EndObject();
}

void WriteLabels(JsonWriter& w, const std::string& model) {
  w.Key("labels").BeginObject().Field("app.kubernetes.io/name", "thaw");
  w.Field("app.kubernetes.io/component", "model").Field("thaw.dev/model", model).EndObject();
}

std::string KnativeService(const ModelConfig& m, const PodShape& shape, const RenderOptions& options) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("apiVersion", "serving.knative.dev/v1").Field("kind", "Service");
  w.Key("metadata").BeginObject().Field("name", m.name).Field("namespace", options.namespace_name);
  WriteLabels(w, m.name);
  w.EndObject();
  w.Key("spec").BeginObject().Key("template").BeginObject();
  w.Key("metadata").BeginObject().Key("annotations").BeginObject();
  WriteAutoscalingAnnotations(w, m, shape, options, true);
  w.EndObject();
  WriteLabels(w, m.name);
  w.EndObject();
  w.Key("spec").BeginObject();
  w.Field("containerConcurrency", shape.container_concurrency);
  w.Field("timeoutSeconds", shape.timeout_s);
  w.Key("containers").BeginArray().BeginObject().Field("name", "thaw").Field("image", options.image);
  w.Key("args").BeginArray();
  for (std::string_view a : {"--repo", "/models", "--models"}) w.String(a);
  w.String(m.name);
  for (std::string_view a : {"--host", "0.0.0.0", "--port"}) w.String(a);
  w.String(std::to_string(kHttpPort)).EndArray();
  w.Key("ports").BeginArray().BeginObject().Field("name", "http1").Field("containerPort", kHttpPort).EndObject();
  w.EndArray();
  WriteResources(w, shape);
  WriteProbes(w);
  WriteSecurityContext(w);
  w.EndObject().EndArray();
  w.EndObject().EndObject().EndObject().EndObject();
  out += '\n';
  return out;
}

std::string_view KServeFormat(const ModelConfig& m) {
  if (m.backend == "xgboost") return "xgboost";
  if (m.backend == "onnx") return "onnx";
  return "pytorch";
}

std::string KServeRuntime(const RenderOptions& options) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("apiVersion", "serving.kserve.io/v1alpha1").Field("kind", "ServingRuntime");
  w.Key("metadata").BeginObject().Field("name", "thaw").Field("namespace", options.namespace_name);
  w.Key("labels").BeginObject().Field("app.kubernetes.io/name", "thaw").EndObject().EndObject();
  w.Key("spec").BeginObject();
  w.Key("annotations").BeginObject().Field("prometheus.kserve.io/port", std::to_string(kHttpPort));
  w.Field("prometheus.kserve.io/path", "/metrics").EndObject();
  w.Key("supportedModelFormats").BeginArray();
  for (std::string_view format : {"pytorch", "xgboost", "onnx"})
    w.BeginObject().Field("name", format).Field("autoSelect", true).EndObject();
  w.EndArray();
  w.Key("protocolVersions").BeginArray().String("v2").String("grpc-v2").EndArray();
  w.Key("containers").BeginArray().BeginObject().Field("name", "kserve-container").Field("image", options.image);
  w.Key("args").BeginArray();
  for (std::string_view a : {"--repo", "/mnt/models", "--host", "0.0.0.0", "--port"}) w.String(a);
  w.String(std::to_string(kHttpPort)).String("--grpc-port").String(std::to_string(kGrpcPort)).EndArray();
  w.Key("ports").BeginArray().BeginObject().Field("containerPort", kHttpPort).Field("protocol", "TCP").EndObject();
  w.EndArray();
  WriteProbes(w);
  WriteSecurityContext(w);
  w.EndObject().EndArray();
  w.EndObject().EndObject();
  out += '\n';
  return out;
}

std::string KServeInferenceService(const ModelConfig& m, const PodShape& shape, const RenderOptions& options) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("apiVersion", "serving.kserve.io/v1beta1").Field("kind", "InferenceService");
  w.Key("metadata").BeginObject().Field("name", m.name).Field("namespace", options.namespace_name);
  WriteLabels(w, m.name);
  w.Key("annotations").BeginObject().Field("serving.kserve.io/deploymentMode", "Serverless");
  WriteAutoscalingAnnotations(w, m, shape, options, false);
  w.EndObject().EndObject();
  w.Key("spec").BeginObject().Key("predictor").BeginObject();
  w.Field("minReplicas", shape.min_scale);
  if (options.max_scale > 0) w.Field("maxReplicas", options.max_scale);
  w.Field("scaleMetric", "concurrency").Field("scaleTarget", shape.target);
  w.Field("containerConcurrency", shape.container_concurrency).Field("timeout", shape.timeout_s);
  w.Key("model").BeginObject();
  w.Key("modelFormat").BeginObject().Field("name", KServeFormat(m)).EndObject();
  w.Field("protocolVersion", "v2").Field("runtime", "thaw").Field("storageUri", options.storage_uri);
  w.Key("args").BeginArray().String("--models").String(m.name).EndArray();
  WriteResources(w, shape);
  w.EndObject();
  w.EndObject().EndObject().EndObject();
  out += '\n';
  return out;
}

// A CloudFormation logical id: "fashion-int8" -> "FashionInt8".
std::string LogicalId(std::string_view model) {
  std::string id;
  bool upper = true;
  for (char c : model) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      upper = true;
      continue;
    }
    id += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return id;
}

constexpr int64_t kLambdaMaxTimeoutS = 900;

// One CloudFormation template for every model: a function on the image
// (parameters ImageUri and RoleArn), its function URL (AWS_IAM), and with
// min_instances a version and alias `live` with provisioned concurrency.
StatusOr<std::vector<RenderedFile>> RenderLambda(const std::vector<ModelConfig>& models, const RenderOptions& options) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("AWSTemplateFormatVersion", "2010-09-09");
  w.Field("Description", "thaw models as AWS Lambda functions (thaw deploy render --target lambda)");
  w.Key("Parameters").BeginObject();
  w.Key("ImageUri").BeginObject().Field("Type", "String").Field("Default", options.image);
  w.Field("Description", "the thaw image (scripts/image) pushed to Amazon ECR").EndObject();
  w.Key("RoleArn").BeginObject().Field("Type", "String");
  w.Field("Description", "the functions' execution role (CloudWatch Logs)").EndObject();
  w.EndObject();
  std::vector<std::string> ids;
  w.Key("Resources").BeginObject();
  for (const ModelConfig& m : models) {
    auto bad = [&](std::string_view field, const std::string& why) {
      return InvalidArgument("model '" + m.name + "': " + std::string(field) + ": " + why);
    };
    const std::string id = LogicalId(m.name);
    if (id.empty() || std::find(ids.begin(), ids.end(), id) != ids.end())
      return bad("name", "gives the CloudFormation logical id '" + id + "', empty or another model's");
    ids.push_back(id);
    const int64_t timeout_s = CeilDiv(m.timeout_ms, 1000);
    if (timeout_s > kLambdaMaxTimeoutS)
      return bad("timeout_ms", std::to_string(m.timeout_ms) + " ms is over Lambda's 900 s");
    if (m.min_instances > m.max_concurrency)
      return bad("min_instances", "over max_concurrency (Lambda: provisioned <= reserved concurrency)");
    w.Key(id + "Function").BeginObject().Field("Type", "AWS::Lambda::Function");
    w.Key("Properties").BeginObject();
    w.Field("PackageType", "Image");
    w.Key("Code").BeginObject().Key("ImageUri").BeginObject().Field("Ref", "ImageUri").EndObject().EndObject();
    w.Key("Role").BeginObject().Field("Ref", "RoleArn").EndObject();
    w.Key("ImageConfig").BeginObject().Key("Command").BeginArray();
    for (std::string_view a : {"--repo", "/models", "--models"}) w.String(a);
    w.String(m.name).EndArray().EndObject();
    w.Field("MemorySize", m.memory_mb).Field("Timeout", timeout_s);
    w.Field("ReservedConcurrentExecutions", m.max_concurrency);
    w.Key("Architectures").BeginArray().String("x86_64").EndArray();
    w.Key("Tags").BeginArray().BeginObject().Field("Key", "thaw.dev/model").Field("Value", m.name).EndObject().EndArray();
    w.EndObject().EndObject();
    w.Key(id + "Url").BeginObject().Field("Type", "AWS::Lambda::Url").Key("Properties").BeginObject();
    w.Field("AuthType", "AWS_IAM");
    w.Key("TargetFunctionArn").BeginObject().Key("Fn::GetAtt").BeginArray().String(id + "Function").String("Arn");
    w.EndArray().EndObject().EndObject().EndObject();
    if (m.min_instances > 0) {
      w.Key(id + "Version").BeginObject().Field("Type", "AWS::Lambda::Version").Key("Properties").BeginObject();
      w.Key("FunctionName").BeginObject().Field("Ref", id + "Function").EndObject().EndObject().EndObject();
      w.Key(id + "Alias").BeginObject().Field("Type", "AWS::Lambda::Alias").Key("Properties").BeginObject();
      w.Key("FunctionName").BeginObject().Field("Ref", id + "Function").EndObject();
      w.Key("FunctionVersion").BeginObject().Key("Fn::GetAtt").BeginArray().String(id + "Version").String("Version");
      w.EndArray().EndObject();
      w.Field("Name", "live");
      w.Key("ProvisionedConcurrencyConfig").BeginObject().Field("ProvisionedConcurrentExecutions", m.min_instances);
      w.EndObject().EndObject().EndObject();
    }
  }
  w.EndObject();
  w.EndObject();
  out += '\n';
  return std::vector<RenderedFile>{{"template.json", std::move(out)}};
}

// ModelMesh: a multi-model ServingRuntime whose pods run thaw with the
// model-runtime API on, and an InferenceService per model placed by the mesh.
std::vector<RenderedFile> RenderModelMesh(const std::vector<ModelConfig>& models, const RenderOptions& options) {
  std::vector<RenderedFile> files;
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("apiVersion", "serving.kserve.io/v1alpha1").Field("kind", "ServingRuntime");
  w.Key("metadata").BeginObject().Field("name", "thaw-modelmesh").Field("namespace", options.namespace_name);
  w.Key("labels").BeginObject().Field("app.kubernetes.io/name", "thaw").EndObject().EndObject();
  w.Key("spec").BeginObject().Field("multiModel", true);
  w.Field("grpcEndpoint", "port:" + std::to_string(kGrpcPort)).Field("grpcDataEndpoint", "port:" + std::to_string(kGrpcPort));
  w.Key("supportedModelFormats").BeginArray();
  for (std::string_view format : {"pytorch", "xgboost", "onnx"})
    w.BeginObject().Field("name", format).Field("autoSelect", true).EndObject();
  w.EndArray();
  w.Key("protocolVersions").BeginArray().String("grpc-v2").EndArray();
  w.Key("containers").BeginArray().BeginObject().Field("name", "thaw").Field("image", options.image);
  w.Key("args").BeginArray();
  for (std::string_view a : {"--repo", "/opt/thaw/empty-repository", "--host", "0.0.0.0", "--port"}) w.String(a);
  w.String(std::to_string(kHttpPort)).String("--grpc-port").String(std::to_string(kGrpcPort));
  w.String("--modelmesh").String("on").String("--memory-mb").String(std::to_string(options.capacity_mb)).EndArray();
  w.Key("ports").BeginArray().BeginObject().Field("containerPort", kGrpcPort).Field("protocol", "TCP").EndObject();
  w.EndArray();
  PodShape shape;
  shape.memory_mib = options.pod_overhead_mb + options.capacity_mb;
  shape.cpu = 2;
  WriteResources(w, shape);
  WriteProbes(w);
  WriteSecurityContext(w);
  w.EndObject().EndArray();
  w.EndObject().EndObject();
  out += '\n';
  files.push_back({"servingruntime-thaw-modelmesh.json", std::move(out)});
  for (const ModelConfig& m : models) {
    std::string isvc;
    JsonWriter v(&isvc, {.indent_top_level = true});
    v.BeginObject().Field("apiVersion", "serving.kserve.io/v1beta1").Field("kind", "InferenceService");
    v.Key("metadata").BeginObject().Field("name", m.name).Field("namespace", options.namespace_name);
    WriteLabels(v, m.name);
    v.Key("annotations").BeginObject().Field("serving.kserve.io/deploymentMode", "ModelMesh").EndObject();
    v.EndObject();
    v.Key("spec").BeginObject().Key("predictor").BeginObject().Key("model").BeginObject();
    v.Key("modelFormat").BeginObject().Field("name", KServeFormat(m)).EndObject();
    v.Field("runtime", "thaw-modelmesh").Field("storageUri", options.storage_uri + "/" + m.name);
    v.EndObject().EndObject().EndObject().EndObject();
    isvc += '\n';
    files.push_back({m.name + ".json", std::move(isvc)});
  }
  return files;
}

}  // namespace

std::string_view TargetName(Target target) {
  switch (target) {
    case Target::kKnative: return "knative";
    case Target::kKServe: return "kserve";
    case Target::kLambda: return "lambda";
    case Target::kModelMesh: return "modelmesh";
  }
  return "?";
}

std::optional<Target> ParseTarget(std::string_view name) {
  if (name == "knative") return Target::kKnative;
  if (name == "kserve") return Target::kKServe;
  if (name == "lambda") return Target::kLambda;
  if (name == "modelmesh") return Target::kModelMesh;
  return std::nullopt;
}

Status Validate(const RenderOptions& options) {
  if (options.image.empty()) return InvalidArgument("image: must not be empty");
  if (!IsDnsLabel(options.namespace_name)) return InvalidArgument("namespace: not a DNS-1123 label");
  if (options.max_scale < 0) return InvalidArgument("max_scale: must be >= 0");
  if (options.pod_overhead_mb < 0) return InvalidArgument("pod_overhead_mb: must be >= 0");
  if (options.max_revision_timeout_s < 1) return InvalidArgument("max_revision_timeout_s: must be >= 1");
  if (options.capacity_mb < 128) return InvalidArgument("capacity_mb: must be >= 128");
  return Status::Ok();
}

StatusOr<std::vector<RenderedFile>> Render(Target target, const std::vector<ModelConfig>& models,
                                           const RenderOptions& options) {
  THAW_RETURN_IF_ERROR(Validate(options));
  if ((target == Target::kKServe || target == Target::kModelMesh) && options.storage_uri.empty())
    return InvalidArgument("kserve needs a storage URI: a repository holding each model's directory "
                           "(e.g. s3://bucket/models, pvc://name/models)");
  if (target == Target::kLambda) return RenderLambda(models, options);
  if (target == Target::kModelMesh) {
    for (const ModelConfig& m : models)
      if (!IsDnsLabel(m.name))
        return InvalidArgument("model '" + m.name + "': name: not a DNS-1123 label, which InferenceService names must be");
    return RenderModelMesh(models, options);
  }
  std::vector<RenderedFile> files;
  if (target == Target::kKServe) files.push_back({"servingruntime-thaw.json", KServeRuntime(options)});
  for (const ModelConfig& m : models) {
    auto shape = ShapeOf(m, options);
    if (!shape.ok()) return shape.status();
    files.push_back({m.name + ".json", target == Target::kKnative ? KnativeService(m, *shape, options)
                                                                   : KServeInferenceService(m, *shape, options)});
  }
  return files;
}

std::vector<SettingMapping> Mappings(Target target) {
  switch (target) {
    case Target::kKnative: return KnativeMappings();
    case Target::kKServe: return KServeMappings();
    case Target::kLambda: return LambdaMappings();
    case Target::kModelMesh: return ModelMeshMappings();
  }
  return {};
}

std::string MappingTable(Target target) {
  std::ostringstream out;
  const char* engine = target == Target::kKnative     ? "Knative"
                       : target == Target::kKServe    ? "KServe"
                       : target == Target::kModelMesh ? "KServe ModelMesh"
                                                      : "AWS Lambda (CloudFormation)";
  out << "| thaw setting | " << engine << " | how |\n|---|---|---|\n";
  for (const SettingMapping& m : Mappings(target)) {
    out << "| `" << m.field << "` | ";
    if (m.knob.empty())
      out << "no equivalent";
    else
      out << "`" << m.knob << "`";
    out << " | " << m.how << " |\n";
  }
  return out.str();
}

}  // namespace thaw::deploy
