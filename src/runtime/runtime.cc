#include "runtime/runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>

#include "base/log.h"
#include "runtime/run_files.h"
#include "runtime/spawners.h"
#include "runtime/version_check.h"
#include "sched/usage_records.h"
#include "cgroup/memory_cgroup.h"
#include "ipc/messages.h"
#include "policy/admission.h"
#include "policy/autoscaler.h"
#include "policy/batching.h"
#include "policy/keep_alive.h"
#include "policy/provisioned.h"
#include "policy/scaling.h"
#include "settings/policy_options.h"
#include "tensor/batch.h"

extern char** environ;

namespace thaw {

namespace asio = boost::asio;

namespace {

using sched::Action;
using sched::kNever;

std::string Fields(std::initializer_list<std::pair<std::string_view, std::string>> kv) { return LogFields(kv); }

}  // namespace

// A request's payload while the scheduler has it (queued or running).
struct Runtime::Pending {
  std::vector<Tensor> inputs;  // moved out when dispatched
  std::vector<std::string> output_names;
  int64_t rows = 1;  // dim 0 of the inputs
  Micros arrival_us = 0;
  Micros dispatched_us = 0;
  InferCallback done;
};

// An instance's process and its channel; the scheduler holds its state.
struct Runtime::Instance {
  uint64_t id = 0;
  pid_t pid = 0;
  bool ready = false;  // it sent Ready
  std::shared_ptr<InstanceChannel> channel;
  std::map<uint64_t, Micros> dispatched_us;  // executions in flight, by id
  StartPath start_path = StartPath::kExec;
  Micros spawn_start_us = 0;  // Launch
  Micros spawn_done_us = 0;   // exec: posix_spawn returned; fork: the child runs
  ipc::ReadyMessage ready_message;
  std::weak_ptr<Spawner> forked_by;    // the template or zygote asked to fork it
  std::string cgroup_dir;   // its memory cgroup; empty if memory is not enforced
};

// A new version of a loaded model being proven (ReloadModel): a worker
// loading it from a staging directory.
// A reload in progress: the new version, staged, being proven.
struct Runtime::Validation {
  ModelConfig config;
  std::string staging_dir;
  std::shared_ptr<VersionCheck> check;
  std::function<void(Status)> done;
};

struct Runtime::Model {
  Model(asio::io_context& io, ModelConfig c) : config(std::move(c)), timer(io) {}

