#include "runtime/spawners.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "cgroup/memory_cgroup.h"

namespace thaw {

namespace asio = boost::asio;

Spawners::Spawners(asio::io_context& io, const Clock& clock, WorkerProcesses& processes, std::string run_dir,
                   SpawnerEvents events, bool templates_from_zygote, bool zygote_standby)
    : io_(io),
      clock_(clock),
      processes_(processes),
      run_dir_(std::move(run_dir)),
      events_(std::move(events)),
      templates_from_zygote_(templates_from_zygote),
      zygote_standby_(zygote_standby) {}

std::string Spawners::StartTimeoutMessage(std::string_view what, std::string_view model, int64_t start_timeout_ms) {
  return (model.empty() ? "the " + std::string(what) : std::string(what) + " of model '" + std::string(model) + "'") +
         " did not become ready within start_timeout_ms=" + std::to_string(start_timeout_ms);
}

Spawner* Spawners::TemplateOf(std::string_view model) const {
  auto it = templates_.find(model);
  return it == templates_.end() || !it->second || it->second->gone ? nullptr : it->second.get();
}

std::shared_ptr<Spawner> Spawners::Zygote() {
  if (shut_down_) return nullptr;
  // The zygote's start deadline: the longest a model may take to start.
  if (!zygote_ || zygote_->gone) zygote_ = Start("", kZygoteStartTimeoutMs);
  return zygote_;
}

Status Spawners::StartTemplate(const ModelConfig& config) {
  if (shut_down_) return Unavailable("server is shutting down");
  std::shared_ptr<Spawner>& slot = templates_[config.name];
  if (slot && !slot->gone) return Status::Ok();
  std::string error;
  slot = Start(config.name, config.start_timeout_ms, &error);
  if (slot) return Status::Ok();
  templates_.erase(config.name);
  return Unavailable(error);
}

std::shared_ptr<Spawner> Spawners::Start(const std::string& owner, int64_t start_timeout_ms, std::string* error_out) {
  std::string ignored_error;
  std::string& error_text = error_out ? *error_out : ignored_error;
  const ModelConfig* config = owner.empty() ? nullptr : events_.config_of(owner);
  if (!owner.empty() && !config) {
    error_text = "model '" + owner + "' is not loaded";
    return nullptr;
  }
  const std::string model_dir = config ? run_dir_ + "/" + owner : "";
  const std::string name = config ? owner : "zygote";
  // A template forks from the zygote when there is one (its engine is set
  // up once, there): no exec, no second copy of the engine's memory.
  std::shared_ptr<Spawner> zygote = config && templates_from_zygote_ ? Zygote() : nullptr;
  if (zygote && zygote->gone) zygote.reset();
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    error_text = "cannot create a socket for a spawner";
    return nullptr;
  }
  auto cgroup_dir = processes_.MakeCgroup((config ? "template-" : "zygote-") + std::to_string(next_id_++),
                                          config ? 2 * config->memory_mb : cgroup::kZygoteGroupMemoryMb);
  if (!cgroup_dir.ok()) {
    ::close(fds[0]);
    ::close(fds[1]);
    error_text = "cannot enforce memory_mb: " + cgroup_dir.status().message();
    LogEvent(LogLevel::kError, "spawner_start_failed", LogFields({{"model", name}, {"error", LogValue(error_text)}}));
    return nullptr;
  }
  pid_t pid = 0;  // a template the zygote forks reports its own (Forked), then is moved and reniced
  if (zygote) {
    Fork(*zygote, model_dir, fds[1], /*prepare=*/false, /*as_template=*/true);  // closes fds[1]
  } else {
    std::vector<std::string> args = {processes_.worker_path()};
    if (config) {
      args.insert(args.end(), {"--template", "--model-dir", model_dir});
    } else {
      args.push_back("--zygote");
      if (zygote_standby_) args.push_back("--standby");
    }
    args.insert(args.end(), {"--fd", std::to_string(kWorkerFd)});
    if (!cgroup_dir->empty()) args.insert(args.end(), {"--cgroup", *cgroup_dir});
    // A zygote serves every model: its instances may need any model's directory.
    for (std::string& arg : processes_.SandboxArgs(config ? model_dir : run_dir_)) args.push_back(std::move(arg));
    // One thread: a parent that ran OpenMP on more would hang its children.
    auto spawned = processes_.Spawn(args, 1, fds[1]);
    ::close(fds[1]);
    if (!spawned.ok()) {
      ::close(fds[0]);
      error_text = spawned.status().message();
      LogEvent(LogLevel::kError, "spawner_start_failed", LogFields({{"model", name}, {"error", LogValue(error_text)}}));
      processes_.RemoveCgroupLater(*cgroup_dir);
      return nullptr;
    }
    pid = *spawned;
    // A template is a cache filled in the background: while it loads, it
    // yields the cores to instances serving (and starting for) requests. Its
    // priority is restored when it is ready (its standby's too, which it may
    // fork before the server has read its Ready).
    if (config) ::setpriority(PRIO_PROCESS, static_cast<id_t>(pid), kTemplateLoadNice);
  }
  auto spawner = std::make_shared<Spawner>(io_);
  spawner->cgroup_dir = *cgroup_dir;
  spawner->owner = owner;
  spawner->pid = pid;
  spawner->start_timeout_ms = start_timeout_ms;
  spawner->started_us = clock_.NowMicros();
  spawner->socket.assign(asio::local::stream_protocol(), fds[0]);
  LogEvent(LogLevel::kInfo, config ? "template_start" : "zygote_start",
           LogFields({{"model", name}, {"pid", std::to_string(pid)}, {"from", zygote ? "zygote" : "exec"}}));
  Read(spawner);
  WatchStart(spawner);
  return spawner;
}

