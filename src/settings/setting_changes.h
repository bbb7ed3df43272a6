// What changing each config.json field of a loaded model takes: one table,
// read by the runtime (PUT settings, reload) and by the API's docs.
//
//  - kLive: applied at once by the scheduler and the policies; no process
//    restarts (keep-alive, queue, concurrency caps, scaling, batching,
//    timeouts, provisioning, template cache).
//  - kNewWorkers: what a worker process is (its threads, how many requests
//    it runs at once, its memory limit, how it starts, its standby): starting
//    and idle instances stop, busy ones retire when they finish, and the
//    model's template is replaced, because instances take these from the
//    template they fork from (it loaded the config, its memory cgroup and its
//    standby's are sized from memory_mb). A model with no template (exec or
//    zygote path, or a cold one) restarts only its instances.
//  - kModelIdentity: the model itself (engine, file, tensors, platform),
//    exactly repo's kModelIdentityFields (the unit test holds them equal):
//    PUT refuses them (ApplySettings); a repository load replaces the
//    version after proving it (Runtime::ReloadModel), new workers as above.
//
// Every field of kModelConfigFields has exactly one class; the unit test
// fails when a field is added to config.json without one.
// Thread safety: pure functions over constant data.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "repo/model_config.h"

namespace thaw {

enum class SettingChange { kLive, kNewWorkers, kModelIdentity };
std::string_view SettingChangeName(SettingChange change);  // live, new_workers, model_identity

// The class of config.json field `field`; nullopt for a name that is not a field.
std::optional<SettingChange> SettingChangeOf(std::string_view field);

// The config.json fields whose values differ between `a` and `b`, in
// kModelConfigFields order (name and directory are not fields).
std::vector<std::string_view> ChangedFields(const ModelConfig& a, const ModelConfig& b);

// Whether going from `a` to `b` needs new worker processes: some changed
// field is kNewWorkers or kModelIdentity.
bool WorkersDiffer(const ModelConfig& a, const ModelConfig& b);

}  // namespace thaw
