#include "metering/usage_stats.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace thaw::metering {
namespace {

constexpr Micros kNov28 = 1'795'896'000 * kMicrosPerSecond;  // 2026-11-28T20:00:00Z

double ExactNearestRank(std::vector<Micros> values, double q) {
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size()) - 1e-9));
  rank = std::clamp<size_t>(rank, 1, values.size());
  return static_cast<double>(values[rank - 1]);
}

TEST(LatencyHistogramTest, PercentilesAreWithinOnePercent) {
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> latency(std::log(2000.0), 1.5);  // ~2 ms median, long tail
  std::vector<Micros> values;
  LatencyHistogram histogram;
  for (int i = 0; i < 20000; ++i) {
    const auto v = std::max<Micros>(1, static_cast<Micros>(latency(rng)));
    values.push_back(v);
    histogram.Add(v);
  }
  for (Micros v : std::initializer_list<Micros>{1, 2, 3, 1000, 1001, 10'000'000'000}) {  // edges: tiny values, 10^4 s
    values.push_back(v);
    histogram.Add(v);
  }
  EXPECT_EQ(histogram.count(), static_cast<int64_t>(values.size()));
  for (double q : {0.0001, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0}) {
    const double exact = ExactNearestRank(values, q);
    EXPECT_LE(std::abs(histogram.QuantileUs(q) - exact), LatencyHistogram::kRelativeError * exact)
        << "q=" << q << " exact=" << exact << " got=" << histogram.QuantileUs(q);
  }
}

TEST(LatencyHistogramTest, EveryIntegerUpToTenThousandIsWithinOnePercent) {
  for (Micros v = 1; v <= 10000; ++v) {
    LatencyHistogram h;
    h.Add(v);
    ASSERT_LE(std::abs(h.QuantileUs(0.5) - static_cast<double>(v)), 0.01 * static_cast<double>(v)) << v;
  }
}

TEST(LatencyHistogramTest, ZerosEmptyAndMerge) {
  LatencyHistogram empty;
  EXPECT_EQ(empty.QuantileUs(0.5), 0);
  LatencyHistogram a, b, all;
  for (Micros v : {0, 0, 5, 100}) {
    a.Add(v);
    all.Add(v);
  }
  for (Micros v : {3, 7000, 2}) {
    b.Add(v);
    all.Add(v);
  }
  EXPECT_EQ(a.QuantileUs(0.5), 0);  // rank 2 of 4 is a zero
  a.Merge(b);
  EXPECT_EQ(a.count(), 7);
  for (double q : {0.1, 0.3, 0.5, 0.7, 1.0}) EXPECT_EQ(a.QuantileUs(q), all.QuantileUs(q)) << q;
  LatencyHistogram c;
  c.Merge(all);
  EXPECT_EQ(c.QuantileUs(0.99), all.QuantileUs(0.99));
}

InvocationRecord Ok(std::string model, Micros latency_us, int64_t batch_rows = 1) {
  return InvocationRecord{.model = std::move(model), .request_id = 1, .instance_id = 1, .arrival_wall_us = kNov28,
                          .latency_us = latency_us, .compute_us = 1000, .http_status = 200, .memory_mb = 1024,
                          .batch_rows = batch_rows, .batch_requests = 1, .share = 1.0};
}

TEST(UsageStatsTest, CountsStatusesColdStartsLatencyAndBatches) {
  UsageStats stats;
  stats.Add(Ok("fraud", 1000, 1));
  stats.Add(Ok("fraud", 2000, 3));
  InvocationRecord cold = Ok("fraud", 3000, 2);
  cold.cold_start = true;
  cold.init_us = 100'000;
  stats.Add(cold);
  // Refused before reaching an instance: counted, not billed, not in latency.
  stats.Add(InvocationRecord{.model = "fraud", .arrival_wall_us = kNov28, .latency_us = 99'000'000, .http_status = 429, .memory_mb = 1024});
  stats.Add(InvocationRecord{.model = "fashion", .instance_id = 4, .arrival_wall_us = kNov28, .latency_us = 50, .compute_us = 10,
                             .http_status = 504, .memory_mb = 512, .batch_rows = 1, .share = 1});

  const UsageReport report = stats.Report(policy::PriceSheet{});
  EXPECT_EQ(report.records, 5);
  ASSERT_EQ(report.models.size(), 2u);
  EXPECT_EQ(report.models[0].model, "fashion");  // by name
  const ModelUsage& fraud = report.models[1];
  EXPECT_EQ(fraud.model, "fraud");
  EXPECT_EQ(fraud.invocations, 4);
  EXPECT_EQ(fraud.ok, 3);
  EXPECT_EQ(fraud.cold_starts, 1);
  EXPECT_EQ(fraud.status_counts, (std::vector<std::pair<int, int64_t>>{{200, 3}, {429, 1}}));
  EXPECT_EQ(fraud.latency_count, 3);
  EXPECT_NEAR(fraud.p50_ms, 2.0, 0.02);
  EXPECT_NEAR(fraud.p99_ms, 3.0, 0.03);  // the 429 is not a latency sample
  EXPECT_DOUBLE_EQ(fraud.mean_batch_rows, 2.0);  // (1 + 3 + 2) / 3
  EXPECT_EQ(fraud.usage.requests, 3);
  // 3 x 1 ms x 1 GB = 0.003 GB-s; init 100 ms x 1 GB = 0.1 GB-s
  EXPECT_NEAR(fraud.usage.on_demand_duration_gb_s, 0.003, 1e-15);
  EXPECT_NEAR(fraud.usage.init_gb_s, 0.1, 1e-15);

  const ModelUsage& fashion = report.models[0];
  EXPECT_EQ(fashion.ok, 0);
  EXPECT_EQ(fashion.usage.requests, 1);  // a 504 that reached an instance is billed
  EXPECT_EQ(fashion.usd_per_million_ok, 0);

  EXPECT_EQ(report.total.model, "");
  EXPECT_EQ(report.total.invocations, 5);
  EXPECT_EQ(report.total.ok, 3);
  EXPECT_EQ(report.total.usage.requests, 4);
  EXPECT_EQ(report.total.status_counts,
            (std::vector<std::pair<int, int64_t>>{{200, 3}, {429, 1}, {504, 1}}));
  EXPECT_NEAR(report.total.bill.total_usd, fraud.bill.total_usd + fashion.bill.total_usd, 1e-18);
  EXPECT_NEAR(report.total.usd_per_million_ok, report.total.bill.total_usd / 3 * 1e6, 1e-12);
  EXPECT_EQ(report.from_wall_us, kNov28);
  EXPECT_EQ(report.to_wall_us, kNov28 + 99'000'000);
}

TEST(UsageStatsTest, ProvisionedInstancesPayCapacityNotInitOrIdle) {
  UsageStats stats;
  InvocationRecord cold = Ok("fraud", 3000);
  cold.cold_start = true;
  cold.init_us = 100'000;
  cold.provisioned = true;
  stats.Add(cold);
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 1024, .start_wall_us = kNov28,
                           .stop_wall_us = kNov28 + 60 * kMicrosPerSecond, .idle_us = 50 * kMicrosPerSecond,
                           .provisioned = true});
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 512, .start_wall_us = kNov28,
                           .stop_wall_us = kNov28 + 60 * kMicrosPerSecond, .idle_us = 10 * kMicrosPerSecond});
  stats.Add(ProvisionedRecord{.model = "fraud", .memory_mb = 1024, .instances = 1, .start_wall_us = kNov28,
                              .end_wall_us = kNov28 + 60 * kMicrosPerSecond});
  const ModelUsage row = stats.ModelReport("fraud", policy::PriceSheet{});
  EXPECT_EQ(row.usage.init_gb_s, 0);
  EXPECT_EQ(row.usage.on_demand_duration_gb_s, 0);
  EXPECT_NEAR(row.usage.provisioned_duration_gb_s, 0.001, 1e-15);  // 1 ms x 1 GB
  EXPECT_NEAR(row.usage.provisioned_capacity_gb_s, 60, 1e-12);     // 60 s x 1 GB
  EXPECT_NEAR(row.usage.idle_warm_gb_s, 5, 1e-12);                 // the on-demand one: 10 s x 0.5 GB
  EXPECT_EQ(row.instances_stopped, 2);

  const ModelUsage none = stats.ModelReport("nobody", policy::PriceSheet{});
  EXPECT_EQ(none.model, "nobody");
  EXPECT_EQ(none.invocations, 0);
  EXPECT_EQ(none.bill.total_usd, 0);
}