  ModelConfig config;
  // Where workers read the effective config: config.json as the runtime
  // holds it (settings may change while serving) and a link to the model file.
  std::string run_directory;
  bool removed = false;  // unloaded; kept only until its callbacks drain
  std::map<uint64_t, std::shared_ptr<Instance>> instances;  // processes, by the scheduler's ids
  asio::steady_timer timer;
  Micros wake_us = kNever;        // when the scheduler wants Wake
  Micros armed_wake_us = kNever;  // when the timer fires: no later than wake_us
};

Runtime::Runtime(asio::io_context& io, const Clock& clock, RuntimeOptions options)
    : io_(io),
      clock_(clock),
      options_(std::move(options)),
      processes_(io, clock, {.worker_path = options_.worker_path,
                             .memory_cgroups = options_.memory_cgroups,
                             .sandbox = options_.sandbox,
                             .worker_user = options_.worker_user}),
      scheduler_({.memory_budget_mb = options_.memory_budget_mb, .log = options_.scheduler_log}) {
  run_dir_ = options_.run_dir;
  if (run_dir_.empty()) {
    StatusOr<std::string> made = MakeRunDirectory(processes_.worker_user());
    if (made.ok()) {
      run_dir_ = *made;
      owns_run_dir_ = true;
    } else {
      LogEvent(LogLevel::kError, "run_dir_failed", Fields({{"error", LogValue(made.status().message())}}));
    }
  }
  spawners_ = std::make_unique<Spawners>(
      io_, clock_, processes_, run_dir_,
      SpawnerEvents{
          .config_of = [this](const std::string& model) -> const ModelConfig* {
            auto it = models_.find(model);
            return it == models_.end() || it->second->removed ? nullptr : &it->second->config;
          },
          .template_ready = [this](const std::string& model) { scheduler_.StartSucceeded(model); },
          .template_error =
              [this](const std::string& model, const std::string& error) {
                if (!error.empty()) return scheduler_.SetStartError(model, error);
                if (scheduler_.LastStartError(model).empty())
                  scheduler_.SetStartError(model, "template exited before it was ready");
              },
          .template_live = [this](const std::string& model, bool live) { scheduler_.SetTemplateLive(model, live); },
          .start_timed_out =
              [this](Spawner& spawner, const std::string& message) {
                TimeOutSpawner(spawner, message);
                Carry();
              },
      });
}

Runtime::~Runtime() {
  Shutdown();
  std::error_code ignored;
  if (owns_run_dir_) std::filesystem::remove_all(run_dir_, ignored);
}

Status Runtime::WriteRunDirectory(Model& model, bool snapshot_model_file) {
  const std::string dir = (std::filesystem::path(run_dir_) / model.config.name).string();
  THAW_RETURN_IF_ERROR(WriteRunFiles(dir, model.config, snapshot_model_file));
  model.run_directory = dir;
  return Status::Ok();
}

Status Runtime::AddModel(ModelConfig config) {
  if (models_.count(config.name)) return InvalidArgument("model '" + config.name + "' is already loaded");
  // Config validation covers these; a mismatch here is a bug, not a crash.
  THAW_RETURN_IF_ERROR(ValidatePolicyOptions(config));
  auto model = std::make_unique<Model>(io_, std::move(config));
  THAW_RETURN_IF_ERROR(WriteRunDirectory(*model, /*snapshot_model_file=*/true));
  Model& ref = *model;
  models_.emplace(ref.config.name, std::move(model));
  LogEvent(LogLevel::kInfo, "model_added",
           Fields({{"model", ref.config.name},
                   {"min_instances", std::to_string(ref.config.min_instances)},
                   {"max_concurrency", std::to_string(ref.config.max_concurrency)},
                   {"keep_alive_s", std::to_string(ref.config.keep_alive_s)},
                   {"start_path", std::string(StartPathName(ref.config.start_path))}}));
  THAW_RETURN_IF_ERROR(scheduler_.AddModel(ref.config, NowPair(), &actions_));
  // Templates and the zygote start at deploy so the first request finds them ready.
  if (ref.config.start_path != StartPath::kExec) spawners_->Ensure(ref.config);
  Carry();
  return Status::Ok();
}

const ModelConfig* Runtime::FindModel(std::string_view name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second->config;
}

std::vector<std::string> Runtime::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& [name, model] : models_) names.push_back(name);
  return names;
}

StatusOr<ModelStatus> Runtime::GetModelStatus(std::string_view name) const {
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("model '" + std::string(name) + "' is not loaded");
  const Model& model = *it->second;
  ModelStatus status;
  status.name = model.config.name;
  status.start_path = model.config.start_path;
  const Spawner* spawner = spawners_->Of(model.config);
  auto decode_sandbox = [](const std::string& text) -> std::optional<sandbox::SandboxReport> {
    if (text.empty()) return std::nullopt;
    StatusOr<sandbox::SandboxReport> report = sandbox::DecodeReport(text);
    return report.ok() ? std::optional(*report) : std::nullopt;
  };
  if (spawner && !spawner->gone)
    status.spawner = SpawnerStatus{spawner->pid, spawner->ready, spawner->cgroup_dir, decode_sandbox(spawner->sandbox)};
  status.queued = scheduler_.Queued(model.config.name);
  const Micros now = clock_.NowMicros();
  if (const policy::AdaptiveBatcher* batcher = scheduler_.Batcher(model.config.name))
    status.batching = {.mode = std::string(BatchingName(model.config.batching)),
                       .target_batch_size = batcher->TargetBatchSize(now),
                       .cost_intercept_us = batcher->cost().intercept_us(),
                       .cost_per_row_us = batcher->cost().slope_us_per_row(),
                       .arrival_rows_per_s = batcher->ArrivalRowsPerSecond(now)};
  status.last_start_error = scheduler_.LastStartError(model.config.name);
  status.not_ready_reason = NotReadyReason(model);
  status.ready = status.not_ready_reason.empty();
  for (const auto& [id, instance] : model.instances) {
    const std::optional<sched::InstanceView> view = scheduler_.FindInstance(model.config.name, id);
    InstanceStatus s;
    s.id = id;
    s.pid = instance->pid;
    s.cgroup_dir = instance->cgroup_dir;
    if (instance->ready) s.sandbox = decode_sandbox(instance->ready_message.sandbox);
    s.in_flight = view ? view->in_flight_requests : 0;
    s.state = !view || !view->ready ? InstanceState::kStarting
              : view->retiring      ? InstanceState::kStopping
              : s.in_flight         ? InstanceState::kBusy
                                    : InstanceState::kIdle;
    status.instances.push_back(s);
  }
  return status;
}

