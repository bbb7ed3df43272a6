// HTTP tests over real sockets: the server and runtime run on an io_context
// thread with real worker processes; the test is a plain blocking HTTP client.
#include "server/http_server.h"

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <future>

#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "base/clock.h"
#include "base/test_paths.h"
#include "runtime/runtime.h"

namespace thaw {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::string header_length;
  std::string retry_after;
  std::string allow;
};

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(TestSourceDir() + "/examples/models/fraud/model.pt"))
      GTEST_SKIP() << "example model 'fraud' is missing; run models/build_models.py";
    runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{TestBuildDir() + "/thaw-worker"});
    auto config = LoadModelConfig(TestSourceDir() + "/examples/models/fraud");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    // These tests are about HTTP, not deadlines: fraud's 5 s timeout is
    // overrun by the 800k-row request on a loaded 2-core CI machine.
    config.value().timeout_ms = 120000;
    ASSERT_TRUE(runtime_->AddModel(config.value()).ok());
    handler_ = std::make_unique<V2Handler>(*runtime_, clock_);
    server_ = std::make_unique<HttpServer>(io_, *handler_, clock_, options_);
    ASSERT_TRUE(server_->Start().ok());
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
    // Worker exits raise SIGCHLD; let the server thread take it, not this
    // thread's blocking client calls (which would fail with EINTR).
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &child, nullptr);
    Connect();
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      server_->Stop();
      runtime_->Shutdown();
      work_.reset();
      io_.stop();
    });
    thread_.join();
  }

  void Connect() {
    stream_ = std::make_unique<beast::tcp_stream>(client_io_);
    stream_->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
    ::fcntl(stream_->socket().native_handle(), F_SETFD, FD_CLOEXEC);  // the test's own sockets: not the server's
  }

  // The server's counters, read on its thread.
  HttpServerStats Stats() {
    std::promise<HttpServerStats> promise;
    asio::post(io_, [&] { promise.set_value(server_->stats()); });
    return promise.get_future().get();
  }

  Reply Send(http::verb method, const std::string& target, const std::string& body = "",
             std::optional<size_t> header_length = std::nullopt) {
    http::request<http::string_body> req{method, target, 11};
    req.set(http::field::host, "localhost");
    if (header_length) req.set("Inference-Header-Content-Length", std::to_string(*header_length));
    req.body() = body;
    req.prepare_payload();
    http::write(*stream_, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(*stream_, buffer, res);
    Reply reply;
    reply.status = res.result_int();
    reply.body = res.body();
    reply.content_type = std::string(res[http::field::content_type]);
    reply.header_length = std::string(res["Inference-Header-Content-Length"]);
    reply.retry_after = std::string(res[http::field::retry_after]);
    reply.allow = std::string(res[http::field::allow]);
    return reply;
  }

  static std::string Features(int rows) {
    std::string data;
    for (int i = 0; i < rows * 30; ++i) data += (i ? "," : "") + std::to_string(i % 7);
    return R"({"id":"req-1","inputs":[{"name":"features","shape":[)" + std::to_string(rows) +
           R"(,30],"datatype":"FP32","data":[)" + data + "]}]}";
  }

  // Reads raw bytes until the server closes the connection, at most 10 s.
  // Returns what arrived and whether the connection was closed.
  std::pair<std::string, bool> ReadUntilClosed() {
    std::string received;
    bool closed = false;
    std::array<char, 4096> chunk;
    std::function<void()> read_more = [&] {
      stream_->expires_after(std::chrono::seconds(10));
      stream_->async_read_some(asio::buffer(chunk), [&](beast::error_code ec, size_t n) {
        received.append(chunk.data(), n);
        if (ec == asio::error::eof || ec == asio::error::connection_reset) closed = true;
        if (!ec) read_more();
      });
    };
    read_more();
    client_io_.restart();
    client_io_.run();
    return {received, closed};
  }

  HttpServerOptions options_{.port = 0};
  asio::io_context io_;
  RealClock clock_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<V2Handler> handler_;
  std::unique_ptr<HttpServer> server_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  asio::io_context client_io_;
  std::unique_ptr<beast::tcp_stream> stream_;
};

