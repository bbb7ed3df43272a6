#include "policy/keep_alive.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace thaw::policy {

Status Validate(const KeepAliveOptions& o) {
  auto bad = [](const std::string& field, const std::string& why) {
    return InvalidArgument("keep-alive option '" + field + "' " + why);
  };
  if (o.keep_alive_us < 0) return bad("keep_alive_us", "must be >= 0");
  if (o.bin_width_us <= 0) return bad("bin_width_us", "must be > 0");
  if (o.range_us <= 0 || o.range_us % o.bin_width_us != 0)
    return bad("range_us", "must be a positive multiple of bin_width_us");
  if (o.range_us / o.bin_width_us > 1000000) return bad("range_us", "must span at most 1000000 bins");
  if (!(o.head_percentile >= 0 && o.head_percentile < 100)) return bad("head_percentile", "must be in [0, 100)");
  if (!(o.tail_percentile > o.head_percentile && o.tail_percentile <= 100))
    return bad("tail_percentile", "must be in (head_percentile, 100]");
  if (!(o.margin_fraction >= 0 && o.margin_fraction < 1)) return bad("margin_fraction", "must be in [0, 1)");
  if (o.min_samples < 1) return bad("min_samples", "must be >= 1");
  if (!(o.min_cv >= 0)) return bad("min_cv", "must be >= 0");
  if (!(o.max_out_of_range_fraction >= 0 && o.max_out_of_range_fraction <= 1))
    return bad("max_out_of_range_fraction", "must be in [0, 1]");
  if (o.history_half_life_us <= 0) return bad("history_half_life_us", "must be > 0");
  if (o.min_hold_us < 0) return bad("min_hold_us", "must be >= 0");
  if (!(o.cold_cut_share >= 0 && o.cold_cut_share <= 1)) return bad("cold_cut_share", "must be in [0, 1]");
  if (!(o.min_gain_fraction >= 0 && o.min_gain_fraction < 1)) return bad("min_gain_fraction", "must be in [0, 1)");
  return Status::Ok();
}

IdleHistogram::IdleHistogram(const KeepAliveOptions& options)
    : bin_width_us_(options.bin_width_us), bins_(static_cast<size_t>(options.range_us / options.bin_width_us), 0) {}

void IdleHistogram::Record(Micros idle_us) {
  ++total_;
  const Micros bin = std::max<Micros>(0, idle_us) / bin_width_us_;
  if (bin >= static_cast<Micros>(bins_.size())) {
    ++out_of_range_;
  } else {
    ++bins_[static_cast<size_t>(bin)];
  }
}

double IdleHistogram::BinCv() const {
  const double in_range = static_cast<double>(total_ - out_of_range_);
  if (in_range <= 0) return 0;
  const double n = static_cast<double>(bins_.size());
  const double mean = in_range / n;
  double sum_sq = 0;
  for (int64_t c : bins_) sum_sq += (c - mean) * (c - mean);
  return std::sqrt(sum_sq / n) / mean;
}

int IdleHistogram::PercentileBin(double percentile) const {
  const double threshold = percentile / 100.0 * static_cast<double>(total_ - out_of_range_);
  int64_t cumulative = 0;
  for (size_t i = 0; i < bins_.size(); ++i) {
    cumulative += bins_[i];
    if (cumulative > 0 && static_cast<double>(cumulative) >= threshold) return static_cast<int>(i);
  }
  return static_cast<int>(bins_.size()) - 1;
}

std::string_view PlanSourceName(PlanSource source) {
  switch (source) {
    case PlanSource::kFixed: return "fixed";
    case PlanSource::kHistogram: return "histogram";
    case PlanSource::kAdaptive: return "adaptive";
    case PlanSource::kTooFewSamples: return "fixed (too few samples)";
    case PlanSource::kTooSpread: return "fixed (histogram too spread)";
    case PlanSource::kOutOfRange: return "fixed (idle times out of range)";
  }
  return "unknown";
}

