#include "sim/routing.h"

#include <algorithm>
#include <map>
#include <optional>

namespace thaw::sim {

StatusOr<std::vector<uint32_t>> RouteFunctions(const std::vector<std::string>& functions,
                                               const std::vector<std::string>& models,
                                               const std::vector<FunctionRoute>& routes) {
  auto model_index = [&](const std::string& name) -> std::optional<uint32_t> {
    auto it = std::find(models.begin(), models.end(), name);
    if (it == models.end()) return std::nullopt;
    return static_cast<uint32_t>(it - models.begin());
  };
  std::map<std::string, uint32_t> explicit_routes;
  std::optional<uint32_t> catch_all;
  for (const FunctionRoute& route : routes) {
    auto m = model_index(route.model);
    if (!m) return InvalidArgument("--map " + route.function + "=" + route.model + ": no model '" + route.model + "' is simulated");
    if (route.function == "*") {
      if (catch_all) return InvalidArgument("--map: '*' is routed twice");
      catch_all = *m;
      continue;
    }
    if (std::find(functions.begin(), functions.end(), route.function) == functions.end())
      return InvalidArgument("--map " + route.function + "=" + route.model + ": the trace has no function '" +
                             route.function + "'");
    if (!explicit_routes.emplace(route.function, *m).second)
      return InvalidArgument("--map: function '" + route.function + "' is routed twice");
  }
  std::vector<uint32_t> out;
  out.reserve(functions.size());
  for (const std::string& function : functions) {
    if (auto it = explicit_routes.find(function); it != explicit_routes.end()) {
      out.push_back(it->second);
    } else if (auto same = model_index(function)) {
      out.push_back(*same);
    } else if (catch_all) {
      out.push_back(*catch_all);
    } else if (models.size() == 1) {
      out.push_back(0);
    } else {
      return InvalidArgument("trace function '" + function + "' calls no simulated model: name a model after it, or add --map " +
                             function + "=MODEL (or --map '*=MODEL' for every function not placed)");
    }
  }
  return out;
}

StatusOr<FunctionRoute> ParseFunctionRoute(const std::string& text) {
  const size_t eq = text.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    return InvalidArgument("--map must be FUNCTION=MODEL, got '" + text + "'");
  return FunctionRoute{text.substr(0, eq), text.substr(eq + 1)};
}

}  // namespace thaw::sim