Micros Spawners::StartDeadline(const Spawner& spawner) const {
  const ModelConfig* config = spawner.owner.empty() ? nullptr : events_.config_of(spawner.owner);
  return spawner.started_us + (config ? config->start_timeout_ms : spawner.start_timeout_ms) * kMicrosPerMilli;
}

void Spawners::WatchStart(std::shared_ptr<Spawner> spawner) {
  const Micros wait = std::max<Micros>(0, StartDeadline(*spawner) - clock_.NowMicros());
  spawner->start_timer.expires_after(std::chrono::microseconds(wait));
  spawner->start_timer.async_wait([this, spawner](const boost::system::error_code& ec) {
    if (ec || spawner->gone || spawner->ready) return;
    // A template follows its model's current start_timeout_ms: re-armed if it grew.
    if (clock_.NowMicros() < StartDeadline(*spawner)) return WatchStart(spawner);
    const ModelConfig* config = spawner->owner.empty() ? nullptr : events_.config_of(spawner->owner);
    events_.start_timed_out(*spawner, StartTimeoutMessage(config ? "template" : "zygote", spawner->owner,
                                                          config ? config->start_timeout_ms : spawner->start_timeout_ms));
  });
}

void Spawners::Read(std::shared_ptr<Spawner> spawner) {
  spawner->socket.async_read_some(
      asio::buffer(spawner->read_buffer), [this, spawner](const boost::system::error_code& ec, size_t n) {
        if (spawner->gone) return;
        if (ec) return OnGone(*spawner);
        spawner->reader.Append(spawner->read_buffer.data(), n);
        for (;;) {
          auto frame = spawner->reader.Next();
          if (!frame.ok()) return OnGone(*spawner);
          if (!frame->has_value()) break;
          const bool is_template = !spawner->owner.empty();
          const std::string name = is_template ? spawner->owner : "zygote";
          if ((*frame)->type == ipc::MessageType::kForked && is_template && spawner->pid == 0) {
            // A template forked by the zygote: its pid, before it loads.
            auto forked = ipc::DecodeForked((*frame)->payload);
            if (!forked.ok()) return OnGone(*spawner);
            spawner->pid = forked->pid;
            ::setpriority(PRIO_PROCESS, static_cast<id_t>(spawner->pid), kTemplateLoadNice);
            if (events_.template_forked) events_.template_forked(*spawner);
          } else if ((*frame)->type == ipc::MessageType::kReady) {
            auto ready = ipc::DecodeReady((*frame)->payload);
            spawner->ready = true;
            spawner->ready_at_us = clock_.NowMicros();
            spawner->start_timer.cancel();
            if (is_template && spawner->pid > 0) ::setpriority(PRIO_PROCESS, static_cast<id_t>(spawner->pid), 0);
            if (ready.ok()) spawner->sandbox = ready->sandbox;
            // Logged here only (not by the worker), before what its readiness sets off.
            LogEvent(LogLevel::kInfo, is_template ? "template_ready" : "zygote_ready",
                     LogFields({{"model", name}, {"pid", std::to_string(spawner->pid)},
                                {"start_ms", ready.ok() ? MillisText(spawner->ready_at_us - ready->started_us) : "?"},
                                {"load_ms", ready.ok() ? MillisText(ready->model_load_us) : "?"},
                                {"warmup_ms", ready.ok() ? MillisText(ready->warmup_us) : "?"}}));
            // The template loaded and warmed the model: it can start.
            if (is_template) events_.template_ready(spawner->owner);
            if (!is_template && events_.zygote_ready) events_.zygote_ready();
            std::vector<Spawner::Waiting> waiting = std::move(spawner->waiting);
            spawner->waiting.clear();
            for (auto& w : waiting) Fork(*spawner, w.model_dir, w.child_fd, w.prepare, w.as_template);
          } else if ((*frame)->type == ipc::MessageType::kForked && spawner->ready) {
            auto forked = ipc::DecodeForked((*frame)->payload);
            if (!forked.ok()) return OnGone(*spawner);
            if (!spawner->standby_cgroup.empty()) processes_.RemoveCgroupLater(spawner->standby_cgroup);
            spawner->standby_pid = forked->pid;
            // Forked right after the template's Ready, maybe before the
            // server restored the template's priority on it: it would
            // inherit the load's nice value and serve at it. (Unprivileged,
            // it cannot raise its own priority.)
            ::setpriority(PRIO_PROCESS, static_cast<id_t>(forked->pid), 0);
            spawner->standby_cgroup.clear();
            spawner->standby_moved = false;
            if (events_.standby_forked) events_.standby_forked(*spawner);
          } else if ((*frame)->type == ipc::MessageType::kInitError) {
            auto error = ipc::DecodeInitError((*frame)->payload);
            const std::string message = error.ok() ? error->message : "unreadable error";
            spawner->error = message;
            LogEvent(LogLevel::kError, "spawner_init_error", LogFields({{"model", name}, {"error", LogValue(message)}}));
          }
        }
        Read(spawner);
      });
}

