// Spawners: the processes that fork instances -- a template per model (its
// model loaded and warmed, started and stopped as the scheduler's template
// cache decides; forked by the zygote, so it shares the zygote's initialised
// engine, or, without a zygote, a process of its own) and the zygote (engines initialised, no model, shared by
// every model whose instance does not fork from a template) -- and their life:
// start (in a memory cgroup: 2 x memory_mb for a template, whose standby's
// warm-up pages stay charged to it; cgroup::kZygoteMemoryMb for the zygote),
// readiness, fork requests (queued until ready), the start deadline
// (start_timeout_ms, the model's current one for a template), exit, and the
// restart of a zygote that had been serving (a template is restarted only
// when the scheduler asks again).
//
// What it reports, through SpawnerEvents: a template ready, a template gone
// without being stopped (crashed, failed to load, killed at its limit: why),
// and a start deadline passed (the runtime decides who to tell).
// Threading: the io_context's thread only. Ownership: owns its processes
// and kills them (and, on Remove and Shutdown, their process groups: a
// template's standby and the instances it forked).
#pragma once

#include <sys/types.h>

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "ipc/messages.h"
#include "repo/model_config.h"
#include "runtime/worker_processes.h"

namespace thaw {

struct Spawner : std::enable_shared_from_this<Spawner> {
  explicit Spawner(boost::asio::io_context& io) : socket(io), start_timer(io) {}

  struct Waiting {
    std::string model_dir;
    int child_fd;
    bool prepare;
    bool as_template;
  };

  std::string owner;  // the template's model; empty for the zygote
  pid_t pid = 0;      // 0 until a template forked by the zygote reports it (Forked)
  bool ready = false;
  Micros ready_at_us = 0;  // when its Ready was read; forks asked for before waited until then
  bool gone = false;
  boost::asio::local::stream_protocol::socket socket;
  ipc::FrameReader reader;
  std::array<char, 4096> read_buffer;
  std::vector<Waiting> waiting;  // forks asked for before it was ready
  Micros started_us = 0;
  int64_t start_timeout_ms = 0;  // the zygote's; a template follows its model's current setting
  std::string cgroup_dir;
  std::string sandbox;  // its Ready's sandbox report
  std::string error;    // what it reported (InitError) or why it went
  // The current standby (its Forked on the control socket: a template's, or
  // the zygote's with zygote_standby) and the memory cgroup it is moved into
  // ahead of demand, for the instance it becomes.
  pid_t standby_pid = 0;
  std::string standby_cgroup;
  bool standby_moved = false;
  // Its standby is in its group: the next instance it forks is that one.
  bool standby_waiting() const { return standby_moved && !standby_cgroup.empty(); }
  boost::asio::steady_timer start_timer;  // fires at the start deadline
};

struct SpawnerEvents {
  // The model's current settings; nullptr once unloaded. A template reads
  // its model's run directory, <run_dir>/<model>.
  std::function<const ModelConfig*(const std::string& model)> config_of;
  std::function<void(const std::string& model)> template_ready;
  // A template or the zygote forked a new standby (spawner.standby_pid).
  std::function<void(Spawner& spawner)> standby_forked;
  // A template the zygote forked reported its pid: move it into
  // spawner.cgroup_dir (sandboxed, it cannot).
  std::function<void(Spawner& spawner)> template_forked;
  std::function<void()> zygote_ready;
  // The model's current template is gone without StopTemplate or Remove:
  // `error` says why (never empty).
  std::function<void(const std::string& model, const std::string& error)> template_gone;
  // Not ready by its start deadline; `message` names the timeout. The
  // runtime kills it (TimeOut) after telling the models waiting for it.
  std::function<void(Spawner& spawner, const std::string& message)> start_timed_out;
};

// The zygote's start deadline (it loads no model).
constexpr int64_t kZygoteStartTimeoutMs = 60000;
// A template's nice value while it loads (0 once ready).
constexpr int kTemplateLoadNice = 10;

class Spawners {
 public:
  // `run_dir`: every model's run directory is below it (the zygote may read any).
  // `templates_from_zygote`: a template is forked by the zygote (false: a
  // process of its own, as when the zygote cannot start).
  // `zygote_standby`: the zygote keeps one child forked ahead of demand for
  // its next instance (reported like a template's standby: standby_forked).
  Spawners(boost::asio::io_context& io, const Clock& clock, WorkerProcesses& processes, std::string run_dir,
           SpawnerEvents events, bool templates_from_zygote = true, bool zygote_standby = false);

  // The zygote, started if none is running; nullptr if it cannot be started
  // (logged).
  std::shared_ptr<Spawner> Zygote();
  // Starts the model's template if it has none; an error if it cannot be
  // started (then no template_gone follows).
  Status StartTemplate(const ModelConfig& config);
  // The model's template, starting or ready; nullptr if none.
  Spawner* TemplateOf(std::string_view model) const;
  // The zygote, running or not; nullptr if none was started.
  Spawner* ZygoteIfAny() const { return zygote_.get(); }
  // Asks `spawner` to fork an instance of `model_dir` on `child_fd` (closed
  // here); queued until it is ready. On failure the instance sees EOF.
  // With `prepare` (the zygote only), the child prepares the model's
  // artifact and exits (ipc::PreparedMessage) instead of serving.
  // With `as_template` (the zygote only), the child becomes model_dir's
  // template, its control socket child_fd.
  void Fork(Spawner& spawner, const std::string& model_dir, int child_fd, bool prepare = false,
            bool as_template = false);
  // Kills the model's template (and so its standby); the instances it forked
  // keep serving until they retire.
  void StopTemplate(const std::string& model);
  // Kills the model's template and its process group and forgets it.
  void Remove(const std::string& model);
  // Kills `spawner` after a start timeout; one that had been serving restarts.
  void TimeOut(Spawner& spawner, const std::string& message);
  // Kills every spawner and its process group; nothing restarts.
  void Shutdown();

  // "template of model 'm'" or "the zygote" did not become ready within start_timeout_ms=N.
  static std::string StartTimeoutMessage(std::string_view what, std::string_view model, int64_t start_timeout_ms);

 private:
  std::shared_ptr<Spawner> Start(const std::string& owner, int64_t start_timeout_ms, std::string* error = nullptr);
  Micros StartDeadline(const Spawner& spawner) const;
  void WatchStart(std::shared_ptr<Spawner> spawner);
  void Read(std::shared_ptr<Spawner> spawner);
  void OnGone(Spawner& spawner);
  // Forgets the model's template and kills it (or its process group);
  // false if it had none.
  bool KillTemplate(const std::string& model, bool process_group);

  boost::asio::io_context& io_;
  const Clock& clock_;
  WorkerProcesses& processes_;
  std::string run_dir_;
  SpawnerEvents events_;
  bool templates_from_zygote_;
  bool zygote_standby_;
  std::map<std::string, std::shared_ptr<Spawner>, std::less<>> templates_;  // by model
  std::shared_ptr<Spawner> zygote_;
  uint64_t next_id_ = 1;
  bool shut_down_ = false;
};

}  // namespace thaw
