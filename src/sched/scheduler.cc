#include "sched/scheduler.h"

#include <algorithm>

#include "base/log.h"
#include "policy/admission.h"
#include "policy/scaling.h"
#include "settings/policy_options.h"

namespace thaw::sched {

namespace {

// A map from increasing ids to values in a sorted vector: ids come from
// counters, so emplace appends; lookups are binary searches and iteration
// (by id, as std::map would) walks contiguous memory. A model has a few
// instances and an instance a few executions, looked at on every event.
template <class T>
class IdMap {
 public:
  using value_type = std::pair<uint64_t, T>;
  using iterator = typename std::vector<value_type>::iterator;
  using const_iterator = typename std::vector<value_type>::const_iterator;

  iterator begin() { return items_.begin(); }
  iterator end() { return items_.end(); }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }

  iterator find(uint64_t id) {
    auto it = std::lower_bound(items_.begin(), items_.end(), id, [](const value_type& v, uint64_t k) { return v.first < k; });
    return it != items_.end() && it->first == id ? it : items_.end();
  }
  const_iterator find(uint64_t id) const { return const_cast<IdMap*>(this)->find(id); }
  void emplace(uint64_t id, T value) {
    auto it = std::lower_bound(items_.begin(), items_.end(), id, [](const value_type& v, uint64_t k) { return v.first < k; });
    items_.emplace(it, id, std::move(value));
  }
  void erase(iterator it) { items_.erase(it); }
  size_t erase(uint64_t id) {
    auto it = find(id);
    if (it == items_.end()) return 0;
    items_.erase(it);
    return 1;
  }

 private:
  std::vector<value_type> items_;
};

struct Execution {
  uint64_t id = 0;
  std::vector<Completion::Item> requests;  // in dispatch order
  int64_t rows = 0;
  Micros dispatched_us = 0;
};

std::string StartTimeoutMessage(const ModelConfig& config) {
  return "instance of model '" + config.name + "' did not become ready within start_timeout_ms=" +
         std::to_string(config.start_timeout_ms);
}

}  // namespace

struct Scheduler::Instance {
  uint64_t id = 0;
  StartPath path = StartPath::kExec;
  uint64_t generation = 0;
  bool ready = false;
  bool provisioned = false;
  Micros start_us = 0;
  Micros start_wall_us = 0;
  Micros ready_us = 0;
  Micros idle_since_us = 0;
  Micros slot_free_since_us = 0;  // when it last had a slot free after being full (or became ready)
  Micros busy_since_us = 0;
  Micros busy_us = 0;
  IdMap<Execution> in_flight;  // by execution id

  int in_flight_requests() const {
    int n = 0;
    for (const auto& [id, e] : in_flight) n += static_cast<int>(e.requests.size());
    return n;
  }
};

struct Scheduler::Model {
  explicit Model(const ModelConfig& c)
      : config(c),
        autoscaler(AutoscalerOptionsFor(c)),
        keep_alive(KeepAliveOptionsFor(c)),
        batcher(BatchingOptionsFor(c)) {
    SetSchedule();
  }
  void SetSchedule() { schedule = ProvisionedWindowsFor(config); }

  ModelConfig config;
  std::vector<policy::ProvisionedWindow> schedule;
  std::deque<Request> queue;
  IdMap<Instance> instances;
  policy::Autoscaler autoscaler;
  policy::KeepAlivePolicy keep_alive;
  policy::AdaptiveBatcher batcher;
  uint64_t generation = 0;
  bool busy = false;  // requests in flight or queued: not in an idle period
  bool panicking = false;
  int desired = 0;
  Micros autoscaler_wake_us = kNever;
  Micros batch_wake_us = kNever;
  Micros scheduled_wake_us = kNever;
  TemplateState template_state = TemplateState::kNone;
  bool template_waiting = false;      // wanted while every template start slot was taken
  int calls_in_window = 0;            // calls, each within template_keep_alive_s of the one before
  Micros last_call_us = -1;
  bool template_standby = false;      // the live template keeps a standby
  int64_t instance_peak_mb = 0;       // highest observed charge of an instance (0: none yet)
  int64_t template_peak_mb = 0;       // of a template, without its standby
  std::map<StartPath, Micros> start_to_ready_us;  // last measured, by path
  Micros template_wanted_us = 0;      // last arrival, start or pre-warm (monotonic)
  Micros template_held_since_wall_us = 0;
  Micros template_retry_after_us = 0;  // after a template that never got ready
  Micros template_retry_backoff_us = kMinStartRetryUs;
  int provisioned_instances = 0;
  Micros provisioned_since_wall_us = 0;
  std::string last_start_error;
  Micros start_retry_after_us = 0;
  Micros start_retry_backoff_us = kMinStartRetryUs;
  std::vector<policy::BatchRequest> waiting;  // scratch for the batcher

  bool batching() const { return config.batching != Batching::kOff; }
  int in_flight_executions() const {
    int n = 0;
    for (const auto& [id, i] : instances) n += static_cast<int>(i.in_flight.size());
    return n;
  }
  int in_flight_requests() const {
    int n = 0;
    for (const auto& [id, i] : instances) n += i.in_flight_requests();
    return n;
  }
  bool can_serve() const {
    for (const auto& [id, i] : instances)
      if (i.ready && i.generation == generation) return true;
    return false;
  }
};

namespace {

InstanceView ViewOf(const auto& instance, uint64_t generation) {
  InstanceView v;
  v.id = instance.id;
  v.path = instance.path;
  v.ready = instance.ready;
  v.retiring = instance.generation != generation;
  v.in_flight_requests = instance.in_flight_requests();
  v.executions = static_cast<int>(instance.in_flight.size());
  v.start_us = instance.start_us;
  v.ready_us = instance.ready_us;
  v.idle_since_us = instance.idle_since_us;
  v.provisioned = instance.provisioned;
  return v;
}

Action Fail(const std::string& model, uint64_t request_id, Micros arrival_us, uint64_t instance_id, Status status) {
  Action a;
  a.kind = Action::Kind::kFail;
  a.model = model;
  a.request_ids = {request_id};
  a.arrival_us = arrival_us;
  a.instance_id = instance_id;
  a.status = std::move(status);
  return a;
}

Action Notice(const std::string& model, std::string event, std::string detail) {
  Action a;
  a.kind = Action::Kind::kNotice;
  a.model = model;
  a.reason = std::move(event);
  a.detail = std::move(detail);
  return a;
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options)
    : options_(options), keep_alive_pool_({.pooled = options.keep_alive_pool}) {}
Scheduler::~Scheduler() = default;

Scheduler::Model* Scheduler::Find(std::string_view model) {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.get();
}

const Scheduler::Model* Scheduler::Find(std::string_view model) const {
  auto it = models_.find(model);
  return it == models_.end() ? nullptr : it->second.get();
}

Status Scheduler::AddModel(const ModelConfig& config, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kAddModel, .now = now, .model = config.name, .config = config});
  if (models_.count(config.name)) return InvalidArgument("model '" + config.name + "' is already loaded");
  THAW_RETURN_IF_ERROR(ValidatePolicyOptions(config));
  Model& model = *models_.emplace(config.name, std::make_unique<Model>(config)).first->second;
  Pump(model, now, out);
  return Status::Ok();
}

