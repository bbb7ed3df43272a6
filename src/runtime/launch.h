// Starting an instance's process by the path the scheduler chose: exec'd
// (thaw-worker in its own memory cgroup, which it joins before loading), or
// forked by its model's template (if that is not ready after all, by the
// zygote) or by the zygote (the runtime moves it into its cgroup when it
// reports ready). Either way the instance's socket is a fresh
// socketpair; the worker gets one end.
// Errors: kUnavailable naming what failed (socket, cgroup, spawn). A fork
// whose spawner cannot start is not an error here: the instance sees EOF and
// its start fails like any other.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "repo/model_config.h"
#include "runtime/spawners.h"
#include "runtime/worker_processes.h"

namespace thaw {

struct LaunchedInstance {
  int fd = -1;                      // the runtime's end of its socket (owned by the caller)
  pid_t pid = 0;                    // exec: its pid; fork: 0 until it reports
  Micros spawn_done_us = 0;         // exec: posix_spawn returned
  std::string cgroup_dir;           // empty if memory is not enforced
  std::weak_ptr<Spawner> forked_by;  // fork: the template or zygote asked
  StartPath path = StartPath::kExec;  // the path taken
  // Template path: the standby expected to become this instance, already in
  // cgroup_dir (moved ahead of demand); 0 if none.
  pid_t premoved_pid = 0;
};

StatusOr<LaunchedInstance> LaunchInstance(WorkerProcesses& processes, Spawners& spawners, const Clock& clock,
                                          const ModelConfig& config, const std::string& run_directory,
                                          uint64_t instance_id, StartPath path);

}  // namespace thaw
