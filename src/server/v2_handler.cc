#include "server/v2_handler.h"

#include "server/upstream_client.h"

#include "base/json_writer.h"
#include "base/log.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <utility>

#include "json/object_fields.h"
#include "server/compression.h"
#include "policy/admission.h"
#include "protocol/v2.h"
#include "cgroup/memory_cgroup.h"
#include "runtime/process_memory.h"

namespace thaw {
namespace {

constexpr std::string_view kServerName = "thaw";
constexpr std::string_view kServerVersion = "0.1.0";
constexpr std::string_view kModelVersion = "1";

// The cold start's parts as Server-Timing entries: "queue=1.234,spawn=...".
std::string ColdStartServerTiming(const ColdStartBreakdown& c) {
  std::string out;
  for (const auto& [name, us] : ColdStartParts(c)) {
    if (!out.empty()) out += ',';
    out += name;
    out += '=';
    out += MillisText(us);
  }
  return out;
}

// A file's whole text; empty if it cannot be read.
std::string FileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return in ? std::string(std::istreambuf_iterator<char>(in), {}) : std::string();
}

}  // namespace

// The response's parameters: flat scalars only, as the protocol allows
// (cold_start_total_ms, cold_start_spawn_ms, ...; not an object).
std::vector<ResponseParameter> TimingParameterList(const InvocationTiming& t) {
  using P = ResponseParameter;
  std::vector<P> list;
  list.reserve(16);
  list.push_back({"cold_start", t.cold_start});
  if (t.cold_start) {
    list.push_back({"start_path", StartPathName(t.start_path)});
    list.push_back({"start_level", StartLevelName(t.start_level)});
    for (const auto& [name, us] : ColdStartParts(t.cold))
      list.push_back({"cold_start_" + std::string(name) + "_ms", P::Millis{us}});
  }
  list.push_back({"queue_ms", P::Millis{t.queue_us}});
  list.push_back({"batch_wait_ms", P::Millis{t.batch_wait_us}});
  list.push_back({"compute_ms", P::Millis{t.compute_us}});
  list.push_back({"total_ms", P::Millis{t.total_us}});
  list.push_back({"batch_size", int64_t{t.batch_size}});
  list.push_back({"batch_requests", int64_t{t.batch_requests}});
  list.push_back({"instance", static_cast<int64_t>(t.instance_id)});
  if (!t.served_by.empty()) list.push_back({"served_by", t.served_by});
  return list;
}

std::string TimingParameters(const InvocationTiming& t) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  for (const ResponseParameter& p : TimingParameterList(t)) {
    w.Key(p.name);
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, ResponseParameter::Millis>) w.Raw(MillisText(v.us));
          else if constexpr (std::is_same_v<V, std::string_view>) w.String(v);
          else if constexpr (std::is_same_v<V, bool>) w.Bool(v);
          else w.Int(v);
        },
        p.value);
  }
  w.EndObject();
  return json;
}

namespace {

// W3C Server-Timing: the same parts, so browser and curl users see them.
std::string ServerTiming(const InvocationTiming& t) {
  return "queue;dur=" + MillisText(t.queue_us) + ", batch_wait;dur=" + MillisText(t.batch_wait_us) +
         ", compute;dur=" + MillisText(t.compute_us) + ", total;dur=" + MillisText(t.total_us);
}

// {"name": model, key: value}: the model name escaped like any string.
std::string NameJson(std::string_view model, std::string_view key, bool value) {
  std::string json;
  JsonWriter(&json).BeginObject().Field("name", model).Field(key, value).EndObject();
  return json;
}

std::string ObjectJson(std::initializer_list<std::pair<std::string, bool>> fields) {
  std::string json;
  JsonWriter w(&json);
  w.BeginObject();
  for (const auto& [key, value] : fields) w.Field(key, value);
  w.EndObject();
  return json;
}

HttpResponse Json(int status, std::string body) {
  HttpResponse response;
  response.status = status;
  response.body = std::move(body);
  return response;
}

}  // namespace

V2Handler::V2Handler(Runtime& runtime, const Clock& clock, std::string repository_root, Observability observability,
                     V2HandlerOptions options)
    : runtime_(runtime),
      clock_(clock),
      repository_root_(std::move(repository_root)),
      observability_(std::move(observability)),
      host_paths_(HostPaths(repository_root_, runtime_.run_dir())),
      options_(options) {
  if (options_.io && options_.offload_threads > 0)
    pool_ = std::make_unique<boost::asio::thread_pool>(static_cast<size_t>(options_.offload_threads));
}

V2Handler::~V2Handler() {
  if (pool_) pool_->join();
}

void V2Handler::OffLoop(std::function<void()> work) {
  ++offloaded_;
  boost::asio::post(*pool_, std::move(work));
}

void V2Handler::OnLoop(std::function<void()> work) {
  boost::asio::post(*options_.io, [this, work = std::move(work)] {
    work();
    if (--offloaded_ == 0 && drained_) std::exchange(drained_, nullptr)();
  });
}

void V2Handler::Drain(std::function<void()> done) {
  if (offloaded_ == 0) return done();
  drained_ = std::move(done);
}

