#include "metering/meter.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

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
