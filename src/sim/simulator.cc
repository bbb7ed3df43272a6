#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <optional>
#include <queue>
#include <random>

#include "policy/admission.h"
#include "policy/autoscaler.h"
#include "policy/batching.h"
#include "policy/keep_alive.h"
#include "policy/provisioned.h"
#include "policy/scaling.h"
#include "settings/policy_options.h"

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
  for (const auto& [path, us] : start_us)
    if (us < 0) return InvalidArgument("profile: start_us." + path + " must be >= 0");
  return Status::Ok();
}

namespace {

constexpr Micros kNever = std::numeric_limits<Micros>::max();

struct Pending {
  uint64_t id = 0;
  Micros arrival_us = 0;
  Micros deadline_us = 0;
  int64_t rows = 1;
};

struct Execution {
  uint64_t id = 0;
  std::vector<Pending> requests;
  int64_t rows = 0;
  Micros start_us = 0;
  Micros compute_us = 0;
};

struct Instance {
  uint64_t id = 0;
  Micros start_us = 0;
  Micros ready_us = kNever;
  bool ready = false;
  std::vector<Execution> running;
  Micros idle_since_us = 0;
  Micros busy_since_us = 0;
  Micros busy_us = 0;
  bool provisioned = false;
  bool replace = false;  // a request on it ran past its deadline: stop when done
};

struct Model {
  explicit Model(const SimModel& m)
      : sim(&m),
        autoscaler(AutoscalerOptionsFor(m.config)),
        keep_alive(KeepAliveOptionsFor(m.config)),
        batcher(BatchingOptionsFor(m.config)) {
    for (const ScheduleWindow& w : m.config.provisioned_schedule)
      schedule.push_back({w.days_mask, w.start_minute, w.end_minute, w.min_instances});
    auto it = m.profile.start_us.find(std::string(StartPathName(m.config.start_path)));
    start_us = it != m.profile.start_us.end() ? it->second : 0;
    start_path = std::string(StartPathName(m.config.start_path));
  }
  const SimModel* sim;
  policy::Autoscaler autoscaler;
  policy::KeepAlivePolicy keep_alive;
  policy::AdaptiveBatcher batcher;
  std::vector<policy::ProvisionedWindow> schedule;
  Micros start_us = 0;
  std::string start_path;
  std::deque<Pending> queue;
  std::vector<Instance> instances;
  bool busy = false;
  bool panicking = false;
  int desired = 0;
  Micros autoscaler_wake_us = kNever;
  Micros batch_wake_us = kNever;
  Micros scheduled_wake_us = kNever;
  int provisioned_instances = 0;
  Micros provisioned_since_us = 0;

  const ModelConfig& config() const { return sim->config; }
  int in_flight_executions() const {
    int n = 0;
    for (const Instance& i : instances) n += static_cast<int>(i.running.size());
    return n;
  }
  int in_flight_requests() const {
    int n = 0;
    for (const Instance& i : instances)
      for (const Execution& e : i.running) n += static_cast<int>(e.requests.size());
    return n;
  }
};

enum class EventKind : uint8_t { kReady, kDone, kWake };

struct Event {
  Micros time_us;
  uint64_t seq;  // ties keep insertion order: deterministic
  EventKind kind;
  uint32_t model;
  uint64_t instance;
  uint64_t execution;
  bool operator>(const Event& o) const { return time_us != o.time_us ? time_us > o.time_us : seq > o.seq; }
};

class Sim {
 public:
  Sim(const std::vector<SimModel>& models, const policy::PriceSheet& prices, const SimOptions& options)
      : prices_(prices), options_(options), stats_(prices.granularity_us), rng_(options.seed) {
    models_.reserve(models.size());
    for (const SimModel& m : models) models_.emplace_back(m);
  }

