#include "worker/worker.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "base/log.h"
#include "cgroup/memory_cgroup.h"
#include "ipc/messages.h"
#include "repo/model_config.h"

namespace thaw {
namespace {

std::string ModelNameOf(const std::string& model_dir) {
  std::string_view d = model_dir;
  while (d.size() > 1 && d.back() == '/') d.remove_suffix(1);
  size_t slash = d.rfind('/');
  return std::string(slash == std::string_view::npos ? d : d.substr(slash + 1));
}

// Serialises writes of whole frames to the socket.
class Responder {
 public:
  explicit Responder(int fd) : fd_(fd) {}

  void Send(const ipc::InferResponseMessage& response) {
    std::string frame = ipc::Encode(response);
    std::lock_guard<std::mutex> lock(mu_);
    if (broken_) return;
    Status s = ipc::WriteAll(fd_, frame);
    if (!s.ok()) {
      // The server is gone; the reader will see EOF and wind down.
      broken_ = true;
      LogEvent(LogLevel::kWarning, "worker_write_failed",
               LogFields({{"request_id", std::to_string(response.request_id)}, {"error", LogValue(s.message())}}));
    }
  }

 private:
  const int fd_;
  std::mutex mu_;
  bool broken_ = false;
};

// Runs one request and builds its response.
ipc::InferResponseMessage Execute(Backend& backend, const Clock& clock, ipc::InferRequestMessage& request) {
  ipc::InferResponseMessage response;
  response.request_id = request.request_id;
  std::vector<Tensor> outputs;
  const Micros start = clock.NowMicros();
  Status s = backend.Run(request.inputs, &outputs);
  response.compute_us = clock.NowMicros() - start;
  request.inputs.clear();  // free the input bytes before encoding the response

  if (s.ok() && !request.output_names.empty()) {
    std::vector<Tensor> selected;
    selected.reserve(request.output_names.size());
    for (const std::string& name : request.output_names) {
      auto it = std::find_if(outputs.begin(), outputs.end(), [&](const Tensor& t) { return t.name == name; });
      if (it == outputs.end()) {
        s = InvalidArgument("unknown output '" + name + "'");
        break;
      }
      selected.push_back(*it);
    }
    outputs = std::move(selected);
  }
  if (s.ok()) {
    response.outputs = std::move(outputs);
  } else {
    response.code = s.code();
    response.error = s.message();
    if (s.code() == StatusCode::kInternal)
      LogEvent(LogLevel::kWarning, "worker_request_failed",
               LogFields({{"request_id", std::to_string(request.request_id)}, {"error", LogValue(s.message())}}));
  }
  return response;
}

// A fixed pool of executor threads fed by the reading thread.
class Executor {
 public:
  Executor(int threads, Backend& backend, const Clock& clock, Responder& responder)
      : backend_(backend), clock_(clock), responder_(responder) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Loop(); });
  }

  ~Executor() { Drain(); }

  void Submit(ipc::InferRequestMessage request) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(request));
    }
    cv_.notify_one();
  }

  // Finishes every queued request, then stops the threads.
  void Drain() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }

 private:
  void Loop() {
    for (;;) {
      ipc::InferRequestMessage request;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;  // closed and drained
        request = std::move(queue_.front());
        queue_.pop_front();
      }
      responder_.Send(Execute(backend_, clock_, request));
    }
  }

  Backend& backend_;
  const Clock& clock_;
  Responder& responder_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ipc::InferRequestMessage> queue_;
  bool closed_ = false;
  std::vector<std::thread> threads_;
};

int InitFailed(int fd, const std::string& model, const Status& status) {
  LogEvent(LogLevel::kError, "worker_init_error",
           LogFields({{"pid", std::to_string(::getpid())}, {"model", LogValue(model)},
                      {"code", std::string(StatusCodeName(status.code()))}, {"error", LogValue(status.message())}}));
  Status s = ipc::WriteAll(fd, ipc::Encode(ipc::InitErrorMessage{status.ToString()}));
  if (!s.ok()) LogEvent(LogLevel::kError, "worker_write_failed", LogFields({{"error", LogValue(s.message())}}));
  LogEvent(LogLevel::kInfo, "worker_exit",
           LogFields({{"pid", std::to_string(::getpid())}, {"model", LogValue(model)}, {"reason", "init_error"},
                      {"exit_code", std::to_string(kWorkerExitInitError)}}));
  return kWorkerExitInitError;
}

}  // namespace

