// Usage records (usage.h) as JSON lines: the usage log's format.
//
// One record per line, one JSON object with a "kind" and every field of the
// record under the struct's field name, in this order:
//   {"kind":"invocation","model":"fraud","request_id":7,"instance_id":2,
//    "arrival_wall_us":1795896000000000,"latency_us":2950,"queue_us":120,
//    "batch_wait_us":300,"compute_us":2400,"http_status":200,"memory_mb":1024,
//    "batch_rows":4,"batch_requests":4,"share":0.25,"cold_start":false,
//    "init_us":0,"provisioned":false,"start_path":"template"}
//   {"kind":"instance","model":"fraud","instance_id":2,"start_path":"template",
//    "memory_mb":1024,"start_wall_us":...,"stop_wall_us":...,"init_us":...,
//    "busy_us":...,"idle_us":...,"provisioned":false,"stop_reason":"keep_alive"}
//   {"kind":"provisioned","model":"fraud","memory_mb":1024,"instances":2,
//    "start_wall_us":...,"end_wall_us":...}
//   {"kind":"held","model":"fraud","held_kind":"template","memory_mb":1024,
//    "start_wall_us":...,"end_wall_us":...}
// (HeldRecord's `kind` is "held_kind", since "kind" is the record's kind;
// the zygote's line has "model":"" and "held_kind":"zygote".)
// Times are integers (wall-clock microseconds since the Unix epoch, UTC, or
// durations in microseconds); "share" is a number in its shortest form that
// reads back bit-exact.
//
// Decoding: "kind" and "model" are required; any other absent field takes
// the struct's default (so logs written before a field existed still read).
// Unknown or repeated fields, wrong types and impossible values (negative
// durations or counts, share outside [0, 1], an end before its start) are
// kInvalidArgument naming the field and quoting the line (up to 200 chars).
// A held record also requires "held_kind" (template, standby or zygote), a
// model for a template or standby and none ("") for the zygote.
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "base/json_writer.h"
#include "base/status.h"
#include "metering/usage.h"

namespace thaw::metering {

// One line, without the trailing newline.
std::string EncodeUsageRecord(const UsageRecord& record);

StatusOr<UsageRecord> DecodeUsageRecord(std::string_view line);

// "invocation", "instance", "provisioned" or "held".
std::string_view UsageRecordKind(const UsageRecord& record);

// JsonString (a quoted, escaped literal) is in base/json_writer.h.
using thaw::JsonString;
// The shortest text that reads back as the same double; non-finite -> "0".
std::string JsonNumber(double value);

}  // namespace thaw::metering
