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

// Records for HeldMemoryByKind...: fraud (2 ok invocations, an on-demand
// and a provisioned instance, a template, a standby), fashion (a template),
// the zygote (the platform's).
UsageStats HeldExample() {
  UsageStats stats;
  stats.Add(Ok("fraud", 1500));
  stats.Add(Ok("fraud", 1500));
  // On-demand, 2 GB: busy = (0.5 s init + 10 s busy) x 2 = 21 GB-s; idle-warm 60 s x 2 = 120 GB-s.
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 2048, .start_wall_us = kNov28,
                           .stop_wall_us = kNov28 + 71 * kMicrosPerSecond, .init_us = 500'000,
                           .busy_us = 10 * kMicrosPerSecond, .idle_us = 60 * kMicrosPerSecond});
  // Provisioned, 1 GB, 300 s from start to stop: 300 GB-s, whatever its busy and idle split.
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 1024, .start_wall_us = kNov28,
                           .stop_wall_us = kNov28 + 300 * kMicrosPerSecond, .init_us = kMicrosPerSecond,
                           .busy_us = 20 * kMicrosPerSecond, .idle_us = 279 * kMicrosPerSecond, .provisioned = true});
  // Template 0.5 GB x 600 s = 300 GB-s; standby 0.5 GB x 120 s = 60 GB-s.
  stats.Add(HeldRecord{.model = "fraud", .kind = HeldKind::kTemplate, .memory_mb = 512, .start_wall_us = kNov28,
                       .end_wall_us = kNov28 + 600 * kMicrosPerSecond});
  stats.Add(HeldRecord{.model = "fraud", .kind = HeldKind::kStandby, .memory_mb = 512, .start_wall_us = kNov28,
                       .end_wall_us = kNov28 + 120 * kMicrosPerSecond});
  // An interval ending before it starts (the log refuses it) counts as 0.
  stats.Add(HeldRecord{.model = "fraud", .kind = HeldKind::kStandby, .memory_mb = 512,
                       .start_wall_us = kNov28 + 10, .end_wall_us = kNov28});
  // fashion's template: 1 GB x 3600 s = 3600 GB-s.
  stats.Add(HeldRecord{.model = "fashion", .kind = HeldKind::kTemplate, .memory_mb = 1024, .start_wall_us = kNov28,
                       .end_wall_us = kNov28 + 3600 * kMicrosPerSecond});
  // The zygote: 0.25 GB x 3600 s = 900 GB-s, the platform's.
  stats.Add(HeldRecord{.kind = HeldKind::kZygote, .memory_mb = 256, .start_wall_us = kNov28 - 60 * kMicrosPerSecond,
                       .end_wall_us = kNov28 + 3540 * kMicrosPerSecond});
  return stats;
}

