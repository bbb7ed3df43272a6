#include "server/v2_handler.h"

#include <cstdio>
#include <string_view>

#include "protocol/v2.h"

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

std::string Ms(Micros us) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", static_cast<double>(us) / kMicrosPerMilli);
  return buf;
}

std::string TimingParameters(const InvocationTiming& t) {
  std::string json = "{\"cold_start\":";
  json += t.cold_start ? "true" : "false";
  if (t.cold_start) json += ",\"instance_start_ms\":" + Ms(t.instance_start_us);
  json += ",\"queue_ms\":" + Ms(t.queue_us);
  json += ",\"compute_ms\":" + Ms(t.compute_us);
  json += ",\"total_ms\":" + Ms(t.total_us);
  json += ",\"instance\":" + std::to_string(t.instance_id);
  json += '}';
  return json;
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

  if (parts.empty() || parts[0] != "v2")
    return respond(ErrorResponse(NotFound("no route for " + std::string(path) + "; the API is under /v2")));
  if (parts.size() == 1) {
    if (!get) return method_not_allowed("GET");
    return respond(Json(200, v2::EncodeServerMetadata(kServerName, kServerVersion, {"binary_tensor_data"})));
  }
  if (parts[1] == "health" && parts.size() == 3 && (parts[2] == "live" || parts[2] == "ready")) {
    if (!get) return method_not_allowed("GET");
    return respond(Json(200, std::string("{\"") + std::string(parts[2]) + "\":true}"));
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
    if (next + 1 < parts.size() || (action != "" && action != "ready" && action != "infer"))
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
    if (request.method != "POST") return method_not_allowed("POST");
    return Infer(model, std::move(request), std::move(respond));
  }
  respond(ErrorResponse(NotFound("no route for " + std::string(path))));
}

void V2Handler::Infer(const std::string& model, HttpRequest request, std::function<void(HttpResponse)> respond) {
  const ModelConfig& config = *runtime_.FindModel(model);
  auto parsed = v2::ParseInferRequest(request.body, request.inference_header_length);
  if (!parsed.ok()) return respond(ErrorResponse(parsed.status()));
  Status valid = v2::ValidateInferRequest(config, &parsed.value());
  if (!valid.ok()) return respond(ErrorResponse(valid));

  // A request may shorten its deadline, never extend it past the model's cap.
  int64_t timeout_ms = config.timeout_ms;
  if (parsed->timeout_ms) {
    if (*parsed->timeout_ms <= 0)
      return respond(ErrorResponse(InvalidArgument("parameter 'timeout_ms' must be a positive integer")));
    timeout_ms = std::min(timeout_ms, *parsed->timeout_ms);
  }
  const Micros deadline = clock_.NowMicros() + timeout_ms * kMicrosPerMilli;

  std::vector<std::string> output_names;
  for (const auto& output : parsed->outputs) output_names.push_back(output.name);
  auto shared_request = std::make_shared<v2::InferRequest>(std::move(parsed).value());
  std::vector<Tensor> inputs = std::move(shared_request->inputs);
  runtime_.Infer(model, std::move(inputs), std::move(output_names), deadline,
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
                   if (outcome.timing.cold_start) response.headers.emplace_back("X-Thaw-Cold-Start", "true");
                   respond(std::move(response));
                 });
}

}  // namespace thaw
