// Which model each function of a trace calls, for simulating several models
// on one trace (a CSV's model column, an Azure trace's functions).
//
// A function goes, in order of precedence, to: the model an explicit route
// names for it; the model of the same name; the model of the catch-all route
// (function "*"); the only model, when there is one. Anything else is an error.
//
// Errors (kInvalidArgument, naming the culprit): a function no rule places; a
// route to a model that is not simulated; a route for a function the trace
// does not have (a typo would otherwise silently route nothing); a function
// routed twice. Thread safety: a pure function.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"

namespace thaw::sim {

struct FunctionRoute {
  std::string function;  // a trace function's name, or "*" for every function not otherwise placed
  std::string model;
};

// Model index (into `models`) for each function (indexed like `functions`).
StatusOr<std::vector<uint32_t>> RouteFunctions(const std::vector<std::string>& functions,
                                               const std::vector<std::string>& models,
                                               const std::vector<FunctionRoute>& routes);

// "FUNCTION=MODEL" -> a route; kInvalidArgument if either side is empty.
StatusOr<FunctionRoute> ParseFunctionRoute(const std::string& text);

}  // namespace thaw::sim
