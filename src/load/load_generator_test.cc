#include "load/load_generator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "load/arrivals.h"
#include "load/report.h"

namespace thaw::load {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr const char* kSpecBody = R"({"parameters":{"batch_size":3},"outputs":[]})";

// A minimal HTTP/1.1 responder on 127.0.0.1, port 0, on its own thread.
// (thaw::HttpServer needs the runtime, which this component must not link.)
class TestServer {
 public:
  struct Options {
    int delay_ms = 0;               // wait this long before answering each request
    bool never_answer = false;      // read requests, never respond
    bool close_after_response = false;  // answer "Connection: close" and close
    bool close_silently = false;    // answer keep-alive, then close anyway
    std::string body = kSpecBody;
  };

  explicit TestServer(Options options) : options_(std::move(options)), acceptor_(io_) {
    tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(asio::socket_base::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }

  ~TestServer() {
    io_.stop();
    thread_.join();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int64_t received() const { return received_; }
  int64_t connections() const { return connections_; }
  // How many requests had arrived when the first response was written; -1 if none was.
  int64_t received_at_first_response() const { return received_at_first_response_; }
  std::string last_request() {
    std::lock_guard lock(mu_);
    return last_request_;
  }
  // Requests received per "target body" (the request line's path + " " + body).
  std::map<std::string, int64_t> requests_by_path_and_body() {
    std::lock_guard lock(mu_);
    return by_path_and_body_;
  }

 private:
  struct Session : std::enable_shared_from_this<Session> {
    Session(TestServer& server, tcp::socket socket) : server(server), socket(std::move(socket)), timer(server.io_) {}

    void Read() {
      request = {};
      http::async_read(socket, buffer, request, [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec) return;
        self->OnRequest();
      });
    }

    void OnRequest() {
      ++server.received_;
      {
        std::lock_guard lock(server.mu_);
        std::ostringstream text;
        text << request;
        server.last_request_ = text.str();
        ++server.by_path_and_body_[std::string(request.target()) + " " + request.body()];
      }
      if (server.options_.never_answer) return Read();
      timer.expires_after(std::chrono::milliseconds(server.options_.delay_ms));
      timer.async_wait([self = shared_from_this()](beast::error_code) { self->Respond(); });
    }

    void Respond() {
      int64_t none = -1;
      server.received_at_first_response_.compare_exchange_strong(none, server.received_.load());
      auto response = std::make_shared<http::response<http::string_body>>(http::status::ok, 11);
      response->set(http::field::content_type, "application/json");
      response->keep_alive(!server.options_.close_after_response);
      response->body() = server.options_.body;
      response->prepare_payload();
      http::async_write(socket, *response, [self = shared_from_this(), response](beast::error_code ec, size_t) {
        if (ec || self->server.options_.close_after_response || self->server.options_.close_silently) {
          beast::error_code ignored;
          self->socket.shutdown(tcp::socket::shutdown_both, ignored);
          self->socket.close(ignored);
          return;
        }
        self->Read();
      });
    }

    TestServer& server;
    tcp::socket socket;
    asio::steady_timer timer;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
  };

  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec) return;
      ++connections_;
      auto session = std::make_shared<Session>(*this, std::move(socket));
      sessions_.push_back(session);  // keeps never-answered sessions open
      session->Read();
      Accept();
    });
  }

  Options options_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::thread thread_;
  std::vector<std::shared_ptr<Session>> sessions_;
  std::atomic<int64_t> received_{0};
  std::atomic<int64_t> connections_{0};
  std::atomic<int64_t> received_at_first_response_{-1};
  std::mutex mu_;
  std::string last_request_;
  std::map<std::string, int64_t> by_path_and_body_;
};

std::vector<Micros> Constant(double rate_per_s, double duration_s) {
  return *MakeArrivals({.process = ArrivalProcess::kConstant, .rate_per_s = rate_per_s, .duration_s = duration_s});
}

LoadResult RunOrDie(const LoadOptions& options, const std::vector<Micros>& offsets) {
  RealClock clock;
  LoadGenerator generator(clock, options);
  auto result = generator.Run(offsets);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  return result.ok() ? std::move(result).value() : LoadResult{};
}

