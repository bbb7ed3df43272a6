#include "metering/meter.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

#include "metering/usage_json.h"

namespace thaw::metering {
namespace {

namespace fs = std::filesystem;

InvocationRecord Ok(std::string model) {
  return InvocationRecord{.model = std::move(model), .request_id = 1, .instance_id = 1, .latency_us = 2000,
                          .compute_us = 1000, .http_status = 200, .memory_mb = 1024, .batch_rows = 1,
                          .batch_requests = 1, .share = 1.0};
}

class MeterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "thaw_meter_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(MeterTest, RecordUpdatesStatsRecentAndLog) {
  const std::string path = (dir_ / "usage.jsonl").string();
  auto meter = Meter::Create({.prices = policy::AwsLambdaArm64(), .usage_log_path = path, .recent_capacity = 2});
  ASSERT_TRUE(meter.ok()) << meter.status().ToString();
  UsageSink& sink = **meter;  // what the runtime sees
  sink.Record(Ok("fraud"));
  sink.Record(Ok("fraud"));
  sink.Record(Ok("fashion"));
  EXPECT_EQ((*meter)->stats().records(), 3);
  EXPECT_EQ((*meter)->recent().size(), 2u);
  EXPECT_EQ((*meter)->recent().dropped(), 1);
  EXPECT_EQ(ReadUsageLog(path)->size(), 0u);  // buffered
  ASSERT_TRUE((*meter)->Flush().ok());
  EXPECT_EQ(ReadUsageLog(path)->size(), 3u);
  EXPECT_EQ((*meter)->log_write_errors(), 0);

  const UsageReport report = (*meter)->Report();
  EXPECT_EQ(report.prices.name, "aws-arm64");
  EXPECT_EQ(report.total.invocations, 3);

  const std::string all = (*meter)->StatsJson();
  EXPECT_TRUE(all.starts_with("{\"prices\":{\"name\":\"aws-arm64\"")) << all;
  EXPECT_NE(all.find("\"model\":\"fashion\""), std::string::npos);
  const std::string one = (*meter)->ModelStatsJson("fraud");
  EXPECT_TRUE(one.starts_with("{\"model\":\"fraud\",\"invocations\":2,")) << one;
  EXPECT_TRUE((*meter)->ModelStatsJson("idle").starts_with("{\"model\":\"idle\",\"invocations\":0,"));
}

TEST_F(MeterTest, WithoutALogFlushIsANoOp) {
  auto meter = Meter::Create({});
  ASSERT_TRUE(meter.ok());
  (*meter)->Record(Ok("fraud"));
  EXPECT_TRUE((*meter)->Flush().ok());
  EXPECT_EQ((*meter)->log(), nullptr);
  EXPECT_EQ((*meter)->prices().name, "aws-x86");
}

TEST_F(MeterTest, CreateErrors) {
  policy::PriceSheet bad;
  bad.granularity_us = 0;
  EXPECT_EQ(Meter::Create({.prices = bad}).status().code(), StatusCode::kInvalidArgument);
  auto unopenable = Meter::Create({.usage_log_path = (dir_ / "missing" / "u.jsonl").string()});
  EXPECT_EQ(unopenable.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(unopenable.status().message().find("u.jsonl"), std::string::npos);
}

TEST_F(MeterTest, LogFailuresAreCountedAndStatsStillUpdate) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  auto meter = Meter::Create({.usage_log_path = "/dev/full"});
  ASSERT_TRUE(meter.ok()) << meter.status().ToString();
  (*meter)->Record(Ok("fraud"));
  EXPECT_FALSE((*meter)->Flush().ok());
  EXPECT_FALSE((*meter)->Flush().ok());
  EXPECT_EQ((*meter)->log_write_errors(), 2);
  EXPECT_EQ((*meter)->stats().records(), 1);
}

size_t Occurrences(const std::string& text, const std::string& word) {
  size_t n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

TEST_F(MeterTest, AFailureStreakIsLoggedOnceWithItsReasonAndSurfacedInHealth) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  const size_t line_bytes = EncodeUsageRecord(Ok("fraud")).size() + 1;
  auto meter = Meter::Create({.usage_log_path = "/dev/full",
                              .log = {.flush_at_bytes = line_bytes, .max_buffer_bytes = 4 * line_bytes}});
  ASSERT_TRUE(meter.ok()) << meter.status().ToString();
  ASSERT_TRUE((*meter)->log_health().has_value());
  EXPECT_TRUE((*meter)->log_health()->ok);
  EXPECT_EQ((*meter)->next_flush_delay_ms(), 1000);
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 10; ++i) (*meter)->Record(Ok("fraud"));
  for (int i = 0; i < 3; ++i) EXPECT_FALSE((*meter)->Flush().ok());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(Occurrences(log, "usage_log_error"), 1u) << log;
  EXPECT_EQ(Occurrences(log, "usage_log_dropping"), 1u) << log;
  EXPECT_NE(log.find("No space left on device"), std::string::npos) << log;
  const UsageLogHealth health = *(*meter)->log_health();
  EXPECT_FALSE(health.ok);
  EXPECT_EQ(health.error, "No space left on device");
  EXPECT_EQ(health.buffered_records, 4);
  EXPECT_EQ(health.dropped_records, 6);
  EXPECT_EQ(health.write_errors, 4);  // the append that reached flush_at_bytes, then 3 flushes
  EXPECT_EQ((*meter)->next_flush_delay_ms(), 16000);
  EXPECT_EQ((*meter)->stats().records(), 10);  // statistics count every record
  Status closed = (*meter)->CloseLog();
  EXPECT_NE(closed.message().find("10 usage record(s) were never written"), std::string::npos) << closed.message();
}

TEST(UsageFanOutTest, EverySinkGetsEveryRecord) {
  auto a = Meter::Create({});
  auto b = Meter::Create({});
  ASSERT_TRUE(a.ok() && b.ok());
  UsageFanOut fan_out({a->get(), b->get()});
  fan_out.Record(Ok("fraud"));
  fan_out.Record(Ok("fashion"));
  EXPECT_EQ((*a)->stats().records(), 2);
  EXPECT_EQ((*b)->stats().records(), 2);
  EXPECT_EQ(std::get<InvocationRecord>((*b)->recent().records().back()).model, "fashion");
}

}  // namespace
}  // namespace thaw::metering