HttpResponse ErrorResponse(const Status& status) {
  HttpResponse response = Json(HttpStatusFor(status.code()), v2::EncodeError(status.message()));
  if (status.code() == StatusCode::kResourceExhausted || status.code() == StatusCode::kUnavailable)
    response.headers.emplace_back("Retry-After", "1");
  return response;
}

std::vector<std::pair<std::string, std::string>> V2Handler::HostPaths(const std::string& repository_root,
                                                                      const std::string& run_dir) {
  std::vector<std::pair<std::string, std::string>> paths;
  auto add = [&](const std::string& dir, const std::string& name) {
    if (dir.empty()) return;
    std::error_code ec;
    std::vector<std::filesystem::path> forms = {std::filesystem::absolute(dir, ec).lexically_normal()};
    if (auto canonical = std::filesystem::weakly_canonical(dir, ec); !ec) forms.push_back(canonical);
    for (std::filesystem::path form : forms) {
      std::string text = form.string();
      while (text.size() > 1 && text.back() == '/') text.pop_back();
      if (text.size() <= 1) continue;  // never cut "/"
      paths.emplace_back(text + "/", "");  // "<dir>/fraud/config.json" -> "fraud/config.json"
      paths.emplace_back(text, name);
    }
  };
  add(repository_root, "<repository>");
  add(run_dir, "<run-dir>");
  std::stable_sort(paths.begin(), paths.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  return paths;
}

std::string V2Handler::ClientText(std::string text) const {
  for (const auto& [path, replacement] : host_paths_) {
    for (size_t at = text.find(path); at != std::string::npos; at = text.find(path, at + replacement.size()))
      text.replace(at, path.size(), replacement);
  }
  return text;
}

void V2Handler::Handle(HttpRequest request, std::function<void(HttpResponse)> respond) {
  // Error bodies may carry messages from below (config parsing, worker
  // start errors) with host paths: cut them here, once, for every route.
  respond = [this, respond = std::move(respond)](HttpResponse response) {
    if (response.status >= 400) response.body = ClientText(std::move(response.body));
    respond(std::move(response));
  };
  if (access_) {
    if (request.origin && access_->IsAllowedOrigin(*request.origin)) {
      if (request.method == "OPTIONS") {  // a CORS preflight from an allowed page
        HttpResponse response = Json(204, "");
        response.headers = AccessPolicy::PreflightHeaders(*request.origin);
        return respond(std::move(response));
      }
      respond = [respond = std::move(respond), cors = AccessPolicy::CorsHeaders(*request.origin)](HttpResponse response) {
        response.headers.insert(response.headers.end(), cors.begin(), cors.end());
        respond(std::move(response));
      };
    }
    auto refused = access_->Check({.method = request.method,
                                   .target = request.target,
                                   .authorization = request.authorization,
                                   .host = request.host,
                                   .origin = request.origin,
                                   .content_type = request.content_type},
                                  routes_);
    if (refused) {
      HttpResponse response = Json(refused->status, v2::EncodeError(refused->message));
      response.headers = std::move(refused->headers);
      return respond(std::move(response));
    }
  }
  std::string_view path = request.target;
  path = path.substr(0, path.find('?'));
  const std::vector<std::string_view> parts = SplitPath(path);
  // Compressed bodies: infer inflates while decoding (off the loop when
  // large); other routes' bodies are small JSON, inflated here.
  auto coding = ParseContentEncoding(request.content_encoding);
  if (!coding.ok()) {
    HttpResponse response = Json(415, v2::EncodeError(coding.status().message()));
    response.headers.emplace_back("Accept-Encoding", "gzip, deflate");
    return respond(std::move(response));
  }
  if (*coding != ContentCoding::kIdentity && (parts.empty() || parts.back() != "infer")) {
    auto body = Decompress(request.body, *coding, options_.max_inflated_body_bytes);
    if (!body.ok()) return respond(ErrorResponse(body.status()));
    request.body = std::move(body).value();
    request.content_encoding.reset();
  }
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
        runtime_, observability_.costs ? observability_.costs() : std::vector<ModelCostTotals>{},
        observability_.usage_log ? observability_.usage_log() : std::nullopt);
    if (options_.upstream) {  // edge offload: what went upstream, by model and reason
      response.body += "# HELP thaw_upstream_requests_total Requests this edge server sent to its upstream.\n"
                       "# TYPE thaw_upstream_requests_total counter\n";
      for (const auto& [model, reasons] : sent_upstream_)
        for (const auto& [reason, count] : reasons)
          response.body += "thaw_upstream_requests_total{model=" + JsonString(model) + ",reason=" + JsonString(reason) +
                           "} " + std::to_string(count) + "\n";
    }
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
    return respond(Json(200, v2::EncodeServerMetadata(kServerName, kServerVersion,
                                                      {"binary_tensor_data", "classification", "model_repository",
                                                       "model_configuration", "statistics"})));
  }
  if (parts[1] == "health" && parts.size() == 3 && (parts[2] == "live" || parts[2] == "ready")) {
    if (!get) return method_not_allowed("GET");
    // Not ready is a 4xx, as the protocol and Triton answer it; the body
    // says why: {"error": "...", "models": [{"name", "reason"}...]}.
    const bool settled = parts[2] != "ready" || runtime_.Ready();
    std::vector<NotReadyModel> not_ready;
    if (parts[2] == "ready" && options_.strict_readiness) not_ready = NotReadyModels();
    if (!settled || !not_ready.empty()) {
      std::string message = settled ? "not ready: " : "not ready: the zygote is still starting";
      if (!not_ready.empty()) {
        message += (settled ? "" : "; ") + std::to_string(not_ready.size()) + " model(s) cannot serve now: ";
        for (size_t i = 0; i < not_ready.size(); ++i) message += (i ? "; " : "") + not_ready[i].reason;
      }
      std::string json;
      JsonWriter w(&json);
      w.BeginObject().Field("error", message).Key("models").BeginArray();
      for (const NotReadyModel& m : not_ready) w.BeginObject().Field("name", m.name).Field("reason", m.reason).EndObject();
      w.EndArray().EndObject();
      return respond(Json(400, std::move(json)));
    }
    if (parts[2] == "ready" && observability_.usage_log) {
      if (auto log = observability_.usage_log()) {
        std::string json;
        JsonWriter w(&json);
        w.BeginObject().Field("ready", true).Key("usage_log").BeginObject().Field("ok", log->ok).Key("error");
        if (log->ok) w.Null();
        else w.String(log->error);
        w.Field("buffered", log->buffered_records).Field("dropped", log->dropped_records);
        w.Field("write_errors", log->write_errors).EndObject().EndObject();
        return respond(Json(200, std::move(json)));
      }
    }
    return respond(Json(200, ObjectJson({{std::string(parts[2]), true}})));
  }
  if (parts[1] == "repository") {
    if (request.method != "POST") return method_not_allowed("POST");
    if (parts.size() == 5 && parts[2] == "models" && parts[4] == "load")
      return Load(std::string(parts[3]), request.body, std::move(respond));
    return respond(Repository(parts, request.body));
  }
  if (parts[1] == "models" && parts.size() == 3 && parts[2] == "stats") {  // every model's, Triton's
    if (!get) return method_not_allowed("GET");
    if (!observability_.inference_statistics) return respond(ErrorResponse(NotFound("statistics are not kept")));
    return respond(Json(200, observability_.inference_statistics->Json(runtime_.ModelNames())));
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
         action != "config" && action != "settings" && action != "stats" && action != "usage"))
      return respond(ErrorResponse(NotFound("no route for " + std::string(path))));
    if (!config && options_.upstream && !request.forwarded_by_edge)  // not deployed here: the upstream answers
      return ForwardUpstream(model, std::move(request), "not_deployed", std::move(respond));
    if (!config) return respond(ErrorResponse(NotFound("model '" + model + "' is not loaded")));
    if (action.empty()) {
      if (!get) return method_not_allowed("GET");
      return respond(Json(200, v2::EncodeModelMetadata(*config)));
    }
    if (action == "ready") {
      if (!get) return method_not_allowed("GET");
      auto reason = runtime_.ModelNotReadyReason(model);
      // 4xx means "not ready" in the protocol (Triton: 400); the reason says why.
      if (reason.ok() && !reason->empty()) return respond(Json(400, v2::EncodeError(*reason)));
      return respond(Json(200, NameJson(model, "ready", true)));
    }
    if (action == "status") {
      if (!get) return method_not_allowed("GET");
      // Reading smaps_rollup costs milliseconds per process on this one
      // thread; pollers that want only instance states pass memory=false.
      const bool with_memory = request.target.find("memory=false") == std::string::npos;
      return ServeStatus(model, with_memory, std::move(respond));
    }
    if (action == "stats") {
      if (!get) return method_not_allowed("GET");
      if (!observability_.inference_statistics) return respond(ErrorResponse(NotFound("statistics are not kept")));
      return respond(Json(200, observability_.inference_statistics->Json({model})));
    }
    if (action == "usage") {
      if (!get) return method_not_allowed("GET");
      if (!observability_.model_stats_json) return respond(ErrorResponse(NotFound("usage statistics are not kept")));
      runtime_.FlushUsage();
      auto stats = observability_.model_stats_json(model);
      if (!stats) return respond(ErrorResponse(NotFound("model '" + model + "' has no usage yet")));
      return respond(Json(200, std::move(*stats)));
    }
    if (action == "config") {
      if (get) return respond(Json(200, v2::EncodeTritonModelConfig(*config)));
      HttpResponse response = Json(405, v2::EncodeError(
          request.method + " is not allowed on " + std::string(path) +
          ": it is Triton's read-only model configuration; change thaw's settings with PUT /v2/models/" + model +
          "/settings"));
      response.headers.emplace_back("Allow", "GET");
      return respond(std::move(response));
    }
    if (action == "settings") {
      if (get) return respond(Json(200, EncodeModelConfig(*config)));
      if (request.method != "PUT") return method_not_allowed("GET, PUT");
      return respond(PutSettings(model, request.body));
    }
    if (request.method != "POST") return method_not_allowed("POST");
    if (action == "warm") return respond(Warm(model, request.target));
    return Infer(model, std::move(request), std::move(respond));
  }
  respond(ErrorResponse(NotFound("no route for " + std::string(path))));
}

