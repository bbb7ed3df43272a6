#include "server/upstream_client.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <charconv>
#include <deque>
#include <vector>

#include "base/json_writer.h"
#include "policy/offload.h"

namespace thaw {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

constexpr uint64_t kMaxResponseBytes = uint64_t{1} << 30;

struct HostPort {
  std::string host, port;
};

StatusOr<HostPort> ParseUrl(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme)) return InvalidArgument("--upstream must be http://host:port, got '" + url + "'");
  std::string rest = url.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return InvalidArgument("--upstream needs host:port, got '" + url + "'");
  const std::string port = rest.substr(colon + 1);
  int value = 0;
  auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (err != std::errc() || end != port.data() + port.size() || value < 1 || value > 65535)
    return InvalidArgument("--upstream port must be in 1..65535, got '" + port + "'");
  return HostPort{rest.substr(0, colon), port};
}

// Headers that belong to one connection or its framing, not to the answer.
bool HopByHop(beast::string_view name) {
  for (beast::string_view h : {"connection", "keep-alive", "transfer-encoding", "content-length", "content-type",
                               "server", "date"})
    if (beast::iequals(name, h)) return true;
  return false;
}

}  // namespace

Status Validate(const UpstreamOptions& options) {
  auto parsed = ParseUrl(options.url);
  if (!parsed.ok()) return parsed.status();
  if (options.max_connections < 1) return InvalidArgument("max_connections must be >= 1");
  if (options.timeout.count() < 1) return InvalidArgument("timeout must be >= 1 ms");
  return Status::Ok();
}

struct UpstreamClient::State : std::enable_shared_from_this<UpstreamClient::State> {
  struct Connection {
    explicit Connection(boost::asio::io_context& io) : stream(io) {}
    beast::tcp_stream stream;
    beast::flat_buffer buffer;
    bool reused = false;
  };
  struct Job {
    http::request<http::string_body> request;
    std::optional<http::response_parser<http::string_body>> parser;
    std::function<void(HttpResponse, Micros)> done;
    Micros started_us = 0;
    bool retried = false;
  };

  State(boost::asio::io_context& io, const Clock& clock, UpstreamOptions o)
      : io(io), clock(clock), options(std::move(o)), resolver(io) {
    auto parsed = ParseUrl(options.url);
    if (parsed.ok()) endpoint = *parsed;
  }

  void Submit(std::shared_ptr<Job> job) {
    if (!idle.empty()) {
      auto connection = std::move(idle.back());
      idle.pop_back();
      return Send(std::move(connection), std::move(job));
    }
    if (open < options.max_connections) {
      ++open;
      return Connect(std::move(job));
    }
    waiting.push_back(std::move(job));
  }

  void Connect(std::shared_ptr<Job> job) {
    auto connection = std::make_shared<Connection>(io);
    resolver.async_resolve(endpoint.host, endpoint.port, [self = shared_from_this(), connection, job](
                                                              const beast::error_code& ec, tcp::resolver::results_type r) {
      if (ec) return self->Lost(job, "resolve: " + ec.message(), false);
      connection->stream.expires_after(self->options.timeout);
      connection->stream.async_connect(r, [self, connection, job](const beast::error_code& ec, const tcp::endpoint&) {
        if (ec) return self->Lost(job, "connect: " + ec.message(), false);
        connection->stream.socket().set_option(tcp::no_delay(true));
        self->Send(connection, job);
      });
    });
  }

  void Send(std::shared_ptr<Connection> connection, std::shared_ptr<Job> job) {
    job->parser.emplace();
    job->parser->body_limit(kMaxResponseBytes);
    connection->stream.expires_after(options.timeout);
    http::async_write(connection->stream, job->request, [self = shared_from_this(), connection, job](
                                                            const beast::error_code& ec, size_t) {
      if (ec) return self->Lost(job, "send: " + ec.message(), connection->reused);
      http::async_read(connection->stream, connection->buffer, *job->parser,
                       [self, connection, job](const beast::error_code& ec, size_t) {
                         if (ec) return self->Lost(job, "receive: " + ec.message(), connection->reused);
                         const bool keep = job->parser->get().keep_alive();
                         self->Answer(job);
                         if (!keep) {
                           --self->open;
                           return self->Next();
                         }
                         connection->reused = true;
                         self->Release(connection);
                       });
    });
  }