TEST(LoadGeneratorTest, AllRequestsAnsweredWithBatchSize) {
  TestServer server({});
  LoadResult result = RunOrDie({.url = server.url(), .model = "fraud", .body = R"({"inputs":[]})"}, Constant(1000, 0.2));
  ASSERT_EQ(result.requests.size(), 200u);
  for (const RequestRecord& r : result.requests) {
    EXPECT_EQ(r.outcome, Outcome::kResponse);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.batch_size, 3);
    EXPECT_GE(r.latency_us, 0);
    EXPECT_GE(r.send_lateness_us, 0);
  }
  EXPECT_EQ(server.received(), 200);
  LoadSummary summary = Summarize(result, 0.2);
  EXPECT_EQ(summary.scheduled, 200);
  EXPECT_EQ(summary.sent, 200);
  EXPECT_EQ(summary.ok_2xx, 200);
  EXPECT_EQ(summary.client_overload, 0);
  EXPECT_EQ(summary.timeouts, 0);
  EXPECT_EQ(summary.errors, 0);
  ASSERT_EQ(summary.status_counts.size(), 1u);
  EXPECT_EQ(summary.status_counts[0], std::make_pair(200, int64_t{200}));
  EXPECT_DOUBLE_EQ(summary.mean_batch_size, 3.0);
  EXPECT_EQ(summary.batch_size_responses, 200);
  EXPECT_DOUBLE_EQ(summary.offered_rate_per_s, 1000.0);
  EXPECT_GT(summary.achieved_per_s, 0.0);
  // Keep-alive: far fewer connections than requests.
  EXPECT_LT(result.connections_opened, 200);

  const std::string request = server.last_request();
  EXPECT_TRUE(request.starts_with("POST /v2/models/fraud/infer HTTP/1.1\r\n")) << request;
  EXPECT_NE(request.find("Content-Type: application/json\r\n"), std::string::npos) << request;
  EXPECT_TRUE(request.ends_with("\r\n\r\n{\"inputs\":[]}")) << request;
}

TEST(LoadGeneratorTest, BearerTokenIsSentWhenGivenOnly) {
  TestServer server({});
  RunOrDie({.url = server.url(), .model = "fraud", .body = "{}"}, Constant(100, 0.02));
  EXPECT_EQ(server.last_request().find("Authorization"), std::string::npos) << server.last_request();
  RunOrDie({.url = server.url(), .model = "fraud", .body = "{}", .bearer_token = "tok-0123456789abcdef"},
           Constant(100, 0.02));
  EXPECT_NE(server.last_request().find("\r\nAuthorization: Bearer tok-0123456789abcdef\r\n"), std::string::npos)
      << server.last_request();
}

// A binary tensor body: octet-stream with the JSON header's length.
TEST(LoadGeneratorTest, BinaryBodyCarriesTheInferenceHeaderLength) {
  TestServer server({});
  const std::string body = std::string("{\"inputs\":[]}") + std::string(8, '\x01');
  RunOrDie({.url = server.url(), .model = "fraud", .body = body, .body_header_length = 14}, Constant(100, 0.02));
  const std::string request = server.last_request();
  EXPECT_NE(request.find("\r\nContent-Type: application/octet-stream\r\n"), std::string::npos) << request;
  EXPECT_NE(request.find("\r\nInference-Header-Content-Length: 14\r\n"), std::string::npos) << request;
  EXPECT_TRUE(request.ends_with(body)) << request;
}