Status Scheduler::UpdateModel(const ModelConfig& config, bool replace_workers, std::string_view reason, Now now,
                              Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kUpdateModel, .now = now, .model = config.name, .config = config, .flag = replace_workers,
       .text = std::string(reason)});
  Model* found = Find(config.name);
  if (!found) return NotFound("model '" + config.name + "' is not loaded");
  THAW_RETURN_IF_ERROR(ValidatePolicyOptions(config));
  Model& model = *found;
  model.config = config;
  model.SetSchedule();
  model.autoscaler = policy::Autoscaler(AutoscalerOptionsFor(config));
  model.keep_alive = policy::KeepAlivePolicy(KeepAliveOptionsFor(config));
  model.batcher = policy::AdaptiveBatcher(BatchingOptionsFor(config));
  if (replace_workers) {
    ++model.generation;
    // Starts under the old settings are abandoned, not counted as failures:
    // they would only be retired once ready, holding max_concurrency slots.
    std::vector<uint64_t> starting, idle;
    for (const auto& [id, instance] : model.instances) {
      if (!instance.ready) starting.push_back(id);
      else if (instance.in_flight.empty()) idle.push_back(id);
    }
    for (uint64_t id : starting) StopInstance(model, id, reason, false, Status::Ok(), now, out);
    for (uint64_t id : idle) StopInstance(model, id, reason, false, Status::Ok(), now, out);
    // The template holds the old settings; a new one starts if it is still wanted.
    const bool had_template = model.template_state != TemplateState::kNone;
    StopTemplate(model, reason, now, out);
    // What was measured ran the old settings.
    model.instance_peak_mb = 0;
    model.template_peak_mb = 0;
    model.start_to_ready_us.clear();
    model.template_retry_after_us = 0;
    model.template_retry_backoff_us = kMinStartRetryUs;
    if (had_template && HoldTemplate(model, now)) StartTemplate(model, now, out);
    model.last_start_error.clear();
    model.start_retry_after_us = 0;
    model.start_retry_backoff_us = kMinStartRetryUs;
  }
  Pump(model, now, out);
  return Status::Ok();
}

Status Scheduler::RemoveModel(std::string_view name, const Status& status, std::string_view reason, Now now,
                              Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kRemoveModel, .now = now, .model = std::string(name), .text = std::string(reason),
       .status = status});
  Model* found = Find(name);
  if (!found) return NotFound("model '" + std::string(name) + "' is not loaded");
  Model& model = *found;
  UpdateProvisioned(model, 0, now, out);
  StopTemplate(model, reason, now, out);
  FailQueued(model, status, now, out);
  std::vector<uint64_t> ids;
  for (const auto& [id, instance] : model.instances) ids.push_back(id);
  for (uint64_t id : ids) StopInstance(model, id, reason, false, status, now, out);
  if (model.scheduled_wake_us != kNever) {
    Action wake;
    wake.kind = Action::Kind::kWake;
    wake.model = model.config.name;
    wake.at_us = kNever;
    out->push_back(std::move(wake));
  }
  models_.erase(models_.find(name));
  return Status::Ok();
}

Status Scheduler::Arrive(std::string_view name, Request request, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kArrive, .now = now, .model = std::string(name), .request = request});
  Model* found = Find(name);
  if (!found) return NotFound("model '" + std::string(name) + "' is not loaded");
  Model& model = *found;
  // Requests beyond the instance slots the model may ever have wait in the
  // queue, up to max_queue; past that the caller is told to retry later.
  const Status admitted = policy::Admit(
      {.queued = static_cast<int>(model.queue.size()), .in_flight = model.in_flight_executions()},
      AdmissionOptionsFor(model.config));
  if (!admitted.ok()) return Status(admitted.code(), "model '" + model.config.name + "': " + admitted.message());
  const int64_t rows = request.rows;
  model.queue.push_back(std::move(request));
  // Whether an adaptive plan timed this arrival (the idle period it ends had one).
  const bool planned = model.keep_alive.plan() && model.keep_alive.plan()->source == policy::PlanSource::kAdaptive;
  model.keep_alive.OnArrival(now.mono_us);
  model.batcher.OnArrival(now.mono_us, rows);
  model.busy = true;
  const Micros window_us = TemplateCacheOptionsFor(model.config).keep_alive_us;
  model.calls_in_window = model.last_call_us >= 0 && now.mono_us - model.last_call_us <= window_us
                              ? model.calls_in_window + 1
                              : 1;
  model.last_call_us = now.mono_us;
  Pump(model, now, out);
  // A called model is hot: its template is held (started if need be, after
  // any instance this arrival started, which needs the memory first), once
  // it has been called template_admit_calls times in a row. Except for an
  // arrival an adaptive keep-alive plan timed and a warm instance took at
  // once: the plan holds no template between its windows, and restarting
  // one for every such call would only churn.
  if (model.config.start_path == StartPath::kTemplate) {
    if (planned && model.queue.empty()) {
      model.template_wanted_us = now.mono_us;
    } else {
      WantTemplate(model, now, out);
    }
    Reschedule(model, now, out);
  }
  return Status::Ok();
}

void Scheduler::InstanceReady(std::string_view name, uint64_t instance_id, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kInstanceReady, .now = now, .model = std::string(name), .instance_id = instance_id});
  Model* model = Find(name);
  if (!model) return;
  auto it = model->instances.find(instance_id);
  if (it == model->instances.end() || it->second.ready) return;
  Instance& instance = it->second;
  instance.ready = true;
  instance.ready_us = now.mono_us;
  model->start_to_ready_us[instance.path] = now.mono_us - instance.start_us;
  instance.idle_since_us = now.mono_us;
  instance.slot_free_since_us = now.mono_us;
  model->last_start_error.clear();
  model->start_retry_backoff_us = kMinStartRetryUs;
  // Started under settings since replaced: it takes no work, so it goes
  // now rather than hold a max_concurrency slot until keep-alive.
  if (instance.generation != model->generation)
    StopInstance(*model, instance_id, "config_changed", false, Status::Ok(), now, out);
  Pump(*model, now, out);
}