void V2Handler::ServeStatus(const std::string& model, bool with_memory, Respond respond) {
  auto status = runtime_.GetModelStatus(model);
  if (!status.ok()) return respond(Json(200, v2::EncodeError(status.status().message())));
  if (!with_memory || !offloads()) return respond(Json(200, ClientText(StatusJson(*status, with_memory))));
  // Reading smaps_rollup costs milliseconds per process: off the loop.
  auto shared = std::make_shared<ModelStatus>(std::move(status).value());
  OffLoop([this, shared, respond = std::move(respond)] {
    auto json = std::make_shared<std::string>(ClientText(StatusJson(*shared, true)));
    OnLoop([json, respond] { respond(Json(200, std::move(*json))); });
  });
}

StatusOr<ProcessMemory> V2Handler::CachedMemory(int pid) {
  const Micros now = clock_.NowMicros();
  const Micros max_age_us = std::chrono::duration_cast<std::chrono::microseconds>(options_.memory_reading_max_age).count();
  {
    std::lock_guard lock(memory_mutex_);
    auto it = memory_readings_.find(pid);
    if (it != memory_readings_.end() && now - it->second.read_at_us < max_age_us)
      return it->second.memory;
  }
  StatusOr<ProcessMemory> memory = ReadProcessMemory(pid);
  std::lock_guard lock(memory_mutex_);
  if (memory_readings_.size() > 4096) memory_readings_.clear();  // pids of processes long gone
  memory_readings_.insert_or_assign(pid, MemoryReading{now, memory});
  return memory;
}

