#include "policy/template_cache.h"

#include <algorithm>

namespace thaw::policy {

TemplateCacheDecision DecideTemplate(const TemplateCacheState& state, const TemplateCacheOptions& options, Micros now_us) {
  if (state.provisioned_floor > 0) return {.hold = true};
  Micros release_at_us = state.last_wanted_us + options.keep_alive_us;
  if (state.keep_alive_release_at_us) release_at_us = std::min(release_at_us, *state.keep_alive_release_at_us);
  if (now_us >= release_at_us) return {.hold = false};
  return {.hold = true, .release_at_us = release_at_us};
}

}  // namespace thaw::policy
