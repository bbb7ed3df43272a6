// Runtime: the data plane and the scheduler's actions. Loading and
// settings are in runtime_models.cc, status reports in runtime_status.cc.
#include "runtime/runtime.h"

#include <signal.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>

#include "base/log.h"
#include "cgroup/memory_cgroup.h"
#include "runtime/executions.h"
#include "runtime/launch.h"
#include "runtime/run_files.h"
#include "runtime/runtime_internal.h"
#include "sched/usage_records.h"
#include "settings/policy_options.h"
#include "tensor/batch.h"

namespace thaw {

namespace asio = boost::asio;

namespace {

using sched::Action;
using sched::kNever;

}  // namespace

Runtime::Runtime(asio::io_context& io, const Clock& clock, RuntimeOptions options)
    : io_(io),
      clock_(clock),
      options_(std::move(options)),
      processes_(io, clock, {.worker_path = options_.worker_path,
                             .memory_cgroups = options_.memory_cgroups,
                             .sandbox = options_.sandbox,
                             .worker_user = options_.worker_user}),
      scheduler_({.memory_budget_mb = options_.memory_budget_mb,
                  .memory_charge = options_.memory_charge,
                  .eviction_order = options_.eviction_order,
                  .max_starting_templates = options_.max_starting_templates,
                  .template_admit_calls = options_.template_admit_calls,
                  .keep_alive_pool = options_.keep_alive_pool,
                  .log = options_.scheduler_log}),
      cgroup_mover_(io) {
  run_dir_ = options_.run_dir;
  if (run_dir_.empty()) {
    StatusOr<std::string> made = MakeRunDirectory(processes_.worker_user());
    if (made.ok()) {
      run_dir_ = *made;
      owns_run_dir_ = true;
    } else {
      LogEvent(LogLevel::kError, "run_dir_failed", LogFields({{"error", LogValue(made.status().message())}}));
    }
  }
  spawners_ = std::make_unique<Spawners>(
      io_, clock_, processes_, run_dir_,
      SpawnerEvents{
          .config_of = [this](const std::string& model) -> const ModelConfig* {
            auto it = models_.find(model);
            return it == models_.end() || it->second->removed ? nullptr : &it->second->config;
          },
          .template_ready =
              [this](const std::string& model) {
                scheduler_.StartSucceeded(model);
                scheduler_.TemplateReady(model, NowPair(), &actions_);
                if (const Spawner* spawner = spawners_->TemplateOf(model)) ObserveMemory(model, 0, spawner->cgroup_dir);
                Carry();
              },
          .standby_forked = [this](Spawner& spawner) { MoveStandby(spawner); },
          .template_forked =
              [this](Spawner& spawner) {
                if (spawner.cgroup_dir.empty()) return;  // memory not enforced
                cgroup_mover_.Move(spawner.pid, spawner.cgroup_dir,
                                   [this, model = spawner.owner, dir = spawner.cgroup_dir](Status moved) {
                                     if (moved.ok()) return ObserveMemory(model, 0, dir);  // what it loaded so far
                                     // It stays in the zygote's group: held to that limit instead.
                                     LogEvent(LogLevel::kWarning, "template_move_failed",
                                              LogFields({{"model", LogValue(model)}, {"error", LogValue(moved.message())}}));
                                   });
              },
          .zygote_ready = [this] { startup_settled_ = true; },
          .template_gone =
              [this](const std::string& model, const std::string& error) {
                scheduler_.TemplateGone(model, error, NowPair(), &actions_);
                Carry();
              },
          .start_timed_out =
              [this](Spawner& spawner, const std::string& message) {
                TimeOutSpawner(spawner, message);
                Carry();
              },
      },
      options_.templates_from_zygote, options_.zygote_standby);
  snapshots_ = std::make_unique<ModelSnapshots>(run_dir_ + "/.models");
  preparations_ = std::make_unique<Preparations>(
      io_, clock_, *spawners_, options_.prepared_dir.empty() ? run_dir_ + "/.prepared" : options_.prepared_dir,
      Preparations::Events{.done = [this](const std::string& name, const Status& status, bool made) {
        auto it = models_.find(name);
        if (it == models_.end()) return;
        it->second->prepared = status.ok() && made;
        it->second->preparing = false;
        // A model file the engine cannot load is the model's start error
        // now, not at its first request.
        if (status.code() == StatusCode::kInvalidArgument) scheduler_.SetStartError(name, status.message());
        if (!status.ok())
          LogEvent(LogLevel::kWarning, "model_prepare_failed", LogFields({{"model", name}, {"error", LogValue(status.message())}}));
      }});
}

Runtime::~Runtime() {
  Shutdown();
  std::error_code ignored;
  if (owns_run_dir_) std::filesystem::remove_all(run_dir_, ignored);
}

void Runtime::Infer(std::string_view model_name, std::vector<Tensor> inputs, std::vector<std::string> output_names,
                    Micros deadline_us, InferCallback done) {
  auto finish_now = [&](Status status) {
    InferOutcome outcome;
    outcome.status = std::move(status);
    asio::post(io_, [done = std::move(done), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
  };
  auto it = models_.find(model_name);
  if (it == models_.end()) return finish_now(NotFound("model '" + std::string(model_name) + "' is not loaded"));
  Model& model = *it->second;
  const Micros now = clock_.NowMicros();
  if (options_.usage) {
    done = [this, name = model.config.name, memory_mb = model.config.memory_mb, id = next_request_id_,
            done = std::move(done)](InferOutcome outcome) {
      options_.usage->Record(InvocationRecordOf(name, memory_mb, id, outcome, clock_.WallMicros()));
      done(std::move(outcome));
    };
  }
  // Refused while draining or after shutdown: still a usage record (a 503).
  if (shut_down_ || draining_) {
    ++next_request_id_;
    return finish_now(Unavailable("server is shutting down"));
  }
  if (deadline_us <= now) return finish_now(DeadlineExceeded("request deadline already passed"));
  // A request the instance cannot hold would only get it OOM-killed.
  int64_t input_bytes = 0;
  for (const Tensor& input : inputs) input_bytes += static_cast<int64_t>(input.data.size());
  const int64_t max_input_bytes = (model.config.memory_mb << 20) / kRequestMemoryDivisor;
  if (input_bytes > max_input_bytes)
    return finish_now(InvalidArgument(
        "request inputs take " + std::to_string(input_bytes) + " bytes, more than model '" + model.config.name +
        "' can hold: at most " + std::to_string(max_input_bytes) + " bytes (1/" + std::to_string(kRequestMemoryDivisor) +
        " of memory_mb=" + std::to_string(model.config.memory_mb) + ")"));

  const uint64_t id = next_request_id_++;
  auto pending = std::make_unique<Pending>();
  pending->inputs = std::move(inputs);
  pending->output_names = std::move(output_names);
  sched::Request request{.id = id, .arrival_us = now, .deadline_us = deadline_us};
  // A request whose tensors disagree on dim 0 still runs, alone.
  auto rows = BatchRows(pending->inputs);
  request.rows = pending->rows = rows.ok() ? *rows : 1;
  if (model.config.batching != Batching::kOff) {
    request.batch_key = rows.ok() ? ShapeKey(pending->inputs) : "#" + std::to_string(id);
    // Requests selecting different outputs are not mixed either.
    for (const std::string& name : pending->output_names) request.batch_key += "|" + name;
  }
  pending->arrival_us = now;
  pending->done = std::move(done);
  Pending& held = *pending_.emplace(id, std::move(pending)).first->second;
  const Status admitted = scheduler_.Arrive(model.config.name, std::move(request), NowPair(), &actions_);
  if (!admitted.ok()) {
    done = std::move(held.done);
    pending_.erase(id);
    return finish_now(admitted);
  }
  Carry();
}

std::vector<metering::InstanceRecord> Runtime::RunningInstanceRecords() const {
  std::vector<metering::InstanceRecord> records;
  const Micros wall_now = clock_.WallMicros();
  for (const sched::Action& running : scheduler_.RunningInstanceUsage(NowPair())) {
    auto it = models_.find(running.model);
    if (it == models_.end()) continue;
    records.push_back(sched::InstanceRecordOf(running, it->second->config.memory_mb, wall_now));
  }
  return records;
}

void Runtime::FlushUsage() {
  scheduler_.FlushProvisioned(NowPair(), &actions_);
  Carry();
  RecordZygoteHeld();
}

void Runtime::RecordZygoteHeld() {
  const Spawner* zygote = spawners_->ZygoteIfAny();
  const Micros now_wall = clock_.WallMicros();
  if (!options_.usage || !zygote || zygote->gone) {
    zygote_held_since_wall_us_ = now_wall;
    return;
  }
  // The platform's: the memory its cgroup may hold, as instances count memory_mb.
  const Micros started_wall = now_wall - (clock_.NowMicros() - zygote->started_us);
  const Micros from = std::max(zygote_held_since_wall_us_, started_wall);
  if (now_wall > from)
    options_.usage->Record(metering::HeldRecord{.model = "",
                                                .kind = metering::HeldKind::kZygote,
                                                .memory_mb = cgroup::kZygoteMemoryMb,
                                                .start_wall_us = from,
                                                .end_wall_us = now_wall});
  zygote_held_since_wall_us_ = now_wall;
}

sched::Now Runtime::NowPair() const { return {.mono_us = clock_.NowMicros(), .wall_us = clock_.WallMicros()}; }

void Runtime::Carry() {
  // Carrying out an action may report back to the scheduler (a start that
  // cannot be launched), which appends more; they run in this same loop.
  if (carrying_) return;
  carrying_ = true;
  for (size_t i = 0; i < actions_.size(); ++i) {
    Action action = std::move(actions_[i]);
    auto it = models_.find(action.model);
    if (it == models_.end() && action.kind != Action::Kind::kFail) continue;  // removed meanwhile
    switch (action.kind) {
      case Action::Kind::kStart: Launch(*it->second, action.instance_id, action.path, action.provisioned); break;
      case Action::Kind::kStartTemplate:
        if (Status started = spawners_->StartTemplate(it->second->config); !started.ok())
          scheduler_.TemplateGone(action.model, started.message(), NowPair(), &actions_);
        break;
      case Action::Kind::kStopTemplate:
        spawners_->StopTemplate(action.model);
        LogEvent(LogLevel::kInfo, "template_stop", LogFields({{"model", action.model}, {"reason", action.reason}}));
        break;
      case Action::Kind::kHeld:
        if (options_.usage) options_.usage->Record(sched::HeldRecordOf(action, it->second->config.memory_mb));
        break;
      case Action::Kind::kDispatch: Send(*it->second, action); break;
      case Action::Kind::kFail: FailRequest(action); break;
      case Action::Kind::kStop: Kill(*it->second, action); break;
      case Action::Kind::kWake: Arm(*it->second, action.at_us); break;
      case Action::Kind::kProvisioned:
        if (options_.usage) options_.usage->Record(sched::ProvisionedRecordOf(action, it->second->config.memory_mb));
        break;
      case Action::Kind::kNotice: {
        const bool warning = action.reason == "instance_start_refused";
        std::string fields = LogFields({{"model", action.model}});
        if (!action.detail.empty()) fields += " " + action.detail;
        LogEvent(warning ? LogLevel::kWarning : action.reason == "keep_alive_plan" ? LogLevel::kDebug : LogLevel::kInfo,
                 action.reason, fields);
        break;
      }
    }
  }
  actions_.clear();
  carrying_ = false;
  if (on_drained_) CheckDrained();
}

void Runtime::FailRequest(const Action& fail) {
  auto it = pending_.find(fail.request_ids.at(0));
  if (it == pending_.end()) return;
  std::unique_ptr<Pending> pending = std::move(it->second);
  pending_.erase(it);
  InferOutcome outcome;
  outcome.status = fail.status;
  outcome.timing.instance_id = fail.instance_id;
  outcome.timing.total_us = clock_.NowMicros() - pending->arrival_us;
  if (fail.instance_id == 0) outcome.timing.queue_us = outcome.timing.total_us;
  asio::post(io_, [done = std::move(pending->done), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
}

void Runtime::Launch(Model& model, uint64_t instance_id, StartPath path, bool provisioned) {
  auto instance = std::make_shared<Instance>();
  instance->id = instance_id;
  instance->spawn_start_us = clock_.NowMicros();
  StatusOr<LaunchedInstance> launched =
      LaunchInstance(processes_, *spawners_, clock_, model.config, model.run_directory, instance_id, path);
  if (!launched.ok()) {
    LogEvent(LogLevel::kError, "instance_start_failed",
             LogFields({{"model", model.config.name}, {"error", LogValue(launched.status().message())}}));
    scheduler_.StartFailed(model.config.name, instance_id, launched.status().message(), NowPair(), &actions_);
    return;
  }
  instance->pid = launched->pid;
  instance->start_path = launched->path;
  instance->premoved_pid = launched->premoved_pid;
  instance->spawn_done_us = launched->spawn_done_us;
  instance->cgroup_dir = launched->cgroup_dir;
  instance->forked_by = launched->forked_by;
  if (auto spawner = launched->forked_by.lock(); spawner && !spawner->ready && !spawner->gone)
    instance->asked_unready_spawner = true;
  instance->channel = std::make_shared<InstanceChannel>(io_, launched->fd);
  model.instances.emplace(instance->id, instance);
  LogEvent(LogLevel::kInfo, "instance_start",
           LogFields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                   {"start_path", std::string(StartPathName(instance->start_path))},
                   {"pid", std::to_string(instance->pid)}, {"provisioned", provisioned ? "true" : "false"}}));
  Instance* raw = instance.get();
  instance->channel->Start({
      .frame = [this, &model, raw](ipc::MessageType type, const std::string& payload) { OnFrame(model, *raw, type, payload); },
      .malformed =
          [this, &model, raw](const std::string& error) {
            LogEvent(LogLevel::kError, "instance_protocol_error",
                     LogFields({{"model", model.config.name}, {"instance", std::to_string(raw->id)}, {"error", LogValue(error)}}));
            scheduler_.InstanceGone(model.config.name, raw->id, sched::GoneKind::kProtocolError,
                                    Internal("instance sent a malformed message: " + error), "", NowPair(), &actions_);
          },
      .closed = [this, &model, raw] { OnClosed(model, *raw); },
      .after_read = [this] { Carry(); },
  });
}

StatusOr<int> Runtime::Warm(std::string_view model_name, int instances) {
  if (!models_.count(model_name)) return NotFound("model '" + std::string(model_name) + "' is not loaded");
  if (shut_down_) return 0;
  StatusOr<int> started = scheduler_.Warm(model_name, instances, NowPair(), &actions_);
  Carry();
  return started;
}

void Runtime::Send(Model& model, const Action& dispatch) {
  auto found = model.instances.find(dispatch.instance_id);
  if (found == model.instances.end()) return;
  Instance& instance = *found->second;
  const Micros now = clock_.NowMicros();
  std::vector<std::vector<Tensor>> inputs;
  std::vector<std::string> output_names;
  for (uint64_t id : dispatch.request_ids) {
    Pending& pending = *pending_.at(id);
    pending.dispatched_us = now;
    if (output_names.empty()) output_names = pending.output_names;
    inputs.push_back(std::move(pending.inputs));
  }
  auto message = ExecutionRequest(dispatch.execution_id, std::move(inputs), std::move(output_names));
  if (!message.ok()) {
    // The instance is replaced and the requests fail, rather than guess.
    LogEvent(LogLevel::kError, "batch_concat_failed",
             LogFields({{"model", model.config.name}, {"error", LogValue(message.status().message())}}));
    scheduler_.InstanceGone(model.config.name, instance.id, sched::GoneKind::kProtocolError, message.status(), "",
                            NowPair(), &actions_);
    return;
  }
  instance.dispatched_us.emplace(dispatch.execution_id, now);
  instance.channel->Send(ipc::EncodeInferRequestFrame(std::move(message).value()));
}

void Runtime::OnClosed(Model& model, Instance& instance) {
  // The kernel counts the kill before the process exits and its socket closes.
  const bool oom = processes_.OomKilled(instance.cgroup_dir);
  const std::string limit = "memory limit (memory_mb=" + std::to_string(model.config.memory_mb) + ")";
  scheduler_.InstanceGone(
      model.config.name, instance.id, oom ? sched::GoneKind::kOom : sched::GoneKind::kCrashed,
      Unavailable(oom ? "instance of model '" + model.config.name + "' exceeded its " + limit + " and was killed"
                      : "instance " + std::to_string(instance.id) + " of model '" + model.config.name +
                            "' exited while running the request"),
      oom ? "instance exceeded its " + limit + " while starting and was killed" : "", NowPair(), &actions_);
  Carry();
}

void Runtime::MoveStandby(Spawner& spawner) {
  // A template's standby gets its model's limit; the zygote's a placeholder,
  // replaced by its model's memory_mb when it becomes an instance (launch.cc).
  auto it = models_.find(spawner.owner);
  if ((!spawner.owner.empty() && it == models_.end()) || spawner.standby_pid <= 0) return;
  const int64_t memory_mb = spawner.owner.empty() ? cgroup::kZygoteMemoryMb : it->second->config.memory_mb;
  auto dir = processes_.MakeCgroup("standby-" + std::to_string(++standby_groups_), memory_mb);
  if (!dir.ok() || dir->empty()) return;  // not enforced: nothing to move; an error: moved at its start instead
  spawner.standby_cgroup = *dir;
  cgroup_mover_.Move(spawner.standby_pid, *dir,
                     [this, weak = spawner.weak_from_this(), pid = spawner.standby_pid, dir = *dir](Status moved) {
                       std::shared_ptr<Spawner> spawner = weak.lock();
                       const bool current = spawner && !spawner->gone && spawner->standby_pid == pid &&
                                            spawner->standby_cgroup == dir;
                       if (current && moved.ok()) {
                         spawner->standby_moved = true;
                         // The template is loaded and in its group by now (one mover, in order).
                         if (!spawner->owner.empty()) ObserveMemory(spawner->owner, 0, spawner->cgroup_dir);
                         return;
                       }
                       if (current) spawner->standby_cgroup.clear();  // its instance gets a group at its start
                       // Superseded, or it failed: the group goes once empty (an instance that took it keeps it).
                       if (!moved.ok()) processes_.RemoveCgroupLater(dir);
                     });
}

void Runtime::ForgetUsedStandby(const Instance& instance) {
  std::shared_ptr<Spawner> spawner = instance.forked_by.lock();
  if (!spawner || spawner->standby_pid <= 0 || spawner->standby_pid != instance.pid) return;
  spawner->standby_pid = 0;
  spawner->standby_moved = false;
  // Empty once the instance has moved on into its own group.
  if (!spawner->standby_cgroup.empty()) processes_.RemoveCgroupLater(std::exchange(spawner->standby_cgroup, ""));
}

void Runtime::MarkReady(Model& model, Instance& instance) {
  instance.ready = true;
  const ipc::ReadyMessage& ready = instance.ready_message;
  LogEvent(LogLevel::kInfo, "instance_ready",
           LogFields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                      {"pid", std::to_string(instance.pid)},
                      {"start_path", std::string(StartPathName(instance.start_path))},
                      {"start_level", std::string(StartLevelName(static_cast<StartLevel>(ready.start_level)))},
                      {"start_ms", MillisText(clock_.NowMicros() - instance.spawn_start_us)},
                      {"load_ms", MillisText(ready.model_load_us)}, {"warmup_ms", MillisText(ready.warmup_us)}}));
  scheduler_.InstanceReady(model.config.name, instance.id, NowPair(), &actions_);
}

void Runtime::MoveToCgroup(Model& model, Instance& instance) {
  // A forked instance is sandboxed before it can join its memory cgroup, so
  // the server moves it, off the event loop (cgroup_mover.h), as soon as it
  // knows the pid: until then it is held by its spawner's cgroup. (Pages it
  // allocated before move with it on v1, memory.move_charge_at_immigrate.)
  if (instance.start_path == StartPath::kExec || instance.cgroup_dir.empty()) {
    instance.moved = true;  // nothing to move: exec'd workers join their group themselves
    return;
  }
  if (instance.pid <= 0 || instance.moving || instance.moved) return;
  instance.moving = true;
  cgroup_mover_.Move(instance.pid, instance.cgroup_dir,
                     [this, name = model.config.name, id = instance.id, pid = instance.pid](Status moved) {
                       auto it = models_.find(name);
                       if (it == models_.end()) return;  // gone anyway
                       auto found = it->second->instances.find(id);
                       if (found == it->second->instances.end()) return;
                       if (moved.ok()) {
                         found->second->moved = true;
                         // Its Ready came first: it gets work now, inside its own limit.
                         if (found->second->ready_reported && !found->second->ready) {
                           MarkReady(*it->second, *found->second);
                           Carry();
                         }
                         return;
                       }
                       const std::string error =
                           "cannot enforce memory_mb: cannot move instance into its memory cgroup: " + moved.message();
                       scheduler_.SetStartError(name, error);
                       LogEvent(LogLevel::kError, "instance_init_error",
                                LogFields({{"model", name}, {"instance", std::to_string(id)}, {"error", LogValue(error)}}));
                       ::kill(pid, SIGKILL);  // EOF follows: its requests fail with 503
                     });
}

void Runtime::OnFrame(Model& model, Instance& instance, ipc::MessageType type, const std::string& payload) {
  switch (type) {
    case ipc::MessageType::kForked: {
      auto forked = ipc::DecodeForked(payload);
      if (!forked.ok() || instance.start_path == StartPath::kExec || instance.ready_reported) {
        scheduler_.InstanceGone(model.config.name, instance.id, sched::GoneKind::kProtocolError,
                                Internal("instance sent an unexpected Forked message"), "", NowPair(), &actions_);
        return;
      }
      instance.pid = forked->pid;
      // The standby moved ahead of demand needs no move (a dead one was replaced by a fresh fork: moved now).
      if (instance.pid == instance.premoved_pid) instance.moved = true;
      ForgetUsedStandby(instance);
      MoveToCgroup(model, instance);
      return;
    }
    case ipc::MessageType::kReady: {
      auto ready = ipc::DecodeReady(payload);
      if (ready.ok()) {
        instance.ready_message = *ready;
        // A forked instance is known by its pid only from here on.
        if (instance.pid == 0) instance.pid = ready->pid;
        if (instance.start_path != StartPath::kExec) instance.spawn_done_us = ready->started_us;
        if (auto spawner = instance.forked_by.lock(); spawner && instance.asked_unready_spawner && spawner->ready)
          instance.spawner_wait_us = std::max<Micros>(0, spawner->ready_at_us - instance.spawn_start_us);
      }
      instance.ready_reported = true;
      MoveToCgroup(model, instance);  // if its Forked did not already
      // Work goes to an instance only inside its own memory limit: one whose
      // move has not landed yet is ready when it does.
      if (instance.moved) MarkReady(model, instance);
      return;
    }
    case ipc::MessageType::kInitError: {
      auto error = ipc::DecodeInitError(payload);
      const std::string message = error.ok() ? error->message : "worker reported an unreadable error";
      scheduler_.SetStartError(model.config.name, message);
      LogEvent(LogLevel::kError, "instance_init_error",
               LogFields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                       {"error", LogValue(message)}}));
      return;  // the worker exits; EOF handling fails the queue
    }
    case ipc::MessageType::kInferResponse: return OnResponse(model, instance, payload);
    default:
      scheduler_.InstanceGone(model.config.name, instance.id, sched::GoneKind::kProtocolError,
                              Internal("instance sent an unexpected message"), "", NowPair(), &actions_);
  }
}

