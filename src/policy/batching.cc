#include "policy/batching.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace thaw::policy {
namespace {

constexpr double kCostEwmaAlpha = 0.3;     // weight of a new exec-time report for its size
constexpr int kMaxWeightPerSize = 8;       // cap on a size's weight in the line fit
constexpr double kGapEwmaAlpha = 0.2;      // weight of a new inter-arrival gap
constexpr double kSloHeadroom = 0.8;       // aim mean latency at this fraction of the p99 SLO
constexpr double kMinGain = 0.1;           // waiting must cut cost per row by at least this

Micros CeilMicros(double us) { return static_cast<Micros>(std::ceil(std::max(0.0, us))); }

// `t - d`, where t may be kNoDeadline.
Micros LatestStart(Micros deadline_us, double exec_us, Micros slack_us) {
  if (deadline_us == kNoDeadline) return kNoDeadline;
  return deadline_us - CeilMicros(exec_us) - slack_us;
}

// The batch headed by the oldest request: see the header comment.
struct Candidate {
  std::vector<uint64_t> ids;
  std::vector<int64_t> cum_rows;  // rows of the prefix ending at each id
  std::vector<Micros> latest;     // latest start of the prefix ending at each id (deadline rule)
  bool full = false;              // cannot grow: max rows reached or the next same-key request does not fit
  int64_t rows() const { return cum_rows.back(); }
};

Candidate FormCandidate(const BatchingOptions& o, const BatchObservation& obs, const ExecCostModel& cost) {
  Candidate c;
  const std::string_view key = obs.queue.front().shape_key;
  int64_t rows = 0;
  Micros min_deadline = kNoDeadline;
  for (const BatchRequest& r : obs.queue) {
    if (r.shape_key != key) continue;
    const int64_t next_rows = rows + r.rows;
    const Micros next_deadline = std::min(min_deadline, r.deadline_us);
    const Micros next_latest = LatestStart(next_deadline, cost.Predict(next_rows), o.deadline_slack_us);
    if (!c.ids.empty()) {
      // Stop at the first request that does not fit, or whose joining would
      // make the batch (sent now) miss a deadline it would otherwise meet.
      if (next_rows > o.max_batch_size || (next_latest < obs.now_us && c.latest.back() >= obs.now_us)) {
        c.full = true;
        break;
      }
    }
    c.ids.push_back(r.id);
    rows = next_rows;
    min_deadline = next_deadline;
    c.cum_rows.push_back(rows);
    c.latest.push_back(next_latest);
    if (rows >= o.max_batch_size) {
      c.full = true;
      break;
    }
  }
  return c;
}

BatchDecision SendAll(const Candidate& c) { return {c.ids, std::nullopt}; }

}  // namespace

Status Validate(const BatchingOptions& o) {
  auto bad = [](const std::string& field, const std::string& why) {
    return InvalidArgument("batching option '" + field + "' " + why);
  };
  if (o.mode != BatchingMode::kOff && o.mode != BatchingMode::kFixed && o.mode != BatchingMode::kAdaptive)
    return bad("mode", "must be off, fixed or adaptive");
  if (o.max_batch_size < 1) return bad("max_batch_size", "must be >= 1");
  if (o.max_queue_delay_us < 0) return bad("max_queue_delay_us", "must be >= 0");
  std::set<int> seen;
  for (int size : o.preferred_batch_sizes) {
    if (size < 1 || size > o.max_batch_size) return bad("preferred_batch_sizes", "entries must be in [1, max_batch_size]");
    if (!seen.insert(size).second) return bad("preferred_batch_sizes", "entries must be distinct");
  }
  if (!(o.slo_p99_ms > 0) || !std::isfinite(o.slo_p99_ms)) return bad("slo_p99_ms", "must be a finite number > 0");
  if (o.deadline_slack_us < 0) return bad("deadline_slack_us", "must be >= 0");
  return Status::Ok();
}

// ---- ExecCostModel ----

ExecCostModel::ExecCostModel(int max_batch_size) : by_size_(static_cast<size_t>(std::max(1, max_batch_size)) + 1) {}

void ExecCostModel::Add(int64_t rows, Micros exec_us) {
  if (rows < 1 || rows >= static_cast<int64_t>(by_size_.size()) || exec_us < 0) return;
  SizeStat& s = by_size_[static_cast<size_t>(rows)];
  s.ewma_us = s.count == 0 ? static_cast<double>(exec_us) : s.ewma_us + kCostEwmaAlpha * (exec_us - s.ewma_us);
  ++s.count;
  ++samples_;
  Fit();
}

int ExecCostModel::distinct_sizes() const {
  return static_cast<int>(std::count_if(by_size_.begin(), by_size_.end(), [](const SizeStat& s) { return s.count > 0; }));
}

void ExecCostModel::Fit() {
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (size_t n = 1; n < by_size_.size(); ++n) {
    const SizeStat& s = by_size_[n];
    if (s.count == 0) continue;
    const double w = std::min(s.count, kMaxWeightPerSize);
    const double x = static_cast<double>(n);
    sw += w;
    sx += w * x;
    sy += w * s.ewma_us;
    sxx += w * x * x;
    sxy += w * x * s.ewma_us;
  }
  if (sw == 0) return;
  const double denom = sw * sxx - sx * sx;
  if (distinct_sizes() < 2 || denom <= 1e-9 * sw * sxx) {
    a_ = sy / sw;  // optimistic prior: all overhead
    b_ = 0;
    return;
  }
  b_ = (sw * sxy - sx * sy) / denom;
  a_ = (sy - b_ * sx) / sw;
  if (b_ < 0) {
    b_ = 0;
    a_ = sy / sw;
  } else if (a_ < 0) {
    a_ = 0;
    b_ = sxy / sxx;  // through the origin
  }
}