TEST(UsageStatsTest, HeldMemoryByKindPerModelAndThePlatform) {
  const UsageStats stats = HeldExample();
  const UsageReport report = stats.Report(policy::PriceSheet{});
  EXPECT_EQ(report.records, 9);
  EXPECT_EQ(report.from_wall_us, kNov28 - 60 * kMicrosPerSecond);  // the zygote's start
  EXPECT_EQ(report.to_wall_us, kNov28 + 3600 * kMicrosPerSecond);  // fashion's template's end
  ASSERT_EQ(report.models.size(), 3u);
  EXPECT_EQ(report.models[0].model, "fashion");
  EXPECT_EQ(report.models[1].model, "fraud");
  EXPECT_EQ(report.models[2].model, "(platform)");  // after the models, not spread over them

  const policy::HeldMemory& fraud = report.models[1].usage.held;
  EXPECT_DOUBLE_EQ(fraud.busy_gb_s, 21);
  EXPECT_DOUBLE_EQ(fraud.idle_warm_gb_s, 120);
  EXPECT_DOUBLE_EQ(fraud.provisioned_gb_s, 300);
  EXPECT_DOUBLE_EQ(fraud.template_gb_s, 300);
  EXPECT_DOUBLE_EQ(fraud.standby_gb_s, 60);
  EXPECT_EQ(fraud.zygote_gb_s, 0);
  EXPECT_DOUBLE_EQ(fraud.total_gb_s(), 801);
  // The existing fields keep their meaning: idle-warm of on-demand instances only.
  EXPECT_DOUBLE_EQ(report.models[1].usage.idle_warm_gb_s, 120);
  EXPECT_EQ(report.models[1].usage.provisioned_capacity_gb_s, 0);  // that comes from ProvisionedRecords
  EXPECT_EQ(report.models[1].instances_stopped, 2);
  // Host: 801 GB-s / 3600 x $0.00826875 = $0.001839796875; per 1 M of its 2 ok: $919.8984375.
  EXPECT_NEAR(report.models[1].bill.host_usd, 0.001839796875, 1e-15);
  EXPECT_NEAR(report.models[1].host_usd_per_million_ok, 919.8984375, 1e-9);
  // The Lambda-style bill is the invocations' alone: 2 x ($0.0000002 + 0.001 GB-s x $0.0000166667).
  EXPECT_NEAR(report.models[1].bill.total_usd, 2 * (0.0000002 + 0.0000000166667), 1e-18);

  const ModelUsage& fashion = report.models[0];
  EXPECT_DOUBLE_EQ(fashion.usage.held.template_gb_s, 3600);
  EXPECT_DOUBLE_EQ(fashion.usage.held.total_gb_s(), 3600);
  EXPECT_NEAR(fashion.bill.host_usd, 0.00826875, 1e-15);  // one GB-hour
  EXPECT_EQ(fashion.bill.total_usd, 0);
  EXPECT_EQ(fashion.host_usd_per_million_ok, 0);  // no 2xx

  const ModelUsage& platform = report.models[2];
  EXPECT_EQ(platform.invocations, 0);
  EXPECT_DOUBLE_EQ(platform.usage.held.zygote_gb_s, 900);
  EXPECT_DOUBLE_EQ(platform.usage.held.total_gb_s(), 900);
  EXPECT_NEAR(platform.bill.host_usd, 0.0020671875, 1e-15);  // 0.25 GB-hour
  EXPECT_EQ(platform.bill.total_usd, 0);

  // Total: 801 + 3600 + 900 = 5301 GB-s held; $0.012175734375; per 1 M of 2 ok: $6087.8671875.
  const policy::HeldMemory& all = report.total.usage.held;
  EXPECT_DOUBLE_EQ(all.busy_gb_s, 21);
  EXPECT_DOUBLE_EQ(all.template_gb_s, 3900);
  EXPECT_DOUBLE_EQ(all.zygote_gb_s, 900);
  EXPECT_DOUBLE_EQ(all.total_gb_s(), 5301);
  EXPECT_NEAR(report.total.bill.host_usd, 0.012175734375, 1e-15);
  EXPECT_NEAR(report.total.host_usd_per_million_ok, 6087.8671875, 1e-9);
  EXPECT_NEAR(report.total.bill.total_usd, report.models[1].bill.total_usd, 1e-18);

  // One row at a time: the platform's by its name, a model's by its name.
  EXPECT_DOUBLE_EQ(stats.ModelReport(kPlatformModel, policy::PriceSheet{}).usage.held.zygote_gb_s, 900);
  EXPECT_DOUBLE_EQ(stats.ModelReport("fraud", policy::PriceSheet{}).usage.held.total_gb_s(), 801);
  EXPECT_EQ(stats.ModelReport("", policy::PriceSheet{}).usage.held.total_gb_s(), 0);

  // Without a zygote record there is no platform row.
  UsageStats no_platform;
  no_platform.Add(Ok("fraud", 1500));
  EXPECT_EQ(no_platform.Report(policy::PriceSheet{}).models.size(), 1u);
}

// Held memory is metered at what the node's budget charged an instance
// (held_mb, a measured charge), idle-warm time at its memory_mb.
TEST(UsageStatsTest, HeldMemoryOfAnInstanceIsItsChargeIdleWarmItsMemoryMb) {
  UsageStats stats;
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 512, .held_mb = 16, .start_wall_us = kNov28,
                           .stop_wall_us = kNov28 + 100 * kMicrosPerSecond, .init_us = 0,
                           .busy_us = 20 * kMicrosPerSecond, .idle_us = 80 * kMicrosPerSecond});
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 512, .start_wall_us = kNov28,  // no held_mb: memory_mb
                           .stop_wall_us = kNov28 + 10 * kMicrosPerSecond, .idle_us = 10 * kMicrosPerSecond});
  const ModelUsage row = stats.Report(policy::PriceSheet{}).models.at(0);
  EXPECT_DOUBLE_EQ(row.usage.held.busy_gb_s, 20 * 16 / 1024.0);
  EXPECT_DOUBLE_EQ(row.usage.held.idle_warm_gb_s, 80 * 16 / 1024.0 + 10 * 0.5);
  EXPECT_DOUBLE_EQ(row.usage.idle_warm_gb_s, 80 * 0.5 + 10 * 0.5);
}

