// Runtime: loading models, changing their settings, proving and installing
// a reloaded version, unloading.
#include "runtime/runtime.h"

#include <boost/asio/post.hpp>
#include <filesystem>

#include "base/log.h"
#include "runtime/run_files.h"
#include "runtime/runtime_internal.h"
#include "settings/policy_options.h"
#include "settings/setting_changes.h"

namespace thaw {

namespace asio = boost::asio;

Status Runtime::WriteRunDirectory(Model& model, bool snapshot_model_file) {
  const std::string dir = (std::filesystem::path(run_dir_) / model.config.name).string();
  THAW_RETURN_IF_ERROR(WriteRunFiles(dir, model.config, snapshot_model_file, snapshots_.get()));
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
           LogFields({{"model", ref.config.name},
                   {"min_instances", std::to_string(ref.config.min_instances)},
                   {"max_concurrency", std::to_string(ref.config.max_concurrency)},
                   {"keep_alive_s", std::to_string(ref.config.keep_alive_s)},
                   {"start_path", std::string(StartPathName(ref.config.start_path))}}));
  THAW_RETURN_IF_ERROR(scheduler_.AddModel(ref.config, NowPair(), &actions_));
  // Deploying holds nothing per model: the shared zygote starts with the
  // first model that forks; a template starts when the scheduler wants it.
  if (ref.config.start_path != StartPath::kExec) spawners_->Zygote();
  Carry();
  if (options_.prepare) {
    ref.preparing = true;  // before Request: a store hit reports at once
    preparations_->Request(ref.config.name, ref.run_directory, ref.config.model_file, ref.config.start_timeout_ms);
  }
  return Status::Ok();
}

Status Runtime::UpdateModelConfig(ModelConfig config) {
  auto it = models_.find(config.name);
  if (it == models_.end()) return NotFound("model '" + config.name + "' is not loaded");
  THAW_RETURN_IF_ERROR(ValidatePolicyOptions(config));
  Model& model = *it->second;
  config.directory = model.config.directory;
  const bool new_workers = WorkersDiffer(model.config, config);
  std::string changed;
  for (std::string_view field : ChangedFields(model.config, config)) {
    if (!changed.empty()) changed += ',';
    changed += field;
  }
  model.config = std::move(config);
  // The model file snapshot stays: only a load/reload takes a new one.
  Status written = WriteRunDirectory(model, /*snapshot_model_file=*/false);
  ApplySettings(model, new_workers, "config_changed");
  LogEvent(LogLevel::kInfo, "model_config_changed",
           LogFields({{"model", model.config.name}, {"changed", changed},
                      {"workers_replaced", new_workers ? "true" : "false"}}));
  Carry();
  return written;
}

void Runtime::ApplySettings(Model& model, bool new_workers, std::string_view reason) {
  // The scheduler stops starting and idle instances (busy ones retire when
  // they finish) before its actions are carried out, so the starts it asks
  // for use the new template.
  // (It also stops the template, and starts a new one if the model is hot.)
  (void)scheduler_.UpdateModel(model.config, new_workers, reason, NowPair(), &actions_);
  if (new_workers && model.config.start_path != StartPath::kExec) spawners_->Zygote();
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
      model.prepared = false;
      if (options_.prepare) {
        model.preparing = true;
        preparations_->Request(model.config.name, model.run_directory, model.config.model_file,
                               model.config.start_timeout_ms);
      } else {
        preparations_->Forget(model.config.name);
        model.preparing = false;
      }
      ApplySettings(model, /*new_workers=*/true, "reloaded");
      Carry();
    }
  }
  std::error_code ignored_fs;
  std::filesystem::remove_all(validation->staging_dir, ignored_fs);
  LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "model_reload",
           LogFields({{"model", name}, {"ok", status.ok() ? "true" : "false"},
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
  preparations_->Forget(model.config.name);
  spawners_->Remove(model.config.name);
  std::error_code ignored;
  std::filesystem::remove_all(model.run_directory, ignored);
  LogEvent(LogLevel::kInfo, "model_removed", LogFields({{"model", model.config.name}}));
  retired_models_.push_back(std::move(it->second));
  models_.erase(it);
  return Status::Ok();
}

}  // namespace thaw
