// VersionCheck: proves a new version of a model before it replaces the
// serving one (Runtime::ReloadModel). A plain worker started from a staging
// directory must load the model and run its warm-up within
// start_timeout_ms. `done` gets Ok once it is ready, else kUnavailable
// naming the load error, the early exit or the timeout (kInternal for a
// malformed message); the worker is killed either way, and `done` is called
// once, on the io_context's thread (never from Start).
// Threading: the io_context's thread only.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <memory>
#include <string>

#include "base/status.h"
#include "repo/model_config.h"
#include "runtime/instance_channel.h"
#include "runtime/worker_processes.h"

namespace thaw {

class VersionCheck : public std::enable_shared_from_this<VersionCheck> {
 public:
  // Starts the worker; an error if it cannot be started (then `done` is not called).
  static StatusOr<std::shared_ptr<VersionCheck>> Start(boost::asio::io_context& io, WorkerProcesses& processes,
                                                       const ModelConfig& config, const std::string& staging_dir,
                                                       std::function<void(Status)> done);
  // Ends the check now with `status` (shutdown).
  void Cancel(const Status& status) { Finish(status); }

  VersionCheck(boost::asio::io_context& io, std::string model) : timer_(io), model_(std::move(model)) {}

 private:
  void Finish(Status status);

  boost::asio::steady_timer timer_;
  std::string model_;
  int pid_ = 0;
  std::shared_ptr<InstanceChannel> channel_;
  std::function<void(Status)> done_;
  bool finished_ = false;
};

}  // namespace thaw
