#include "policy/keep_alive_pool.h"

#include <cmath>
#include <iterator>
#include <string>

namespace thaw::policy {

Status Validate(const KeepAlivePoolOptions& o) {
  auto bad = [](const std::string& field, const std::string& why) {
    return InvalidArgument("keep-alive pool option '" + field + "' " + why);
  };
  if (o.half_life_us <= 0) return bad("half_life_us", "must be > 0");
  if (!(o.lower_surplus >= 0 && o.lower_surplus < o.raise_surplus)) return bad("lower_surplus", "must be in [0, raise_surplus)");
  if (!(o.raise_surplus < 1)) return bad("raise_surplus", "must be < 1");
  if (o.min_step_interval_us < 0) return bad("min_step_interval_us", "must be >= 0");
  return Status::Ok();
}

KeepAlivePool::KeepAlivePool(const KeepAlivePoolOptions& options) : options_(options) {}

double KeepAlivePool::surplus() const { return fixed_ > 0 ? 1 - planned_ / fixed_ : 0; }

void KeepAlivePool::Record(double planned_mb_us, double fixed_mb_us, Micros now_us) {
  if (now_us > last_us_) {
    const double decay = std::exp2(-static_cast<double>(now_us - last_us_) / static_cast<double>(options_.half_life_us));
    planned_ *= decay;
    fixed_ *= decay;
    last_us_ = now_us;
  }
  planned_ += std::max(0.0, planned_mb_us);
  fixed_ += std::max(0.0, fixed_mb_us);
  if (!options_.pooled || now_us - last_step_us_ < options_.min_step_interval_us) return;
  const int top = static_cast<int>(std::size(kLevels)) - 1;
  const double s = surplus();
  if (s > options_.raise_surplus && level_ < top) {
    ++level_;
    last_step_us_ = now_us;
  } else if (s < options_.lower_surplus && level_ > 0) {
    --level_;
    last_step_us_ = now_us;
  }
}

}  // namespace thaw::policy
