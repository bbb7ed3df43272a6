#include "backend/probe_backend.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace thaw {
namespace {

constexpr int kProbes = 6;

// errno of a failed call, 0 when it succeeded (the result is closed).
float Attempt(int result) {
  if (result >= 0) {
    ::close(result);
    return 0;
  }
  return static_cast<float>(errno);
}

std::vector<int> OpenDescriptors() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (!dir) return fds;
  const int own = ::dirfd(dir);
  while (dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    const int fd = std::atoi(entry->d_name);
    if (fd != own) fds.push_back(fd);
  }
  ::closedir(dir);
  return fds;
}

class ProbeBackend : public Backend {
 public:
  Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) override {
    float results[kProbes];
    results[0] = Attempt(::socket(AF_INET, SOCK_STREAM, 0));
    results[1] = Attempt(::open("/etc/shadow", O_RDONLY));
    const std::string outside = "/tmp/thaw-probe-" + std::to_string(::getpid());
    results[2] = Attempt(::open(outside.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644));
    ::unlink(outside.c_str());
    results[3] = EBADF;
    int extra = 0, sockets = 0;
    for (int fd : OpenDescriptors()) {
      // One socket is the worker's own (fd 3 after exec, any number after a fork).
      int type = 0;
      socklen_t len = sizeof type;
      if (fd > 2 && ::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0) {
        if (++sockets > 1) ++extra;
      } else if (fd > 2) {
        ++extra;
      }
      const int accepted = ::accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (accepted >= 0) {
        ::close(accepted);
        results[3] = 0;
      } else if (results[3] != 0) {
        results[3] = static_cast<float>(errno);
      }
    }
    results[4] = static_cast<float>(extra);
    results[5] = Attempt(::ptrace(PTRACE_ATTACH, ::getppid(), nullptr, nullptr) == 0 ? 0 : -1);
    if (results[5] == 0) ::ptrace(PTRACE_DETACH, ::getppid(), nullptr, nullptr);

    const int64_t rows = inputs.empty() || inputs[0].shape.empty() ? 1 : inputs[0].shape[0];
    Tensor out;
    out.name = name_;
    out.datatype = DataType::kFp32;
    out.shape = {rows, kProbes};
    for (int64_t r = 0; r < rows; ++r) out.data.append(reinterpret_cast<const char*>(results), sizeof results);
    outputs->clear();
    outputs->push_back(std::move(out));
    return Status::Ok();
  }

  explicit ProbeBackend(std::string output_name) : name_(std::move(output_name)) {}

 private:
  std::string name_;
};

StatusOr<std::unique_ptr<Backend>> CreateProbe(const ModelConfig& config) {
  const int fd = ::open(config.ModelPath().c_str(), O_RDONLY);
  if (fd < 0) return NotFound("probe: cannot read " + config.ModelPath() + ": " + std::strerror(errno));
  ::close(fd);
  if (config.outputs.size() != 1) return InvalidArgument("probe: the config must declare one output");
  return std::unique_ptr<Backend>(new ProbeBackend(config.outputs[0].name));
}

}  // namespace

void UseProbeBackend() { SetBackendFactoryForTesting(CreateProbe); }

}  // namespace thaw
