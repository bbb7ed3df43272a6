// Usage records: what the runtime did, in the units a serverless provider
// bills, one record per event. The runtime produces them (through a
// UsageSink); the usage log stores them as JSON lines; cost reports and
// /stats summarise them with a price sheet (pricing.h).
//
// Kinds:
//  - InvocationRecord: one per request the runtime accepted or refused
//    (429/503/504 too: counted, billed nothing). A request runs in an
//    execution (a batch of one or more requests) that is billed once: the
//    price sheet rounds the execution's compute_us up to its granularity,
//    and the request pays `share` of that (its rows / the batch's rows). A
//    cold start carries the instance's init duration, paid by share too, so
//    a cold batch pays its instance's init once.
//  - InstanceRecord: one per instance when it stops: lifetime split into
//    init (start to ready), busy (running executions) and idle (ready, no
//    execution), and why it stopped.
//  - ProvisionedRecord: one per interval during which a model kept a
//    provisioned floor (min_instances, raised by schedule windows) of n > 0
//    instances; billed as provisioned concurrency whether used or not.
//  - HeldRecord: one per interval during which the platform held memory for
//    a model outside its instances (a template, a template's standby) or for
//    no model in particular (the shared zygote, `model` empty): memory held,
//    priced only by the host cost (PriceSheet::host_usd_per_gb_hour).
//    Instances' held memory comes from their InstanceRecords (busy, idle,
//    provisioned).
// Times are wall-clock microseconds since the Unix epoch (UTC); durations
// microseconds.
// Thread safety: value types.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "base/clock.h"

namespace thaw::metering {

struct InvocationRecord {
  std::string model;
  uint64_t request_id = 0;
  uint64_t instance_id = 0;     // 0: never reached an instance
  Micros arrival_wall_us = 0;
  Micros latency_us = 0;        // arrival to answer, inside the server
  Micros queue_us = 0;
  Micros batch_wait_us = 0;
  Micros compute_us = 0;        // the execution's time inside the backend
  int http_status = 200;
  int64_t memory_mb = 0;
  int64_t batch_rows = 0;       // rows of the execution; 0 if it never ran
  int batch_requests = 0;       // requests in the execution
  double share = 0;             // this request's rows / batch_rows
  bool cold_start = false;
  Micros init_us = 0;           // cold start: the instance's start to ready
  bool provisioned = false;     // ran on an instance of the provisioned floor
  std::string start_path;       // the instance's start path ("" if none)
};

struct InstanceRecord {
  std::string model;
  uint64_t instance_id = 0;
  std::string start_path;
  int64_t memory_mb = 0;
  // What the node's memory budget charged it (its model's measured peak +
  // headroom; memory_mb when charged as configured): memory held is
  // metered at this. 0 (records before it existed): memory_mb.
  int64_t held_mb = 0;
  Micros start_wall_us = 0;
  Micros stop_wall_us = 0;
  Micros init_us = 0;   // start to ready (the whole life if it never got ready)
  Micros busy_us = 0;   // with at least one execution in flight
  Micros idle_us = 0;   // ready and without an execution
  bool provisioned = false;
  std::string stop_reason;  // keep_alive, memory_pressure, crashed, oom (killed at memory_mb), timeout, shutdown, ...
};

struct ProvisionedRecord {
  std::string model;
  int64_t memory_mb = 0;
  int instances = 0;
  Micros start_wall_us = 0;
  Micros end_wall_us = 0;
};

// What a HeldRecord's memory was held for.
enum class HeldKind { kTemplate, kStandby, kZygote };

// "template", "standby", "zygote": the usage log's and the reports' names.
constexpr std::string_view HeldKindName(HeldKind kind) {
  switch (kind) {
    case HeldKind::kTemplate: return "template";
    case HeldKind::kStandby: return "standby";
    case HeldKind::kZygote: return "zygote";
  }
  return "template";
}

// Template and standby records name their model; the zygote's model is
// empty (the usage log refuses anything else), and reports show it as the
// platform's row (UsageStats, kPlatformModel).
struct HeldRecord {
  std::string model;  // empty for the zygote (the platform's)
  HeldKind kind = HeldKind::kTemplate;
  int64_t memory_mb = 0;  // reserved: the budget's count, not the measured RSS
  Micros start_wall_us = 0;
  Micros end_wall_us = 0;
};

using UsageRecord = std::variant<InvocationRecord, InstanceRecord, ProvisionedRecord, HeldRecord>;

// Where the runtime sends records; called on the runtime's thread.
class UsageSink {
 public:
  virtual ~UsageSink() = default;
  virtual void Record(UsageRecord record) = 0;
};

}  // namespace thaw::metering