std::string Runtime::NotReadyReason(const Model& model) const {
  if (scheduler_.CanServe(model.config.name)) return "";
  const std::string& last_start_error = scheduler_.LastStartError(model.config.name);
  if (!last_start_error.empty()) return "model '" + model.config.name + "' cannot start: " + last_start_error;
  if (model.config.start_path == StartPath::kExec) return "";  // nothing failed: a request starts an instance
  const Spawner* spawner = spawners_->Of(model.config);
  const char* what = model.config.start_path == StartPath::kTemplate ? "template" : "zygote";
  if (spawner && !spawner->gone && spawner->ready) return "";
  if (spawner && !spawner->gone) return "model '" + model.config.name + "' is starting: its " + what + " is not ready yet";
  return "model '" + model.config.name + "' has no " + what + " running; the next request starts one";
}

bool Runtime::Ready() {
  if (startup_settled_) return true;
  for (const auto& [name, model] : models_) {
    const Spawner* spawner = spawners_->Of(model->config);
    // Still loading, and not failed: not settled yet.
    if (spawner && !spawner->gone && !spawner->ready && scheduler_.LastStartError(name).empty()) return false;
  }
  startup_settled_ = true;
  return true;
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

void Runtime::FlushUsage() {
  scheduler_.FlushProvisioned(NowPair(), &actions_);
  Carry();
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
      case Action::Kind::kStart: Launch(*it->second, action.instance_id, action.provisioned); break;
      case Action::Kind::kDispatch: Send(*it->second, action); break;
      case Action::Kind::kFail: FailRequest(action); break;
      case Action::Kind::kStop: Kill(*it->second, action); break;
      case Action::Kind::kWake: Arm(*it->second, action.at_us); break;
      case Action::Kind::kProvisioned:
        if (options_.usage) options_.usage->Record(sched::ProvisionedRecordOf(action, it->second->config.memory_mb));
        break;
      case Action::Kind::kNotice: {
        const bool warning = action.reason == "instance_start_refused";
        std::string fields = Fields({{"model", action.model}});
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

void Runtime::Launch(Model& model, uint64_t instance_id, bool provisioned) {
  auto fail = [&](const std::string& error) {
    LogEvent(LogLevel::kError, "instance_start_failed", Fields({{"model", model.config.name}, {"error", LogValue(error)}}));
    scheduler_.StartFailed(model.config.name, instance_id, error, NowPair(), &actions_);
  };
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return fail("cannot create a socket for a new instance");
  auto instance = std::make_shared<Instance>();
  instance->id = instance_id;
  instance->start_path = model.config.start_path;
  instance->spawn_start_us = clock_.NowMicros();
  instance->channel = std::make_shared<InstanceChannel>(io_, fds[0]);
  auto cgroup_dir = processes_.MakeCgroup("instance-" + std::to_string(instance->id), model.config.memory_mb);
  if (!cgroup_dir.ok()) {
    ::close(fds[1]);
    return fail("cannot enforce memory_mb: " + cgroup_dir.status().message());
  }
  instance->cgroup_dir = *cgroup_dir;
  if (instance->start_path == StartPath::kExec) {
    std::vector<std::string> args = {processes_.worker_path(), "--model-dir", model.run_directory, "--fd",
                                     std::to_string(kWorkerFd)};
    if (!instance->cgroup_dir.empty()) args.insert(args.end(), {"--cgroup", instance->cgroup_dir});
    for (std::string& arg : processes_.SandboxArgs(model.run_directory)) args.push_back(std::move(arg));
    auto pid = processes_.Spawn(args, model.config.threads, fds[1]);
    ::close(fds[1]);
    if (!pid.ok()) {
      processes_.RemoveCgroupLater(instance->cgroup_dir);
      return fail(pid.status().message());  // the instance's socket closes with it
    }
    instance->pid = *pid;
    instance->spawn_done_us = clock_.NowMicros();
  } else {
    std::shared_ptr<Spawner> spawner = spawners_->Ensure(model.config);
    instance->forked_by = spawner;
    if (spawner) {
      spawners_->Fork(*spawner, model.run_directory, fds[1]);
    } else {
      ::close(fds[1]);  // the instance sees EOF: a failed start
    }
  }
  model.instances.emplace(instance->id, instance);
  LogEvent(LogLevel::kInfo, "instance_start",
           Fields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                   {"start_path", std::string(StartPathName(instance->start_path))},
                   {"pid", std::to_string(instance->pid)}, {"provisioned", provisioned ? "true" : "false"}}));
  Instance* raw = instance.get();
  instance->channel->Start({
      .frame = [this, &model, raw](ipc::MessageType type, const std::string& payload) { OnFrame(model, *raw, type, payload); },
      .malformed =
          [this, &model, raw](const std::string& error) {
            LogEvent(LogLevel::kError, "instance_protocol_error",
                     Fields({{"model", model.config.name}, {"instance", std::to_string(raw->id)}, {"error", LogValue(error)}}));
            scheduler_.InstanceGone(model.config.name, raw->id, sched::GoneKind::kProtocolError,
                                    Internal("instance sent a malformed message: " + error), "", NowPair(), &actions_);
          },
      .closed = [this, &model, raw] { OnClosed(model, *raw); },
      .after_read = [this] { Carry(); },
  });
}

Status Runtime::UpdateModelConfig(ModelConfig config) {
  auto it = models_.find(config.name);
  if (it == models_.end()) return NotFound("model '" + config.name + "' is not loaded");
  THAW_RETURN_IF_ERROR(ValidatePolicyOptions(config));
  Model& model = *it->second;
  config.directory = model.config.directory;
  const bool new_workers = WorkersDiffer(model.config, config);
  model.config = std::move(config);
  // The model file snapshot stays: only a load/reload takes a new one.
  Status written = WriteRunDirectory(model, /*snapshot_model_file=*/false);
  ApplySettings(model, new_workers, "config_changed");
  LogEvent(LogLevel::kInfo, "model_config_changed",
           Fields({{"model", model.config.name}, {"workers_replaced", new_workers ? "true" : "false"}}));
  Carry();
  return written;
}

void Runtime::ApplySettings(Model& model, bool new_workers, std::string_view reason) {
  // The scheduler stops starting and idle instances (busy ones retire when
  // they finish) before its actions are carried out, so the starts it asks
  // for use the new template.
  (void)scheduler_.UpdateModel(model.config, new_workers, reason, NowPair(), &actions_);
  if (!new_workers) return;
  spawners_->Replace(model.config.name);
  if (model.config.start_path == StartPath::kTemplate) spawners_->Ensure(model.config);
}

void Runtime::ReloadModel(ModelConfig config, std::function<void(Status)> done) {
  auto finish = [this, &done](Status status) { asio::post(io_, [done = std::move(done), status]() { done(status); }); };
  if (shut_down_ || draining_) return finish(Unavailable("server is shutting down"));
  if (!models_.count(config.name)) return finish(AddModel(std::move(config)));
  if (validations_.count(config.name))
    return finish(Unavailable("a reload of model '" + config.name + "' is already in progress"));
  if (Status valid = ValidatePolicyOptions(config); !valid.ok()) return finish(valid);
  auto validation = std::make_shared<Validation>();
  validation->staging_dir = (std::filesystem::path(run_dir_) / ".staging" / config.name).string();
  std::error_code ignored;
  std::filesystem::remove_all(validation->staging_dir, ignored);
  if (Status written = WriteRunFiles(validation->staging_dir, config, /*snapshot_model_file=*/true); !written.ok())
    return finish(written);
  const std::string name = config.name;
  auto check = VersionCheck::Start(io_, processes_, config, validation->staging_dir,
                                   [this, name](Status status) { FinishValidation(name, std::move(status)); });
  if (!check.ok()) return finish(check.status());
  validation->check = *check;
  validation->config = std::move(config);
  validation->done = std::move(done);
  validations_.emplace(name, validation);
}

void Runtime::FinishValidation(const std::string& name, Status status) {
  auto found = validations_.find(name);
  if (found == validations_.end()) return;
  std::shared_ptr<Validation> validation = found->second;
  validations_.erase(found);
  auto it = models_.find(name);
  if (status.ok() && (shut_down_ || it == models_.end()))
    status = Unavailable("model '" + name + "' was unloaded while its new version was being validated");
  if (status.ok()) {
    // Proven: the staged model file and config become the model's.
    Model& model = *it->second;
    namespace fs = std::filesystem;
    std::error_code ec;
    ModelConfig config = std::move(validation->config);
    const fs::path staged_file = fs::path(validation->staging_dir) / config.model_file;
    const fs::path serving_file = fs::path(model.run_directory) / config.model_file;
    fs::create_directories(serving_file.parent_path(), ec);
    fs::rename(staged_file, serving_file, ec);
    if (ec) {
      status = Internal("cannot install the new version of model '" + name + "': " + ec.message());
    } else {
      model.config = std::move(config);
      status = WriteRunDirectory(model, /*snapshot_model_file=*/false);
      ApplySettings(model, /*new_workers=*/true, "reloaded");
      Carry();
    }
  }
  std::error_code ignored_fs;
  std::filesystem::remove_all(validation->staging_dir, ignored_fs);
  LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "model_reload",
           Fields({{"model", name}, {"ok", status.ok() ? "true" : "false"},
                   {"error", LogValue(status.ok() ? "" : status.message())}}));
  asio::post(io_, [done = std::move(validation->done), status]() { done(status); });
}

