#include "metering/price_sheet.h"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <vector>

#include "json/object_fields.h"
#include "metering/usage_json.h"

namespace thaw::metering {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

Status FieldError(const std::string& source, std::string_view field, std::string_view what) {
  return InvalidArgument(source + ": field '" + std::string(field) + "' " + std::string(what));
}

Status ReadNumber(const object& obj, std::string_view key, const std::string& source, double* out) {
  element value;
  if (obj[key].get(value)) return FieldError(source, key, "is required");
  if (value.get_double().get(*out) || !std::isfinite(*out) || *out < 0)
    return FieldError(source, key, "must be a number >= 0");
  return Status::Ok();
}

}  // namespace

StatusOr<policy::PriceSheet> ParsePriceSheet(std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  auto parsed = json::ParseObject(parser, json, source);
  if (!parsed.ok()) return parsed.status();
  const object obj = *parsed;

  static constexpr std::string_view kKnown[] = {"name",
                                                "request_usd_per_million",
                                                "on_demand_usd_per_gb_s",
                                                "provisioned_usd_per_gb_s",
                                                "provisioned_duration_usd_per_gb_s",
                                                "granularity_ms",
                                                "bill_init",
                                                "host_usd_per_gb_hour"};
  if (auto problem = json::FindKeyProblem(obj, kKnown))
    return FieldError(source, problem->key, problem->repeated ? "appears twice" : "is unknown");

  policy::PriceSheet sheet;
  element value;
  std::string_view name;
  if (obj["name"].get(value)) return FieldError(source, "name", "is required");
  if (value.get_string().get(name) || name.empty()) return FieldError(source, "name", "must be a non-empty string");
  sheet.name = std::string(name);
  THAW_RETURN_IF_ERROR(ReadNumber(obj, "request_usd_per_million", source, &sheet.request_usd_per_million));
  THAW_RETURN_IF_ERROR(ReadNumber(obj, "on_demand_usd_per_gb_s", source, &sheet.on_demand_usd_per_gb_s));
  THAW_RETURN_IF_ERROR(ReadNumber(obj, "provisioned_usd_per_gb_s", source, &sheet.provisioned_usd_per_gb_s));
  THAW_RETURN_IF_ERROR(
      ReadNumber(obj, "provisioned_duration_usd_per_gb_s", source, &sheet.provisioned_duration_usd_per_gb_s));
  double granularity_ms = 0;
  THAW_RETURN_IF_ERROR(ReadNumber(obj, "granularity_ms", source, &granularity_ms));
  const double granularity_us = granularity_ms * kMicrosPerMilli;
  if (granularity_us < 1 || granularity_us > 3600.0 * kMicrosPerSecond ||
      std::abs(granularity_us - std::round(granularity_us)) > 1e-6)
    return FieldError(source, "granularity_ms", "must be a whole number of microseconds, at least 0.001 and at most 3600000");
  sheet.granularity_us = static_cast<Micros>(std::llround(granularity_us));
  if (obj["bill_init"].get(value)) return FieldError(source, "bill_init", "is required");
  if (value.get_bool().get(sheet.bill_init)) return FieldError(source, "bill_init", "must be true or false");
  THAW_RETURN_IF_ERROR(ReadNumber(obj, "host_usd_per_gb_hour", source, &sheet.host_usd_per_gb_hour));
  if (Status valid = policy::Validate(sheet); !valid.ok()) return InvalidArgument(source + ": " + valid.message());
  return sheet;
}

StatusOr<policy::PriceSheet> LoadPriceSheet(std::string_view name_or_path) {
  if (auto built_in = policy::BuiltInPriceSheet(name_or_path)) return *built_in;
  const std::string path(name_or_path);
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return NotFound("price sheet '" + path + "' is neither built in (" + std::string(policy::kAwsX86) + ", " +
                    std::string(policy::kAwsArm64) + ") nor a readable file");
  std::stringstream text;
  text << file.rdbuf();
  return ParsePriceSheet(text.str(), path);
}

std::string PriceSheetJson(const policy::PriceSheet& sheet) {
  std::string j;
  JsonWriter w(&j);
  w.BeginObject().Field("name", sheet.name);
  w.Key("request_usd_per_million").Raw(JsonNumber(sheet.request_usd_per_million));
  w.Key("on_demand_usd_per_gb_s").Raw(JsonNumber(sheet.on_demand_usd_per_gb_s));
  w.Key("provisioned_usd_per_gb_s").Raw(JsonNumber(sheet.provisioned_usd_per_gb_s));
  w.Key("provisioned_duration_usd_per_gb_s").Raw(JsonNumber(sheet.provisioned_duration_usd_per_gb_s));
  w.Key("granularity_ms").Raw(JsonNumber(static_cast<double>(sheet.granularity_us) / kMicrosPerMilli));
  w.Field("bill_init", sheet.bill_init);
  w.Key("host_usd_per_gb_hour").Raw(JsonNumber(sheet.host_usd_per_gb_hour));
  w.EndObject();
  return j;
}

}  // namespace thaw::metering