std::string V2Handler::StatusJson(const ModelStatus& status_value, bool with_memory) {
  const ModelStatus* status = &status_value;
  std::string json;
  JsonWriter w(&json);
  // A process's memory (cached /proc readings), its memory cgroup's limit
  // and charge, and what its sandbox applied (null until it is ready).
  auto process_fields = [&](int pid, const std::string& cgroup_dir, const std::optional<sandbox::SandboxReport>& report) {
    auto memory = pid > 0 && with_memory ? CachedMemory(pid) : StatusOr<ProcessMemory>(NotFound(""));
    for (const auto& [key, value] : {std::pair<std::string_view, int64_t>{"rss_kb", memory.ok() ? memory->rss_kb : 0},
                                     {"pss_kb", memory.ok() ? memory->pss_kb : 0},
                                     {"private_kb", memory.ok() ? memory->private_kb : 0}}) {
      if (memory.ok()) w.Field(key, value);
      else w.Key(key).Null();
    }
    auto limit = !cgroup_dir.empty() ? cgroup::MemoryLimitBytes(cgroup_dir) : StatusOr<int64_t>(NotFound(""));
    auto usage = !cgroup_dir.empty() && with_memory ? cgroup::MemoryUsageBytes(cgroup_dir) : StatusOr<int64_t>(NotFound(""));
    if (limit.ok()) w.Field("memory_limit_bytes", *limit);
    else w.Key("memory_limit_bytes").Null();
    if (usage.ok()) w.Field("memory_usage_bytes", *usage);
    else w.Key("memory_usage_bytes").Null();
    w.Key("sandbox");
    if (report) w.Raw(report->ToJson());
    else w.Null();
  };
  auto tenth = [](double v) { return std::round(v * 10) / 10; };
  w.BeginObject().Field("name", status->name).Field("start_path", StartPathName(status->start_path));
  w.Field("queued", status->queued).Key("batching").BeginObject();
  w.Field("mode", status->batching.mode).Field("target_batch_size", status->batching.target_batch_size);
  w.Field("cost_intercept_us", tenth(status->batching.cost_intercept_us));
  w.Field("cost_per_row_us", tenth(status->batching.cost_per_row_us));
  w.Field("arrival_rows_per_s", tenth(status->batching.arrival_rows_per_s)).EndObject();
  w.Field("template_state", status->template_state).Field("prepared", status->prepared);
  w.Field("preparing", status->preparing);
  w.Key("memory_charge_mb").BeginObject().Field("instance", status->instance_charge_mb);
  w.Field("template", status->template_charge_mb).EndObject();
  w.Key("last_start_error");
  if (status->last_start_error.empty()) w.Null();
  else w.String(status->last_start_error);
  w.Key("template");
  if (status->spawner) {
    w.BeginObject().Field("pid", status->spawner->pid).Field("ready", status->spawner->ready);
    process_fields(status->spawner->pid, status->spawner->cgroup_dir, status->spawner->sandbox);
    w.EndObject();
  } else {
    w.Null();
  }
  w.Key("instances").BeginArray();
  for (const InstanceStatus& instance : status->instances) {
    static constexpr std::string_view kStates[] = {"starting", "idle", "busy", "stopping"};
    w.BeginObject().Field("id", instance.id).Field("pid", instance.pid);
    w.Field("state", kStates[static_cast<int>(instance.state)]).Field("in_flight", instance.in_flight);
    process_fields(instance.pid, instance.cgroup_dir, instance.sandbox);
    w.EndObject();
  }
  w.EndArray().EndObject();
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
  std::string json;
  JsonWriter w(&json);
  w.BeginObject().Field("name", model).Field("requested", instances).Field("started", *started);
  w.Field("instances", status.ok() ? status->instances.size() : 0).EndObject();
  return Json(200, std::move(json));
}

