// V2Handler: the KServe v2 REST routes, independent of the HTTP library.
//   GET  /v2                                  server metadata
//   GET  /v2/health/live, /v2/health/ready    200 when live / ready
//   GET  /v2/models/{m}[/versions/{v}]        model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready  200 ready, 503 if it cannot start
//   POST /v2/models/{m}[/versions/{v}]/infer  inference (JSON or binary tensors)
//   GET  /v2/models/{m}/status                instances, template, RSS/PSS (thaw)
//   POST /v2/models/{m}/warm?instances=N      start instances ahead of traffic (thaw)
//   GET|PUT /v2/models/{m}/config             serverless settings, changed while serving (thaw)
//   POST /v2/repository/index                 models in the repository and their state
//   POST /v2/repository/models/{m}/load       load (or reload) a model from the repository
//   POST /v2/repository/models/{m}/unload     unload a model
//   GET  /v2/models/{m}/stats, /v2/stats      usage and cost since start (thaw)
//   GET  /metrics                             Prometheus text format (thaw)
// Errors are {"error": "..."} with the status of the Status code (400, 404,
// 405, 429 with Retry-After, 503, 504). Every request gets exactly one
// response, also when the runtime fails it.
// Threading: like Runtime, everything runs on the io_context thread.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "runtime/runtime.h"
#include "server/metrics.h"

namespace thaw {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and optional query
  std::string body;
  std::optional<size_t> inference_header_length;  // Inference-Header-Content-Length
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

HttpResponse ErrorResponse(const Status& status);

// Where the observability routes get their data; a route whose source is
// empty answers 404. Not owned; must outlive the handler.
struct Observability {
  PrometheusMetrics* metrics = nullptr;
  std::function<std::vector<ModelCostTotals>()> costs;  // cumulative cost per model, for /metrics
  std::function<std::string()> stats_json;             // GET /v2/stats
  // GET /v2/models/{m}/stats; nullopt if the model has no usage yet.
  std::function<std::optional<std::string>(const std::string& model)> model_stats_json;
};

class V2Handler {
 public:
  // `repository_root` is the directory the repository routes load from.
  V2Handler(Runtime& runtime, const Clock& clock, std::string repository_root = "", Observability observability = {})
      : runtime_(runtime),
        clock_(clock),
        repository_root_(std::move(repository_root)),
        observability_(std::move(observability)) {}

  void Handle(HttpRequest request, std::function<void(HttpResponse)> respond);

 private:
  void Infer(const std::string& model, HttpRequest request, std::function<void(HttpResponse)> respond);
  std::string StatusJson(const std::string& model, bool with_memory);
  HttpResponse Warm(const std::string& model, std::string_view target);
  HttpResponse PutConfig(const std::string& model, const std::string& body);
  HttpResponse Repository(const std::vector<std::string_view>& parts);

  Runtime& runtime_;
  const Clock& clock_;
  std::string repository_root_;
  Observability observability_;
};

}  // namespace thaw
