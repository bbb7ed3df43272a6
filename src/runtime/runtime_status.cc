// Runtime: what it reports about its models (status, readiness).
#include "runtime/runtime.h"

#include <boost/asio/post.hpp>
#include <filesystem>

#include "base/log.h"
#include "runtime/run_files.h"
#include "runtime/runtime_internal.h"
#include "settings/policy_options.h"

namespace thaw {

namespace asio = boost::asio;

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
  // What its next start forks from: its template if it has one, else the zygote.
  const Spawner* spawner = nullptr;
  if (model.config.start_path != StartPath::kExec) {
    spawner = spawners_->TemplateOf(model.config.name);
    if (!spawner) spawner = spawners_->ZygoteIfAny();
  }
  auto decode_sandbox = [](const std::string& text) -> std::optional<sandbox::SandboxReport> {
    if (text.empty()) return std::nullopt;
    StatusOr<sandbox::SandboxReport> report = sandbox::DecodeReport(text);
    return report.ok() ? std::optional(*report) : std::nullopt;
  };
  if (spawner && !spawner->gone)
    status.spawner = SpawnerStatus{spawner->pid, spawner->ready, spawner->cgroup_dir, decode_sandbox(spawner->sandbox),
                                   spawner->standby_waiting()};
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
  status.prepared = model.prepared;
  status.preparing = model.preparing;
  status.instance_charge_mb = scheduler_.InstanceChargeMb(model.config.name);
  status.template_charge_mb = scheduler_.TemplateChargeMb(model.config.name);
  switch (scheduler_.TemplateStateOf(model.config.name)) {
    case sched::Scheduler::TemplateState::kNone: status.template_state = "none"; break;
    case sched::Scheduler::TemplateState::kStarting: status.template_state = "starting"; break;
    case sched::Scheduler::TemplateState::kReady: status.template_state = "ready"; break;
  }
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

StatusOr<std::string> Runtime::ModelNotReadyReason(std::string_view name) const {
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("model '" + std::string(name) + "' is not loaded");
  return NotReadyReason(*it->second);
}

std::string Runtime::NotReadyReason(const Model& model) const {
  const std::string& last_start_error = scheduler_.LastStartError(model.config.name);
  if (!last_start_error.empty() && !scheduler_.CanServe(model.config.name))
    return "model '" + model.config.name + "' cannot start: " + last_start_error;
  // Ready means a request now gets the model's normal cold start: while its
  // artifact is being prepared, an instance would load and freeze the model
  // file itself (seconds for a large model) instead of loading the artifact.
  if (model.preparing && !scheduler_.CanServe(model.config.name))
    return "model '" + model.config.name + "' is preparing: its prepared artifact is being made";
  if (scheduler_.CanServe(model.config.name)) return "";
  if (model.config.start_path == StartPath::kExec) return "";  // nothing failed: a request starts an instance
  // A template is a cache: without one, instances start from the zygote.
  const Spawner* own = spawners_->TemplateOf(model.config.name);
  if (own && own->ready) return "";
  const Spawner* zygote = spawners_->ZygoteIfAny();
  if (zygote && !zygote->gone && zygote->ready) return "";
  if (zygote && !zygote->gone) return "model '" + model.config.name + "' is starting: the zygote is not ready yet";
  return "model '" + model.config.name + "' has no zygote running; the next request starts one";
}

bool Runtime::Ready() {
  if (startup_settled_) return true;
  // Deploying holds nothing per model, so startup is the zygote's start
  // (zygote_ready latches it too, should it restart before anyone asks).
  const Spawner* zygote = spawners_->ZygoteIfAny();
  if (zygote && !zygote->gone && !zygote->ready) return false;
  startup_settled_ = true;
  return true;
}

}  // namespace thaw