  SimResult Run(const std::vector<SimArrival>& arrivals) {
    now_ = 0;
    for (uint32_t m = 0; m < models_.size(); ++m) Pump(m);  // provisioned floors start at once
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
      switch (e.kind) {
        case EventKind::kReady: OnReady(e.model, e.instance); break;
        case EventKind::kDone: OnDone(e.model, e.instance, e.execution); break;
        case EventKind::kWake: OnWake(e.model, e.time_us); break;
      }
      // Provisioned floors, keep-alive and pre-warm plans keep scheduling
      // wake-ups forever; once the trace is over and no work is left, stop.
      if (next == arrivals.size() && NoWorkLeft()) break;
    }
    // Close the books: stop every instance, end provisioned intervals.
    for (uint32_t m = 0; m < models_.size(); ++m) {
      Model& model = models_[m];
      while (!model.instances.empty()) StopInstance(m, model.instances.front().id, "end_of_trace");
      UpdateProvisioned(m, 0);
    }
    result_.report = stats_.Report(prices_);
    return std::move(result_);
  }

 private:
  Micros Wall(Micros t) const { return options_.start_wall_us + t; }

  bool NoWorkLeft() const {
    for (const Model& m : models_)
      if (!m.queue.empty() || m.in_flight_executions() > 0) return false;
    for (const Model& m : models_)
      for (const Instance& i : m.instances)
        if (!i.ready) return false;
    return true;
  }

  void Push(Micros t, EventKind kind, uint32_t model, uint64_t instance = 0, uint64_t execution = 0) {
    events_.push({t, next_seq_++, kind, model, instance, execution});
  }

  Instance* FindInstance(Model& model, uint64_t id) {
    for (Instance& i : model.instances)
      if (i.id == id) return &i;
    return nullptr;
  }

  int ProvisionedFloor(const Model& model) const {
    if (model.schedule.empty()) return model.config().min_instances;  // the common case, asked on every event
    return policy::MinInstancesAt(model.schedule, model.config().min_instances, Wall(now_)).min_instances;
  }

  void Arrive(const SimArrival& a) {
    ++result_.requests;
    Model& model = models_[a.model];
    const ModelConfig& c = model.config();
    const uint64_t id = next_request_id_++;
    const Status admitted = policy::Admit(
        {.queued = static_cast<int>(model.queue.size()), .in_flight = model.in_flight_executions()},
        {.max_concurrency = c.max_concurrency, .instance_concurrency = c.instance_concurrency, .max_queue = c.max_queue});
    if (!admitted.ok()) {
      ++result_.rejected_429;
      RecordRefused(a.model, id, HttpStatusFor(admitted.code()));
      return;
    }
    auto deadline = policy::RequestDeadline(now_, c.timeout_ms, std::nullopt);
    model.queue.push_back({id, now_, deadline.ok() ? *deadline : kNever, a.rows});
    model.keep_alive.OnArrival(now_);
    model.batcher.OnArrival(now_, a.rows);
    model.busy = true;
    Pump(a.model);
  }