IdlePlan PlanIdlePeriod(const KeepAliveOptions& options, const IdleHistogram& histogram, Micros ended_us) {
  auto fixed = [&](PlanSource source) {
    IdlePlan plan;
    plan.unload_now = options.keep_alive_us == 0;
    plan.hold_until_us = plan.keep_until_us = ended_us + options.keep_alive_us;
    plan.source = source;
    return plan;
  };
  if (options.kind != KeepAliveKind::kHistogram) return fixed(PlanSource::kFixed);
  const int64_t total = histogram.total();
  if (total < options.min_samples) return fixed(PlanSource::kTooFewSamples);
  if (histogram.out_of_range() == total ||
      static_cast<double>(histogram.out_of_range()) > options.max_out_of_range_fraction * static_cast<double>(total))
    return fixed(PlanSource::kOutOfRange);
  if (!(histogram.BinCv() > options.min_cv)) return fixed(PlanSource::kTooSpread);

  const Micros width = histogram.bin_width_us();
  // Head: the lower edge of its bin; tail: the upper edge of its bin.
  const Micros head_us = histogram.PercentileBin(options.head_percentile) * width;
  const Micros tail_us = (histogram.PercentileBin(options.tail_percentile) + 1) * width;
  // Rounded to the microsecond: 3 s x 1.1 must be 3.3 s, not a hair more.
  const Micros prewarm_us = std::llround(static_cast<double>(head_us) * (1 - options.margin_fraction));
  // Measured from the pre-warm, so the shortened pre-warm never shortens
  // what is kept: the instance lives past the tail by the margin.
  const Micros keep_us = std::llround(static_cast<double>(tail_us - prewarm_us) * (1 + options.margin_fraction));

  IdlePlan plan;
  plan.source = PlanSource::kHistogram;
  if (prewarm_us <= 0) {
    plan.hold_until_us = plan.keep_until_us = ended_us + keep_us;  // the next arrival may come at once: stay loaded
  } else {
    plan.unload_now = true;
    plan.hold_until_us = ended_us;
    plan.prewarm_at_us = ended_us + prewarm_us;
    plan.keep_until_us = *plan.prewarm_at_us + keep_us;
  }
  return plan;
}

KeepAlivePolicy::KeepAlivePolicy(const KeepAliveOptions& options)
    : options_(options), histogram_(options), history_(options.history_half_life_us) {}

void KeepAlivePolicy::OnArrival(Micros now_us) {
  if (idle_since_us_) {  // into the record its kind plans from (the fixed policy needs none)
    if (options_.kind == KeepAliveKind::kHistogram) histogram_.Record(now_us - *idle_since_us_);
    if (options_.kind == KeepAliveKind::kAdaptive) {
      history_.Record(now_us - *idle_since_us_, now_us);
      samples_since_windows_ += 1;
    }
  }
  idle_since_us_.reset();
  plan_.reset();
}

IdlePlan KeepAlivePolicy::OnIdle(Micros now_us, const IdleContext& context) {
  idle_since_us_ = now_us;
  plan_ = options_.kind == KeepAliveKind::kAdaptive ? PlanAdaptive(now_us, context)
                                                     : PlanIdlePeriod(options_, histogram_, now_us);
  return *plan_;
}

IdlePlan KeepAlivePolicy::PlanAdaptive(Micros ended_us, const IdleContext& context) {
  IdlePlan plan = PlanIdlePeriod(options_, histogram_, ended_us);  // the fixed plan
  if (history_.weight() < options_.min_samples) {
    plan.source = PlanSource::kTooFewSamples;
    return plan;
  }
  idle_periods_ = std::min(idle_periods_ + 1, 32.0);
  template_share_ += ((context.fixed_holds_template ? 1.0 : 0.0) - template_share_) / idle_periods_;
  IdleContext now_context = context;
  now_context.template_weight = context.template_weight * template_share_;
  // Replanning is O(P^3): reuse the windows until the history or the context moved.
  const IdleContext& last = windows_context_;
  const bool context_moved =
      std::abs(context.lead_us - last.lead_us) > std::max<Micros>(kMicrosPerMilli, last.lead_us / 10) ||
      now_context.template_keep_us != last.template_keep_us ||
      std::abs(now_context.template_weight - last.template_weight) > 0.1 * last.template_weight ||
      now_context.held_factor != last.held_factor;
  if (!windows_ || context_moved || samples_since_windows_ >= std::max(1.0, history_.weight() / 16)) {
    windows_ = PlanIdleWindows(history_, {.fixed_keep_us = options_.keep_alive_us,
                                          .lead_us = context.lead_us,
                                          .min_hold_us = options_.min_hold_us,
                                          .cold_cut_share = options_.cold_cut_share,
                                          .min_gain_fraction = options_.min_gain_fraction,
                                          .template_keep_us = now_context.template_keep_us,
                                          .template_weight = now_context.template_weight,
                                          .held_factor = now_context.held_factor});
    windows_context_ = now_context;
    samples_since_windows_ = 0;
  }
  const IdleWindows& w = *windows_;
  plan.cold_share = w.cold_share;
  plan.fixed_cold_share = w.fixed_cold_share;
  plan.held_us = w.held_us;
  plan.fixed_held_us = w.fixed_held_us;
  if (w.fixed) return plan;
  plan.source = PlanSource::kAdaptive;
  plan.unload_now = w.hold_until_us == 0;
  plan.hold_until_us = plan.keep_until_us = ended_us + w.hold_until_us;
  plan.template_until_us = ended_us + w.template_until_us;
  if (w.prewarm_at_us) {
    plan.prewarm_at_us = ended_us + std::max<Micros>(w.hold_until_us, *w.prewarm_at_us - windows_context_.lead_us);
    plan.keep_until_us = ended_us + w.keep_until_us;
  }
  return plan;
}