TEST_F(HttpServerTest, ServerMetadataAndHealth) {
  Reply meta = Send(http::verb::get, "/v2");
  EXPECT_EQ(meta.status, 200);
  EXPECT_NE(meta.body.find("\"binary_tensor_data\""), std::string::npos) << meta.body;
  EXPECT_EQ(Send(http::verb::get, "/v2/health/live").status, 200);
  // Ready (200) once the zygote has started; 400 (the protocol's "not ready") until then.
  int ready = 0;
  for (int i = 0; i < 600 && (ready = Send(http::verb::get, "/v2/health/ready").status) != 200; ++i) {
    EXPECT_EQ(ready, 400);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(ready, 200);
  EXPECT_EQ(Send(http::verb::get, "/v2/models/fraud/ready").status, 200);
  EXPECT_EQ(Send(http::verb::get, "/v2/models/fraud/versions/1/ready").status, 200);
}

TEST_F(HttpServerTest, ModelMetadata) {
  Reply meta = Send(http::verb::get, "/v2/models/fraud");
  EXPECT_EQ(meta.status, 200);
  EXPECT_NE(meta.body.find("\"features\""), std::string::npos) << meta.body;
  EXPECT_NE(meta.body.find("[-1,30]"), std::string::npos) << meta.body;
}

TEST_F(HttpServerTest, UnknownModelAndRouteAre404WithJsonError) {
  Reply model = Send(http::verb::get, "/v2/models/nope");
  EXPECT_EQ(model.status, 404);
  EXPECT_NE(model.body.find("\"error\""), std::string::npos);
  EXPECT_NE(model.body.find("nope"), std::string::npos);
  EXPECT_EQ(Send(http::verb::post, "/v2/models/nope/infer", Features(1)).status, 404);
  EXPECT_EQ(Send(http::verb::get, "/v2/models/fraud/versions/7").status, 404);
  EXPECT_EQ(Send(http::verb::get, "/v3").status, 404);
}

TEST_F(HttpServerTest, WrongMethodIs405) {
  Reply reply = Send(http::verb::get, "/v2/models/fraud/infer");
  EXPECT_EQ(reply.status, 405);
  EXPECT_EQ(reply.allow, "POST");
}

TEST_F(HttpServerTest, BadBodiesAre400WithMessage) {
  Reply malformed = Send(http::verb::post, "/v2/models/fraud/infer", "{\"inputs\": [");
  EXPECT_EQ(malformed.status, 400);
  EXPECT_NE(malformed.body.find("\"error\""), std::string::npos);
  std::string wrong_shape = R"({"inputs":[{"name":"features","shape":[1,29],"datatype":"FP32","data":[0)";
  for (int i = 1; i < 29; ++i) wrong_shape += ",0";
  wrong_shape += "]}]}";
  Reply shape = Send(http::verb::post, "/v2/models/fraud/infer", wrong_shape);
  EXPECT_EQ(shape.status, 400) << shape.body;
  EXPECT_NE(shape.body.find("features"), std::string::npos) << shape.body;
  Reply bad_header = Send(http::verb::post, "/v2/models/fraud/infer", Features(1), size_t{1} << 40);
  EXPECT_EQ(bad_header.status, 400) << bad_header.body;
}

TEST_F(HttpServerTest, InferOverKeepAliveReportsColdThenWarm) {
  Reply first = Send(http::verb::post, "/v2/models/fraud/infer", Features(2));
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(first.content_type, "application/json");
  EXPECT_NE(first.body.find("\"id\":\"req-1\""), std::string::npos) << first.body;
  EXPECT_NE(first.body.find("\"cold_start\":true"), std::string::npos) << first.body;
  EXPECT_NE(first.body.find("\"shape\":[2,2]"), std::string::npos) << first.body;
  Reply second = Send(http::verb::post, "/v2/models/fraud/versions/1/infer", Features(1));
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_NE(second.body.find("\"cold_start\":false"), std::string::npos) << second.body;
}

TEST_F(HttpServerTest, BodyLargerThanOneReadIsReadWhole) {
  const std::string body = Features(1000);  // ~60 kB: several reads after the header
  ASSERT_GT(body.size(), 32u << 10);
  Reply reply = Send(http::verb::post, "/v2/models/fraud/infer", body);
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_NE(reply.body.find("\"shape\":[1000,2]"), std::string::npos) << reply.body.substr(0, 300);
  EXPECT_EQ(Send(http::verb::post, "/v2/models/fraud/infer", Features(1)).status, 200);  // same connection
}

TEST_F(HttpServerTest, ResponseLargerThanTheSocketTakesIsWrittenWhole) {
  // Over 4 MiB (Linux's default largest TCP send buffer) with a small client
  // receive buffer: the server's first send is partial and the rest follows.
  stream_ = std::make_unique<beast::tcp_stream>(client_io_);
  stream_->socket().open(tcp::v4());
  stream_->socket().set_option(asio::socket_base::receive_buffer_size(4096));
  stream_->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  Reply big = Send(http::verb::post, "/v2/models/fraud/infer", Features(800000));
  ASSERT_EQ(big.status, 200) << big.body.substr(0, 300);
  EXPECT_GT(big.body.size(), 4u << 20);
  EXPECT_NE(big.body.find("\"shape\":[800000,2]"), std::string::npos) << big.body.substr(0, 300);
  EXPECT_TRUE(big.body.ends_with("}")) << big.body.substr(big.body.size() - 100);
  EXPECT_EQ(Send(http::verb::post, "/v2/models/fraud/infer", Features(1)).status, 200);  // same connection
}

TEST_F(HttpServerTest, BinaryTensorsInAndOut) {
  const std::string header =
      R"({"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","parameters":{"binary_data_size":120}}],)"
      R"("parameters":{"binary_data_output":true}})";
  std::string body = header;
  std::vector<float> features(30, 1.0f);
  body.append(reinterpret_cast<const char*>(features.data()), 120);
  Reply reply = Send(http::verb::post, "/v2/models/fraud/infer", body, header.size());
  ASSERT_EQ(reply.status, 200) << reply.body;
  EXPECT_EQ(reply.content_type, "application/octet-stream");
  ASSERT_FALSE(reply.header_length.empty());
  const size_t json_length = std::stoul(reply.header_length);
  ASSERT_EQ(reply.body.size(), json_length + 2 * sizeof(float));
  EXPECT_NE(reply.body.substr(0, json_length).find("\"binary_data_size\":8"), std::string::npos);
  float probabilities[2];
  std::memcpy(probabilities, reply.body.data() + json_length, sizeof(probabilities));
  EXPECT_NEAR(probabilities[0] + probabilities[1], 1.0f, 1e-5);
}

TEST_F(HttpServerTest, ExpectContinueGetsTheGoAheadThenTheResponse) {
  const std::string body = Features(1);
  const std::string head = "POST /v2/models/fraud/infer HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                           "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  asio::write(*stream_, asio::buffer(head));
  std::string go_ahead(25, '\0');
  asio::read(*stream_, asio::buffer(go_ahead));
  EXPECT_EQ(go_ahead, "HTTP/1.1 100 Continue\r\n\r\n");
  asio::write(*stream_, asio::buffer(body));
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(*stream_, buffer, res);
  EXPECT_EQ(res.result_int(), 200) << res.body();
  EXPECT_NE(res.body().find("\"shape\":[1,2]"), std::string::npos) << res.body();
}

TEST_F(HttpServerTest, ConnectionCloseIsAnsweredThenClosed) {
  asio::write(*stream_, asio::buffer(std::string("GET /v2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")));
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << received;
  EXPECT_NE(received.find("\r\nConnection: close\r\n"), std::string::npos) << received;
  const size_t body_at = received.find("\r\n\r\n");
  ASSERT_NE(body_at, std::string::npos);
  const std::string body = received.substr(body_at + 4);
  EXPECT_NE(received.find("\r\nContent-Length: " + std::to_string(body.size()) + "\r\n"), std::string::npos) << received;
}

TEST_F(HttpServerTest, HeadGetsTheLengthButNoBody) {
  const std::string get_body = Send(http::verb::get, "/v2").body;
  asio::write(*stream_, asio::buffer(std::string("HEAD /v2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")));
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << received;
  EXPECT_NE(received.find("\r\nContent-Length: " + std::to_string(get_body.size()) + "\r\n"), std::string::npos)
      << received;
  EXPECT_TRUE(received.ends_with("\r\n\r\n")) << received;
}

class HttpServerIdleTest : public HttpServerTest {
 protected:
  HttpServerIdleTest() { options_.idle_timeout = kIdle; }
  static constexpr std::chrono::milliseconds kIdle{200};
};

TEST_F(HttpServerIdleTest, IdleKeepAliveConnectionIsClosed) {
  const auto sent = std::chrono::steady_clock::now();  // the server's idle time starts after this
  ASSERT_EQ(Send(http::verb::get, "/v2/health/live").status, 200);
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received, "");
  EXPECT_GE(std::chrono::steady_clock::now() - sent, kIdle);
}

