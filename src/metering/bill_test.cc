// End to end: a scripted sequence of usage records goes through UsageLog to
// a file, is read back with ReadUsageLog into UsageStats, and the report's
// dollars equal a bill computed by hand (AWS Lambda x86 prices), and its host
// cost one computed by hand from the memory held.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>

#include "metering/usage_log.h"
#include "metering/usage_stats.h"
#include "policy/pricing.h"

namespace thaw::metering {
namespace {

namespace fs = std::filesystem;

constexpr Micros kT0 = 1'795'896'000 * kMicrosPerSecond;  // 2026-11-28T20:00:00Z
constexpr Micros kMinute = 60 * kMicrosPerSecond;
constexpr int64_t kMemoryMb = 2048;                         // 2 GB

void ExpectUsd(double actual, double expected) {
  EXPECT_NEAR(actual, expected, expected * 1e-12 + 1e-18) << "expected " << expected;
}

InvocationRecord Invocation(uint64_t id, uint64_t instance, Micros compute_us, int64_t batch_rows, int batch_requests,
                            double share) {
  return InvocationRecord{.model = "fraud",
                          .request_id = id,
                          .instance_id = instance,
                          .arrival_wall_us = kT0 + 20 * kMinute + static_cast<Micros>(id) * kMicrosPerSecond,
                          .latency_us = compute_us + 500,
                          .compute_us = compute_us,
                          .http_status = 200,
                          .memory_mb = kMemoryMb,
                          .batch_rows = batch_rows,
                          .batch_requests = batch_requests,
                          .share = share,
                          .start_path = "template"};
}

std::vector<UsageRecord> Script() {
  std::vector<UsageRecord> records;
  // A: cold start on on-demand instance 1. compute 4.2 ms -> 5 ms billed;
  // init 180.4 ms -> 181 ms billed.
  InvocationRecord a = Invocation(1, 1, 4200, 1, 1, 1.0);
  a.cold_start = true;
  a.init_us = 180'400;
  a.latency_us = 185'100;
  records.push_back(a);
  // B, C, D: one warm execution of 2.4 ms (-> 3 ms, billed once) on instance
  // 1, 4 rows: B has 2 rows (share 0.5), C and D one each (0.25).
  records.push_back(Invocation(2, 1, 2400, 4, 3, 0.5));
  records.push_back(Invocation(3, 1, 2400, 4, 3, 0.25));
  records.push_back(Invocation(4, 1, 2400, 4, 3, 0.25));
  // E: warm on provisioned instance 2, 0.3 ms -> 1 ms at the provisioned duration price.
  InvocationRecord e = Invocation(5, 2, 300, 1, 1, 1.0);
  e.provisioned = true;
  records.push_back(e);
  // F: cold start of provisioned instance 3: 1.0 ms -> 1 ms; its 500 ms
  // init is covered by provisioned capacity, not billed.
  InvocationRecord f = Invocation(6, 3, 1000, 1, 1, 1.0);
  f.provisioned = true;
  f.cold_start = true;
  f.init_us = 500'000;
  records.push_back(f);
  // G: refused with 429 before reaching an instance: counted, not billed.
  InvocationRecord g = Invocation(7, 0, 0, 0, 0, 0);
  g.http_status = 429;
  records.push_back(g);
  // Instance 1 stops after 600 s idle: idle-warm, reported, not priced.
  records.push_back(InstanceRecord{.model = "fraud",
                                   .instance_id = 1,
                                   .start_path = "template",
                                   .memory_mb = kMemoryMb,
                                   .start_wall_us = kT0 + 20 * kMinute,
                                   .stop_wall_us = kT0 + 31 * kMinute,
                                   .init_us = 180'400,
                                   .busy_us = 6600,
                                   .idle_us = 600 * kMicrosPerSecond,
                                   .stop_reason = "keep_alive"});
  // A provisioned floor of 1 instance for 30 minutes.
  records.push_back(ProvisionedRecord{.model = "fraud", .memory_mb = kMemoryMb, .instances = 1,
                                      .start_wall_us = kT0, .end_wall_us = kT0 + 30 * kMinute});
  // fraud's template, 1 GB, held for 30 minutes; the zygote, 0.5 GB, for 20
  // minutes (the platform's): memory held, priced by the host cost only.
  records.push_back(HeldRecord{.model = "fraud", .kind = HeldKind::kTemplate, .memory_mb = 1024,
                               .start_wall_us = kT0, .end_wall_us = kT0 + 30 * kMinute});
  records.push_back(HeldRecord{.kind = HeldKind::kZygote, .memory_mb = 512, .start_wall_us = kT0 + 10 * kMinute,
                               .end_wall_us = kT0 + 30 * kMinute});
  return records;
}

class BillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "thaw_bill_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "thaw-usage.jsonl").string();
    auto log = UsageLog::Open(path_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    for (const UsageRecord& r : Script()) ASSERT_TRUE((*log)->Append(r).ok());
    ASSERT_TRUE((*log)->Flush().ok());
  }
  void TearDown() override { fs::remove_all(dir_); }

