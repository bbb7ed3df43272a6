#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <queue>
#include <random>

#include <unordered_map>
#include <unordered_set>

#include "policy/admission.h"
#include "sched/scheduler.h"
#include "sched/usage_records.h"

namespace thaw::sim {

Micros ModelProfile::ExecUs(int64_t rows) const {
  const auto& t = exec_us_by_rows;
  if (t.size() == 1) return t[0].second;
  auto hi = std::lower_bound(t.begin(), t.end(), rows, [](const auto& entry, int64_t r) { return entry.first < r; });
  if (hi != t.end() && hi->first == rows) return hi->second;
  if (hi == t.begin()) return t.front().second;
  if (hi == t.end()) hi = t.end() - 1;  // beyond the last size: extend the last segment
  const auto lo = hi - 1;
  const double slope = static_cast<double>(hi->second - lo->second) / static_cast<double>(hi->first - lo->first);
  return std::max<Micros>(1, lo->second + static_cast<Micros>(std::llround(slope * static_cast<double>(rows - lo->first))));
}

double ModelProfile::SpreadAt(double q) const {
  if (exec_spread.size() != kSpreadPoints) return 1.0;
  const double x = std::clamp(q, 0.0, 1.0) * static_cast<double>(kSpreadPoints - 1);
  const size_t i = std::min(static_cast<size_t>(x), kSpreadPoints - 2);
  return exec_spread[i] + (exec_spread[i + 1] - exec_spread[i]) * (x - static_cast<double>(i));
}

Micros ModelProfile::SmoothIdle(std::optional<double>* log_state, Micros gap_us) {
  const double x = std::log(static_cast<double>(std::max<Micros>(1, gap_us)));
  *log_state = log_state->has_value() ? kIdleSmoothing * x + (1 - kIdleSmoothing) * **log_state : x;
  return std::llround(std::exp(**log_state));
}

double ModelProfile::IdleFactor(Micros idle_us) const {
  const auto& t = exec_factor_by_idle_us;
  if (t.empty()) return 1.0;
  if (idle_us <= t.front().first) return t.front().second;
  if (idle_us >= t.back().first) return t.back().second;
  auto hi = std::lower_bound(t.begin(), t.end(), idle_us, [](const auto& e, Micros g) { return e.first < g; });
  const auto lo = hi - 1;
  const double x = std::log(static_cast<double>(idle_us) / static_cast<double>(lo->first)) /
                   std::log(static_cast<double>(hi->first) / static_cast<double>(lo->first));
  return lo->second + (hi->second - lo->second) * x;
}

Status ModelProfile::Validate() const {
  if (exec_us_by_rows.empty()) return InvalidArgument("profile: exec_us_by_rows is empty");
  for (size_t i = 0; i < exec_us_by_rows.size(); ++i) {
    if (exec_us_by_rows[i].first < 1 || exec_us_by_rows[i].second < 1)
      return InvalidArgument("profile: exec_us_by_rows entries must have rows >= 1 and exec_us >= 1");
    if (i && exec_us_by_rows[i].first <= exec_us_by_rows[i - 1].first)
      return InvalidArgument("profile: exec_us_by_rows must be sorted by rows, without repeats");
  }
  if (!(exec_cv >= 0 && exec_cv <= 10)) return InvalidArgument("profile: exec_cv must be in [0, 10]");
  if (!exec_spread.empty()) {
    if (exec_spread.size() != kSpreadPoints)
      return InvalidArgument("profile: exec_spread must have " + std::to_string(kSpreadPoints) +
                             " values (quantiles 0, 0.001, ..., 1), got " + std::to_string(exec_spread.size()));
    for (size_t i = 0; i < exec_spread.size(); ++i)
      if (!(exec_spread[i] > 0 && exec_spread[i] <= 1000) || (i && exec_spread[i] < exec_spread[i - 1]))
        return InvalidArgument("profile: exec_spread must be non-decreasing ratios in (0, 1000]");
  }
  for (size_t i = 0; i < exec_factor_by_idle_us.size(); ++i) {
    const auto& [gap, factor] = exec_factor_by_idle_us[i];
    if (gap < 1 || !(factor > 0 && factor <= 1000) || (i && gap <= exec_factor_by_idle_us[i - 1].first))
      return InvalidArgument("profile: exec_factor_by_idle_us must be sorted gaps >= 1 us with factors in (0, 1000]");
  }
  for (const auto& [path, us] : start_us)
    if (us < 0) return InvalidArgument("profile: start_us." + path + " must be >= 0");
  return Status::Ok();
}

namespace {

using sched::Action;

// What the simulator knows of a model beyond the scheduler: its profile and
// how many instances it has, for the result.
struct Model {
  explicit Model(const SimModel& m) : sim(&m) {}
  const SimModel* sim;
  int live_instances = 0;
  uint64_t template_generation = 0;  // a TemplateReady event of an older one is stale
  Micros wake_at_us = sched::kNever;  // when the scheduler wants Wake
  // The earliest wake event queued (no later than wake_at_us). As the
  // runtime's timer, it stays when the wanted time moves later: under load
  // the earliest deadline moves with every execution.
  Micros armed_us = sched::kNever;

