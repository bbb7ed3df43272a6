#include "server/auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

namespace thaw {
namespace {

constexpr std::string_view kAdminToken = "admin-token-0123456789abcdef";
constexpr std::string_view kInferToken = "infer-token-0123456789abcdef";
constexpr std::string_view kMetricsToken = "metrics-token-0123456789abcd";

std::vector<Token> Tokens() {
  return {{std::string(kAdminToken), Scope::kAdmin},
          {std::string(kInferToken), Scope::kInfer},
          {std::string(kMetricsToken), Scope::kMetrics}};
}

TEST(ConstantTimeEqualsTest, ComparesLikeEquality) {
  EXPECT_TRUE(ConstantTimeEquals("abcdef", "abcdef"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcdeg"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "bbcdef"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcde"));
  EXPECT_FALSE(ConstantTimeEquals("abcdef", "abcdefabcdef"));  // the secret repeated: length still differs
  EXPECT_FALSE(ConstantTimeEquals("abc", ""));
  EXPECT_FALSE(ConstantTimeEquals("", "abc"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(ParseTokensTest, ReadsTokensScopesCommentsAndBlankLines) {
  auto tokens = ParseTokens(
      "# tokens for thaw\n"
      "\n"
      "admin-token-0123456789abcdef admin\n"
      "   infer-token-0123456789abcdef\tinfer   # the load balancer\r\n"
      "metrics-token-0123456789abcd metrics\n"
      "b64+token/with.chars_~-0123== infer",
      "tokens.txt");
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  ASSERT_EQ(tokens->size(), 4u);
  EXPECT_EQ((*tokens)[0].value, kAdminToken);
  EXPECT_EQ((*tokens)[0].scope, Scope::kAdmin);
  EXPECT_EQ((*tokens)[1].value, kInferToken);
  EXPECT_EQ((*tokens)[1].scope, Scope::kInfer);
  EXPECT_EQ((*tokens)[2].scope, Scope::kMetrics);
  EXPECT_EQ((*tokens)[3].value, "b64+token/with.chars_~-0123==");
}

TEST(ParseTokensTest, BadLinesNameFileAndLineButNotTheToken) {
  struct Case {
    std::string text;
    std::string expected;  // part of the message
  };
  const std::string secret = "secret-token-0123456789abcdef";
  const Case cases[] = {
      {"# only a comment\n" + secret + "\n", "f.txt:2: expected '<token> <scope>'"},
      {secret + " infer extra\n", "f.txt:1: expected '<token> <scope>'"},
      {"\n\n" + secret + " root\n", "f.txt:3: scope 'root' is not one of metrics, infer, admin"},
      {"short-token infer\n", "f.txt:1: the token has 11 characters; use at least 16"},
      {"secret\"token-0123456789abcdef infer\n", "f.txt:1: the token may hold only"},
      {"secret-token=0123456789abcdef infer\n", "f.txt:1: the token may hold only"},
      {secret + " infer\n" + secret + " admin\n", "f.txt:2: this token is already given"},
      {"", "f.txt: no tokens"},
      {"# nothing\n\n", "f.txt: no tokens"},
  };
  for (const Case& c : cases) {
    auto tokens = ParseTokens(c.text, "f.txt");
    ASSERT_FALSE(tokens.ok()) << c.text;
    EXPECT_EQ(tokens.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(tokens.status().message().find(c.expected), std::string::npos) << tokens.status().message();
    EXPECT_EQ(tokens.status().message().find("0123456789abcdef"), std::string::npos) << tokens.status().message();
  }
}

TEST(LoadTokenFileTest, WarnsWhenOthersMayReadTheFile) {
  const std::string path = ::testing::TempDir() + "/thaw_tokens_" + std::to_string(::getpid());
  std::ofstream(path) << kAdminToken << " admin\n";
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  std::string warning;
  auto tokens = LoadTokenFile(path, &warning);
  ASSERT_TRUE(tokens.ok()) << tokens.status().ToString();
  EXPECT_EQ(warning, "");
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  tokens = LoadTokenFile(path, &warning);
  ASSERT_TRUE(tokens.ok());
  EXPECT_NE(warning.find("mode 0644"), std::string::npos) << warning;
  EXPECT_EQ(warning.find(kAdminToken), std::string::npos);
  std::filesystem::remove(path);
  auto missing = LoadTokenFile(path, &warning);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(path), std::string::npos);
}

TEST(ClassifyRouteTest, EveryRouteOfTheTableClassifiesAsListed) {
  for (const RouteExample& route : RouteTable()) {
    std::string path(route.path);
    if (auto at = path.find("{m}"); at != std::string::npos) path.replace(at, 3, "fraud");
    EXPECT_EQ(ClassifyRoute(path).route_class, route.route_class) << route.method << " " << path;
  }
}

TEST(ClassifyRouteTest, FollowsTheHandlersPathRulesAndFailsClosed) {
  EXPECT_EQ(ClassifyRoute("//v2//models/fraud///infer?x=1").route_class, RouteClass::kInfer);
  EXPECT_TRUE(ClassifyRoute("/v2/models/fraud/infer").infer);
  EXPECT_FALSE(ClassifyRoute("/v2/models/fraud/config").infer);
  EXPECT_EQ(ClassifyRoute("/v2/models/fraud/config").route_class, RouteClass::kInfer);  // Triton's, read-only
  EXPECT_EQ(ClassifyRoute("/v2/models/fraud/settings").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/v2/models/status").route_class, RouteClass::kInfer);  // metadata of a model "status"
  EXPECT_EQ(ClassifyRoute("/v2/models/m/versions/7/status").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/v2/models/m/warm?instances=3").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/metrics/").route_class, RouteClass::kMetrics);
  EXPECT_EQ(ClassifyRoute("/v2/health/ready?verbose=1").route_class, RouteClass::kHealth);
  // Unknown paths need admin: a route added to the handler but not here is never open.
  EXPECT_EQ(ClassifyRoute("/v2/models/m/infer/more").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/v2/models/m/newroute").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/v2/health").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/v2/health/live/x").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/v3").route_class, RouteClass::kAdmin);
  EXPECT_EQ(ClassifyRoute("/").route_class, RouteClass::kAdmin);
}

TEST(HostNameTest, StripsPortAndBrackets) {
  EXPECT_EQ(HostName("LocalHost:8080"), "localhost");
  EXPECT_EQ(HostName("[::1]:8080"), "::1");
  EXPECT_EQ(HostName("[::1]"), "::1");
  EXPECT_EQ(HostName("10.0.0.1"), "10.0.0.1");
  EXPECT_EQ(HostName("gpu-box.example.com:80"), "gpu-box.example.com");
}

TEST(IsLoopbackAddressTest, LoopbackOnly) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackAddress("::1"));
  EXPECT_TRUE(IsLoopbackAddress("localhost"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackAddress("::"));
  EXPECT_FALSE(IsLoopbackAddress("10.1.2.3"));
}

AccessRequest Get(std::string_view target) { return {.method = "GET", .target = target, .host = "127.0.0.1:8080"}; }

TEST(AccessPolicyTest, WithoutTokensEverythingIsOpenToGets) {
  AccessPolicy policy({});
  EXPECT_FALSE(policy.requires_tokens());
  for (const RouteExample& route : RouteTable())
    EXPECT_FALSE(policy.Check(Get(route.path), RouteSet::kAll)) << route.path;
}

TEST(AccessPolicyTest, TokensAndScopes) {
  AccessPolicy policy({.tokens = Tokens()});
  const std::string admin = "Bearer " + std::string(kAdminToken);
  const std::string infer = "bearer " + std::string(kInferToken);  // the scheme is case-insensitive
  const std::string metrics = "Bearer  " + std::string(kMetricsToken);
  auto check = [&](std::string_view target, std::optional<std::string_view> authorization) {
    AccessRequest request = Get(target);
    request.authorization = authorization;
    return policy.Check(request, RouteSet::kAll);
  };
  // Health needs nothing.
  EXPECT_FALSE(check("/v2/health/live", std::nullopt));
  EXPECT_FALSE(check("/v2/health/ready", "Bearer wrong"));
  // No token: 401 with a challenge.
  auto missing = check("/v2/models/fraud", std::nullopt);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  ASSERT_EQ(missing->headers.size(), 1u);
  EXPECT_EQ(missing->headers[0].first, "WWW-Authenticate");
  EXPECT_EQ(missing->headers[0].second.rfind("Bearer", 0), 0u);
  EXPECT_NE(missing->message.find("Authorization: Bearer"), std::string::npos) << missing->message;
  // Wrong token, wrong scheme, wrong length: 401.
  for (std::string_view bad : {"Bearer admin-token-0123456789abcdeX", "Bearer admin-token-0123456789abcde",
                               "Basic YWRtaW46YWRtaW4=", "Bearer", "admin-token-0123456789abcdef"}) {
    auto refused = check("/v2/models/fraud", bad);
    ASSERT_TRUE(refused) << bad;
    EXPECT_EQ(refused->status, 401) << bad;
    EXPECT_EQ(refused->message.find("0123456789"), std::string::npos) << refused->message;
  }
  // Scopes: metrics < infer < admin.
  EXPECT_FALSE(check("/metrics", metrics));
  EXPECT_FALSE(check("/metrics", infer));
  EXPECT_FALSE(check("/v2/models/fraud", infer));
  EXPECT_FALSE(check("/v2/models/fraud/status", admin));
  auto low = check("/v2/models/fraud/ready", metrics);
  ASSERT_TRUE(low);
  EXPECT_EQ(low->status, 403);
  EXPECT_NE(low->message.find("scope 'infer'"), std::string::npos) << low->message;
  EXPECT_NE(low->message.find("has scope 'metrics'"), std::string::npos) << low->message;
  auto not_admin = check("/v2/models/fraud/status", infer);
  ASSERT_TRUE(not_admin);
  EXPECT_EQ(not_admin->status, 403);
  EXPECT_NE(not_admin->message.find("scope 'admin'"), std::string::npos) << not_admin->message;
  // Every route of the table: none needs less than its class, each lets its scope in.
  for (const RouteExample& route : RouteTable()) {
    AccessRequest request{.method = route.method, .target = route.path, .host = "localhost",
                          .content_type = "application/json"};
    if (route.route_class == RouteClass::kHealth) {
      EXPECT_FALSE(policy.Check(request, RouteSet::kAll)) << route.path;
      continue;
    }
    auto refused = policy.Check(request, RouteSet::kAll);
    ASSERT_TRUE(refused) << route.path;
    EXPECT_EQ(refused->status, 401) << route.path;
    const Scope needed = route.route_class == RouteClass::kAdmin   ? Scope::kAdmin
                         : route.route_class == RouteClass::kInfer ? Scope::kInfer
                                                                   : Scope::kMetrics;
    for (const Token& token : Tokens()) {
      const std::string header = "Bearer " + token.value;
      request.authorization = header;
      auto result = policy.Check(request, RouteSet::kAll);
      if (static_cast<int>(token.scope) >= static_cast<int>(needed)) {
        EXPECT_FALSE(result) << route.method << " " << route.path << " scope " << ScopeName(token.scope);
      } else {
        ASSERT_TRUE(result) << route.path;
        EXPECT_EQ(result->status, 403) << route.method << " " << route.path << " scope " << ScopeName(token.scope);
      }
    }
  }
}

TEST(AccessPolicyTest, ListenersServeTheirRouteClasses) {
  AccessPolicy policy({});
  for (const RouteExample& route : RouteTable()) {
    const AccessRequest request{.method = "GET", .target = route.path, .host = "localhost"};
    auto main = policy.Check(request, RouteSet::kMain);
    auto admin = policy.Check(request, RouteSet::kAdmin);
    EXPECT_FALSE(policy.Check(request, RouteSet::kAll)) << route.path;
    switch (route.route_class) {
      case RouteClass::kHealth:
      case RouteClass::kMetrics:
        EXPECT_FALSE(main) << route.path;
        EXPECT_FALSE(admin) << route.path;
        break;
      case RouteClass::kInfer:
        EXPECT_FALSE(main) << route.path;
        ASSERT_TRUE(admin) << route.path;
        EXPECT_EQ(admin->status, 404);
        EXPECT_NE(admin->message.find("main port"), std::string::npos) << admin->message;
        break;
      case RouteClass::kAdmin:
        EXPECT_FALSE(admin) << route.path;
        ASSERT_TRUE(main) << route.path;
        EXPECT_EQ(main->status, 404);
        EXPECT_NE(main->message.find("admin port"), std::string::npos) << main->message;
        break;
    }
  }
}

TEST(AccessPolicyTest, HostMustBeAnAddressLocalhostOrAllowedOnStateChangingRoutes) {
  AccessPolicy policy({.allowed_hosts = {"Gpu-Box.example.com"}});
  auto post = [&](std::optional<std::string_view> host) {
    return policy.Check({.method = "POST", .target = "/v2/repository/models/fraud/unload", .host = host},
                        RouteSet::kAll);
  };
  for (std::string_view ok : {"localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "10.1.2.3:9000",
                              "[fe80::1]", "gpu-box.example.com:8080", "GPU-BOX.EXAMPLE.COM"})
    EXPECT_FALSE(post(ok)) << ok;
  EXPECT_FALSE(post(std::nullopt));  // HTTP/1.0 clients; browsers always send Host
  for (std::string_view bad : {"attacker.example:8080", "localhost.attacker.example", "127.0.0.1.nip.io:8080",
                               "gpu-box.example.com.evil"}) {
    auto refused = post(bad);
    ASSERT_TRUE(refused) << bad;
    EXPECT_EQ(refused->status, 403) << bad;
    EXPECT_NE(refused->message.find("header Host"), std::string::npos) << refused->message;
    EXPECT_NE(refused->message.find("--allowed-host"), std::string::npos) << refused->message;
  }
  // Reads are not checked: a rebinding page cannot read them without CORS anyway.
  EXPECT_FALSE(policy.Check({.method = "GET", .target = "/v2/models/fraud", .host = "attacker.example"},
                            RouteSet::kAll));
}

TEST(AccessPolicyTest, OriginMustBeAllowedOnStateChangingRoutes) {
  AccessPolicy none({});
  AccessPolicy some({.allowed_origins = {"https://dash.example.com/"}});
  auto post = [](const AccessPolicy& policy, std::string_view origin) {
    return policy.Check({.method = "PUT", .target = "/v2/models/fraud/settings", .host = "localhost",
                         .origin = origin, .content_type = "application/json"},
                        RouteSet::kAll);
  };
  for (std::string_view origin : {"https://attacker.example", "null", "", "http://localhost:8080"}) {
    auto refused = post(none, origin);
    ASSERT_TRUE(refused) << origin;
    EXPECT_EQ(refused->status, 403);
    EXPECT_NE(refused->message.find("header Origin"), std::string::npos) << refused->message;
  }
  EXPECT_FALSE(post(some, "https://dash.example.com"));
  EXPECT_FALSE(post(some, "HTTPS://DASH.example.com"));
  ASSERT_TRUE(post(some, "https://dash.example.com.evil"));
  EXPECT_FALSE(none.Check({.method = "GET", .target = "/v2/models/fraud/settings", .origin = "https://attacker.example"},
                          RouteSet::kAll));
}

TEST(AccessPolicyTest, CorsOnlyForAllowedOrigins) {
  AccessPolicy policy({.allowed_origins = {"https://dash.example.com"}});
  EXPECT_TRUE(policy.IsAllowedOrigin("https://dash.example.com"));
  EXPECT_TRUE(policy.IsAllowedOrigin("https://Dash.Example.com/"));
  EXPECT_FALSE(policy.IsAllowedOrigin("http://dash.example.com"));
  EXPECT_FALSE(policy.IsAllowedOrigin("https://dash.example.com:8443"));
  EXPECT_FALSE(policy.IsAllowedOrigin("null"));
  EXPECT_FALSE(AccessPolicy({}).IsAllowedOrigin("https://dash.example.com"));
  auto headers = AccessPolicy::PreflightHeaders("https://dash.example.com");
  auto value = [&](std::string_view name) {
    for (const auto& [n, v] : headers)
      if (n == name) return v;
    return std::string();
  };
  EXPECT_EQ(value("Access-Control-Allow-Origin"), "https://dash.example.com");
  EXPECT_NE(value("Access-Control-Allow-Headers").find("Authorization"), std::string::npos);
  EXPECT_NE(value("Access-Control-Allow-Methods").find("PUT"), std::string::npos);
  EXPECT_EQ(value("Vary"), "Origin");
}

TEST(AccessPolicyTest, ContentTypeMustBeJsonOrBinaryOnInfer) {
  AccessPolicy policy({});
  auto post = [&](std::string_view target, std::optional<std::string_view> content_type) {
    return policy.Check({.method = "POST", .target = target, .host = "localhost", .content_type = content_type},
                        RouteSet::kAll);
  };
  for (std::string_view target : {"/v2/models/fraud/infer", "/v2/models/fraud/warm", "/v2/repository/index",
                                  "/v2/repository/models/fraud/load"}) {
    EXPECT_FALSE(post(target, "application/json")) << target;
    EXPECT_FALSE(post(target, "Application/JSON; charset=utf-8")) << target;
    EXPECT_FALSE(post(target, std::nullopt)) << target;  // curl -X POST without a body
    // The types a browser sends cross-site without a preflight, and others.
    for (std::string_view bad : {"text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                 "multipart/form-data; boundary=x", "", "application/jsonp"}) {
      auto refused = post(target, bad);
      ASSERT_TRUE(refused) << target << " " << bad;
      EXPECT_EQ(refused->status, 415) << target << " " << bad;
      EXPECT_NE(refused->message.find("header Content-Type"), std::string::npos) << refused->message;
      EXPECT_NE(refused->message.find("application/json"), std::string::npos) << refused->message;
    }
  }
  EXPECT_FALSE(post("/v2/models/fraud/infer", "application/octet-stream"));
  EXPECT_FALSE(post("/v2/models/fraud/versions/1/infer", "application/octet-stream"));
  auto binary_config = post("/v2/models/fraud/warm", "application/octet-stream");
  ASSERT_TRUE(binary_config);
  EXPECT_EQ(binary_config->status, 415);
  // GETs carry no body: their Content-Type does not matter.
  EXPECT_FALSE(policy.Check({.method = "GET", .target = "/v2/models/fraud", .content_type = "text/plain"},
                            RouteSet::kAll));
}

TEST(AccessPolicyTest, TokenIsCheckedBeforeBrowserRules) {
  AccessPolicy policy({.tokens = Tokens()});
  auto refused = policy.Check({.method = "POST", .target = "/v2/repository/models/fraud/unload",
                               .host = "attacker.example", .origin = "https://attacker.example",
                               .content_type = "text/plain"},
                              RouteSet::kAll);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 401);
  const std::string admin = "Bearer " + std::string(kAdminToken);
  refused = policy.Check({.method = "POST", .target = "/v2/repository/models/fraud/unload",
                          .authorization = admin, .host = "localhost", .content_type = "text/plain"},
                         RouteSet::kAll);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 415);
}

}  // namespace
}  // namespace thaw
