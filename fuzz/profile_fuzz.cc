// Model profile files (sim/profile_json.h), as `thaw simulate` and `thaw
// plan` read them. Properties: no crash; errors are kInvalidArgument; an
// accepted profile encodes to text that parses to the same profile
// (compared through a second encoding).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "sim/profile_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto profile = thaw::sim::ParseProfile(json, "profile.json");
  if (!profile.ok()) {
    FUZZ_CHECK(profile.status().code() == thaw::StatusCode::kInvalidArgument, "error is not kInvalidArgument");
    return 0;
  }
  const std::string encoded = thaw::sim::EncodeProfile(profile.value());
  auto back = thaw::sim::ParseProfile(encoded, "profile.json");
  FUZZ_CHECK(back.ok(), "encoded profile does not parse");
  FUZZ_CHECK(thaw::sim::EncodeProfile(back.value()) == encoded, "profile round trip changed it");
  return 0;
}