HttpResponse V2Handler::PutSettings(const std::string& model, const std::string& body) {
  const ModelConfig* current = runtime_.FindModel(model);
  if (!current) return ErrorResponse(NotFound("model '" + model + "' is not loaded"));
  auto changed = ApplySettings(*current, body, "PUT /v2/models/" + model + "/settings");
  if (!changed.ok()) return ErrorResponse(changed.status());
  if (Status updated = runtime_.UpdateModelConfig(changed.value()); !updated.ok()) return ErrorResponse(updated);
  if (!repository_root_.empty()) {
    auto [history, first] = put_settings_.try_emplace(model);
    if (first) history->second.config_json_at_put = FileText(current->directory + "/config.json");
    history->second.bodies.push_back(body);
  }
  return Json(200, EncodeModelConfig(*runtime_.FindModel(model)));
}

std::vector<V2Handler::NotReadyModel> V2Handler::NotReadyModels() const {
  std::vector<NotReadyModel> not_ready;
  for (const std::string& name : runtime_.ModelNames()) {
    auto reason = runtime_.ModelNotReadyReason(name);
    if (reason.ok() && !reason->empty()) not_ready.push_back({name, std::move(reason).value()});
  }
  return not_ready;
}

namespace {

// The index's body: empty, or {"ready": bool} (other fields are ignored, as Triton does).
StatusOr<bool> IndexReadyOnly(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return false;
  simdjson::dom::parser parser;
  auto object = json::ParseObject(parser, body, "repository index request");
  if (!object.ok()) return object.status();
  simdjson::dom::element ready;
  if ((*object)["ready"].get(ready)) return false;
  bool value = false;
  if (ready.get_bool().get(value)) return InvalidArgument("repository index request: 'ready' must be a boolean");
  return value;
}

}  // namespace

HttpResponse V2Handler::Repository(const std::vector<std::string_view>& parts, const std::string& body) {
  if (repository_root_.empty()) return ErrorResponse(NotFound("this server has no model repository"));
  if (parts.size() == 3 && parts[2] == "index") {
    auto ready_only = IndexReadyOnly(body);
    if (!ready_only.ok()) return ErrorResponse(ready_only.status());
    auto scan = ScanRepository(repository_root_);
    if (!scan.ok()) return ErrorResponse(scan.status());
    std::string json;
    JsonWriter w(&json);
    w.BeginArray();
    auto entry = [&](const std::string& name, bool ready, const std::string& reason) {
      if (*ready_only && !ready) return;
      w.BeginObject().Field("name", name).Field("version", "1").Field("state", ready ? "READY" : "UNAVAILABLE");
      w.Field("reason", reason).EndObject();
    };
    // A loaded model is READY only if it can serve (Runtime's readiness);
    // else the reason. An invalid config on disk is reported as its reason
    // while the loaded version keeps its state.
    auto loaded_entry = [&](const std::string& name, const std::string& disk_error) {
      auto not_ready = runtime_.ModelNotReadyReason(name);
      const bool ready = not_ready.ok() && not_ready->empty();
      std::string reason = not_ready.ok() ? *not_ready : not_ready.status().message();
      if (!disk_error.empty()) reason = reason.empty() ? disk_error : reason + "; " + disk_error;
      entry(name, ready, reason);
    };
    std::vector<std::string> listed;
    for (const auto& model : scan->models) {
      if (runtime_.FindModel(model.name)) loaded_entry(model.name, "");
      else entry(model.name, false, "unloaded");
      listed.push_back(model.name);
    }
    for (const auto& error : scan->errors) {
      if (runtime_.FindModel(error.model)) loaded_entry(error.model, error.status.message());
      else entry(error.model, false, error.status.message());
      listed.push_back(error.model);
    }
    for (const std::string& name : runtime_.ModelNames())  // loaded, then removed from disk
      if (std::find(listed.begin(), listed.end(), name) == listed.end()) loaded_entry(name, "");
    w.EndArray();
    return Json(200, ClientText(std::move(json)));
  }
  if (parts.size() == 5 && parts[2] == "models" && parts[4] == "unload") {
    const std::string model(parts[3]);
    if (model.find("..") != std::string::npos || model.front() == '.')
      return ErrorResponse(InvalidArgument("'" + model + "' is not a model name"));
    if (Status removed = runtime_.RemoveModel(model); !removed.ok()) return ErrorResponse(removed);
    return Json(200, NameJson(model, "loaded", false));
  }
  return ErrorResponse(NotFound("no route for /" + [&] {
    std::string path;
    for (auto p : parts) path += std::string(p) + "/";
    return path;
  }()));
}