TEST(UsageStatsTest, GranularityComesFromTheConstructor) {
  UsageStats stats(100 * kMicrosPerMilli);
  stats.Add(Ok("fraud", 1000));  // 1 ms -> 100 ms
  EXPECT_NEAR(stats.ModelReport("fraud", policy::PriceSheet{}).usage.on_demand_duration_gb_s, 0.1, 1e-15);
  const std::string table = ReportTable(stats.Report(policy::PriceSheet{}));
  EXPECT_NE(table.find("NOTE: durations were rounded to 100 ms"), std::string::npos) << table;
}

// An instance still up counts with its idle-warm time so far, without being
// counted as stopped; its final record replaces it.
TEST(UsageStatsTest, RunningInstancesCountTheirUsageSoFar) {
  UsageStats stats;
  stats.Add(Ok("fraud", 1500));
  const InstanceRecord running{.model = "fraud", .memory_mb = 512, .start_wall_us = kNov28,
                               .stop_wall_us = kNov28 + 10 * kMicrosPerSecond, .idle_us = 10 * kMicrosPerSecond,
                               .stop_reason = "running"};
  const InstanceRecord other{.model = "fashion", .memory_mb = 1024, .start_wall_us = kNov28,
                             .stop_wall_us = kNov28 + 2 * kMicrosPerSecond, .idle_us = 2 * kMicrosPerSecond};
  EXPECT_EQ(stats.ModelReport("fraud", policy::PriceSheet{}).usage.idle_warm_gb_s, 0);
  const std::vector<InstanceRecord> up{running, other};
  const ModelUsage row = stats.ModelReport("fraud", policy::PriceSheet{}, up);
  EXPECT_DOUBLE_EQ(row.usage.idle_warm_gb_s, 10 * 0.5);
  EXPECT_DOUBLE_EQ(row.usage.held.idle_warm_gb_s, 10 * 0.5);
  EXPECT_EQ(row.instances_stopped, 0);
  const UsageReport report = stats.Report(policy::PriceSheet{}, up);
  EXPECT_EQ(report.records, 1);
  ASSERT_EQ(report.models.size(), 2u);  // fashion has no record but a running instance
  EXPECT_EQ(report.models[0].model, "fashion");
  EXPECT_DOUBLE_EQ(report.models[0].usage.idle_warm_gb_s, 2 * 1.0);
  EXPECT_DOUBLE_EQ(report.total.usage.idle_warm_gb_s, 10 * 0.5 + 2 * 1.0);
  EXPECT_EQ(report.total.instances_stopped, 0);
  // Nothing was kept: without them, as before.
  EXPECT_EQ(stats.Report(policy::PriceSheet{}).total.usage.idle_warm_gb_s, 0);
  InstanceRecord stopped = running;
  stopped.stop_wall_us += 5 * kMicrosPerSecond;
  stopped.idle_us += 5 * kMicrosPerSecond;
  stopped.stop_reason = "keep_alive";
  stats.Add(stopped);
  EXPECT_DOUBLE_EQ(stats.ModelReport("fraud", policy::PriceSheet{}).usage.idle_warm_gb_s, 15 * 0.5);
  EXPECT_EQ(stats.ModelReport("fraud", policy::PriceSheet{}).instances_stopped, 1);
}

