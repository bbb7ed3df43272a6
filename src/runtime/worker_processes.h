// WorkerProcesses: how the runtime starts worker processes and cleans up
// after them. A worker (instance, template or zygote) is thaw-worker started
// with posix_spawn: its end of a socket as descriptor kWorkerFd, stdin
// /dev/null, its own session, a cleaned environment (OpenMP threads, passive
// waits, glibc malloc thresholds) and the sandbox flags. Each may get a
// memory cgroup, removed once its processes have left. Every child is reaped
// (the server is a subreaper: instances forked by a replaced template come to
// it).
// Errors: kUnavailable when a process cannot be started; cgroup errors from
// cgroup::MemoryCgroups. Threading: the io_context's thread only.
// Ownership: kills nothing itself (callers kill their processes); the caller
// owns the io_context, the clock and the MemoryCgroups, which must outlive it.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "sandbox/sandbox.h"

namespace thaw {

namespace cgroup {
class MemoryCgroups;
}

// The worker's descriptor number for its end of the socket.
constexpr int kWorkerFd = 3;

struct WorkerProcessesOptions {
  std::string worker_path;                         // thaw-worker
  cgroup::MemoryCgroups* memory_cgroups = nullptr; // nullptr or not enforced: no memory limits
  sandbox::SandboxMode sandbox = sandbox::SandboxMode::kOn;
  std::optional<sandbox::WorkerUser> worker_user;  // nullopt: nobody when root, else the server's uid
};

class WorkerProcesses {
 public:
  WorkerProcesses(boost::asio::io_context& io, const Clock& clock, WorkerProcessesOptions options);

  const std::string& worker_path() const { return options_.worker_path; }
  // The uid/gid workers run as; nullopt when they keep the server's.
  const std::optional<sandbox::WorkerUser>& worker_user() const { return worker_user_; }
  // The worker's sandbox flags, writable_dir being the one path it may write.
  std::vector<std::string> SandboxArgs(const std::string& writable_dir) const;
  // Starts `args` with `child_fd` as its descriptor kWorkerFd and `threads`
  // OpenMP threads; returns the pid.
  StatusOr<int> Spawn(const std::vector<std::string>& args, int threads, int child_fd);

  // A memory cgroup for `name` limited to `memory_mb`; "" when not enforced.
  StatusOr<std::string> MakeCgroup(const std::string& name, int64_t memory_mb);
  // Sets the limit of a cgroup made by MakeCgroup to `memory_mb`.
  Status SetCgroupLimit(const std::string& dir, int64_t memory_mb);
  // The OOM killer killed a process in `dir`.
  bool OomKilled(const std::string& dir) const;
  // Removes the cgroup once its processes have left, retrying meanwhile.
  void RemoveCgroupLater(std::string dir);

  // Stops watching and reaps the children just killed, for at most
  // `give_up_us`, so that none outlives the server as a zombie.
  void Stop(Micros give_up_us);

  // Children of `pid` (its main thread's: spawners fork from it), from
  // /proc/<pid>/task/<pid>/children; empty if unreadable.
  static std::vector<pid_t> ChildrenOf(pid_t pid);

 private:
  void WatchChildren();
  void ReapChildren();
  void RemoveCgroups();

  // Cgroups of stopped processes, removed once the processes have left them.
  struct Cleanup {
    explicit Cleanup(boost::asio::io_context& io) : timer(io) {}
    boost::asio::steady_timer timer;
    bool armed = false;
    Micros retry_us = 0;
    std::vector<std::string> dirs;
  };

  const Clock& clock_;
  WorkerProcessesOptions options_;
  std::optional<sandbox::WorkerUser> worker_user_;
  boost::asio::signal_set child_signals_;
  Cleanup cleanup_;
  bool stopped_ = false;
};

}  // namespace thaw
