#include "runtime/cgroup_mover.h"

#include <boost/asio/post.hpp>

#include "cgroup/memory_cgroup.h"

namespace thaw {

CgroupMover::~CgroupMover() {
  *alive_ = false;  // results still queued on the io_context are dropped
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void CgroupMover::Move(pid_t pid, std::string dir, std::function<void(Status)> done) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back({pid, std::move(dir), std::move(done)});
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
  wake_.notify_one();
}

void CgroupMover::Run() {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
      if (stopping_) return;  // a pending move no longer matters: its process is being killed
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    Status moved = cgroup::MoveToMemoryCgroup(job.dir, job.pid);
    boost::asio::post(io_, [alive = alive_, done = std::move(job.done), moved = std::move(moved)]() {
      if (*alive) done(moved);
    });
  }
}

}  // namespace thaw