std::optional<Completion> Scheduler::ExecutionDone(std::string_view name, uint64_t instance_id, uint64_t execution_id,
                                                   Micros round_trip_us, bool ok, Now now, Actions* out) {
  if (options_.log)
    Log({.kind = Event::Kind::kExecutionDone, .now = now, .model = std::string(name), .flag = ok,
         .instance_id = instance_id, .execution_id = execution_id, .round_trip_us = round_trip_us});
  Model* model = Find(name);
  if (!model) return std::nullopt;
  auto it = model->instances.find(instance_id);
  if (it == model->instances.end()) return std::nullopt;
  Instance& instance = it->second;
  auto e = instance.in_flight.find(execution_id);
  if (e == instance.in_flight.end()) return std::nullopt;
  Completion done;
  done.requests = std::move(e->second.requests);
  done.rows = e->second.rows;
  done.dispatched_us = e->second.dispatched_us;
  instance.in_flight.erase(e);
  instance.slot_free_since_us = now.mono_us;
  if (instance.in_flight.empty()) {
    instance.idle_since_us = now.mono_us;
    instance.busy_us += now.mono_us - instance.busy_since_us;
  }
  done.instance = ViewOf(instance, model->generation);
  // What the batcher learns is the whole round trip, not only the backend's
  // time: per-call overhead (IPC, decoding) is what batching saves.
  if (ok && model->config.instance_concurrency == 1) model->batcher.OnBatchDone(done.rows, round_trip_us);
  if (instance.in_flight.empty() && instance.generation != model->generation)
    StopInstance(*model, instance_id, "config_changed", false, Status::Ok(), now, out);
  Pump(*model, now, out);
  return done;
}

void Scheduler::NoteFailedStart(Model& model, Now now) {
  model.start_retry_after_us = now.mono_us + model.start_retry_backoff_us;
  model.start_retry_backoff_us = std::min(kMaxStartRetryUs, model.start_retry_backoff_us * 2);
}

void Scheduler::InstanceGone(std::string_view name, uint64_t instance_id, GoneKind kind, const Status& in_flight_status,
                             std::string_view start_error, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kInstanceGone, .now = now, .model = std::string(name), .text = std::string(start_error),
       .status = in_flight_status, .instance_id = instance_id, .gone = kind});
  Model* model = Find(name);
  if (!model) return;
  auto it = model->instances.find(instance_id);
  if (it == model->instances.end()) return;
  const bool was_ready = it->second.ready;
  if (!was_ready) {
    if (!start_error.empty()) model->last_start_error = std::string(start_error);
    if (model->last_start_error.empty()) model->last_start_error = "worker exited before it was ready";
    NoteFailedStart(*model, now);
  }
  const char* reason = kind == GoneKind::kOom             ? "oom"
                       : kind == GoneKind::kProtocolError ? "protocol_error"
                       : was_ready                        ? "crashed"
                                                          : "start_failed";
  StopInstance(*model, instance_id, reason, true, in_flight_status, now, out);
  if (!was_ready && model->instances.empty())
    FailQueued(*model, Unavailable("model '" + model->config.name + "' failed to start: " + model->last_start_error), now,
               out);
  Pump(*model, now, out);
}

void Scheduler::StartFailed(std::string_view name, uint64_t instance_id, const std::string& error, Now now,
                            Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kStartFailed, .now = now, .model = std::string(name), .text = error, .instance_id = instance_id});
  Model* model = Find(name);
  if (!model) return;
  model->last_start_error = error;
  if (model->instances.erase(instance_id)) NoteFailedStart(*model, now);
  if (!model->can_serve()) FailQueued(*model, Unavailable(error), now, out);
  Pump(*model, now, out);
}

void Scheduler::Wake(std::string_view name, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kWake, .now = now, .model = std::string(name)});
  Model* found = Find(name);
  if (!found) return;
  Model& model = *found;
  model.scheduled_wake_us = kNever;
  // Queued past the deadline: fail without running.
  std::vector<policy::QueuedRequest> queued;
  for (const Request& r : model.queue) queued.push_back({r.id, r.deadline_us});
  const policy::ExpiryScan expiry = policy::ExpiredRequests(queued, now.mono_us);
  for (uint64_t expired_id : expiry.expired) {
    auto it = std::find_if(model.queue.begin(), model.queue.end(), [&](const Request& r) { return r.id == expired_id; });
    out->push_back(Fail(model.config.name, expired_id, it->arrival_us, 0,
                        DeadlineExceeded("request waited " + MillisText(now.mono_us - it->arrival_us) +
                                         " ms in the queue of model '" + model.config.name +
                                         "' and reached its deadline before running")));
    model.queue.erase(it);
  }
  // Running past the deadline: fail those requests and replace the instance.
  std::vector<uint64_t> timed_out;
  for (auto& [id, instance] : model.instances) {
    bool expired_here = false;
    for (auto& [eid, execution] : instance.in_flight) {
      for (size_t i = 0; i < execution.requests.size();) {
        if (execution.requests[i].deadline_us > now.mono_us) {
          ++i;
          continue;
        }
        out->push_back(Fail(model.config.name, execution.requests[i].id, execution.requests[i].arrival_us, id,
                            DeadlineExceeded("model '" + model.config.name +
                                             "' did not answer within the request's deadline (timeout_ms=" +
                                             std::to_string(model.config.timeout_ms) + ")")));
        execution.requests.erase(execution.requests.begin() + static_cast<std::ptrdiff_t>(i));
        expired_here = true;
      }
    }
    if (expired_here) timed_out.push_back(id);
  }
  for (uint64_t id : timed_out)
    StopInstance(model, id, "timeout", true, Unavailable("instance was replaced after another request timed out"), now,
                 out);
  CheckStartDeadlines(model, now, out);

  if (model.template_state != TemplateState::kNone && !HoldTemplate(model, now))
    StopTemplate(model, "keep_alive", now, out);
  const policy::KeepAliveActions actions = KeepAliveActionsFor(model, now);
  for (uint64_t id : actions.stop) StopInstance(model, id, "keep_alive", false, Status::Ok(), now, out);
  if (actions.prewarm_now) {
    out->push_back(Notice(model.config.name, "keep_alive_prewarm", ""));
    // The pre-warm's lead hides its start, so it does not want the template:
    // the arrival it waits for will, if that arrival comes.
    StartInstance(model, now, out, /*want_template=*/false);
  }
  Pump(model, now, out);
}