namespace {

// The load request's parameters.config, if any. Triton's other load
// parameters (file:<path> with a model file's content) are refused: thaw
// loads model files from the repository directory only.
StatusOr<std::optional<std::string>> LoadConfigOverride(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return std::optional<std::string>();
  simdjson::dom::parser parser;
  auto object = json::ParseObject(parser, body, "load request");
  if (!object.ok()) return object.status();
  simdjson::dom::element parameters_value;
  if ((*object)["parameters"].get(parameters_value)) return std::optional<std::string>();
  simdjson::dom::object parameters;
  if (parameters_value.get_object().get(parameters))
    return InvalidArgument("load request: 'parameters' must be an object");
  std::optional<std::string> config;
  for (auto [key, value] : parameters) {
    if (key == "config") {
      std::string_view text;
      if (value.get_string().get(text))
        return InvalidArgument("load request: parameters.config must be a string holding the config's JSON");
      config = std::string(text);
    } else if (key.starts_with("file:")) {
      return InvalidArgument("load request: parameters." + std::string(key) +
                             " is not supported: thaw loads model files from the repository directory");
    } else {
      return InvalidArgument("load request: unknown parameter '" + std::string(key) + "' (thaw takes 'config')");
    }
  }
  return config;
}

}  // namespace

void V2Handler::Load(const std::string& model, const std::string& body, std::function<void(HttpResponse)> respond) {
  if (repository_root_.empty()) return respond(ErrorResponse(NotFound("this server has no model repository")));
  if (model.empty() || model.find("..") != std::string::npos || model.front() == '.')
    return respond(ErrorResponse(InvalidArgument("'" + model + "' is not a model name")));
  auto override_text = LoadConfigOverride(body);
  if (!override_text.ok()) return respond(ErrorResponse(override_text.status()));
  // A bad config is refused here (400/404) and the loaded version stays.
  const std::string directory = repository_root_ + "/" + model;
  StatusOr<ModelConfig> config = NotFound("");
  if (!override_text->has_value()) {
    config = LoadModelConfig(directory);
  } else if (v2::LooksLikeTritonModelConfig(**override_text)) {
    // Triton's format edits the model's config.json: that must be valid.
    auto base = LoadModelConfig(directory);
    if (!base.ok()) return respond(ErrorResponse(base.status()));
    config = v2::ApplyTritonModelConfig(*base, **override_text, "load parameters.config");
  } else {
    // thaw's format replaces config.json, as Triton's override replaces config.pbtxt.
    if (!std::filesystem::is_directory(directory))
      return respond(ErrorResponse(NotFound("model '" + model + "' is not in the repository")));
    config = ParseModelConfig(**override_text, model, std::filesystem::absolute(directory).lexically_normal().string(),
                              "load parameters.config");
  }
  if (!config.ok()) return respond(ErrorResponse(config.status()));
  if (auto history = put_settings_.find(model); history != put_settings_.end()) {
    // Settings changed by PUT stay unless the file changed since (or this load brings its own config).
    std::string reset_reason;
    if (override_text->has_value()) {
      reset_reason = "the load carries its own config";
    } else if (history->second.config_json_at_put.empty() ||
               FileText(directory + "/config.json") != history->second.config_json_at_put) {
      reset_reason = "config.json changed since the settings were PUT";
    } else {
      StatusOr<ModelConfig> replayed = config;
      for (const std::string& put : history->second.bodies) {
        replayed = ApplySettings(*replayed, put, "PUT /v2/models/" + model + "/settings (replayed on load)");
        if (!replayed.ok()) break;
      }
      if (replayed.ok()) config = std::move(replayed);
      else reset_reason = "replaying them failed: " + replayed.status().message();
    }
    if (reset_reason.empty()) {
      LogEvent(LogLevel::kInfo, "model_settings_kept",
               LogFields({{"model", model}, {"puts", std::to_string(history->second.bodies.size())}}));
    } else {
      LogEvent(LogLevel::kWarning, "model_settings_reset", LogFields({{"model", model}, {"reason", LogValue(reset_reason)}}));
      put_settings_.erase(history);
    }
  }
  if (override_text->has_value() && !std::filesystem::is_regular_file(config->ModelPath()))
    return respond(ErrorResponse(NotFound("load parameters.config: field 'model_file': " + model + "/" +
                                          config->model_file + " does not exist")));
  if (Status labels = LoadOutputLabels(&config.value(), override_text->has_value() ? "load parameters.config"
                                                                                   : directory + "/config.json");
      !labels.ok())
    return respond(ErrorResponse(labels));
  // The answer comes once the new version has loaded (or failed to): the
  // event loop keeps serving meanwhile.
  runtime_.ReloadModel(std::move(config).value(), [model, respond = std::move(respond)](Status status) {
    if (!status.ok()) return respond(ErrorResponse(status));
    respond(Json(200, NameJson(model, "loaded", true)));
  });
}

