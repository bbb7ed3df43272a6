#include "cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <string>

namespace thaw::cli {

ProgressBar::ProgressBar(const Clock& clock) : clock_(clock), enabled_(::isatty(2)), start_us_(clock.NowMicros()) {}

void ProgressBar::Update(double done, double total, std::string_view label) {
  const double fraction = total > 0 ? std::clamp(done / total, 0.0, 1.0) : 1.0;
  const double elapsed_s = (clock_.NowMicros() - start_us_) / 1e6;
  const double eta_s = fraction > 0 ? elapsed_s / fraction - elapsed_s : 0;
  std::string text = std::to_string(static_cast<long long>(done)) + "/" + std::to_string(static_cast<long long>(total));
  if (!label.empty()) text += " " + std::string(label.substr(0, 40));
  Show(fraction, eta_s, text);
}

void ProgressBar::Show(double fraction, double eta_s, std::string_view text) {
  if (!enabled_) return;
  const Micros now = clock_.NowMicros();
  if (last_drawn_us_ >= 0 && now - last_drawn_us_ < 200 * kMicrosPerMilli && fraction < 1) return;
  last_drawn_us_ = now;
  const int width = 30, filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * width);
  std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << text << " ETA "
            << static_cast<int>(std::max(0.0, eta_s)) << " s\033[K" << std::flush;
  drawn_ = true;
}

void ProgressBar::Clear() {
  if (!drawn_) return;
  std::cerr << "\r\033[K" << std::flush;
  drawn_ = false;
}

}  // namespace thaw::cli