TEST(UsageStatsTest, GranularityComesFromTheConstructor) {
  UsageStats stats(100 * kMicrosPerMilli);
  stats.Add(Ok("fraud", 1000));  // 1 ms -> 100 ms
  EXPECT_NEAR(stats.ModelReport("fraud", policy::PriceSheet{}).usage.on_demand_duration_gb_s, 0.1, 1e-15);
  const std::string table = ReportTable(stats.Report(policy::PriceSheet{}));
  EXPECT_NE(table.find("NOTE: durations were rounded to 100 ms"), std::string::npos) << table;
}

TEST(UsageStatsTest, ReportJsonIsValidAndComplete) {
  UsageStats stats;
  stats.Add(Ok("fraud", 1500, 2));
  stats.Add(Ok("we\"ird", 1500));
  const UsageReport report = stats.Report(policy::AwsLambdaArm64());
  const std::string json = ReportJson(report);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS) << json;
  EXPECT_EQ(root["prices"]["name"].get_string().value(), "aws-arm64");
  EXPECT_EQ(root["granularity_ms"].get_double().value(), 1.0);
  EXPECT_EQ(root["records"].get_int64().value(), 2);
  EXPECT_EQ(root["models"].get_array().value().size(), 2u);
  EXPECT_EQ(root["models"].at(0)["model"].get_string().value(), "fraud");
  EXPECT_EQ(root["models"].at(0)["status_counts"]["200"].get_int64().value(), 1);
  EXPECT_EQ(root["models"].at(0)["mean_batch_rows"].get_double().value(), 2.0);
  EXPECT_EQ(root["total"]["billed_requests"].get_int64().value(), 2);
  for (const char* key : {"on_demand_duration", "init", "provisioned_capacity", "provisioned_duration", "idle_warm"})
    EXPECT_FALSE(root["total"]["gb_s"][key].error()) << key;
  for (const char* key : {"requests", "on_demand_duration", "init", "provisioned_capacity", "provisioned_duration", "total"})
    EXPECT_FALSE(root["total"]["usd"][key].error()) << key;
  EXPECT_NEAR(root["total"]["usd"]["total"].get_double().value(), report.total.bill.total_usd, 1e-15);
  EXPECT_FALSE(root["total"]["usd_per_million_ok"].error());
  EXPECT_FALSE(root["total"]["latency_ms"]["p99"].error());

  const std::string one = ModelReportJson(report.models[0], report.prices, report.granularity_us);
  ASSERT_EQ(parser.parse(one).get(root), simdjson::SUCCESS) << one;
  EXPECT_EQ(root["model"].get_string().value(), "fraud");
  EXPECT_EQ(root["prices"]["name"].get_string().value(), "aws-arm64");
  EXPECT_EQ(root["invocations"].get_int64().value(), 1);
}