void V2Handler::ForwardUpstream(const std::string& model, HttpRequest request, std::string cause, Respond respond) {
  ++sent_upstream_[model][cause];
  ++offloaded_;  // a drain waits for the upstream's answer too
  options_.upstream->Forward(request, [this, respond = std::move(respond)](HttpResponse response, Micros) {
    respond(std::move(response));
    if (--offloaded_ == 0 && drained_) std::exchange(drained_, nullptr)();
  });
}

policy::OffloadObservation V2Handler::ObserveForOffload(const std::string& model) const {
  policy::OffloadObservation o;
  o.upstream_round_trip_us = options_.upstream->mean_round_trip_us();
  const ModelConfig* config = runtime_.FindModel(model);
  if (!config) {
    o.deployed = false;
    return o;
  }
  auto status = runtime_.GetModelStatus(model);
  if (!status.ok()) return o;
  o.slots = config->max_concurrency * config->instance_concurrency;
  o.max_queue = config->max_queue;
  o.queued = status->queued;
  for (const InstanceStatus& i : status->instances) o.in_flight += i.in_flight;
  if (auto mean = execution_mean_us_.find(model); mean != execution_mean_us_.end()) o.mean_execution_us = mean->second;
  o.budget_us = static_cast<Micros>(std::min<double>(static_cast<double>(config->timeout_ms), config->slo_p99_ms) * 1000);
  return o;
}

void V2Handler::Infer(const std::string& model, HttpRequest request, Respond respond) {
  const Micros arrived_us = clock_.NowMicros();
  std::string_view served_by = request.forwarded_by_edge ? "upstream" : "";
  if (options_.upstream && !request.forwarded_by_edge) {
    policy::OffloadDecision decision = policy::DecideOffload(ObserveForOffload(model));
    if (decision.target == policy::OffloadTarget::kUpstream)
      return ForwardUpstream(model, std::move(request), std::string(decision.cause), std::move(respond));
    served_by = "local";
  }
  // A raw binary request (Inference-Header-Content-Length: 0) is decoded by
  // the model's config: a copy goes along, the pool may not read the runtime.
  std::shared_ptr<const ModelConfig> raw_config;
  if (request.inference_header_length == 0) {
    const ModelConfig* config = runtime_.FindModel(model);
    if (!config) return respond(ErrorResponse(NotFound("model '" + model + "' is not loaded")));
    raw_config = std::make_shared<const ModelConfig>(*config);
  }
  // Handle refused codings it does not know; the header lengths count the inflated body.
  const auto parsed_coding = ParseContentEncoding(request.content_encoding);
  const ContentCoding coding = parsed_coding.ok() ? *parsed_coding : ContentCoding::kIdentity;
  const ContentCoding response_coding = ChooseResponseCoding(request.accept_encoding);
  auto decode = [raw_config, coding, max_bytes = options_.max_inflated_body_bytes](HttpRequest& r) -> StatusOr<v2::InferRequest> {
    if (coding != ContentCoding::kIdentity) {
      auto body = Decompress(r.body, coding, max_bytes);
      if (!body.ok()) return body.status();
      r.body = std::move(body).value();
    }
    return raw_config ? v2::ParseRawInferRequest(*raw_config, r.body)
                      : v2::ParseInferRequest(r.body, r.inference_header_length);
  };
  // A compressed body may inflate ~1000x: it goes off the loop from 4 KiB.
  const size_t offload_min_bytes =
      coding == ContentCoding::kIdentity ? options_.offload_min_bytes : std::min<size_t>(options_.offload_min_bytes, 4096);
  if (offloads() && request.body.size() >= offload_min_bytes) {
    // Decoding grows with the body (a 200 MB JSON body takes seconds): on
    // the pool; the runtime is called back on the loop.
    auto shared_request = std::make_shared<HttpRequest>(std::move(request));
    OffLoop([this, model, shared_request, arrived_us, decode, response_coding, served_by, respond = std::move(respond)] {
      auto parsed = std::make_shared<StatusOr<v2::InferRequest>>(decode(*shared_request));
      std::string().swap(shared_request->body);  // the text is no longer needed
      OnLoop([this, model, parsed, arrived_us, response_coding, served_by, respond] {
        RunInfer(model, std::move(*parsed), arrived_us, response_coding, served_by, respond);
      });
    });
    return;
  }
  RunInfer(model, decode(request), arrived_us, response_coding, served_by, std::move(respond));
}

