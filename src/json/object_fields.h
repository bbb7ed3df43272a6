// The checks every reader of a JSON object of settings or records makes --
// model configs (repo), price sheets and usage records (metering), model
// profiles (sim) -- over simdjson's DOM, so each reader only reads its fields.
//
// Errors: ParseObject returns kInvalidArgument naming the source. Thread
// safety: pure functions; the object returned lives in the caller's parser.
#pragma once

#include <simdjson.h>

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/status.h"

namespace thaw::json {

// `text` parsed into `parser` as one JSON object, valid until the parser parses
// again or is destroyed. "<source>: malformed JSON: <why>" or "<source>: must be
// a JSON object" otherwise.
StatusOr<simdjson::dom::object> ParseObject(simdjson::dom::parser& parser, std::string_view text,
                                            const std::string& source);

// The first key, in document order, that is not in `known` or repeats an
// earlier key (a repeated key would silently take one of the values); nullopt
// if there is none. The caller words the error.
struct KeyProblem {
  std::string_view key;
  bool repeated = false;  // false: unknown
};
std::optional<KeyProblem> FindKeyProblem(simdjson::dom::object object, std::span<const std::string_view> known);

}  // namespace thaw::json
