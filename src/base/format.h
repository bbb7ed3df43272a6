// Numbers and times as reports print them for people. JSON output keeps
// full precision and does not use these.
// Thread safety: pure functions.
#pragma once

#include <string>

#include "base/clock.h"

namespace thaw {

// `value` with `digits` significant digits (at least 1), in plain decimal
// notation, never an exponent: 0.00516369 -> "0.00516", 155.734 -> "156",
// 12345.6 -> "12346" (digits left of the point are never dropped),
// 0 -> "0"; NaN and infinities -> "-".
std::string SignificantText(double value, int digits = 3);

// An offset from the start of a trace or run as +HH:MM:SS.mmm
// ("+00:12:03.250"; hours go past 24: "+26:00:00.000"; negative: "-00:00:01.000").
std::string OffsetText(Micros offset_us);

}  // namespace thaw
