#include "metering/price_sheet.h"

#include <gtest/gtest.h>

#include "base/test_paths.h"

namespace thaw::metering {
namespace {

void ExpectSameSheet(const policy::PriceSheet& a, const policy::PriceSheet& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.request_usd_per_million, b.request_usd_per_million);
  EXPECT_EQ(a.on_demand_usd_per_gb_s, b.on_demand_usd_per_gb_s);
  EXPECT_EQ(a.provisioned_usd_per_gb_s, b.provisioned_usd_per_gb_s);
  EXPECT_EQ(a.provisioned_duration_usd_per_gb_s, b.provisioned_duration_usd_per_gb_s);
  EXPECT_EQ(a.granularity_us, b.granularity_us);
  EXPECT_EQ(a.bill_init, b.bill_init);
  EXPECT_EQ(a.host_usd_per_gb_hour, b.host_usd_per_gb_hour);
}

TEST(PriceSheetTest, ShippedFilesMatchTheBuiltInSheets) {
  auto x86 = LoadPriceSheet(TestSourceDir() + "/prices/aws-lambda-x86.json");
  ASSERT_TRUE(x86.ok()) << x86.status().ToString();
  ExpectSameSheet(*x86, policy::AwsLambdaX86());
  auto arm = LoadPriceSheet(TestSourceDir() + "/prices/aws-lambda-arm64.json");
  ASSERT_TRUE(arm.ok()) << arm.status().ToString();
  ExpectSameSheet(*arm, policy::AwsLambdaArm64());
}

TEST(PriceSheetTest, BuiltInNames) {
  ExpectSameSheet(*LoadPriceSheet("aws-x86"), policy::AwsLambdaX86());
  ExpectSameSheet(*LoadPriceSheet("aws-arm64"), policy::AwsLambdaArm64());
  auto missing = LoadPriceSheet("gcp-functions");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("gcp-functions"), std::string::npos);
  EXPECT_NE(missing.status().message().find("aws-arm64"), std::string::npos);
}

TEST(PriceSheetTest, JsonRoundTrips) {
  policy::PriceSheet sheet = policy::AwsLambdaArm64();
  sheet.name = "custom \"one\"";
  sheet.granularity_us = 1500;
  sheet.bill_init = false;
  sheet.host_usd_per_gb_hour = 0.0123;
  auto parsed = ParsePriceSheet(PriceSheetJson(sheet), "test");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString() << " " << PriceSheetJson(sheet);
  ExpectSameSheet(*parsed, sheet);
  EXPECT_NE(PriceSheetJson(policy::AwsLambdaX86()).find("\"granularity_ms\":1,"), std::string::npos);
  EXPECT_NE(PriceSheetJson(policy::AwsLambdaX86()).find("\"host_usd_per_gb_hour\":0.00826875}"), std::string::npos)
      << PriceSheetJson(policy::AwsLambdaX86());
}

const char* kGood = R"({"name":"x","request_usd_per_million":0.2,"on_demand_usd_per_gb_s":0.1,
  "provisioned_usd_per_gb_s":0.1,"provisioned_duration_usd_per_gb_s":0.1,"granularity_ms":1,"bill_init":true,
  "host_usd_per_gb_hour":0.01})";

void ExpectError(const std::string& json, std::string_view needle) {
  auto parsed = ParsePriceSheet(json, "my-prices.json");
  ASSERT_FALSE(parsed.ok()) << json;
  EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("my-prices.json"), std::string::npos) << parsed.status().message();
  EXPECT_NE(parsed.status().message().find(needle), std::string::npos) << parsed.status().message();
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}

TEST(PriceSheetTest, ErrorsNameTheField) {
  ASSERT_TRUE(ParsePriceSheet(kGood, "good").ok());
  ExpectError(Replace(kGood, "\"bill_init\"", "\"bill_inits\""), "'bill_inits' is unknown");
  ExpectError(Replace(kGood, ",\"granularity_ms\":1", ""), "'granularity_ms' is required");
  ExpectError(Replace(kGood, "\"granularity_ms\":1", "\"granularity_ms\":0.0001"), "'granularity_ms'");
  ExpectError(Replace(kGood, "\"granularity_ms\":1", "\"granularity_ms\":0"), "'granularity_ms'");
  EXPECT_EQ(ParsePriceSheet(Replace(kGood, "\"granularity_ms\":1", "\"granularity_ms\":0.5"), "g")->granularity_us, 500);
  ExpectError(Replace(kGood, "\"on_demand_usd_per_gb_s\":0.1", "\"on_demand_usd_per_gb_s\":-0.1"),
              "'on_demand_usd_per_gb_s' must be a number >= 0");
  ExpectError(Replace(kGood, "\"request_usd_per_million\":0.2", "\"request_usd_per_million\":\"cheap\""),
              "'request_usd_per_million'");
  ExpectError(Replace(kGood, "\"name\":\"x\"", "\"name\":\"\""), "'name'");
  ExpectError(Replace(kGood, "\"bill_init\":true", "\"bill_init\":1"), "'bill_init' must be true or false");
  ExpectError(Replace(kGood, "\"bill_init\":true", "\"bill_init\":true,\"name\":\"y\""), "'name' appears twice");
  EXPECT_EQ(ParsePriceSheet(kGood, "good")->host_usd_per_gb_hour, 0.01);
  // Required like every price: a sheet written before it existed must say what the host costs.
  auto missing = ParsePriceSheet(Replace(kGood, ",\n  \"host_usd_per_gb_hour\":0.01", ""), "old-prices.json");
  EXPECT_EQ(missing.status().message(), "old-prices.json: field 'host_usd_per_gb_hour' is required");
  auto negative = ParsePriceSheet(Replace(kGood, "\"host_usd_per_gb_hour\":0.01", "\"host_usd_per_gb_hour\":-1"), "p.json");
  EXPECT_EQ(negative.status().message(), "p.json: field 'host_usd_per_gb_hour' must be a number >= 0");
  ExpectError(Replace(kGood, "\"host_usd_per_gb_hour\":0.01", "\"host_usd_per_gb_hour\":null"),
              "'host_usd_per_gb_hour' must be a number >= 0");
  ExpectError(Replace(kGood, "\"host_usd_per_gb_hour\"", "\"host_usd_per_gb_h\""), "'host_usd_per_gb_h' is unknown");
  ExpectError("{", "malformed JSON");
  ExpectError("[]", "must be a JSON object");
}

}  // namespace
}  // namespace thaw::metering