std::optional<Micros> KeepAlivePolicy::TemplateReleaseAt(Micros now_us) const {
  if (!plan_ || plan_->source != PlanSource::kAdaptive) return std::nullopt;
  if (now_us < plan_->template_until_us) return plan_->template_until_us;
  const bool in_prewarm = plan_->prewarm_at_us && now_us >= *plan_->prewarm_at_us && now_us < plan_->keep_until_us;
  return in_prewarm ? plan_->keep_until_us : now_us;
}

IdleVerdict KeepAlivePolicy::CheckIdleInstance(Micros idle_since_us, Micros now_us) const {
  IdleVerdict verdict;
  Micros stop_at = idle_since_us + options_.keep_alive_us;
  if (plan_ && plan_->windowed()) {
    if (now_us < plan_->hold_until_us) {
      stop_at = plan_->hold_until_us;
    } else if (plan_->prewarm_at_us && now_us < *plan_->prewarm_at_us) {
      // Between the windows no instance should be loaded.
      verdict.stop = true;
      return verdict;
    } else {
      stop_at = plan_->keep_until_us;
    }
  }
  if (now_us >= stop_at) {
    verdict.stop = true;
  } else {
    verdict.next_wake_us = stop_at;
  }
  return verdict;
}

KeepAliveActions KeepAlivePolicy::Decide(std::span<const IdleInstance> idle, int total_instances, int min_instances,
                                         Micros now_us) const {
  std::vector<IdleInstance> by_age(idle.begin(), idle.end());
  std::stable_sort(by_age.begin(), by_age.end(),
                   [](const IdleInstance& a, const IdleInstance& b) { return a.idle_since_us < b.idle_since_us; });
  KeepAliveActions actions;
  auto wake_at = [&](Micros t) {
    if (!actions.next_wake_us || t < *actions.next_wake_us) actions.next_wake_us = t;
  };
  int stoppable = std::max(0, total_instances - min_instances);
  const bool adaptive = plan_ && plan_->source == PlanSource::kAdaptive;
  for (size_t i = 0; i < by_age.size(); ++i) {
    const IdleInstance& instance = by_age[i];
    IdleVerdict verdict = CheckIdleInstance(instance.idle_since_us, now_us);
    // The plan is for one instance: the others go by the fixed rule, never later than the plan's.
    if (adaptive && i + 1 < by_age.size() && !verdict.stop) {
      const Micros own_stop = instance.idle_since_us + options_.keep_alive_us;
      if (now_us >= own_stop) {
        verdict = {.stop = true};
      } else if (verdict.next_wake_us) {
        verdict.next_wake_us = std::min(*verdict.next_wake_us, own_stop);
      }
    }
    if (verdict.stop) {
      // Past its time but part of the provisioned floor: kept, no wake needed.
      if (stoppable > 0) {
        actions.stop.push_back(instance.id);
        --stoppable;
      }
    } else if (verdict.next_wake_us) {
      wake_at(*verdict.next_wake_us);
    }
  }
  if (plan_ && plan_->prewarm_at_us) {
    const int left = total_instances - static_cast<int>(actions.stop.size());
    if (now_us < *plan_->prewarm_at_us) {
      wake_at(*plan_->prewarm_at_us);
    } else if (now_us < plan_->keep_until_us && left <= 0) {
      actions.prewarm_now = true;
    }
  }
  return actions;
}

}  // namespace thaw::policy
