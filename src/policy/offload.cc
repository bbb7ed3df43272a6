#include "policy/offload.h"

#include <algorithm>

namespace thaw::policy {

OffloadDecision DecideOffload(const OffloadObservation& o) {
  OffloadDecision d;
  if (!o.deployed) {
    d.target = OffloadTarget::kUpstream;
    d.reason = "not deployed here";
    d.cause = "not_deployed";
    return d;
  }
  const int slots = std::max(1, o.slots);
  // Requests that must leave a slot before this one gets one (itself included).
  const int ahead = o.in_flight + o.queued + 1 - slots;
  if (ahead <= 0) return d;  // a free slot: run here
  if (o.queued - std::max(0, slots - o.in_flight) >= o.max_queue) {
    d.target = OffloadTarget::kUpstream;
    d.reason = "local queue full";
    d.cause = "queue_full";
    return d;
  }
  if (o.mean_execution_us <= 0) return d;  // nothing to predict from
  const int waves = (ahead + slots - 1) / slots;
  d.predicted_local_us = static_cast<Micros>(waves + 1) * o.mean_execution_us;
  if (o.budget_us > 0 && d.predicted_local_us > o.budget_us &&
      (o.upstream_round_trip_us <= 0 || o.upstream_round_trip_us < d.predicted_local_us)) {
    d.target = OffloadTarget::kUpstream;
    d.cause = "over_budget";
    d.reason = "predicted local wait and execution " + std::to_string(d.predicted_local_us) + " us over the budget " +
               std::to_string(o.budget_us) + " us";
  }
  return d;
}

Micros UpdateMean(Micros mean_us, Micros sample_us) {
  if (mean_us <= 0) return sample_us;
  return mean_us + (sample_us - mean_us) / 8;
}

}  // namespace thaw::policy
