#include "server/v2_handler.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string_view>

#include "policy/admission.h"
#include "protocol/v2.h"
#include "runtime/process_memory.h"

namespace thaw {
namespace {

constexpr std::string_view kServerName = "thaw";
constexpr std::string_view kServerVersion = "0.1.0";
constexpr std::string_view kModelVersion = "1";

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty()) parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

std::string ColdStartFields(const ColdStartBreakdown& c, std::string_view sep, std::string_view quote) {
  const std::pair<std::string_view, Micros> parts[] = {
      {"queue", c.queue_us},         {"spawn", c.spawn_us},   {"runtime_init", c.runtime_init_us},
      {"model_load", c.model_load_us}, {"warmup", c.warmup_us}, {"first_inference", c.first_inference_us},
      {"total", c.total_us}};
  std::string out;
  for (const auto& [name, us] : parts) {
    if (!out.empty()) out += ',';
    out += quote;
    out += name;
    out += quote;
    out += sep;
    out += MillisText(us);
  }
  return out;
}

std::string TimingParameters(const InvocationTiming& t) {
  std::string json = "{\"cold_start\":";
  json += t.cold_start ? "true" : "false";
  if (t.cold_start) {
    json += ",\"start_path\":\"" + std::string(StartPathName(t.start_path)) + "\"";
    json += ",\"cold_start_ms\":{" + ColdStartFields(t.cold, ":", "\"") + "}";
  }
  json += ",\"queue_ms\":" + MillisText(t.queue_us);
  json += ",\"batch_wait_ms\":" + MillisText(t.batch_wait_us);
  json += ",\"compute_ms\":" + MillisText(t.compute_us);
  json += ",\"total_ms\":" + MillisText(t.total_us);
  json += ",\"batch_size\":" + std::to_string(t.batch_size);
  json += ",\"batch_requests\":" + std::to_string(t.batch_requests);
  json += ",\"instance\":" + std::to_string(t.instance_id);
  json += '}';
  return json;
}

// W3C Server-Timing: the same parts, so browser and curl users see them.
std::string ServerTiming(const InvocationTiming& t) {
  return "queue;dur=" + MillisText(t.queue_us) + ", batch_wait;dur=" + MillisText(t.batch_wait_us) +
         ", compute;dur=" + MillisText(t.compute_us) + ", total;dur=" + MillisText(t.total_us);
}

HttpResponse Json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

}  // namespace

HttpResponse ErrorResponse(const Status& status) {
  HttpResponse response = Json(HttpStatusFor(status.code()), v2::EncodeError(status.message()));
  if (status.code() == StatusCode::kResourceExhausted || status.code() == StatusCode::kUnavailable)
    response.headers.emplace_back("Retry-After", "1");
  return response;
}

