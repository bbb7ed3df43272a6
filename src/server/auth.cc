#include "server/auth.h"

#include "server/header_text.h"

#include <arpa/inet.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

namespace thaw {
namespace {

bool IsTokenChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' ||
         c == '/';
}

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool IsBearerToken(std::string_view token) {
  size_t i = 0;
  while (i < token.size() && IsTokenChar(token[i])) ++i;
  if (i == 0) return false;
  while (i < token.size() && token[i] == '=') ++i;
  return i == token.size();
}

constexpr size_t kMinTokenChars = 16;

bool IsIpAddress(std::string_view name) {
  std::string text(name);
  unsigned char buffer[16];
  return ::inet_pton(AF_INET, text.c_str(), buffer) == 1 || ::inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// The media type of a Content-Type value, lower-cased, without parameters.
std::string MediaType(std::string_view content_type) {
  return AsciiLower(TrimHeaderSpace(content_type.substr(0, content_type.find(';'))));
}

AccessRefusal Refuse(int status, std::string message) {
  AccessRefusal refusal;
  refusal.status = status;
  refusal.message = std::move(message);
  return refusal;
}

Scope ScopeFor(RouteClass route_class) {
  switch (route_class) {
    case RouteClass::kMetrics: return Scope::kMetrics;
    case RouteClass::kInfer: return Scope::kInfer;
    default: return Scope::kAdmin;
  }
}

}  // namespace

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view part = path.substr(0, slash);
    if (!part.empty()) parts.push_back(part);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return parts;
}

std::string_view ScopeName(Scope scope) {
  switch (scope) {
    case Scope::kMetrics: return "metrics";
    case Scope::kInfer: return "infer";
    case Scope::kAdmin: return "admin";
  }
  return "admin";
}

RouteInfo ClassifyRoute(std::string_view path) {
  path = path.substr(0, path.find('?'));
  const std::vector<std::string_view> parts = SplitPath(path);
  RouteInfo admin;  // kAdmin: unknown routes fail closed
  if (parts.size() == 1 && parts[0] == "metrics") return {RouteClass::kMetrics};
  if (parts.empty() || parts[0] != "v2") return admin;
  if (parts.size() == 1) return {RouteClass::kInfer};
  if (parts.size() == 2 && parts[1] == "stats") return {RouteClass::kInfer};
  if (parts.size() == 3 && parts[1] == "health" && (parts[2] == "live" || parts[2] == "ready"))
    return {RouteClass::kHealth};
  if (parts[1] == "repository") return admin;
  if (parts[1] != "models" || parts.size() < 3) return admin;
  size_t next = 3;
  if (parts.size() >= 5 && parts[3] == "versions") next = 5;
  if (next + 1 < parts.size()) return admin;
  const std::string_view action = next < parts.size() ? parts[next] : "";
  // What Triton clients read with an inference token: metadata, readiness,
  // statistics, the Triton model configuration; thaw's usage report.
  if (action.empty() || action == "ready" || action == "stats" || action == "config" || action == "usage")
    return {RouteClass::kInfer};
  if (action == "infer") return {RouteClass::kInfer, true};
  return admin;  // status, warm, settings, and anything unknown
}