void Scheduler::CheckStartDeadlines(Model& model, Now now, Actions* out) {
  const Micros timeout_us = model.config.start_timeout_ms * kMicrosPerMilli;
  std::vector<uint64_t> overdue;
  for (const auto& [id, instance] : model.instances)
    if (!instance.ready && now.mono_us >= instance.start_us + timeout_us) overdue.push_back(id);
  if (overdue.empty()) return;
  const std::string message = StartTimeoutMessage(model.config);
  model.last_start_error = message;
  NoteFailedStart(model, now);
  for (uint64_t id : overdue) StopInstance(model, id, "start_timeout", true, Unavailable(message), now, out);
  if (!model.can_serve()) FailQueued(model, Unavailable(message), now, out);
}

StatusOr<int> Scheduler::Warm(std::string_view name, int instances, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kWarm, .now = now, .model = std::string(name), .count = instances});
  Model* model = Find(name);
  if (!model) return NotFound("model '" + std::string(name) + "' is not loaded");
  if (instances < 0) return InvalidArgument("instances must be >= 0");
  const int target = std::min(instances, model->config.max_concurrency);
  int started = 0;
  for (int live = static_cast<int>(model->instances.size()); live < target; ++live) {
    const size_t before = model->instances.size();
    StartInstance(*model, now, out);
    if (model->instances.size() == before) break;  // refused: no memory
    ++started;
  }
  if (instances > 0) WantTemplate(*model, now, out, /*admit=*/true);  // pre-warmed: predicted hot
  Reschedule(*model, now, out);
  return started;
}

void Scheduler::FlushProvisioned(Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kFlushProvisioned, .now = now});
  for (auto& [name, model] : models_) {
    if (model->provisioned_instances > 0) UpdateProvisioned(*model, model->provisioned_instances, now, out, true);
    CloseHeld(*model, now, out);
  }
}

void Scheduler::SetStartError(std::string_view name, std::string error) {
  if (options_.log) Log({.kind = Event::Kind::kSetStartError, .model = std::string(name), .text = error});
  if (Model* model = Find(name)) model->last_start_error = std::move(error);
}

void Scheduler::StartSucceeded(std::string_view name) {
  if (options_.log) Log({.kind = Event::Kind::kStartSucceeded, .model = std::string(name)});
  if (Model* model = Find(name)) {
    model->last_start_error.clear();
    model->start_retry_backoff_us = kMinStartRetryUs;
  }
}

void Scheduler::TemplateReady(std::string_view name, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kTemplateReady, .now = now, .model = std::string(name)});
  Model* model = Find(name);
  if (!model || model->template_state != TemplateState::kStarting) return;
  model->template_state = TemplateState::kReady;
  --starting_templates_;
  model->template_retry_backoff_us = kMinStartRetryUs;
  Pump(*model, now, out);
  StartWaitingTemplates(now, out);
}

void Scheduler::TemplateGone(std::string_view name, const std::string& error, Now now, Actions* out) {
  if (options_.log) Log({.kind = Event::Kind::kTemplateGone, .now = now, .model = std::string(name), .text = error});
  Model* model = Find(name);
  if (!model || model->template_state == TemplateState::kNone) return;
  if (model->template_state == TemplateState::kStarting) {
    // Not retried on every request while it keeps failing; starts use the zygote meanwhile.
    model->template_retry_after_us = now.mono_us + model->template_retry_backoff_us;
    model->template_retry_backoff_us = std::min(kMaxStartRetryUs, model->template_retry_backoff_us * 2);
  }
  CloseHeld(*model, now, out);
  if (model->template_state == TemplateState::kStarting) --starting_templates_;
  model->template_state = TemplateState::kNone;
  out->push_back(Notice(model->config.name, "template_gone", LogFields({{"error", LogValue(error)}})));
  Pump(*model, now, out);
  StartWaitingTemplates(now, out);
}

Scheduler::TemplateState Scheduler::TemplateStateOf(std::string_view name) const {
  const Model* model = Find(name);
  return model ? model->template_state : TemplateState::kNone;
}

policy::TemplateCacheDecision Scheduler::TemplateDecision(const Model& model, Now now) const {
  return policy::DecideTemplate({.last_wanted_us = model.template_wanted_us,
                                 .provisioned_floor = ProvisionedMinimum(model, now).min_instances,
                                 .keep_alive_release_at_us = model.keep_alive.TemplateReleaseAt(now.mono_us)},
                                TemplateCacheOptionsFor(model.config), now.mono_us);
}

bool Scheduler::HoldTemplate(const Model& model, Now now) const {
  return model.config.start_path == StartPath::kTemplate && TemplateDecision(model, now).hold;
}

void Scheduler::WantTemplate(Model& model, Now now, Actions* out, bool admit) {
  if (model.config.start_path != StartPath::kTemplate) return;
  model.template_wanted_us = now.mono_us;
  admit = admit || model.calls_in_window >= options_.template_admit_calls;
  if (admit && model.template_state == TemplateState::kNone && now.mono_us >= model.template_retry_after_us)
    StartTemplate(model, now, out);
}

void Scheduler::StartTemplate(Model& model, Now now, Actions* out) {
  if (model.template_state != TemplateState::kNone || model.config.start_path != StartPath::kTemplate) return;
  if (options_.max_starting_templates > 0 && starting_templates_ >= options_.max_starting_templates) {
    model.template_waiting = true;  // StartWaitingTemplates, when a start ends, if still wanted
    return;
  }
  model.template_waiting = false;
  const int64_t need_mb = TemplateCharge(model, model.config.template_standby);
  if (Status room = ReserveMemory(model, need_mb, /*for_template=*/true, now, out); !room.ok()) {
    // Instances still start, from the zygote; not asked again at every request.
    out->push_back(Notice(model.config.name, "template_start_refused", LogFields({{"error", LogValue(room.message())}})));
    model.template_retry_after_us = now.mono_us + kMinStartRetryUs;
    return;
  }
  model.template_state = TemplateState::kStarting;
  ++starting_templates_;
  model.template_standby = model.config.template_standby;
  model.template_held_since_wall_us = now.wall_us;
  Action start;
  start.kind = Action::Kind::kStartTemplate;
  start.model = model.config.name;
  start.standby = model.template_standby;
  out->push_back(std::move(start));
}

void Scheduler::StopTemplate(Model& model, std::string_view reason, Now now, Actions* out) {
  if (model.template_state == TemplateState::kNone) return;
  CloseHeld(model, now, out);
  // A freed start slot goes to a waiting template at the next TemplateReady
  // or TemplateGone, not here: this runs inside other models' starts.
  if (model.template_state == TemplateState::kStarting) --starting_templates_;
  model.template_state = TemplateState::kNone;
  Action stop;
  stop.kind = Action::Kind::kStopTemplate;
  stop.model = model.config.name;
  stop.reason = std::string(reason);
  out->push_back(std::move(stop));
}