void V2Handler::Handle(HttpRequest request, std::function<void(HttpResponse)> respond) {
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  const std::vector<std::string_view> parts = SplitPath(path);
  const bool get = request.method == "GET" || request.method == "HEAD";
  auto method_not_allowed = [&](std::string_view allowed) {
    HttpResponse response = Json(405, v2::EncodeError(std::string(request.method) + " is not allowed on " +
                                                      std::string(path) + "; use " + std::string(allowed)));
    response.headers.emplace_back("Allow", std::string(allowed));
    respond(std::move(response));
  };

  if (parts.size() == 1 && parts[0] == "metrics" && observability_.metrics) {
    if (!get) return method_not_allowed("GET");
    runtime_.FlushUsage();  // provisioned time up to now
    HttpResponse response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = observability_.metrics->Render(
        runtime_, observability_.costs ? observability_.costs() : std::vector<ModelCostTotals>{});
    return respond(std::move(response));
  }
  if (parts.size() == 2 && parts[0] == "v2" && parts[1] == "stats" && observability_.stats_json) {
    if (!get) return method_not_allowed("GET");
    runtime_.FlushUsage();
    return respond(Json(200, observability_.stats_json()));
  }
  if (parts.empty() || parts[0] != "v2")
    return respond(ErrorResponse(NotFound("no route for " + std::string(path) + "; the API is under /v2")));
  if (parts.size() == 1) {
    if (!get) return method_not_allowed("GET");
    return respond(
        Json(200, v2::EncodeServerMetadata(kServerName, kServerVersion, {"binary_tensor_data", "model_repository"})));
  }
  if (parts[1] == "health" && parts.size() == 3 && (parts[2] == "live" || parts[2] == "ready")) {
    if (!get) return method_not_allowed("GET");
    return respond(Json(200, std::string("{\"") + std::string(parts[2]) + "\":true}"));
  }
  if (parts[1] == "repository") {
    if (request.method != "POST") return method_not_allowed("POST");
    return respond(Repository(parts));
  }
  if (parts[1] == "models" && parts.size() >= 3) {
    const std::string model(parts[2]);
    size_t next = 3;
    if (parts.size() >= 5 && parts[3] == "versions") {
      if (parts[4] != kModelVersion)
        return respond(ErrorResponse(NotFound("model '" + model + "' has no version '" + std::string(parts[4]) +
                                              "'; the only version is " + std::string(kModelVersion))));
      next = 5;
    }
    const ModelConfig* config = runtime_.FindModel(model);
    std::string_view action = next < parts.size() ? parts[next] : "";
    if (next + 1 < parts.size() ||
        (action != "" && action != "ready" && action != "infer" && action != "status" && action != "warm" &&
         action != "config" && action != "stats"))
      return respond(ErrorResponse(NotFound("no route for " + std::string(path))));
    if (!config) return respond(ErrorResponse(NotFound("model '" + model + "' is not loaded")));
    if (action.empty()) {
      if (!get) return method_not_allowed("GET");
      return respond(Json(200, v2::EncodeModelMetadata(*config)));
    }
    if (action == "ready") {
      if (!get) return method_not_allowed("GET");
      auto status = runtime_.GetModelStatus(model);
      if (status.ok() && !status->last_start_error.empty())
        return respond(ErrorResponse(Unavailable("model '" + model + "' failed to start: " + status->last_start_error)));
      return respond(Json(200, "{\"name\":\"" + model + "\",\"ready\":true}"));
    }
    if (action == "status") {
      if (!get) return method_not_allowed("GET");
      // Reading smaps_rollup costs milliseconds per process on this one
      // thread; pollers that want only instance states pass memory=false.
      const bool with_memory = request.target.find("memory=false") == std::string::npos;
      return respond(Json(200, StatusJson(model, with_memory)));
    }
    if (action == "stats") {
      if (!get) return method_not_allowed("GET");
      if (!observability_.model_stats_json) return respond(ErrorResponse(NotFound("usage statistics are not kept")));
      runtime_.FlushUsage();
      auto stats = observability_.model_stats_json(model);
      if (!stats) return respond(ErrorResponse(NotFound("model '" + model + "' has no usage yet")));
      return respond(Json(200, std::move(*stats)));
    }
    if (action == "config") {
      if (get) return respond(Json(200, EncodeModelConfig(*config)));
      if (request.method != "PUT") return method_not_allowed("GET, PUT");
      return respond(PutConfig(model, request.body));
    }
    if (request.method != "POST") return method_not_allowed("POST");
    if (action == "warm") return respond(Warm(model, request.target));
    return Infer(model, std::move(request), std::move(respond));
  }
  respond(ErrorResponse(NotFound("no route for " + std::string(path))));
}