TEST(UsageStatsTest, TableHasARowPerModelAndTheTotal) {
  UsageStats stats;
  stats.Add(Ok("fraud", 1500));
  stats.Add(Ok("fashion", 1500));
  const std::string table = ReportTable(stats.Report(policy::PriceSheet{}));
  EXPECT_NE(table.find("prices aws-x86 (1 ms granularity, init billed); 2 records, 2026-11-28T20:00:00Z"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("\nfraud "), std::string::npos) << table;
  EXPECT_NE(table.find("\nfashion "), std::string::npos) << table;
  EXPECT_NE(table.find("\ntotal "), std::string::npos) << table;
  EXPECT_NE(table.find("total $: requests"), std::string::npos) << table;
}

TEST(UsageStatsTest, WallTimeText) {
  EXPECT_EQ(WallTimeText(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(WallTimeText(kNov28 + 999'999), "2026-11-28T20:00:00Z");
  EXPECT_EQ(WallTimeText(1'709'251'199 * kMicrosPerSecond), "2024-02-29T23:59:59Z");
  EXPECT_EQ(WallTimeText(-1), "1969-12-31T23:59:59Z");
}

TEST(RecentUsageTest, KeepsTheLatestAndCountsDrops) {
  RecentUsage recent(3);
  for (uint64_t id = 1; id <= 5; ++id) {
    InvocationRecord r = Ok("fraud", 1000);
    r.request_id = id;
    r.arrival_wall_us = static_cast<Micros>(id) * 100;
    recent.Add(r);
  }
  EXPECT_EQ(recent.size(), 3u);
  EXPECT_EQ(recent.capacity(), 3u);
  EXPECT_EQ(recent.dropped(), 2);
  EXPECT_EQ(std::get<InvocationRecord>(recent.records().front()).request_id, 3u);
  EXPECT_EQ(std::get<InvocationRecord>(recent.records().back()).request_id, 5u);
  EXPECT_EQ(recent.Since(400).size(), 2u);
  EXPECT_EQ(RecentUsage().capacity(), 100000u);
}

}  // namespace
}  // namespace thaw::metering
