// Scheduler: the control loop of every model on a node, as a pure state
// machine. It owns each model's queue, its instances (by id and state), the
// requests' deadlines, the batcher, the autoscaler, keep-alive, the
// provisioned floor, start retries and the node's memory budget. The live
// runtime (src/runtime) and the simulator (src/sim) are drivers around it:
// they feed it events and carry out the actions it returns, the runtime with
// processes, frames and timers, the simulator with virtual-time events. So
// whatever the server decides, the simulator decides by the same code.
//
// Events in, each with `now`: a request arrives (Arrive), an instance became
// ready (InstanceReady), an execution finished (ExecutionDone, with its
// measured round trip), an instance is gone (InstanceGone), the model's
// wake-up time came (Wake), settings changed (UpdateModel), a model is added
// or removed. Actions out, in the order they must be carried out: start an
// instance, dispatch requests to an instance as one execution, fail a
// request, stop an instance, wake the model at a time, close a provisioned
// interval, a notice worth logging.
//
// What it guarantees (the runtime's contract, runtime/runtime.h, rests on it):
//  - Admission: a request that finds max_queue requests already queued is
//    refused (kResourceExhausted, 429) and never queued.
//  - Dispatch: busy instances first, then the most recently idle one (so
//    surplus instances age out through keep-alive); an instance started under
//    settings since replaced takes no new work and retires when idle. At most
//    instance_concurrency executions per instance, max_concurrency instances.
//  - Batching first: queued rows start instances only beyond what the serving
//    slots take in their next batch.
//  - Deadlines: a queued request past its deadline fails with
//    kDeadlineExceeded and never runs; a running one fails with
//    kDeadlineExceeded at its deadline and its instance is stopped (its other
//    requests fail with kUnavailable) and replaced on demand.
//  - Starts: a start not ready within start_timeout_ms is stopped; a failed
//    start backs off the provisioned floor (1 s doubling to 60 s); queued
//    requests fail with kUnavailable when no instance can serve them.
//  - Templates (start path "template") are a cache (policy/template_cache.h):
//    one starts when the model is wanted (a request arrives, an instance
//    starts other than a keep-alive pre-warm, a Warm, a provisioned floor;
//    not an arrival an adaptive keep-alive plan timed and a warm instance
//    took at once, which only refreshes a held one; calls only once there have been
//    template_admit_calls of them in a row) and stops template_keep_alive_s
//    after it was last wanted, or earlier when the model's adaptive
//    keep-alive plan releases it, unless a floor holds it. Instances fork
//    from it once it is ready; before that they start from the zygote.
//  - Keep-alive: each model's policy plans its idle periods; adaptive plans
//    share one memory budget for the node (policy/keep_alive_pool.h) unless
//    keep_alive_pool is false.
//  - Memory: what live instances and templates are charged stays within
//    memory_budget_mb at every start. Charged (SchedulerOptions.memory_charge):
//    an instance its memory_mb, a template its memory_mb plus its standby's;
//    or, measured, the model's highest observed charge (ObserveMemory) plus
//    measured_headroom_pct, never above memory_mb, and memory_mb until one
//    is observed. An instance's start stops idle instances and templates (a
//    cache, starting or ready) of other models beyond their provisioned
//    floor, in eviction_order, to make room, else it is refused and, if the
//    model has no instance, its queue fails with kUnavailable. A template's
//    start may stop only other models' ready templates; without room it is
//    not started. At most max_starting_templates start at once.
//  - Every request given to Arrive and admitted leaves exactly once: by a
//    kDispatch and then ExecutionDone's completion, or by a kFail.
//  - Deterministic: the same events give the same actions. It never reads a
//    clock, sleeps, locks or does I/O.
//
// Ownership: the caller owns the actions it is handed (appended to *out).
// Thread safety: not thread-safe; one driver calls it.
// Errors: kNotFound for an unknown model, kInvalidArgument for a config the
// policies refuse or a model loaded twice; events for unknown instances or
// executions are ignored (the driver may report a gone instance twice).
#pragma once

