#include "policy/idle_windows.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

namespace thaw::policy {
namespace {

const std::array<Micros, kIdleBins + 1>& Edges() {
  static const std::array<Micros, kIdleBins + 1> edges = [] {
    std::array<Micros, kIdleBins + 1> e{};
    for (int i = 1; i <= kIdleBins; ++i)
      e[static_cast<size_t>(i)] = std::llround(static_cast<double>(kIdleBinBaseUs) * std::exp2((i - 1) / 4.0));
    return e;
  }();
  return edges;
}

// The history as a distribution, uniform inside each bin: F(x), the share
// of idle times below x, and G(x) = E[min(t, x)], the instance time one
// window [0, x] holds per idle period.
class IdleDistribution {
 public:
  explicit IdleDistribution(const IdleHistory& history) {
    const double w = history.weight();
    for (int i = 0; i < kIdleBins; ++i) {
      const double p = history.bins()[static_cast<size_t>(i)] / w;
      const double width = static_cast<double>(IdleHistory::Edge(i + 1) - IdleHistory::Edge(i));
      share_[static_cast<size_t>(i)] = p;
      f_[static_cast<size_t>(i) + 1] = f_[static_cast<size_t>(i)] + p;
      g_[static_cast<size_t>(i) + 1] = g_[static_cast<size_t>(i)] + width * (1 - f_[static_cast<size_t>(i)]) - p * width / 2;
    }
    overflow_share_ = history.overflow() / w;
  }

  double F(Micros x) const {
    const int i = IdleHistory::BinOf(x);
    if (i >= kIdleBins) return f_[kIdleBins];
    const auto [u, width] = Within(i, x);
    return f_[static_cast<size_t>(i)] + share_[static_cast<size_t>(i)] * u / width;
  }
  double G(Micros x) const {
    const int i = IdleHistory::BinOf(x);
    if (i >= kIdleBins)
      return g_[kIdleBins] + static_cast<double>(x - IdleHistory::Edge(kIdleBins)) * overflow_share_;
    const auto [u, width] = Within(i, x);
    return g_[static_cast<size_t>(i)] + u * (1 - f_[static_cast<size_t>(i)]) -
           share_[static_cast<size_t>(i)] * u * u / (2 * width);
  }
  double share(int i) const { return share_[static_cast<size_t>(i)]; }

