// ProgressBar: one line on stderr, "[####....] 12/40 label ETA 9 s",
// redrawn at most 5 times a second, when stderr is a terminal; nothing
// otherwise (logs and pipes stay clean). Used by thaw profile, plan and replay.
// Thread safety: none; use from one thread.
#pragma once

#include <string_view>

#include "base/clock.h"

namespace thaw::cli {

class ProgressBar {
 public:
  explicit ProgressBar(const Clock& clock);
  ~ProgressBar() { Clear(); }

  // `done` of `total` steps; the ETA extrapolates the time so far.
  void Update(double done, double total, std::string_view label = {});
  // A fraction already known, with its own ETA (a fixed schedule, say).
  void Show(double fraction, double eta_s, std::string_view text);
  // Erases the line (before other output).
  void Clear();
  // Whether it draws at all (stderr is a terminal): callers skip building labels when not.
  bool enabled() const { return enabled_; }

 private:
  const Clock& clock_;
  bool enabled_;
  Micros start_us_;
  Micros last_drawn_us_ = -1;
  bool drawn_ = false;
};

}  // namespace thaw::cli
