// V2Handler: the KServe v2 REST routes, independent of the HTTP library.
//   GET  /v2                                  server metadata
//   GET  /v2/health/live, /v2/health/ready    200 when live / ready (ready: the zygote settled,
//                                             Runtime::Ready, and with strict_readiness every model
//                                             able to serve at its normal cold start: none preparing,
//                                             none failed; else 400 with {"error", "models": [{"name",
//                                             "reason"}]}); ready's body carries the
//                                             usage log's health: {"ready":true,"usage_log":{"ok":..,
//                                             "error":..,"buffered":N,"dropped":N,"write_errors":N}}.
//                                             A failing usage log does not make ready 503: taking
//                                             every replica out of rotation on a full disk would turn
//                                             billing data at risk into an outage; records stay
//                                             buffered (bounded), drops are counted in /metrics
//                                             (thaw_usage_records_dropped_total) for alerting.
//   GET  /v2/models/{m}[/versions/{v}]        model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready  200 ready; 400 with the reason if it cannot serve now
//                                             (last start failed or timed out, no zygote yet): the
//                                             protocol's 4xx for "not ready", as Triton answers
//   POST /v2/models/{m}[/versions/{v}]/infer  inference (JSON or binary tensors; a raw binary body
//                                             with Inference-Header-Content-Length: 0; bodies may be
//                                             Content-Encoding gzip or deflate, and responses are
//                                             compressed as Accept-Encoding asks: http_server.h)
//   GET  /v2/models/{m}[/versions/{v}]/config Triton's model configuration (v2::EncodeTritonModelConfig)
//   GET  /v2/models/stats, /v2/models/{m}[/versions/{v}]/stats
//                                             Triton's statistics (server/inference_statistics.h)
//   GET  /v2/models/{m}/status                instances, template, RSS/PSS (thaw)
//   POST /v2/models/{m}/warm?instances=N      start instances ahead of traffic (thaw)
//   GET|PUT /v2/models/{m}/settings           serverless settings, changed while serving (thaw):
//                                             a PUT restarts only what its fields need
//                                             (settings/setting_changes.h). PUT changes survive a
//                                             repository load of the model as long as its config.json
//                                             is what it was at the (first) PUT; if the file changed
//                                             since, or the load carries its own config, the load's
//                                             config wins and the log says so (model_settings_reset).
//   POST /v2/repository/index                 models in the repository and their state (READY only if
//                                             the model can serve, else UNAVAILABLE with the reason);
//                                             body {"ready": true}: only the READY ones
//   POST /v2/repository/models/{m}/load       load (or reload) a model from the repository: answered
//                                             once the new version has loaded and warmed up; a bad
//                                             config is 400, a version that fails to load or to start
//                                             within start_timeout_ms is 503 and the old one keeps serving.
//                                             Body {"parameters": {"config": "<JSON text>"}} loads with
//                                             that config instead of the file's (thaw's config.json
//                                             format, or Triton's model configuration: LoadOverride)
//   POST /v2/repository/models/{m}/unload     unload a model
//   GET  /v2/models/{m}/usage, /v2/stats      usage and cost since start (thaw)
//   GET  /metrics                             Prometheus text format (thaw)
// /v2/health/ready is 200 once startup has settled and every model can
// serve (strict readiness, as Triton's default); else 400 naming the
// models that cannot, so a probe takes the replica out of rotation.
// Errors are {"error": "..."} with the status of the Status code (400, 404,
// 405, 429 with Retry-After, 500, 503, 504); with SetAccess, also
// 401/403/404/415 from access control (tokens, listeners, browser checks:
// server/auth.h). Every request gets exactly one response, also when the
// runtime fails it. Texts that reach a client
// (error bodies, the ready route, the repository index, /status) name
// models and repository-relative paths, never the host's absolute paths:
// the repository root and the run directory are cut from them (ClientText);
// server logs keep the absolute paths.
// Threading: like Runtime, the handler is called on the io_context thread
// and calls the runtime only there. With V2HandlerOptions::io set and
// offload_threads > 0 it owns a small thread pool that does the work that
// grows with the data, so that one big request never stalls small ones:
// decoding infer bodies of offload_min_bytes or more, encoding responses
// whose outputs are that large, and reading /status memory figures (cached
// per process for memory_reading_max_age). Results come back to the
// io_context thread by post; small requests stay inline on the loop.
// Destruction joins the pool; results posted to a stopped io_context are
// dropped with it.
#pragma once

#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/clock.h"
#include "policy/offload.h"
#include "protocol/v2.h"
#include "runtime/process_memory.h"
#include "runtime/runtime.h"
#include "server/auth.h"
#include "server/compression.h"
#include "server/inference_statistics.h"
#include "server/metrics.h"