 private:
  static std::pair<double, double> Within(int i, Micros x) {
    const Micros lo = IdleHistory::Edge(i);
    return {static_cast<double>(x - lo), static_cast<double>(IdleHistory::Edge(i + 1) - lo)};
  }
  std::array<double, kIdleBins> share_{};
  std::array<double, kIdleBins + 1> f_{};
  std::array<double, kIdleBins + 1> g_{};
  double overflow_share_ = 0;
};

}  // namespace

IdleHistory::IdleHistory(Micros half_life_us) : half_life_us_(half_life_us) {}

Micros IdleHistory::Edge(int i) { return Edges()[static_cast<size_t>(std::clamp(i, 0, kIdleBins))]; }

int IdleHistory::BinOf(Micros idle_us) {
  const auto& e = Edges();
  // First edge above idle_us, minus one.
  return static_cast<int>(std::upper_bound(e.begin(), e.end(), std::max<Micros>(0, idle_us)) - e.begin()) - 1;
}

void IdleHistory::Record(Micros idle_us, Micros now_us) {
  if (now_us > last_us_ && total_ > 0) {
    const double decay = std::exp2(-static_cast<double>(now_us - last_us_) / static_cast<double>(half_life_us_));
    for (double& b : bins_) b *= decay;
    overflow_ *= decay;
    total_ *= decay;
  }
  last_us_ = std::max(last_us_, now_us);
  total_ += 1;
  const int bin = BinOf(idle_us);
  if (bin >= kIdleBins) {
    overflow_ += 1;
  } else {
    bins_[static_cast<size_t>(bin)] += 1;
  }
}

IdleWindows PlanIdleWindows(const IdleHistory& history, const IdleWindowOptions& o) {
  IdleWindows plan;
  plan.hold_until_us = plan.keep_until_us = o.fixed_keep_us;
  if (!(history.weight() > 0)) return plan;
  const IdleDistribution d(history);
  plan.fixed_cold_share = plan.cold_share = 1 - d.F(o.fixed_keep_us);
  // The fixed policy's template is held through template_keep_us; an
  // adaptive plan's only through its first min_hold_us (see the header).
  plan.template_until_us = o.template_keep_us;
  auto template_held = [&](Micros hold) {
    return o.template_weight * d.G(std::min({o.template_keep_us, o.min_hold_us, hold}));
  };
  plan.fixed_held_us = plan.held_us = d.G(o.fixed_keep_us) + o.template_weight * d.G(o.template_keep_us);

  // Window ends worth trying: edges of bins that hold a real share.
  std::vector<Micros> points = {0, o.fixed_keep_us, o.min_hold_us};
  for (int i = 0; i < kIdleBins; ++i)
    if (d.share(i) > 1e-4) {
      points.push_back(IdleHistory::Edge(i));
      points.push_back(IdleHistory::Edge(i + 1));
    }
  std::sort(points.begin(), points.end());
  points.erase(std::unique(points.begin(), points.end()), points.end());
  std::vector<double> f(points.size()), g(points.size());
  for (size_t i = 0; i < points.size(); ++i) {
    f[i] = d.F(points[i]);
    g[i] = d.G(points[i]);
  }

  const size_t fixed_at = static_cast<size_t>(
      std::lower_bound(points.begin(), points.end(), o.fixed_keep_us) - points.begin());
  const double cold_limit = plan.fixed_cold_share * (1 + o.max_cold_increase) + 1e-12;
  const double held_limit = plan.fixed_held_us * o.held_factor * (1 + 1e-12) + 1e-6;
  const double samples = history.weight();
  // A plan's cold share, made pessimistic where it departs from fixed's
  // window: the part of fixed's window it leaves uncovered is estimated as
  // (k + 1) / (n + 2) of the idle times beyond its first window (k of the n
  // there fell in it: an empty region seen a few times is not known to be
  // empty), and the difference carries significance_z standard errors.
  // Returns nullopt for a plan with too few idle times beyond its first
  // window to give up part of fixed's.
  auto pessimistic_cold = [&](size_t b1, double covered, double shared) -> std::optional<double> {
    const double won = covered - shared;  // covered beyond fixed's window
    double lost = f[fixed_at] - shared;   // of fixed's window, not covered
    if (b1 < fixed_at) {
      const double beyond = 1 - f[b1];
      if (beyond * samples < o.min_samples_beyond) return std::nullopt;
      lost = beyond * (lost * samples + 1) / (beyond * samples + 2);
    }
    if (won <= 0 && lost <= 0) return 1 - covered;
    return (1 - shared - won) + lost + o.significance_z * std::sqrt((won + lost) / samples);
  };
  // Visits every allowed plan: (first window end, pre-warm window or none).
  auto for_each_plan = [&](auto&& visit) {
    for (size_t b1 = 0; b1 < points.size(); ++b1) {
      const Micros hold = points[b1];
      if (hold > 0 && hold < o.min_hold_us && hold != o.fixed_keep_us) continue;
      const double shared1 = f[std::min(b1, fixed_at)];  // of fixed's window, covered by the first
      const double held1 = g[b1] + template_held(hold);
      if (auto cold = pessimistic_cold(b1, f[b1], shared1)) visit(b1, -1, -1, *cold, held1);
      for (size_t a2 = b1 + 1; a2 < points.size(); ++a2) {
        const Micros start = points[a2] - o.lead_us;
        // Unloading for less than min_hold is churn, not saving.
        if (start - hold < std::max<Micros>(o.min_hold_us, 1)) continue;
        const double held_before = d.G(start);
        for (size_t b2 = a2 + 1; b2 < points.size(); ++b2) {
          const double covered = f[b1] + f[b2] - f[a2];
          const double shared = shared1 + std::max(0.0, f[std::min(b2, fixed_at)] - f[std::min(a2, fixed_at)]);
          if (auto cold = pessimistic_cold(b1, covered, shared))
            visit(b1, static_cast<int>(a2), static_cast<int>(b2), *cold, held1 + g[b2] - held_before);
        }
      }
    }
  };
  double best_cold = cold_limit;
  for_each_plan([&](size_t, int, int, double cold, double held) {
    if (cold <= cold_limit && held <= held_limit) best_cold = std::min(best_cold, cold);
  });
  // A real cut in cold starts comes first; without one, plans within the
  // slack qualify and the least memory wins.
  const bool can_cut = plan.fixed_cold_share - best_cold > std::max(1e-9, o.min_gain_fraction * plan.fixed_cold_share);
  const double qualify =
      can_cut ? best_cold + (1 - o.cold_cut_share) * (plan.fixed_cold_share - best_cold) + 1e-12 : cold_limit;
  double best_held = held_limit + 1;
  double chosen_cold = plan.fixed_cold_share;
  size_t pick_b1 = 0;
  int pick_a2 = -1, pick_b2 = -1;
  for_each_plan([&](size_t b1, int a2, int b2, double cold, double held) {
    if (cold > qualify || held > held_limit) return;
    if (held < best_held || (held == best_held && cold < chosen_cold)) {
      best_held = held;
      chosen_cold = cold;
      pick_b1 = b1;
      pick_a2 = a2;
      pick_b2 = b2;
    }
  });
  if (best_held > held_limit) return plan;
  const bool cuts_cold = plan.fixed_cold_share - chosen_cold > std::max(1e-9, o.min_gain_fraction * plan.fixed_cold_share);
  const bool cuts_held = plan.fixed_held_us - best_held > std::max(1e-6, o.min_gain_fraction * plan.fixed_held_us);
  if (!cuts_cold && !cuts_held) return plan;
  plan.fixed = false;
  plan.hold_until_us = points[pick_b1];
  plan.keep_until_us = plan.hold_until_us;
  plan.template_until_us = std::min({o.template_keep_us, o.min_hold_us, plan.hold_until_us});
  if (pick_a2 >= 0) {
    plan.prewarm_at_us = points[static_cast<size_t>(pick_a2)];
    plan.keep_until_us = points[static_cast<size_t>(pick_b2)];
  }
  plan.cold_share = chosen_cold;
  plan.held_us = best_held;
  return plan;
}

}  // namespace thaw::policy