  void Pump(uint32_t m) {
    Model& model = models_[m];
    const ModelConfig& c = model.config();
    const int per_instance = c.instance_concurrency;
    const bool batching = c.batching != "off";
    model.batch_wake_us = kNever;
    while (!model.queue.empty()) {
      // The runtime's choice: busy instances first, then the most recently idle.
      Instance* best = nullptr;
      int free_slots = 0;
      for (Instance& i : model.instances) {
        if (!i.ready || i.replace || static_cast<int>(i.running.size()) >= per_instance) continue;
        free_slots += per_instance - static_cast<int>(i.running.size());
        if (!best) {
          best = &i;
          continue;
        }
        const bool busy = !i.running.empty(), best_busy = !best->running.empty();
        if (busy != best_busy ? busy : i.idle_since_us > best->idle_since_us) best = &i;
      }
      if (!best) break;
      std::vector<Pending> batch;
      if (!batching) {
        batch.push_back(model.queue.front());
        model.queue.pop_front();
      } else {
        waiting_.clear();
        for (const Pending& p : model.queue) waiting_.push_back({p.id, p.arrival_us, p.deadline_us, p.rows, ""});
        const policy::BatchDecision d = model.batcher.Decide({.now_us = now_, .queue = waiting_, .free_slots = free_slots});
        if (d.dispatch.empty()) {
          if (d.next_wake_us) model.batch_wake_us = *d.next_wake_us;
          break;
        }
        size_t k = 0;
        for (auto it = model.queue.begin(); it != model.queue.end() && k < d.dispatch.size();) {
          if (it->id != d.dispatch[k]) {
            ++it;
            continue;
          }
          batch.push_back(*it);
          it = model.queue.erase(it);
          ++k;
        }
      }
      Dispatch(m, *best, std::move(batch));
    }

    if (model.busy && model.queue.empty() && model.in_flight_executions() == 0) {
      model.busy = false;
      model.keep_alive.OnIdle(now_);
    }
    policy::ModelLoad load;
    load.queued = static_cast<int>(model.queue.size());
    int serving_slots = 0;
    for (const Instance& i : model.instances) {
      if (i.ready) {
        ++load.ready_instances;
        if (!i.replace) {
          load.free_slots += per_instance - static_cast<int>(i.running.size());
          serving_slots += per_instance;
        }
      } else {
        ++load.starting_instances;
      }
    }
    if (batching && !model.queue.empty()) {
      int64_t queued_rows = 0;
      for (const Pending& p : model.queue) queued_rows += p.rows;
      const int64_t batch_rows = c.batching == "fixed" ? c.max_batch_size : model.batcher.TargetBatchSize(now_);
      load.queued = policy::QueuedExecutions(queued_rows, serving_slots, batch_rows);
      load.free_slots = 0;
    }
    const int floor = ProvisionedFloor(model);
    policy::ScalingLimits limits{.min_instances = floor, .max_instances = c.max_concurrency, .instance_concurrency = per_instance};
    int to_start = policy::InstancesToStart(load, limits);
    const int concurrency = model.in_flight_executions() + load.queued;
    const policy::AutoscaleDecision scale =
        model.autoscaler.Update({.now_us = now_, .concurrency = concurrency, .ready_instances = load.ready_instances});
    model.panicking = scale.panicking;
    model.desired = scale.desired_instances;
    model.autoscaler_wake_us = scale.panicking && scale.next_wake_us ? *scale.next_wake_us : kNever;
    if (concurrency > 0 || scale.panicking) {
      const int live = load.ready_instances + load.starting_instances;
      to_start = std::max(to_start, std::min(scale.desired_instances, c.max_concurrency) - live);
    }
    for (int i = 0; i < to_start; ++i) StartInstance(m);
    UpdateProvisioned(m, floor);
    Reschedule(m);
  }

  policy::KeepAliveActions KeepAliveActionsFor(const Model& model) const {
    idle_.clear();
    for (const Instance& i : model.instances)
      if (i.ready && i.running.empty()) idle_.push_back({i.id, i.idle_since_us});
    const int floor = std::max(ProvisionedFloor(model), model.panicking ? model.desired : 0);
    return model.keep_alive.Decide(idle_, static_cast<int>(model.instances.size()), floor, now_);
  }

  void Reschedule(uint32_t m) {
    Model& model = models_[m];
    Micros wake = kNever;
    for (const Pending& p : model.queue) wake = std::min(wake, p.deadline_us);
    wake = std::min(wake, model.batch_wake_us);
    wake = std::min(wake, model.autoscaler_wake_us);
    const policy::KeepAliveActions actions = KeepAliveActionsFor(model);
    if (!actions.stop.empty() || actions.prewarm_now) wake = now_;
    if (actions.next_wake_us) wake = std::min(wake, *actions.next_wake_us);
    if (!model.schedule.empty()) {
      const policy::ProvisionedFloor floor = policy::MinInstancesAt(model.schedule, model.config().min_instances, Wall(now_));
      if (floor.next_change_wall_us) wake = std::min(wake, now_ + std::max<Micros>(0, *floor.next_change_wall_us - Wall(now_)));
    }
    // One pending wake-up per model, as the runtime's one timer: a new plan
    // supersedes the old event, which is ignored when it comes.
    const Micros at = wake == kNever ? kNever : std::max(wake, now_);
    if (at == model.scheduled_wake_us) return;
    model.scheduled_wake_us = at;
    if (at != kNever) Push(at, EventKind::kWake, m);
  }