std::string V2Handler::StatusJson(const std::string& model, bool with_memory) {
  auto status = runtime_.GetModelStatus(model);
  if (!status.ok()) return v2::EncodeError(status.status().message());
  auto memory_json = [with_memory](int pid) {
    auto memory = pid > 0 && with_memory ? ReadProcessMemory(pid) : StatusOr<ProcessMemory>(NotFound(""));
    if (!memory.ok()) return std::string("\"rss_kb\":null,\"pss_kb\":null,\"private_kb\":null");
    return "\"rss_kb\":" + std::to_string(memory->rss_kb) + ",\"pss_kb\":" + std::to_string(memory->pss_kb) +
           ",\"private_kb\":" + std::to_string(memory->private_kb);
  };
  std::string json = "{\"name\":";
  v2::AppendJsonString(&json, status->name);
  json += ",\"start_path\":\"" + std::string(StartPathName(status->start_path)) + "\"";
  json += ",\"queued\":" + std::to_string(status->queued);
  char batching[256];
  std::snprintf(batching, sizeof(batching),
                ",\"batching\":{\"mode\":\"%s\",\"target_batch_size\":%d,\"cost_intercept_us\":%.1f,"
                "\"cost_per_row_us\":%.1f,\"arrival_rows_per_s\":%.1f}",
                status->batching.mode.c_str(), status->batching.target_batch_size, status->batching.cost_intercept_us,
                status->batching.cost_per_row_us, status->batching.arrival_rows_per_s);
  json += batching;
  json += ",\"last_start_error\":";
  if (status->last_start_error.empty()) {
    json += "null";
  } else {
    v2::AppendJsonString(&json, status->last_start_error);
  }
  json += ",\"template\":";
  if (status->spawner) {
    json += "{\"pid\":" + std::to_string(status->spawner->pid) +
            ",\"ready\":" + (status->spawner->ready ? "true," : "false,") + memory_json(status->spawner->pid) + "}";
  } else {
    json += "null";
  }
  json += ",\"instances\":[";
  for (size_t i = 0; i < status->instances.size(); ++i) {
    const InstanceStatus& instance = status->instances[i];
    static constexpr std::string_view kStates[] = {"starting", "idle", "busy", "stopping"};
    if (i) json += ',';
    json += "{\"id\":" + std::to_string(instance.id) + ",\"pid\":" + std::to_string(instance.pid) +
            ",\"state\":\"" + std::string(kStates[static_cast<int>(instance.state)]) +
            "\",\"in_flight\":" + std::to_string(instance.in_flight) + "," + memory_json(instance.pid) + "}";
  }
  json += "]}";
  return json;
}

HttpResponse V2Handler::Warm(const std::string& model, std::string_view target) {
  int instances = 1;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    std::string_view query = target.substr(q + 1);
    while (!query.empty()) {
      std::string_view pair = query.substr(0, query.find('&'));
      query.remove_prefix(std::min(query.size(), pair.size() + 1));
      if (!pair.starts_with("instances=")) continue;
      std::string_view value = pair.substr(10);
      auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), instances);
      if (err != std::errc() || end != value.data() + value.size() || instances < 0)
        return ErrorResponse(InvalidArgument("query parameter 'instances' must be a non-negative integer"));
    }
  }
  auto started = runtime_.Warm(model, instances);
  if (!started.ok()) return ErrorResponse(started.status());
  auto status = runtime_.GetModelStatus(model);
  return Json(200, "{\"name\":\"" + model + "\",\"requested\":" + std::to_string(instances) +
                       ",\"started\":" + std::to_string(*started) +
                       ",\"instances\":" + std::to_string(status.ok() ? status->instances.size() : 0) + "}");
}

HttpResponse V2Handler::PutConfig(const std::string& model, const std::string& body) {
  const ModelConfig* current = runtime_.FindModel(model);
  if (!current) return ErrorResponse(NotFound("model '" + model + "' is not loaded"));
  auto changed = ApplySettings(*current, body, "PUT /v2/models/" + model + "/config");
  if (!changed.ok()) return ErrorResponse(changed.status());
  if (Status updated = runtime_.UpdateModelConfig(changed.value()); !updated.ok()) return ErrorResponse(updated);
  return Json(200, EncodeModelConfig(*runtime_.FindModel(model)));
}

