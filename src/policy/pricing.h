// Pricing: what serverless usage would cost under a provider's price sheet.
// Pure arithmetic on numbers; the metering component (src/metering) turns
// usage records into the GB-s this prices.
//
// Billing model (AWS Lambda's, https://aws.amazon.com/lambda/pricing/):
//  - every invocation that reached an instance is one billed request;
//  - an execution (a batch of one or more requests) is billed once: its
//    duration is rounded up to granularity_us (at least one granule) and
//    each request pays its share (its rows / the batch's rows; shares of a
//    batch sum to 1) of BilledMicros x memory;
//  - a cold start's init duration is billed the same way when bill_init
//    (the pricing page: "Duration charges apply to code that runs in the
//    handler of a function as well as initialization code"), except on
//    provisioned instances, whose init provisioned capacity covers;
//  - provisioned capacity is instances x interval x memory, billed whether
//    used or not, at provisioned_usd_per_gb_s; executions on provisioned
//    instances pay provisioned_duration_usd_per_gb_s instead of the
//    on-demand price;
//  - idle-but-warm time of on-demand instances (kept alive, no execution)
//    is reported in GB-s but not priced: Lambda does not bill it.
// A second line, the host cost, prices memory held rather than billed:
// every GB-s the platform held (HeldMemory: instances busy, idle-warm or
// provisioned; templates, standbys, the zygote) at host_usd_per_gb_hour /
// 3600. It is what running thaw on a rented machine would cost, reported
// next to the Lambda-style bill (Bill::host_usd), never added into it.
// Not modelled: the free tier, volume tiers of on-demand duration,
// provisioned concurrency's rounding up to five minutes, ephemeral storage.
// GB = 1024 MB.
// Errors: Validate names the field.
// Thread safety: pure functions on values.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::policy {

// Defaults: AWS Lambda x86, US East (N. Virginia), from
// https://aws.amazon.com/lambda/pricing/ (looked up 2026-11-28).
struct PriceSheet {
  std::string name = "aws-x86";
  double request_usd_per_million = 0.20;
  double on_demand_usd_per_gb_s = 0.0000166667;
  double provisioned_usd_per_gb_s = 0.0000041667;            // capacity, billed while provisioned
  double provisioned_duration_usd_per_gb_s = 0.0000097222;   // executions on provisioned instances
  Micros granularity_us = 1000;                              // duration rounding; Lambda: 1 ms
  bool bill_init = true;                                     // cold starts' init duration is billed
  // Host cost, USD per GB-hour of memory held: AWS EC2 r7i.large on demand,
  // Linux, US East (N. Virginia), $0.1323 per hour for 2 vCPUs and 16 GiB,
  // all of it charged to memory: $0.1323 / 16 = $0.00826875 (prices/README.md).
  double host_usd_per_gb_hour = 0.00826875;
};

// Names of the built-in sheets, the first the default.
inline constexpr std::string_view kAwsX86 = "aws-x86";
inline constexpr std::string_view kAwsArm64 = "aws-arm64";

PriceSheet AwsLambdaX86();
PriceSheet AwsLambdaArm64();
// "aws-x86" or "aws-arm64"; nullopt for any other name.
std::optional<PriceSheet> BuiltInPriceSheet(std::string_view name);

// A non-empty name, finite prices >= 0, granularity_us >= 1.
Status Validate(const PriceSheet& sheet);

// duration_us rounded up to the sheet's granularity, at least one granule
// (a negative duration counts as 0).
Micros BilledMicros(Micros duration_us, const PriceSheet& sheet);

// us x memory in GB-s: us / 1e6 x memory_mb / 1024.
double GbSeconds(Micros us, int64_t memory_mb);

// One request's GB-s for its share of an execution of compute_us:
// BilledMicros(compute_us) x memory x share.
double ExecutionShareGbSeconds(Micros compute_us, int64_t memory_mb, double share, const PriceSheet& sheet);

// Provisioned capacity: instances x interval_us x memory in GB-s (not
// rounded; a negative interval counts as 0).
double ProvisionedCapacityGbSeconds(int instances, Micros interval_us, int64_t memory_mb);

// Memory held, in GB-s, by what held it; priced only by the host cost.
// From instance records: busy (init + busy time of on-demand instances),
// idle_warm (their idle time: the same GB-s as UsageTotals::idle_warm_gb_s),
// provisioned (the whole life, start to stop, of provisioned instances).
// From held records: template, standby, zygote.
struct HeldMemory {
  double busy_gb_s = 0;
  double idle_warm_gb_s = 0;
  double provisioned_gb_s = 0;
  double template_gb_s = 0;
  double standby_gb_s = 0;
  double zygote_gb_s = 0;

  double total_gb_s() const;
  HeldMemory& operator+=(const HeldMemory& other);
};

// Usage in billable units, summed over any set of records (a model, all).
struct UsageTotals {
  int64_t requests = 0;                     // invocations that reached an instance
  double on_demand_duration_gb_s = 0;       // rounded executions on on-demand instances
  double init_gb_s = 0;                     // rounded init of on-demand cold starts (priced if bill_init)
  double provisioned_capacity_gb_s = 0;     // instances x interval x memory
  double provisioned_duration_gb_s = 0;     // rounded executions on provisioned instances
  double idle_warm_gb_s = 0;                // on-demand instances ready without work; not priced
  HeldMemory held;                          // memory held; priced by the host cost only

  UsageTotals& operator+=(const UsageTotals& other);
};

struct Bill {
  double request_usd = 0;
  double on_demand_duration_usd = 0;
  double init_usd = 0;                      // 0 unless bill_init
  double provisioned_capacity_usd = 0;
  double provisioned_duration_usd = 0;
  double total_usd = 0;                     // the sum of the above: the Lambda-style bill
  double host_usd = 0;                      // host cost of the memory held; not in total_usd
};

// Prices the totals: requests at request_usd_per_million / 1e6 each,
// on-demand duration (and init, if bill_init) at on_demand_usd_per_gb_s,
// provisioned capacity and provisioned duration at their prices. Idle-warm
// GB-s cost nothing in total_usd. host_usd: held.total_gb_s() / 3600 x
// host_usd_per_gb_hour.
Bill ComputeBill(const UsageTotals& usage, const PriceSheet& sheet);

}  // namespace thaw::policy
