#include "runtime/preparations.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>

#include "base/log.h"
#include "repo/model_config.h"

namespace thaw {

namespace fs = std::filesystem;

Preparations::Preparations(boost::asio::io_context& io, const Clock& clock, Spawners& spawners, std::string store_dir,
                           Events events)
    : io_(io),
      clock_(clock),
      spawners_(spawners),
      store_dir_(std::move(store_dir)),
      events_(std::move(events)),
      timer_(io) {
  std::error_code ignored;
  fs::create_directories(store_dir_, ignored);
}

Preparations::~Preparations() {
  if (channel_) channel_->Close();
  if (running_ && running_pid_ > 0) ::kill(running_pid_, SIGKILL);
}

Status Preparations::Link(const std::string& key, const std::string& run_directory) const {
  return LinkStoredFile(StorePath(key), (fs::path(run_directory) / kPreparedArtifactFile).string());
}

void Preparations::Request(const std::string& model, const std::string& run_directory, const std::string& model_file,
                           int64_t timeout_ms) {
  Forget(model);
  std::error_code ignored;
  fs::remove(fs::path(run_directory) / kPreparedArtifactFile, ignored);  // an older version's
  StatusOr<std::string> key = keys_.Of((fs::path(run_directory) / model_file).string());
  if (!key.ok()) {
    events_.done(model, key.status(), false);
    return;
  }
  if (fs::exists(StorePath(*key))) {
    events_.done(model, Link(*key, run_directory), true);
    return;
  }
  Waiter waiter{model, run_directory};
  if (running_ && running_->key == *key) {
    running_->waiters.push_back(std::move(waiter));
    return;
  }
  for (Job& job : queue_)
    if (job.key == *key) {
      job.waiters.push_back(std::move(waiter));
      return;
    }
  queue_.push_back({*key, timeout_ms, {std::move(waiter)}, ""});
  RunNext();
}

void Preparations::Forget(const std::string& model) {
  auto drop = [&](Job& job) {
    std::erase_if(job.waiters, [&](const Waiter& w) { return w.model == model; });
  };
  for (Job& job : queue_) drop(job);
  std::erase_if(queue_, [](const Job& job) { return job.waiters.empty(); });
  if (!running_) return;
  drop(*running_);
  if (running_->source_model != model) return;  // it finishes for the others with that content
  // Its source directory is about to go: prepare again from a remaining
  // waiter's, first in line; or not at all if nobody else waits.
  std::unique_ptr<Job> job = StopRunning(/*kill_child=*/true);
  std::error_code ignored;
  fs::remove(StorePath(job->key) + ".new", ignored);
  artifact_bytes_ = 0;
  staged_.clear();
  LogEvent(LogLevel::kInfo, "model_prepare_restarted",
           LogFields({{"key", job->key.substr(0, 16)}, {"removed", model},
                      {"models", std::to_string(job->waiters.size())}}));
  if (!job->waiters.empty()) queue_.push_front(std::move(*job));
  RunNext();
}

std::unique_ptr<Preparations::Job> Preparations::StopRunning(bool kill_child) {
  std::unique_ptr<Job> job = std::move(running_);
  timer_.cancel();
  // Without a pid yet, the child ends when it finds its socket closed.
  if (kill_child && running_pid_ > 0) ::kill(running_pid_, SIGKILL);
  running_pid_ = 0;
  channel_->Close();
  // The channel may be the caller: release it once this handler returns.
  boost::asio::post(io_, [channel = std::move(channel_)]() {});
  if (staged_.is_open()) staged_.close();
  return job;
}

void Preparations::RunNext() {
  if (running_ || queue_.empty()) return;
  std::shared_ptr<Spawner> zygote = spawners_.Zygote();
  if (!zygote) {
    Job job = std::move(queue_.front());
    queue_.pop_front();
    for (const Waiter& w : job.waiters) events_.done(w.model, Unavailable("no zygote to prepare the model with"), false);
    return RunNext();
  }
  running_ = std::make_unique<Job>(std::move(queue_.front()));
  queue_.pop_front();
  running_->source_model = running_->waiters.front().model;
  const std::string source_dir = running_->waiters.front().run_directory;
  running_since_us_ = clock_.NowMicros();
  running_pid_ = 0;
  timer_.expires_after(std::chrono::milliseconds(running_->timeout_ms));
  timer_.async_wait([this, job = running_.get()](const boost::system::error_code& ec) {
    if (ec || running_.get() != job) return;
    if (running_pid_ > 0) ::kill(running_pid_, SIGKILL);
    Finish(Unavailable("preparing the model did not finish within start_timeout_ms=" + std::to_string(job->timeout_ms)));
  });
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    Finish(Unavailable("cannot create a socket to prepare the model"));
    return;
  }
  channel_ = std::make_shared<InstanceChannel>(io_, fds[0]);
  spawners_.Fork(*zygote, source_dir, fds[1], /*prepare=*/true);  // closes fds[1]
  channel_->Start({
      .frame =
          [this](ipc::MessageType type, const std::string& payload) {
            if (type == ipc::MessageType::kForked) {
              auto forked = ipc::DecodeForked(payload);
              if (!forked.ok()) return Finish(forked.status());
              running_pid_ = forked->pid;
              return;
            }
            if (type == ipc::MessageType::kPrepared) {
              auto piece = ipc::DecodePrepared(payload);
              if (!piece.ok()) return Finish(piece.status());
              if (!staged_.is_open()) {
                staged_.open(StorePath(running_->key) + ".new", std::ios::binary | std::ios::trunc);
                artifact_bytes_ = 0;
              }
              staged_.write(piece->chunk.data(), static_cast<std::streamsize>(piece->chunk.size()));
              artifact_bytes_ += piece->chunk.size();
              if (!staged_) return Finish(Internal("cannot write " + StorePath(running_->key) + ".new"));
              if (piece->last) Finish(Status::Ok());
              return;
            }
            if (type == ipc::MessageType::kInitError) {
              auto error = ipc::DecodeInitError(payload);
              return Finish(InvalidArgument(error.ok() ? error->message : "unreadable error"));
            }
            Finish(Internal("the preparing worker sent an unexpected message"));
          },
      .malformed = [this](const std::string& error) { Finish(Internal("the preparing worker: " + error)); },
      .closed = [this] { Finish(Unavailable("the preparing worker exited without an artifact")); },
      .after_read = [] {},
  });
}

