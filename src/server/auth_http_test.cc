// Access control over real sockets: a runtime with real workers, the main and
// the admin listener on one io_context, a blocking HTTP client. Every route of
// the route table (server/auth.h) is tried without a token, with a wrong one,
// with too low a scope, and as a browser would send it cross-site.
#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "base/clock.h"
#include "base/test_paths.h"
#include "runtime/runtime.h"
#include "server/auth.h"
#include "server/http_server.h"

namespace thaw {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr std::string_view kAdminToken = "admin-token-0123456789abcdef";
constexpr std::string_view kInferToken = "infer-token-0123456789abcdef";
constexpr std::string_view kMetricsToken = "metrics-token-0123456789abcd";

struct Reply {
  int status = 0;
  std::string body;
  std::string www_authenticate;
  std::string allow_origin;  // Access-Control-Allow-Origin
};

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string FraudRequest() {
  std::string data;
  for (int i = 0; i < 30; ++i) data += (i ? ",0" : "0");
  return R"({"inputs":[{"name":"features","shape":[1,30],"datatype":"FP32","data":[)" + data + "]}]}";
}

// A body each route accepts (or ignores).
std::string BodyFor(std::string_view method, std::string_view path) {
  if (path.ends_with("/infer")) return FraudRequest();
  if (path.ends_with("/settings") && method == "PUT") return R"({"keep_alive_s": 30})";
  if (path.ends_with("/index")) return "{}";
  return "";
}

std::string WithModel(std::string_view path, std::string_view model = "fraud") {
  std::string out(path);
  if (auto at = out.find("{m}"); at != std::string::npos) out.replace(at, 3, model);
  return out;
}

class AuthHttpTest : public ::testing::Test {
 protected:
  // tokens: require them; admin_port: a second listener for admin routes.
  void Start(bool tokens, bool admin_port) {
    if (!std::filesystem::exists(TestSourceDir() + "/examples/models/fraud/model.pt"))
      GTEST_SKIP() << "example model 'fraud' is missing; run models/build_models.py";
    runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{TestBuildDir() + "/thaw-worker"});
    auto config = LoadModelConfig(TestSourceDir() + "/examples/models/fraud");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    ASSERT_TRUE(runtime_->AddModel(config.value()).ok());
    AccessOptions options;
    if (tokens)
      options.tokens = {{std::string(kAdminToken), Scope::kAdmin},
                        {std::string(kInferToken), Scope::kInfer},
                        {std::string(kMetricsToken), Scope::kMetrics}};
    options.allowed_origins = {"https://dash.example.com"};
    access_ = std::make_unique<AccessPolicy>(std::move(options));
    const std::string repo = TestSourceDir() + "/examples/models";
    const Observability observability{
        .metrics = &metrics_,
        .stats_json = [] { return std::string("{}"); },
        .model_stats_json = [](const std::string&) -> std::optional<std::string> { return "{}"; },
        .inference_statistics = &inference_statistics_};
    main_handler_ = std::make_unique<V2Handler>(*runtime_, clock_, repo, observability);
    main_handler_->SetAccess(access_.get(), admin_port ? RouteSet::kMain : RouteSet::kAll);
    main_ = std::make_unique<HttpServer>(io_, *main_handler_, clock_, HttpServerOptions{.port = 0});
    ASSERT_TRUE(main_->Start().ok());
    if (admin_port) {
      admin_handler_ = std::make_unique<V2Handler>(*runtime_, clock_, repo, observability);
      admin_handler_->SetAccess(access_.get(), RouteSet::kAdmin);
      admin_ = std::make_unique<HttpServer>(io_, *admin_handler_, clock_, HttpServerOptions{.port = 0});
      ASSERT_TRUE(admin_->Start().ok());
    }
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &child, nullptr);
    WaitForTemplate();
  }

  // The model's template loads libtorch and the model before the first cold
  // start can fork from it; on a busy machine that alone can take longer than
  // fraud's request deadline, which is not what these tests are about.
  void WaitForTemplate() {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < give_up) {
      std::promise<bool> ready;
      asio::post(io_, [&] {
        auto status = runtime_->GetModelStatus("fraud");
        ready.set_value(status.ok() && status->spawner && status->spawner->ready);
      });
      if (ready.get_future().get()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "the template of fraud did not become ready in 120 s";
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      main_->Stop();
      if (admin_) admin_->Stop();
      runtime_->Shutdown();
      work_.reset();
      io_.stop();
    });
    thread_.join();
  }

  // The port the route's class is served on.
  uint16_t PortFor(RouteClass route_class) const {
    return admin_ && route_class == RouteClass::kAdmin ? admin_->port() : main_->port();
  }

  // One request on a new connection. Host is "localhost" and Content-Type
  // application/json (with a body) unless `headers` names them.
  Reply Send(uint16_t port, std::string_view method, const std::string& target, const std::string& body,
             const Headers& headers) {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
    http::request<http::string_body> req{http::string_to_verb(beast::string_view(method.data(), method.size())),
                                         target, 11};
    bool host = false, content_type = false;
    for (const auto& [name, value] : headers) {
      host |= beast::iequals(name, "Host");
      content_type |= beast::iequals(name, "Content-Type");
      if (!value.empty() || !beast::iequals(name, "Content-Type")) req.set(name, value);
    }
    if (!host) req.set(http::field::host, "localhost");
    if (!content_type && !body.empty()) req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    return {static_cast<int>(res.result_int()), res.body(), std::string(res[http::field::www_authenticate]),
            std::string(res[http::field::access_control_allow_origin])};
  }

  Reply SendRoute(const RouteExample& route, const Headers& headers) {
    const std::string path = WithModel(route.path);
    return Send(PortFor(route.route_class), route.method, path, BodyFor(route.method, path), headers);
  }

  static Headers Bearer(std::string_view token) { return {{"Authorization", "Bearer " + std::string(token)}}; }

  asio::io_context io_;
  RealClock clock_;
  PrometheusMetrics metrics_;
  std::unique_ptr<Runtime> runtime_;
  InferenceStatistics inference_statistics_;
  std::unique_ptr<AccessPolicy> access_;
  std::unique_ptr<V2Handler> main_handler_, admin_handler_;
  std::unique_ptr<HttpServer> main_, admin_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
};

