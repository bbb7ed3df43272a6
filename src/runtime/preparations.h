// Preparations: each model's prepared artifact (backend.h, PrepareArtifact:
// for TorchScript the frozen module), made once per model-file content in
// the background after deploy, so an instance started from the zygote loads
// it instead of freezing the model again. A job is a child of the zygote
// (engines initialised, sandboxed like every worker) that loads and freezes
// the model and sends the artifact back on its socket; the runtime writes it
// into the store (named by the SHA-256 of the model file) and links it into
// the run directory of every model with that content. One job runs at a
// time, so preparation takes at most one core from serving.
//
// Trust: an artifact is used only by models whose file has the same
// content hash; it is written by the server, never by a worker.
// Errors: a job that fails (the model does not load, the child dies) reports
// its error for every model waiting on it; the models still start, from
// their model file. A model unloaded while its directory is the running
// job's source restarts the job for the others (it does not fail them).
// Threading: the io_context's thread only.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "repo/model_config.h"
#include "runtime/instance_channel.h"
#include "runtime/run_files.h"
#include "runtime/spawners.h"

namespace thaw {

class Preparations {
 public:
  struct Events {
    // The model's artifact is in its run directory (ok and `made`), its
    // backend has none (ok, not made), or it could not be made (the error).
    std::function<void(const std::string& model, const Status& status, bool made)> done;
  };
  // `store_dir`: where artifacts are kept by content key (created if missing).
  Preparations(boost::asio::io_context& io, const Clock& clock, Spawners& spawners, std::string store_dir,
               Events events);
  ~Preparations();  // a running job's channel is closed: its handlers never run

  // Gives `model` (its snapshot at run_directory/model_file) its artifact:
  // linked at once if the store has it, else after a job makes it.
  // A job still running after `timeout_ms` (the model's start_timeout_ms) is
  // killed and fails (kUnavailable).
  void Request(const std::string& model, const std::string& run_directory, const std::string& model_file,
               int64_t timeout_ms);
  // The model was unloaded or reloaded: a pending request for it is dropped.
  // A running job that prepares from this model's run directory (which the
  // caller is about to remove or replace) is stopped, and started again from
  // another waiting model's directory if any remain: a model sharing the
  // content never fails because another one went away.
  void Forget(const std::string& model);
  // Jobs queued or running.
  size_t pending() const { return queue_.size() + (running_ ? 1 : 0); }

 private:
  struct Waiter {
    std::string model;
    std::string run_directory;
  };
  struct Job {
    std::string key;
    int64_t timeout_ms = 0;
    std::vector<Waiter> waiters;  // the first one's run directory is the source, once running
    std::string source_model;     // whose run directory the running child prepares from
  };
  void RunNext();
  void Finish(const Status& status);
  // Ends the running job's channel, deadline and staged file (and its child
  // if `kill_child`), without reporting to its waiters; returns the job.
  std::unique_ptr<Job> StopRunning(bool kill_child);
  Status Link(const std::string& key, const std::string& run_directory) const;
  std::string StorePath(const std::string& key) const {
    return store_dir_ + "/" + key + ".v" + std::to_string(kPreparedArtifactFormat);
  }

  boost::asio::io_context& io_;
  const Clock& clock_;
  Spawners& spawners_;
  std::string store_dir_;
  Events events_;
  ContentKeys keys_;
  std::deque<Job> queue_;
  std::unique_ptr<Job> running_;
  std::shared_ptr<InstanceChannel> channel_;
  boost::asio::steady_timer timer_;  // the running job's deadline
  pid_t running_pid_ = 0;            // the running job's child, once it said so
  Micros running_since_us_ = 0;
  std::ofstream staged_;  // the running job's artifact, written piece by piece
  size_t artifact_bytes_ = 0;
};

}  // namespace thaw
