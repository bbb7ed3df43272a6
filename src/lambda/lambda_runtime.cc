#include "lambda/lambda_runtime.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include <unistd.h>

#include "base/json_writer.h"
#include "base/log.h"
#include "json/object_fields.h"

namespace thaw::lambda {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

constexpr std::string_view kApi = "/2018-06-01/runtime";
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::optional<std::string> StringField(simdjson::dom::object o, std::string_view key) {
  std::string_view v;
  if (o[key].get(v) != simdjson::SUCCESS) return std::nullopt;
  return std::string(v);
}

// A header of an HTTP event, by lower-cased name (API Gateway v2 lower-cases
// them; v1 keeps the client's case).
std::optional<std::string> Header(simdjson::dom::object event, std::string_view name) {
  simdjson::dom::object headers;
  if (event["headers"].get(headers) != simdjson::SUCCESS) return std::nullopt;
  for (auto [key, value] : headers) {
    if (key.size() != name.size()) continue;
    bool same = true;
    for (size_t i = 0; i < key.size() && same; ++i) same = std::tolower(static_cast<unsigned char>(key[i])) == name[i];
    std::string_view text;
    if (same && value.get(text) == simdjson::SUCCESS) return std::string(text);
  }
  return std::nullopt;
}

// The process tree's peak resident memory, in MB: this process and every
// descendant's VmHWM (a sum of peaks: at least the real peak).
int64_t MaxMemoryUsedMb() {
  int64_t kb = 0;
  std::vector<std::string> pending = {std::to_string(::getpid())};
  while (!pending.empty()) {
    const std::string pid = pending.back();
    pending.pop_back();
    std::ifstream status("/proc/" + pid + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("VmHWM:")) kb += std::strtoll(line.c_str() + 6, nullptr, 10);
    std::ifstream children("/proc/" + pid + "/task/" + pid + "/children");
    for (std::string child; children >> child;) pending.push_back(child);
  }
  return (kb + 1023) / 1024;
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const uint32_t n = static_cast<uint8_t>(bytes[i]) << 16 |
                       (i + 1 < bytes.size() ? static_cast<uint8_t>(bytes[i + 1]) << 8 : 0) |
                       (i + 2 < bytes.size() ? static_cast<uint8_t>(bytes[i + 2]) : 0);
    out += kAlphabet[n >> 18 & 63];
    out += kAlphabet[n >> 12 & 63];
    out += i + 1 < bytes.size() ? kAlphabet[n >> 6 & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[n & 63] : '=';
  }
  return out;
}

std::optional<std::string> Base64Decode(std::string_view text) {
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : text) {
    const char* at = std::find(kAlphabet, kAlphabet + 64, c);
    if (at == kAlphabet + 64) return std::nullopt;
    bits = bits << 6 | static_cast<uint32_t>(at - kAlphabet);
    if (++count == 4) {
      out += static_cast<char>(bits >> 16);
      out += static_cast<char>(bits >> 8 & 0xff);
      out += static_cast<char>(bits & 0xff);
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) out += static_cast<char>(bits >> 4);
  if (count == 3) {
    out += static_cast<char>(bits >> 10);
    out += static_cast<char>(bits >> 2 & 0xff);
  }
  return out;
}

StatusOr<Invocation> ParseEvent(std::string_view payload, const std::string& model) {
  simdjson::dom::parser parser;
  auto event = json::ParseObject(parser, payload, "the Lambda event");
  if (!event.ok()) return event.status();
  Invocation invocation;
  HttpRequest& request = invocation.request;
  // API Gateway HTTP API or function URL (payload 2.0): requestContext.http.method and rawPath.
  std::string_view method;
  const bool v2_event = event->at_pointer("/requestContext/http/method").get(method) == simdjson::SUCCESS;
  const bool v1_event = !v2_event && StringField(*event, "httpMethod").has_value();
  if (v2_event || v1_event) {
    invocation.http_event = true;
    request.method = v2_event ? std::string(method) : *StringField(*event, "httpMethod");
    const auto path = StringField(*event, v2_event ? "rawPath" : "path");
    if (!path || path->empty() || path->front() != '/')
      return InvalidArgument(std::string("the HTTP event has no ") + (v2_event ? "rawPath" : "path"));
    request.target = *path;
    if (auto query = StringField(*event, "rawQueryString"); query && !query->empty()) request.target += "?" + *query;
    std::string_view body;
    if ((*event)["body"].get(body) == simdjson::SUCCESS) {
      bool base64 = false;
      if ((*event)["isBase64Encoded"].get(base64) != simdjson::SUCCESS) base64 = false;
      if (base64) {
        auto decoded = Base64Decode(body);
        if (!decoded) return InvalidArgument("the HTTP event's body is marked isBase64Encoded but is not base64");
        request.body = std::move(*decoded);
      } else {
        request.body = std::string(body);
      }
    }
    request.content_type = Header(*event, "content-type");
    request.content_encoding = Header(*event, "content-encoding");
    request.accept_encoding = Header(*event, "accept-encoding");
    if (auto length = Header(*event, "inference-header-content-length")) {
      size_t n = 0;
      auto [end, err] = std::from_chars(length->data(), length->data() + length->size(), n);
      if (err != std::errc() || end != length->data() + length->size())
        return InvalidArgument("Inference-Header-Content-Length must be a number, got '" + *length + "'");
      request.inference_header_length = n;
    }
    return invocation;
  }
  // A direct invocation: the event is the model's v2 inference request.
  simdjson::dom::array inputs;
  if ((*event)["inputs"].get(inputs) != simdjson::SUCCESS)
    return InvalidArgument("the Lambda event is neither a KServe v2 inference request (no 'inputs' array) nor an "
                           "HTTP event (API Gateway or function URL)");
  request.method = "POST";
  request.target = "/v2/models/" + model + "/infer";
  request.body = std::string(payload);
  request.content_type = "application/json";
  return invocation;
}

std::string ErrorPayload(std::string_view type, std::string_view message) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("errorType", type).Field("errorMessage", message).EndObject();
  return out;
}