  const ModelConfig& config() const { return sim->config; }
};

enum class EventKind : uint8_t { kReady, kDone, kWake, kTemplateReady };

// The profile's start time for `level`: its own entry, else the documented
// fallback (standby: template, prepared: zygote), else the entry of the
// model's configured start path (profiles measured before levels existed),
// else 0.
Micros StartUsOf(const ModelProfile& profile, std::string_view level, StartPath configured) {
  const std::string_view fallback = level == "standby" ? "template" : level == "prepared" ? "zygote" : "";
  for (std::string_view key : {level, fallback, StartPathName(configured)}) {
    if (key.empty()) continue;
    auto it = profile.start_us.find(std::string(key));
    if (it != profile.start_us.end()) return it->second;
  }
  return 0;
}

struct Event {
  Micros time_us;
  uint64_t seq;  // ties keep insertion order: deterministic
  EventKind kind;
  uint32_t model;
  uint64_t instance;
  uint64_t execution;
  Micros compute_us;  // kDone: the execution's drawn time
  bool operator>(const Event& o) const { return time_us != o.time_us ? time_us > o.time_us : seq > o.seq; }
};

// The simulator's driver of sched::Scheduler: actions become virtual-time
// events (a start is ready after the profile's start time, an execution done
// after a drawn execution time) and usage records.
class Sim {
 public:
  Sim(const std::vector<SimModel>& models, const policy::PriceSheet& prices, const SimOptions& options)
      : prices_(prices),
        options_(options),
        stats_(prices.granularity_us),
        rng_(options.seed),
        scheduler_({.memory_budget_mb = options.memory_budget_mb,
                    .memory_charge = options.memory_charge,
                    .eviction_order = options.eviction_order,
                    .max_starting_templates = options.max_starting_templates,
                    .template_admit_calls = options.template_admit_calls,
                    .keep_alive_pool = options.keep_alive_pool,
                    .log = options.log}) {
    models_.reserve(models.size());
    for (uint32_t m = 0; m < models.size(); ++m) {
      models_.emplace_back(models[m]);
      index_.emplace(models[m].config.name, m);
    }
  }

