#include "load/load_generator.h"

#include <simdjson.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <memory>
#include <optional>

namespace thaw::load {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

std::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kResponse: return "response";
    case Outcome::kClientOverload: return "client_overload";
    case Outcome::kTimeout: return "timeout";
    case Outcome::kError: return "error";
  }
  return "unknown";
}

std::string_view ErrorCauseName(ErrorCause cause) {
  switch (cause) {
    case ErrorCause::kNone: return "none";
    case ErrorCause::kConnectionRefused: return "connection refused";
    case ErrorCause::kConnectionReset: return "connection reset";
    case ErrorCause::kOther: return "other error";
  }
  return "unknown";
}

void RecordResponseParameter(std::string_view name, double value, bool measured, RequestRecord& record,
                             std::vector<ParameterMean>& means) {
  if (name == "batch_size") {
    if (value >= 0 && value <= 2e9) record.batch_size = static_cast<int32_t>(std::lround(value));
    return;
  }
  if (name == "instance") {
    if (value >= 0 && value <= 9e15) record.instance = std::llround(value);
    return;
  }
  if (name == "compute_ms" && value >= 0) record.compute_ms = value;
  if (!measured) return;
  for (ParameterMean& p : means) {
    if (p.name == name) {
      p.sum += value;
      ++p.count;
      return;
    }
  }
  if (means.size() < 64) means.push_back({std::string(name), value, 1});
}

StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  const std::string quoted = "'" + std::string(url) + "'";
  constexpr std::string_view kScheme = "http://";
  if (!url.starts_with(kScheme))
    return InvalidArgument("url " + quoted + " must start with http:// (https is not supported)");
  std::string_view rest = url.substr(kScheme.size());
  if (rest.ends_with('/')) rest.remove_suffix(1);
  if (rest.find_first_of("/?#@") != std::string_view::npos)
    return InvalidArgument("url " + quoted + " must be http://host:port, without a path, query or user");
  HttpUrl out;
  std::string_view port_text;
  if (rest.starts_with('[')) {  // [IPv6]:port
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return InvalidArgument("url " + quoted + " has an unclosed '['");
    out.host = std::string(rest.substr(1, close - 1));
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (!after.starts_with(':')) return InvalidArgument("url " + quoted + " has text after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return InvalidArgument("url " + quoted + " has an empty port");
    }
  } else {
    size_t colon = rest.rfind(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = rest.substr(colon + 1);
      if (port_text.empty()) return InvalidArgument("url " + quoted + " has an empty port");
    }
  }
  if (out.host.empty()) return InvalidArgument("url " + quoted + " has no host");
  if (!port_text.empty()) {
    unsigned port = 0;
    auto [end, err] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (err != std::errc() || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return InvalidArgument("url " + quoted + " has a bad port; want an integer in [1, 65535]");
    out.port = static_cast<uint16_t>(port);
  }
  return out;
}

namespace {

// One keep-alive connection; at most one request in flight.
struct Connection {
  explicit Connection(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  size_t request = 0;       // index of the request in flight
  bool busy = false;        // a request is in flight
  int64_t served = 0;       // responses read since this socket connected
  bool retried = false;     // the request in flight has been resent once
};

// The state of one Run. Single-threaded: everything happens in handlers of
// its own io_context.
class Runner {
 public:
  Runner(const Clock& clock, const LoadOptions& options, const std::vector<Micros>& offsets,
         tcp::resolver::results_type endpoints, std::vector<std::string> request_bytes,
         const std::vector<uint32_t>& target_of, size_t warmup_count)
      : clock_(clock),
        options_(options),
        offsets_(offsets),
        endpoints_(std::move(endpoints)),
        request_bytes_(std::move(request_bytes)),
        target_of_(target_of),
        warmup_count_(warmup_count),
        timer_(io_),
        drain_timer_(io_),
        records_(offsets.size()) {
    connections_.reserve(static_cast<size_t>(options.max_connections));
    for (size_t i = 0; i < offsets.size(); ++i) records_[i].offset_us = offsets[i];
  }

  LoadResult Run() {
    start_ = clock_.NowMicros();
    if (offsets_.empty()) return Finish();
    ArmTimer();
    io_.run();
    return Finish();
  }

