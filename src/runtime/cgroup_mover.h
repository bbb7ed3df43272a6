// CgroupMover: moves forked instances into their memory cgroups off the
// event loop. A write to a v1 cgroup.procs waits for an RCU grace period
// (5-15 ms measured here) whatever the process, so doing it on the server's
// thread when an instance reports ready put that wait into every forked cold
// start and stalled every other request meanwhile. Here one background thread
// does the writes in order; each result comes back on the io_context.
//
// What this changes: an instance serves from the moment it is ready; until
// its move lands (milliseconds later) it is held by its spawner's cgroup (a
// template's 2 x memory_mb, the zygote's cgroup::kZygoteGroupMemoryMb), so a
// limit applies throughout, its own one from the move on.
// Threading: Move and the destructor on the io_context's thread; `done`
// runs there too, never after destruction. Errors: the move's, to `done`.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"

namespace thaw {

class CgroupMover {
 public:
  explicit CgroupMover(boost::asio::io_context& io) : io_(io) {}
  ~CgroupMover();
  CgroupMover(const CgroupMover&) = delete;
  CgroupMover& operator=(const CgroupMover&) = delete;

  // Moves `pid` into the memory cgroup `dir`, then calls `done` with the result.
  void Move(pid_t pid, std::string dir, std::function<void(Status)> done);

 private:
  struct Job {
    pid_t pid;
    std::string dir;
    std::function<void(Status)> done;
  };
  void Run();

  boost::asio::io_context& io_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // read on the io thread only
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;  // guarded by mutex_
  bool stopping_ = false;  // guarded by mutex_
  std::thread thread_;     // started by the first Move
};

}  // namespace thaw