  StatusOr<SimResult> Run(const std::vector<SimArrival>& arrivals) {
    now_ = 0;
    for (const Model& model : models_) {
      // Provisioned floors start at once.
      THAW_RETURN_IF_ERROR(scheduler_.AddModel(model.config(), At(), &actions_));
      Carry();
    }
    size_t next = 0;
    while (next < arrivals.size() || !events_.empty()) {
      const bool arrival_first = next < arrivals.size() && (events_.empty() || arrivals[next].time_us <= events_.top().time_us);
      ++result_.events;
      if (arrival_first) {
        now_ = std::max(now_, arrivals[next].time_us);
        Arrive(arrivals[next]);
        ++next;
        continue;
      }
      const Event e = events_.top();
      events_.pop();
      now_ = std::max(now_, e.time_us);
      const std::string& name = models_[e.model].config().name;
      switch (e.kind) {
        case EventKind::kReady:
          starting_.erase(e.instance);
          idle_since_[e.instance] = {.since_us = now_};
          scheduler_.InstanceReady(name, e.instance, At(), &actions_);
          break;
        case EventKind::kDone: OnDone(e.model, e.instance, e.execution, e.compute_us); break;
        case EventKind::kTemplateReady:
          if (e.instance == models_[e.model].template_generation) {
            scheduler_.TemplateReady(name, At(), &actions_);
            if (const int64_t kb = models_[e.model].sim->profile.template_memory_kb; kb > 0)
              scheduler_.ObserveMemory(name, 0, kb * 1024, At());
          }
          break;
        case EventKind::kWake: {
          Model& model = models_[e.model];
          if (e.time_us != model.armed_us) break;  // superseded by an earlier one
          model.armed_us = sched::kNever;
          if (model.wake_at_us == sched::kNever) break;
          if (now_ < model.wake_at_us) {  // wanted later now: re-arm
            Arm(e.model, model.wake_at_us);
            break;
          }
          model.wake_at_us = sched::kNever;
          scheduler_.Wake(name, At(), &actions_);
          break;
        }
      }
      Carry();
      // Provisioned floors, keep-alive and pre-warm plans keep scheduling
      // wake-ups forever; once the trace is over and no work is left, stop.
      if (next == arrivals.size() && scheduler_.Idle() && starting_.empty()) break;
    }
    // Close the books: stop every instance, end provisioned intervals.
    for (const Model& model : models_) {
      THAW_RETURN_IF_ERROR(
          scheduler_.RemoveModel(model.config().name, Unavailable("end of trace"), "end_of_trace", At(), &actions_));
      Carry();
    }
    result_.report = stats_.Report(prices_);
    result_.report.virtual_origin_wall_us = options_.start_wall_us;
    return std::move(result_);
  }

 private:
  sched::Now At() const { return {.mono_us = now_, .wall_us = Wall(now_)}; }
  Micros Wall(Micros t) const { return options_.start_wall_us + t; }

  void Push(Micros t, EventKind kind, uint32_t model, uint64_t instance = 0, uint64_t execution = 0,
            Micros compute_us = 0) {
    events_.push({t, next_seq_++, kind, model, instance, execution, compute_us});
  }

  void Arm(uint32_t m, Micros at) {
    models_[m].armed_us = at;
    Push(at, EventKind::kWake, m);
  }

  void Arrive(const SimArrival& a) {
    ++result_.requests;
    const ModelConfig& c = models_[a.model].config();
    const uint64_t id = next_request_id_++;
    auto deadline = policy::RequestDeadline(now_, c.timeout_ms, std::nullopt);
    const Status admitted = scheduler_.Arrive(
        c.name, {.id = id, .rows = a.rows, .arrival_us = now_, .deadline_us = deadline.ok() ? *deadline : sched::kNever},
        At(), &actions_);
    if (!admitted.ok()) {
      ++result_.rejected_429;
      RecordRefused(a.model, id, HttpStatusFor(admitted.code()));
    }
    Carry();
  }

  // Carries out what the scheduler asked for, in order.
  void Carry() {
    for (size_t i = 0; i < actions_.size(); ++i) {
      Action& a = actions_[i];
      const uint32_t m = index_.at(a.model);
      Model& model = models_[m];
      switch (a.kind) {
        case Action::Kind::kStart: {
          ++model.live_instances;
          result_.max_instances = std::max(result_.max_instances, model.live_instances);
          starting_.insert(a.instance_id);
          const std::string_view level = a.path == StartPath::kTemplate
                                             ? (model.config().template_standby ? "standby" : "template")
                                         : a.path == StartPath::kZygote ? "prepared"
                                                                        : "exec";
          ++result_.starts_by_level[std::string(level)];
          instance_paths_[a.instance_id] = std::string(StartPathName(a.path));
          const Micros profiled = StartUsOf(model.sim->profile, level, model.config().start_path);
          Push(now_ + (options_.start_us_of ? options_.start_us_of(a.instance_id).value_or(profiled) : profiled),
               EventKind::kReady, m, a.instance_id);
          break;
        }
        case Action::Kind::kStartTemplate:
          ++result_.template_starts;
          Push(now_ + (model.sim->profile.start_us.count("template_start") ? model.sim->profile.start_us.at("template_start") : 0),
               EventKind::kTemplateReady, m,
               ++model.template_generation);
          break;
        case Action::Kind::kStopTemplate: ++model.template_generation; break;
        case Action::Kind::kHeld:
          Record(metering::UsageRecord(sched::HeldRecordOf(a, model.config().memory_mb)));
          break;
        case Action::Kind::kDispatch: {
          std::optional<Micros> recorded = options_.exec_us_of ? options_.exec_us_of(a.execution_id) : std::nullopt;
          auto& idle = idle_since_[a.instance_id];
          // Busy: no idle gap. The first execution after ready is not folded
          // in, as the usage log has no gap before it either.
          Micros idle_us = idle.busy > 0 ? 0 : now_ - idle.since_us;
          if (idle.busy == 0 && idle.executed) idle_us = ModelProfile::SmoothIdle(&idle.smoothed_log_us, idle_us);
          idle.executed = true;
          ++idle.busy;
          const Micros compute_us = recorded ? *recorded : DrawExecUs(model, a.rows, idle_us);
          Push(now_ + compute_us, EventKind::kDone, m, a.instance_id, a.execution_id, compute_us);
          break;
        }
        case Action::Kind::kFail: RecordFailure(m, a); break;
        case Action::Kind::kStop:
          idle_since_.erase(a.instance_id);
          RecordStop(m, a);
          break;
        case Action::Kind::kWake:
          model.wake_at_us = a.at_us;
          if (a.at_us < model.armed_us) Arm(m, a.at_us);
          break;
        case Action::Kind::kProvisioned:
          result_.provisioned_instance_s += a.instances * (a.at_us - a.start_wall_us) / 1e6;
          Record(metering::UsageRecord(sched::ProvisionedRecordOf(a, model.config().memory_mb)));
          break;
        case Action::Kind::kNotice: break;
      }
    }
    actions_.clear();
  }

