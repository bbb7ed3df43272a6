#include "runtime/version_check.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "runtime/spawners.h"

namespace thaw {

StatusOr<std::shared_ptr<VersionCheck>> VersionCheck::Start(boost::asio::io_context& io, WorkerProcesses& processes,
                                                            const ModelConfig& config, const std::string& staging_dir,
                                                            std::function<void(Status)> done) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return Unavailable("cannot create a socket to validate model '" + config.name + "'");
  // A plain instance of the new version: it loads the model and runs its
  // warm-up like any start, then is stopped.
  auto pid = processes.Spawn({processes.worker_path(), "--model-dir", staging_dir, "--fd", std::to_string(kWorkerFd)},
                             config.threads, fds[1]);
  ::close(fds[1]);
  if (!pid.ok()) {
    ::close(fds[0]);
    return pid.status();
  }
  auto check = std::make_shared<VersionCheck>(io, config.name);
  check->pid_ = *pid;
  check->done_ = std::move(done);
  check->channel_ = std::make_shared<InstanceChannel>(io, fds[0]);
  LogEvent(LogLevel::kInfo, "model_validation_start", LogFields({{"model", config.name}, {"pid", std::to_string(*pid)}}));
  const std::string timeout =
      Spawners::StartTimeoutMessage("the new version", config.name, config.start_timeout_ms);
  check->timer_.expires_after(std::chrono::milliseconds(config.start_timeout_ms));
  check->timer_.async_wait([check, timeout](const boost::system::error_code& ec) {
    if (!ec) check->Finish(Unavailable(timeout));
  });
  std::weak_ptr<VersionCheck> weak = check;
  const std::string failed = "the new version of model '" + config.name + "' failed to load: ";
  check->channel_->Start({
      .frame =
          [weak, failed](ipc::MessageType type, const std::string& payload) {
            auto check = weak.lock();
            if (!check) return;
            if (type == ipc::MessageType::kReady) return check->Finish(Status::Ok());
            if (type == ipc::MessageType::kInitError) {
              auto error = ipc::DecodeInitError(payload);
              check->Finish(Unavailable(failed + (error.ok() ? error->message : "unreadable error")));
            }
          },
      .malformed = [weak](const std::string& error) { if (auto check = weak.lock()) check->Finish(Internal(error)); },
      .closed =
          [weak, failed] {
            if (auto check = weak.lock()) check->Finish(Unavailable(failed + "worker exited before it was ready"));
          },
      .after_read = [] {},
  });
  return check;
}

void VersionCheck::Finish(Status status) {
  if (finished_) return;
  finished_ = true;
  timer_.cancel();
  channel_->Close();
  ::kill(pid_, SIGKILL);
  done_(std::move(status));
}

}  // namespace thaw
