// Runtime: runs models as serverless functions. Each instance of a model is a
// separate worker process (thaw-worker) that loads the model through a
// backend and answers requests over a Unix socket (src/ipc). What to run
// where and when is decided by sched::Scheduler (src/sched), the control loop
// the simulator drives too; the runtime carries out its actions with
// processes, frames and timers, and reports back what happened.
//
// What it guarantees:
//  - A request for a model with no free instance slot waits in the model's
//    queue; if the scaling policy says so an instance is started (a cold
//    start) while it waits. At most max_concurrency instances per model run
//    at once, each with at most instance_concurrency requests in flight.
//  - Back-pressure: a request that finds max_queue requests already queued
//    is refused at once with kResourceExhausted (HTTP 429).
//  - Deadlines: a request still queued at its deadline fails with
//    kDeadlineExceeded and never runs; a request still running at its
//    deadline fails with kDeadlineExceeded and its instance is killed and
//    replaced on demand.
//  - Crashes: an instance whose process dies fails its in-flight requests
//    with kUnavailable (HTTP 503); queued requests are served by a fresh
//    instance. A model that cannot load fails its queued requests with
//    kUnavailable naming the load error.
//  - Keep-alive: an instance idle for keep_alive_s is stopped (scale to
//    zero); min_instances (raised by provisioned_schedule windows while they
//    are in force) are started at once and kept, replaced if they die.
//  - Memory: what live instances and templates are charged stays within
//    memory_budget_mb (sched/scheduler.h): their memory_mb, or under
//    MemoryCharge::kMeasured their model's highest memory cgroup peak
//    (read when a template is ready and after an instance's executions, at
//    most once a second per instance) plus headroom. Idle instances and
//    templates of other models beyond their provisioned minimum are evicted
//    (eviction_order) to make room, else the start fails with kUnavailable. The zygote
//    (engines only, no model) is not counted.
//  - Memory limit (with RuntimeOptions::memory_cgroups enforcing): every
//    instance runs in a memory cgroup of memory_mb (templates 2 x memory_mb,
//    the zygote cgroup::kZygoteGroupMemoryMb): an exec'd one joins it before
//    it loads anything, a forked one is moved there (with its charge) when
//    it reports its pid, and gets work only once there.
//    An instance the kernel OOM-kills fails its in-flight requests with
//    kUnavailable "instance of model 'm' exceeded its memory limit
//    (memory_mb=N) and was killed", stops with reason "oom" in the usage log,
//    and is replaced on demand. Groups are removed once their processes
//    have left.
//  - Request size: a request whose input tensors take more than
//    1/kRequestMemoryDivisor of memory_mb is refused with kInvalidArgument
//    before it is queued: the instance could not hold it and its outputs.
//  - Every accepted request's callback is called exactly once.
//
// Threading: not thread-safe. All methods and all callbacks run on the
// io_context's thread; run the io_context on one thread.
// Ownership: the Runtime owns its worker processes and kills them on
// destruction; the caller owns the io_context and the clock, which must
// outlive it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "sandbox/sandbox.h"
#include "metering/usage.h"
#include "repo/model_config.h"
#include "ipc/messages.h"
#include "runtime/accounting.h"
#include "runtime/cgroup_mover.h"
#include "runtime/worker_processes.h"
#include "sched/scheduler.h"
#include "tensor/tensor.h"