TEST_F(HttpServerIdleTest, PartialRequestIsClosedAtTheTimeout) {
  asio::write(*stream_, asio::buffer(std::string("POST /v2/models/fraud/infer HTTP/1.1\r\nHost: loc")));
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received, "");
}

TEST_F(HttpServerIdleTest, ConnectionInUseStaysOpen) {
  // Requests every half timeout for three timeouts, all on one connection.
  for (int i = 0; i < 6; ++i) {
    ASSERT_EQ(Send(http::verb::get, "/v2/health/live").status, 200) << "request " << i;
    std::this_thread::sleep_for(kIdle / 2);
  }
}

class HttpServerLimitsTest : public HttpServerTest {
 protected:
  HttpServerLimitsTest() {
    options_.max_body_bytes = 4 << 20;
    options_.max_buffered_body_bytes = 1 << 20;
    options_.body_read_timeout = kBodyTimeout;
    options_.accept_backoff = std::chrono::milliseconds(50);
  }
  static constexpr std::chrono::milliseconds kBodyTimeout{400};

  static std::string PostHead(size_t content_length) {
    return "POST /v2/models/fraud/infer HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           "Content-Length: " + std::to_string(content_length) + "\r\n\r\n";
  }
};

TEST_F(HttpServerLimitsTest, HeaderOver8KiBIs431ThenClosed) {
  const std::string head = "GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: " + std::string(9000, 'a') +
                           "\r\n\r\n";
  asio::write(*stream_, asio::buffer(head));
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received.rfind("HTTP/1.1 431 ", 0), 0u) << received;
  EXPECT_NE(received.find("{\"error\":"), std::string::npos) << received;
  EXPECT_EQ(Stats().refused_header_too_large, 1u);
}