void Runtime::ObserveMemory(const std::string& model, uint64_t instance_id, const std::string& cgroup_dir) {
  if (options_.memory_charge != sched::MemoryCharge::kMeasured || cgroup_dir.empty()) return;
  auto peak = cgroup::MemoryPeakBytes(cgroup_dir);
  if (peak.ok()) scheduler_.ObserveMemory(model, instance_id, *peak, NowPair());
}

void Runtime::OnResponse(Model& model, Instance& instance, const std::string& payload) {
  const Micros now = clock_.NowMicros();
  auto response = ipc::DecodeInferResponse(payload);
  if (!response.ok()) {
    scheduler_.InstanceGone(model.config.name, instance.id, sched::GoneKind::kProtocolError,
                            Internal(response.status().message()), "", NowPair(), &actions_);
    return;
  }
  auto sent = instance.dispatched_us.find(response->request_id);
  if (sent == instance.dispatched_us.end()) return;
  const Micros round_trip_us = now - sent->second;
  instance.dispatched_us.erase(sent);
  const Status status = response->code == StatusCode::kOk ? Status::Ok() : Status(response->code, response->error);
  std::optional<sched::Completion> done = scheduler_.ExecutionDone(
      model.config.name, instance.id, response->request_id, round_trip_us, status.ok(), NowPair(), &actions_);
  if (instance.memory_read_us < 0 || now - instance.memory_read_us >= kMicrosPerSecond) {
    instance.memory_read_us = now;
    ObserveMemory(model.config.name, instance.id, instance.cgroup_dir);
  }
  if (!done) return;  // its requests already failed (deadline)
  std::vector<std::unique_ptr<Pending>> answered;
  std::vector<AnsweredRequest> requests;
  for (const sched::Completion::Item& item : done->requests) {
    auto found = pending_.find(item.id);
    if (found == pending_.end()) continue;
    answered.push_back(std::move(found->second));
    pending_.erase(found);
    requests.push_back({.rows = item.rows, .arrival_us = answered.back()->arrival_us,
                        .dispatched_us = answered.back()->dispatched_us, .batch_wait_us = item.batch_wait_us});
  }
  const ipc::ReadyMessage& ready = instance.ready_message;
  std::vector<InferOutcome> outcomes = AnswerOutcomes(
      model.config.name, status, std::move(response->outputs), response->compute_us, requests,
      {.id = instance.id,
       .provisioned = done->instance.provisioned,
       .start = {.path = instance.start_path,
                 .level = static_cast<StartLevel>(ready.start_level),
                 .spawn_start_us = instance.spawn_start_us,
                 .spawner_wait_us = instance.spawner_wait_us,
                 .spawn_done_us = instance.spawn_done_us,
                 .ready_us = done->instance.ready_us,
                 .worker_started_us = ready.started_us,
                 .runtime_init_us = ready.runtime_init_us,
                 .model_load_us = ready.model_load_us,
                 .warmup_us = ready.warmup_us}},
      now);
  if (options_.on_execution)
    options_.on_execution({.model = model.config.name,
                           .instance_id = instance.id,
                           .requests = static_cast<int>(done->requests.size()),
                           .rows = done->rows,
                           .compute_us = response->compute_us,
                           .round_trip_us = round_trip_us,
                           .memory_mb = model.config.memory_mb,
                           .ok = status.ok() && (outcomes.empty() || outcomes.front().status.ok())});
  // A cold start is logged once per execution, not per request in it.
  if (!outcomes.empty() && outcomes.front().timing.cold_start)
    LogEvent(LogLevel::kInfo, "cold_start",
             ColdStartFields(model.config.name, instance.id, instance.start_path,
                             static_cast<StartLevel>(instance.ready_message.start_level), outcomes.front().timing.cold));
  for (size_t i = 0; i < outcomes.size(); ++i) answered[i]->done(std::move(outcomes[i]));
}