  void Answer(const std::shared_ptr<Job>& job) {
    auto& r = job->parser->get();
    HttpResponse response;
    response.status = r.result_int();
    response.content_type = std::string(r[http::field::content_type]);
    for (const auto& field : r)
      if (!HopByHop(field.name_string()))
        response.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    response.body = std::move(r.body());
    const Micros round_trip_us = clock.NowMicros() - job->started_us;
    ++forwarded;
    mean_round_trip_us = policy::UpdateMean(mean_round_trip_us, round_trip_us);
    job->done(std::move(response), round_trip_us);
  }

  // The connection is gone; a request that failed on a reused one (closed
  // by the upstream while idle) goes once more on a new one.
  void Lost(std::shared_ptr<Job> job, const std::string& why, bool reused) {
    --open;
    if (reused && !job->retried) {
      job->retried = true;
      Submit(std::move(job));
    } else {
      std::string body;
      JsonWriter(&body).BeginObject().Field("error", "upstream " + options.url + ": " + why).EndObject();
      job->done(HttpResponse{.status = 502, .body = std::move(body)}, clock.NowMicros() - job->started_us);
    }
    Next();
  }

  void Release(std::shared_ptr<Connection> connection) {
    if (!waiting.empty()) {
      auto job = std::move(waiting.front());
      waiting.pop_front();
      return Send(std::move(connection), std::move(job));
    }
    idle.push_back(std::move(connection));
  }

  void Next() {
    if (waiting.empty() || open >= options.max_connections) return;
    auto job = std::move(waiting.front());
    waiting.pop_front();
    ++open;
    Connect(std::move(job));
  }

  boost::asio::io_context& io;
  const Clock& clock;
  UpstreamOptions options;
  HostPort endpoint;
  tcp::resolver resolver;
  std::vector<std::shared_ptr<Connection>> idle;
  std::deque<std::shared_ptr<Job>> waiting;
  int open = 0;
  int64_t forwarded = 0;
  Micros mean_round_trip_us = 0;
};

UpstreamClient::UpstreamClient(boost::asio::io_context& io, const Clock& clock, UpstreamOptions options)
    : state_(std::make_shared<State>(io, clock, std::move(options))) {}

UpstreamClient::~UpstreamClient() {
  for (auto& connection : state_->idle) {
    beast::error_code ignored;
    connection->stream.socket().close(ignored);
  }
}

void UpstreamClient::Forward(const HttpRequest& request, std::function<void(HttpResponse, Micros)> done) {
  auto job = std::make_shared<State::Job>();
  auto& r = job->request;
  r.method_string(request.method);
  r.target(request.target);
  r.version(11);
  r.set(http::field::host, state_->endpoint.host + ":" + state_->endpoint.port);
  r.set(kForwardedByEdgeHeader, "1");
  if (request.content_type) r.set(http::field::content_type, *request.content_type);
  if (request.content_encoding) r.set(http::field::content_encoding, *request.content_encoding);
  if (request.accept_encoding) r.set(http::field::accept_encoding, *request.accept_encoding);
  if (request.authorization) r.set(http::field::authorization, *request.authorization);
  if (request.inference_header_length)
    r.set("Inference-Header-Content-Length", std::to_string(*request.inference_header_length));
  r.body() = request.body;
  r.keep_alive(true);
  r.prepare_payload();
  job->done = std::move(done);
  job->started_us = state_->clock.NowMicros();
  state_->Submit(std::move(job));
}

int64_t UpstreamClient::forwarded() const { return state_->forwarded; }
Micros UpstreamClient::mean_round_trip_us() const { return state_->mean_round_trip_us; }
const std::string& UpstreamClient::url() const { return state_->options.url; }

}  // namespace thaw
