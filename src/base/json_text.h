// JSON text helpers for hand-written encoders (usage log, load reports):
// a string as a quoted, escaped JSON literal.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

namespace thaw {

// "..." with quote, backslash and control characters escaped (\u00XX).
std::string JsonString(std::string_view s);

}  // namespace thaw