void Runtime::Kill(Model& model, const Action& stop) {
  auto it = model.instances.find(stop.instance_id);
  if (it == model.instances.end()) return;
  std::shared_ptr<Instance> instance = it->second;
  // A forked instance that never reported: its template or zygote may be the
  // one stuck (stopped, or its fork hung).
  if (stop.reason == "start_timeout" && !instance->ready) TimeOutForkedStart(*instance, stop.status.message());
  model.instances.erase(it);
  // Its socket is closed and it is killed (SIGKILL: an idle instance holds
  // nothing worth a clean exit, and a stopped or hung one would never read
  // the EOF).
  instance->channel->Close();
  if (instance->pid > 0) ::kill(instance->pid, SIGKILL);
  if (options_.usage) options_.usage->Record(sched::InstanceRecordOf(stop, model.config.memory_mb, clock_.WallMicros()));
  processes_.RemoveCgroupLater(instance->cgroup_dir);
  LogEvent(stop.fault ? LogLevel::kWarning : LogLevel::kInfo, "instance_stop",
           LogFields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                   {"pid", std::to_string(instance->pid)}, {"reason", stop.reason},
                   {"failed_requests", std::to_string(stop.request_ids.size())}}));
}

void Runtime::OnTimer(Model& model) {
  scheduler_.Wake(model.config.name, NowPair(), &actions_);
  Carry();
}

