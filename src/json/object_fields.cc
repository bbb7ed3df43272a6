#include "json/object_fields.h"

#include <algorithm>
#include <vector>

namespace thaw::json {

StatusOr<simdjson::dom::object> ParseObject(simdjson::dom::parser& parser, std::string_view text,
                                            const std::string& source) {
  simdjson::padded_string padded(text);
  simdjson::dom::element root;
  if (auto error = parser.parse(padded).get(root))
    return InvalidArgument(source + ": malformed JSON: " + std::string(simdjson::error_message(error)));
  simdjson::dom::object object;
  if (root.get_object().get(object)) return InvalidArgument(source + ": must be a JSON object");
  return object;
}

std::optional<KeyProblem> FindKeyProblem(simdjson::dom::object object, std::span<const std::string_view> known) {
  std::vector<std::string_view> seen;
  for (auto field : object) {
    if (std::find(known.begin(), known.end(), field.key) == known.end()) return KeyProblem{field.key, false};
    if (std::find(seen.begin(), seen.end(), field.key) != seen.end()) return KeyProblem{field.key, true};
    seen.push_back(field.key);
  }
  return std::nullopt;
}

}  // namespace thaw::json