TEST_F(AuthHttpTest, EveryProtectedRouteRefusesMissingWrongAndLowScopeTokens) {
  Start(/*tokens=*/true, /*admin_port=*/true);
  if (IsSkipped()) return;
  for (const RouteExample& route : RouteTable()) {
    const std::string what = std::string(route.method) + " " + std::string(route.path);
    if (route.route_class == RouteClass::kHealth) {
      // No token needed: 200, or ready's own 400 while the model's artifact is prepared (never 401/403).
      auto open = [](const Reply& r) { return r.status == 200 || (r.status == 400 && r.body.find("not ready") != std::string::npos); };
      EXPECT_TRUE(open(SendRoute(route, {}))) << what;
      EXPECT_TRUE(open(Send(admin_->port(), route.method, std::string(route.path), "", {}))) << what;
      continue;
    }
    Reply none = SendRoute(route, {});
    EXPECT_EQ(none.status, 401) << what << ": " << none.body;
    EXPECT_EQ(none.www_authenticate.rfind("Bearer", 0), 0u) << what;
    EXPECT_NE(none.body.find("\"error\""), std::string::npos) << none.body;
    Reply wrong = SendRoute(route, Bearer("wrong-token-0123456789abcdef"));
    EXPECT_EQ(wrong.status, 401) << what << ": " << wrong.body;
    EXPECT_NE(wrong.www_authenticate.find("invalid_token"), std::string::npos) << what;
    Reply scheme = SendRoute(route, {{"Authorization", "Basic " + std::string(kAdminToken)}});
    EXPECT_EQ(scheme.status, 401) << what << ": " << scheme.body;
    if (route.route_class != RouteClass::kMetrics) {
      Reply low = SendRoute(route, Bearer(kMetricsToken));
      EXPECT_EQ(low.status, 403) << what << ": " << low.body;
      EXPECT_NE(low.body.find("scope"), std::string::npos) << low.body;
    }
    if (route.route_class == RouteClass::kAdmin) {
      Reply infer = SendRoute(route, Bearer(kInferToken));
      EXPECT_EQ(infer.status, 403) << what << ": " << infer.body;
      EXPECT_NE(infer.body.find("scope 'admin'"), std::string::npos) << infer.body;
    }
  }
}

TEST_F(AuthHttpTest, RightScopeReachesEveryRoute) {
  Start(/*tokens=*/true, /*admin_port=*/true);
  if (IsSkipped()) return;
  for (const RouteExample& route : RouteTable()) {
    const std::string what = std::string(route.method) + " " + std::string(route.path);
    const std::string_view token = route.route_class == RouteClass::kAdmin   ? kAdminToken
                                   : route.route_class == RouteClass::kInfer ? kInferToken
                                                                             : kMetricsToken;
    Reply reply = SendRoute(route, Bearer(token));
    // The route itself answers: 200, its own 404 once unload has run (the table ends with it), or a
    // ready route's own 400 while the just-deployed model's artifact is prepared.
    const bool ready_route = std::string_view(route.path).ends_with("/ready");
    const bool own_not_ready = ready_route && reply.status == 400 &&
                               (reply.body.find("preparing") != std::string::npos ||
                                reply.body.find("not ready") != std::string::npos);
    EXPECT_TRUE(reply.status == 200 || own_not_ready ||
                (reply.status == 404 && reply.body.find("not loaded") != std::string::npos))
        << what << ": " << reply.status << " " << reply.body;
    if (route.route_class != RouteClass::kHealth) {
      Reply admin = SendRoute(route, Bearer(kAdminToken));  // admin implies every scope
      EXPECT_NE(admin.status, 401) << what;
      EXPECT_NE(admin.status, 403) << what;
    }
  }
}