  // The profile's table holds medians, so both draws keep the median.
  Micros DrawExecUs(const Model& model, int64_t rows, Micros idle_us) {
    const ModelProfile& profile = model.sim->profile;
    const double median = static_cast<double>(profile.ExecUs(rows));
    if (!profile.exec_factor_by_idle_us.empty()) {  // the spread adds to the gap's median
      const double gap_factor = profile.IdleFactor(idle_us);
      const double spread = profile.exec_spread.empty() ? 1.0 : profile.SpreadAt(static_cast<double>(rng_() >> 11) * 0x1.0p-53);
      return std::max<Micros>(1, std::llround(median * std::max(gap_factor + spread - 1, 0.1 * gap_factor)));
    }
    double factor = 1.0;
    if (!profile.exec_spread.empty()) {
      factor = profile.SpreadAt(static_cast<double>(rng_() >> 11) * 0x1.0p-53);
    } else if (profile.exec_cv > 0) {
      std::normal_distribution<double> normal(0, std::sqrt(std::log1p(profile.exec_cv * profile.exec_cv)));
      factor = std::exp(normal(rng_));
    }
    return std::max<Micros>(1, static_cast<Micros>(std::llround(median * factor)));
  }

  void OnDone(uint32_t m, uint64_t instance_id, uint64_t execution_id, Micros compute_us) {
    const Model& model = models_[m];
    if (auto it = idle_since_.find(instance_id); it != idle_since_.end() && --it->second.busy <= 0) {
      it->second.busy = 0;
      it->second.since_us = now_;
    }
    std::optional<sched::Completion> done =
        scheduler_.ExecutionDone(model.config().name, instance_id, execution_id, compute_us, true, At(), &actions_);
    if (!done) return;  // its instance was stopped at a deadline
    if (const int64_t kb = model.sim->profile.instance_memory_kb; kb > 0 && observed_.insert(instance_id).second)
      scheduler_.ObserveMemory(model.config().name, instance_id, kb * 1024, At());
    for (const sched::Completion::Item& item : done->requests) {
      metering::InvocationRecord r = Record(m, item.id, item.arrival_us, 200);
      r.instance_id = done->instance.id;
      r.queue_us = done->dispatched_us - item.arrival_us;
      r.compute_us = compute_us;
      r.batch_rows = done->rows;
      r.batch_requests = static_cast<int>(done->requests.size());
      r.share = static_cast<double>(item.rows) / static_cast<double>(std::max<int64_t>(1, done->rows));
      r.cold_start = done->instance.ready_us > item.arrival_us;
      if (r.cold_start) {
        r.init_us = done->instance.ready_us - done->instance.start_us;
        ++result_.cold_starts;
      }
      r.provisioned = done->instance.provisioned;
      r.start_path = PathOf(done->instance.id);
      Record(metering::UsageRecord(std::move(r)));
    }
  }

