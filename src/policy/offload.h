// Edge offload: whether a request an edge server received runs here or is
// forwarded to its upstream (a central thaw, `thaw serve --upstream URL`).
//
// A request goes upstream when the model is not deployed here, when the
// local queue is full (it would get 429 here), or when the wait predicted
// for it here plus one execution would pass its budget (the request's
// deadline left, and the model's slo_p99_ms) while the upstream's measured
// round trip fits better. The prediction: the requests ahead of it that
// hold or wait for a slot, in waves of `slots`, each wave one mean
// execution. With no execution measured yet it stays local (nothing to
// predict from) unless the queue is full.
//
// Guarantees: a request that finds a free slot here always runs here, so a
// light load never pays the upstream's round trip; a full queue never
// answers 429 while an upstream is configured.
// Thread safety: pure function.
#pragma once

#include <string>
#include <string_view>

#include "base/clock.h"

namespace thaw::policy {

struct OffloadObservation {
  bool deployed = true;         // the model is served here
  int slots = 1;                // max_concurrency x instance_concurrency
  int in_flight = 0;            // executing here now
  int queued = 0;               // waiting here, not counting this request
  int max_queue = 0;            // waiting beyond all slots that the model allows
  Micros mean_execution_us = 0; // this model's executions here (EWMA); 0 = none measured
  Micros budget_us = 0;         // min(deadline left, slo_p99_ms); <= 0 = none
  Micros upstream_round_trip_us = 0;  // forwarded requests' round trips (EWMA); 0 = none measured
};

enum class OffloadTarget { kLocal, kUpstream };

struct OffloadDecision {
  OffloadTarget target = OffloadTarget::kLocal;
  Micros predicted_local_us = 0;  // wait + one execution here, as predicted
  std::string reason;             // why upstream, with the numbers; empty for local
  // The reason's kind, for counters: not_deployed, queue_full, over_budget; empty for local.
  std::string_view cause;
};

OffloadDecision DecideOffload(const OffloadObservation& observation);

// The running means the observation carries: weight 1/8 on each new sample.
Micros UpdateMean(Micros mean_us, Micros sample_us);

}  // namespace thaw::policy