// A simulation's records are in virtual time: its report shows seconds, not 1970 dates.
TEST(UsageStatsTest, VirtualTimeShowsAsSecondsNotDates) {
  UsageStats stats;
  stats.Add(InstanceRecord{.model = "fraud", .memory_mb = 512, .start_wall_us = 40'216'729,
                           .stop_wall_us = 196'020'246, .idle_us = 0});
  UsageReport report = stats.Report(policy::PriceSheet{});
  // Without its origin, a time before 2001 cannot be a wall time: from 0, as trace time.
  EXPECT_NE(ReportTable(report).find(", +00:00:40.216 to +00:03:16.020 (trace time)"), std::string::npos)
      << ReportTable(report);
  EXPECT_EQ(ReportTable(report).find("1970"), std::string::npos) << ReportTable(report);
  report.virtual_origin_wall_us = 0;
  const std::string table = ReportTable(report);
  EXPECT_NE(table.find("simulated +00:00:40.216 to +00:03:16.020"), std::string::npos) << table;
  EXPECT_EQ(table.find("1970"), std::string::npos) << table;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  const std::string json = ReportJson(report);
  ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS) << json;
  EXPECT_NEAR(root["from_virtual_s"].get_double().value(), 40.216729, 1e-9);
  EXPECT_NEAR(root["to_virtual_s"].get_double().value(), 196.020246, 1e-9);
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
  for (const char* key : {"busy", "idle_warm", "provisioned", "template", "standby", "zygote", "total"})
    EXPECT_EQ(root["total"]["held_gb_s"][key].get_double().value(), 0) << key;
  EXPECT_EQ(root["total"]["host_usd"].get_double().value(), 0);
  EXPECT_EQ(root["total"]["host_usd_per_million_ok"].get_double().value(), 0);
  EXPECT_EQ(root["prices"]["host_usd_per_gb_hour"].get_double().value(), 0.00826875);

  const std::string one = ModelReportJson(report.models[0], report.prices, report.granularity_us);
  ASSERT_EQ(parser.parse(one).get(root), simdjson::SUCCESS) << one;
  EXPECT_EQ(root["model"].get_string().value(), "fraud");
  EXPECT_EQ(root["prices"]["name"].get_string().value(), "aws-arm64");
  EXPECT_EQ(root["invocations"].get_int64().value(), 1);
}

TEST(UsageStatsTest, ReportJsonHasHeldMemoryAndTheHostCost) {
  const UsageReport report = HeldExample().Report(policy::PriceSheet{});
  const std::string json = ReportJson(report);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(json).get(root), simdjson::SUCCESS) << json;
  auto fraud = root["models"].at(1);
  EXPECT_EQ(fraud["model"].get_string().value(), "fraud");
  EXPECT_EQ(fraud["held_gb_s"]["busy"].get_double().value(), 21);
  EXPECT_EQ(fraud["held_gb_s"]["idle_warm"].get_double().value(), 120);
  EXPECT_EQ(fraud["held_gb_s"]["provisioned"].get_double().value(), 300);
  EXPECT_EQ(fraud["held_gb_s"]["template"].get_double().value(), 300);
  EXPECT_EQ(fraud["held_gb_s"]["standby"].get_double().value(), 60);
  EXPECT_EQ(fraud["held_gb_s"]["zygote"].get_double().value(), 0);
  EXPECT_EQ(fraud["held_gb_s"]["total"].get_double().value(), 801);
  EXPECT_EQ(fraud["host_usd"].get_double().value(), 0.001839796875);  // 10 significant digits suffice here
  EXPECT_EQ(fraud["host_usd_per_million_ok"].get_double().value(), 919.8984375);
  EXPECT_EQ(fraud["gb_s"]["idle_warm"].get_double().value(), 120);
  auto platform = root["models"].at(2);
  EXPECT_EQ(platform["model"].get_string().value(), "(platform)");
  EXPECT_EQ(platform["held_gb_s"]["zygote"].get_double().value(), 900);
  EXPECT_EQ(platform["usd"]["total"].get_double().value(), 0);
  EXPECT_EQ(platform["host_usd"].get_double().value(), 0.0020671875);
  EXPECT_EQ(root["total"]["held_gb_s"]["total"].get_double().value(), 5301);
  EXPECT_EQ(root["total"]["host_usd"].get_double().value(), 0.01217573437);  // $0.012175734375 to 10 digits

  const std::string one = ModelReportJson(report.models[2], report.prices, report.granularity_us);
  ASSERT_EQ(parser.parse(one).get(root), simdjson::SUCCESS) << one;
  EXPECT_EQ(root["held_gb_s"]["zygote"].get_double().value(), 900);
}