  metering::InvocationRecord Record(uint32_t m, uint64_t id, Micros arrival_us, int status) const {
    const Model& model = models_[m];
    metering::InvocationRecord r;
    r.model = model.config().name;
    r.request_id = id;
    r.arrival_wall_us = Wall(arrival_us);
    r.latency_us = now_ - arrival_us;
    r.http_status = status;
    r.memory_mb = model.config().memory_mb;
    return r;
  }

  // As the runtime records a request failed before an answer: queued, its
  // whole latency is queue time; on an instance, a share of one row.
  void RecordFailure(uint32_t m, const Action& a) {
    if (a.status.code() == StatusCode::kDeadlineExceeded) ++result_.deadline_504;
    metering::InvocationRecord r = Record(m, a.request_ids.at(0), a.arrival_us, HttpStatusFor(a.status.code()));
    if (a.instance_id != 0) {
      r.instance_id = a.instance_id;
      r.batch_rows = 1;
      r.batch_requests = 1;
      r.share = 1;
      r.start_path = PathOf(a.instance_id);
    } else {
      r.queue_us = r.latency_us;
    }
    Record(metering::UsageRecord(std::move(r)));
  }

  std::string PathOf(uint64_t instance_id) const {
    auto it = instance_paths_.find(instance_id);
    return it == instance_paths_.end() ? "" : it->second;
  }

  void RecordStop(uint32_t m, const Action& a) {
    Model& model = models_[m];
    --model.live_instances;
    starting_.erase(a.instance_id);
    observed_.erase(a.instance_id);
    instance_paths_.erase(a.instance_id);
    result_.busy_instance_s += a.usage.busy_us / 1e6;
    if (!a.usage.provisioned) result_.idle_instance_s += a.usage.idle_us / 1e6;
    Record(metering::UsageRecord(sched::InstanceRecordOf(a, model.config().memory_mb, Wall(now_))));
  }

  void RecordRefused(uint32_t m, uint64_t id, int status) {
    metering::InvocationRecord r = Record(m, id, now_, status);
    r.latency_us = 0;
    Record(metering::UsageRecord(std::move(r)));
  }

  const policy::PriceSheet& prices_;
  SimOptions options_;
  // Every usage record: into this run's stats, and to SimOptions::on_record.
  void Record(metering::UsageRecord record) {
    if (options_.on_record) options_.on_record(record);
    stats_.Add(std::move(record));
  }
  metering::UsageStats stats_;
  std::mt19937_64 rng_;
  sched::Scheduler scheduler_;
  sched::Actions actions_;
  std::vector<Model> models_;
  std::unordered_map<std::string, uint32_t> index_;
  std::unordered_set<uint64_t> starting_;               // instances not ready yet
  struct Idleness {
    Micros since_us = 0;  // when its last execution ended (or it became ready)
    int busy = 0;         // executions in flight
    bool executed = false;
    std::optional<double> smoothed_log_us;  // ModelProfile::SmoothIdle's state
  };
  std::unordered_map<uint64_t, Idleness> idle_since_;   // ready instances
  std::unordered_set<uint64_t> observed_;               // instances whose memory the scheduler was told
  std::unordered_map<uint64_t, std::string> instance_paths_;  // live instances' start paths
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  Micros now_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t next_request_id_ = 1;
  SimResult result_;
};

}  // namespace

StatusOr<SimResult> Simulate(const std::vector<SimModel>& models, const std::vector<SimArrival>& arrivals,
                             const policy::PriceSheet& prices, const SimOptions& options) {
  THAW_RETURN_IF_ERROR(policy::Validate(prices));
  for (const SimModel& m : models) {
    THAW_RETURN_IF_ERROR(ValidateModelConfig(m.config, "model '" + m.config.name + "'"));
    THAW_RETURN_IF_ERROR(m.profile.Validate());
  }
  for (size_t i = 0; i < arrivals.size(); ++i) {
    if (arrivals[i].model >= models.size())
      return InvalidArgument("arrival " + std::to_string(i) + " names model " + std::to_string(arrivals[i].model) +
                             " of " + std::to_string(models.size()));
    if (i && arrivals[i].time_us < arrivals[i - 1].time_us)
      return InvalidArgument("arrivals must be sorted by time (arrival " + std::to_string(i) + ")");
  }
  Sim sim(models, prices, options);
  return sim.Run(arrivals);
}

}  // namespace thaw::sim