// Several targets: each request goes to the model, with the body, the schedule names.
TEST(LoadGeneratorTest, EachRequestGoesToItsTarget) {
  TestServer server({});
  const std::vector<Micros> offsets = Constant(1000, 0.05);
  std::vector<uint32_t> target_of;
  for (size_t i = 0; i < offsets.size(); ++i) target_of.push_back(i % 5 == 0 ? 1 : 0);
  RealClock clock;
  LoadGenerator generator(clock, {.url = server.url(), .targets = {{"fraud", "F"}, {"fashion", "I"}}});
  auto result = generator.Run(offsets, target_of);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(Summarize(*result, 0.05).ok_2xx, 50);
  const auto counts = server.requests_by_path_and_body();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts.at("/v2/models/fraud/infer F"), 40);
  EXPECT_EQ(counts.at("/v2/models/fashion/infer I"), 10);
  // A target per request is required with targets, refused without; indices must exist.
  EXPECT_EQ(generator.Run(offsets).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(generator.Run({0}, {2}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(LoadGenerator(clock, {.url = server.url(), .model = "m"}).Run({0}, {0}).status().code(),
            StatusCode::kInvalidArgument);
}

// Open loop: requests leave on schedule while none has been answered.
// Progress reports rise to the total, never past it.
TEST(LoadGeneratorTest, ReportsProgressUpToTheTotal) {
  TestServer server({});
  std::vector<std::pair<size_t, size_t>> reports;
  LoadResult result = RunOrDie({.url = server.url(), .model = "m", .body = "{}",
                                .on_progress = [&](size_t sent, size_t total) { reports.push_back({sent, total}); }},
                               Constant(1000, 0.05));
  ASSERT_FALSE(reports.empty());
  for (size_t i = 1; i < reports.size(); ++i) EXPECT_GE(reports[i].first, reports[i - 1].first);
  EXPECT_EQ(reports.back().first, 50u);
  EXPECT_EQ(reports.back().second, 50u);
}

TEST(LoadGeneratorTest, SlowServerDoesNotHoldBackSends) {
  TestServer server({.delay_ms = 300});
  LoadResult result = RunOrDie({.url = server.url(), .model = "m", .body = "{}"}, Constant(1000, 0.1));
  ASSERT_EQ(result.requests.size(), 100u);
  // 100 requests are due in the first 100 ms and the first answer comes
  // after 300 ms; a closed-loop client would have sent one per connection
  // and waited. Loose bound: the machine may be busy.
  EXPECT_GE(server.received_at_first_response(), 50);
  for (const RequestRecord& r : result.requests) {
    EXPECT_EQ(r.status, 200);
    // Measured from the scheduled time, so it includes the server's delay.
    EXPECT_GE(r.latency_us, 300 * kMicrosPerMilli);
  }
}

TEST(LoadGeneratorTest, ClientOverloadWhenEveryConnectionIsBusy) {
  TestServer server({.delay_ms = 300});
  LoadResult result = RunOrDie({.url = server.url(), .model = "m", .body = "{}", .max_connections = 2}, Constant(1000, 0.01));
  LoadSummary summary = Summarize(result, 0.01);
  EXPECT_EQ(summary.scheduled, 10);
  EXPECT_EQ(summary.sent + summary.client_overload, 10);
  EXPECT_GE(summary.client_overload, 5);  // 2 connections, answers 300 ms later
  EXPECT_EQ(summary.ok_2xx, summary.sent);
  EXPECT_EQ(result.connections_opened, 2);
  EXPECT_NE(SummaryText(summary).find("client_overload"), std::string::npos);
  for (const RequestRecord& r : result.requests) {
    if (r.outcome == Outcome::kClientOverload) {
      EXPECT_EQ(r.send_lateness_us, -1);
    }
  }
}

TEST(LoadGeneratorTest, UnansweredRequestsTimeOutAfterTheDrain) {
  TestServer server({.never_answer = true});
  LoadResult result =
      RunOrDie({.url = server.url(), .model = "m", .body = "{}", .drain_timeout_s = 0.2}, Constant(100, 0.05));
  ASSERT_EQ(result.requests.size(), 5u);
  for (const RequestRecord& r : result.requests) {
    EXPECT_EQ(r.outcome, Outcome::kTimeout);
    EXPECT_EQ(r.latency_us, -1);
  }
  EXPECT_EQ(Summarize(result, 0.05).timeouts, 5);
}

TEST(LoadGeneratorTest, ConnectionCloseResponsesOpenNewConnections) {
  TestServer server({.close_after_response = true,
                     .body = R"({"outputs":[{"data":[1,2,3]}],"parameters":{"queue_ms":1.5,"cold_start":false,
                                 "start_path":"template","cold_start_ms":{"total":3},"batch_size":2,"compute_ms":0.25}})"});
  LoadResult result = RunOrDie({.url = server.url(), .model = "m", .body = "{}"}, Constant(200, 0.1));
  ASSERT_EQ(result.requests.size(), 20u);
  for (const RequestRecord& r : result.requests) {
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.batch_size, 2);
    EXPECT_DOUBLE_EQ(r.compute_ms, 0.25);  // kept per request too: billing rounds per execution
  }
  EXPECT_EQ(result.connections_opened, 20);
  // Other numeric parameters are averaged; objects, strings and booleans skipped.
  ASSERT_EQ(result.parameters.size(), 2u);
  EXPECT_EQ(result.parameters[0].name, "queue_ms");
  EXPECT_EQ(result.parameters[0].count, 20);
  EXPECT_DOUBLE_EQ(result.parameters[0].sum, 30.0);
  EXPECT_EQ(result.parameters[1].name, "compute_ms");
}

