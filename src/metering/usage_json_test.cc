#include "metering/usage_json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace thaw::metering {
namespace {

InvocationRecord SampleInvocation() {
  return InvocationRecord{.model = "fraud",
                          .request_id = UINT64_MAX,
                          .instance_id = 2,
                          .arrival_wall_us = 1'795'896'000'000'000,
                          .latency_us = 2950,
                          .queue_us = 120,
                          .batch_wait_us = 300,
                          .compute_us = 2400,
                          .http_status = 200,
                          .memory_mb = 1024,
                          .batch_rows = 3,
                          .batch_requests = 2,
                          .share = 1.0 / 3.0,
                          .cold_start = true,
                          .init_us = 250'300,
                          .provisioned = false,
                          .start_path = "template"};
}

void ExpectSame(const InvocationRecord& a, const InvocationRecord& b) {
  EXPECT_EQ(a.model, b.model);
  EXPECT_EQ(a.request_id, b.request_id);
  EXPECT_EQ(a.instance_id, b.instance_id);
  EXPECT_EQ(a.arrival_wall_us, b.arrival_wall_us);
  EXPECT_EQ(a.latency_us, b.latency_us);
  EXPECT_EQ(a.queue_us, b.queue_us);
  EXPECT_EQ(a.batch_wait_us, b.batch_wait_us);
  EXPECT_EQ(a.compute_us, b.compute_us);
  EXPECT_EQ(a.http_status, b.http_status);
  EXPECT_EQ(a.memory_mb, b.memory_mb);
  EXPECT_EQ(a.batch_rows, b.batch_rows);
  EXPECT_EQ(a.batch_requests, b.batch_requests);
  EXPECT_EQ(a.share, b.share);  // bit-exact
  EXPECT_EQ(a.cold_start, b.cold_start);
  EXPECT_EQ(a.init_us, b.init_us);
  EXPECT_EQ(a.provisioned, b.provisioned);
  EXPECT_EQ(a.start_path, b.start_path);
}

TEST(UsageJsonTest, InvocationRoundTrips) {
  const InvocationRecord rec = SampleInvocation();
  const std::string line = EncodeUsageRecord(rec);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_TRUE(line.starts_with("{\"kind\":\"invocation\",\"model\":\"fraud\",\"request_id\":18446744073709551615,"))
      << line;
  auto decoded = DecodeUsageRecord(line);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  ASSERT_TRUE(std::holds_alternative<InvocationRecord>(*decoded));
  ExpectSame(std::get<InvocationRecord>(*decoded), rec);
  EXPECT_EQ(EncodeUsageRecord(*decoded), line);
}

TEST(UsageJsonTest, InstanceRoundTripsWithAwkwardStrings) {
  const InstanceRecord rec{.model = "we\"ird\\name\n",
                           .instance_id = 9,
                           .start_path = "exec",
                           .memory_mb = 512,
                           .held_mb = 24,
                           .start_wall_us = 1000,
                           .stop_wall_us = 9000,
                           .init_us = 1000,
                           .busy_us = 3000,
                           .idle_us = 4000,
                           .provisioned = true,
                           .stop_reason = "keep_alive"};
  const std::string line = EncodeUsageRecord(rec);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  auto decoded = DecodeUsageRecord(line);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& got = std::get<InstanceRecord>(*decoded);
  EXPECT_EQ(got.model, rec.model);
  EXPECT_EQ(got.instance_id, 9u);
  EXPECT_EQ(got.start_path, "exec");
  EXPECT_EQ(got.memory_mb, 512);
  EXPECT_EQ(got.held_mb, 24);
  EXPECT_EQ(got.start_wall_us, 1000);
  EXPECT_EQ(got.stop_wall_us, 9000);
  EXPECT_EQ(got.init_us, 1000);
  EXPECT_EQ(got.busy_us, 3000);
  EXPECT_EQ(got.idle_us, 4000);
  EXPECT_TRUE(got.provisioned);
  EXPECT_EQ(got.stop_reason, "keep_alive");
}

TEST(UsageJsonTest, ProvisionedRoundTrips) {
  const ProvisionedRecord rec{.model = "fashion", .memory_mb = 2048, .instances = 3, .start_wall_us = 5, .end_wall_us = 7};
  const std::string line = EncodeUsageRecord(rec);
  EXPECT_EQ(line,
            "{\"kind\":\"provisioned\",\"model\":\"fashion\",\"memory_mb\":2048,\"instances\":3,"
            "\"start_wall_us\":5,\"end_wall_us\":7}");
  auto decoded = DecodeUsageRecord(line);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& got = std::get<ProvisionedRecord>(*decoded);
  EXPECT_EQ(got.model, "fashion");
  EXPECT_EQ(got.memory_mb, 2048);
  EXPECT_EQ(got.instances, 3);
  EXPECT_EQ(got.start_wall_us, 5);
  EXPECT_EQ(got.end_wall_us, 7);
}

TEST(UsageJsonTest, HeldRoundTripsForEachKind) {
  const HeldRecord tmpl{.model = "fraud", .kind = HeldKind::kTemplate, .memory_mb = 1024,
                        .start_wall_us = 1'795'896'000'000'000, .end_wall_us = 1'795'896'060'000'000};
  const std::string line = EncodeUsageRecord(tmpl);
  EXPECT_EQ(line,
            "{\"kind\":\"held\",\"model\":\"fraud\",\"held_kind\":\"template\",\"memory_mb\":1024,"
            "\"start_wall_us\":1795896000000000,\"end_wall_us\":1795896060000000}");
  EXPECT_EQ(UsageRecordKind(tmpl), "held");
  auto decoded = DecodeUsageRecord(line);
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& got = std::get<HeldRecord>(*decoded);
  EXPECT_EQ(got.model, "fraud");
  EXPECT_EQ(got.kind, HeldKind::kTemplate);
  EXPECT_EQ(got.memory_mb, 1024);
  EXPECT_EQ(got.start_wall_us, 1'795'896'000'000'000);
  EXPECT_EQ(got.end_wall_us, 1'795'896'060'000'000);

  const HeldRecord standby{.model = "fashion", .kind = HeldKind::kStandby, .memory_mb = 512, .start_wall_us = 3,
                           .end_wall_us = 3};
  EXPECT_EQ(EncodeUsageRecord(standby),
            "{\"kind\":\"held\",\"model\":\"fashion\",\"held_kind\":\"standby\",\"memory_mb\":512,"
            "\"start_wall_us\":3,\"end_wall_us\":3}");
  decoded = DecodeUsageRecord(EncodeUsageRecord(standby));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<HeldRecord>(*decoded).kind, HeldKind::kStandby);

  const HeldRecord zygote{.kind = HeldKind::kZygote, .memory_mb = 256, .start_wall_us = 10, .end_wall_us = 20};
  EXPECT_EQ(EncodeUsageRecord(zygote),
            "{\"kind\":\"held\",\"model\":\"\",\"held_kind\":\"zygote\",\"memory_mb\":256,"
            "\"start_wall_us\":10,\"end_wall_us\":20}");
  decoded = DecodeUsageRecord(EncodeUsageRecord(zygote));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(std::get<HeldRecord>(*decoded).kind, HeldKind::kZygote);
  EXPECT_EQ(std::get<HeldRecord>(*decoded).model, "");
  EXPECT_EQ(std::get<HeldRecord>(*decoded).memory_mb, 256);
}

TEST(UsageJsonTest, AbsentFieldsTakeDefaults) {
  auto decoded = DecodeUsageRecord(R"({"kind":"invocation","model":"m","http_status":429})");
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  const auto& got = std::get<InvocationRecord>(*decoded);
  EXPECT_EQ(got.http_status, 429);
  EXPECT_EQ(got.instance_id, 0u);
  EXPECT_EQ(got.share, 0);
}

// The error names the field (or problem) and quotes the line.
void ExpectError(std::string_view line, std::string_view needle) {
  auto decoded = DecodeUsageRecord(line);
  ASSERT_FALSE(decoded.ok()) << line;
  EXPECT_EQ(decoded.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(decoded.status().message().find(needle), std::string::npos) << decoded.status().message();
  EXPECT_NE(decoded.status().message().find(line.substr(0, 20)), std::string::npos) << decoded.status().message();
}

TEST(UsageJsonTest, BadLinesAreErrorsNamingTheField) {
  ExpectError(R"({"kind":"invocation","model":"m","colour":1})", "'colour' is unknown");
  ExpectError(R"({"kind":"invocation","model":"m","latency_us":"fast"})", "'latency_us' must be an integer");
  ExpectError(R"({"kind":"invocation","model":"m","latency_us":-1})", "'latency_us' must be in");
  ExpectError(R"({"kind":"invocation","model":"m","share":1.5})", "'share' must be a number in [0, 1]");
  ExpectError(R"({"kind":"invocation","model":"m","cold_start":1})", "'cold_start' must be true or false");
  ExpectError(R"({"kind":"invocation","model":"m","http_status":42})", "'http_status' must be in");
  ExpectError(R"({"kind":"invocation","model":"m","queue_us":1,"queue_us":2})", "'queue_us' appears twice");
  ExpectError(R"({"kind":"invocation"})", "'model' is required");
  ExpectError(R"({"model":"m"})", "'kind' is required");
  ExpectError(R"({"kind":"refund","model":"m"})", "'kind' must be invocation, instance, provisioned or held");
  ExpectError(R"({"kind":"provisioned","model":"m","start_wall_us":9,"end_wall_us":8})", "'end_wall_us' is before");
  ExpectError(R"({"kind":"instance","model":"m","start_wall_us":9,"stop_wall_us":8})", "'stop_wall_us' is before");
  ExpectError(R"({"kind":"instance","model":"m","busy_us":-4})", "'busy_us'");
  ExpectError(R"({"kind":"invocation","model":"m")", "malformed JSON");
  ExpectError(R"([1,2])", "not a JSON object");
}

TEST(UsageJsonTest, BadHeldLinesAreErrorsNamingTheField) {
  ExpectError(R"({"kind":"held","model":"m","memory_mb":1})", "'held_kind' is required");
  ExpectError(R"({"kind":"held","model":"m","held_kind":"cache"})", "'held_kind' must be template, standby or zygote, got 'cache'");
  ExpectError(R"({"kind":"held","model":"m","held_kind":7})", "'held_kind' must be a string");
  ExpectError(R"({"kind":"held","held_kind":"zygote"})", "'model' is required");
  ExpectError(R"({"kind":"held","model":"m","held_kind":"zygote"})", "'model' must be empty for the zygote");
  ExpectError(R"({"kind":"held","model":"","held_kind":"template"})", "'model' must name the model of a template");
  ExpectError(R"({"kind":"held","model":"","held_kind":"standby"})", "'model' must name the model of a standby");
  ExpectError(R"({"kind":"held","model":"m","held_kind":"standby","memory_mb":-1})", "'memory_mb' must be in");
  ExpectError(R"({"kind":"held","model":"m","held_kind":"template","start_wall_us":9,"end_wall_us":8})",
              "'end_wall_us' is before");
  ExpectError(R"({"kind":"held","model":"m","held_kind":"template","instances":1})", "'instances' is unknown");
  ExpectError(R"({"kind":"held","model":"m","held_kind":"template","kind":"held"})", "'kind' appears twice");
}

TEST(UsageJsonTest, LongLinesAreQuotedShortened) {
  const std::string line = R"({"kind":"invocation","model":")" + std::string(1000, 'x') + R"(","colour":1})";
  auto decoded = DecodeUsageRecord(line);
  ASSERT_FALSE(decoded.ok());
  EXPECT_LT(decoded.status().message().size(), 400u);
  EXPECT_NE(decoded.status().message().find("..."), std::string::npos);
}

TEST(UsageJsonTest, NumbersAreShortestExact) {
  EXPECT_EQ(JsonNumber(0.25), "0.25");
  EXPECT_EQ(JsonNumber(1), "1");
  EXPECT_EQ(std::stod(JsonNumber(1.0 / 3.0)), 1.0 / 3.0);
  EXPECT_EQ(JsonNumber(std::numeric_limits<double>::infinity()), "0");
  EXPECT_EQ(JsonString("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
}

}  // namespace
}  // namespace thaw::metering