HttpResponse V2Handler::Repository(const std::vector<std::string_view>& parts) {
  if (repository_root_.empty()) return ErrorResponse(NotFound("this server has no model repository"));
  if (parts.size() == 3 && parts[2] == "index") {
    auto scan = ScanRepository(repository_root_);
    if (!scan.ok()) return ErrorResponse(scan.status());
    std::string json = "[";
    auto entry = [&](const std::string& name, bool ready, const std::string& reason) {
      if (json.size() > 1) json += ',';
      json += "{\"name\":";
      v2::AppendJsonString(&json, name);
      json += ",\"version\":\"1\",\"state\":\"";
      json += ready ? "READY" : "UNAVAILABLE";
      json += "\",\"reason\":";
      v2::AppendJsonString(&json, reason);
      json += '}';
    };
    std::vector<std::string> listed;
    for (const auto& model : scan->models) {
      entry(model.name, runtime_.FindModel(model.name) != nullptr, runtime_.FindModel(model.name) ? "" : "unloaded");
      listed.push_back(model.name);
    }
    for (const auto& error : scan->errors) {
      entry(error.model, runtime_.FindModel(error.model) != nullptr, error.status.message());
      listed.push_back(error.model);
    }
    for (const std::string& name : runtime_.ModelNames())  // loaded, then removed from disk
      if (std::find(listed.begin(), listed.end(), name) == listed.end()) entry(name, true, "");
    json += ']';
    return Json(200, json);
  }
  if (parts.size() == 5 && parts[2] == "models" && (parts[4] == "load" || parts[4] == "unload")) {
    const std::string model(parts[3]);
    if (model.find("..") != std::string::npos || model.front() == '.')
      return ErrorResponse(InvalidArgument("'" + model + "' is not a model name"));
    if (parts[4] == "unload") {
      if (Status removed = runtime_.RemoveModel(model); !removed.ok()) return ErrorResponse(removed);
      return Json(200, "{\"name\":\"" + model + "\",\"loaded\":false}");
    }
    auto config = LoadModelConfig(repository_root_ + "/" + model);
    if (!config.ok()) return ErrorResponse(config.status());
    if (runtime_.FindModel(model)) {
      if (Status removed = runtime_.RemoveModel(model); !removed.ok()) return ErrorResponse(removed);
    }
    if (Status added = runtime_.AddModel(config.value()); !added.ok()) return ErrorResponse(added);
    return Json(200, "{\"name\":\"" + model + "\",\"loaded\":true}");
  }
  return ErrorResponse(NotFound("no route for /" + [&] {
    std::string path;
    for (auto p : parts) path += std::string(p) + "/";
    return path;
  }()));
}

void V2Handler::Infer(const std::string& model, HttpRequest request, std::function<void(HttpResponse)> respond) {
  const ModelConfig& config = *runtime_.FindModel(model);
  auto parsed = v2::ParseInferRequest(request.body, request.inference_header_length);
  if (!parsed.ok()) return respond(ErrorResponse(parsed.status()));
  Status valid = v2::ValidateInferRequest(config, &parsed.value());
  if (!valid.ok()) return respond(ErrorResponse(valid));

  // A request may shorten its deadline, never extend it past the model's cap.
  auto deadline = policy::RequestDeadline(clock_.NowMicros(), config.timeout_ms, parsed->timeout_ms);
  if (!deadline.ok()) return respond(ErrorResponse(deadline.status()));

  std::vector<std::string> output_names;
  for (const auto& output : parsed->outputs) output_names.push_back(output.name);
  auto shared_request = std::make_shared<v2::InferRequest>(std::move(parsed).value());
  std::vector<Tensor> inputs = std::move(shared_request->inputs);
  runtime_.Infer(model, std::move(inputs), std::move(output_names), *deadline,
                 [model, shared_request, respond = std::move(respond)](InferOutcome outcome) {
                   if (!outcome.status.ok()) return respond(ErrorResponse(outcome.status));
                   v2::EncodedBody encoded = v2::EncodeInferResponse(model, *shared_request, outcome.outputs,
                                                                      TimingParameters(outcome.timing));
                   HttpResponse response;
                   response.body = std::move(encoded.body);
                   response.content_type = std::move(encoded.content_type);
                   if (encoded.header_length)
                     response.headers.emplace_back("Inference-Header-Content-Length",
                                                   std::to_string(*encoded.header_length));
                   response.headers.emplace_back("Server-Timing", ServerTiming(outcome.timing));
                   if (outcome.timing.cold_start)
                     response.headers.emplace_back(
                         "X-Thaw-Cold-Start", std::string(StartPathName(outcome.timing.start_path)) + ";" +
                                                  ColdStartFields(outcome.timing.cold, "=", ""));
                   respond(std::move(response));
                 });
}

}  // namespace thaw