 private:
  void ArmTimer() {
    const Micros wait = start_ + offsets_[next_] - clock_.NowMicros();
    timer_.expires_after(std::chrono::microseconds(std::max<Micros>(wait, 0)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) OnTimer();
    });
  }

  // Sends everything due, re-reading the clock until nothing more is due,
  // so a slow wake-up catches up in one go instead of one timer per request.
  void OnTimer() {
    Micros now = clock_.NowMicros();
    while (next_ < offsets_.size() && start_ + offsets_[next_] <= now) {
      while (next_ < offsets_.size() && start_ + offsets_[next_] <= now) Dispatch(next_++, now);
      now = clock_.NowMicros();
    }
    if (options_.on_progress) options_.on_progress(next_, offsets_.size());
    if (next_ < offsets_.size()) return ArmTimer();
    // Last send done: wait for the stragglers, but not for ever.
    if (outstanding_ == 0) return;
    drain_timer_.expires_after(std::chrono::microseconds(static_cast<Micros>(options_.drain_timeout_s * kMicrosPerSecond)));
    drain_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) ExpireOutstanding();
    });
  }

  void Dispatch(size_t i, Micros now) {
    RequestRecord& record = records_[i];
    Connection* c = nullptr;
    if (!idle_.empty()) {
      c = idle_.back();
      idle_.pop_back();
    } else if (!closed_.empty()) {
      c = closed_.back();
      closed_.pop_back();
    } else if (connections_.size() < static_cast<size_t>(options_.max_connections)) {
      c = connections_.emplace_back(std::make_unique<Connection>(io_)).get();
    } else {
      record.outcome = Outcome::kClientOverload;
      return;
    }
    record.send_lateness_us = now - (start_ + offsets_[i]);
    c->request = i;
    c->busy = true;
    c->retried = false;
    ++outstanding_;
    if (c->socket.is_open()) return Send(c);
    Connect(c);
  }

  void Connect(Connection* c) {
    ++connections_opened_;
    c->served = 0;
    c->buffer.clear();
    asio::async_connect(c->socket, endpoints_, [this, c](const boost::system::error_code& ec, const tcp::endpoint&) {
      if (expired_) return;
      if (ec) return Fail(c, ec);
      boost::system::error_code ignored;
      c->socket.set_option(tcp::no_delay(true), ignored);
      Send(c);
    });
  }

  void Send(Connection* c) {
    const std::string& bytes = request_bytes_[target_of_.empty() ? 0 : target_of_[c->request]];
    asio::async_write(c->socket, asio::buffer(bytes), [this, c](const boost::system::error_code& ec, size_t) {
      if (expired_) return;
      if (ec) return Fail(c, ec);
      Read(c);
    });
  }

  void Read(Connection* c) {
    c->parser.emplace();
    c->parser->body_limit(options_.max_response_bytes);
    http::async_read(c->socket, c->buffer, *c->parser, [this, c](const boost::system::error_code& ec, size_t) {
      if (expired_) return;
      if (ec) return Fail(c, ec);
      OnResponse(c);
    });
  }

  void OnResponse(Connection* c) {
    const Micros now = clock_.NowMicros();
    auto& response = c->parser->get();
    RequestRecord& record = records_[c->request];
    record.outcome = Outcome::kResponse;
    record.status = static_cast<int>(response.result_int());
    record.latency_us = now - (start_ + record.offset_us);
    if (record.status == 200) ReadParameters(response.body(), record, c->request >= warmup_count_);
    const bool keep_alive = response.keep_alive();
    c->parser.reset();
    ++c->served;
    c->busy = false;
    --outstanding_;
    if (keep_alive) {
      idle_.push_back(c);
    } else {
      Close(c);
    }
    MaybeDone();
  }

  // Only the `parameters` object is looked at; simdjson's on-demand API
  // skips the rest (the outputs) without building anything for it.
  void ReadParameters(std::string& body, RequestRecord& record, bool measured) {
    body.reserve(body.size() + simdjson::SIMDJSON_PADDING);
    simdjson::ondemand::document doc;
    if (json_.iterate(body.data(), body.size(), body.capacity()).get(doc)) return;
    simdjson::ondemand::object params;
    if (doc.find_field_unordered("parameters").get_object().get(params)) return;
    for (auto field : params) {
      std::string_view key;
      simdjson::ondemand::value value;
      if (field.unescaped_key().get(key) || field.value().get(value)) return;
      simdjson::ondemand::json_type type;
      if (value.type().get(type) || type != simdjson::ondemand::json_type::number) continue;
      double number = 0;
      if (value.get_double().get(number)) continue;
      RecordResponseParameter(key, number, measured, record, parameters_);
    }
  }

  // A request failed on connection c. If c was a reused keep-alive
  // connection and nothing of the response came back, the server most
  // likely closed it while it was idle: resend once on a fresh connection.
  void Fail(Connection* c, boost::system::error_code ec = {}) {
    const bool stale = ec == http::error::end_of_stream || ec == asio::error::eof ||
                       ec == asio::error::connection_reset || ec == asio::error::broken_pipe;
    const bool nothing_read = !c->parser || !c->parser->got_some();
    Close(c);
    if (c->served > 0 && !c->retried && stale && nothing_read) {
      c->retried = true;
      ++stale_retries_;
      return Connect(c);
    }
    records_[c->request].outcome = Outcome::kError;
    records_[c->request].error = CauseOf(ec);
    c->busy = false;
    --outstanding_;
    closed_.push_back(c);
    MaybeDone();
  }

  static ErrorCause CauseOf(const boost::system::error_code& ec) {
    if (ec == asio::error::connection_refused) return ErrorCause::kConnectionRefused;
    if (ec == asio::error::connection_reset || ec == asio::error::broken_pipe || ec == asio::error::eof ||
        ec == http::error::end_of_stream || ec == asio::error::connection_aborted)
      return ErrorCause::kConnectionReset;
    return ErrorCause::kOther;
  }

  void Close(Connection* c) {
    boost::system::error_code ignored;
    c->socket.shutdown(tcp::socket::shutdown_both, ignored);
    c->socket.close(ignored);
    c->parser.reset();
    if (!c->busy) closed_.push_back(c);
  }

  void MaybeDone() {
    if (next_ == offsets_.size() && outstanding_ == 0) drain_timer_.cancel();
  }

  void ExpireOutstanding() {
    expired_ = true;
    for (auto& c : connections_) {
      if (!c->busy) continue;
      records_[c->request].outcome = Outcome::kTimeout;
      boost::system::error_code ignored;
      c->socket.close(ignored);
      c->busy = false;
    }
    outstanding_ = 0;
  }

  LoadResult Finish() {
    // Idle sockets hold no pending operation; closing them here is tidy, not needed.
    LoadResult result;
    result.warmup_requests = static_cast<int64_t>(warmup_count_);
    result.requests.assign(records_.begin() + static_cast<std::ptrdiff_t>(warmup_count_), records_.end());
    result.connections_opened = connections_opened_;
    result.stale_retries = stale_retries_;
    result.parameters = std::move(parameters_);
    return result;
  }

  const Clock& clock_;
  const LoadOptions& options_;
  const std::vector<Micros>& offsets_;
  const tcp::resolver::results_type endpoints_;
  const std::vector<std::string> request_bytes_;  // per target, built once, written as-is
  const std::vector<uint32_t>& target_of_;        // per request; empty: target 0
  const size_t warmup_count_;

  // Declared before the sockets so that it outlives them.
  asio::io_context io_{1};
  asio::steady_timer timer_;
  asio::steady_timer drain_timer_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::vector<Connection*> idle_;    // connected, nothing in flight; reused last-in first-out
  std::vector<Connection*> closed_;  // not connected; reconnected before new ones are made
  std::vector<RequestRecord> records_;
  std::vector<ParameterMean> parameters_;
  simdjson::ondemand::parser json_;
  Micros start_ = 0;
  size_t next_ = 0;          // the next request to dispatch
  int64_t outstanding_ = 0;  // dispatched, not yet finished
  int64_t connections_opened_ = 0;
  int64_t stale_retries_ = 0;
  bool expired_ = false;     // the drain timed out; late completions are ignored
};

}  // namespace

