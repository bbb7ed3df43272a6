// Runtime's private state, shared by its source files (runtime.cc: the
// data plane and the scheduler's actions; runtime_models.cc: loading,
// settings, reloads and unloading; runtime_status.cc: status reports).
// Not for use outside src/runtime.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "runtime/instance_channel.h"
#include "runtime/preparations.h"
#include "runtime/runtime.h"
#include "runtime/spawners.h"
#include "runtime/version_check.h"

namespace thaw {

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
  // Forked: its template or zygote was still loading when it was asked for
  // (the fork waited in Spawner::waiting until then); 0 if it was not.
  Micros spawner_wait_us = 0;
  bool asked_unready_spawner = false;
  ipc::ReadyMessage ready_message;
  std::weak_ptr<Spawner> forked_by;    // the template or zygote asked to fork it
  std::string cgroup_dir;   // its memory cgroup; empty if memory is not enforced
  Micros memory_read_us = -1;  // when its cgroup's peak was last read for the scheduler
  bool moving = false;      // forked: its move into cgroup_dir was asked for
  pid_t premoved_pid = 0;   // a standby moved into cgroup_dir ahead of demand
  bool moved = false;       // in its own memory cgroup (or none is needed)
  bool ready_reported = false;  // it sent Ready (ready: and the scheduler was told, once moved)
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
  Model(boost::asio::io_context& io, ModelConfig c) : config(std::move(c)), timer(io) {}

  ModelConfig config;
  // Where workers read the effective config: config.json as the runtime
  // holds it (settings may change while serving) and a link to the model file.
  std::string run_directory;
  bool removed = false;  // unloaded; kept only until its callbacks drain
  bool prepared = false;  // its run directory has its prepared artifact
  // A preparation was asked for and has not reported (Preparations::Events::done):
  // an instance started now would load and freeze the model file itself.
  bool preparing = false;
  std::map<uint64_t, std::shared_ptr<Instance>> instances;  // processes, by the scheduler's ids
  boost::asio::steady_timer timer;
  Micros wake_us = sched::kNever;        // when the scheduler wants Wake
  Micros armed_wake_us = sched::kNever;  // when the timer fires: no later than wake_us
};


}  // namespace thaw