namespace thaw {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // path and optional query
  std::string body;
  std::optional<size_t> inference_header_length;  // Inference-Header-Content-Length
  // Headers access control reads (server/auth.h); nullopt when absent.
  std::optional<std::string> authorization;
  std::optional<std::string> host;
  std::optional<std::string> origin;
  std::optional<std::string> content_type;
  std::optional<std::string> content_encoding;  // the body's coding (server/compression.h)
  std::optional<std::string> accept_encoding;   // codings the client takes for an infer response
  // Sent on by an edge thaw (`--upstream`, server/upstream_client.h): its
  // response says served_by "upstream".
  bool forwarded_by_edge = false;
};

// The header an edge thaw adds to the requests it forwards upstream.
inline constexpr char kForwardedByEdgeHeader[] = "Thaw-Forwarded-By-Edge";

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

HttpResponse ErrorResponse(const Status& status);

// An infer response's "parameters": flat scalars saying how the request was
// served (cold_start, start_path, cold_start_<part>_ms, queue_ms,
// batch_wait_ms, compute_ms, total_ms, batch_size, ...), one list for REST
// (TimingParameters, a JSON object) and gRPC (typed InferParameters).
struct ResponseParameter {
  struct Millis {
    Micros us;  // written as milliseconds with 3 decimals (a double over gRPC)
  };
  std::string name;
  std::variant<bool, int64_t, std::string_view, Millis> value;
};
std::vector<ResponseParameter> TimingParameterList(const InvocationTiming& timing);
std::string TimingParameters(const InvocationTiming& timing);

// Where the observability routes get their data; a route whose source is
// empty answers 404. Not owned; must outlive the handler.
struct Observability {
  PrometheusMetrics* metrics = nullptr;
  std::function<std::vector<ModelCostTotals>()> costs;  // cumulative cost per model, for /metrics
  std::function<std::string()> stats_json;             // GET /v2/stats
  // GET /v2/models/{m}/usage; nullopt if the model has no usage yet.
  std::function<std::optional<std::string>(const std::string& model)> model_stats_json;
  // The usage log's health for /metrics and /v2/health/ready; nullopt (or empty) without a log.
  std::function<std::optional<metering::UsageLogHealth>()> usage_log;
  InferenceStatistics* inference_statistics = nullptr;  // GET /v2/models[/{m}]/stats (Triton's)
};

class UpstreamClient;  // server/upstream_client.h

struct V2HandlerOptions {
  // The io_context the handler runs on, where off-loop results are posted
  // back; null keeps everything on the loop.
  boost::asio::io_context* io = nullptr;
  int offload_threads = 2;                   // 0: everything on the loop
  size_t offload_min_bytes = 64 << 10;       // smaller bodies and outputs stay inline
  std::chrono::milliseconds memory_reading_max_age{1000};  // /status reads a process's memory at most this often
  size_t max_inflated_body_bytes = 256u << 20;  // a compressed body may inflate to at most this (HttpServerOptions' cap)
  // /v2/health/ready also needs every model able to serve now at its normal
  // cold start (Triton's default, --strict-readiness): none preparing its
  // artifact, none whose start failed; else 400 with {"error", "models":
  // [{"name", "reason"}]}. false: ready once startup has settled, whatever
  // one model's state (for replicas whose models fail independently).
  bool strict_readiness = true;
  // Edge offload (`thaw serve --upstream URL`): models not deployed here, and
  // infer requests the offload policy (policy/offload.h) predicts would miss
  // their budget here or that the full queue would refuse, go to this
  // upstream thaw; null: everything is answered here. Outlives the handler.
  UpstreamClient* upstream = nullptr;
};

class V2Handler {
 public:
  // `repository_root` is the directory the repository routes load from.
  V2Handler(Runtime& runtime, const Clock& clock, std::string repository_root = "", Observability observability = {},
            V2HandlerOptions options = {});
  ~V2Handler();

  // Checks every request against `access` (tokens, browser safety) and
  // answers only the routes of `routes` (server/auth.h). Without this call
  // nothing is checked. `access` is not owned and must outlive the handler.
  void SetAccess(const AccessPolicy* access, RouteSet routes) {
    access_ = access;
    routes_ = routes;
  }

  void Handle(HttpRequest request, std::function<void(HttpResponse)> respond);