LoadGenerator::LoadGenerator(const Clock& clock, LoadOptions options) : clock_(clock), options_(std::move(options)) {}

StatusOr<LoadResult> LoadGenerator::Run(const std::vector<Micros>& offsets_us, const std::vector<uint32_t>& target_of) {
  auto url = ParseHttpUrl(options_.url);
  if (!url.ok()) return url.status();
  const std::vector<LoadTarget> targets =
      options_.targets.empty() ? std::vector<LoadTarget>{{options_.model, options_.body, options_.body_header_length}} : options_.targets;
  for (const LoadTarget& target : targets)
    if (target.model.empty() || target.model.find_first_of("/?# \r\n") != std::string::npos)
      return InvalidArgument("model name '" + target.model + "' is empty or not a path segment");
  if (options_.targets.empty() ? !target_of.empty() : target_of.size() != offsets_us.size())
    return InvalidArgument("target_of must name a target per request with several targets, and be empty without");
  for (uint32_t t : target_of)
    if (t >= targets.size()) return InvalidArgument("target_of names target " + std::to_string(t) + " of " +
                                                    std::to_string(targets.size()));
  if (options_.max_connections < 1) return InvalidArgument("max_connections must be at least 1");
  if (!std::isfinite(options_.drain_timeout_s) || options_.drain_timeout_s < 0 || options_.drain_timeout_s > 86400)
    return InvalidArgument("drain_timeout_s must be in [0, 86400]");
  for (size_t i = 0; i < offsets_us.size(); ++i) {
    if (offsets_us[i] < 0 || (i > 0 && offsets_us[i] < offsets_us[i - 1]))
      return InvalidArgument("schedule offset " + std::to_string(i) + " is negative or out of order");
  }

  boost::system::error_code ec;
  asio::io_context resolver_io;
  tcp::resolver resolver(resolver_io);
  auto endpoints = resolver.resolve(url->host, std::to_string(url->port), ec);
  if (ec || endpoints.empty())
    return Unavailable("cannot resolve host '" + url->host + "': " + (ec ? ec.message() : "no addresses"));

  const bool ipv6 = url->host.find(':') != std::string::npos;
  const std::string host_header = (ipv6 ? "[" + url->host + "]" : url->host) + ":" + std::to_string(url->port);
  std::vector<std::string> requests;
  for (const LoadTarget& target : targets) {
    std::string request = "POST /v2/models/" + target.model + "/infer HTTP/1.1\r\n";
    request += "Host: " + host_header + "\r\n";
    request += "User-Agent: thaw-load\r\n";
    if (target.header_length) {
      if (*target.header_length > target.body.size())
        return InvalidArgument("the inference header length " + std::to_string(*target.header_length) +
                               " exceeds the body's " + std::to_string(target.body.size()) + " bytes");
      request += "Content-Type: application/octet-stream\r\n";
      request += "Inference-Header-Content-Length: " + std::to_string(*target.header_length) + "\r\n";
    } else {
      request += "Content-Type: application/json\r\n";
    }
    if (!options_.bearer_token.empty()) request += "Authorization: Bearer " + options_.bearer_token + "\r\n";
    request += "Content-Length: " + std::to_string(target.body.size()) + "\r\n";
    request += "\r\n";
    request += target.body;
    requests.push_back(std::move(request));
  }

  const size_t warmup_count = static_cast<size_t>(
      std::lower_bound(offsets_us.begin(), offsets_us.end(), options_.warmup_us) - offsets_us.begin());
  // Asio reports I/O errors through error codes (recorded per request); what
  // can still throw is resource exhaustion (memory, timers), turned into a
  // Status here so no exception leaves the API.
  try {
    // The runner is large (it holds the io_context); keep it off the stack.
    auto runner = std::make_unique<Runner>(clock_, options_, offsets_us, std::move(endpoints), std::move(requests),
                                           target_of, warmup_count);
    return runner->Run();
  } catch (const std::exception& e) {
    return Internal(std::string("load generator failed: ") + e.what());
  }
}

}  // namespace thaw::load