TEST_F(HttpServerLimitsTest, BodyOverTheRequestLimitIs413ThenClosed) {
  asio::write(*stream_, asio::buffer(PostHead(5 << 20) + std::string(1000, '1')));
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received.rfind("HTTP/1.1 413 ", 0), 0u) << received;
  EXPECT_NE(received.find("exceeds"), std::string::npos) << received;
}

TEST_F(HttpServerLimitsTest, BodiesPastTheGlobalCapAre503AndFreed) {
  // Two unfinished bodies of 3 MiB (each under the 4 MiB request limit):
  // the first holds 700 KiB, the second pushes the total past 1 MiB.
  auto first = std::make_unique<beast::tcp_stream>(client_io_);
  first->connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server_->port()));
  asio::write(*first, asio::buffer(PostHead(3 << 20) + std::string(700 << 10, '1')));
  for (int i = 0; i < 100 && Stats().buffered_body_bytes < (700u << 10); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(Stats().buffered_body_bytes, 700u << 10);
  asio::write(*stream_, asio::buffer(PostHead(3 << 20) + std::string(700 << 10, '1')));
  auto [received, closed] = ReadUntilClosed();
  EXPECT_TRUE(closed);
  EXPECT_EQ(received.rfind("HTTP/1.1 503 ", 0), 0u) << received;
  EXPECT_NE(received.find("\r\nRetry-After: 1\r\n"), std::string::npos) << received;
  EXPECT_NE(received.find("retry later"), std::string::npos) << received;
  const HttpServerStats stats = Stats();
  EXPECT_EQ(stats.refused_buffered_bytes, 1u);
  EXPECT_EQ(stats.buffered_body_bytes, 700u << 10);  // the refused body's bytes are released, the other's kept
  EXPECT_LE(stats.peak_buffered_body_bytes, (1u << 20) + (64u << 10));  // at most one read past the cap
  first.reset();  // the client goes away: its bytes are released too
  for (int i = 0; i < 100 && Stats().buffered_body_bytes > 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(Stats().buffered_body_bytes, 0u);
  Connect();
  EXPECT_EQ(Send(http::verb::post, "/v2/models/fraud/infer", Features(1)).status, 200);
}

TEST_F(HttpServerLimitsTest, SlowBodyIs408AtTheBodyReadTimeout) {
  const auto sent = std::chrono::steady_clock::now();
  asio::write(*stream_, asio::buffer(PostHead(1000) + "{\"inputs\":["));
  auto [received, closed] = ReadUntilClosed();
  const auto waited = std::chrono::steady_clock::now() - sent;
  EXPECT_TRUE(closed);
  EXPECT_EQ(received.rfind("HTTP/1.1 408 ", 0), 0u) << received;
  EXPECT_NE(received.find("\r\nConnection: close\r\n"), std::string::npos) << received;
  EXPECT_GE(waited, kBodyTimeout);
  EXPECT_LT(waited, options_.idle_timeout);  // long before the idle timeout
  EXPECT_EQ(Stats().body_read_timeouts, 1u);
  EXPECT_EQ(Stats().buffered_body_bytes, 0u);
}

std::vector<std::string> SocketLinks(pid_t pid) {
  std::vector<std::string> sockets;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    std::error_code ec;
    const auto target = std::filesystem::read_symlink(entry.path(), ec).string();
    if (!ec && target.starts_with("socket:")) sockets.push_back(entry.path().filename().string() + "->" + target);
  }
  return sockets;
}