TEST_F(AuthHttpTest, AdminRoutesOnlyOnTheAdminPortAndInferOnlyOnTheMainPort) {
  Start(/*tokens=*/true, /*admin_port=*/true);
  if (IsSkipped()) return;
  const Headers admin = Bearer(kAdminToken);
  Reply status_on_main = Send(main_->port(), "GET", "/v2/models/fraud/status", "", admin);
  EXPECT_EQ(status_on_main.status, 404);
  EXPECT_NE(status_on_main.body.find("admin port"), std::string::npos) << status_on_main.body;
  EXPECT_EQ(Send(main_->port(), "POST", "/v2/repository/models/fraud/unload", "", admin).status, 404);
  EXPECT_EQ(Send(main_->port(), "PUT", "/v2/models/fraud/settings", R"({"keep_alive_s": 30})", admin).status, 404);
  EXPECT_EQ(Send(admin_->port(), "GET", "/v2/models/fraud/status", "", admin).status, 200);
  Reply infer_on_admin = Send(admin_->port(), "POST", "/v2/models/fraud/infer", FraudRequest(), admin);
  EXPECT_EQ(infer_on_admin.status, 404);
  EXPECT_NE(infer_on_admin.body.find("main port"), std::string::npos) << infer_on_admin.body;
  EXPECT_EQ(Send(main_->port(), "POST", "/v2/models/fraud/infer", FraudRequest(), admin).status, 200);
  EXPECT_EQ(Send(admin_->port(), "GET", "/metrics", "", admin).status, 200);
  EXPECT_EQ(Send(main_->port(), "GET", "/metrics", "", admin).status, 200);
  // Unknown paths need admin and are not served on the main port.
  EXPECT_EQ(Send(main_->port(), "GET", "/v2/models/fraud/nothing", "", {}).status, 404);
  EXPECT_EQ(Send(admin_->port(), "GET", "/v2/models/fraud/nothing", "", {}).status, 401);
  EXPECT_EQ(Send(admin_->port(), "GET", "/v2/models/fraud/nothing", "", Bearer(kInferToken)).status, 403);
  EXPECT_EQ(Send(admin_->port(), "GET", "/v2/models/fraud/nothing", "", admin).status, 404);
}

TEST_F(AuthHttpTest, CrossSiteRequestsAreRefusedOnEveryStateChangingRoute) {
  Start(/*tokens=*/false, /*admin_port=*/false);  // the default: loopback, no tokens
  if (IsSkipped()) return;
  for (const RouteExample& route : RouteTable()) {
    if (route.method == "GET") continue;
    const std::string what = std::string(route.method) + " " + std::string(route.path);
    const std::string path = WithModel(route.path, "nope");  // refused before the route could act
    const std::string body = BodyFor(route.method, path);
    // A form or text/plain POST: what a page may send cross-site without a preflight.
    for (std::string_view type : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b"}) {
      Reply reply = Send(main_->port(), route.method, path, body, {{"Content-Type", std::string(type)}});
      EXPECT_EQ(reply.status, 415) << what << " " << type << ": " << reply.body;
      EXPECT_NE(reply.body.find("Content-Type"), std::string::npos) << reply.body;
    }
    Reply origin = Send(main_->port(), route.method, path, body, {{"Origin", "https://attacker.example"}});
    EXPECT_EQ(origin.status, 403) << what << ": " << origin.body;
    EXPECT_NE(origin.body.find("header Origin"), std::string::npos) << origin.body;
    Reply rebound = Send(main_->port(), route.method, path, body, {{"Host", "attacker.example:8080"}});
    EXPECT_EQ(rebound.status, 403) << what << ": " << rebound.body;
    EXPECT_NE(rebound.body.find("header Host"), std::string::npos) << rebound.body;
  }
  // The model is still there and serving; an allowed origin and a JSON body pass.
  Reply infer = Send(main_->port(), "POST", "/v2/models/fraud/infer", FraudRequest(),
                     {{"Origin", "https://dash.example.com"}, {"Content-Type", "application/json; charset=utf-8"}});
  EXPECT_EQ(infer.status, 200) << infer.body;
  EXPECT_EQ(infer.allow_origin, "https://dash.example.com");
  // The allowed page's preflight is answered; a foreign page's is refused, and
  // a foreign page's reads carry no CORS header (its script cannot read them).
  Reply preflight = Send(main_->port(), "OPTIONS", "/v2/models/fraud/infer", "",
                         {{"Origin", "https://dash.example.com"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_EQ(preflight.allow_origin, "https://dash.example.com");
  Reply foreign_preflight = Send(main_->port(), "OPTIONS", "/v2/models/fraud/infer", "",
                                 {{"Origin", "https://attacker.example"}, {"Access-Control-Request-Method", "POST"}});
  EXPECT_EQ(foreign_preflight.status, 403);
  EXPECT_EQ(foreign_preflight.allow_origin, "");
  Reply foreign_read = Send(main_->port(), "GET", "/v2/models/fraud", "", {{"Origin", "https://attacker.example"}});
  EXPECT_EQ(foreign_read.status, 200);
  EXPECT_EQ(foreign_read.allow_origin, "");
  // Bodyless POSTs without Content-Type (curl -X POST) pass.
  EXPECT_EQ(Send(main_->port(), "POST", "/v2/repository/index", "", {}).status, 200);
}

}  // namespace
}  // namespace thaw