void Runtime::TimeOutForkedStart(Instance& instance, const std::string& message) {
  // A child that said Forked is killed by its pid (Kill); one that never did
  // was never forked: its template or zygote is stuck, and goes.
  if (instance.pid > 0) return;
  std::shared_ptr<Spawner> by = instance.forked_by.lock();
  if (!by || by->gone || !by->ready) return;
  TimeOutSpawner(*by, message);
}

void Runtime::TimeOutSpawner(Spawner& spawner, const std::string& message) {
  LogEvent(LogLevel::kWarning, "spawner_start_timeout",
           LogFields({{"pid", std::to_string(spawner.pid)}, {"error", LogValue(message)}}));
  // Instances waiting for it fail their start naming the cause.
  for (auto& [name, model] : models_) {
    bool waiting = false;
    for (const auto& [id, instance] : model->instances)
      waiting |= !instance->ready && instance->forked_by.lock().get() == &spawner;
    if (waiting) scheduler_.SetStartError(name, message);
  }
  spawners_->TimeOut(spawner, message);
}

void Runtime::Arm(Model& model, Micros wake) {
  model.wake_us = wake;
  if (wake == kNever) {
    if (model.armed_wake_us != kNever) {
      model.armed_wake_us = kNever;
      model.timer.cancel();
    }
    return;
  }
  // A timer armed for no later than `wake` stays: if it fires before the
  // wake then wanted, it only re-arms (Wake is for when something is due).
  // Under steady load the earliest deadline moves with every execution;
  // cancelling and re-arming each time cost CPU.
  if (model.armed_wake_us <= wake) return;
  model.armed_wake_us = wake;
  const Micros now = clock_.NowMicros();
  model.timer.expires_after(std::chrono::microseconds(std::max<Micros>(0, wake - now)));  // cancels the earlier wait
  model.timer.async_wait([this, &model, wake](const boost::system::error_code& ec) {
    if (ec || model.armed_wake_us != wake || model.removed) return;  // cancelled or superseded
    model.armed_wake_us = kNever;
    if (model.wake_us == kNever) return;
    // Nothing changes but through the scheduler, so nothing is due before its wake.
    if (clock_.NowMicros() < model.wake_us) return Arm(model, model.wake_us);
    model.wake_us = kNever;
    OnTimer(model);
  });
}

void Runtime::Drain(std::function<void()> drained) {
  draining_ = true;
  on_drained_ = std::move(drained);
  CheckDrained();
}

void Runtime::CheckDrained() {
  if (!scheduler_.Idle()) return;
  // Answers are delivered through posted callbacks; finish after them.
  asio::post(io_, std::exchange(on_drained_, nullptr));
}

void Runtime::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  const Status status = Unavailable("server is shutting down");
  for (auto& [name, model] : models_) {
    (void)scheduler_.RemoveModel(name, status, "shutdown", NowPair(), &actions_);
    Carry();
    model->wake_us = model->armed_wake_us = kNever;
    model->timer.cancel();
  }
  RecordZygoteHeld();
  spawners_->Shutdown();
  while (!validations_.empty()) validations_.begin()->second->check->Cancel(Unavailable("server is shutting down"));
  // Reap the processes just killed (templates, the zygote, exec instances)
  // and remove their cgroups; it returns as soon as they are gone. The bound
  // is generous because a kill can take seconds to complete (a large process
  // under load, or built with AddressSanitizer: CI saw 500 ms run out).
  processes_.Stop(5 * kMicrosPerSecond);
}

}  // namespace thaw