const std::vector<RouteExample>& RouteTable() {
  static const std::vector<RouteExample> kTable = {
      {"GET", "/v2/health/live", RouteClass::kHealth},
      {"GET", "/v2/health/ready", RouteClass::kHealth},
      {"GET", "/metrics", RouteClass::kMetrics},
      {"GET", "/v2", RouteClass::kInfer},
      {"GET", "/v2/stats", RouteClass::kInfer},
      {"GET", "/v2/models/{m}", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/versions/1", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/ready", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/versions/1/ready", RouteClass::kInfer},
      {"GET", "/v2/models/stats", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/stats", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/versions/1/stats", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/usage", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/config", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/versions/1/config", RouteClass::kInfer},
      {"POST", "/v2/models/{m}/infer", RouteClass::kInfer},
      {"POST", "/v2/models/{m}/versions/1/infer", RouteClass::kInfer},
      {"GET", "/v2/models/{m}/status", RouteClass::kAdmin},
      {"GET", "/v2/models/{m}/versions/1/status", RouteClass::kAdmin},
      {"POST", "/v2/models/{m}/warm", RouteClass::kAdmin},
      {"GET", "/v2/models/{m}/settings", RouteClass::kAdmin},
      {"PUT", "/v2/models/{m}/settings", RouteClass::kAdmin},
      {"PUT", "/v2/models/{m}/versions/1/settings", RouteClass::kAdmin},
      {"POST", "/v2/repository/index", RouteClass::kAdmin},
      {"POST", "/v2/repository/models/{m}/load", RouteClass::kAdmin},
      {"POST", "/v2/repository/models/{m}/unload", RouteClass::kAdmin},
  };
  return kTable;
}

bool ConstantTimeEquals(std::string_view secret, std::string_view presented) {
  // Every byte of `presented` is compared (against secret bytes taken
  // cyclically), so neither the first difference nor the secret's length
  // shows in the time taken.
  unsigned char difference = secret.size() == presented.size() ? 0 : 1;
  if (secret.empty()) return presented.empty();
  for (size_t i = 0; i < presented.size(); ++i)
    difference |= static_cast<unsigned char>(secret[i % secret.size()] ^ presented[i]);
  // Keeps the compiler from turning the loop into an early exit.
  volatile unsigned char result = difference;
  return result == 0;
}

StatusOr<std::vector<Token>> ParseTokens(std::string_view text, const std::string& source_name) {
  std::vector<Token> tokens;
  int line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    line = TrimHeaderSpace(line.substr(0, line.find('#')));
    const std::string where = source_name + ":" + std::to_string(line_number) + ": ";
    if (!line.empty()) {
      std::vector<std::string_view> fields;
      while (!line.empty()) {
        size_t space = line.find_first_of(" \t");
        fields.push_back(line.substr(0, space));
        line = TrimHeaderSpace(line.substr(space == std::string_view::npos ? line.size() : space));
      }
      if (fields.size() != 2)
        return InvalidArgument(where + "expected '<token> <scope>' (scope: metrics, infer or admin), got " +
                               std::to_string(fields.size()) + " field" + (fields.size() == 1 ? "" : "s"));
      const std::string_view token = fields[0], scope_name = fields[1];
      if (!IsBearerToken(token))
        return InvalidArgument(where + "the token may hold only A-Z a-z 0-9 - . _ ~ + / (and '=' at its end)");
      if (token.size() < kMinTokenChars)
        return InvalidArgument(where + "the token has " + std::to_string(token.size()) + " characters; use at least " +
                               std::to_string(kMinTokenChars) + " (e.g. from 'openssl rand -hex 32')");
      Token parsed{std::string(token)};
      if (scope_name == "metrics") {
        parsed.scope = Scope::kMetrics;
      } else if (scope_name == "infer") {
        parsed.scope = Scope::kInfer;
      } else if (scope_name == "admin") {
        parsed.scope = Scope::kAdmin;
      } else {
        return InvalidArgument(where + "scope '" + std::string(scope_name) + "' is not one of metrics, infer, admin");
      }
      for (const Token& seen : tokens)
        if (seen.value == parsed.value) return InvalidArgument(where + "this token is already given on an earlier line");
      tokens.push_back(std::move(parsed));
    }
  }
  if (tokens.empty()) return InvalidArgument(source_name + ": no tokens (one '<token> <scope>' per line)");
  return tokens;
}

StatusOr<std::vector<Token>> LoadTokenFile(const std::string& path, std::string* warning) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return InvalidArgument("cannot read token file '" + path + "'");
  std::stringstream text;
  text << file.rdbuf();
  auto tokens = ParseTokens(text.str(), path);
  if (!tokens.ok()) return tokens.status();
  struct stat info{};
  if (warning && ::stat(path.c_str(), &info) == 0 && (info.st_mode & (S_IRWXG | S_IRWXO))) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(info.st_mode & 07777));
    *warning = "token file '" + path + "' has mode " + mode + ": other users may read it; chmod 600 it";
  }
  return tokens;
}

std::string HostName(std::string_view host) {
  host = TrimHeaderSpace(host);
  if (host.starts_with('[')) {
    const size_t close = host.find(']');
    return AsciiLower(host.substr(1, close == std::string_view::npos ? host.size() - 1 : close - 1));
  }
  // One colon: name:port. More: a bare IPv6 address (not valid in Host, kept whole).
  const size_t colon = host.find(':');
  if (colon != std::string_view::npos && host.find(':', colon + 1) == std::string_view::npos)
    host = host.substr(0, colon);
  return AsciiLower(host);
}

bool IsLoopbackAddress(std::string_view address) {
  std::string name = HostName(address);
  if (name == "localhost") return true;
  unsigned char v4[4], v6[16];
  if (::inet_pton(AF_INET, name.c_str(), v4) == 1) return v4[0] == 127;
  if (::inet_pton(AF_INET6, name.c_str(), v6) == 1) {
    static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(v6, v6 + 16, kLoopback);
  }
  return false;
}

AccessPolicy::AccessPolicy(AccessOptions options) : options_(std::move(options)) {
  for (std::string& host : options_.allowed_hosts) host = HostName(host);
  for (std::string& origin : options_.allowed_origins)
    while (origin.ends_with('/')) origin.pop_back();
}

std::optional<AccessRefusal> AccessPolicy::Check(const AccessRequest& request, RouteSet routes) const {
  const RouteInfo route = ClassifyRoute(request.target);
  const std::string path(request.target.substr(0, request.target.find('?')));
  if (routes == RouteSet::kMain && route.route_class == RouteClass::kAdmin)
    return Refuse(404, "no route for " + path + " on this port; admin routes (status, warm, settings, repository) are "
                       "served on the admin port");
  if (routes == RouteSet::kAdmin && route.route_class == RouteClass::kInfer)
    return Refuse(404, "no route for " + path + " on the admin port; inference and model routes are served on the "
                       "main port");
  if (route.route_class == RouteClass::kHealth) return std::nullopt;
  if (auto refused = CheckToken(request, route.route_class)) return refused;
  const bool state_changing = request.method != "GET" && request.method != "HEAD";
  if (state_changing) return CheckBrowser(request, route);
  return std::nullopt;
}

