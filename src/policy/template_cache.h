// Template cache: whether a model's template (its model loaded and warmed,
// forking instances in about a millisecond) and its standby should be held.
// A template is a cache of the model's start, not a fixture: it is held while
// the model is hot and dropped when it has not been wanted for a while, so an
// idle model holds no memory (its instances then start from the shared
// zygote and its prepared artifact, tens of milliseconds slower).
//
// Wanted: the model has a provisioned floor (min_instances, raised by a
// schedule window), or it was last wanted (a request arrived, an instance was
// started, other than by a keep-alive pre-warm, whose lead hides its start)
// less than template_keep_alive_s ago, and the
// model's adaptive keep-alive plan (keep_alive.h) does not release it: such
// a plan holds a warm instance or nothing instead, which serves the next
// arrival faster for less memory (idle_windows.h, Levels). A template
// that is not wanted is stopped; under memory pressure an unwanted or wanted
// one may be evicted earlier (admission.h, PlanColdStart).
//
// Pure: no clock, no I/O; `now_us` in, a decision and the next time worth
// asking out. Thread safety: value types and free functions.
#pragma once

#include <optional>

#include "base/clock.h"

namespace thaw::policy {

struct TemplateCacheOptions {
  // Time since the model was last wanted after which its template goes.
  // Default 300 s; 0 = stop it as soon as nothing holds it.
  Micros keep_alive_us = 300 * kMicrosPerSecond;
};

struct TemplateCacheState {
  Micros last_wanted_us = 0;  // last arrival or instance start (monotonic)
  int provisioned_floor = 0;  // min_instances in force now
  // When the model's keep-alive plan releases it (<= now: released);
  // KeepAlivePolicy::TemplateReleaseAt(now). nullopt: the plan does not.
  std::optional<Micros> keep_alive_release_at_us;
};

struct TemplateCacheDecision {
  bool hold = false;
  // When `hold` turns false if nothing happens meanwhile; nullopt = never
  // (a provisioned floor holds it) or already false.
  std::optional<Micros> release_at_us;
};

TemplateCacheDecision DecideTemplate(const TemplateCacheState& state, const TemplateCacheOptions& options, Micros now_us);

}  // namespace thaw::policy
