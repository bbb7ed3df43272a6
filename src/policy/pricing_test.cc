#include "policy/pricing.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace thaw::policy {
namespace {

// Dollar amounts are compared to 1e-12 relative: the arithmetic in the
// comments is exact in decimal; doubles differ in the last bits.
void ExpectUsd(double actual, double expected) {
  EXPECT_NEAR(actual, expected, std::abs(expected) * 1e-12 + 1e-18) << "expected " << expected;
}

TEST(PricingTest, BuiltInSheetsAreValidAndNamed) {
  const PriceSheet x86 = AwsLambdaX86();
  EXPECT_TRUE(Validate(x86).ok());
  EXPECT_EQ(x86.name, "aws-x86");
  EXPECT_DOUBLE_EQ(x86.request_usd_per_million, 0.20);
  EXPECT_DOUBLE_EQ(x86.on_demand_usd_per_gb_s, 0.0000166667);
  EXPECT_DOUBLE_EQ(x86.provisioned_usd_per_gb_s, 0.0000041667);
  EXPECT_DOUBLE_EQ(x86.provisioned_duration_usd_per_gb_s, 0.0000097222);
  EXPECT_EQ(x86.granularity_us, 1000);
  EXPECT_TRUE(x86.bill_init);
  EXPECT_DOUBLE_EQ(x86.host_usd_per_gb_hour, 0.00826875);  // r7i.large: $0.1323 / 16 GiB

  const PriceSheet arm = AwsLambdaArm64();
  EXPECT_TRUE(Validate(arm).ok());
  EXPECT_EQ(arm.name, "aws-arm64");
  EXPECT_DOUBLE_EQ(arm.on_demand_usd_per_gb_s, 0.0000133334);
  EXPECT_DOUBLE_EQ(arm.provisioned_usd_per_gb_s, 0.0000033334);
  EXPECT_DOUBLE_EQ(arm.provisioned_duration_usd_per_gb_s, 0.0000077778);
  EXPECT_DOUBLE_EQ(arm.host_usd_per_gb_hour, 0.00826875);  // the same host

  EXPECT_EQ(BuiltInPriceSheet("aws-x86")->name, "aws-x86");
  EXPECT_EQ(BuiltInPriceSheet("aws-arm64")->name, "aws-arm64");
  EXPECT_FALSE(BuiltInPriceSheet("gcp").has_value());
}

TEST(PricingTest, ValidateNamesTheField) {
  PriceSheet sheet;
  sheet.on_demand_usd_per_gb_s = -1;
  EXPECT_NE(Validate(sheet).message().find("on_demand_usd_per_gb_s"), std::string::npos);
  sheet = {};
  sheet.provisioned_usd_per_gb_s = std::numeric_limits<double>::quiet_NaN();
  EXPECT_NE(Validate(sheet).message().find("provisioned_usd_per_gb_s"), std::string::npos);
  sheet = {};
  sheet.host_usd_per_gb_hour = -0.01;
  EXPECT_EQ(Validate(sheet).message(), "price sheet 'aws-x86': host_usd_per_gb_hour must be a finite number >= 0");
  sheet.host_usd_per_gb_hour = std::numeric_limits<double>::infinity();
  EXPECT_NE(Validate(sheet).message().find("host_usd_per_gb_hour"), std::string::npos);
  sheet = {};
  sheet.granularity_us = 0;
  EXPECT_NE(Validate(sheet).message().find("granularity"), std::string::npos);
  sheet = {};
  sheet.name = "";
  EXPECT_NE(Validate(sheet).message().find("name"), std::string::npos);
}

TEST(PricingTest, DurationRoundsUpToWholeGranulesAndAtLeastOne) {
  const PriceSheet sheet;  // 1 ms
  EXPECT_EQ(BilledMicros(300, sheet), 1000);   // 0.3 ms -> 1 ms
  EXPECT_EQ(BilledMicros(1000, sheet), 1000);  // 1.0 ms -> 1 ms
  EXPECT_EQ(BilledMicros(1200, sheet), 2000);  // 1.2 ms -> 2 ms
  EXPECT_EQ(BilledMicros(1001, sheet), 2000);
  EXPECT_EQ(BilledMicros(0, sheet), 1000);     // Lambda bills at least 1 ms
  EXPECT_EQ(BilledMicros(-5, sheet), 1000);
  PriceSheet coarse;
  coarse.granularity_us = 100 * kMicrosPerMilli;  // Lambda before December 2020
  EXPECT_EQ(BilledMicros(1, coarse), 100'000);
  EXPECT_EQ(BilledMicros(100'001, coarse), 200'000);
}

TEST(PricingTest, BatchOfFourIsBilledOnce) {
  const PriceSheet sheet;
  // Four 1-row requests share one 2.4 ms execution at 1024 MB: the execution
  // is billed 3 ms, each request pays 0.25 of it.
  // Each: 0.003 s x 1 GB x 0.25 = 0.00075 GB-s; together 0.003 GB-s.
  UsageTotals batch;
  for (int i = 0; i < 4; ++i) {
    batch.requests += 1;
    batch.on_demand_duration_gb_s += ExecutionShareGbSeconds(2400, 1024, 0.25, sheet);
  }
  EXPECT_DOUBLE_EQ(batch.on_demand_duration_gb_s, 0.003);
  // requests: 4 x $0.20 / 1e6 = $0.0000008
  // duration: 0.003 GB-s x $0.0000166667 = $0.0000000500001
  // total:    $0.0000008500001
  const Bill bill = ComputeBill(batch, sheet);
  ExpectUsd(bill.request_usd, 0.0000008);
  ExpectUsd(bill.on_demand_duration_usd, 0.0000000500001);
  ExpectUsd(bill.total_usd, 0.0000008500001);

  // The same four requests unbatched: 4 executions of 3 ms = 0.012 GB-s, four times the duration.
  UsageTotals alone;
  for (int i = 0; i < 4; ++i) {
    alone.requests += 1;
    alone.on_demand_duration_gb_s += ExecutionShareGbSeconds(2400, 1024, 1.0, sheet);
  }
  EXPECT_DOUBLE_EQ(alone.on_demand_duration_gb_s, 0.012);
}

TEST(PricingTest, InitIsBilledOnlyWhenTheSheetSaysSo) {
  PriceSheet sheet;
  // A cold start at 512 MB: init 250.3 ms -> 251 ms billed, compute 10 ms.
  // init:     0.251 s x 0.5 GB = 0.1255 GB-s
  // duration: 0.010 s x 0.5 GB = 0.005 GB-s
  UsageTotals usage;
  usage.requests = 1;
  usage.on_demand_duration_gb_s = ExecutionShareGbSeconds(10'000, 512, 1.0, sheet);
  usage.init_gb_s = ExecutionShareGbSeconds(250'300, 512, 1.0, sheet);
  EXPECT_DOUBLE_EQ(usage.init_gb_s, 0.1255);
  EXPECT_DOUBLE_EQ(usage.on_demand_duration_gb_s, 0.005);
  // requests $0.0000002 + duration 0.005 x 0.0000166667 = $0.0000000833335
  // + init 0.1255 x 0.0000166667 = $0.00000209167085; total $0.00000237500435
  Bill bill = ComputeBill(usage, sheet);
  ExpectUsd(bill.init_usd, 0.00000209167085);
  ExpectUsd(bill.total_usd, 0.00000237500435);

  sheet.bill_init = false;
  bill = ComputeBill(usage, sheet);
  EXPECT_EQ(bill.init_usd, 0);
  // $0.0000002 + $0.0000000833335
  ExpectUsd(bill.total_usd, 0.0000002833335);
}

TEST(PricingTest, ProvisionedCapacityIsBilledWhetherUsedOrNot) {
  const PriceSheet sheet;
  // 2 instances x 10 min x 1024 MB = 2 x 600 s x 1 GB = 1200 GB-s.
  UsageTotals usage;
  usage.provisioned_capacity_gb_s = ProvisionedCapacityGbSeconds(2, 600 * kMicrosPerSecond, 1024);
  EXPECT_DOUBLE_EQ(usage.provisioned_capacity_gb_s, 1200);
  // 1200 x $0.0000041667 = $0.00500004
  Bill bill = ComputeBill(usage, sheet);
  ExpectUsd(bill.provisioned_capacity_usd, 0.00500004);
  ExpectUsd(bill.total_usd, 0.00500004);

  // 100 requests of 5 ms on those instances: 100 x 0.005 s x 1 GB = 0.5 GB-s
  // at the provisioned duration price: 0.5 x $0.0000097222 = $0.0000048611;
  // requests 100 x $0.20 / 1e6 = $0.00002. Total $0.0050249011.
  for (int i = 0; i < 100; ++i) {
    usage.requests += 1;
    usage.provisioned_duration_gb_s += ExecutionShareGbSeconds(5000, 1024, 1.0, sheet);
  }
  bill = ComputeBill(usage, sheet);
  ExpectUsd(bill.provisioned_duration_usd, 0.0000048611);
  EXPECT_EQ(bill.on_demand_duration_usd, 0);
  ExpectUsd(bill.total_usd, 0.0050249011);
  EXPECT_EQ(ProvisionedCapacityGbSeconds(3, -10, 1024), 0);
}

TEST(PricingTest, IdleWarmTimeIsReportedButFree) {
  UsageTotals usage;
  usage.idle_warm_gb_s = 1000;
  EXPECT_EQ(ComputeBill(usage, PriceSheet{}).total_usd, 0);
}

TEST(PricingTest, HostCostPricesEveryGbSecondHeldAndStaysOutOfTheTotal) {
  // Held: busy 360 + idle-warm 720 + provisioned 1440 + template 3600 +
  // standby 180 + zygote 900 = 7200 GB-s = 2 GB-hours.
  UsageTotals usage;
  usage.held = {.busy_gb_s = 360, .idle_warm_gb_s = 720, .provisioned_gb_s = 1440, .template_gb_s = 3600,
                .standby_gb_s = 180, .zygote_gb_s = 900};
  EXPECT_DOUBLE_EQ(usage.held.total_gb_s(), 7200);
  // 2 GB-hours x $0.00826875 = $0.0165375; nothing Lambda bills.
  Bill bill = ComputeBill(usage, PriceSheet{});
  ExpectUsd(bill.host_usd, 0.0165375);
  EXPECT_EQ(bill.total_usd, 0);

  // With Lambda usage too, total_usd is the Lambda bill alone:
  // 1000 GB-s on demand x $0.0000166667 = $0.0166667; requests 10 x $0.2 / 1e6 = $0.000002.
  usage.requests = 10;
  usage.on_demand_duration_gb_s = 1000;
  bill = ComputeBill(usage, PriceSheet{});
  ExpectUsd(bill.total_usd, 0.0166687);
  ExpectUsd(bill.host_usd, 0.0165375);

  // Another host price: 2 GB-hours x $0.01 = $0.02; a free host: $0.
  PriceSheet sheet;
  sheet.host_usd_per_gb_hour = 0.01;
  ExpectUsd(ComputeBill(usage, sheet).host_usd, 0.02);
  sheet.host_usd_per_gb_hour = 0;
  EXPECT_EQ(ComputeBill(usage, sheet).host_usd, 0);
}

TEST(PricingTest, Arm64SheetIsCheaper) {
  // 1 M requests of 100 ms at 2048 MB: 1e6 x 0.1 s x 2 GB = 200,000 GB-s.
  UsageTotals usage;
  usage.requests = 1'000'000;
  usage.on_demand_duration_gb_s = 1e6 * ExecutionShareGbSeconds(100'000, 2048, 1.0, AwsLambdaArm64());
  EXPECT_DOUBLE_EQ(usage.on_demand_duration_gb_s, 200'000);
  // arm64: 200,000 x $0.0000133334 = $2.66668, + requests $0.20 = $2.86668
  const Bill arm = ComputeBill(usage, AwsLambdaArm64());
  ExpectUsd(arm.on_demand_duration_usd, 2.66668);
  ExpectUsd(arm.total_usd, 2.86668);
  // x86: 200,000 x $0.0000166667 = $3.33334, + $0.20 = $3.53334
  ExpectUsd(ComputeBill(usage, AwsLambdaX86()).total_usd, 3.53334);
}

TEST(PricingTest, TotalsAdd) {
  UsageTotals a{.requests = 1, .on_demand_duration_gb_s = 1, .init_gb_s = 2, .provisioned_capacity_gb_s = 3,
                .provisioned_duration_gb_s = 4, .idle_warm_gb_s = 5,
                .held = {.busy_gb_s = 6, .idle_warm_gb_s = 5, .provisioned_gb_s = 7, .template_gb_s = 8,
                         .standby_gb_s = 9, .zygote_gb_s = 10}};
  a += a;
  EXPECT_EQ(a.requests, 2);
  EXPECT_EQ(a.on_demand_duration_gb_s, 2);
  EXPECT_EQ(a.init_gb_s, 4);
  EXPECT_EQ(a.provisioned_capacity_gb_s, 6);
  EXPECT_EQ(a.provisioned_duration_gb_s, 8);
  EXPECT_EQ(a.idle_warm_gb_s, 10);
  EXPECT_EQ(a.held.busy_gb_s, 12);
  EXPECT_EQ(a.held.idle_warm_gb_s, 10);
  EXPECT_EQ(a.held.provisioned_gb_s, 14);
  EXPECT_EQ(a.held.template_gb_s, 16);
  EXPECT_EQ(a.held.standby_gb_s, 18);
  EXPECT_EQ(a.held.zygote_gb_s, 20);
  EXPECT_EQ(a.held.total_gb_s(), 90);
}

}  // namespace
}  // namespace thaw::policy
