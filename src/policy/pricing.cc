#include "policy/pricing.h"

#include <cmath>

namespace thaw::policy {

PriceSheet AwsLambdaX86() { return PriceSheet{}; }

PriceSheet AwsLambdaArm64() {
  // https://aws.amazon.com/lambda/pricing/, Arm price, US East (N. Virginia).
  return PriceSheet{.name = std::string(kAwsArm64),
                    .request_usd_per_million = 0.20,
                    .on_demand_usd_per_gb_s = 0.0000133334,
                    .provisioned_usd_per_gb_s = 0.0000033334,
                    .provisioned_duration_usd_per_gb_s = 0.0000077778,
                    .granularity_us = 1000,
                    .bill_init = true,
                    // The host thaw runs on is the same whichever Lambda it is compared with.
                    .host_usd_per_gb_hour = PriceSheet{}.host_usd_per_gb_hour};
}

std::optional<PriceSheet> BuiltInPriceSheet(std::string_view name) {
  if (name == kAwsX86) return AwsLambdaX86();
  if (name == kAwsArm64) return AwsLambdaArm64();
  return std::nullopt;
}

Status Validate(const PriceSheet& sheet) {
  if (sheet.name.empty()) return InvalidArgument("price sheet: name must not be empty");
  const std::pair<const char*, double> prices[] = {
      {"request_usd_per_million", sheet.request_usd_per_million},
      {"on_demand_usd_per_gb_s", sheet.on_demand_usd_per_gb_s},
      {"provisioned_usd_per_gb_s", sheet.provisioned_usd_per_gb_s},
      {"provisioned_duration_usd_per_gb_s", sheet.provisioned_duration_usd_per_gb_s},
      {"host_usd_per_gb_hour", sheet.host_usd_per_gb_hour}};
  for (const auto& [field, value] : prices) {
    if (!std::isfinite(value) || value < 0)
      return InvalidArgument("price sheet '" + sheet.name + "': " + field + " must be a finite number >= 0");
  }
  if (sheet.granularity_us < 1)
    return InvalidArgument("price sheet '" + sheet.name + "': granularity must be at least 1 microsecond");
  return Status::Ok();
}

Micros BilledMicros(Micros duration_us, const PriceSheet& sheet) {
  const Micros g = sheet.granularity_us < 1 ? 1 : sheet.granularity_us;
  const Micros d = duration_us < 0 ? 0 : duration_us;
  const Micros granules = (d + g - 1) / g;
  return (granules < 1 ? 1 : granules) * g;
}

double GbSeconds(Micros us, int64_t memory_mb) {
  return static_cast<double>(us) / kMicrosPerSecond * static_cast<double>(memory_mb) / 1024.0;
}

double ExecutionShareGbSeconds(Micros compute_us, int64_t memory_mb, double share, const PriceSheet& sheet) {
  return GbSeconds(BilledMicros(compute_us, sheet), memory_mb) * share;
}

double ProvisionedCapacityGbSeconds(int instances, Micros interval_us, int64_t memory_mb) {
  return static_cast<double>(instances) * GbSeconds(interval_us < 0 ? 0 : interval_us, memory_mb);
}

double HeldMemory::total_gb_s() const {
  return busy_gb_s + idle_warm_gb_s + provisioned_gb_s + template_gb_s + standby_gb_s + zygote_gb_s;
}

HeldMemory& HeldMemory::operator+=(const HeldMemory& other) {
  busy_gb_s += other.busy_gb_s;
  idle_warm_gb_s += other.idle_warm_gb_s;
  provisioned_gb_s += other.provisioned_gb_s;
  template_gb_s += other.template_gb_s;
  standby_gb_s += other.standby_gb_s;
  zygote_gb_s += other.zygote_gb_s;
  return *this;
}

UsageTotals& UsageTotals::operator+=(const UsageTotals& other) {
  requests += other.requests;
  on_demand_duration_gb_s += other.on_demand_duration_gb_s;
  init_gb_s += other.init_gb_s;
  provisioned_capacity_gb_s += other.provisioned_capacity_gb_s;
  provisioned_duration_gb_s += other.provisioned_duration_gb_s;
  idle_warm_gb_s += other.idle_warm_gb_s;
  held += other.held;
  return *this;
}

Bill ComputeBill(const UsageTotals& usage, const PriceSheet& sheet) {
  Bill bill;
  bill.request_usd = static_cast<double>(usage.requests) * sheet.request_usd_per_million / 1e6;
  bill.on_demand_duration_usd = usage.on_demand_duration_gb_s * sheet.on_demand_usd_per_gb_s;
  bill.init_usd = sheet.bill_init ? usage.init_gb_s * sheet.on_demand_usd_per_gb_s : 0;
  bill.provisioned_capacity_usd = usage.provisioned_capacity_gb_s * sheet.provisioned_usd_per_gb_s;
  bill.provisioned_duration_usd = usage.provisioned_duration_gb_s * sheet.provisioned_duration_usd_per_gb_s;
  bill.total_usd = bill.request_usd + bill.on_demand_duration_usd + bill.init_usd + bill.provisioned_capacity_usd +
                   bill.provisioned_duration_usd;
  bill.host_usd = usage.held.total_gb_s() / 3600.0 * sheet.host_usd_per_gb_hour;
  return bill;
}

}  // namespace thaw::policy