// A keep-alive connection the server closed while idle: the next request
// on it fails before any response byte and is resent once on a new one.
TEST(LoadGeneratorTest, StaleKeepAliveConnectionIsResentOnce) {
  TestServer server({.close_silently = true});
  LoadResult result = RunOrDie({.url = server.url(), .model = "m", .body = "{}"}, Constant(50, 0.1));
  ASSERT_EQ(result.requests.size(), 5u);
  for (const RequestRecord& r : result.requests) EXPECT_EQ(r.status, 200);
  EXPECT_EQ(result.stale_retries, 4);
  EXPECT_EQ(server.received(), 5);
}

TEST(LoadGeneratorTest, WarmupRequestsAreSentButNotReported) {
  TestServer server({});
  LoadResult result = RunOrDie({.url = server.url(), .model = "m", .body = "{}", .warmup_us = 50 * kMicrosPerMilli},
                               Constant(1000, 0.1));
  EXPECT_EQ(server.received(), 100);
  EXPECT_EQ(result.warmup_requests, 50);
  ASSERT_EQ(result.requests.size(), 50u);
  EXPECT_EQ(result.requests.front().offset_us, 50 * kMicrosPerMilli);
}

TEST(LoadGeneratorTest, RefusedConnectionsAreErrors) {
  uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor probe(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = probe.local_endpoint().port();
  }  // closed: nothing listens there now
  LoadResult result = RunOrDie({.url = "http://127.0.0.1:" + std::to_string(port), .model = "m", .body = "{}"},
                               Constant(1000, 0.005));
  ASSERT_EQ(result.requests.size(), 5u);
  for (const RequestRecord& r : result.requests) {
    EXPECT_EQ(r.outcome, Outcome::kError);
    EXPECT_EQ(r.error, ErrorCause::kConnectionRefused);
  }
  const LoadSummary summary = Summarize(result, 0.005);
  EXPECT_EQ(summary.errors, 5);
  EXPECT_EQ(LoadExitCode(summary), 1);
}

TEST(LoadGeneratorTest, BadOptionsAreInvalidArgument) {
  RealClock clock;
  auto run = [&](LoadOptions options, std::vector<Micros> offsets) {
    return LoadGenerator(clock, std::move(options)).Run(offsets).status();
  };
  EXPECT_EQ(run({.url = "https://x:1", .model = "m"}, {0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({.url = "http://127.0.0.1:1", .model = ""}, {0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({.url = "http://127.0.0.1:1", .model = "a/b"}, {0}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({.url = "http://127.0.0.1:1", .model = "m", .max_connections = 0}, {0}).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(run({.url = "http://127.0.0.1:1", .model = "m"}, {5, 3}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({.url = "http://127.0.0.1:1", .model = "m"}, {-1}).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(run({.url = "http://127.0.0.1:1", .model = "m", .body = "{}", .body_header_length = 3}, {0}).code(),
            StatusCode::kInvalidArgument);  // the header cannot be longer than the body
  // An empty schedule is a valid, empty run.
  EXPECT_TRUE(run({.url = "http://127.0.0.1:1", .model = "m"}, {}).ok());
}

TEST(LoadGeneratorTest, ParseHttpUrl) {
  auto url = ParseHttpUrl("http://127.0.0.1:8080");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8080);
  EXPECT_EQ(ParseHttpUrl("http://localhost/")->port, 80);
  EXPECT_EQ(ParseHttpUrl("http://[::1]:9000")->host, "::1");
  EXPECT_EQ(ParseHttpUrl("http://[::1]:9000")->port, 9000);
  for (const char* bad : {"127.0.0.1:8080", "https://h:1", "http://h:1/v2", "http://h:0", "http://h:99999", "http://h:",
                          "http://:80", "http://u@h:1", "http://[::1"}) {
    auto parsed = ParseHttpUrl(bad);
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace thaw::load