double ExecCostModel::Predict(int64_t rows) const {
  if (samples_ == 0) return 0;
  return a_ + b_ * static_cast<double>(std::max<int64_t>(rows, 1));
}

// ---- kOff / kFixed ----

BatchDecision DecideBatch(const BatchingOptions& o, const BatchObservation& obs, const ExecCostModel& cost) {
  if (obs.queue.empty() || obs.free_slots <= 0) return {};
  if (o.mode == BatchingMode::kOff) return {{obs.queue.front().id}, std::nullopt};

  const Candidate c = FormCandidate(o, obs, cost);
  if (c.full || !cost.has_samples()) return SendAll(c);
  // Largest prefix of a preferred size goes at once.
  for (size_t i = c.ids.size(); i-- > 0;) {
    const int64_t rows = c.cum_rows[i];
    if (std::find(o.preferred_batch_sizes.begin(), o.preferred_batch_sizes.end(), rows) != o.preferred_batch_sizes.end())
      return {std::vector<uint64_t>(c.ids.begin(), c.ids.begin() + static_cast<std::ptrdiff_t>(i) + 1), std::nullopt};
  }
  const Micros latest = std::min(obs.queue.front().arrival_us + o.max_queue_delay_us, c.latest.back());
  if (obs.now_us >= latest) return SendAll(c);
  return {{}, latest};
}

// ---- AdaptiveBatcher ----

AdaptiveBatcher::AdaptiveBatcher(const BatchingOptions& options)
    : options_(options), cost_(options.max_batch_size) {}

void AdaptiveBatcher::OnArrival(Micros now_us, int64_t rows) {
  if (seen_arrival_) {
    const double gap = static_cast<double>(std::max<Micros>(0, now_us - last_arrival_us_));
    gap_ewma_us_ = have_gap_ ? gap_ewma_us_ + kGapEwmaAlpha * (gap - gap_ewma_us_) : gap;
    have_gap_ = true;
    rows_ewma_ += kGapEwmaAlpha * (static_cast<double>(std::max<int64_t>(rows, 1)) - rows_ewma_);
  } else {
    rows_ewma_ = static_cast<double>(std::max<int64_t>(rows, 1));
  }
  seen_arrival_ = true;
  last_arrival_us_ = std::max(last_arrival_us_, now_us);
}

void AdaptiveBatcher::OnBatchDone(int64_t rows, Micros exec_us) { cost_.Add(rows, exec_us); }

double AdaptiveBatcher::RowsPerMicro(Micros now_us) const {
  if (!have_gap_) return 0;
  const double gap = std::max({gap_ewma_us_, static_cast<double>(now_us - last_arrival_us_), 1.0});
  return rows_ewma_ / gap;
}

double AdaptiveBatcher::ArrivalRowsPerSecond(Micros now_us) const { return RowsPerMicro(now_us) * kMicrosPerSecond; }

double AdaptiveBatcher::BudgetUs() const { return kSloHeadroom * options_.slo_p99_ms * kMicrosPerMilli; }

int AdaptiveBatcher::TargetBatchSize(Micros now_us) const {
  const double rate = RowsPerMicro(now_us);
  if (rate <= 0 || !cost_.has_samples()) return 1;
  int target = 1;
  for (int n = options_.max_batch_size; n > 1; --n) {
    const double fill_us = std::max(0.0, n - rows_ewma_) / rate;
    if (fill_us + cost_.Predict(n) <= BudgetUs()) {
      target = n;
      break;
    }
  }
  if (target > 1 && cost_.Predict(target) / target > (1 - kMinGain) * cost_.Predict(1)) return 1;
  return target;
}

BatchDecision AdaptiveBatcher::Decide(const BatchObservation& obs) const {
  if (obs.queue.empty() || obs.free_slots <= 0) return {};
  if (options_.mode != BatchingMode::kAdaptive) return DecideBatch(options_, obs, cost_);

  const Candidate c = FormCandidate(options_, obs, cost_);
  if (c.full || !cost_.has_samples()) return SendAll(c);
  const int target = TargetBatchSize(obs.now_us);
  const int64_t rows = std::max<int64_t>(1, c.rows());
  if (rows >= target) return SendAll(c);

  const double budget_wait = std::max(0.0, BudgetUs() - cost_.Predict(target));
  const Micros wait_cap = std::min(options_.max_queue_delay_us, CeilMicros(budget_wait));
  const Micros latest = std::min(obs.queue.front().arrival_us + wait_cap, c.latest.back());
  if (obs.now_us >= latest) return SendAll(c);

  // Wait only if the rows expected by `latest` make each row cheaper enough.
  const double expected_rows =
      std::min<double>(target, static_cast<double>(rows) + RowsPerMicro(obs.now_us) * static_cast<double>(latest - obs.now_us));
  const double per_row_now = cost_.Predict(rows) / static_cast<double>(rows);
  const double per_row_later = cost_.Predict(static_cast<int64_t>(std::floor(expected_rows))) / std::floor(expected_rows);
  if (expected_rows < rows + 1 || per_row_later > (1 - kMinGain) * per_row_now) return SendAll(c);
  return {{}, latest};
}

}  // namespace thaw::policy