void Spawners::Fork(Spawner& spawner, const std::string& model_dir, int child_fd, bool prepare, bool as_template) {
  if (!spawner.ready && !spawner.gone) {
    spawner.waiting.push_back({model_dir, child_fd, prepare, as_template});
    return;
  }
  Status sent = spawner.gone ? Unavailable("spawner is gone")
                             : ipc::SendFrameWithFd(spawner.socket.native_handle(),
                                                    ipc::Encode(ipc::SpawnMessage{.model_dir = model_dir,
                                                                                  .prepare = prepare,
                                                                                  .as_template = as_template}),
                                                    child_fd);
  ::close(child_fd);  // the spawner holds its own copy now; on failure the instance sees EOF
  if (!sent.ok())
    LogEvent(LogLevel::kError, "spawn_failed",
             LogFields({{"pid", std::to_string(spawner.pid)}, {"error", LogValue(sent.message())}}));
}

void Spawners::OnGone(Spawner& spawner) {
  if (spawner.gone) return;
  spawner.gone = true;
  const bool was_ready = spawner.ready;
  boost::system::error_code ignored;
  spawner.socket.close(ignored);
  spawner.start_timer.cancel();
  // (pid 0: a template the zygote was asked for that never reported; its
  // socket is closed, so it exits when it next writes.)
  if (spawner.pid > 0) ::kill(spawner.pid, SIGKILL);
  // Instances that were waiting for it see EOF and fail their start.
  for (auto& w : spawner.waiting) ::close(w.child_fd);
  spawner.waiting.clear();
  const bool is_template = !spawner.owner.empty();
  const std::string name = is_template ? spawner.owner : "zygote";
  const ModelConfig* config = is_template ? events_.config_of(spawner.owner) : nullptr;
  auto slot = is_template ? templates_.find(spawner.owner) : templates_.end();
  // Its model's current template (not one replaced or removed).
  const bool current = is_template && config && slot != templates_.end() && slot->second.get() == &spawner;
  const bool expected = shut_down_ || (is_template && !current);
  if (!expected && processes_.OomKilled(spawner.cgroup_dir)) {
    spawner.error = (is_template ? "template of model '" + name + "'" : std::string("the zygote")) +
                    " exceeded its memory limit (" +
                    (is_template ? "2 x memory_mb=" + std::to_string(config->memory_mb)
                                 : std::to_string(cgroup::kZygoteGroupMemoryMb) + " MB") +
                    ") and was killed";
    LogEvent(LogLevel::kWarning, "spawner_oom", LogFields({{"model", name}, {"error", LogValue(spawner.error)}}));
  }
  processes_.RemoveCgroupLater(spawner.cgroup_dir);
  if (!spawner.standby_cgroup.empty()) processes_.RemoveCgroupLater(spawner.standby_cgroup);
  spawner.standby_cgroup.clear();
  std::shared_ptr<Spawner> keep;  // `spawner` outlives the erase below
  if (current) {
    keep = slot->second;
    templates_.erase(slot);  // the scheduler starts another when the model is next wanted
    if (spawner.error.empty())
      spawner.error = was_ready ? "template exited" : "template exited before it was ready";
    events_.template_gone(name, spawner.error);
  }
  LogEvent(expected ? LogLevel::kInfo : LogLevel::kWarning, "spawner_exit",
           LogFields({{"model", name}, {"pid", std::to_string(spawner.pid)}, {"was_ready", was_ready ? "true" : "false"}}));
  // A zygote that had been serving is replaced at once; one that never got
  // ready is retried when an instance is next needed.
  if (shut_down_ || !was_ready || is_template) return;
  if (zygote_.get() == &spawner) zygote_ = Start("", spawner.start_timeout_ms);
}

