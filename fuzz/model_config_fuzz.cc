// config.json parsing and PUT /v2/models/{m}/config (repo/model_config.h).
// The input is the JSON text, read both as a whole config.json and as the
// settings object of a PUT applied to a valid config.
// Properties: no crash; errors are kInvalidArgument; an accepted config is
// encoded to config.json text that reads back to the same config (compared
// through a second encoding); an accepted one passes ValidateModelConfig.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "repo/model_config.h"

namespace {

void CheckAccepted(const thaw::ModelConfig& config) {
  FUZZ_CHECK(thaw::ValidateModelConfig(config, "fuzz").ok(), "accepted config does not validate");
  const std::string text = thaw::EncodeModelConfig(config);
  auto back = thaw::ParseModelConfig(text, config.name, config.directory, "fuzz");
  FUZZ_CHECK(back.ok(), "encoded config does not read back");
  FUZZ_CHECK(thaw::EncodeModelConfig(back.value()) == text, "config round trip changed the config");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const thaw::ModelConfig base = [] {
    auto config = thaw::ParseModelConfig(
        R"({"inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],
            "outputs":[{"name":"y","datatype":"FP32","shape":[-1,1]}],
            "batching":"fixed","max_batch_size":8,"preferred_batch_sizes":[4,8]})",
        "m", "/nonexistent/m", "fuzz");
    if (!config.ok()) std::abort();
    return config.value();
  }();
  const std::string_view json(reinterpret_cast<const char*>(data), size);

  auto config = thaw::ParseModelConfig(json, "m", "/nonexistent/m", "config.json");
  if (config.ok()) CheckAccepted(config.value());
  else FUZZ_CHECK(config.status().code() == thaw::StatusCode::kInvalidArgument, "config error is not kInvalidArgument");

  auto applied = thaw::ApplySettings(base, json, "PUT config");
  if (applied.ok()) CheckAccepted(applied.value());
  else FUZZ_CHECK(applied.status().code() == thaw::StatusCode::kInvalidArgument, "settings error is not kInvalidArgument");
  return 0;
}