#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "policy/admission.h"
#include "policy/autoscaler.h"
#include "policy/batching.h"
#include "policy/keep_alive.h"
#include "policy/keep_alive_pool.h"
#include "policy/provisioned.h"
#include "policy/template_cache.h"
#include "repo/model_config.h"

namespace thaw::sched {

// When an event happens: the monotonic clock (deadlines, keep-alive, the
// policies' windows) and the wall clock (provisioned schedules, records).
struct Now {
  Micros mono_us = 0;
  Micros wall_us = 0;
};

// A request as the scheduler sees it; its payload stays with the driver.
struct Request {
  uint64_t id = 0;           // unique on the node, from the driver
  int64_t rows = 1;          // dim 0 of its inputs
  std::string batch_key;     // requests with equal keys may share an execution
  Micros arrival_us = 0;
  Micros deadline_us = 0;
};

// What an instance's usage record needs when it stops.
struct InstanceUsage {
  Micros start_us = 0;   // monotonic
  Micros start_wall_us = 0;
  Micros init_us = 0;    // start to ready (its whole life if never ready)
  Micros busy_us = 0;    // with executions in flight
  Micros idle_us = 0;    // the rest
  bool provisioned = false;
};

struct Action {
  enum class Kind {
    kStart,        // start instance_id by `path`; `provisioned` if it keeps the floor
    kDispatch,     // send request_ids (in order, `rows` in all) to instance_id as execution_id
    kFail,         // answer request_ids[0] (arrived at arrival_us) with `status` (instance_id: where it ran, 0 if queued)
    kStop,         // stop instance_id (kill its process); `reason` for the usage log, `status` what its
                   // running requests (request_ids, failed just before) got; `fault` for a warning
    kWake,         // call Wake(model) at `at_us` (monotonic); replaces the earlier wake; kNever = none
    kProvisioned,  // the floor of `instances` held from `start_wall_us` to `at_us` (wall): a usage record
    kNotice,       // worth logging: `reason` is the event name, `detail` its fields (key=value ...)
    kStartTemplate,  // start the model's template (and its standby if `standby`); answer with
                     // TemplateReady or TemplateGone
    kStopTemplate,   // stop the model's template and its standby (not the instances it forked); `reason`
    kHeld,           // memory held for the model's template (`standby`: its standby) from `start_wall_us`
                     // to `at_us` (wall): a usage record
  };
  Kind kind = Kind::kNotice;
  std::string model;
  uint64_t instance_id = 0;
  uint64_t execution_id = 0;
  std::vector<uint64_t> request_ids;
  int64_t rows = 0;
  Status status;
  std::string reason;
  std::string detail;
  bool fault = false;
  bool provisioned = false;
  bool standby = false;  // kStartTemplate, kHeld
  // kStart: how the instance starts. A template-path model's instance forks
  // from its template only when the template is ready; until then (and while
  // no template is held) it starts from the zygote.
  StartPath path = StartPath::kExec;
  Micros at_us = 0;
  Micros arrival_us = 0;  // kFail
  Micros start_wall_us = 0;
  int instances = 0;
  InstanceUsage usage;  // kStop
  // kStop: what the instance was charged against the memory budget; kHeld:
  // the template's or standby's charge (MB; SchedulerOptions.memory_charge).
  int64_t memory_mb = 0;
};

using Actions = std::vector<Action>;

constexpr Micros kNever = std::numeric_limits<Micros>::max();
// Backoff of the provisioned floor after a failed start.
constexpr Micros kMinStartRetryUs = 1 * kMicrosPerSecond;
constexpr Micros kMaxStartRetryUs = 60 * kMicrosPerSecond;

// An instance as the scheduler tracks it.
struct InstanceView {
  uint64_t id = 0;
  StartPath path = StartPath::kExec;
  bool ready = false;
  bool retiring = false;  // started under settings since replaced
  int in_flight_requests = 0;
  int executions = 0;
  Micros start_us = 0;
  Micros ready_us = 0;
  Micros idle_since_us = 0;
  bool provisioned = false;
};

// What ExecutionDone hands back: the requests still waiting for this
// execution's answer, in dispatch order, and what their records need.
struct Completion {
  struct Item {
    uint64_t id = 0;
    int64_t rows = 1;
    Micros arrival_us = 0;
    Micros batch_wait_us = 0;  // queued while a slot was free: filling the batch
    Micros deadline_us = 0;
  };
  std::vector<Item> requests;
  int64_t rows = 0;
  Micros dispatched_us = 0;
  InstanceView instance;
};

// How an instance went, for InstanceGone.
enum class GoneKind {
  kCrashed,        // exited or closed its socket
  kOom,            // killed by the kernel at its memory limit
  kProtocolError,  // sent a malformed message
};

// One input to a Scheduler, as recorded in an EventLog: which method was
// called, with what. Replay feeds a log back to a fresh Scheduler.
struct Event {
  enum class Kind {
    kAddModel, kUpdateModel, kRemoveModel, kArrive, kInstanceReady, kExecutionDone, kInstanceGone,
    kStartFailed, kWake, kWarm, kFlushProvisioned, kSetStartError, kStartSucceeded, kTemplateReady, kTemplateGone,
    kObserveMemory,
  };
  Kind kind = Kind::kWake;
  Now now;
  std::string model;
  ModelConfig config;           // kAddModel, kUpdateModel
  bool flag = false;            // replace_workers, ok
  std::string text;             // reason, start_error, error
  Status status;                // kRemoveModel, kInstanceGone
  Request request;              // kArrive
  uint64_t instance_id = 0;
  uint64_t execution_id = 0;
  Micros round_trip_us = 0;
  GoneKind gone = GoneKind::kCrashed;
  int count = 0;                // kWarm
  int64_t bytes = 0;            // kObserveMemory
};
using EventLog = std::vector<Event>;

// What a live instance or template counts against the memory budget.
enum class MemoryCharge {
  kConfigured,  // its memory_mb (a template with a standby: twice)
  kMeasured,    // its model's highest observed charge + headroom, at most memory_mb
};
std::string_view MemoryChargeName(MemoryCharge charge);
std::optional<MemoryCharge> ParseMemoryCharge(std::string_view name);  // "configured", "measured"

struct SchedulerOptions {
  // Node-wide budget for the memory charged to live instances and templates
  // (MB); 0 = unlimited.
  int64_t memory_budget_mb = 0;
  MemoryCharge memory_charge = MemoryCharge::kConfigured;
  // kMeasured: the charge is the observed peak x (1 + this / 100); >= 0.
  int measured_headroom_pct = 25;
  // Whom a start evicts first. kCheapestRestart ranks an idle instance by its
  // model's last measured start to ready by the path its next start would
  // take, a template by how much longer its model's next start from the
  // zygote would take than one from the template.
  policy::EvictionOrder eviction_order = policy::EvictionOrder::kLeastRecentlyUsed;
  // Templates starting at once, all models (0 = no limit). A template's
  // start loads and warms its model: background work that, many at once,
  // starves the instances serving requests. Beyond it a wanted template
  // waits; when a start ends, the most recently wanted waiting one starts.
  int max_starting_templates = 0;
  // A template starts once its model has been called this many times, each
  // call within template_keep_alive_s of the one before (>= 1; a floor or a
  // pre-warm starts it at once). 2 keeps models called once from loading a
  // template they will not use; 1 starts one at the first call.
  int template_admit_calls = 1;
  // The adaptive keep-alive plans of all models share one memory budget,
  // the fixed policy's (policy/keep_alive_pool.h); false: each model keeps
  // to its own.
  bool keep_alive_pool = true;
  // If set, every event is appended here (for replay and differential
  // tests). Not owned; must outlive the scheduler.
  EventLog* log = nullptr;
};

class Scheduler {
 public:
  explicit Scheduler(SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Registers a validated model and starts its provisioned floor.
  Status AddModel(const ModelConfig& config, Now now, Actions* out);
  // New settings. With `replace_workers` (a field workers read changed),
  // starting instances are stopped, idle ones retired (`reason`), busy ones
  // retire when they finish, and the start-error state is cleared.
  Status UpdateModel(const ModelConfig& config, bool replace_workers, std::string_view reason, Now now, Actions* out);
  // Fails queued and running requests with `status`, stops every instance
  // (`reason`), closes the provisioned interval and forgets the model.
  Status RemoveModel(std::string_view model, const Status& status, std::string_view reason, Now now, Actions* out);

  // A request for `model`. Refused (kResourceExhausted) when the queue is
  // full: then it was not queued and no action names it.
  Status Arrive(std::string_view model, Request request, Now now, Actions* out);
  void InstanceReady(std::string_view model, uint64_t instance_id, Now now, Actions* out);
  // `ok`: the execution ran (the batcher learns its round trip). nullopt if
  // the instance or execution is gone (failed at its deadline, stopped).
  std::optional<Completion> ExecutionDone(std::string_view model, uint64_t instance_id, uint64_t execution_id,
                                          Micros round_trip_us, bool ok, Now now, Actions* out);
  // The instance died. Its running requests fail with `in_flight_status`; one
  // that was still starting sets the start error to `start_error` (if
  // non-empty, else a default) and backs off the floor.
  void InstanceGone(std::string_view model, uint64_t instance_id, GoneKind kind, const Status& in_flight_status,
                    std::string_view start_error, Now now, Actions* out);
  // The driver could not start instance_id (no process, no socket, no
  // cgroup): as InstanceGone of a starting instance; queued requests fail
  // with kUnavailable naming `error` if no instance can serve them.
  void StartFailed(std::string_view model, uint64_t instance_id, const std::string& error, Now now, Actions* out);
  // A kWake's time came (earlier calls are harmless).
  void Wake(std::string_view model, Now now, Actions* out);
  // Starts instances so that at least `instances` are live (capped at
  // max_concurrency); returns how many it started.
  StatusOr<int> Warm(std::string_view model, int instances, Now now, Actions* out);
  // Closes and reopens every open provisioned and held interval at `now`.
  void FlushProvisioned(Now now, Actions* out);

  // What the driver knows about starts outside instances (a template's or
  // zygote's load): an error to report, or success (clears it, resets backoff).
  void SetStartError(std::string_view model, std::string error);
  void StartSucceeded(std::string_view model);
  // The template a kStartTemplate asked for is ready: later starts fork from it.
  void TemplateReady(std::string_view model, Now now, Actions* out);
  // The model's template is gone without a kStopTemplate (it crashed, failed
  // to load, timed out: `error`). Starts go to the zygote; the template is
  // started again when next wanted, after a backoff if it never got ready.
  void TemplateGone(std::string_view model, const std::string& error, Now now, Actions* out);
  enum class TemplateState { kNone, kStarting, kReady };
  TemplateState TemplateStateOf(std::string_view model) const;
  // The memory cgroup of instance_id (0: the model's template, without its
  // standby) has been charged at most peak_bytes so far. Under
  // MemoryCharge::kMeasured the model's charges follow its highest
  // observation (kept until settings that workers read change).
  void ObserveMemory(std::string_view model, uint64_t instance_id, int64_t peak_bytes, Now now);
  // What one instance, and the live or next template, of the model is charged now (MB).
  int64_t InstanceChargeMb(std::string_view model) const;
  int64_t TemplateChargeMb(std::string_view model) const;

  // Read-only views for status reports.
  bool HasModel(std::string_view model) const;
  int Queued(std::string_view model) const;
  std::vector<InstanceView> Instances(std::string_view model) const;
  // Every live instance's usage so far, as the kStop action stopping it now
  // would carry it (reason "running"), for reports that include instances
  // still up (GET /v2/stats). Nothing changes.
  std::vector<Action> RunningInstanceUsage(Now now) const;
  std::optional<InstanceView> FindInstance(std::string_view model, uint64_t instance_id) const;
  // A ready instance under the current settings.
  bool CanServe(std::string_view model) const;
  const std::string& LastStartError(std::string_view model) const;
  const policy::AdaptiveBatcher* Batcher(std::string_view model) const;
  // No model has queued or running requests.
  bool Idle() const;

 private:
  struct Model;
  struct Instance;
  Model* Find(std::string_view model);
  const Model* Find(std::string_view model) const;
  void Pump(Model& model, Now now, Actions* out);
  void StartInstance(Model& model, Now now, Actions* out, bool want_template = true);
  // The kStop action for `instance` of `model` now: what it used from its
  // start (InstanceUsage) at the model's current charge.
  Action StopActionOf(const Model& model, const Instance& instance, std::string_view reason, Now now) const;
  void StopInstance(Model& model, uint64_t instance_id, std::string_view reason, bool fault, const Status& in_flight_status,
                    Now now, Actions* out);
  void FailQueued(Model& model, const Status& status, Now now, Actions* out);
  void CheckStartDeadlines(Model& model, Now now, Actions* out);
  void NoteFailedStart(Model& model, Now now);
  void Reschedule(Model& model, Now now, Actions* out);
  policy::KeepAliveActions KeepAliveActionsFor(const Model& model, Now now) const;
  policy::ProvisionedFloor ProvisionedMinimum(const Model& model, Now now) const;
  void UpdateProvisioned(Model& model, int instances, Now now, Actions* out, bool always = false);
  // Room for `need_mb` more: an instance's start may stop idle instances and
  // templates (starting or ready) of other models beyond their floor; a
  // template's start only other ready templates. In eviction_order.
  Status ReserveMemory(Model& model, int64_t need_mb, bool for_template, Now now, Actions* out);
  // Refreshes when the model was last wanted; starts its template if none is
  // live and `admit` (a floor, a pre-warm) or the model has been called
  // template_admit_calls times in a row.
  void WantTemplate(Model& model, Now now, Actions* out, bool admit = false);
  void StartTemplate(Model& model, Now now, Actions* out);
  void StopTemplate(Model& model, std::string_view reason, Now now, Actions* out);
  void CloseHeld(Model& model, Now now, Actions* out);
  // Gives free template start slots to waiting templates still wanted, most recently wanted first.
  void StartWaitingTemplates(Now now, Actions* out);
  policy::TemplateCacheDecision TemplateDecision(const Model& model, Now now) const;
  int64_t InstanceCharge(const Model& model) const;
  int64_t TemplateCharge(const Model& model, bool standby) const;
  Micros RestartCost(const Model& model, bool template_process) const;
  // How the model's next instance starts: its start path, but a
  // template-path model's from the zygote while no template is ready.
  static StartPath NextStartPath(const Model& model);
  bool HoldTemplate(const Model& model, Now now) const;

  void Log(Event event) const {
    if (options_.log) options_.log->push_back(std::move(event));
  }

  SchedulerOptions options_;
  mutable std::vector<policy::IdleInstance> idle_;  // scratch for keep-alive
  policy::KeepAlivePool keep_alive_pool_;
  std::map<std::string, std::unique_ptr<Model>, std::less<>> models_;
  uint64_t next_instance_id_ = 1;
  int starting_templates_ = 0;  // templates in TemplateState::kStarting, all models
};

// Feeds `log` to a fresh Scheduler with `options` (its log ignored) and
// returns every action, in order: what a driver that saw those events was
// asked to do. With `origins`, origins[i] is the index in `log` of the event
// that produced action i.
Actions Replay(const EventLog& log, SchedulerOptions options, std::vector<size_t>* origins = nullptr);

}  // namespace thaw::sched