void Spawners::TimeOut(Spawner& spawner, const std::string& message) {
  spawner.error = message;
  if (spawner.pid > 0) ::kill(spawner.pid, SIGKILL);
  OnGone(spawner);
}

bool Spawners::KillTemplate(const std::string& model, bool process_group) {
  auto it = templates_.find(model);
  if (it == templates_.end()) return false;
  std::shared_ptr<Spawner> spawner = std::move(it->second);
  templates_.erase(it);  // no longer current: OnGone neither reports nor restarts it
  if (!spawner) return false;
  if (spawner->pid > 0) ::kill(process_group ? -spawner->pid : spawner->pid, SIGKILL);
  OnGone(*spawner);
  return true;
}

void Spawners::StopTemplate(const std::string& model) {
  // Only the template: instances it forked keep serving until they retire.
  KillTemplate(model, /*process_group=*/false);
}

void Spawners::Remove(const std::string& model) {
  // The template's process group holds its standby and its instances too.
  KillTemplate(model, /*process_group=*/true);
}

void Spawners::Shutdown() {
  shut_down_ = true;
  for (auto& [name, spawner] : templates_) {
    if (!spawner) continue;
    if (spawner->pid > 0) ::kill(-spawner->pid, SIGKILL);
    OnGone(*spawner);
  }
  if (zygote_) {
    ::kill(-zygote_->pid, SIGKILL);
    OnGone(*zygote_);
  }
}

}  // namespace thaw