  // The infer route's work for a request decoded elsewhere (the gRPC
  // service): the token check of POST /v2/models/{m}/infer (no browser
  // checks: no browser reaches it), then what that route does -- validation
  // against the model (inputs sorted into config order), the deadline, the
  // runtime, classification. `done` runs once, on the io_context thread;
  // call on that thread.
  struct TensorsResult {
    int http_status = 200;                      // as the REST route would answer
    std::shared_ptr<v2::InferRequest> request;  // as validated; null when refused before validation
    InferOutcome outcome;                       // outcome.status says why when http_status != 200
  };
  using TensorsDone = std::function<void(TensorsResult)>;
  // `request` may be a decoding error: it is answered after the token and
  // model checks, in the REST route's order.
  void InferTensors(const std::string& model, StatusOr<v2::InferRequest> request,
                    std::optional<std::string> authorization, TensorsDone done);

  // Calls `done` (on the io_context thread) once no work is on the pool:
  // for a shutdown after Runtime::Drain, so that requests being decoded
  // and responses being encoded are still answered.
  void Drain(std::function<void()> done);

 private:
  using Respond = std::function<void(HttpResponse)>;
  void Infer(const std::string& model, HttpRequest request, Respond respond);
  // Validates a decoded request against the model as it is now and runs it.
  void RunInfer(const std::string& model, StatusOr<v2::InferRequest> parsed, Micros arrived_us,
                ContentCoding response_coding, std::string_view served_by, Respond respond);
  // Edge offload (options_.upstream): the request to the upstream, counted by cause.
  void ForwardUpstream(const std::string& model, HttpRequest request, std::string cause, Respond respond);
  policy::OffloadObservation ObserveForOffload(const std::string& model) const;
  // Validation, deadline, runtime and classification; `done` gets the
  // validated request (null if it failed before) and the outcome.
  using ExecuteDone = std::function<void(std::shared_ptr<v2::InferRequest>, InferOutcome)>;
  void Execute(const std::string& model, StatusOr<v2::InferRequest> parsed, Micros arrived_us, ExecuteDone done);
  void ServeStatus(const std::string& model, bool with_memory, Respond respond);
  std::string StatusJson(const ModelStatus& status, bool with_memory);
  // Memory of `pid`, read at most once per memory_reading_max_age; any thread.
  StatusOr<ProcessMemory> CachedMemory(int pid);
  // Runs `work` on the pool; `work` must end with one OnLoop call, which
  // runs its function on the io_context thread.
  void OffLoop(std::function<void()> work);
  void OnLoop(std::function<void()> work);
  bool offloads() const { return pool_ != nullptr; }
  HttpResponse Warm(const std::string& model, std::string_view target);
  HttpResponse PutSettings(const std::string& model, const std::string& body);
  HttpResponse Repository(const std::vector<std::string_view>& parts, const std::string& body);
  void Load(const std::string& model, const std::string& body, std::function<void(HttpResponse)> respond);
  // Every loaded model that is not ready now, with why (Runtime::ModelNotReadyReason).
  struct NotReadyModel {
    std::string name;
    std::string reason;
  };
  std::vector<NotReadyModel> NotReadyModels() const;
  // `text` with the server's absolute paths cut: "<root>/fraud/config.json" -> "fraud/config.json".
  std::string ClientText(std::string text) const;
  // Prefixes to cut, longest first, each with what replaces it.
  static std::vector<std::pair<std::string, std::string>> HostPaths(const std::string& repository_root,
                                                                    const std::string& run_dir);

  Runtime& runtime_;
  const Clock& clock_;
  std::string repository_root_;
  // PUT settings bodies per model, replayed on a repository load while the
  // model's config.json is still the text it was at the first of them.
  struct PutSettingsHistory {
    std::string config_json_at_put;  // empty: the file could not be read then
    std::vector<std::string> bodies;  // in the order applied
  };
  std::unordered_map<std::string, PutSettingsHistory> put_settings_;
  Observability observability_;
  std::vector<std::pair<std::string, std::string>> host_paths_;
  V2HandlerOptions options_;
  // Edge offload: each model's mean execution here, and requests sent upstream by reason.
  std::unordered_map<std::string, Micros> execution_mean_us_;
  std::unordered_map<std::string, std::unordered_map<std::string, int64_t>> sent_upstream_;
  std::unique_ptr<boost::asio::thread_pool> pool_;
  int offloaded_ = 0;                  // OffLoop calls whose OnLoop has not run; io thread only
  std::function<void()> drained_;      // Drain's callback while waiting
  struct MemoryReading {
    Micros read_at_us = 0;
    StatusOr<ProcessMemory> memory;
  };
  std::mutex memory_mutex_;
  std::unordered_map<int, MemoryReading> memory_readings_;  // by pid; guarded by memory_mutex_
  const AccessPolicy* access_ = nullptr;
  RouteSet routes_ = RouteSet::kAll;
};

}  // namespace thaw