Reply ReplyFor(const HttpResponse& response, bool http_event) {
  if (!http_event) {
    if (response.status >= 200 && response.status < 300) return {response.body, false};
    // The v2 error body is {"error": "..."}: its text is the message.
    std::string message = response.body;
    simdjson::dom::parser parser;
    std::string_view text;
    if (parser.parse(response.body).at_key("error").get(text) == simdjson::SUCCESS) message = std::string(text);
    const std::string type = response.status == 400   ? "InvalidArgument"
                             : response.status == 404 ? "NotFound"
                             : response.status == 429 ? "TooManyRequests"
                             : response.status == 504 ? "DeadlineExceeded"
                                                      : "Unavailable";
    return {ErrorPayload(type, std::to_string(response.status) + ": " + message), true};
  }
  const bool text = response.content_type.starts_with("application/json") || response.content_type.starts_with("text/");
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("statusCode", response.status);
  w.Key("headers").BeginObject().Field("content-type", response.content_type);
  for (const auto& [name, value] : response.headers) w.Field(name, value);
  w.EndObject();
  w.Field("body", text ? response.body : Base64Encode(response.body)).Field("isBase64Encoded", !text);
  w.EndObject();
  return {out, false};
}

std::string ReportLine(std::string_view request_id, double duration_ms, int64_t memory_size_mb,
                       int64_t max_memory_used_mb, std::optional<double> init_ms) {
  char buffer[256];
  // Billed from the duration as printed (two decimals), so the line agrees with itself.
  duration_ms = std::round(duration_ms * 100) / 100;
  const int64_t billed = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(duration_ms)));
  std::snprintf(buffer, sizeof buffer, "\tDuration: %.2f ms\tBilled Duration: %lld ms\tMemory Size: %lld MB\tMax Memory Used: %lld MB",
                duration_ms, static_cast<long long>(billed), static_cast<long long>(memory_size_mb),
                static_cast<long long>(max_memory_used_mb));
  std::string line = "REPORT RequestId: " + std::string(request_id) + buffer;
  if (init_ms) {
    std::snprintf(buffer, sizeof buffer, "\tInit Duration: %.2f ms", *init_ms);
    line += buffer;
  }
  return line;
}