void Scheduler::StartWaitingTemplates(Now now, Actions* out) {
  while (options_.max_starting_templates <= 0 || starting_templates_ < options_.max_starting_templates) {
    Model* next = nullptr;
    for (auto& [name, model] : models_) {
      if (!model->template_waiting) continue;
      if (model->template_state != TemplateState::kNone || !HoldTemplate(*model, now) ||
          now.mono_us < model->template_retry_after_us) {
        model->template_waiting = false;  // no longer wanted (or started meanwhile)
        continue;
      }
      if (!next || model->template_wanted_us > next->template_wanted_us) next = model.get();
    }
    if (!next) return;
    next->template_waiting = false;
    StartTemplate(*next, now, out);
    if (next->template_state == TemplateState::kNone) continue;  // refused for memory: try the next
    Pump(*next, now, out);
  }
}

void Scheduler::CloseHeld(Model& model, Now now, Actions* out) {
  if (model.template_state == TemplateState::kNone) return;
  for (bool standby : {false, true}) {
    if (standby && !model.template_standby) break;
    Action held;
    held.kind = Action::Kind::kHeld;
    held.model = model.config.name;
    held.standby = standby;
    held.memory_mb = standby ? InstanceCharge(model) : TemplateCharge(model, false);
    held.start_wall_us = model.template_held_since_wall_us;
    held.at_us = now.wall_us;
    out->push_back(std::move(held));
  }
  model.template_held_since_wall_us = now.wall_us;
}

bool Scheduler::HasModel(std::string_view name) const { return Find(name) != nullptr; }

int Scheduler::Queued(std::string_view name) const {
  const Model* model = Find(name);
  return model ? static_cast<int>(model->queue.size()) : 0;
}

std::vector<InstanceView> Scheduler::Instances(std::string_view name) const {
  std::vector<InstanceView> views;
  if (const Model* model = Find(name))
    for (const auto& [id, instance] : model->instances) views.push_back(ViewOf(instance, model->generation));
  return views;
}

std::optional<InstanceView> Scheduler::FindInstance(std::string_view name, uint64_t instance_id) const {
  const Model* model = Find(name);
  if (!model) return std::nullopt;
  auto it = model->instances.find(instance_id);
  if (it == model->instances.end()) return std::nullopt;
  return ViewOf(it->second, model->generation);
}

bool Scheduler::CanServe(std::string_view name) const {
  const Model* model = Find(name);
  return model && model->can_serve();
}

const std::string& Scheduler::LastStartError(std::string_view name) const {
  static const std::string kNone;
  const Model* model = Find(name);
  return model ? model->last_start_error : kNone;
}

const policy::AdaptiveBatcher* Scheduler::Batcher(std::string_view name) const {
  const Model* model = Find(name);
  return model ? &model->batcher : nullptr;
}

bool Scheduler::Idle() const {
  for (const auto& [name, model] : models_)
    if (!model->queue.empty() || model->in_flight_requests() > 0) return false;
  return true;
}

