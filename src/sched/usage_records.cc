#include "sched/usage_records.h"

namespace thaw::sched {

metering::InstanceRecord InstanceRecordOf(const Action& stop, int64_t memory_mb, Micros stop_wall_us) {
  metering::InstanceRecord r;
  r.model = stop.model;
  r.instance_id = stop.instance_id;
  r.start_path = std::string(StartPathName(stop.path));
  r.memory_mb = memory_mb;
  r.held_mb = stop.memory_mb;
  r.start_wall_us = stop.usage.start_wall_us;
  r.stop_wall_us = stop_wall_us;
  r.init_us = stop.usage.init_us;
  r.busy_us = stop.usage.busy_us;
  r.idle_us = stop.usage.idle_us;
  r.provisioned = stop.usage.provisioned;
  r.stop_reason = stop.reason;
  return r;
}

metering::ProvisionedRecord ProvisionedRecordOf(const Action& interval, int64_t memory_mb) {
  return {.model = interval.model,
          .memory_mb = memory_mb,
          .instances = interval.instances,
          .start_wall_us = interval.start_wall_us,
          .end_wall_us = interval.at_us};
}

metering::HeldRecord HeldRecordOf(const Action& held, int64_t memory_mb) {
  return {.model = held.model,
          .kind = held.standby ? metering::HeldKind::kStandby : metering::HeldKind::kTemplate,
          .memory_mb = held.memory_mb > 0 ? held.memory_mb : memory_mb,
          .start_wall_us = held.start_wall_us,
          .end_wall_us = held.at_us};
}

}  // namespace thaw::sched
