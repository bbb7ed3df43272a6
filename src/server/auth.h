// Access control for the v2 routes: bearer tokens with scopes, which routes a
// listener serves, and the checks that keep browsers from driving the API
// (cross-site requests and DNS rebinding).
//
// Routes and what they need (a token with a higher scope may do everything a
// lower one may: metrics < infer < admin):
//   GET  /v2/health/live, /v2/health/ready          open (no token, every listener)
//   GET  /metrics                                   metrics
//   GET  /v2, /v2/stats                             infer
//   GET  /v2/models/{m}[/versions/{v}]              infer  (metadata)
//   GET  /v2/models/{m}/ready, /v2/models[/{m}]/stats infer
//   GET  /v2/models/{m}/config, /v2/models/{m}/usage  infer  (Triton's config; thaw's usage)
//   POST /v2/models/{m}/infer                       infer
//   GET  /v2/models/{m}/status                      admin  (shows pids and memory)
//   POST /v2/models/{m}/warm                        admin
//   GET|PUT /v2/models/{m}/settings                 admin
//   POST /v2/repository/index                       admin
//   POST /v2/repository/models/{m}/load|unload      admin
//   anything else                                   admin  (fails closed: a route missing here needs admin)
//
// A request is checked in this order; the first failure answers:
//   1. Listener: with an admin listener, admin routes are answered only there
//      and infer routes only on the main one (404 naming the other listener);
//      health and /metrics on both.
//   2. Token (only when tokens are configured; never for health): no or an
//      unknown token -> 401 with WWW-Authenticate: Bearer; a token whose
//      scope is too low -> 403 naming the scope needed.
//   3. Browser safety, on state-changing requests (any method but GET/HEAD):
//      a Host that is not an IP address, localhost or an --allowed-host name
//      -> 403 (DNS rebinding); an Origin header not in --allowed-origin -> 403
//      (browsers send Origin on every cross-origin POST/PUT, and no page is
//      served by thaw, so by default none is allowed); a Content-Type other
//      than application/json (application/octet-stream too on infer) -> 415
//      (the types a browser may send cross-site without a preflight, form and
//      text/plain, are thereby refused). A request without Content-Type is let
//      through: curl -X POST without a body sends none, and a browser sending
//      none still sends Origin.
// Pages of an --allowed-origin also get CORS headers and preflight answers
// (see IsAllowedOrigin), so they can use the API; no other origin does.
// Errors are JSON {"error": "..."} naming the header or scope; token values
// never appear in errors or logs.
// Threading: an AccessPolicy is immutable after construction; Check is safe
// from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

namespace thaw {

// Ordered: a token with a scope may use the routes of every lower scope.
enum class Scope { kMetrics = 1, kInfer = 2, kAdmin = 3 };
std::string_view ScopeName(Scope scope);

// "/v2//models/m/" -> {"v2", "models", "m"}: the segments both routing
// (V2Handler) and route scopes read, so the two never disagree on a path.
std::vector<std::string_view> SplitPath(std::string_view path);

// What a route is, for access: kHealth is open to all.
enum class RouteClass { kHealth, kMetrics, kInfer, kAdmin };

struct RouteInfo {
  RouteClass route_class = RouteClass::kAdmin;
  bool infer = false;  // POST .../infer: binary (application/octet-stream) bodies are allowed
};

// Classifies a request path (query ignored) the way V2Handler routes it:
// empty segments are skipped and /versions/{v} after a model name is
// dropped. Paths V2Handler does not serve are kAdmin (fail closed).
RouteInfo ClassifyRoute(std::string_view path);

// One row of the route table above, with an example path, for tests and
// documentation: every route V2Handler serves is here.
struct RouteExample {
  std::string_view method;
  std::string_view path;  // with model "{m}" to be replaced
  RouteClass route_class;
};
const std::vector<RouteExample>& RouteTable();

// True when `a` and `b` are equal. The time taken depends only on the length
// of `presented`, never on the contents or length of `secret`.
bool ConstantTimeEquals(std::string_view secret, std::string_view presented);

struct Token {
  std::string value;
  Scope scope = Scope::kInfer;
};

// Parses a token file: one "<token> <scope>" per line, scope one of metrics,
// infer, admin; '#' starts a comment; blank lines are skipped. A token is at
// least 16 characters of A-Z a-z 0-9 - . _ ~ + / (then optional '='), the
// characters of an RFC 6750 bearer token. kInvalidArgument names
// `source_name`:line and what is wrong (never the token), also for a file
// with no token or a token given twice.
StatusOr<std::vector<Token>> ParseTokens(std::string_view text, const std::string& source_name);

// Reads and parses a token file. `warning` gets a message when the file is
// readable or writable by group or others (it still loads).
StatusOr<std::vector<Token>> LoadTokenFile(const std::string& path, std::string* warning);

// Which routes a listener answers.
enum class RouteSet {
  kAll,    // the only listener
  kMain,   // with a separate admin listener: health, metrics, infer routes
  kAdmin,  // the admin listener: health, metrics, admin routes
};

struct AccessOptions {
  std::vector<Token> tokens;                 // empty: no tokens are required
  std::vector<std::string> allowed_hosts;    // Host names accepted besides IP addresses and localhost
  std::vector<std::string> allowed_origins;  // Origin values accepted, e.g. "https://dash.example.com"
};

// The parts of a request access depends on. Absent headers are nullopt.
struct AccessRequest {
  std::string_view method;
  std::string_view target;  // path and optional query
  std::optional<std::string_view> authorization;
  std::optional<std::string_view> host;
  std::optional<std::string_view> origin;
  std::optional<std::string_view> content_type;
};

// Why a request is refused: the HTTP status (401, 403, 404, 415), the
// message for {"error": ...} and extra response headers.
struct AccessRefusal {
  int status = 403;
  std::string message;
  std::vector<std::pair<std::string, std::string>> headers;
};

class AccessPolicy {
 public:
  explicit AccessPolicy(AccessOptions options);

  // nullopt: the request may go on to its route.
  std::optional<AccessRefusal> Check(const AccessRequest& request, RouteSet routes) const;
  // The listener and token checks of Check alone, for a protocol no browser
  // speaks (gRPC): `target` is the REST route it stands for.
  std::optional<AccessRefusal> CheckNonBrowser(std::string_view target, std::optional<std::string_view> authorization,
                                               RouteSet routes) const;

  bool requires_tokens() const { return !options_.tokens.empty(); }

  // CORS for the --allowed-origin pages: a request whose Origin is allowed
  // gets these headers on its response (so the page may read it), and its
  // OPTIONS preflight is answered 204 with PreflightHeaders (before any
  // token check: browsers send no credentials on a preflight). Other origins
  // get no CORS headers, so a page of theirs cannot read any response.
  bool IsAllowedOrigin(std::string_view origin) const;
  static std::vector<std::pair<std::string, std::string>> CorsHeaders(std::string_view origin);
  static std::vector<std::pair<std::string, std::string>> PreflightHeaders(std::string_view origin);

 private:
  std::optional<AccessRefusal> CheckToken(const AccessRequest& request, RouteClass route_class) const;
  std::optional<AccessRefusal> CheckBrowser(const AccessRequest& request, const RouteInfo& route) const;

  AccessOptions options_;
};

// The name part of a Host header value ("[::1]:80" -> "::1", "a.b:80" ->
// "a.b"), lower-cased.
std::string HostName(std::string_view host);

// True for 127.0.0.0/8, ::1 and localhost; false for wildcard and other
// addresses (used for the startup warning).
bool IsLoopbackAddress(std::string_view address);

}  // namespace thaw