void Scheduler::Pump(Model& model, Now now, Actions* out) {
  const int per_instance = model.config.instance_concurrency;
  model.batch_wake_us = kNever;
  while (!model.queue.empty()) {
    // Fill busy instances first, then the most recently used idle one, so
    // that surplus instances age out through keep-alive.
    Instance* best = nullptr;
    int free_slots = 0;
    for (auto& [id, instance] : model.instances) {
      if (!instance.ready || static_cast<int>(instance.in_flight.size()) >= per_instance) continue;
      if (instance.generation != model.generation) continue;  // started with old settings: retiring
      free_slots += per_instance - static_cast<int>(instance.in_flight.size());
      if (!best) {
        best = &instance;
        continue;
      }
      const bool busy = !instance.in_flight.empty(), best_busy = !best->in_flight.empty();
      if (busy != best_busy ? busy : instance.idle_since_us > best->idle_since_us) best = &instance;
    }
    if (!best) break;
    std::vector<Request> batch;
    if (!model.batching()) {
      batch.push_back(std::move(model.queue.front()));
      model.queue.pop_front();
    } else {
      model.waiting.clear();
      for (const Request& r : model.queue)
        model.waiting.push_back({r.id, r.arrival_us, r.deadline_us, r.rows, r.batch_key});
      const policy::BatchDecision decision =
          model.batcher.Decide({.now_us = now.mono_us, .queue = model.waiting, .free_slots = free_slots});
      if (decision.dispatch.empty()) {
        if (decision.next_wake_us) model.batch_wake_us = *decision.next_wake_us;
        break;
      }
      // The decision lists ids in queue order; take them out in one pass.
      size_t next = 0;
      for (auto it = model.queue.begin(); it != model.queue.end() && next < decision.dispatch.size();) {
        if (it->id != decision.dispatch[next]) {
          ++it;
          continue;
        }
        batch.push_back(std::move(*it));
        it = model.queue.erase(it);
        ++next;
      }
    }
    // Time a request spent queued while this instance had a slot free: waiting for its batch.
    Instance& instance = *best;
    const Micros slot_free_since = instance.in_flight.empty() ? instance.idle_since_us : instance.slot_free_since_us;
    Execution execution;
    execution.id = batch.front().id;
    execution.dispatched_us = now.mono_us;
    Action dispatch;
    dispatch.kind = Action::Kind::kDispatch;
    dispatch.model = model.config.name;
    dispatch.instance_id = instance.id;
    dispatch.execution_id = execution.id;
    for (const Request& r : batch) {
      execution.requests.push_back(
          {.id = r.id,
           .rows = r.rows,
           .arrival_us = r.arrival_us,
           .batch_wait_us = now.mono_us - std::max(r.arrival_us, std::min(now.mono_us, slot_free_since)),
           .deadline_us = r.deadline_us});
      execution.rows += r.rows;
      dispatch.request_ids.push_back(r.id);
    }
    dispatch.rows = execution.rows;
    if (instance.in_flight.empty()) instance.busy_since_us = now.mono_us;
    instance.in_flight.emplace(execution.id, std::move(execution));
    out->push_back(std::move(dispatch));
  }

  // The model's work ran out (answered, failed or expired): an idle period
  // starts, and the keep-alive policy plans it.
  if (model.busy && model.queue.empty() && model.in_flight_requests() == 0) {
    model.busy = false;
    // A pre-warm must be ready in time: its lead is the slowest start measured
    // (an adaptive plan releases the template, so a pre-warm may start from
    // the zygote). The template the fixed policy would hold now is memory an
    // adaptive plan may spend on instance time instead.
    policy::IdleContext context;
    for (const auto& [path, us] : model.start_to_ready_us) context.lead_us = std::max(context.lead_us, us);
    if (model.config.start_path == StartPath::kTemplate) {
      context.template_keep_us = TemplateCacheOptionsFor(model.config).keep_alive_us;
      context.template_weight = static_cast<double>(TemplateCharge(model, model.config.template_standby)) /
                                static_cast<double>(std::max<int64_t>(1, InstanceCharge(model)));
      context.fixed_holds_template = model.template_state != TemplateState::kNone ||
                                     model.calls_in_window >= options_.template_admit_calls;
    }
    context.held_factor = keep_alive_pool_.factor();
    const policy::IdlePlan plan = model.keep_alive.OnIdle(now.mono_us, context);
    if (plan.fixed_held_us > 0) {
      const double mb = static_cast<double>(InstanceCharge(model));
      keep_alive_pool_.Record(plan.held_us * mb, plan.fixed_held_us * mb, now.mono_us);
    }
    if (plan.windowed())
      out->push_back(Notice(
          model.config.name, "keep_alive_plan",
          LogFields({{"source", std::string(policy::PlanSourceName(plan.source))},
                     {"unload_now", plan.unload_now ? "true" : "false"},
                     {"prewarm_in_ms", plan.prewarm_at_us ? MillisText(*plan.prewarm_at_us - now.mono_us) : "-"},
                     {"hold_ms", MillisText(plan.hold_until_us - now.mono_us)},
                     {"keep_ms", MillisText(plan.keep_until_us - now.mono_us)}})));
  }
  policy::ModelLoad load;
  load.queued = static_cast<int>(model.queue.size());
  int serving_slots = 0;  // slots of ready instances with the current settings, busy or free
  for (const auto& [id, instance] : model.instances) {
    if (instance.ready) {
      ++load.ready_instances;
      // A retiring instance (old settings) takes no new work: no free slots.
      if (instance.generation == model.generation) {
        load.free_slots += per_instance - static_cast<int>(instance.in_flight.size());
        serving_slots += per_instance;
      }
    } else {
      ++load.starting_instances;
    }
  }
  if (model.batching() && !model.queue.empty()) {
    // Batching first: queued rows are work for instances only beyond what
    // every serving slot takes in its next batch (a batch of the size the
    // batcher aims for), so a batch forming behind a busy instance starts
    // nothing, while a queue longer than batching can absorb does.
    int64_t queued_rows = 0;
    for (const Request& r : model.queue) queued_rows += r.rows;
    const int64_t batch_rows =
        model.config.batching == Batching::kFixed ? model.config.max_batch_size : model.batcher.TargetBatchSize(now.mono_us);
    load.queued = policy::QueuedExecutions(queued_rows, serving_slots, batch_rows);
    load.free_slots = 0;
  }
  policy::ScalingLimits limits;
  limits.max_instances = model.config.max_concurrency;
  limits.instance_concurrency = per_instance;
  // After a failed start, the provisioned floor waits for the backoff;
  // queued requests still trigger a start.
  const int provisioned_floor = ProvisionedMinimum(model, now).min_instances;
  if (provisioned_floor > 0 && model.template_state == TemplateState::kNone) WantTemplate(model, now, out, /*admit=*/true);
  limits.min_instances = now.mono_us >= model.start_retry_after_us ? provisioned_floor : 0;
  int to_start = policy::InstancesToStart(load, limits);
  // Queued work starts instances at once; beyond that the autoscaler adds
  // instances toward its desired count while there is load or a burst.
  const int concurrency = model.in_flight_executions() + load.queued;
  const policy::AutoscaleDecision scale = model.autoscaler.Update(
      {.now_us = now.mono_us, .concurrency = concurrency, .ready_instances = load.ready_instances});
  if (scale.panicking != model.panicking)
    out->push_back(Notice(model.config.name, scale.panicking ? "autoscaler_panic" : "autoscaler_calm",
                          LogFields({{"desired", std::to_string(scale.desired_instances)},
                                     {"ready", std::to_string(load.ready_instances)}})));
  model.panicking = scale.panicking;
  model.desired = scale.desired_instances;
  // Only a panic holds instances, so only a panic needs the autoscaler
  // re-asked as its windows move.
  model.autoscaler_wake_us = scale.panicking && scale.next_wake_us ? *scale.next_wake_us : kNever;
  if (concurrency > 0 || scale.panicking) {
    const int live = load.ready_instances + load.starting_instances;
    to_start = std::max(to_start, std::min(scale.desired_instances, model.config.max_concurrency) - live);
  }
  for (int i = 0; i < to_start; ++i) StartInstance(model, now, out);
  UpdateProvisioned(model, provisioned_floor, now, out);
  Reschedule(model, now, out);
}

void Scheduler::StartInstance(Model& model, Now now, Actions* out, bool want_template) {
  if (Status room = ReserveMemory(model, InstanceCharge(model), /*for_template=*/false, now, out); !room.ok()) {
    out->push_back(Notice(model.config.name, "instance_start_refused", LogFields({{"error", LogValue(room.message())}})));
    // Queued requests fail only if no instance of the model can serve them.
    if (model.instances.empty()) FailQueued(model, room, now, out);
    return;
  }
  Instance instance;
  instance.id = next_instance_id_++;
  instance.path = NextStartPath(model);
  instance.generation = model.generation;
  instance.start_us = now.mono_us;
  instance.start_wall_us = now.wall_us;
  instance.provisioned = static_cast<int>(model.instances.size()) < ProvisionedMinimum(model, now).min_instances;
  Action start;
  start.kind = Action::Kind::kStart;
  start.model = model.config.name;
  start.instance_id = instance.id;
  start.path = instance.path;
  start.provisioned = instance.provisioned;
  model.instances.emplace(instance.id, std::move(instance));
  out->push_back(std::move(start));
  if (want_template) WantTemplate(model, now, out);
}

void Scheduler::StopInstance(Model& model, uint64_t instance_id, std::string_view reason, bool fault,
                             const Status& in_flight_status, Now now, Actions* out) {
  auto it = model.instances.find(instance_id);
  if (it == model.instances.end()) return;
  Instance instance = std::move(it->second);
  model.instances.erase(it);
  Action stop = StopActionOf(model, instance, reason, now);
  for (const auto& [eid, execution] : instance.in_flight)
    for (const Completion::Item& r : execution.requests) {
      out->push_back(Fail(model.config.name, r.id, r.arrival_us, instance.id, in_flight_status));
      stop.request_ids.push_back(r.id);
    }
  stop.fault = fault;
  stop.status = in_flight_status;
  out->push_back(std::move(stop));
}