  void OnWake(uint32_t m, Micros scheduled) {
    Model& model = models_[m];
    if (scheduled != model.scheduled_wake_us) return;  // superseded
    model.scheduled_wake_us = kNever;
    // Queued past the deadline: 504, never run.
    std::vector<policy::QueuedRequest> queued;
    for (const Pending& p : model.queue) queued.push_back({p.id, p.deadline_us});
    const policy::ExpiryScan expiry = policy::ExpiredRequests(queued, now_);
    for (uint64_t id : expiry.expired) {
      auto it = std::find_if(model.queue.begin(), model.queue.end(), [&](const Pending& p) { return p.id == id; });
      ++result_.deadline_504;
      RecordAnswer(m, *it, nullptr, nullptr, 504, now_);
      model.queue.erase(it);
    }
    const policy::KeepAliveActions actions = KeepAliveActionsFor(model);
    for (uint64_t id : actions.stop) StopInstance(m, id, "keep_alive");
    if (actions.prewarm_now) StartInstance(m);
    Pump(m);
  }

  void StartInstance(uint32_t m) {
    Model& model = models_[m];
    Instance i;
    i.id = next_instance_id_++;
    i.start_us = now_;
    i.provisioned = static_cast<int>(model.instances.size()) < ProvisionedFloor(model);
    model.instances.push_back(i);
    result_.max_instances = std::max(result_.max_instances, static_cast<int>(model.instances.size()));
    Push(now_ + model.start_us, EventKind::kReady, m, i.id);
  }

  void OnReady(uint32_t m, uint64_t id) {
    Model& model = models_[m];
    Instance* i = FindInstance(model, id);
    if (!i) return;
    i->ready = true;
    i->ready_us = now_;
    i->idle_since_us = now_;
    Pump(m);
  }

  // The profile's table holds medians, so both draws keep the median.
  Micros DrawExecUs(const Model& model, int64_t rows) {
    const ModelProfile& profile = model.sim->profile;
    const double median = static_cast<double>(profile.ExecUs(rows));
    double factor = 1.0;
    if (!profile.exec_spread.empty()) {
      factor = profile.SpreadAt(static_cast<double>(rng_() >> 11) * 0x1.0p-53);
    } else if (profile.exec_cv > 0) {
      std::normal_distribution<double> normal(0, std::sqrt(std::log1p(profile.exec_cv * profile.exec_cv)));
      factor = std::exp(normal(rng_));
    }
    return std::max<Micros>(1, static_cast<Micros>(std::llround(median * factor)));
  }

  void Dispatch(uint32_t m, Instance& instance, std::vector<Pending> batch) {
    Model& model = models_[m];
    Execution e;
    e.id = next_execution_id_++;
    e.start_us = now_;
    for (const Pending& p : batch) e.rows += p.rows;
    e.compute_us = DrawExecUs(model, e.rows);
    e.requests = std::move(batch);
    if (instance.running.empty()) instance.busy_since_us = now_;
    Push(now_ + e.compute_us, EventKind::kDone, m, instance.id, e.id);
    instance.running.push_back(std::move(e));
  }

  void OnDone(uint32_t m, uint64_t instance_id, uint64_t execution_id) {
    Model& model = models_[m];
    Instance* instance = FindInstance(model, instance_id);
    if (!instance) return;
    auto it = std::find_if(instance->running.begin(), instance->running.end(),
                           [&](const Execution& e) { return e.id == execution_id; });
    if (it == instance->running.end()) return;
    Execution e = std::move(*it);
    instance->running.erase(it);
    if (instance->running.empty()) {
      instance->idle_since_us = now_;
      instance->busy_us += now_ - instance->busy_since_us;
    }
    if (model.config().instance_concurrency == 1) model.batcher.OnBatchDone(e.rows, e.compute_us);
    for (const Pending& p : e.requests) {
      // Past its deadline: the runtime answers 504 at the deadline and replaces the instance.
      if (now_ > p.deadline_us) {
        ++result_.deadline_504;
        instance->replace = true;
        RecordAnswer(m, p, instance, &e, 504, p.deadline_us);
      } else {
        RecordAnswer(m, p, instance, &e, 200, now_);
      }
    }
    if (instance->replace && instance->running.empty()) StopInstance(m, instance_id, "timeout");
    Pump(m);
  }