Status Runtime::RemoveModel(std::string_view name) {
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("model '" + std::string(name) + "' is not loaded");
  Model& model = *it->second;
  model.removed = true;
  (void)scheduler_.RemoveModel(model.config.name, Unavailable("model '" + model.config.name + "' was unloaded"), "unload",
                               NowPair(), &actions_);
  Carry();
  model.timer.cancel();
  spawners_->Remove(model.config.name);
  std::error_code ignored;
  std::filesystem::remove_all(model.run_directory, ignored);
  LogEvent(LogLevel::kInfo, "model_removed", Fields({{"model", model.config.name}}));
  retired_models_.push_back(std::move(it->second));
  models_.erase(it);
  return Status::Ok();
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
  ipc::InferRequestMessage message;
  message.request_id = dispatch.execution_id;
  std::vector<std::vector<Tensor>> inputs;
  inputs.reserve(dispatch.request_ids.size());
  for (uint64_t id : dispatch.request_ids) {
    Pending& pending = *pending_.at(id);
    pending.dispatched_us = now;
    if (message.output_names.empty()) message.output_names = pending.output_names;
    inputs.push_back(std::move(pending.inputs));
  }
  if (inputs.size() == 1) {
    message.inputs = std::move(inputs.front());
  } else {
    auto joined = ConcatBatch(inputs);
    if (!joined.ok()) {
      // Requests are grouped by shape key, so this is a bug: the instance is
      // replaced and the requests fail, rather than guess.
      LogEvent(LogLevel::kError, "batch_concat_failed",
               Fields({{"model", model.config.name}, {"error", LogValue(joined.status().message())}}));
      scheduler_.InstanceGone(model.config.name, instance.id, sched::GoneKind::kProtocolError,
                              Internal("cannot batch requests: " + joined.status().message()), "", NowPair(), &actions_);
      return;
    }
    message.inputs = std::move(joined).value();
  }
  instance.dispatched_us.emplace(dispatch.execution_id, now);
  instance.channel->Send(ipc::EncodeInferRequestFrame(std::move(message)));
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

void Runtime::OnFrame(Model& model, Instance& instance, ipc::MessageType type, const std::string& payload) {
  const Micros now = clock_.NowMicros();
  switch (type) {
    case ipc::MessageType::kReady: {
      auto ready = ipc::DecodeReady(payload);
      if (ready.ok()) {
        instance.ready_message = *ready;
        // A forked instance is known by its pid only from here on.
        if (instance.pid == 0) instance.pid = ready->pid;
        if (instance.start_path != StartPath::kExec) instance.spawn_done_us = ready->started_us;
      }
      // A forked instance is sandboxed before it can join its memory cgroup,
      // so the server moves it, before it is given any work. (Pages a
      // zygote-path instance allocated while loading move with it on v1,
      // memory.move_charge_at_immigrate.)
      if (instance.start_path != StartPath::kExec && !instance.cgroup_dir.empty()) {
        if (Status moved = cgroup::MoveToMemoryCgroup(instance.cgroup_dir, instance.pid); !moved.ok()) {
          const std::string error = "cannot enforce memory_mb: cannot move instance into its memory cgroup: " + moved.message();
          scheduler_.SetStartError(model.config.name, error);
          LogEvent(LogLevel::kError, "instance_init_error",
                   Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                           {"error", LogValue(error)}}));
          if (instance.pid > 0) ::kill(instance.pid, SIGKILL);  // EOF follows: a failed start
          return;
        }
      }
      instance.ready = true;
      LogEvent(LogLevel::kInfo, "instance_ready",
               Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                       {"pid", std::to_string(instance.pid)},
                       {"start_path", std::string(StartPathName(instance.start_path))},
                       {"start_ms", MillisText(now - instance.spawn_start_us)},
                       {"load_ms", ready.ok() ? MillisText(ready->model_load_us) : "?"},
                       {"warmup_ms", ready.ok() ? MillisText(ready->warmup_us) : "?"}}));
      scheduler_.InstanceReady(model.config.name, instance.id, NowPair(), &actions_);
      return;
    }
    case ipc::MessageType::kInitError: {
      auto error = ipc::DecodeInitError(payload);
      const std::string message = error.ok() ? error->message : "worker reported an unreadable error";
      scheduler_.SetStartError(model.config.name, message);
      LogEvent(LogLevel::kError, "instance_init_error",
               Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                       {"error", LogValue(message)}}));
      return;  // the worker exits; EOF handling fails the queue
    }
    case ipc::MessageType::kInferResponse: return OnResponse(model, instance, payload);
    default:
      scheduler_.InstanceGone(model.config.name, instance.id, sched::GoneKind::kProtocolError,
                              Internal("instance sent an unexpected message"), "", NowPair(), &actions_);
  }
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
  if (!done) return;  // its requests already failed (deadline)
  std::vector<std::vector<Tensor>> outputs_per_request;
  Status split = Status::Ok();
  if (status.ok() && done->requests.size() > 1) {
    std::vector<int64_t> rows;
    for (const auto& item : done->requests) rows.push_back(item.rows);
    auto parts = SplitBatch(response->outputs, rows);
    if (parts.ok()) outputs_per_request = std::move(parts).value();
    else split = Internal("model '" + model.config.name + "' returned outputs that do not split back into the batch: " +
                          parts.status().message());
  }
  if (options_.on_execution) {
    ExecutionRecord record;
    record.model = model.config.name;
    record.instance_id = instance.id;
    record.requests = static_cast<int>(done->requests.size());
    record.rows = done->rows;
    record.compute_us = response->compute_us;
    record.round_trip_us = round_trip_us;
    record.memory_mb = model.config.memory_mb;
    record.ok = status.ok() && split.ok();
    options_.on_execution(record);
  }
  const sched::InstanceView& view = done->instance;
  bool cold_start_logged = false;
  for (size_t i = 0; i < done->requests.size(); ++i) {
    const sched::Completion::Item& item = done->requests[i];
    auto found = pending_.find(item.id);
    if (found == pending_.end()) continue;
    std::unique_ptr<Pending> pending = std::move(found->second);
    pending_.erase(found);
    InferOutcome outcome;
    outcome.status = !status.ok() ? status : split;
    if (outcome.status.ok())
      outcome.outputs = done->requests.size() == 1 ? std::move(response->outputs) : std::move(outputs_per_request[i]);
    outcome.timing.queue_us = pending->dispatched_us - pending->arrival_us;
    outcome.timing.batch_wait_us = item.batch_wait_us;
    outcome.timing.compute_us = response->compute_us;
    outcome.timing.total_us = now - pending->arrival_us;
    outcome.timing.batch_size = done->rows;
    outcome.timing.batch_requests = static_cast<int>(done->requests.size());
    outcome.timing.batch_share = static_cast<double>(item.rows) / static_cast<double>(std::max<int64_t>(1, done->rows));
    outcome.timing.cold_start = view.ready_us > pending->arrival_us;
    outcome.timing.start_path = instance.start_path;
    outcome.timing.instance_id = instance.id;
    outcome.timing.provisioned = view.provisioned;
    if (outcome.timing.cold_start) {
      const ipc::ReadyMessage& ready = instance.ready_message;
      outcome.timing.cold = ColdStartOf({.path = instance.start_path,
                                         .spawn_start_us = instance.spawn_start_us,
                                         .spawn_done_us = instance.spawn_done_us,
                                         .ready_us = view.ready_us,
                                         .worker_started_us = ready.started_us,
                                         .runtime_init_us = ready.runtime_init_us,
                                         .model_load_us = ready.model_load_us,
                                         .warmup_us = ready.warmup_us},
                                        pending->arrival_us, pending->dispatched_us, response->compute_us,
                                        outcome.timing.total_us);
      // Once per execution, not per request in it.
      if (!cold_start_logged)
        LogEvent(LogLevel::kInfo, "cold_start",
                 ColdStartFields(model.config.name, instance.id, instance.start_path, outcome.timing.cold));
      cold_start_logged = true;
    }
    pending->done(std::move(outcome));
  }
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
           Fields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                   {"pid", std::to_string(instance->pid)}, {"reason", stop.reason},
                   {"failed_requests", std::to_string(instance->dispatched_us.empty() ? 0 : instance->dispatched_us.size())}}));
}