Action Scheduler::StopActionOf(const Model& model, const Instance& instance, std::string_view reason, Now now) const {
  Action stop;
  stop.kind = Action::Kind::kStop;
  stop.model = model.config.name;
  stop.instance_id = instance.id;
  stop.reason = std::string(reason);
  stop.path = instance.path;
  stop.memory_mb = InstanceCharge(model);
  InstanceUsage& usage = stop.usage;
  usage.start_us = instance.start_us;
  usage.start_wall_us = instance.start_wall_us;
  const Micros lifetime = now.mono_us - instance.start_us;
  usage.init_us = instance.ready ? instance.ready_us - instance.start_us : lifetime;
  usage.busy_us = instance.busy_us + (instance.in_flight.empty() ? 0 : now.mono_us - instance.busy_since_us);
  usage.idle_us = std::max<Micros>(0, lifetime - usage.init_us - usage.busy_us);
  usage.provisioned = instance.provisioned;
  return stop;
}

std::vector<Action> Scheduler::RunningInstanceUsage(Now now) const {
  std::vector<Action> running;
  for (const auto& [name, model] : models_)
    for (const auto& [id, instance] : model->instances) running.push_back(StopActionOf(*model, instance, "running", now));
  return running;
}

void Scheduler::FailQueued(Model& model, const Status& status, Now, Actions* out) {
  for (const Request& r : model.queue) out->push_back(Fail(model.config.name, r.id, r.arrival_us, 0, status));
  model.queue.clear();
}

policy::ProvisionedFloor Scheduler::ProvisionedMinimum(const Model& model, Now now) const {
  if (model.schedule.empty()) return {.min_instances = model.config.min_instances};
  return policy::MinInstancesAt(model.schedule, model.config.min_instances, now.wall_us);
}

policy::KeepAliveActions Scheduler::KeepAliveActionsFor(const Model& model, Now now) const {
  std::vector<policy::IdleInstance>& idle = idle_;
  idle.clear();
  // Requests queued (e.g. a batch filling) are work for the ready instances:
  // none of them is idle. (Else keep-alive 0 stopped the instance a batch
  // was waiting for, and a start of no time looped forever.)
  if (model.queue.empty())
    for (const auto& [id, instance] : model.instances)
      if (instance.ready && instance.in_flight.empty()) idle.push_back({id, instance.idle_since_us});
  // Provisioned instances stay; so does what a panic asked for (no scale-down while panicking).
  const int floor = std::max(ProvisionedMinimum(model, now).min_instances, model.panicking ? model.desired : 0);
  return model.keep_alive.Decide(idle, static_cast<int>(model.instances.size()), floor, now.mono_us);
}

void Scheduler::Reschedule(Model& model, Now now, Actions* out) {
  Micros wake = kNever;
  for (const Request& r : model.queue) wake = std::min(wake, r.deadline_us);
  for (const auto& [id, instance] : model.instances)
    for (const auto& [eid, execution] : instance.in_flight)
      for (const Completion::Item& r : execution.requests) wake = std::min(wake, r.deadline_us);
  wake = std::min(wake, model.batch_wake_us);
  const policy::KeepAliveActions actions = KeepAliveActionsFor(model, now);
  if (!actions.stop.empty() || actions.prewarm_now) wake = now.mono_us;
  if (actions.next_wake_us) wake = std::min(wake, *actions.next_wake_us);
  wake = std::min(wake, model.autoscaler_wake_us);
  if (model.template_state != TemplateState::kNone) {
    const policy::TemplateCacheDecision held = TemplateDecision(model, now);
    if (!held.hold) wake = now.mono_us;
    if (held.release_at_us) wake = std::min(wake, *held.release_at_us);
  }
  const policy::ProvisionedFloor provisioned = ProvisionedMinimum(model, now);
  if (provisioned.next_change_wall_us)  // the schedule's next change, on the monotonic scale
    wake = std::min(wake, now.mono_us + std::max<Micros>(0, *provisioned.next_change_wall_us - now.wall_us));
  if (static_cast<int>(model.instances.size()) < provisioned.min_instances && model.start_retry_after_us > now.mono_us)
    wake = std::min(wake, model.start_retry_after_us);
  for (const auto& [id, instance] : model.instances)
    if (!instance.ready) wake = std::min(wake, instance.start_us + model.config.start_timeout_ms * kMicrosPerMilli);
  if (wake != kNever) wake = std::max(wake, now.mono_us);
  if (wake == model.scheduled_wake_us) return;
  model.scheduled_wake_us = wake;
  Action a;
  a.kind = Action::Kind::kWake;
  a.model = model.config.name;
  a.at_us = wake;
  out->push_back(std::move(a));
}

void Scheduler::UpdateProvisioned(Model& model, int instances, Now now, Actions* out, bool always) {
  if (instances == model.provisioned_instances && !always) return;
  if (model.provisioned_instances > 0) {
    Action a;
    a.kind = Action::Kind::kProvisioned;
    a.model = model.config.name;
    a.instances = model.provisioned_instances;
    a.start_wall_us = model.provisioned_since_wall_us;
    a.at_us = now.wall_us;
    out->push_back(std::move(a));
  }
  model.provisioned_instances = instances;
  model.provisioned_since_wall_us = now.wall_us;
}

Status Scheduler::ReserveMemory(Model& model, int64_t need_mb, bool for_template, Now now, Actions* out) {
  if (options_.memory_budget_mb <= 0) return Status::Ok();
  std::vector<policy::LiveInstance> live;
  for (const auto& [name, other] : models_) {
    // Provisioned instances are kept: only idle ones beyond the floor may go.
    int protected_left = ProvisionedMinimum(*other, now).min_instances;
    for (const auto& [id, instance] : other->instances) {
      bool evictable = !for_template && instance.ready && instance.in_flight.empty();
      if (evictable && protected_left > 0) {
        --protected_left;
        evictable = false;
      }
      live.push_back({.model = name, .id = id, .memory_mb = InstanceCharge(*other), .idle = evictable,
                      .last_used_us = instance.idle_since_us, .restart_cost_us = RestartCost(*other, false)});
    }
    // A live template (and its standby) is id 0; one not held by a floor
    // may go, by when its model was last wanted.
    if (other->template_state != TemplateState::kNone)
      live.push_back({.model = name, .id = 0, .memory_mb = TemplateCharge(*other, other->template_standby),
                      .idle = ProvisionedMinimum(*other, now).min_instances == 0 &&
                              (!for_template || other->template_state == TemplateState::kReady),
                      .last_used_us = other->template_wanted_us, .restart_cost_us = RestartCost(*other, true)});
  }
  auto plan = policy::PlanColdStart(need_mb, options_.memory_budget_mb, live, model.config.name, options_.eviction_order);
  if (!plan.ok())
    return Unavailable("no memory for " + std::string(for_template ? "the template" : "a new instance") + " of model '" +
                       model.config.name + "': " + plan.status().message());
  for (const policy::Eviction& eviction : plan->evict) {
    Model* other = Find(eviction.model);
    if (!other) continue;
    if (eviction.id == 0) {
      StopTemplate(*other, "memory_pressure", now, out);
    } else {
      StopInstance(*other, eviction.id, "memory_pressure", false, Status::Ok(), now, out);
    }
    // The other model's plans (keep-alive, floor) see one instance fewer.
    if (other != &model) Reschedule(*other, now, out);
  }
  return Status::Ok();
}