  UsageReport ReadReport(Micros since_wall_us, const policy::PriceSheet& sheet) {
    UsageStats stats(sheet.granularity_us);
    Status read = ReadUsageLog(path_, since_wall_us, [&](UsageRecord r) { stats.Add(r); });
    EXPECT_TRUE(read.ok()) << read.ToString();
    return stats.Report(sheet);
  }

  fs::path dir_;
  std::string path_;
};

TEST_F(BillTest, ReportEqualsTheHandComputedBill) {
  const UsageReport report = ReadReport(kSinceBeginning, policy::AwsLambdaX86());
  EXPECT_EQ(report.records, 11);
  ASSERT_EQ(report.models.size(), 2u);  // fraud and the platform (the zygote)
  EXPECT_EQ(report.models[1].model, "(platform)");
  const ModelUsage& row = report.models[0];
  EXPECT_EQ(row.invocations, 7);
  EXPECT_EQ(row.ok, 6);
  EXPECT_EQ(row.cold_starts, 2);
  EXPECT_DOUBLE_EQ(row.mean_batch_rows, 2.5);  // (1 + 4 + 4 + 4 + 1 + 1) / 6
  EXPECT_EQ(row.instances_stopped, 1);

  // GB-s (2 GB):
  //  on-demand duration: A 0.005 s x 2 = 0.010; B+C+D one 0.003 s execution x 2 = 0.006; = 0.016
  //  init (A only):      0.181 s x 2 = 0.362
  //  provisioned duration: E 0.001 x 2 + F 0.001 x 2 = 0.004
  //  provisioned capacity: 1 x 1800 s x 2 = 3600
  //  idle-warm:          600 s x 2 = 1200
  const policy::UsageTotals& u = row.usage;
  EXPECT_EQ(u.requests, 6);
  EXPECT_NEAR(u.on_demand_duration_gb_s, 0.016, 1e-14);
  EXPECT_NEAR(u.init_gb_s, 0.362, 1e-14);
  EXPECT_NEAR(u.provisioned_duration_gb_s, 0.004, 1e-14);
  EXPECT_NEAR(u.provisioned_capacity_gb_s, 3600, 1e-9);
  EXPECT_NEAR(u.idle_warm_gb_s, 1200, 1e-9);

  // Dollars (x86):
  //  requests:             6 x $0.20 / 1e6           = $0.0000012
  //  on-demand duration:   0.016 x $0.0000166667     = $0.0000002666672
  //  init:                 0.362 x $0.0000166667     = $0.0000060333454
  //  provisioned duration: 0.004 x $0.0000097222     = $0.0000000388888
  //  provisioned capacity: 3600 x $0.0000041667      = $0.01500012
  //  total                                           = $0.0150076589014
  //  per 1 M 2xx: $0.0150076589014 / 6 x 1e6         = $2501.276483566667
  const policy::Bill& b = row.bill;
  ExpectUsd(b.request_usd, 0.0000012);
  ExpectUsd(b.on_demand_duration_usd, 0.0000002666672);
  ExpectUsd(b.init_usd, 0.0000060333454);
  ExpectUsd(b.provisioned_duration_usd, 0.0000000388888);
  ExpectUsd(b.provisioned_capacity_usd, 0.01500012);
  ExpectUsd(b.total_usd, 0.0150076589014);
  ExpectUsd(row.usd_per_million_ok, 2501.276483566667);
  ExpectUsd(report.total.bill.total_usd, 0.0150076589014);

  // Memory held (GB-s):
  //  busy (instance 1, on demand): (180.4 ms init + 6.6 ms busy) x 2 GB = 0.374
  //  idle-warm (instance 1):       600 s x 2 GB = 1200
  //  template:                     1800 s x 1 GB = 1800
  //  zygote (the platform's):      1200 s x 0.5 GB = 600
  // (instances E and F ran on provisioned instances that never stopped: no record, nothing held for them.)
  // Host cost at $0.00826875 per GB-hour:
  //  fraud:    3000.374 GB-s / 3600 x $0.00826875 = $0.00689148403125
  //  platform: 600 GB-s / 3600 x $0.00826875      = $0.001378125
  //  total:    3600.374 GB-s / 3600 x $0.00826875 = $0.00826960903125, beside the bill's total, not in it.
  const policy::HeldMemory& h = row.usage.held;
  EXPECT_NEAR(h.busy_gb_s, 0.374, 1e-14);
  EXPECT_NEAR(h.idle_warm_gb_s, 1200, 1e-9);
  EXPECT_EQ(h.provisioned_gb_s, 0);
  EXPECT_NEAR(h.template_gb_s, 1800, 1e-9);
  EXPECT_EQ(h.standby_gb_s, 0);
  EXPECT_EQ(h.zygote_gb_s, 0);
  ExpectUsd(b.host_usd, 0.00689148403125);
  ExpectUsd(row.host_usd_per_million_ok, 0.00689148403125 / 6 * 1e6);
  EXPECT_NEAR(report.models[1].usage.held.zygote_gb_s, 600, 1e-9);
  ExpectUsd(report.models[1].bill.host_usd, 0.001378125);
  EXPECT_EQ(report.models[1].bill.total_usd, 0);
  EXPECT_NEAR(report.total.usage.held.total_gb_s(), 3600.374, 1e-9);
  ExpectUsd(report.total.bill.host_usd, 0.00826960903125);

  // Without billing init: $0.0150076589014 - $0.0000060333454 = $0.015001625556
  policy::PriceSheet no_init = policy::AwsLambdaX86();
  no_init.bill_init = false;
  ExpectUsd(ReadReport(kSinceBeginning, no_init).total.bill.total_usd, 0.015001625556);
}

TEST_F(BillTest, SinceClipsTheProvisionedInterval) {
  // From T0 + 15 min: every invocation (T0 + 20 min on) and the instance
  // (stopped T0 + 31 min) count; the provisioned interval is cut to its last
  // 15 minutes: 1 x 900 s x 2 GB = 1800 GB-s x $0.0000041667 = $0.00750006.
  // Total: $0.00750006 + $0.0000075389014 (the rest as above) = $0.0075075989014.
  const UsageReport report = ReadReport(kT0 + 15 * kMinute, policy::AwsLambdaX86());
  EXPECT_EQ(report.records, 11);
  ExpectUsd(report.total.bill.provisioned_capacity_usd, 0.00750006);
  ExpectUsd(report.total.bill.total_usd, 0.0075075989014);
  // Held intervals are cut the same way: the template to 900 s x 1 GB = 900
  // GB-s, the zygote to 900 s x 0.5 GB = 450; the instance is whole (0.374 +
  // 1200). 2550.374 GB-s / 3600 x $0.00826875 = $0.00585789028125.
  EXPECT_NEAR(report.total.usage.held.template_gb_s, 900, 1e-9);
  EXPECT_NEAR(report.total.usage.held.zygote_gb_s, 450, 1e-9);
  ExpectUsd(report.total.bill.host_usd, 0.00585789028125);

  // From T0 + 31 min + 1 s: nothing.
  EXPECT_EQ(ReadReport(kT0 + 31 * kMinute + kMicrosPerSecond, policy::AwsLambdaX86()).records, 0);
}

}  // namespace
}  // namespace thaw::metering