namespace thaw {

namespace cgroup {
class MemoryCgroups;
}
class Spawners;
class Preparations;
class ModelSnapshots;
struct Spawner;

// A request's inputs may take at most memory_mb / kRequestMemoryDivisor:
// the instance holds them, its copy of them as engine tensors and outputs.
constexpr int64_t kRequestMemoryDivisor = 2;

struct RuntimeOptions {
  // Path of the thaw-worker executable.
  std::string worker_path;
  // Node-wide budget for the memory_mb of live instances; 0 = unlimited.
  // A start that would exceed it first stops the least recently used idle
  // instances of other models; if that cannot make room, it fails with 503.
  int64_t memory_budget_mb = 0;
  // What counts against it (measured needs enforced memory cgroups, else
  // it charges memory_mb), and whom a start evicts first.
  sched::MemoryCharge memory_charge = sched::MemoryCharge::kConfigured;
  policy::EvictionOrder eviction_order = policy::EvictionOrder::kLeastRecentlyUsed;
  // Templates loading at once (sched::SchedulerOptions); 0 = no limit.
  int max_starting_templates = 0;
  // Calls in a row after which a template starts (sched::SchedulerOptions).
  int template_admit_calls = 1;
  // Adaptive keep-alive plans share the node's budget (sched::SchedulerOptions).
  bool keep_alive_pool = true;
  // Templates are forked by the zygote (sharing its initialised engine:
  // tens of ms and MB instead of ~0.6 s and ~50 MB each); false: each is a
  // process of its own (also what happens when the zygote cannot start).
  bool templates_from_zygote = true;
  // Where the runtime writes each model's effective config for its workers;
  // empty = a fresh directory under /tmp, removed on destruction.
  std::string run_dir;
  // Called on the io_context thread once per finished execution (successful
  // or not); not for requests failed before an answer (crash, timeout).
  std::function<void(const ExecutionRecord&)> on_execution;
  // Receives a usage record for every request (answered or refused), every
  // instance when it stops and every provisioned interval (metering/usage.h).
  // Not owned; must outlive the runtime. nullptr = none.
  metering::UsageSink* usage = nullptr;
  // Makes the memory cgroups that hold each instance, template and zygote
  // to its limit. Not owned; must outlive the runtime. nullptr, or one that
  // is not enforced(): memory_mb is not enforced.
  cgroup::MemoryCgroups* memory_cgroups = nullptr;
  // How workers are confined (src/sandbox/sandbox.h): on by default; off for
  // debugging; no-seccomp to measure the filter's cost.
  sandbox::SandboxMode sandbox = sandbox::SandboxMode::kOn;
  // The uid/gid workers run as. nullopt = nobody/nogroup when the server runs
  // as root; a server that is not root cannot switch users and leaves its
  // workers' uid unchanged (warning logged once). The run directory (when the
  // runtime creates it) is made readable by this group, mode 0750.
  std::optional<sandbox::WorkerUser> worker_user;
  // If set, every event the scheduler gets is appended here, for replay
  // (sched::Replay) and differential tests. Not owned.
  sched::EventLog* scheduler_log = nullptr;
  // Where prepared artifacts are kept by content (runtime/preparations.h);
  // empty = inside the run directory (made again by each server run). A
  // directory that outlives the server keeps them across restarts.
  std::string prepared_dir;
  // Prepare models' artifacts in the background after deploy (default); off:
  // instances started from the zygote load and freeze the model file.
  bool prepare = true;
  // The zygote keeps one child forked ahead of demand, already in a memory
  // cgroup (its limit set to the model's memory_mb when it is handed an
  // instance): a true-zero start skips the fork and the cgroup move (10-15 ms
  // here), at the cost of one idle process (~1 MB).
  bool zygote_standby = true;
};

// What an instance is doing, for status reports.
// kStopping: started with settings since replaced; it finishes its work and retires.
enum class InstanceState { kStarting, kIdle, kBusy, kStopping };

struct InstanceStatus {
  uint64_t id = 0;
  int pid = 0;  // 0 while a forked instance has not reported yet
  InstanceState state = InstanceState::kStarting;
  int in_flight = 0;
  std::string cgroup_dir;  // its memory cgroup; empty if memory is not enforced
  std::optional<sandbox::SandboxReport> sandbox;  // once ready: what its sandbox applied
};

struct SpawnerStatus {
  int pid = 0;
  bool ready = false;
  std::string cgroup_dir;
  std::optional<sandbox::SandboxReport> sandbox;  // once ready
  // Its standby is forked and in its memory cgroup: the next instance it
  // starts is handed that (template_standby, zygote_standby).
  bool standby_waiting = false;
};

// What the batcher has learned (src/policy/batching.h).
struct BatchingStatus {
  std::string mode;                 // off, fixed, adaptive
  int target_batch_size = 1;        // adaptive: the rows it aims for now
  double cost_intercept_us = 0;     // execution ~ intercept + per_row * rows
  double cost_per_row_us = 0;
  double arrival_rows_per_s = 0;
};

struct ModelStatus {
  std::string name;
  BatchingStatus batching;
  StartPath start_path = StartPath::kTemplate;
  std::vector<InstanceStatus> instances;
  std::optional<SpawnerStatus> spawner;  // the template or zygote this model forks from
  int queued = 0;
  std::string last_start_error;  // empty if the last start succeeded
  // Whether a request can be served now at the model's normal cold start: a
  // ready instance, or nothing failed, its prepared artifact is not being
  // made and (template/zygote path) the spawner is ready. Else the reason:
  // "... is preparing ...", "... the zygote is not ready yet", "... cannot
  // start: <error>".
  bool ready = false;
  std::string not_ready_reason;
  // Template path: the template cache's state (none, starting, ready).
  std::string template_state = "none";
  bool prepared = false;  // its prepared artifact is in place
  bool preparing = false;  // its artifact is being made (not ready until it is, or failed)
  // What one instance and its template count against memory_budget_mb now.
  int64_t instance_charge_mb = 0;
  int64_t template_charge_mb = 0;
};

class Runtime {
 public:
  Runtime(boost::asio::io_context& io, const Clock& clock, RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Registers a validated model and starts its min_instances.
  // kInvalidArgument if a model of that name exists.
  Status AddModel(ModelConfig config);

  const ModelConfig* FindModel(std::string_view name) const;
  // Where workers read effective configs; every worker's --model-dir is below it.
  const std::string& run_dir() const { return run_dir_; }
  std::vector<std::string> ModelNames() const;
  StatusOr<ModelStatus> GetModelStatus(std::string_view name) const;
  // ModelStatus::not_ready_reason alone ("" = ready), without the rest of
  // the status: cheap enough for readiness probes over many models.
  // kNotFound for an unknown model.
  StatusOr<std::string> ModelNotReadyReason(std::string_view name) const;

  // Runs one request. `inputs` are checked against the model's config and in
  // its input order; `output_names` selects outputs (empty = all).
  // `deadline_us` is on the runtime's clock. `done` is called exactly once,
  // on the io_context thread, possibly before Infer returns.
  void Infer(std::string_view model, std::vector<Tensor> inputs, std::vector<std::string> output_names,
             Micros deadline_us, InferCallback done);

  // Replaces a loaded model's settings (a validated config of the same model
  // directory). If a field a worker reads changed (model, tensors, threads,
  // instance_concurrency, memory_mb, start path, standby) new instances use
  // it: the template is replaced, starting and idle instances are stopped,
  // busy ones retire when they finish. Other fields (keep-alive, queue,
  // scaling, batching, timeouts) apply at once and leave workers alone.
  // The model file snapshot is kept. kNotFound for an unknown model.
  Status UpdateModelConfig(ModelConfig config);

  // Loads `config` (validated, read from the repository). A model not loaded
  // yet is added (AddModel). A loaded one is replaced only once the new
  // version is proven: a worker started from a staging copy of the config
  // and model file must load it and run its warm-up within the new
  // start_timeout_ms; then the copy becomes the model's, as with a settings
  // change that replaces workers. Until then, and if it fails, the old
  // version keeps serving. `done` gets Ok, or kUnavailable naming the load
  // error or timeout (the old version still serving), also if another reload
  // of the model is in progress. Called once, on the io_context thread.
  void ReloadModel(ModelConfig config, std::function<void(Status)> done);

  // True once the zygote (started with the first model that forks) has been
  // ready, or failed, or none is needed (latched: later loads and restarts
  // do not clear it). Deploying starts no instance, but each model's
  // prepared artifact is made in the background: a strict readiness probe
  // also asks ModelNotReadyReason of every model ("preparing" until made).
  bool Ready();

  // Unloads a model: its queued requests fail with kUnavailable, its
  // instances and template stop (requests running on them fail with
  // kUnavailable), and its name is free to load again. kNotFound if absent.
  Status RemoveModel(std::string_view name);

  // Starts instances so that at least `instances` are live (capped at
  // max_concurrency), ahead of traffic. Returns how many it started.
  StatusOr<int> Warm(std::string_view model, int instances);

  // Stops taking requests (new ones fail with kUnavailable) and calls
  // `drained` once every accepted request has been answered. Instances keep
  // running until Shutdown.
  void Drain(std::function<void()> drained);

  // Fails queued and in-flight requests with kUnavailable and kills every
  // instance, then waits (at most 5 s, returning as soon as they are gone)
  // for the killed processes to be reaped and their cgroups removed.
  // Idempotent.
  void Shutdown();

  // Closes the provisioned and held-memory intervals open now (and reopens
  // them), so usage read next includes that time up to now.
  void FlushUsage();
  // The instances still up as the usage records stopping them now would be
  // (stop_reason "running"): a report that includes them shows idle-warm time
  // and memory held so far (metering::UsageStats::Report). io thread only.
  std::vector<metering::InstanceRecord> RunningInstanceRecords() const;

 private:
  struct Model;
  struct Instance;
  struct Pending;
  struct Validation;

  // The scheduler decides; these carry out its actions (src/sched). The
  // pieces: WorkerProcesses (spawn, cgroups, reaping), Spawners (templates
  // and the zygote), LaunchInstance, InstanceChannel (frames), executions.h
  // (batches in and out), accounting.h (timings and usage records),
  // VersionCheck (reloads), run_files.h (what workers read).
  sched::Now NowPair() const;
  void Carry();
  void Launch(Model& model, uint64_t instance_id, StartPath path, bool provisioned);
  void Send(Model& model, const sched::Action& dispatch);
  void FailRequest(const sched::Action& fail);
  void Kill(Model& model, const sched::Action& stop);
  void Arm(Model& model, Micros wake);
  Status WriteRunDirectory(Model& model, bool snapshot_model_file);
  // New settings for `model` (already in model.config): the scheduler's
  // update and, when workers differ, a new template.
  void ApplySettings(Model& model, bool new_workers, std::string_view reason);
  std::string NotReadyReason(const Model& model) const;
  void TimeOutSpawner(Spawner& spawner, const std::string& message);
  // A forked instance that never reported: its template or zygote may be the
  // one stuck. Kills the spawner's unreported children and the spawner.
  void TimeOutForkedStart(Instance& instance, const std::string& message);
  void FinishValidation(const std::string& model, Status status);
  void OnClosed(Model& model, Instance& instance);
  void OnFrame(Model& model, Instance& instance, ipc::MessageType type, const std::string& payload);
  void MoveToCgroup(Model& model, Instance& instance);
  void MarkReady(Model& model, Instance& instance);
  // Moves a template's new standby into a memory cgroup of its model's
  // memory_mb ahead of demand, so the instance it becomes needs no move.
  void MoveStandby(Spawner& spawner);
  // The instance turned out to be its spawner's standby although its launch
  // did not take the standby's cgroup (not moved yet then): that group is
  // no one's now, and the standby is not there for the next launch.
  void ForgetUsedStandby(const Instance& instance);
  void OnResponse(Model& model, Instance& instance, const std::string& payload);
  // Tells the scheduler the peak of a memory cgroup (measured charge only).
  void ObserveMemory(const std::string& model, uint64_t instance_id, const std::string& cgroup_dir);
  void OnTimer(Model& model);
  // The zygote's held memory since the last call (a usage record, the platform's).
  void RecordZygoteHeld();

  boost::asio::io_context& io_;
  const Clock& clock_;
  RuntimeOptions options_;
  WorkerProcesses processes_;
  sched::Scheduler scheduler_;
  std::unique_ptr<Spawners> spawners_;  // templates and the zygote
  std::unique_ptr<Preparations> preparations_;  // artifacts, made in the background
  std::unique_ptr<ModelSnapshots> snapshots_;   // model files, one copy per content
  CgroupMover cgroup_mover_;  // forked instances into their cgroups, off the event loop
  sched::Actions actions_;  // the scheduler's, not carried out yet
  bool carrying_ = false;
  std::map<std::string, std::unique_ptr<Model>, std::less<>> models_;
  std::unordered_map<uint64_t, std::unique_ptr<Pending>> pending_;  // admitted requests, by id
  std::vector<std::unique_ptr<Model>> retired_models_;  // unloaded; their handlers may still run
  std::string run_dir_;
  bool owns_run_dir_ = false;
  uint64_t next_request_id_ = 1;
  bool shut_down_ = false;
  bool startup_settled_ = false;  // Ready() latched
  Micros zygote_held_since_wall_us_ = 0;  // the zygote's held memory is recorded up to here
  uint64_t standby_groups_ = 0;  // names of standbys' memory cgroups
  std::map<std::string, std::shared_ptr<Validation>, std::less<>> validations_;  // reloads in progress, by model
  bool draining_ = false;              // no new requests
  std::function<void()> on_drained_;   // called once the accepted ones are answered
  void CheckDrained();
};

}  // namespace thaw