// ---------------------------------------------------------------------------
// The client: one short connection per call (the API is on the same host).

struct RuntimeApiClient::State : std::enable_shared_from_this<RuntimeApiClient::State> {
  boost::asio::io_context& io;
  V2Handler& handler;
  Runtime& runtime;
  const Clock& clock;
  RuntimeApiOptions options;
  std::function<void(int)> on_exit;
  std::string host, port;
  boost::asio::steady_timer timer;
  std::optional<double> init_ms;  // reported with the first invocation
  bool ended = false;

  State(boost::asio::io_context& io, V2Handler& handler, Runtime& runtime, const Clock& clock, RuntimeApiOptions o,
        std::function<void(int)> on_exit)
      : io(io), handler(handler), runtime(runtime), clock(clock), options(std::move(o)), on_exit(std::move(on_exit)),
        timer(io) {
    const size_t colon = options.endpoint.rfind(':');
    host = options.endpoint.substr(0, colon);
    port = colon == std::string::npos ? "80" : options.endpoint.substr(colon + 1);
  }

  void End(int code, const std::string& why) {
    if (ended) return;
    ended = true;
    LogEvent(code ? LogLevel::kError : LogLevel::kInfo, "lambda_runtime_end",
             LogFields({{"code", std::to_string(code)}, {"reason", LogValue(why)}}));
    on_exit(code);
  }

  struct Call {
    tcp::resolver resolver;
    beast::tcp_stream stream;
    http::request<http::string_body> request;
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    explicit Call(boost::asio::io_context& io) : resolver(io), stream(io) {}
  };

  // One HTTP call to the Runtime API; done(ok, response).
  void Send(http::verb verb, const std::string& path, std::string body,
            std::function<void(bool, http::response<http::string_body>&)> done) {
    auto call = std::make_shared<Call>(io);
    call->request = {verb, std::string(kApi) + path, 11};
    call->request.set(http::field::host, options.endpoint);
    call->request.set(http::field::content_type, "application/json");
    call->request.body() = std::move(body);
    call->request.prepare_payload();
    auto fail = [self = shared_from_this(), path, done](const beast::error_code& ec, auto& call) {
      LogEvent(LogLevel::kError, "lambda_runtime_api_error",
               LogFields({{"path", LogValue(path)}, {"error", LogValue(ec.message())}}));
      done(false, call->response);
    };
    call->resolver.async_resolve(host, port, [this, self = shared_from_this(), call, fail, done](
                                                 const beast::error_code& ec, tcp::resolver::results_type results) {
      if (ec) return fail(ec, call);
      call->stream.async_connect(results, [this, self, call, fail, done](const beast::error_code& ec,
                                                                        const tcp::endpoint&) {
        if (ec) return fail(ec, call);
        http::async_write(call->stream, call->request, [call, fail, done](const beast::error_code& ec, size_t) {
          if (ec) return fail(ec, call);
          http::async_read(call->stream, call->buffer, call->response,
                           [call, fail, done](const beast::error_code& ec, size_t) {
                             if (ec) return fail(ec, call);
                             beast::error_code ignored;
                             call->stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
                             done(true, call->response);
                           });
        });
      });
    });
  }

  // Init: one instance of the model started and idle, then the first event.
  void Init() {
    auto warmed = runtime.Warm(options.model, 1);
    if (!warmed.ok()) return InitError("Runtime.InitError", warmed.status().message());
    const Micros started_us = clock.NowMicros();
    WaitReady(started_us);
  }