  void StopInstance(uint32_t m, uint64_t id, const char* reason) {
    Model& model = models_[m];
    auto it = std::find_if(model.instances.begin(), model.instances.end(), [&](const Instance& i) { return i.id == id; });
    if (it == model.instances.end()) return;
    Instance& i = *it;
    for (Execution& e : i.running)
      for (const Pending& p : e.requests) RecordAnswer(m, p, &i, &e, 503, now_);
    metering::InstanceRecord r;
    r.model = model.config().name;
    r.instance_id = i.id;
    r.start_path = model.start_path;
    r.memory_mb = model.config().memory_mb;
    r.start_wall_us = Wall(i.start_us);
    r.stop_wall_us = Wall(now_);
    const Micros lifetime = now_ - i.start_us;
    r.init_us = i.ready ? i.ready_us - i.start_us : lifetime;
    r.busy_us = i.busy_us + (i.running.empty() ? 0 : now_ - i.busy_since_us);
    r.idle_us = std::max<Micros>(0, lifetime - r.init_us - r.busy_us);
    r.provisioned = i.provisioned;
    r.stop_reason = reason;
    result_.busy_instance_s += r.busy_us / 1e6;
    if (!i.provisioned) result_.idle_instance_s += r.idle_us / 1e6;
    stats_.Add(metering::UsageRecord(std::move(r)));
    model.instances.erase(it);
  }

  void UpdateProvisioned(uint32_t m, int instances) {
    Model& model = models_[m];
    if (instances == model.provisioned_instances) return;
    if (model.provisioned_instances > 0) {
      result_.provisioned_instance_s += model.provisioned_instances * (now_ - model.provisioned_since_us) / 1e6;
      stats_.Add(metering::UsageRecord(metering::ProvisionedRecord{.model = model.config().name,
                                                                   .memory_mb = model.config().memory_mb,
                                                                   .instances = model.provisioned_instances,
                                                                   .start_wall_us = Wall(model.provisioned_since_us),
                                                                   .end_wall_us = Wall(now_)}));
    }
    model.provisioned_instances = instances;
    model.provisioned_since_us = now_;
  }

  void RecordRefused(uint32_t m, uint64_t id, int status) {
    const Model& model = models_[m];
    metering::InvocationRecord r;
    r.model = model.config().name;
    r.request_id = id;
    r.arrival_wall_us = Wall(now_);
    r.http_status = status;
    r.memory_mb = model.config().memory_mb;
    stats_.Add(metering::UsageRecord(std::move(r)));
  }

  void RecordAnswer(uint32_t m, const Pending& p, const Instance* instance, const Execution* e, int status, Micros at) {
    const Model& model = models_[m];
    metering::InvocationRecord r;
    r.model = model.config().name;
    r.request_id = p.id;
    r.arrival_wall_us = Wall(p.arrival_us);
    r.latency_us = at - p.arrival_us;
    r.http_status = status;
    r.memory_mb = model.config().memory_mb;
    if (instance && e) {
      r.instance_id = instance->id;
      r.queue_us = e->start_us - p.arrival_us;
      r.compute_us = e->compute_us;
      r.batch_rows = e->rows;
      r.batch_requests = static_cast<int>(e->requests.size());
      r.share = static_cast<double>(p.rows) / static_cast<double>(std::max<int64_t>(1, e->rows));
      r.cold_start = instance->ready_us > p.arrival_us;
      if (r.cold_start) {
        r.init_us = instance->ready_us - instance->start_us;
        ++result_.cold_starts;
      }
      r.provisioned = instance->provisioned;
      r.start_path = model.start_path;
    } else {
      r.queue_us = r.latency_us;
    }
    stats_.Add(metering::UsageRecord(std::move(r)));
  }

  const policy::PriceSheet& prices_;
  SimOptions options_;
  metering::UsageStats stats_;
  std::mt19937_64 rng_;
  std::vector<Model> models_;
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events_;
  Micros now_ = 0;
  uint64_t next_seq_ = 0;
  uint64_t next_request_id_ = 1;
  uint64_t next_instance_id_ = 1;
  uint64_t next_execution_id_ = 1;
  std::vector<policy::BatchRequest> waiting_;
  mutable std::vector<policy::IdleInstance> idle_;
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