std::optional<AccessRefusal> AccessPolicy::CheckNonBrowser(std::string_view target,
                                                           std::optional<std::string_view> authorization,
                                                           RouteSet routes) const {
  // Everything of Check but the browser checks (which a state-changing REST
  // request gets after these).
  return Check({.method = "GET", .target = target, .authorization = authorization}, routes);
}

std::optional<AccessRefusal> AccessPolicy::CheckToken(const AccessRequest& request, RouteClass route_class) const {
  if (options_.tokens.empty()) return std::nullopt;
  const Scope needed = ScopeFor(route_class);
  auto unauthorized = [&](std::string message, std::string_view error) {
    AccessRefusal refusal = Refuse(401, std::move(message));
    std::string challenge = "Bearer realm=\"thaw\"";
    if (!error.empty()) challenge += ", error=\"" + std::string(error) + "\"";
    refusal.headers.emplace_back("WWW-Authenticate", challenge);
    return refusal;
  };
  if (!request.authorization)
    return unauthorized("this route needs a token with scope '" + std::string(ScopeName(needed)) +
                            "': send the header 'Authorization: Bearer <token>'",
                        "");
  std::string_view value = TrimHeaderSpace(*request.authorization);
  const size_t space = value.find(' ');
  if (space == std::string_view::npos || !AsciiIEquals(value.substr(0, space), "Bearer"))
    return unauthorized("header Authorization must be 'Bearer <token>'", "invalid_request");
  const std::string_view presented = TrimHeaderSpace(value.substr(space + 1));
  // Every token is compared, whether or not an earlier one matched.
  std::optional<Scope> scope;
  for (const Token& token : options_.tokens)
    if (ConstantTimeEquals(token.value, presented)) scope = token.scope;
  if (!scope) return unauthorized("header Authorization: the bearer token is not valid", "invalid_token");
  if (static_cast<int>(*scope) < static_cast<int>(needed)) {
    AccessRefusal refusal = Refuse(403, "this route needs a token with scope '" + std::string(ScopeName(needed)) +
                                            "'; the token given has scope '" + std::string(ScopeName(*scope)) + "'");
    refusal.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"thaw\", error=\"insufficient_scope\", scope=\"" +
                                                         std::string(ScopeName(needed)) + "\"");
    return refusal;
  }
  return std::nullopt;
}

bool AccessPolicy::IsAllowedOrigin(std::string_view origin) const {
  origin = TrimHeaderSpace(origin);
  while (origin.ends_with('/')) origin.remove_suffix(1);
  return std::any_of(options_.allowed_origins.begin(), options_.allowed_origins.end(),
                     [&](const std::string& allowed) { return AsciiIEquals(allowed, origin); });
}

std::vector<std::pair<std::string, std::string>> AccessPolicy::CorsHeaders(std::string_view origin) {
  return {{"Access-Control-Allow-Origin", std::string(TrimHeaderSpace(origin))},
          {"Access-Control-Expose-Headers", "Inference-Header-Content-Length, Server-Timing, X-Thaw-Cold-Start"},
          {"Vary", "Origin"}};
}

std::vector<std::pair<std::string, std::string>> AccessPolicy::PreflightHeaders(std::string_view origin) {
  auto headers = CorsHeaders(origin);
  headers.emplace_back("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT");
  headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type, Inference-Header-Content-Length");
  headers.emplace_back("Access-Control-Max-Age", "600");
  return headers;
}

std::optional<AccessRefusal> AccessPolicy::CheckBrowser(const AccessRequest& request, const RouteInfo& route) const {
  if (request.host) {
    const std::string name = HostName(*request.host);
    const bool known = name == "localhost" || IsIpAddress(name) ||
                       std::find(options_.allowed_hosts.begin(), options_.allowed_hosts.end(), name) !=
                           options_.allowed_hosts.end();
    if (!known)
      return Refuse(403, "header Host: '" + name + "' is not a name this server answers to on " +
                             std::string(request.method) + " (an IP address, localhost, or a name given with "
                             "--allowed-host); start thaw serve with --allowed-host " + name + " to allow it");
  }
  if (request.origin) {
    std::string origin(TrimHeaderSpace(*request.origin));
    while (origin.ends_with('/')) origin.pop_back();
    if (!IsAllowedOrigin(origin))
      return Refuse(403, "header Origin: '" + origin + "' may not send " + std::string(request.method) +
                             " requests (cross-site browser request); start thaw serve with --allowed-origin " +
                             origin + " to allow it");
  }
  if (request.content_type) {
    const std::string media_type = MediaType(*request.content_type);
    const bool ok = media_type == "application/json" || (route.infer && media_type == "application/octet-stream");
    if (!ok)
      return Refuse(415, "header Content-Type: '" + media_type + "' is not accepted on " +
                             std::string(request.method) + "; send 'Content-Type: application/json'" +
                             (route.infer ? " (or application/octet-stream for binary tensors)" : ""));
  }
  return std::nullopt;
}

}  // namespace thaw