void Runtime::OnTimer(Model& model) {
  scheduler_.Wake(model.config.name, NowPair(), &actions_);
  Carry();
}

void Runtime::TimeOutForkedStart(Instance& instance, const std::string& message) {
  std::shared_ptr<Spawner> by = instance.forked_by.lock();
  if (!by || by->gone || !by->ready) return;
  // Kill it and the children that have not reported (their pids are unknown
  // to us); a template that had been ready is replaced at once.
  std::vector<pid_t> known;
  for (const auto& [name, other] : models_)
    for (const auto& [oid, o] : other->instances)
      if (o->pid > 0) known.push_back(o->pid);
  for (pid_t child : WorkerProcesses::ChildrenOf(by->pid))
    if (std::find(known.begin(), known.end(), child) == known.end()) ::kill(child, SIGKILL);
  TimeOutSpawner(*by, message);
}

void Runtime::TimeOutSpawner(Spawner& spawner, const std::string& message) {
  LogEvent(LogLevel::kWarning, "spawner_start_timeout",
           Fields({{"pid", std::to_string(spawner.pid)}, {"error", LogValue(message)}}));
  // Instances waiting for it fail their start naming the cause.
  for (auto& [name, model] : models_) {
    if (spawners_->Of(model->config) != &spawner) continue;
    bool waiting = false;
    for (const auto& [id, instance] : model->instances) waiting |= !instance->ready;
    if (waiting || spawner.owner == name) scheduler_.SetStartError(name, message);
  }
  spawners_->TimeOut(spawner);
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
  spawners_->Shutdown();
  while (!validations_.empty()) validations_.begin()->second->check->Cancel(Unavailable("server is shutting down"));
  // Reap the processes just killed (templates, the zygote, exec instances),
  // bounded, as a kill takes a moment.
  processes_.Stop(500 * kMicrosPerMilli);
}

}  // namespace thaw
