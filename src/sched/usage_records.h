// The usage records (metering/usage.h) of what the scheduler reports: an
// instance's life when it stops (kStop), a provisioned interval
// (kProvisioned) and memory held for a template or standby (kHeld). The runtime and the simulator both write these, so a
// usage log and a simulated report count instance time the same way.
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "metering/usage.h"
#include "sched/scheduler.h"

namespace thaw::sched {

// `stop` is a kStop action; `stop_wall_us` when the driver carried it out;
// held_mb is its charge (stop.memory_mb).
metering::InstanceRecord InstanceRecordOf(const Action& stop, int64_t memory_mb, Micros stop_wall_us);

// `interval` is a kProvisioned action.
metering::ProvisionedRecord ProvisionedRecordOf(const Action& interval, int64_t memory_mb);

// `held` is a kHeld action: a template's (or its standby's) charge held
// (memory_mb if the action has none).
metering::HeldRecord HeldRecordOf(const Action& held, int64_t memory_mb);

}  // namespace thaw::sched
