// Price sheet files (see prices/README.md): a JSON object with every field
// of policy::PriceSheet, durations in milliseconds:
//   {"name": "aws-x86", "request_usd_per_million": 0.20,
//    "on_demand_usd_per_gb_s": 0.0000166667, "provisioned_usd_per_gb_s": 0.0000041667,
//    "provisioned_duration_usd_per_gb_s": 0.0000097222, "granularity_ms": 1,
//    "bill_init": true, "host_usd_per_gb_hour": 0.00826875}
// Every field is required (a missing price must not silently become the
// x86 one); unknown or repeated fields are errors naming the field;
// granularity_ms may be fractional but must be a whole number of
// microseconds >= 1. The sheet must pass policy::Validate.
// Errors: kInvalidArgument naming the source (file) and field; kNotFound for
// a name that is neither built in nor a readable file.
// Thread safety: pure functions except LoadPriceSheet, which reads a file.
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "policy/pricing.h"

namespace thaw::metering {

// `source` names the text in errors (a path).
StatusOr<policy::PriceSheet> ParsePriceSheet(std::string_view json, const std::string& source);

// "aws-x86" / "aws-arm64": the built-in sheets; anything else is a path to
// a price sheet file.
StatusOr<policy::PriceSheet> LoadPriceSheet(std::string_view name_or_path);

// The sheet in the file format, on one line.
std::string PriceSheetJson(const policy::PriceSheet& sheet);

}  // namespace thaw::metering