void Scheduler::ObserveMemory(std::string_view name, uint64_t instance_id, int64_t peak_bytes, Now now) {
  if (options_.log)
    Log({.kind = Event::Kind::kObserveMemory, .now = now, .model = std::string(name), .instance_id = instance_id,
         .bytes = peak_bytes});
  Model* model = Find(name);
  if (!model || peak_bytes <= 0) return;
  const int64_t mb = (peak_bytes + (int64_t{1} << 20) - 1) >> 20;
  if (instance_id == 0) {
    if (model->template_state != TemplateState::kNone) model->template_peak_mb = std::max(model->template_peak_mb, mb);
    return;
  }
  auto it = model->instances.find(instance_id);
  if (it == model->instances.end() || it->second.generation != model->generation) return;
  model->instance_peak_mb = std::max(model->instance_peak_mb, mb);
}

namespace {
int64_t WithHeadroom(int64_t peak_mb, int headroom_pct, int64_t memory_mb) {
  if (peak_mb <= 0) return memory_mb;
  return std::clamp<int64_t>((peak_mb * (100 + headroom_pct) + 99) / 100, 1, memory_mb);
}
}  // namespace

int64_t Scheduler::InstanceCharge(const Model& model) const {
  if (options_.memory_charge == MemoryCharge::kConfigured) return model.config.memory_mb;
  return WithHeadroom(model.instance_peak_mb, options_.measured_headroom_pct, model.config.memory_mb);
}

int64_t Scheduler::TemplateCharge(const Model& model, bool standby) const {
  const int64_t standby_mb = standby ? InstanceCharge(model) : 0;
  if (options_.memory_charge == MemoryCharge::kConfigured) return model.config.memory_mb + standby_mb;
  return WithHeadroom(model.template_peak_mb, options_.measured_headroom_pct, model.config.memory_mb) + standby_mb;
}

StartPath Scheduler::NextStartPath(const Model& model) {
  if (model.config.start_path != StartPath::kTemplate) return model.config.start_path;
  return model.template_state == TemplateState::kReady ? StartPath::kTemplate : StartPath::kZygote;
}

Micros Scheduler::RestartCost(const Model& model, bool template_process) const {
  auto measured = [&](StartPath path) {
    auto it = model.start_to_ready_us.find(path);
    return it == model.start_to_ready_us.end() ? policy::kEvictionCostUnknown : it->second;
  };
  if (template_process) {
    // Its model's next start comes from the zygote instead of the template.
    const Micros from_zygote = measured(StartPath::kZygote), from_template = measured(StartPath::kTemplate);
    if (from_zygote == policy::kEvictionCostUnknown || from_template == policy::kEvictionCostUnknown)
      return policy::kEvictionCostUnknown;
    return std::max<Micros>(0, from_zygote - from_template);
  }
  return measured(NextStartPath(model));
}

int64_t Scheduler::InstanceChargeMb(std::string_view name) const {
  const Model* model = Find(name);
  return model ? InstanceCharge(*model) : 0;
}

int64_t Scheduler::TemplateChargeMb(std::string_view name) const {
  const Model* model = Find(name);
  return model ? TemplateCharge(*model, model->template_state != TemplateState::kNone ? model->template_standby
                                                                                     : model->config.template_standby)
               : 0;
}

std::string_view MemoryChargeName(MemoryCharge charge) {
  return charge == MemoryCharge::kMeasured ? "measured" : "configured";
}

std::optional<MemoryCharge> ParseMemoryCharge(std::string_view name) {
  if (name == "configured") return MemoryCharge::kConfigured;
  if (name == "measured") return MemoryCharge::kMeasured;
  return std::nullopt;
}

Actions Replay(const EventLog& log, SchedulerOptions options, std::vector<size_t>* origins) {
  options.log = nullptr;
  Scheduler scheduler(options);
  Actions out;
  for (size_t index = 0; index < log.size(); ++index) {
    const Event& e = log[index];
    switch (e.kind) {
      case Event::Kind::kAddModel: (void)scheduler.AddModel(e.config, e.now, &out); break;
      case Event::Kind::kUpdateModel: (void)scheduler.UpdateModel(e.config, e.flag, e.text, e.now, &out); break;
      case Event::Kind::kRemoveModel: (void)scheduler.RemoveModel(e.model, e.status, e.text, e.now, &out); break;
      case Event::Kind::kArrive: (void)scheduler.Arrive(e.model, e.request, e.now, &out); break;
      case Event::Kind::kInstanceReady: scheduler.InstanceReady(e.model, e.instance_id, e.now, &out); break;
      case Event::Kind::kExecutionDone:
        (void)scheduler.ExecutionDone(e.model, e.instance_id, e.execution_id, e.round_trip_us, e.flag, e.now, &out);
        break;
      case Event::Kind::kInstanceGone:
        scheduler.InstanceGone(e.model, e.instance_id, e.gone, e.status, e.text, e.now, &out);
        break;
      case Event::Kind::kStartFailed: scheduler.StartFailed(e.model, e.instance_id, e.text, e.now, &out); break;
      case Event::Kind::kWake: scheduler.Wake(e.model, e.now, &out); break;
      case Event::Kind::kWarm: (void)scheduler.Warm(e.model, e.count, e.now, &out); break;
      case Event::Kind::kFlushProvisioned: scheduler.FlushProvisioned(e.now, &out); break;
      case Event::Kind::kSetStartError: scheduler.SetStartError(e.model, e.text); break;
      case Event::Kind::kStartSucceeded: scheduler.StartSucceeded(e.model); break;
      case Event::Kind::kTemplateReady: scheduler.TemplateReady(e.model, e.now, &out); break;
      case Event::Kind::kTemplateGone: scheduler.TemplateGone(e.model, e.text, e.now, &out); break;
      case Event::Kind::kObserveMemory: scheduler.ObserveMemory(e.model, e.instance_id, e.bytes, e.now); break;
    }
    if (origins) origins->resize(out.size(), index);
  }
  return out;
}

}  // namespace thaw::sched