  void WaitReady(Micros started_us) {
    auto status = runtime.GetModelStatus(options.model);
    if (!status.ok()) return InitError("Runtime.InitError", status.status().message());
    const bool ready = std::any_of(status->instances.begin(), status->instances.end(),
                                   [](const InstanceStatus& i) { return i.state == InstanceState::kIdle; });
    if (ready) {
      init_ms = (clock.NowMicros() - options.process_start_us) / 1000.0;
      LogEvent(LogLevel::kInfo, "lambda_init", LogFields({{"model", LogValue(options.model)},
                                                          {"init_ms", std::to_string(*init_ms)}}));
      return Next();
    }
    if (!status->last_start_error.empty()) return InitError("Runtime.InitError", status->last_start_error);
    if (clock.NowMicros() - started_us > options.init_timeout_us)
      return InitError("Runtime.InitError", "the model's first instance did not start within the init timeout");
    timer.expires_after(std::chrono::milliseconds(1));
    timer.async_wait([self = shared_from_this(), started_us](const beast::error_code& ec) {
      if (!ec) self->WaitReady(started_us);
    });
  }

  void InitError(const std::string& type, const std::string& message) {
    LogEvent(LogLevel::kError, "lambda_init_error", LogFields({{"model", LogValue(options.model)},
                                                               {"error", LogValue(message)}}));
    Send(http::verb::post, "/init/error", ErrorPayload(type, "model '" + options.model + "': " + message),
         [self = shared_from_this()](bool, auto&) { self->End(1, "init error"); });
  }

  void Next() {
    if (ended) return;
    Send(http::verb::get, "/invocation/next", "", [self = shared_from_this()](bool ok, auto& response) {
      if (!ok || response.result_int() != 200)
        return self->End(1, ok ? "next: HTTP " + std::to_string(response.result_int()) : "next: connection failed");
      const std::string id(response["Lambda-Runtime-Aws-Request-Id"]);
      if (id.empty()) return self->End(1, "next: no Lambda-Runtime-Aws-Request-Id");
      self->Invoke(id, std::move(response.body()));
    });
  }

  void Invoke(const std::string& id, std::string payload) {
    const Micros received_us = clock.NowMicros();
    auto invocation = ParseEvent(payload, options.model);
    if (!invocation.ok()) {
      return Post(id, {ErrorPayload("InvalidArgument", invocation.status().message()), true}, received_us);
    }
    const bool http_event = invocation->http_event;
    handler.Handle(std::move(invocation->request),
                   [self = shared_from_this(), id, http_event, received_us](HttpResponse response) {
                     // Handle may answer off the loop's current call stack: post to keep one order.
                     boost::asio::post(self->io, [self, id, http_event, received_us, response = std::move(response)] {
                       self->Post(id, ReplyFor(response, http_event), received_us);
                     });
                   });
  }

  void Post(const std::string& id, Reply reply, Micros received_us) {
    const std::string path = "/invocation/" + id + (reply.error ? "/error" : "/response");
    Send(http::verb::post, path, std::move(reply.payload),
         [self = shared_from_this(), id, received_us](bool ok, auto& response) {
           if (!ok || response.result_int() >= 300)
             return self->End(1, ok ? "response: HTTP " + std::to_string(response.result_int())
                                    : "response: connection failed");
           const double duration_ms = (self->clock.NowMicros() - received_us) / 1000.0;
           std::fprintf(stderr, "%s\n",
                        ReportLine(id, duration_ms, self->options.memory_size_mb, MaxMemoryUsedMb(), self->init_ms)
                            .c_str());
           self->init_ms.reset();
           self->Next();
         });
  }
};

RuntimeApiClient::RuntimeApiClient(boost::asio::io_context& io, V2Handler& handler, Runtime& runtime,
                                   const Clock& clock, RuntimeApiOptions options, std::function<void(int)> on_exit)
    : state_(std::make_shared<State>(io, handler, runtime, clock, std::move(options), std::move(on_exit))) {}

RuntimeApiClient::~RuntimeApiClient() {
  state_->ended = true;
  state_->timer.cancel();
}

void RuntimeApiClient::Start() {
  boost::asio::post(state_->io, [state = state_] { state->Init(); });
}

}  // namespace thaw::lambda
