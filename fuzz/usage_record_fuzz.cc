// Usage-log lines (metering/usage_json.h), as `thaw cost` and the usage
// statistics read them back. Properties: no crash; errors are
// kInvalidArgument; an accepted record encodes to a line that decodes to the
// same record (compared through a second encoding).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "metering/usage_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  auto record = thaw::metering::DecodeUsageRecord(line);
  if (!record.ok()) {
    FUZZ_CHECK(record.status().code() == thaw::StatusCode::kInvalidArgument, "error is not kInvalidArgument");
    return 0;
  }
  const std::string encoded = thaw::metering::EncodeUsageRecord(record.value());
  auto back = thaw::metering::DecodeUsageRecord(encoded);
  FUZZ_CHECK(back.ok(), "encoded record does not decode");
  FUZZ_CHECK(thaw::metering::EncodeUsageRecord(back.value()) == encoded, "usage record round trip changed it");
  return 0;
}