TEST_F(HttpServerLimitsTest, ProcessesStartedBesideTheServerInheritNoSocket) {
  ASSERT_EQ(Send(http::verb::post, "/v2/models/fraud/infer", Features(1)).status, 200);  // an accepted connection, a worker
  ASSERT_GE(SocketLinks(getpid()).size(), 3u);  // listening, accepted, client (and the worker's)
  pid_t child = 0;
  char sleep_path[] = "/bin/sleep";
  char seconds[] = "10";
  char* argv[] = {sleep_path, seconds, nullptr};
  ASSERT_EQ(::posix_spawn(&child, "/bin/sleep", nullptr, nullptr, argv, environ), 0);
  const auto inherited = SocketLinks(child);  // posix_spawn returns after the exec
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(inherited.empty()) << inherited.size() << " sockets inherited, e.g. " << inherited.front();
}

double CpuSeconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

int ConnectRaw(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(HttpServerLimitsTest, AcceptBacksOffAtTheFdLimitAndRecovers) {
  ASSERT_EQ(Send(http::verb::get, "/v2/health/live").status, 200);
  rlimit original{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &original), 0);
  int highest = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
    highest = std::max(highest, std::stoi(entry.path().filename().string()));
  rlimit lowered = original;
  lowered.rlim_cur = static_cast<rlim_t>(highest + 12);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &lowered), 0);
  // Clients until this process (clients and server share it) runs out:
  // the server then cannot accept the ones waiting in its backlog.
  std::vector<int> clients;
  for (int fd; (fd = ConnectRaw(server_->port())) >= 0;) clients.push_back(fd);
  ASSERT_GE(clients.size(), 3u);
  for (int i = 0; i < 200 && Stats().accept_fd_limit_backoffs == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GT(Stats().accept_fd_limit_backoffs, 0u);
  // A spinning accept loop burns a core; backing off every 50 ms does not.
  const double cpu_before = CpuSeconds();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const double cpu_used = CpuSeconds() - cpu_before;
  EXPECT_LT(cpu_used, 0.5) << "accept loop spinning at the fd limit";
  const HttpServerStats at_limit = Stats();
  EXPECT_LE(at_limit.accept_fd_limit_backoffs, 40u);  // 1 s / 50 ms, plus slack
  // Free the descriptors: the server accepts again and serves a new client.
  for (int fd : clients) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &original), 0);
  Connect();
  EXPECT_EQ(Send(http::verb::get, "/v2/health/live").status, 200);
  EXPECT_GT(Stats().connections_accepted, at_limit.connections_accepted);
}

}  // namespace
}  // namespace thaw