StatusOr<WorkerOptions> ParseWorkerArgs(int argc, const char* const* argv) {
  WorkerOptions options;
  bool have_fd = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    std::string_view value;
    std::string_view flag = arg;
    size_t eq = arg.find('=');
    if (arg.starts_with("--") && eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    } else if (arg == "--model-dir" || arg == "--fd" || arg == "--cgroup" || arg == "--sandbox" || arg == "--user" ||
               arg == "--writable-dir") {
      if (i + 1 >= argc) return InvalidArgument(std::string(arg) + " needs a value");
      value = argv[++i];
    }
    if (flag == "--template" || flag == "--zygote") {
      if (!value.empty()) return InvalidArgument(std::string(flag) + " takes no value");
      options.mode = flag == "--template" ? WorkerMode::kTemplate : WorkerMode::kZygote;
    } else if (flag == "--standby") {
      if (!value.empty()) return InvalidArgument("--standby takes no value");
      options.zygote_standby = true;
    } else if (flag == "--model-dir") {
      if (value.empty()) return InvalidArgument("--model-dir needs a value");
      options.model_dir = std::string(value);
    } else if (flag == "--cgroup") {
      if (value.empty()) return InvalidArgument("--cgroup needs a value");
      options.cgroup_dir = std::string(value);
    } else if (flag == "--fd") {
      int fd = -1;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), fd);
      if (ec != std::errc() || end != value.data() + value.size() || fd < 0)
        return InvalidArgument("--fd: not a file descriptor number: '" + std::string(value) + "'");
      options.fd = fd;
      have_fd = true;
    } else if (flag == "--sandbox") {
      StatusOr<sandbox::SandboxMode> mode = sandbox::ParseSandboxMode(value);
      if (!mode.ok()) return InvalidArgument("--sandbox: " + mode.status().message());
      options.sandbox = *mode;
    } else if (flag == "--user") {
      StatusOr<sandbox::WorkerUser> user = sandbox::ParseWorkerUser(value);
      if (!user.ok()) return InvalidArgument("--user: " + user.status().message());
      options.user = *user;
    } else if (flag == "--writable-dir") {
      if (value.empty()) return InvalidArgument("--writable-dir needs a value");
      options.writable_dir = std::string(value);
    } else {
      return InvalidArgument("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (options.mode == WorkerMode::kZygote && !options.model_dir.empty())
    return InvalidArgument("--zygote takes no --model-dir: instances name their model");
  if (options.mode != WorkerMode::kZygote && options.model_dir.empty()) return InvalidArgument("--model-dir is required");
  if (options.zygote_standby && options.mode != WorkerMode::kZygote)
    return InvalidArgument("--standby is for --zygote (a template's standby is its model's template_standby)");
  if (!have_fd) return InvalidArgument("--fd is required");
  return options;
}

void ConfigureWorkerMalloc() {
  ::mallopt(M_MMAP_THRESHOLD, 64 * 1024 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
}

namespace {

// How long after handing off its standby a template forks the next one.
constexpr Micros kStandbyReplenishDelayUs = 200 * kMicrosPerMilli;

// Sends Ready, then serves requests on `fd` until EOF; returns the exit code.
// `start_path` is how this process came to be (not the config's field: an
// exec worker of a zygote-path model is still an exec start).
int Serve(int fd, const ModelConfig& config, Backend& backend, const Clock& clock, const ipc::ReadyMessage& ready,
          StartPath start_path) {
  const std::string pid = std::to_string(::getpid());
  const std::string& model = config.name;
  Status sent = ipc::WriteAll(fd, ipc::Encode(ready));
  if (!sent.ok()) {
    LogEvent(LogLevel::kError, "worker_write_failed", LogFields({{"pid", pid}, {"error", LogValue(sent.message())}}));
    return kWorkerExitInitError;
  }
  const int concurrency = std::max(1, config.instance_concurrency);
  LogEvent(LogLevel::kInfo, "worker_ready",
           LogFields({{"pid", pid}, {"model", LogValue(model)}, {"start_path", std::string(StartPathName(start_path))},
                      {"runtime_init_us", std::to_string(ready.runtime_init_us)},
                      {"model_load_us", std::to_string(ready.model_load_us)},
                      {"warmup_us", std::to_string(ready.warmup_us)}, {"threads", std::to_string(config.threads)},
                      {"instance_concurrency", std::to_string(concurrency)}}));

  Responder responder(fd);
  std::unique_ptr<Executor> executor;
  if (concurrency > 1) executor = std::make_unique<Executor>(concurrency, backend, clock, responder);

  int exit_code = kWorkerExitOk;
  std::string reason = "eof";
  uint64_t requests = 0;
  for (;;) {
    StatusOr<ipc::Frame> frame = ipc::ReadFrame(fd);
    if (!frame.ok()) {
      if (frame.status().code() != StatusCode::kUnavailable) {
        exit_code = kWorkerExitProtocolError;
        reason = frame.status().code() == StatusCode::kInvalidArgument ? "bad_frame" : "read_error";
        LogEvent(LogLevel::kError, "worker_bad_frame",
                 LogFields({{"pid", pid}, {"model", LogValue(model)}, {"error", LogValue(frame.status().message())}}));
      }
      break;
    }
    if (frame->type != ipc::MessageType::kInferRequest) {
      exit_code = kWorkerExitProtocolError;
      reason = "bad_frame";
      LogEvent(LogLevel::kError, "worker_bad_frame",
               LogFields({{"pid", pid}, {"model", LogValue(model)},
                          {"error", LogValue("unexpected message type " + std::to_string(int(frame->type)))}}));
      break;
    }
    StatusOr<ipc::InferRequestMessage> request = ipc::DecodeInferRequest(frame->payload);
    if (!request.ok()) {
      exit_code = kWorkerExitProtocolError;
      reason = "bad_frame";
      LogEvent(LogLevel::kError, "worker_bad_frame",
               LogFields({{"pid", pid}, {"model", LogValue(model)}, {"error", LogValue(request.status().message())}}));
      break;
    }
    frame->payload = std::string();  // the decoded request holds its own copy
    ++requests;
    if (executor) {
      executor->Submit(std::move(request).value());
    } else if (requests == 1) {
      // The first request after a start shows what a cold instance still
      // pays: page faults (copy-on-write after fork, code pages) cost
      // 15-20 us each on this kind of VM.
      rusage before{}, after{};
      ::getrusage(RUSAGE_SELF, &before);
      ipc::InferResponseMessage response = Execute(backend, clock, *request);
      ::getrusage(RUSAGE_SELF, &after);
      LogEvent(LogLevel::kInfo, "worker_first_request",
               LogFields({{"pid", pid}, {"model", LogValue(model)}, {"compute_us", std::to_string(response.compute_us)},
                          {"minor_faults", std::to_string(after.ru_minflt - before.ru_minflt)},
                          {"major_faults", std::to_string(after.ru_majflt - before.ru_majflt)}}));
      responder.Send(response);
    } else {
      responder.Send(Execute(backend, clock, *request));
    }
  }
  if (executor) executor->Drain();  // in-flight requests still get answers
  LogEvent(LogLevel::kInfo, "worker_exit",
           LogFields({{"pid", pid}, {"model", LogValue(model)}, {"reason", reason},
                      {"requests", std::to_string(requests)}, {"exit_code", std::to_string(exit_code)}}));
  return exit_code;
}

struct LoadedModel {
  ModelConfig config;
  std::unique_ptr<Backend> backend;
};

// Loads and warms the model in `model_dir` with `threads` intra-op threads
// (the config's own count when 0), from its prepared artifact when the run
// directory has one, filling the load timings of `ready`. `for_one`: the
// instance loads for itself (after a zygote's fork): one warm-up run and no
// profiling executor, so its first request comes sooner.
StatusOr<LoadedModel> LoadModel(const std::string& model_dir, int threads, const Clock& clock,
                                ipc::ReadyMessage* ready, bool for_one = false) {
  StatusOr<ModelConfig> config = LoadModelConfig(model_dir);
  if (!config.ok()) return config.status();
  SetIntraOpThreads(threads > 0 ? threads : config->threads);
  ready->runtime_init_us = clock.NowMicros() - ready->started_us;
  BackendLoadTimings timings;
  BackendLoadOptions options{.prepared_path = model_dir + "/" + kPreparedArtifactFile};
  if (for_one) {
    // Its first request is waiting: one warm-up run, none when the artifact
    // (already run once by its preparation) loaded; the request's own run
    // pays the first-call costs instead.
    options.warmup_runs = 1;
    options.prepared_warmup_runs = 0;
    options.profiling_executor = false;
  }
  StatusOr<std::unique_ptr<Backend>> backend = CreateBackend(*config, clock, &timings, options);
  if (!backend.ok()) return backend.status();
  ready->model_load_us = timings.model_load_us;
  ready->warmup_us = timings.warmup_us;
  ready->start_level = static_cast<uint8_t>(timings.used_prepared ? StartLevel::kPrepared : StartLevel::kZygote);
  return LoadedModel{std::move(config).value(), std::move(backend).value()};
}

// A zygote's child asked to prepare the model in `model_dir`: sends its
// artifact (or InitError) on `fd` and returns the exit code.
int PrepareAndExit(int fd, const std::string& model_dir, const Clock& clock) {
  // Its pid first: the server kills a preparation that overruns.
  if (!ipc::WriteAll(fd, ipc::Encode(ipc::ForkedMessage{.pid = static_cast<int32_t>(::getpid())})).ok())
    return kWorkerExitInitError;
  // Background work: requests (and the instances starting for them) first.
  errno = 0;
  if (::nice(10) == -1 && errno != 0) LogEvent(LogLevel::kWarning, "worker_nice_failed", LogFields({{"error", LogValue(std::strerror(errno))}}));
  const Micros start = clock.NowMicros();
  StatusOr<ModelConfig> config = LoadModelConfig(model_dir);
  StatusOr<std::string> artifact = config.ok() ? PrepareArtifact(*config) : StatusOr<std::string>(config.status());
  const std::string model = ModelNameOf(model_dir);
  if (!artifact.ok()) return InitFailed(fd, model, artifact.status());
  const Micros prepare_us = clock.NowMicros() - start;
  LogEvent(LogLevel::kInfo, "worker_prepared",
           LogFields({{"pid", std::to_string(::getpid())}, {"model", LogValue(model)},
                      {"bytes", std::to_string(artifact->size())}, {"prepare_us", std::to_string(prepare_us)}}));
  const std::string_view bytes = *artifact;
  size_t sent = 0;
  do {
    const size_t n = std::min(ipc::kPreparedChunkBytes, bytes.size() - sent);
    ipc::PreparedMessage piece{.chunk = std::string(bytes.substr(sent, n)), .last = sent + n == bytes.size(),
                               .prepare_us = prepare_us};
    if (!ipc::WriteAll(fd, ipc::Encode(piece)).ok()) return kWorkerExitInitError;
    sent += n;
  } while (sent < bytes.size());
  return kWorkerExitOk;
}

// Moves this process into its memory cgroup before it allocates model memory.
Status JoinCgroup(const std::string& dir) {
  Status joined = cgroup::JoinMemoryCgroup(dir);
  if (!joined.ok()) return Unavailable("cannot enforce memory_mb: cannot join memory cgroup: " + joined.message());
  return Status::Ok();
}

// Applies the worker's sandbox (closing inherited descriptors even when it
// is off) and logs what was applied; a step the kernel refused is a warning.
sandbox::SandboxReport ConfineWorker(const WorkerOptions& options, const std::string& pid, const std::string& name) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan builds (scripts/sanitize): LeakSanitizer stops the world with
  // ptrace, which the sandbox forbids; check for leaks now instead of at exit.
  if (options.sandbox != sandbox::SandboxMode::kOff) __lsan_do_leak_check();
#endif
  sandbox::SandboxReport report = sandbox::ApplySandbox(
      {.mode = options.sandbox, .keep_fd = options.fd, .user = options.user, .writable_dir = options.writable_dir});
  if (options.sandbox == sandbox::SandboxMode::kOff) {
    Status closed = sandbox::CloseInheritedFds(options.fd);
    report.fds_closed = {closed.ok(), closed.ok() ? "" : closed.message()};
  }
  const bool degraded = options.sandbox == sandbox::SandboxMode::kOn && !report.Complete();
  LogEvent(degraded ? LogLevel::kWarning : LogLevel::kInfo, degraded ? "worker_sandbox_degraded" : "worker_sandbox",
           LogFields({{"pid", pid}, {"model", LogValue(name)}}) + " " + report.Summary());
  return report;
}

// An instance (not a template or the zygote, whose children would inherit
// the rule) may signal only its own threads; a failure is logged, not fatal.
void RestrictInstanceSignals(const sandbox::SandboxReport& report, const std::string& pid) {
  if (!report.seccomp.applied) return;
  if (Status restricted = sandbox::RestrictSignalsToSelf(); !restricted.ok())
    LogEvent(LogLevel::kWarning, "worker_sandbox_degraded", LogFields({{"pid", pid}, {"error", LogValue(restricted.message())}}));
}

// In a freshly forked instance: the spawner's sandbox, with only `keep_fd`
// left open (the spawner's control socket and other instances' sockets go),
// and signals only to itself.
sandbox::SandboxReport ConfineForkedInstance(sandbox::SandboxReport inherited, int keep_fd) {
  Status closed = sandbox::CloseInheritedFds(keep_fd);
  inherited.fds_closed = {closed.ok(), closed.ok() ? "" : closed.message()};
  inherited.apply_us = 0;
  RestrictInstanceSignals(inherited, std::to_string(::getpid()));
  return inherited;
}

bool ValidFd(int fd, const std::string& pid) {
  if (::fcntl(fd, F_GETFD) >= 0) return true;
  LogEvent(LogLevel::kError, "worker_init_error", LogFields({{"pid", pid}, {"error", LogValue("bad --fd " + std::to_string(fd))}}));
  return false;
}

}  // namespace

int RunWorker(const WorkerOptions& options) {
  ConfigureWorkerMalloc();  // idempotent; main() should already have done it
  RealClock clock;
  const int fd = options.fd;
  const std::string pid = std::to_string(::getpid());
  const std::string model = ModelNameOf(options.model_dir);
  // Writes use MSG_NOSIGNAL; this also covers descriptors that are not
  // sockets.
  ::signal(SIGPIPE, SIG_IGN);
  LogEvent(LogLevel::kInfo, "worker_start",
           LogFields({{"pid", pid}, {"model", LogValue(model)}, {"model_dir", LogValue(options.model_dir)},
                      {"fd", std::to_string(fd)}}));
  if (!ValidFd(fd, pid)) return kWorkerExitUsage;
  if (Status joined = JoinCgroup(options.cgroup_dir); !joined.ok()) return InitFailed(fd, model, joined);

  ipc::ReadyMessage ready;
  ready.pid = static_cast<int32_t>(::getpid());
  ready.started_us = options.start_us >= 0 ? options.start_us : clock.NowMicros();
  // Confined before any model byte is read.
  const sandbox::SandboxReport report = ConfineWorker(options, pid, model);
  RestrictInstanceSignals(report, pid);
  ready.sandbox = sandbox::EncodeReport(report);
  StatusOr<LoadedModel> loaded = LoadModel(options.model_dir, 0, clock, &ready);
  if (!loaded.ok()) return InitFailed(fd, model, loaded.status());
  ready.start_level = static_cast<uint8_t>(StartLevel::kExec);
  return Serve(fd, loaded->config, *loaded->backend, clock, ready, StartPath::kExec);
}

int RunSpawner(const WorkerOptions& options) {
  ConfigureWorkerMalloc();
  RealClock clock;
  int control = options.fd;
  std::string pid = std::to_string(::getpid());
  bool is_template = !options.model_dir.empty();
  std::string template_dir = options.model_dir;  // a template's model (a zygote child may become one)
  std::string name = is_template ? ModelNameOf(options.model_dir) : "zygote";
  ::signal(SIGPIPE, SIG_IGN);
  LogEvent(LogLevel::kInfo, is_template ? "template_start" : "zygote_start",
           LogFields({{"pid", pid}, {"model", LogValue(name)}, {"fd", std::to_string(control)}}));
  if (!ValidFd(control, pid)) return kWorkerExitUsage;
  if (Status joined = JoinCgroup(options.cgroup_dir); !joined.ok()) return InitFailed(control, name, joined);
  // Confined before the model (or any engine state) loads; instances
  // forked from here inherit all of it but the descriptor cleanup.
  const sandbox::SandboxReport sandbox_report = ConfineWorker(options, pid, name);

  // A template loads and warms its model on one thread: a parent that ever
  // ran OpenMP with more threads would hang its forked children.
  ipc::ReadyMessage template_ready;
  template_ready.pid = static_cast<int32_t>(::getpid());
  template_ready.started_us = options.start_us >= 0 ? options.start_us : clock.NowMicros();
  template_ready.sandbox = sandbox::EncodeReport(sandbox_report);
  std::optional<LoadedModel> preloaded;
  if (is_template) {
    StatusOr<LoadedModel> loaded = LoadModel(options.model_dir, 1, clock, &template_ready);
    if (!loaded.ok()) return InitFailed(control, name, loaded.status());
    preloaded = std::move(loaded).value();
  } else {
    SetIntraOpThreads(1);
    // Instances load their model after the fork: the engine's one-time
    // setup is done here, once, not in each of them.
    if (Status warmed = WarmEngine(); !warmed.ok())
      LogEvent(LogLevel::kWarning, "zygote_engine_warmup_failed", LogFields({{"error", LogValue(warmed.message())}}));
    template_ready.runtime_init_us = clock.NowMicros() - template_ready.started_us;
  }
  Status sent = ipc::WriteAll(control, ipc::Encode(template_ready));
  if (!sent.ok()) return kWorkerExitInitError;
  // The server logs template_ready / zygote_ready once it reads this (with
  // the start time it saw); logging here too printed every start twice.

  // Forked instances are reaped automatically; the server watches them
  // through their sockets.
  ::signal(SIGCHLD, SIG_IGN);

  // Runs in a freshly forked child: becomes an instance serving `instance_fd`.
  // (The server moves it into its memory cgroup: sandboxed, it cannot.)
  auto become_instance = [&](int instance_fd, const std::string& model_dir, ipc::ReadyMessage ready) {
    ::signal(SIGCHLD, SIG_DFL);
    int code;
    if (preloaded) {
      code = Serve(instance_fd, preloaded->config, *preloaded->backend, clock, ready, StartPath::kTemplate);
    } else {
      StatusOr<LoadedModel> loaded = LoadModel(model_dir, 0, clock, &ready, /*for_one=*/true);
      code = loaded.ok() ? Serve(instance_fd, loaded->config, *loaded->backend, clock, ready, StartPath::kZygote)
                         : InitFailed(instance_fd, ModelNameOf(model_dir), loaded.status());
    }
    std::fflush(nullptr);
    ::_exit(code);
  };

  // A standby is a child forked ahead of demand: its fork (and, a
  // template's, its thread pool start and first-touch page faults) happen
  // before a request waits, and the server moves it into a memory cgroup
  // meanwhile (a move costs 10-15 ms here). It blocks until its spawner hands
  // it an instance socket. A template's is warmed with its model; the
  // zygote's (--standby) loads whichever model its instance is for.
  struct Standby {
    pid_t pid;
    int socket;  // the spawner's end
  };
  std::optional<Standby> standby;
  bool use_standby = preloaded ? preloaded->config.template_standby : options.zygote_standby;
  Micros replenish_at_us = use_standby ? clock.NowMicros() : -1;
  auto make_standby = [&]() {
    replenish_at_us = -1;
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return;
    const pid_t child = ::fork();
    if (child < 0) {
      ::close(sp[0]);
      ::close(sp[1]);
      return;
    }
    if (child > 0) {
      ::close(sp[1]);
      standby = Standby{child, sp[0]};
      // The server moves it into an instance's memory cgroup ahead of demand.
      (void)ipc::WriteAll(control, ipc::Encode(ipc::ForkedMessage{.pid = child}));
      return;
    }
    ::close(control);
    ::close(sp[0]);
    sandbox::CloseInheritedFds(sp[1]);  // e.g. the socket of a previous standby
    if (preloaded) {
      SetIntraOpThreads(preloaded->config.threads);
      Status warmed = WarmUp(*preloaded->backend, preloaded->config, 2);
      if (!warmed.ok()) ::_exit(kWorkerExitInitError);
    }
    int instance_fd = -1;
    StatusOr<ipc::Frame> handoff = ipc::ReadFrame(sp[1], &instance_fd);
    if (!handoff.ok() || instance_fd < 0) ::_exit(kWorkerExitOk);  // its spawner is gone
    ::close(sp[1]);
    StatusOr<ipc::SpawnMessage> spawn = ipc::DecodeSpawn(handoff->payload);
    if (!spawn.ok()) ::_exit(kWorkerExitOk);  // its instance sees EOF: a failed start
    ipc::ReadyMessage ready;
    ready.pid = static_cast<int32_t>(::getpid());
    ready.started_us = clock.NowMicros();
    ready.sandbox = sandbox::EncodeReport(ConfineForkedInstance(sandbox_report, instance_fd));
    if (preloaded) ready.start_level = static_cast<uint8_t>(StartLevel::kStandby);
    (void)ipc::WriteAll(instance_fd, ipc::Encode(ipc::ForkedMessage{.pid = ready.pid}));
    become_instance(instance_fd, spawn->model_dir, ready);  // a template's: its own model
  };

  uint64_t spawned = 0;
  for (;;) {
    if (use_standby && !standby && replenish_at_us >= 0) {
      const Micros wait_us = replenish_at_us - clock.NowMicros();
      pollfd p{control, POLLIN, 0};
      const int polled = wait_us <= 0 ? 0 : ::poll(&p, 1, static_cast<int>((wait_us + 999) / 1000));
      if (polled == 0) make_standby();
      if (polled <= 0) continue;  // replenished, or interrupted
    }
    int instance_fd = -1;
    StatusOr<ipc::Frame> frame = ipc::ReadFrame(control, &instance_fd);
    if (!frame.ok()) break;  // the server is gone: existing instances live on until their sockets close
    StatusOr<ipc::SpawnMessage> spawn = frame->type == ipc::MessageType::kSpawn
                                            ? ipc::DecodeSpawn(frame->payload)
                                            : StatusOr<ipc::SpawnMessage>(InvalidArgument("expected a Spawn frame"));
    if (!spawn.ok() || instance_fd < 0) {
      LogEvent(LogLevel::kError, "spawner_bad_frame",
               LogFields({{"pid", pid}, {"error", LogValue(spawn.ok() ? "no socket attached" : spawn.status().message())}}));
      if (instance_fd >= 0) ::close(instance_fd);
      continue;
    }
    ++spawned;
    // The standby becomes instances only: a preparation or a template is a fresh fork.
    if (standby && !spawn->prepare && !spawn->as_template) {
      Status handed = ipc::SendFrameWithFd(standby->socket, ipc::Encode(*spawn), instance_fd);
      ::close(standby->socket);
      standby.reset();
      if (handed.ok()) {
        ::close(instance_fd);
        // Replace it once the new instance's first request is likely done,
        // so the two do not compete for the cores.
        replenish_at_us = clock.NowMicros() + kStandbyReplenishDelayUs;
        continue;
      }
      // The standby died; fork directly instead.
    }
    const pid_t child = ::fork();
    if (child < 0) {
      LogEvent(LogLevel::kError, "spawner_fork_failed", LogFields({{"pid", pid}, {"error", LogValue(std::strerror(errno))}}));
      ::close(instance_fd);  // the server sees EOF: a failed start
      continue;
    }
    if (child > 0) {
      ::close(instance_fd);
      if (use_standby) replenish_at_us = clock.NowMicros() + kStandbyReplenishDelayUs;
      continue;
    }
    // The child: an instance.
    ipc::ReadyMessage ready;
    ready.started_us = clock.NowMicros();
    ready.pid = static_cast<int32_t>(::getpid());
    ::close(control);
    ready.sandbox = sandbox::EncodeReport(ConfineForkedInstance(sandbox_report, instance_fd));
    if (!preloaded && spawn->prepare) {
      ::signal(SIGCHLD, SIG_DFL);
      const int code = PrepareAndExit(instance_fd, spawn->model_dir, clock);
      std::fflush(nullptr);
      ::_exit(code);
    }
    if (!preloaded && spawn->as_template) {
      // This child becomes the model's template, sharing the zygote's
      // initialised engine instead of paying for its own: its own process
      // group (the server kills the template with its standby and
      // instances by it), its pid first (the server moves it into the
      // template's memory cgroup and lowers its priority while it loads),
      // then the model loaded and warmed on one thread, Ready, and the
      // loop above serving instance_fd as its control socket.
      ::setpgid(0, 0);
      standby.reset();  // the zygote's (its socket went with the inherited descriptors)
      if (!ipc::WriteAll(instance_fd, ipc::Encode(ipc::ForkedMessage{.pid = ready.pid})).ok()) ::_exit(kWorkerExitOk);
      template_dir = spawn->model_dir;
      name = ModelNameOf(template_dir);
      pid = std::to_string(ready.pid);
      template_ready = ipc::ReadyMessage{};
      template_ready.pid = ready.pid;
      template_ready.started_us = ready.started_us;
      template_ready.sandbox = ready.sandbox;
      StatusOr<LoadedModel> loaded = LoadModel(template_dir, 1, clock, &template_ready);
      if (!loaded.ok()) ::_exit(InitFailed(instance_fd, name, loaded.status()));
      if (!ipc::WriteAll(instance_fd, ipc::Encode(template_ready)).ok()) ::_exit(kWorkerExitOk);
      preloaded = std::move(loaded).value();
      control = instance_fd;
      is_template = true;
      spawned = 0;
      use_standby = preloaded->config.template_standby;
      replenish_at_us = use_standby ? clock.NowMicros() : -1;
      continue;
    }
    // Which process is starting, before it loads anything (the server
    // moves it into its memory cgroup meanwhile).
    (void)ipc::WriteAll(instance_fd, ipc::Encode(ipc::ForkedMessage{.pid = ready.pid}));
    if (preloaded) {
      SetIntraOpThreads(preloaded->config.threads);
      ready.runtime_init_us = clock.NowMicros() - ready.started_us;
      ready.start_level = static_cast<uint8_t>(StartLevel::kTemplate);
    }
    become_instance(instance_fd, spawn->model_dir, ready);
  }
  if (standby) ::close(standby->socket);  // it exits on EOF
  LogEvent(LogLevel::kInfo, is_template ? "template_exit" : "zygote_exit",
           LogFields({{"pid", pid}, {"model", LogValue(name)}, {"spawned", std::to_string(spawned)}}));
  return kWorkerExitOk;
}

}  // namespace thaw