TEST(UsageStatsTest, TableShowsMemoryHeldAndTheHostCostBesideTheBill) {
  const std::string table = ReportTable(HeldExample().Report(policy::PriceSheet{}));
  EXPECT_NE(table.find("--- memory held, GB-s ---"), std::string::npos) << table;
  EXPECT_NE(table.find("\nmodel            busy  idle-warm provisioned   template    standby     zygote       total "
                       "      host $ host $/1M 2xx\n"),
            std::string::npos)
      << table;
  // Significant digits, not fixed decimals: 0 and 120.0, never 0.0000 or 0.00183980.
  EXPECT_NE(table.find("\nfraud           21.00      120.0       300.0      300.0      60.00          0       801.0 "
                       "    0.001840         919.9\n"),
            std::string::npos)
      << table;
  EXPECT_NE(table.find("\n(platform)          0          0           0          0          0      900.0       900.0 "
                       "    0.002067             0\n"),
            std::string::npos)
      << table;
  // 5301 GB-s = 1.4725 GB-hours x $0.00826875 = $0.012175734375.
  EXPECT_NE(table.find("host $: 5301 GB-s held = 1.472 GB-hours x $0.00826875 per GB-hour = 0.01218 "
                       "(the host's cost of the memory held; not in total $)\n"),
            std::string::npos)
      << table;
  // The Lambda-style table has the platform's row too, billed nothing.
  EXPECT_NE(table.find("\n(platform)           0        0      0 "), std::string::npos) << table;
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

// A client (thaw replay) prints a server's JSON report with the same table as thaw cost.
TEST(UsageStatsTest, ReportJsonParsesBackToTheSameTable) {
  UsageStats stats = HeldExample();
  stats.Add(Ok("fashion", 2500));
  const UsageReport report = stats.Report(policy::PriceSheet{});
  auto parsed = ParseReportJson(ReportJson(report), "/v2/stats");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(ReportTable(*parsed), ReportTable(report));

  // One model's row (/v2/models/fraud/usage): that model and the total, the record count unknown.
  const ModelUsage& fraud = report.models[1];
  ASSERT_EQ(fraud.model, "fraud");
  auto one = ParseReportJson(ModelReportJson(fraud, report.prices, report.granularity_us), "usage");
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->models.size(), 1u);
  EXPECT_EQ(one->models[0].model, "fraud");
  EXPECT_EQ(one->total.invocations, fraud.invocations);
  EXPECT_DOUBLE_EQ(one->total.bill.total_usd, fraud.bill.total_usd);
  EXPECT_EQ(ReportTable(*one).find("records"), std::string::npos) << ReportTable(*one);

  EXPECT_EQ(ParseReportJson("[1]", "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseReportJson("{\"a\":1}", "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ParseReportJson("not json", "/v2/stats").status().message().find("/v2/stats"), std::string::npos);
}

// Simulated and replayed side by side: the difference and its share of the simulated value.
TEST(UsageStatsTest, CompareReportsShowsDifferences) {
  UsageReport simulated, replayed;
  ModelUsage a;
  a.model = "fraud";
  a.invocations = 100;
  a.ok = 100;
  a.cold_starts = 4;
  a.p99_ms = 20;
  ModelUsage b = a;
  b.cold_starts = 5;
  b.p99_ms = 25;
  simulated.models = {a};
  replayed.models = {b};
  ModelUsage only_live;
  only_live.model = "fashion";
  only_live.invocations = 3;
  replayed.models.push_back(only_live);
  const std::string table = CompareReportsTable(simulated, replayed);
  EXPECT_NE(table.find("\nfraud        invocations         100         100          +0      +0 %\n"), std::string::npos)
      << table;
  EXPECT_NE(table.find("\n             cold starts           4           5          +1     +25 %\n"), std::string::npos) << table;
  EXPECT_NE(table.find("\n                  p99 ms       20.00       25.00      +5.000     +25 %\n"), std::string::npos) << table;
  // Nothing simulated: no percentage.
  EXPECT_NE(table.find("\n                  p50 ms           0           0          +0\n"), std::string::npos) << table;
  // A model only one side has: "-" for the other, no difference.
  EXPECT_NE(table.find("\nfashion      invocations           -           3           -\n"), std::string::npos) << table;
  EXPECT_NE(table.find("\ntotal "), std::string::npos) << table;
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