namespace {

HttpResponse InferResponse(const std::string& model, const v2::InferRequest& request, const InferOutcome& outcome,
                           ContentCoding coding) {
  v2::EncodedBody encoded = v2::EncodeInferResponse(model, request, outcome.outputs, TimingParameters(outcome.timing));
  HttpResponse response;
  response.body = std::move(encoded.body);
  response.content_type = std::move(encoded.content_type);
  if (coding != ContentCoding::kIdentity && !response.body.empty()) {
    // Inference-Header-Content-Length still counts the JSON before compression.
    if (std::optional<std::string> compressed = Compress(response.body, coding)) {
      response.body = std::move(*compressed);
      response.headers.emplace_back("Content-Encoding", std::string(ContentCodingName(coding)));
    }
  }
  response.headers.emplace_back("Vary", "Accept-Encoding");
  if (encoded.header_length)
    response.headers.emplace_back("Inference-Header-Content-Length", std::to_string(*encoded.header_length));
  response.headers.emplace_back("Server-Timing", ServerTiming(outcome.timing));
  if (outcome.timing.cold_start)
    response.headers.emplace_back("X-Thaw-Cold-Start", std::string(StartPathName(outcome.timing.start_path)) + ";" +
                                                           ColdStartServerTiming(outcome.timing.cold));
  return response;
}

}  // namespace

void V2Handler::Execute(const std::string& model, StatusOr<v2::InferRequest> parsed, Micros arrived_us,
                        ExecuteDone done) {
  auto fail = [&done](Status status) {
    InferOutcome outcome;
    outcome.status = std::move(status);
    done(nullptr, std::move(outcome));
  };
  if (!parsed.ok()) return fail(parsed.status());
  const ModelConfig* config = runtime_.FindModel(model);  // again: it may have been unloaded while decoding
  if (!config) return fail(NotFound("model '" + model + "' is not loaded"));
  Status valid = v2::ValidateInferRequest(*config, &parsed.value());
  if (!valid.ok()) return fail(valid);

  // A request may shorten its deadline, never extend it past the model's cap.
  auto deadline = policy::RequestDeadline(arrived_us, config->timeout_ms, parsed->timeout_ms);
  if (!deadline.ok()) return fail(deadline.status());

  std::vector<std::string> output_names;
  for (const auto& output : parsed->outputs) output_names.push_back(output.name);
  auto shared_request = std::make_shared<v2::InferRequest>(std::move(parsed).value());
  std::vector<Tensor> inputs = std::move(shared_request->inputs);
  runtime_.Infer(model, std::move(inputs), std::move(output_names), *deadline,
                 [this, model, shared_request, done = std::move(done)](InferOutcome outcome) {
                   if (outcome.status.ok()) {
                     if (const ModelConfig* config = runtime_.FindModel(model))
                       outcome.status = v2::ClassifyOutputs(*config, *shared_request, &outcome.outputs);
                   }
                   done(shared_request, std::move(outcome));
                 });
}

void V2Handler::RunInfer(const std::string& model, StatusOr<v2::InferRequest> parsed, Micros arrived_us,
                         ContentCoding response_coding, std::string_view served_by, Respond respond) {
  Execute(model, std::move(parsed), arrived_us,
          [this, model, response_coding, served_by, respond = std::move(respond)](
              std::shared_ptr<v2::InferRequest> request, InferOutcome outcome) {
            if (!outcome.status.ok()) return respond(ErrorResponse(outcome.status));
            outcome.timing.served_by = served_by;
            if (options_.upstream) {  // what the offload policy predicts local waits from
              Micros& mean = execution_mean_us_[model];
              mean = policy::UpdateMean(mean, outcome.timing.compute_us);
            }
            size_t output_bytes = 0;
            for (const Tensor& t : outcome.outputs) output_bytes += t.data.size();
            if (!offloads() || output_bytes < options_.offload_min_bytes)
              return respond(InferResponse(model, *request, outcome, response_coding));
            // Encoding grows with the outputs (JSON text of every element): on the pool.
            auto shared_outcome = std::make_shared<InferOutcome>(std::move(outcome));
            OffLoop([this, model, request, shared_outcome, response_coding, respond] {
              auto response =
                  std::make_shared<HttpResponse>(InferResponse(model, *request, *shared_outcome, response_coding));
              shared_outcome->outputs.clear();
              OnLoop([response, respond] { respond(std::move(*response)); });
            });
          });
}

void V2Handler::InferTensors(const std::string& model, StatusOr<v2::InferRequest> request,
                             std::optional<std::string> authorization, TensorsDone done) {
  const Micros arrived_us = clock_.NowMicros();
  if (access_) {
    // The token only: browsers cannot reach this path, so Host, Origin and
    // Content-Type (the REST route's browser checks) do not apply.
    const std::string target = "/v2/models/" + model + "/infer";
    if (auto refused = access_->CheckNonBrowser(target, authorization, routes_)) {
      InferOutcome outcome;
      outcome.status = InvalidArgument(refused->message);
      return done({.http_status = refused->status, .outcome = std::move(outcome)});
    }
  }
  if (!runtime_.FindModel(model)) {  // before the request's own errors, as the REST route answers
    InferOutcome outcome;
    outcome.status = NotFound("model '" + model + "' is not loaded");
    return done({.http_status = 404, .outcome = std::move(outcome)});
  }
  Execute(model, std::move(request), arrived_us,
          [done = std::move(done)](std::shared_ptr<v2::InferRequest> validated, InferOutcome outcome) {
            const int status = outcome.status.ok() ? 200 : HttpStatusFor(outcome.status.code());
            done({.http_status = status, .request = std::move(validated), .outcome = std::move(outcome)});
          });
}

}  // namespace thaw
