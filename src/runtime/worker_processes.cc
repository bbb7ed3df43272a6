#include "runtime/worker_processes.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <string_view>

#include "base/log.h"
#include "cgroup/memory_cgroup.h"

extern char** environ;

namespace thaw {

WorkerProcesses::WorkerProcesses(boost::asio::io_context& io, const Clock& clock, WorkerProcessesOptions options)
    : clock_(clock), options_(std::move(options)), child_signals_(io, SIGCHLD), cleanup_(io) {
  if (options_.memory_cgroups && !options_.memory_cgroups->enforced()) options_.memory_cgroups = nullptr;
  if (options_.sandbox != sandbox::SandboxMode::kOff) {
    if (::geteuid() == 0) {
      worker_user_ = options_.worker_user.value_or(sandbox::DefaultWorkerUser());
    } else {
      LogEvent(LogLevel::kWarning, "sandbox_degraded",
               LogFields({{"reason", LogValue("the server is not root: workers keep uid " + std::to_string(::geteuid()) +
                                              ", without network and mount namespaces")}}));
    }
  }
  // Instances forked by a template outlive it when it is replaced; as a
  // subreaper the server, not init, inherits and reaps them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  WatchChildren();
}

std::vector<std::string> WorkerProcesses::SandboxArgs(const std::string& writable_dir) const {
  std::vector<std::string> args = {"--sandbox=" + std::string(sandbox::SandboxModeName(options_.sandbox))};
  if (options_.sandbox == sandbox::SandboxMode::kOff) return args;
  if (worker_user_)
    args.push_back("--user=" + std::to_string(worker_user_->uid) + ":" + std::to_string(worker_user_->gid));
  args.push_back("--writable-dir=" + writable_dir);
  return args;
}

StatusOr<int> WorkerProcesses::Spawn(const std::vector<std::string>& args, int threads, int child_fd) {
  // dup2 onto the same number would keep FD_CLOEXEC; move it out of the way.
  int moved = -1;
  if (child_fd == kWorkerFd) {
    moved = ::fcntl(child_fd, F_DUPFD_CLOEXEC, kWorkerFd + 1);
    child_fd = moved;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("OMP_NUM_THREADS=") || entry.starts_with("OMP_WAIT_POLICY=") ||
        entry.starts_with("GLIBC_TUNABLES="))
      continue;
    env_strings.emplace_back(entry);
  }
  env_strings.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  // Spinning OpenMP threads starve each other when instances share 2 cores
  // (60-80 ms per call instead of 0.6 ms, measured on textenc with 2 threads).
  env_strings.push_back("OMP_WAIT_POLICY=PASSIVE");
  // Page faults cost 15-20 us here: keep freed activations in the heap.
  env_strings.push_back("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824");
  std::vector<std::string> arg_copies = args;
  std::vector<char*> argv, envp;
  for (auto& a : arg_copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_fd, kWorkerFd);
  // Model code gets no terminal to read from.
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own session (and process group, pgid = pid): a Ctrl-C at the terminal
  // reaches the server, which then stops its workers, rather than killing
  // workers mid-request; and with no controlling terminal a worker cannot
  // push keystrokes into the user's shell (TIOCSTI) through stderr.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, options_.worker_path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (moved >= 0) ::close(moved);
  if (rc != 0) return Unavailable("cannot start worker '" + options_.worker_path + "': " + std::strerror(rc));
  return static_cast<int>(pid);
}

std::vector<pid_t> WorkerProcesses::ChildrenOf(pid_t pid) {
  std::vector<pid_t> children;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t child; in >> child;) children.push_back(child);
  return children;
}

void WorkerProcesses::WatchChildren() {
  child_signals_.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    ReapChildren();
    WatchChildren();
  });
}

void WorkerProcesses::ReapChildren() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    std::string how = WIFEXITED(status) ? "exit=" + std::to_string(WEXITSTATUS(status))
                                        : "signal=" + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    LogEvent(LogLevel::kDebug, "worker_reaped", LogFields({{"pid", std::to_string(pid)}, {"status", how}}));
  }
  RemoveCgroups();
}

StatusOr<std::string> WorkerProcesses::MakeCgroup(const std::string& name, int64_t memory_mb) {
  if (!options_.memory_cgroups) return std::string();
  return options_.memory_cgroups->Create(name, memory_mb << 20);
}

Status WorkerProcesses::SetCgroupLimit(const std::string& dir, int64_t memory_mb) {
  if (!options_.memory_cgroups) return Unavailable("memory limits are not enforced");
  return options_.memory_cgroups->SetLimit(dir, memory_mb << 20);
}

bool WorkerProcesses::OomKilled(const std::string& dir) const {
  if (dir.empty()) return false;
  auto kills = cgroup::OomKillCount(dir);
  return kills.ok() && *kills > 0;
}

void WorkerProcesses::RemoveCgroupLater(std::string dir) {
  if (dir.empty()) return;
  cleanup_.dirs.push_back(std::move(dir));
  RemoveCgroups();
}

void WorkerProcesses::RemoveCgroups() {
  Cleanup& cleanup = cleanup_;
  if (!options_.memory_cgroups || cleanup.dirs.empty()) return;
  std::erase_if(cleanup.dirs, [&](const std::string& dir) {
    Status removed = options_.memory_cgroups->Remove(dir);
    if (!removed.ok() && removed.code() != StatusCode::kUnavailable)
      LogEvent(LogLevel::kWarning, "cgroup_remove_failed", LogFields({{"dir", LogValue(dir)}, {"error", LogValue(removed.message())}}));
    return removed.code() != StatusCode::kUnavailable;  // still in use: retry
  });
  if (cleanup.dirs.empty()) {
    cleanup.retry_us = 0;
    return;
  }
  // Killed processes leave in milliseconds; a retiring one finishes its work first.
  if (cleanup.armed || stopped_) return;
  cleanup.retry_us = std::clamp<Micros>(cleanup.retry_us * 2, 20 * kMicrosPerMilli, 2 * kMicrosPerSecond);
  cleanup.armed = true;
  cleanup.timer.expires_after(std::chrono::microseconds(cleanup.retry_us));
  cleanup.timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    cleanup_.armed = false;
    RemoveCgroups();
  });
}

void WorkerProcesses::Stop(Micros give_up_us) {
  stopped_ = true;
  boost::system::error_code ignored;
  child_signals_.cancel(ignored);
  cleanup_.timer.cancel();
  const Micros give_up = clock_.NowMicros() + give_up_us;
  for (;;) {
    ReapChildren();
    errno = 0;
    // Done when no child is left and every cgroup is gone (their processes left).
    if (::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD && cleanup_.dirs.empty()) break;
    if (clock_.NowMicros() >= give_up) break;
    ::usleep(5000);
  }
}

}  // namespace thaw