void Preparations::Finish(const Status& status) {
  if (!running_) return;
  std::unique_ptr<Job> job = StopRunning(/*kill_child=*/false);  // it has finished, or was killed
  Status result = status;
  const bool none = status.ok() && artifact_bytes_ == 0;  // the backend has no artifact
  const std::string staged = StorePath(job->key) + ".new";
  if (!staged_ && result.ok()) result = Internal("cannot write " + staged);
  std::error_code ec;
  if (result.ok() && !none) {
    fs::rename(staged, StorePath(job->key), ec);
    if (ec) result = Internal("cannot write " + StorePath(job->key) + ": " + ec.message());
  } else {
    fs::remove(staged, ec);
  }
  const size_t bytes = artifact_bytes_;
  artifact_bytes_ = 0;
  staged_.clear();
  LogEvent(result.ok() ? LogLevel::kInfo : LogLevel::kWarning, "model_prepared",
           LogFields({{"key", job->key.substr(0, 16)}, {"models", std::to_string(job->waiters.size())},
                      {"ok", result.ok() ? "true" : "false"}, {"bytes", std::to_string(bytes)},
                      {"ms", MillisText(clock_.NowMicros() - running_since_us_)},
                      {"error", LogValue(result.ok() ? "" : result.message())}}));
  for (const Waiter& w : job->waiters) {
    if (!result.ok() || none) {
      events_.done(w.model, result, false);
    } else {
      events_.done(w.model, Link(job->key, w.run_directory), true);
    }
  }
  RunNext();
}

}  // namespace thaw
