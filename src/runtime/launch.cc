#include "runtime/launch.h"

#include <sys/socket.h>
#include <unistd.h>

#include <utility>
#include <vector>

namespace thaw {

StatusOr<LaunchedInstance> LaunchInstance(WorkerProcesses& processes, Spawners& spawners, const Clock& clock,
                                          const ModelConfig& config, const std::string& run_directory,
                                          uint64_t instance_id, StartPath path) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return Unavailable("cannot create a socket for a new instance");
  LaunchedInstance launched;
  std::shared_ptr<Spawner> own_template;
  if (path == StartPath::kTemplate) {
    Spawner* own = spawners.TemplateOf(config.name);
    if (own && own->ready) own_template = own->shared_from_this();
  }
  // The standby this start will be handed, already in a group: a template's
  // is of memory_mb; the zygote's gets this model's memory_mb now.
  Spawner* with_standby = own_template.get();
  if (!with_standby && path != StartPath::kExec) {
    with_standby = spawners.ZygoteIfAny();
    if (with_standby && (!with_standby->ready || with_standby->gone)) with_standby = nullptr;
    if (with_standby && with_standby->standby_waiting() &&
        !processes.SetCgroupLimit(with_standby->standby_cgroup, config.memory_mb).ok()) {
      // It goes to this instance anyway (the zygote's choice), then moves into a group of its own.
      processes.RemoveCgroupLater(std::exchange(with_standby->standby_cgroup, ""));
      with_standby->standby_moved = false;
    }
  }
  if (with_standby && with_standby->standby_waiting()) {
    launched.cgroup_dir = std::exchange(with_standby->standby_cgroup, "");
    launched.premoved_pid = std::exchange(with_standby->standby_pid, 0);
    with_standby->standby_moved = false;
  } else {
    auto cgroup_dir = processes.MakeCgroup("instance-" + std::to_string(instance_id), config.memory_mb);
    if (!cgroup_dir.ok()) {
      ::close(fds[0]);
      ::close(fds[1]);
      return Unavailable("cannot enforce memory_mb: " + cgroup_dir.status().message());
    }
    launched.cgroup_dir = *cgroup_dir;
  }
  launched.path = path;
  if (path == StartPath::kExec) {
    std::vector<std::string> args = {processes.worker_path(), "--model-dir", run_directory, "--fd",
                                     std::to_string(kWorkerFd)};
    if (!launched.cgroup_dir.empty()) args.insert(args.end(), {"--cgroup", launched.cgroup_dir});
    for (std::string& arg : processes.SandboxArgs(run_directory)) args.push_back(std::move(arg));
    auto pid = processes.Spawn(args, config.threads, fds[1]);
    ::close(fds[1]);
    if (!pid.ok()) {
      ::close(fds[0]);
      processes.RemoveCgroupLater(launched.cgroup_dir);
      return pid.status();
    }
    launched.pid = *pid;
    launched.spawn_done_us = clock.NowMicros();
  } else {
    std::shared_ptr<Spawner> spawner = own_template;
    if (!spawner) {
      launched.path = StartPath::kZygote;
      spawner = spawners.Zygote();
    }
    launched.forked_by = spawner;
    if (spawner) {
      spawners.Fork(*spawner, run_directory, fds[1]);
    } else {
      ::close(fds[1]);  // the instance sees EOF: a failed start
    }
  }
  launched.fd = fds[0];
  return launched;
}

}  // namespace thaw
