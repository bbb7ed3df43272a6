#include "runtime/runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>

#include "base/log.h"
#include "cgroup/memory_cgroup.h"
#include "ipc/messages.h"
#include "policy/admission.h"
#include "policy/autoscaler.h"
#include "policy/batching.h"
#include "policy/keep_alive.h"
#include "policy/provisioned.h"
#include "policy/scaling.h"
#include "settings/policy_options.h"
#include "tensor/batch.h"

extern char** environ;

namespace thaw {

namespace asio = boost::asio;

namespace {

constexpr Micros kNever = std::numeric_limits<Micros>::max();
// Worker file descriptor number for its end of the socket.
constexpr int kWorkerFd = 3;
// Backoff before provisioned instances are retried after a failed start.
constexpr Micros kMinStartRetryUs = 1 * kMicrosPerSecond;
constexpr Micros kMaxStartRetryUs = 60 * kMicrosPerSecond;

std::string Fields(std::initializer_list<std::pair<std::string_view, std::string>> kv) {
  std::string out;
  for (const auto& [k, v] : kv) {
    if (!out.empty()) out += ' ';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

// Whether workers started under `a` and under `b` differ: fields a worker
// reads (src/worker: the model, its tensors and warm-up, threads, how many
// requests it runs at once, its standby, its start path) and memory_mb (its
// size). Other settings (keep-alive, queue, scaling, batching, timeouts) are
// the runtime's alone and change without touching a worker.
bool WorkersDiffer(const ModelConfig& a, const ModelConfig& b) {
  auto specs_equal = [](const std::vector<TensorSpec>& x, const std::vector<TensorSpec>& y) {
    if (x.size() != y.size()) return false;
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i].name != y[i].name || x[i].datatype != y[i].datatype || x[i].shape != y[i].shape) return false;
    return true;
  };
  return a.backend != b.backend || a.model_file != b.model_file || a.platform != b.platform ||
         !specs_equal(a.inputs, b.inputs) || !specs_equal(a.outputs, b.outputs) || a.memory_mb != b.memory_mb ||
         a.threads != b.threads || a.instance_concurrency != b.instance_concurrency || a.start_path != b.start_path ||
         a.template_standby != b.template_standby;
}

Micros StartTimeoutUs(const ModelConfig& config) { return config.start_timeout_ms * kMicrosPerMilli; }

std::string StartTimeoutMessage(std::string_view what, const ModelConfig& config) {
  return std::string(what) + " of model '" + config.name + "' did not become ready within start_timeout_ms=" +
         std::to_string(config.start_timeout_ms);
}

// Children of `pid` (its main thread's: spawners fork from it), from
// /proc/<pid>/task/<pid>/children; empty if unreadable.
std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> children;
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  for (pid_t child; in >> child;) children.push_back(child);
  return children;
}

}  // namespace

struct Runtime::Pending {
  uint64_t request_id = 0;
  std::vector<Tensor> inputs;
  std::vector<std::string> output_names;
  int64_t rows = 1;       // dim 0 of the inputs
  std::string batch_key;  // requests with equal keys may share an execution
  Micros arrival_us = 0;
  Micros deadline_us = 0;
  Micros dispatched_us = 0;
  Micros batch_wait_us = 0;  // part of the queue time spent with a free slot, filling a batch
  InferCallback done;
};

// One message to an instance: a batch of one or more requests.
struct Runtime::Execution {
  uint64_t id = 0;  // the IPC request id
  std::vector<std::unique_ptr<Pending>> requests;
  int64_t rows = 0;
  Micros dispatched_us = 0;
};

struct Runtime::Instance {
  explicit Instance(asio::io_context& io) : socket(io) {}

  uint64_t id = 0;
  pid_t pid = 0;
  bool ready = false;
  bool removed = false;
  asio::local::stream_protocol::socket socket;
  ipc::FrameReader reader;
  std::array<char, 256 * 1024> read_buffer;
  std::deque<ipc::InferRequestFrame> write_queue;  // written from the tensors, not copied
  bool writing = false;
  std::map<uint64_t, Execution> in_flight;  // by execution id
  StartPath start_path = StartPath::kExec;
  Micros spawn_start_us = 0;  // StartInstance
  Micros spawn_done_us = 0;   // exec: posix_spawn returned; fork: the child runs
  Micros ready_us = 0;
  Micros idle_since_us = 0;
  Micros slot_free_since_us = 0;  // when it last had a slot free after being full (or became ready)
  Micros start_wall_us = 0;
  Micros busy_since_us = 0;  // when in_flight last became non-empty
  Micros busy_us = 0;        // total time with executions in flight
  bool provisioned = false;  // started to keep the provisioned floor
  ipc::ReadyMessage ready_message;
  uint64_t generation = 0;  // the model settings it started with
  std::weak_ptr<Spawner> forked_by;    // the template or zygote asked to fork it
  std::string cgroup_dir;   // its memory cgroup; empty if memory is not enforced
};

// A template (one model, loaded and warmed) or the zygote (engines only):
// a process that forks instances on request.
struct Runtime::Spawner {
  explicit Spawner(asio::io_context& io) : socket(io) {}

  struct Waiting {
    std::string model_dir;
    int child_fd;
  };

  Model* owner = nullptr;  // the template's model; nullptr for the zygote
  pid_t pid = 0;
  bool ready = false;
  bool gone = false;
  asio::local::stream_protocol::socket socket;
  ipc::FrameReader reader;
  std::array<char, 4096> read_buffer;
  std::vector<Waiting> waiting;  // spawns asked for before it was ready
  Micros started_us = 0;
  int64_t start_timeout_ms = 0;  // the zygote's; a template follows its model's current setting
  std::string cgroup_dir;
  std::string sandbox;  // its Ready's sandbox report

  // Not ready by then: killed.
  Micros StartDeadline() const;
};

// A new version of a loaded model being proven (ReloadModel): a worker
// loading it from a staging directory.
struct Runtime::Validation {
  Validation(asio::io_context& io) : socket(io), timer(io) {}
  ModelConfig config;
  std::string staging_dir;
  pid_t pid = 0;
  asio::local::stream_protocol::socket socket;
  asio::steady_timer timer;
  ipc::FrameReader reader;
  std::array<char, 4096> read_buffer;
  std::function<void(Status)> done;
  bool finished = false;
};

struct Runtime::Model {
  Model(asio::io_context& io, ModelConfig c)
      : config(std::move(c)),
        timer(io),
        autoscaler(AutoscalerOptionsFor(config)),
        keep_alive(KeepAliveOptionsFor(config)),
        batcher(BatchingOptionsFor(config)) {}

  ModelConfig config;
  // Where workers read the effective config: config.json as the runtime
  // holds it (settings may change while serving) and a link to the model file.
  std::string run_directory;
  bool removed = false;  // unloaded; kept only until its callbacks drain
  std::shared_ptr<Spawner> spawner;  // start path template
  std::deque<std::unique_ptr<Pending>> queue;
  std::map<uint64_t, std::shared_ptr<Instance>> instances;
  asio::steady_timer timer;
  Micros scheduled_wake_us = std::numeric_limits<Micros>::max();  // when Reschedule last wanted a wake
  Micros armed_wake_us = std::numeric_limits<Micros>::max();      // when the timer fires: no later than scheduled_wake_us
  policy::Autoscaler autoscaler;
  policy::KeepAlivePolicy keep_alive;
  policy::AdaptiveBatcher batcher;
  Micros batch_wake_us = std::numeric_limits<Micros>::max();  // the batcher's wait ends
  bool busy = false;     // requests in flight or queued: the model is not in an idle period
  uint64_t generation = 0;  // bumped when the settings change
  Micros autoscaler_wake_us = std::numeric_limits<Micros>::max();
  bool panicking = false;
  int desired = 0;       // the autoscaler's last answer
  int provisioned_instances = 0;         // the floor in force, for usage records
  Micros provisioned_since_wall_us = 0;  // since when
  std::string last_start_error;
  Micros start_retry_after_us = 0;
  Micros start_retry_backoff_us = kMinStartRetryUs;

  bool batching() const { return config.batching != "off"; }
  // Requests running on instances.
  int in_flight() const {
    int n = 0;
    for (const auto& [id, instance] : instances)
      for (const auto& [eid, execution] : instance->in_flight) n += static_cast<int>(execution.requests.size());
    return n;
  }
  // Executions (batches) running on instances: the slots in use.
  int in_flight_executions() const {
    int n = 0;
    for (const auto& [id, instance] : instances) n += static_cast<int>(instance->in_flight.size());
    return n;
  }
};

Micros Runtime::Spawner::StartDeadline() const {
  return started_us + (owner ? owner->config.start_timeout_ms : start_timeout_ms) * kMicrosPerMilli;
}

struct Runtime::ChildWatcher {
  explicit ChildWatcher(asio::io_context& io) : signals(io, SIGCHLD) {}
  asio::signal_set signals;
};

// Cgroups of stopped processes, removed once the processes have left them.
struct Runtime::CgroupCleanup {
  explicit CgroupCleanup(asio::io_context& io) : timer(io) {}
  asio::steady_timer timer;
  bool armed = false;
  Micros retry_us = 0;
  std::vector<std::string> dirs;
};

Runtime::Runtime(asio::io_context& io, const Clock& clock, RuntimeOptions options)
    : cgroup_cleanup_(std::make_unique<CgroupCleanup>(io)),
      io_(io),
      clock_(clock),
      options_(std::move(options)),
      child_watcher_(std::make_unique<ChildWatcher>(io)) {
  if (options_.memory_cgroups && !options_.memory_cgroups->enforced()) options_.memory_cgroups = nullptr;
  run_dir_ = options_.run_dir;
  if (run_dir_.empty()) {
    char pattern[] = "/tmp/thaw-run-XXXXXX";
    if (::mkdtemp(pattern)) {
      run_dir_ = pattern;
      owns_run_dir_ = true;
    } else {
      LogEvent(LogLevel::kError, "run_dir_failed", Fields({{"error", std::strerror(errno)}}));
    }
  }
  if (options_.sandbox != sandbox::SandboxMode::kOff) {
    if (::geteuid() == 0) {
      worker_user_ = options_.worker_user.value_or(sandbox::DefaultWorkerUser());
    } else {
      LogEvent(LogLevel::kWarning, "sandbox_degraded",
               Fields({{"reason", LogValue("the server is not root: workers keep uid " + std::to_string(::geteuid()) +
                                           ", without network and mount namespaces")}}));
    }
  }
  // mkdtemp made it 0700: workers of another uid must be able to read it.
  if (worker_user_ && owns_run_dir_) {
    Status shared = sandbox::ShareDirectoryWith(run_dir_, *worker_user_);
    if (!shared.ok()) LogEvent(LogLevel::kError, "run_dir_failed", Fields({{"error", LogValue(shared.message())}}));
  }
  // Instances forked by a template outlive it when it is replaced; as a
  // subreaper the server, not init, inherits and reaps them.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  WatchChildren();
}

Runtime::~Runtime() {
  Shutdown();
  std::error_code ignored;
  if (owns_run_dir_) std::filesystem::remove_all(run_dir_, ignored);
}

Status Runtime::WriteRunFiles(const std::string& directory, const ModelConfig& config, bool snapshot_model_file) {
  namespace fs = std::filesystem;
  const fs::path dir = directory;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Internal("cannot create " + dir.string() + " for model '" + config.name + "': " + ec.message());
  // Readable by the workers' uid whatever the umask; the run directory
  // above it admits only the server and the workers' group.
  const fs::perms readable = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read;
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                           fs::perms::others_read | fs::perms::others_exec, ec);
  if (snapshot_model_file) {
    // A copy, not a link: editing the repository file never changes what
    // the next template or instance loads; only a load/reload does.
    const fs::path target = dir / config.model_file;
    const fs::path staged = target.string() + ".new";
    fs::create_directories(target.parent_path(), ec);
    fs::remove(staged, ec);
    fs::copy_file(config.ModelPath(), staged, fs::copy_options::overwrite_existing, ec);
    if (ec) return NotFound("cannot copy model file " + config.ModelPath() + " of model '" + config.name + "': " + ec.message());
    fs::permissions(staged, readable, ec);
    fs::rename(staged, target, ec);  // processes loading the old file keep their copy
    if (ec) return Internal("cannot write " + target.string() + ": " + ec.message());
  }
  const fs::path path = dir / "config.json";
  const fs::path staged = dir / "config.json.new";
  {
    std::ofstream out(staged, std::ios::trunc);
    out << EncodeModelConfig(config);
    if (!out) return Internal("cannot write " + staged.string());
  }
  fs::permissions(staged, readable, ec);
  fs::rename(staged, path, ec);  // workers never see a half-written file
  if (ec) return Internal("cannot write " + path.string() + ": " + ec.message());
  return Status::Ok();
}

Status Runtime::WriteRunDirectory(Model& model, bool snapshot_model_file) {
  const std::string dir = (std::filesystem::path(run_dir_) / model.config.name).string();
  THAW_RETURN_IF_ERROR(WriteRunFiles(dir, model.config, snapshot_model_file));
  model.run_directory = dir;
  return Status::Ok();
}

Status Runtime::AddModel(ModelConfig config) {
  if (models_.count(config.name)) return InvalidArgument("model '" + config.name + "' is already loaded");
  // Config validation covers these; a mismatch here is a bug, not a crash.
  THAW_RETURN_IF_ERROR(policy::Validate(AutoscalerOptionsFor(config)));
  THAW_RETURN_IF_ERROR(policy::Validate(KeepAliveOptionsFor(config)));
  THAW_RETURN_IF_ERROR(policy::Validate(BatchingOptionsFor(config)));
  auto model = std::make_unique<Model>(io_, std::move(config));
  THAW_RETURN_IF_ERROR(WriteRunDirectory(*model, /*snapshot_model_file=*/true));
  Model& ref = *model;
  models_.emplace(ref.config.name, std::move(model));
  LogEvent(LogLevel::kInfo, "model_added",
           Fields({{"model", ref.config.name},
                   {"min_instances", std::to_string(ref.config.min_instances)},
                   {"max_concurrency", std::to_string(ref.config.max_concurrency)},
                   {"keep_alive_s", std::to_string(ref.config.keep_alive_s)},
                   {"start_path", std::string(StartPathName(ref.config.start_path))}}));
  // Templates and the zygote start at deploy so the first request finds them ready.
  if (ref.config.start_path != StartPath::kExec) EnsureSpawner(ref);
  Pump(ref);
  return Status::Ok();
}

const ModelConfig* Runtime::FindModel(std::string_view name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : &it->second->config;
}

std::vector<std::string> Runtime::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& [name, model] : models_) names.push_back(name);
  return names;
}

StatusOr<ModelStatus> Runtime::GetModelStatus(std::string_view name) const {
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("model '" + std::string(name) + "' is not loaded");
  const Model& model = *it->second;
  ModelStatus status;
  status.name = model.config.name;
  status.start_path = model.config.start_path;
  const Spawner* spawner = model.config.start_path == StartPath::kTemplate ? model.spawner.get()
                           : model.config.start_path == StartPath::kZygote  ? zygote_.get()
                                                                             : nullptr;
  auto decode_sandbox = [](const std::string& text) -> std::optional<sandbox::SandboxReport> {
    if (text.empty()) return std::nullopt;
    StatusOr<sandbox::SandboxReport> report = sandbox::DecodeReport(text);
    return report.ok() ? std::optional(*report) : std::nullopt;
  };
  if (spawner && !spawner->gone)
    status.spawner = SpawnerStatus{spawner->pid, spawner->ready, spawner->cgroup_dir, decode_sandbox(spawner->sandbox)};
  status.queued = static_cast<int>(model.queue.size());
  const Micros now = clock_.NowMicros();
  status.batching = {.mode = model.config.batching,
                     .target_batch_size = model.batcher.TargetBatchSize(now),
                     .cost_intercept_us = model.batcher.cost().intercept_us(),
                     .cost_per_row_us = model.batcher.cost().slope_us_per_row(),
                     .arrival_rows_per_s = model.batcher.ArrivalRowsPerSecond(now)};
  status.last_start_error = model.last_start_error;
  status.not_ready_reason = NotReadyReason(model);
  status.ready = status.not_ready_reason.empty();
  for (const auto& [id, instance] : model.instances) {
    InstanceStatus s;
    s.id = id;
    s.pid = instance->pid;
    s.cgroup_dir = instance->cgroup_dir;
    if (instance->ready) s.sandbox = decode_sandbox(instance->ready_message.sandbox);
    for (const auto& [eid, execution] : instance->in_flight) s.in_flight += static_cast<int>(execution.requests.size());
    s.state = !instance->ready                          ? InstanceState::kStarting
              : instance->generation != model.generation ? InstanceState::kStopping
              : s.in_flight                              ? InstanceState::kBusy
                                                         : InstanceState::kIdle;
    status.instances.push_back(s);
  }
  return status;
}

std::string Runtime::NotReadyReason(const Model& model) const {
  for (const auto& [id, instance] : model.instances)
    if (instance->ready && instance->generation == model.generation) return "";
  if (!model.last_start_error.empty()) return "model '" + model.config.name + "' cannot start: " + model.last_start_error;
  if (model.config.start_path == StartPath::kExec) return "";  // nothing failed: a request starts an instance
  const Spawner* spawner = SpawnerOf(model);
  const char* what = model.config.start_path == StartPath::kTemplate ? "template" : "zygote";
  if (spawner && !spawner->gone && spawner->ready) return "";
  if (spawner && !spawner->gone) return "model '" + model.config.name + "' is starting: its " + what + " is not ready yet";
  return "model '" + model.config.name + "' has no " + what + " running; the next request starts one";
}

bool Runtime::Ready() {
  if (startup_settled_) return true;
  for (const auto& [name, model] : models_) {
    const Spawner* spawner = SpawnerOf(*model);
    // Still loading, and not failed: not settled yet.
    if (spawner && !spawner->gone && !spawner->ready && model->last_start_error.empty()) return false;
  }
  startup_settled_ = true;
  return true;
}

void Runtime::Infer(std::string_view model_name, std::vector<Tensor> inputs, std::vector<std::string> output_names,
                    Micros deadline_us, InferCallback done) {
  auto finish_now = [&](Status status) {
    InferOutcome outcome;
    outcome.status = std::move(status);
    asio::post(io_, [done = std::move(done), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
  };
  auto it = models_.find(model_name);
  if (it == models_.end()) return finish_now(NotFound("model '" + std::string(model_name) + "' is not loaded"));
  Model& model = *it->second;
  const Micros now = clock_.NowMicros();
  if (options_.usage) {
    done = [this, name = model.config.name, memory_mb = model.config.memory_mb, id = next_request_id_,
            done = std::move(done)](InferOutcome outcome) {
      RecordInvocation(name, memory_mb, outcome, id);
      done(std::move(outcome));
    };
  }
  // Refused while draining or after shutdown: still a usage record (a 503).
  if (shut_down_ || draining_) {
    ++next_request_id_;
    return finish_now(Unavailable("server is shutting down"));
  }
  if (deadline_us <= now) return finish_now(DeadlineExceeded("request deadline already passed"));
  // A request the instance cannot hold would only get it OOM-killed.
  int64_t input_bytes = 0;
  for (const Tensor& input : inputs) input_bytes += static_cast<int64_t>(input.data.size());
  const int64_t max_input_bytes = (model.config.memory_mb << 20) / kRequestMemoryDivisor;
  if (input_bytes > max_input_bytes)
    return finish_now(InvalidArgument(
        "request inputs take " + std::to_string(input_bytes) + " bytes, more than model '" + model.config.name +
        "' can hold: at most " + std::to_string(max_input_bytes) + " bytes (1/" + std::to_string(kRequestMemoryDivisor) +
        " of memory_mb=" + std::to_string(model.config.memory_mb) + ")"));

  // Requests beyond the instance slots the model may ever have wait in the
  // queue, up to max_queue; past that the caller is told to retry later.
  const Status admitted = policy::Admit(
      {.queued = static_cast<int>(model.queue.size()), .in_flight = model.in_flight_executions()},
      {.max_concurrency = model.config.max_concurrency, .instance_concurrency = model.config.instance_concurrency,
       .max_queue = model.config.max_queue});
  if (!admitted.ok()) return finish_now(Status(admitted.code(), "model '" + model.config.name + "': " + admitted.message()));
  auto pending = std::make_unique<Pending>();
  pending->request_id = next_request_id_++;
  pending->inputs = std::move(inputs);
  pending->output_names = std::move(output_names);
  // A request whose tensors disagree on dim 0 still runs, alone.
  auto rows = BatchRows(pending->inputs);
  pending->rows = rows.ok() ? *rows : 1;
  if (model.batching()) {
    pending->batch_key = rows.ok() ? ShapeKey(pending->inputs) : "#" + std::to_string(pending->request_id);
    // Requests selecting different outputs are not mixed either.
    for (const std::string& name : pending->output_names) pending->batch_key += "|" + name;
  }
  pending->arrival_us = now;
  pending->deadline_us = deadline_us;
  pending->done = std::move(done);
  const int64_t pending_rows = pending->rows;
  model.queue.push_back(std::move(pending));
  model.keep_alive.OnArrival(now);
  model.batcher.OnArrival(now, pending_rows);
  model.busy = true;
  Pump(model);
}

void Runtime::Pump(Model& model) {
  if (on_drained_) CheckDrained();
  if (shut_down_ || model.removed) return;
  const int per_instance = model.config.instance_concurrency;
  const Micros now = clock_.NowMicros();
  model.batch_wake_us = kNever;
  std::vector<policy::BatchRequest> waiting;
  while (!model.queue.empty()) {
    // Fill busy instances first, then the most recently used idle one, so
    // that surplus instances age out through keep-alive.
    Instance* best = nullptr;
    int free_slots = 0;
    for (auto& [id, instance] : model.instances) {
      if (!instance->ready || static_cast<int>(instance->in_flight.size()) >= per_instance) continue;
      if (instance->generation != model.generation) continue;  // started with old settings: retiring
      free_slots += per_instance - static_cast<int>(instance->in_flight.size());
      if (!best) {
        best = instance.get();
        continue;
      }
      const bool busy = !instance->in_flight.empty(), best_busy = !best->in_flight.empty();
      if (busy != best_busy ? busy : instance->idle_since_us > best->idle_since_us) best = instance.get();
    }
    if (!best) break;
    std::vector<std::unique_ptr<Pending>> batch;
    if (!model.batching()) {
      batch.push_back(std::move(model.queue.front()));
      model.queue.pop_front();
    } else {
      waiting.clear();
      for (const auto& pending : model.queue)
        waiting.push_back({pending->request_id, pending->arrival_us, pending->deadline_us, pending->rows, pending->batch_key});
      const policy::BatchDecision decision = model.batcher.Decide({.now_us = now, .queue = waiting, .free_slots = free_slots});
      if (decision.dispatch.empty()) {
        if (decision.next_wake_us) model.batch_wake_us = *decision.next_wake_us;
        break;
      }
      // The decision lists ids in queue order; take them out in one pass.
      size_t next = 0;
      for (auto it = model.queue.begin(); it != model.queue.end() && next < decision.dispatch.size();) {
        if ((*it)->request_id != decision.dispatch[next]) {
          ++it;
          continue;
        }
        batch.push_back(std::move(*it));
        it = model.queue.erase(it);
        ++next;
      }
    }
    Dispatch(model, *best, std::move(batch));
  }

  // The model's work ran out (answered, failed or expired): an idle period
  // starts, and the keep-alive policy plans it.
  if (model.busy && model.queue.empty() && model.in_flight() == 0) {
    model.busy = false;
    const policy::IdlePlan plan = model.keep_alive.OnIdle(now);
    if (plan.source != policy::PlanSource::kFixed)
      LogEvent(LogLevel::kDebug, "keep_alive_plan",
               Fields({{"model", model.config.name}, {"source", std::string(policy::PlanSourceName(plan.source))},
                       {"unload_now", plan.unload_now ? "true" : "false"},
                       {"prewarm_in_ms", plan.prewarm_at_us ? MillisText(*plan.prewarm_at_us - now) : "-"},
                       {"keep_ms", MillisText(plan.keep_until_us - now)}}));
  }
  policy::ModelLoad load;
  load.queued = static_cast<int>(model.queue.size());
  int serving_slots = 0;  // slots of ready instances with the current settings, busy or free
  for (const auto& [id, instance] : model.instances) {
    if (instance->ready) {
      ++load.ready_instances;
      // A retiring instance (old settings) takes no new work: no free slots.
      if (instance->generation == model.generation) {
        load.free_slots += per_instance - static_cast<int>(instance->in_flight.size());
        serving_slots += per_instance;
      }
    } else {
      ++load.starting_instances;
    }
  }
  if (model.batching() && !model.queue.empty()) {
    // Batching first: queued rows are work for instances only beyond what
    // every serving slot takes in its next batch (a batch of the size the
    // batcher aims for), so a batch forming behind a busy instance starts
    // nothing, while a queue longer than batching can absorb does.
    int64_t queued_rows = 0;
    for (const auto& pending : model.queue) queued_rows += pending->rows;
    const int64_t batch_rows = model.config.batching == "fixed" ? model.config.max_batch_size
                                                                : model.batcher.TargetBatchSize(now);
    load.queued = policy::QueuedExecutions(queued_rows, serving_slots, batch_rows);
    load.free_slots = 0;
  }
  policy::ScalingLimits limits;
  limits.max_instances = model.config.max_concurrency;
  limits.instance_concurrency = per_instance;
  // After a failed start, the provisioned floor waits for the backoff;
  // queued requests still trigger a start.
  const int provisioned_floor = ProvisionedMinimum(model).min_instances;
  limits.min_instances = now >= model.start_retry_after_us ? provisioned_floor : 0;
  int to_start = policy::InstancesToStart(load, limits);
  // Queued work starts instances at once; beyond that the autoscaler adds
  // instances toward its desired count while there is load or a burst.
  const int concurrency = model.in_flight_executions() + load.queued;
  const policy::AutoscaleDecision scale =
      model.autoscaler.Update({.now_us = now, .concurrency = concurrency, .ready_instances = load.ready_instances});
  if (scale.panicking != model.panicking)
    LogEvent(LogLevel::kInfo, scale.panicking ? "autoscaler_panic" : "autoscaler_calm",
             Fields({{"model", model.config.name}, {"desired", std::to_string(scale.desired_instances)},
                     {"ready", std::to_string(load.ready_instances)}}));
  model.panicking = scale.panicking;
  model.desired = scale.desired_instances;
  // Only a panic holds instances, so only a panic needs the autoscaler
  // re-asked as its windows move.
  model.autoscaler_wake_us = scale.panicking && scale.next_wake_us ? *scale.next_wake_us : kNever;
  if (concurrency > 0 || scale.panicking) {
    const int live = load.ready_instances + load.starting_instances;
    to_start = std::max(to_start, std::min(scale.desired_instances, model.config.max_concurrency) - live);
  }
  for (int i = 0; i < to_start; ++i) StartInstance(model);
  UpdateProvisioned(model, provisioned_floor);
  Reschedule(model);
}

void Runtime::RecordInvocation(const std::string& model, int64_t memory_mb, const InferOutcome& outcome,
                               uint64_t request_id) {
  const InvocationTiming& t = outcome.timing;
  metering::InvocationRecord r;
  r.model = model;
  r.request_id = request_id;
  r.instance_id = t.instance_id;
  r.arrival_wall_us = clock_.WallMicros() - t.total_us;
  r.latency_us = t.total_us;
  r.queue_us = t.queue_us;
  r.batch_wait_us = t.batch_wait_us;
  r.compute_us = t.compute_us;
  r.http_status = outcome.status.ok() ? 200 : HttpStatusFor(outcome.status.code());
  r.memory_mb = memory_mb;
  // Requests that never reached an instance ran in no execution.
  const bool ran = t.instance_id != 0;
  r.batch_rows = ran ? t.batch_size : 0;
  r.batch_requests = ran ? t.batch_requests : 0;
  r.share = ran ? t.batch_share : 0;
  r.cold_start = t.cold_start;
  if (t.cold_start) r.init_us = t.cold.spawn_us + t.cold.runtime_init_us + t.cold.model_load_us + t.cold.warmup_us;
  r.provisioned = t.provisioned;
  if (ran) r.start_path = std::string(StartPathName(t.start_path));
  options_.usage->Record(std::move(r));
}

void Runtime::RecordInstanceStop(const Model& model, const Instance& instance, std::string_view reason) {
  if (!options_.usage) return;
  const Micros now = clock_.NowMicros();
  metering::InstanceRecord r;
  r.model = model.config.name;
  r.instance_id = instance.id;
  r.start_path = std::string(StartPathName(instance.start_path));
  r.memory_mb = model.config.memory_mb;
  r.start_wall_us = instance.start_wall_us;
  r.stop_wall_us = clock_.WallMicros();
  const Micros lifetime = now - instance.spawn_start_us;
  r.init_us = instance.ready ? instance.ready_us - instance.spawn_start_us : lifetime;
  r.busy_us = instance.busy_us + (instance.in_flight.empty() ? 0 : now - instance.busy_since_us);
  r.idle_us = std::max<Micros>(0, lifetime - r.init_us - r.busy_us);
  r.provisioned = instance.provisioned;
  r.stop_reason = std::string(reason);
  options_.usage->Record(std::move(r));
}

void Runtime::UpdateProvisioned(Model& model, int instances, std::optional<Micros> wall_now) {
  if (instances == model.provisioned_instances && !wall_now) return;
  const Micros wall = wall_now ? *wall_now : clock_.WallMicros();
  if (model.provisioned_instances > 0 && options_.usage)
    options_.usage->Record(metering::ProvisionedRecord{.model = model.config.name,
                                                        .memory_mb = model.config.memory_mb,
                                                        .instances = model.provisioned_instances,
                                                        .start_wall_us = model.provisioned_since_wall_us,
                                                        .end_wall_us = wall});
  model.provisioned_instances = instances;
  model.provisioned_since_wall_us = wall;
}

void Runtime::FlushUsage() {
  const Micros wall = clock_.WallMicros();
  for (auto& [name, model] : models_)
    if (model->provisioned_instances > 0) UpdateProvisioned(*model, model->provisioned_instances, wall);
}

Status Runtime::ReserveMemory(Model& model) {
  if (options_.memory_budget_mb <= 0) return Status::Ok();
  std::vector<policy::LiveInstance> live;
  for (const auto& [name, other] : models_) {
    // Provisioned instances are kept: only idle ones beyond the floor may go.
    int protected_left = ProvisionedMinimum(*other).min_instances;
    for (const auto& [id, instance] : other->instances) {
      bool evictable = instance->ready && instance->in_flight.empty();
      if (evictable && protected_left > 0) {
        --protected_left;
        evictable = false;
      }
      live.push_back({name, id, other->config.memory_mb, evictable, instance->idle_since_us});
    }
    // A live template and its standby (a fork sharing most of its pages)
    // count as one instance of the model's size; never evicted (id 0).
    if (other->config.start_path == StartPath::kTemplate && other->spawner && !other->spawner->gone)
      live.push_back({name, 0, other->config.memory_mb, false, 0});
  }
  auto plan = policy::PlanColdStart(model.config.memory_mb, options_.memory_budget_mb, live, model.config.name);
  if (!plan.ok())
    return Unavailable("no memory for a new instance of model '" + model.config.name + "': " + plan.status().message());
  for (const policy::Eviction& eviction : plan->evict) {
    auto it = models_.find(eviction.model);
    if (it == models_.end()) continue;
    RetireIdleInstance(*it->second, eviction.id, "memory_pressure");
  }
  return Status::Ok();
}

void Runtime::StartInstance(Model& model) {
  if (Status room = ReserveMemory(model); !room.ok()) {
    LogEvent(LogLevel::kWarning, "instance_start_refused",
             Fields({{"model", model.config.name}, {"error", LogValue(room.message())}}));
    // Queued requests fail only if no instance of the model can serve them.
    if (model.instances.empty()) FailQueued(model, room);
    return;
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    LogEvent(LogLevel::kError, "instance_start_failed", Fields({{"model", model.config.name}, {"error", "socketpair"}}));
    FailQueued(model, Unavailable("cannot create a socket for a new instance"));
    return;
  }
  auto instance = std::make_shared<Instance>(io_);
  instance->id = next_instance_id_++;
  instance->start_path = model.config.start_path;
  instance->generation = model.generation;
  instance->spawn_start_us = clock_.NowMicros();
  instance->start_wall_us = clock_.WallMicros();
  instance->provisioned = static_cast<int>(model.instances.size()) < ProvisionedMinimum(model).min_instances;
  instance->socket.assign(asio::local::stream_protocol(), fds[0]);
  auto cgroup_dir = MakeCgroup("instance-" + std::to_string(instance->id), model.config.memory_mb);
  if (!cgroup_dir.ok()) {
    ::close(fds[1]);
    model.last_start_error = "cannot enforce memory_mb: " + cgroup_dir.status().message();
    LogEvent(LogLevel::kError, "instance_start_failed",
             Fields({{"model", model.config.name}, {"error", LogValue(model.last_start_error)}}));
    if (model.instances.empty()) FailQueued(model, Unavailable(model.last_start_error));
    return;
  }
  instance->cgroup_dir = *cgroup_dir;
  if (instance->start_path == StartPath::kExec) {
    std::vector<std::string> args = {options_.worker_path, "--model-dir", model.run_directory, "--fd",
                                     std::to_string(kWorkerFd)};
    if (!instance->cgroup_dir.empty()) args.insert(args.end(), {"--cgroup", instance->cgroup_dir});
    for (std::string& arg : SandboxArgs(model.run_directory)) args.push_back(std::move(arg));
    auto pid = SpawnProcess(args, model.config.threads, fds[1]);
    ::close(fds[1]);
    if (!pid.ok()) {
      model.last_start_error = pid.status().message();
      LogEvent(LogLevel::kError, "instance_start_failed",
               Fields({{"model", model.config.name}, {"error", LogValue(model.last_start_error)}}));
      FailQueued(model, Unavailable(model.last_start_error));
      RemoveCgroupLater(instance->cgroup_dir);
      return;  // the instance's socket closes with it
    }
    instance->pid = *pid;
    instance->spawn_done_us = clock_.NowMicros();
  } else {
    std::shared_ptr<Spawner> spawner = EnsureSpawner(model);
    instance->forked_by = spawner;
    if (spawner && spawner->ready) {
      SendSpawn(*spawner, model.run_directory, fds[1]);
    } else if (spawner) {
      spawner->waiting.push_back({model.run_directory, fds[1]});
    } else {
      ::close(fds[1]);  // the instance sees EOF: a failed start
    }
  }
  model.instances.emplace(instance->id, instance);
  LogEvent(LogLevel::kInfo, "instance_start",
           Fields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                   {"start_path", std::string(StartPathName(instance->start_path))},
                   {"pid", std::to_string(instance->pid)}}));
  ReadMore(model, instance);
}

std::vector<std::string> Runtime::SandboxArgs(const std::string& writable_dir) const {
  std::vector<std::string> args = {"--sandbox=" + std::string(sandbox::SandboxModeName(options_.sandbox))};
  if (options_.sandbox == sandbox::SandboxMode::kOff) return args;
  if (worker_user_)
    args.push_back("--user=" + std::to_string(worker_user_->uid) + ":" + std::to_string(worker_user_->gid));
  args.push_back("--writable-dir=" + writable_dir);
  return args;
}

StatusOr<int> Runtime::SpawnProcess(const std::vector<std::string>& args, int threads, int child_fd) {
  // dup2 onto the same number would keep FD_CLOEXEC; move it out of the way.
  int moved = -1;
  if (child_fd == kWorkerFd) {
    moved = ::fcntl(child_fd, F_DUPFD_CLOEXEC, kWorkerFd + 1);
    child_fd = moved;
  }
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string_view entry(*e);
    if (entry.starts_with("OMP_NUM_THREADS=") || entry.starts_with("OMP_WAIT_POLICY=") ||
        entry.starts_with("GLIBC_TUNABLES="))
      continue;
    env_strings.emplace_back(entry);
  }
  env_strings.push_back("OMP_NUM_THREADS=" + std::to_string(threads));
  // Spinning OpenMP threads starve each other when instances share 2 cores
  // (60-80 ms per call instead of 0.6 ms, measured on textenc with 2 threads).
  env_strings.push_back("OMP_WAIT_POLICY=PASSIVE");
  // Page faults cost 15-20 us here: keep freed activations in the heap.
  env_strings.push_back("GLIBC_TUNABLES=glibc.malloc.mmap_threshold=67108864:glibc.malloc.trim_threshold=1073741824");
  std::vector<std::string> arg_copies = args;
  std::vector<char*> argv, envp;
  for (auto& a : arg_copies) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, child_fd, kWorkerFd);
  // Model code gets no terminal to read from.
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Own session (and process group, pgid = pid): a Ctrl-C at the terminal
  // reaches the server, which then stops its workers, rather than killing
  // workers mid-request; and with no controlling terminal a worker cannot
  // push keystrokes into the user's shell (TIOCSTI) through stderr.
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
  pid_t pid = 0;
  int rc = ::posix_spawn(&pid, options_.worker_path.c_str(), &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (moved >= 0) ::close(moved);
  if (rc != 0) return Unavailable("cannot start worker '" + options_.worker_path + "': " + std::strerror(rc));
  return static_cast<int>(pid);
}

std::shared_ptr<Runtime::Spawner> Runtime::EnsureSpawner(Model& model) {
  std::shared_ptr<Spawner>& slot = model.config.start_path == StartPath::kTemplate ? model.spawner : zygote_;
  if (!slot || slot->gone)
    slot = StartSpawner(model.config.start_path == StartPath::kTemplate ? &model : nullptr, model.config.start_timeout_ms);
  return slot;
}

std::shared_ptr<Runtime::Spawner> Runtime::StartSpawner(Model* owner, int64_t start_timeout_ms) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return nullptr;
  std::vector<std::string> args = {options_.worker_path};
  if (owner) {
    args.insert(args.end(), {"--template", "--model-dir", owner->run_directory});
  } else {
    args.push_back("--zygote");
  }
  args.insert(args.end(), {"--fd", std::to_string(kWorkerFd)});
  // A template holds its model and warms a standby before handing it an
  // instance (the standby's warm-up pages stay charged here on v2): room for two.
  auto cgroup_dir = MakeCgroup((owner ? "template-" : "zygote-") + std::to_string(next_spawner_id_++),
                               owner ? 2 * owner->config.memory_mb : cgroup::kZygoteMemoryMb);
  if (!cgroup_dir.ok()) {
    ::close(fds[0]);
    ::close(fds[1]);
    const std::string error = "cannot enforce memory_mb: " + cgroup_dir.status().message();
    if (owner) owner->last_start_error = error;
    LogEvent(LogLevel::kError, "spawner_start_failed",
             Fields({{"model", owner ? owner->config.name : "zygote"}, {"error", LogValue(error)}}));
    return nullptr;
  }
  if (!cgroup_dir->empty()) args.insert(args.end(), {"--cgroup", *cgroup_dir});
  // A zygote serves every model: its instances may need any model's directory.
  for (std::string& arg : SandboxArgs(owner ? owner->run_directory : run_dir_)) args.push_back(std::move(arg));
  // One thread: a parent that ran OpenMP on more would hang its children.
  auto pid = SpawnProcess(args, 1, fds[1]);
  ::close(fds[1]);
  const std::string name = owner ? owner->config.name : "zygote";
  if (!pid.ok()) {
    ::close(fds[0]);
    if (owner) owner->last_start_error = pid.status().message();
    LogEvent(LogLevel::kError, "spawner_start_failed", Fields({{"model", name}, {"error", LogValue(pid.status().message())}}));
    RemoveCgroupLater(*cgroup_dir);
    return nullptr;
  }
  auto spawner = std::make_shared<Spawner>(io_);
  spawner->cgroup_dir = *cgroup_dir;
  spawner->owner = owner;
  spawner->pid = *pid;
  spawner->start_timeout_ms = start_timeout_ms;
  spawner->started_us = clock_.NowMicros();
  spawner->socket.assign(asio::local::stream_protocol(), fds[0]);
  LogEvent(LogLevel::kInfo, owner ? "template_start" : "zygote_start",
           Fields({{"model", name}, {"pid", std::to_string(*pid)}}));
  ReadSpawner(spawner);
  return spawner;
}

void Runtime::ReadSpawner(std::shared_ptr<Spawner> spawner) {
  spawner->socket.async_read_some(
      asio::buffer(spawner->read_buffer), [this, spawner](const boost::system::error_code& ec, size_t n) {
        if (spawner->gone) return;
        if (ec) return OnSpawnerGone(*spawner);
        spawner->reader.Append(spawner->read_buffer.data(), n);
        for (;;) {
          auto frame = spawner->reader.Next();
          if (!frame.ok()) return OnSpawnerGone(*spawner);
          if (!frame->has_value()) break;
          const std::string name = spawner->owner ? spawner->owner->config.name : "zygote";
          if ((*frame)->type == ipc::MessageType::kReady) {
            auto ready = ipc::DecodeReady((*frame)->payload);
            spawner->ready = true;
            if (Model* owner = spawner->owner) {
              // The template loaded and warmed the model: it can start.
              owner->last_start_error.clear();
              owner->start_retry_backoff_us = kMinStartRetryUs;
            }
            if (ready.ok()) spawner->sandbox = ready->sandbox;
            LogEvent(LogLevel::kInfo, spawner->owner ? "template_ready" : "zygote_ready",
                     Fields({{"model", name}, {"pid", std::to_string(spawner->pid)},
                             {"start_ms", ready.ok() ? MillisText(clock_.NowMicros() - ready->started_us) : "?"},
                             {"load_ms", ready.ok() ? MillisText(ready->model_load_us) : "?"},
                             {"warmup_ms", ready.ok() ? MillisText(ready->warmup_us) : "?"}}));
            std::vector<Spawner::Waiting> waiting = std::move(spawner->waiting);
            spawner->waiting.clear();
            for (auto& w : waiting) SendSpawn(*spawner, w.model_dir, w.child_fd);
          } else if ((*frame)->type == ipc::MessageType::kInitError) {
            auto error = ipc::DecodeInitError((*frame)->payload);
            const std::string message = error.ok() ? error->message : "unreadable error";
            if (spawner->owner) spawner->owner->last_start_error = message;
            LogEvent(LogLevel::kError, "spawner_init_error", Fields({{"model", name}, {"error", LogValue(message)}}));
          }
        }
        ReadSpawner(spawner);
      });
}

void Runtime::OnSpawnerGone(Spawner& spawner) {
  if (spawner.gone) return;
  spawner.gone = true;
  const bool was_ready = spawner.ready;
  boost::system::error_code ignored;
  spawner.socket.close(ignored);
  ::kill(spawner.pid, SIGKILL);
  // Instances that were waiting for it see EOF and fail their start.
  for (auto& w : spawner.waiting) ::close(w.child_fd);
  spawner.waiting.clear();
  const std::string name = spawner.owner ? spawner.owner->config.name : "zygote";
  const bool expected = shut_down_ || (spawner.owner && spawner.owner->removed);
  if (!expected && OomKilled(spawner.cgroup_dir)) {
    const std::string error = (spawner.owner ? "template of model '" + name + "'" : std::string("the zygote")) +
                              " exceeded its memory limit (" +
                              (spawner.owner ? "2 x memory_mb=" + std::to_string(spawner.owner->config.memory_mb)
                                             : std::to_string(cgroup::kZygoteMemoryMb) + " MB") +
                              ") and was killed";
    if (spawner.owner) spawner.owner->last_start_error = error;
    LogEvent(LogLevel::kWarning, "spawner_oom", Fields({{"model", name}, {"error", LogValue(error)}}));
  }
  RemoveCgroupLater(spawner.cgroup_dir);
  if (!was_ready && spawner.owner && spawner.owner->spawner.get() == &spawner && spawner.owner->last_start_error.empty())
    spawner.owner->last_start_error = "template exited before it was ready";
  LogEvent(expected ? LogLevel::kInfo : LogLevel::kWarning, "spawner_exit",
           Fields({{"model", name}, {"pid", std::to_string(spawner.pid)}, {"was_ready", was_ready ? "true" : "false"}}));
  // A spawner that had been serving is replaced at once; one that never got
  // ready is retried when an instance is next needed.
  if (shut_down_ || !was_ready) return;
  if (spawner.owner) {
    Model* owner = spawner.owner;
    if (owner->removed || owner->config.start_path != StartPath::kTemplate || owner->spawner.get() != &spawner) return;
    owner->spawner = StartSpawner(owner, owner->config.start_timeout_ms);
  } else {
    zygote_ = StartSpawner(nullptr, spawner.start_timeout_ms);
  }
}

void Runtime::SendSpawn(Spawner& spawner, const std::string& model_dir, int child_fd) {
  Status sent = ipc::SendFrameWithFd(spawner.socket.native_handle(), ipc::Encode(ipc::SpawnMessage{.model_dir = model_dir}),
                                     child_fd);
  ::close(child_fd);  // the spawner holds its own copy now; on failure the instance sees EOF
  if (!sent.ok())
    LogEvent(LogLevel::kError, "spawn_failed",
             Fields({{"pid", std::to_string(spawner.pid)}, {"error", LogValue(sent.message())}}));
}

Status Runtime::UpdateModelConfig(ModelConfig config) {
  auto it = models_.find(config.name);
  if (it == models_.end()) return NotFound("model '" + config.name + "' is not loaded");
  THAW_RETURN_IF_ERROR(policy::Validate(AutoscalerOptionsFor(config)));
  THAW_RETURN_IF_ERROR(policy::Validate(KeepAliveOptionsFor(config)));
  THAW_RETURN_IF_ERROR(policy::Validate(BatchingOptionsFor(config)));
  Model& model = *it->second;
  config.directory = model.config.directory;
  const bool new_workers = WorkersDiffer(model.config, config);
  model.config = std::move(config);
  model.autoscaler = policy::Autoscaler(AutoscalerOptionsFor(model.config));
  model.keep_alive = policy::KeepAlivePolicy(KeepAliveOptionsFor(model.config));
  model.batcher = policy::AdaptiveBatcher(BatchingOptionsFor(model.config));
  // The model file snapshot stays: only a load/reload takes a new one.
  THAW_RETURN_IF_ERROR(WriteRunDirectory(model, /*snapshot_model_file=*/false));
  if (new_workers) ReplaceWorkers(model, "config_changed");
  LogEvent(LogLevel::kInfo, "model_config_changed",
           Fields({{"model", model.config.name}, {"generation", std::to_string(model.generation)},
                   {"workers_replaced", new_workers ? "true" : "false"}}));
  Pump(model);
  return Status::Ok();
}

void Runtime::ReplaceWorkers(Model& model, std::string_view reason) {
  ++model.generation;
  // Starts under the old settings are abandoned, not counted as failures:
  // they would only be retired once ready, holding max_concurrency slots.
  std::vector<uint64_t> starting, idle;
  for (const auto& [id, instance] : model.instances) {
    if (!instance->ready) starting.push_back(id);
    else if (instance->in_flight.empty()) idle.push_back(id);
  }
  for (uint64_t id : starting)
    StopInstance(model, id, StopKind::kKill, reason, Internal("unreachable: instance was starting"));
  for (uint64_t id : idle) RetireIdleInstance(model, id, reason);
  // New instances must start from the new settings; busy ones retire when they finish.
  if (std::shared_ptr<Spawner> spawner = std::move(model.spawner)) {
    ::kill(spawner->pid, SIGKILL);
    OnSpawnerGone(*spawner);
  }
  model.last_start_error.clear();
  model.start_retry_after_us = 0;
  model.start_retry_backoff_us = kMinStartRetryUs;
  if (model.config.start_path == StartPath::kTemplate) EnsureSpawner(model);
}

void Runtime::ReloadModel(ModelConfig config, std::function<void(Status)> done) {
  auto finish = [this, &done](Status status) { asio::post(io_, [done = std::move(done), status]() { done(status); }); };
  if (shut_down_ || draining_) return finish(Unavailable("server is shutting down"));
  if (!models_.count(config.name)) return finish(AddModel(std::move(config)));
  if (validations_.count(config.name))
    return finish(Unavailable("a reload of model '" + config.name + "' is already in progress"));
  for (const Status& valid : {policy::Validate(AutoscalerOptionsFor(config)), policy::Validate(KeepAliveOptionsFor(config)),
                              policy::Validate(BatchingOptionsFor(config))})
    if (!valid.ok()) return finish(valid);
  auto validation = std::make_shared<Validation>(io_);
  validation->staging_dir = (std::filesystem::path(run_dir_) / ".staging" / config.name).string();
  std::error_code ignored;
  std::filesystem::remove_all(validation->staging_dir, ignored);
  if (Status written = WriteRunFiles(validation->staging_dir, config, /*snapshot_model_file=*/true); !written.ok())
    return finish(written);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
    return finish(Unavailable("cannot create a socket to validate model '" + config.name + "'"));
  // A plain instance of the new version: it loads the model and runs its
  // warm-up like any start, then is stopped.
  auto pid = SpawnProcess({options_.worker_path, "--model-dir", validation->staging_dir, "--fd", std::to_string(kWorkerFd)},
                          config.threads, fds[1]);
  ::close(fds[1]);
  if (!pid.ok()) {
    ::close(fds[0]);
    return finish(pid.status());
  }
  validation->pid = *pid;
  validation->socket.assign(asio::local::stream_protocol(), fds[0]);
  validation->done = std::move(done);
  const std::string name = config.name;
  validation->config = std::move(config);
  validations_.emplace(name, validation);
  LogEvent(LogLevel::kInfo, "model_validation_start", Fields({{"model", name}, {"pid", std::to_string(*pid)}}));
  validation->timer.expires_after(std::chrono::milliseconds(validation->config.start_timeout_ms));
  validation->timer.async_wait([this, validation](const boost::system::error_code& ec) {
    if (ec || validation->finished) return;
    FinishValidation(*validation, Unavailable(StartTimeoutMessage("the new version", validation->config)));
  });
  ReadValidation(validation);
}

void Runtime::ReadValidation(std::shared_ptr<Validation> validation) {
  validation->socket.async_read_some(
      asio::buffer(validation->read_buffer), [this, validation](const boost::system::error_code& ec, size_t n) {
        if (validation->finished) return;
        const std::string& name = validation->config.name;
        if (ec)
          return FinishValidation(*validation, Unavailable("the new version of model '" + name +
                                                           "' failed to load: worker exited before it was ready"));
        validation->reader.Append(validation->read_buffer.data(), n);
        for (;;) {
          auto frame = validation->reader.Next();
          if (!frame.ok()) return FinishValidation(*validation, Internal(frame.status().message()));
          if (!frame->has_value()) break;
          if ((*frame)->type == ipc::MessageType::kReady) return FinishValidation(*validation, Status::Ok());
          if ((*frame)->type == ipc::MessageType::kInitError) {
            auto error = ipc::DecodeInitError((*frame)->payload);
            return FinishValidation(*validation, Unavailable("the new version of model '" + name + "' failed to load: " +
                                                             (error.ok() ? error->message : "unreadable error")));
          }
        }
        ReadValidation(validation);
      });
}

void Runtime::FinishValidation(Validation& validation, Status status) {
  validation.finished = true;
  boost::system::error_code ignored;
  validation.timer.cancel();
  validation.socket.close(ignored);
  ::kill(validation.pid, SIGKILL);
  const std::string name = validation.config.name;
  std::shared_ptr<Validation> keep = validations_[name];  // `validation` lives until this returns
  validations_.erase(name);
  auto it = models_.find(name);
  if (status.ok() && (shut_down_ || it == models_.end()))
    status = Unavailable("model '" + name + "' was unloaded while its new version was being validated");
  if (status.ok()) {
    // Proven: the staged model file and config become the model's.
    Model& model = *it->second;
    namespace fs = std::filesystem;
    std::error_code ec;
    ModelConfig config = std::move(validation.config);
    const fs::path staged_file = fs::path(validation.staging_dir) / config.model_file;
    const fs::path serving_file = fs::path(model.run_directory) / config.model_file;
    fs::create_directories(serving_file.parent_path(), ec);
    fs::rename(staged_file, serving_file, ec);
    if (ec) {
      status = Internal("cannot install the new version of model '" + name + "': " + ec.message());
    } else {
      model.config = std::move(config);
      model.autoscaler = policy::Autoscaler(AutoscalerOptionsFor(model.config));
      model.keep_alive = policy::KeepAlivePolicy(KeepAliveOptionsFor(model.config));
      model.batcher = policy::AdaptiveBatcher(BatchingOptionsFor(model.config));
      status = WriteRunDirectory(model, /*snapshot_model_file=*/false);
      ReplaceWorkers(model, "reloaded");
      Pump(model);
    }
  }
  std::error_code ignored_fs;
  std::filesystem::remove_all(validation.staging_dir, ignored_fs);
  LogEvent(status.ok() ? LogLevel::kInfo : LogLevel::kWarning, "model_reload",
           Fields({{"model", name}, {"ok", status.ok() ? "true" : "false"},
                   {"error", LogValue(status.ok() ? "" : status.message())}}));
  asio::post(io_, [done = std::move(validation.done), status]() { done(status); });
}

Status Runtime::RemoveModel(std::string_view name) {
  auto it = models_.find(name);
  if (it == models_.end()) return NotFound("model '" + std::string(name) + "' is not loaded");
  Model& model = *it->second;
  model.removed = true;
  UpdateProvisioned(model, 0);
  const Status status = Unavailable("model '" + model.config.name + "' was unloaded");
  FailQueued(model, status);
  std::vector<uint64_t> ids;
  for (const auto& [id, instance] : model.instances) ids.push_back(id);
  for (uint64_t id : ids) StopInstance(model, id, StopKind::kKill, "unload", status);
  CancelTimer(model);
  if (model.spawner) {
    // The template's process group holds its standby and its instances too.
    ::kill(-model.spawner->pid, SIGKILL);
    OnSpawnerGone(*model.spawner);
  }
  std::error_code ignored;
  std::filesystem::remove_all(model.run_directory, ignored);
  LogEvent(LogLevel::kInfo, "model_removed", Fields({{"model", model.config.name}}));
  retired_models_.push_back(std::move(it->second));
  models_.erase(it);
  return Status::Ok();
}

StatusOr<int> Runtime::Warm(std::string_view model_name, int instances) {
  auto it = models_.find(model_name);
  if (it == models_.end()) return NotFound("model '" + std::string(model_name) + "' is not loaded");
  if (instances < 0) return InvalidArgument("instances must be >= 0");
  Model& model = *it->second;
  const int target = std::min(instances, model.config.max_concurrency);
  int started = 0;
  for (int live = static_cast<int>(model.instances.size()); live < target && !shut_down_; ++live) {
    StartInstance(model);
    ++started;
  }
  Reschedule(model);
  return started;
}

void Runtime::Dispatch(Model& model, Instance& instance, std::vector<std::unique_ptr<Pending>> batch) {
  const Micros now = clock_.NowMicros();
  Execution execution;
  execution.id = batch.front()->request_id;
  execution.dispatched_us = now;
  ipc::InferRequestMessage message;
  message.request_id = execution.id;
  message.output_names = batch.front()->output_names;
  if (batch.size() == 1) {
    message.inputs = std::move(batch.front()->inputs);
  } else {
    std::vector<std::vector<Tensor>> inputs;
    inputs.reserve(batch.size());
    for (auto& pending : batch) inputs.push_back(std::move(pending->inputs));
    auto joined = ConcatBatch(inputs);
    if (!joined.ok()) {
      // Requests are grouped by shape key, so this is a bug; fail them rather than guess.
      LogEvent(LogLevel::kError, "batch_concat_failed",
               Fields({{"model", model.config.name}, {"error", LogValue(joined.status().message())}}));
      for (auto& pending : batch) {
        InferOutcome outcome;
        outcome.status = Internal("cannot batch requests: " + joined.status().message());
        outcome.timing.total_us = now - pending->arrival_us;
        asio::post(io_, [done = std::move(pending->done), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
      }
      return;
    }
    message.inputs = std::move(joined).value();
  }
  // Time a request spent queued while this instance had a slot free: waiting for its batch.
  const Micros slot_free_since = instance.in_flight.empty() ? instance.idle_since_us : instance.slot_free_since_us;
  for (auto& pending : batch) {
    pending->dispatched_us = now;
    pending->batch_wait_us = now - std::max(pending->arrival_us, std::min(now, slot_free_since));
    execution.rows += pending->rows;
  }
  execution.requests = std::move(batch);
  if (instance.in_flight.empty()) instance.busy_since_us = now;
  instance.write_queue.push_back(ipc::EncodeInferRequestFrame(std::move(message)));
  instance.in_flight.emplace(execution.id, std::move(execution));
  WriteMore(model.instances.at(instance.id));
}

void Runtime::WriteMore(std::shared_ptr<Instance> instance) {
  if (instance->writing || instance->write_queue.empty() || instance->removed) return;
  instance->writing = true;
  std::vector<asio::const_buffer> buffers;
  for (std::string_view piece : instance->write_queue.front().Pieces()) buffers.push_back(asio::buffer(piece));
  asio::async_write(instance->socket, buffers,
                    [this, instance](const boost::system::error_code& ec, size_t) {
                      instance->writing = false;
                      if (instance->removed) return;
                      instance->write_queue.pop_front();
                      // A write error shows up as EOF on the read side, which handles it.
                      if (!ec) WriteMore(instance);
                    });
}

void Runtime::ReadMore(Model& model, std::shared_ptr<Instance> instance) {
  instance->socket.async_read_some(
      asio::buffer(instance->read_buffer), [this, &model, instance](const boost::system::error_code& ec, size_t n) {
        if (instance->removed) return;
        if (ec) {
          const bool was_ready = instance->ready;
          // The kernel counts the kill before the process exits and its socket closes.
          const bool oom = OomKilled(instance->cgroup_dir);
          const std::string limit = "memory limit (memory_mb=" + std::to_string(model.config.memory_mb) + ")";
          std::string reason = oom ? "oom" : was_ready ? "crashed" : "start_failed";
          if (!was_ready) {
            if (oom) model.last_start_error = "instance exceeded its " + limit + " while starting and was killed";
            if (model.last_start_error.empty()) model.last_start_error = "worker exited before it was ready";
            const Micros now = clock_.NowMicros();
            model.start_retry_after_us = now + model.start_retry_backoff_us;
            model.start_retry_backoff_us = std::min(kMaxStartRetryUs, model.start_retry_backoff_us * 2);
          }
          StopInstance(model, instance->id, StopKind::kKillFault, reason,
                       Unavailable(oom ? "instance of model '" + model.config.name + "' exceeded its " + limit +
                                             " and was killed"
                                       : "instance " + std::to_string(instance->id) + " of model '" + model.config.name +
                                             "' exited while running the request"));
          if (!was_ready) {
            if (model.instances.empty()) FailQueued(model, Unavailable("model '" + model.config.name + "' failed to start: " +
                                                       model.last_start_error));
          }
          Pump(model);
          return;
        }
        instance->reader.Append(instance->read_buffer.data(), n);
        while (!instance->removed) {
          auto frame = instance->reader.Next();
          if (!frame.ok()) {
            LogEvent(LogLevel::kError, "instance_protocol_error",
                     Fields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                             {"error", LogValue(frame.status().message())}}));
            StopInstance(model, instance->id, StopKind::kKillFault, "protocol_error",
                         Internal("instance sent a malformed message: " + frame.status().message()));
            Pump(model);
            return;
          }
          if (!frame->has_value()) break;
          OnFrame(model, *instance, static_cast<uint8_t>((*frame)->type), (*frame)->payload);
        }
        if (!instance->removed) ReadMore(model, instance);
        Pump(model);
      });
}

void Runtime::OnFrame(Model& model, Instance& instance, uint8_t type, const std::string& payload) {
  const Micros now = clock_.NowMicros();
  switch (static_cast<ipc::MessageType>(type)) {
    case ipc::MessageType::kReady: {
      auto ready = ipc::DecodeReady(payload);
      if (ready.ok()) {
        instance.ready_message = *ready;
        // A forked instance is known by its pid only from here on.
        if (instance.pid == 0) instance.pid = ready->pid;
        if (instance.start_path != StartPath::kExec) instance.spawn_done_us = ready->started_us;
      }
      // A forked instance is sandboxed before it can join its memory cgroup,
      // so the server moves it, before it is given any work. (Pages a
      // zygote-path instance allocated while loading move with it on v1,
      // memory.move_charge_at_immigrate.)
      if (instance.start_path != StartPath::kExec && !instance.cgroup_dir.empty()) {
        if (Status moved = cgroup::MoveToMemoryCgroup(instance.cgroup_dir, instance.pid); !moved.ok()) {
          model.last_start_error = "cannot enforce memory_mb: cannot move instance into its memory cgroup: " + moved.message();
          LogEvent(LogLevel::kError, "instance_init_error",
                   Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                           {"error", LogValue(model.last_start_error)}}));
          if (instance.pid > 0) ::kill(instance.pid, SIGKILL);  // EOF follows: a failed start
          return;
        }
      }
      instance.ready = true;
      instance.ready_us = now;
      instance.idle_since_us = now;
      instance.slot_free_since_us = now;
      model.last_start_error.clear();
      model.start_retry_backoff_us = kMinStartRetryUs;
      LogEvent(LogLevel::kInfo, "instance_ready",
               Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                       {"pid", std::to_string(instance.pid)},
                       {"start_path", std::string(StartPathName(instance.start_path))},
                       {"start_ms", MillisText(now - instance.spawn_start_us)},
                       {"load_ms", ready.ok() ? MillisText(ready->model_load_us) : "?"},
                       {"warmup_ms", ready.ok() ? MillisText(ready->warmup_us) : "?"}}));
      // Started under settings since replaced: it takes no work, so it goes
      // now rather than hold a max_concurrency slot until keep-alive.
      if (instance.generation != model.generation) RetireIdleInstance(model, instance.id, "config_changed");
      return;
    }
    case ipc::MessageType::kInitError: {
      auto error = ipc::DecodeInitError(payload);
      model.last_start_error = error.ok() ? error->message : "worker reported an unreadable error";
      LogEvent(LogLevel::kError, "instance_init_error",
               Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                       {"error", LogValue(model.last_start_error)}}));
      return;  // the worker exits; EOF handling fails the queue
    }
    case ipc::MessageType::kInferResponse: {
      auto response = ipc::DecodeInferResponse(payload);
      if (!response.ok()) {
        StopInstance(model, instance.id, StopKind::kKillFault, "protocol_error", Internal(response.status().message()));
        return;
      }
      auto it = instance.in_flight.find(response->request_id);
      if (it == instance.in_flight.end()) return;  // already failed by its deadline
      Execution execution = std::move(it->second);
      instance.in_flight.erase(it);
      instance.slot_free_since_us = now;
      if (instance.in_flight.empty()) {
        instance.idle_since_us = now;
        instance.busy_us += now - instance.busy_since_us;
      }
      const Micros round_trip_us = now - execution.dispatched_us;
      // What the batcher learns is the whole round trip, not only the
      // backend's time: per-call overhead (IPC, decoding) is what batching saves.
      if (response->code == StatusCode::kOk && model.config.instance_concurrency == 1)
        model.batcher.OnBatchDone(execution.rows, round_trip_us);
      const Status status = response->code == StatusCode::kOk ? Status::Ok() : Status(response->code, response->error);
      std::vector<std::vector<Tensor>> outputs_per_request;
      Status split = Status::Ok();
      if (status.ok() && execution.requests.size() > 1) {
        std::vector<int64_t> rows;
        for (const auto& pending : execution.requests) rows.push_back(pending->rows);
        auto parts = SplitBatch(response->outputs, rows);
        if (parts.ok()) outputs_per_request = std::move(parts).value();
        else split = Internal("model '" + model.config.name + "' returned outputs that do not split back into the batch: " +
                              parts.status().message());
      }
      if (options_.on_execution) {
        ExecutionRecord record;
        record.model = model.config.name;
        record.instance_id = instance.id;
        record.requests = static_cast<int>(execution.requests.size());
        record.rows = execution.rows;
        record.compute_us = response->compute_us;
        record.round_trip_us = round_trip_us;
        record.memory_mb = model.config.memory_mb;
        record.ok = status.ok() && split.ok();
        options_.on_execution(record);
      }
      bool cold_start_logged = false;
      for (size_t i = 0; i < execution.requests.size(); ++i) {
        std::unique_ptr<Pending> pending = std::move(execution.requests[i]);
        InferOutcome outcome;
        outcome.status = !status.ok() ? status : split;
        if (outcome.status.ok())
          outcome.outputs = execution.requests.size() == 1 ? std::move(response->outputs) : std::move(outputs_per_request[i]);
        outcome.timing.queue_us = pending->dispatched_us - pending->arrival_us;
        outcome.timing.batch_wait_us = pending->batch_wait_us;
        outcome.timing.compute_us = response->compute_us;
        outcome.timing.total_us = now - pending->arrival_us;
        outcome.timing.batch_size = execution.rows;
        outcome.timing.batch_requests = static_cast<int>(execution.requests.size());
        outcome.timing.batch_share = static_cast<double>(pending->rows) / static_cast<double>(std::max<int64_t>(1, execution.rows));
        outcome.timing.cold_start = instance.ready_us > pending->arrival_us;
        outcome.timing.start_path = instance.start_path;
        outcome.timing.instance_id = instance.id;
        outcome.timing.provisioned = instance.provisioned;
        if (outcome.timing.cold_start) {
          ColdStartBreakdown& cold = outcome.timing.cold;
          const ipc::ReadyMessage& ready = instance.ready_message;
          cold.queue_us = std::max<Micros>(0, instance.spawn_start_us - pending->arrival_us) +
                          (pending->dispatched_us - instance.ready_us);
          cold.spawn_us = instance.spawn_done_us - instance.spawn_start_us;
          // For exec, the time from posix_spawn to main() is the loader and
          // the engines' static initialisation.
          cold.runtime_init_us =
              ready.runtime_init_us +
              (instance.start_path == StartPath::kExec ? std::max<Micros>(0, ready.started_us - instance.spawn_done_us) : 0);
          cold.model_load_us = ready.model_load_us;
          cold.warmup_us = ready.warmup_us;
          cold.first_inference_us = response->compute_us;
          cold.total_us = outcome.timing.total_us;
          if (!cold_start_logged)  // once per execution, not per request in it
            LogEvent(LogLevel::kInfo, "cold_start",
                     Fields({{"model", model.config.name}, {"instance", std::to_string(instance.id)},
                             {"start_path", std::string(StartPathName(instance.start_path))},
                             {"queue_ms", MillisText(cold.queue_us)}, {"spawn_ms", MillisText(cold.spawn_us)},
                             {"runtime_init_ms", MillisText(cold.runtime_init_us)},
                             {"model_load_ms", MillisText(cold.model_load_us)}, {"warmup_ms", MillisText(cold.warmup_us)},
                             {"first_inference_ms", MillisText(cold.first_inference_us)},
                             {"total_ms", MillisText(cold.total_us)}}));
          cold_start_logged = true;
        }
        pending->done(std::move(outcome));
      }
      if (instance.in_flight.empty() && instance.generation != model.generation)
        RetireIdleInstance(model, instance.id, "config_changed");
      return;
    }
    default:
      StopInstance(model, instance.id, StopKind::kKillFault, "protocol_error", Internal("instance sent an unexpected message"));
  }
}

void Runtime::RetireIdleInstance(Model& model, uint64_t instance_id, std::string_view reason) {
  StopInstance(model, instance_id, StopKind::kRetire, reason, Internal("unreachable: instance was idle"));
}

void Runtime::StopInstance(Model& model, uint64_t instance_id, StopKind kind, std::string_view reason,
                           const Status& in_flight_status) {
  auto it = model.instances.find(instance_id);
  if (it == model.instances.end()) return;
  std::shared_ptr<Instance> instance = it->second;
  model.instances.erase(it);
  instance->removed = true;
  boost::system::error_code ignored;
  instance->socket.close(ignored);
  if (instance->pid > 0) ::kill(instance->pid, SIGKILL);
  int failed = 0;
  for (auto& [id, execution] : instance->in_flight) {
    for (auto& pending : execution.requests) {
      InferOutcome outcome;
      outcome.status = in_flight_status;
      outcome.timing.instance_id = instance->id;
      outcome.timing.total_us = clock_.NowMicros() - pending->arrival_us;
      auto done = std::move(pending->done);
      asio::post(io_, [done = std::move(done), outcome = std::move(outcome)]() mutable { done(std::move(outcome)); });
      ++failed;
    }
  }
  RecordInstanceStop(model, *instance, reason);
  instance->in_flight.clear();
  RemoveCgroupLater(instance->cgroup_dir);
  LogEvent(kind == StopKind::kKillFault ? LogLevel::kWarning : LogLevel::kInfo, "instance_stop",
           Fields({{"model", model.config.name}, {"instance", std::to_string(instance->id)},
                   {"pid", std::to_string(instance->pid)}, {"reason", std::string(reason)},
                   {"failed_requests", std::to_string(failed)}}));
}

void Runtime::FailQueued(Model& model, const Status& status) {
  while (!model.queue.empty()) {
    auto pending = std::move(model.queue.front());
    model.queue.pop_front();
    InferOutcome outcome;
    outcome.status = status;
    outcome.timing.total_us = clock_.NowMicros() - pending->arrival_us;
    asio::post(io_, [done = std::move(pending->done), outcome = std::move(outcome)]() mutable {
      done(std::move(outcome));
    });
  }
}

void Runtime::OnTimer(Model& model) {
  const Micros now = clock_.NowMicros();
  // Queued past the deadline: fail without running.
  std::vector<policy::QueuedRequest> queued;
  for (const auto& pending : model.queue) queued.push_back({pending->request_id, pending->deadline_us});
  const policy::ExpiryScan expiry = policy::ExpiredRequests(queued, now);
  for (uint64_t expired_id : expiry.expired) {
    auto it = std::find_if(model.queue.begin(), model.queue.end(),
                           [&](const auto& pending) { return pending->request_id == expired_id; });
    auto pending = std::move(*it);
    model.queue.erase(it);
    InferOutcome outcome;
    outcome.status = DeadlineExceeded("request waited " + MillisText(now - pending->arrival_us) + " ms in the queue of model '" +
                                      model.config.name + "' and reached its deadline before running");
    outcome.timing.total_us = now - pending->arrival_us;
    outcome.timing.queue_us = outcome.timing.total_us;
    pending->done(std::move(outcome));
  }
  // Running past the deadline: fail those requests and replace the instance.
  std::vector<uint64_t> timed_out;
  for (auto& [id, instance] : model.instances) {
    bool expired_here = false;
    for (auto& [eid, execution] : instance->in_flight) {
      for (auto& pending : execution.requests) {
        if (!pending || pending->deadline_us > now) continue;
        InferOutcome outcome;
        outcome.status = DeadlineExceeded("model '" + model.config.name + "' did not answer within the request's " +
                                          "deadline (timeout_ms=" + std::to_string(model.config.timeout_ms) + ")");
        outcome.timing.total_us = now - pending->arrival_us;
        outcome.timing.instance_id = id;
        pending->done(std::move(outcome));
        pending.reset();
        expired_here = true;
      }
      std::erase(execution.requests, nullptr);
    }
    if (expired_here) timed_out.push_back(id);
  }
  for (uint64_t id : timed_out)
    StopInstance(model, id, StopKind::kKillFault, "timeout", Unavailable("instance was replaced after another request timed out"));
  CheckStartDeadlines(model, now);

  const policy::KeepAliveActions actions = KeepAliveActionsFor(model, now);
  for (uint64_t id : actions.stop) RetireIdleInstance(model, id, "keep_alive");
  if (actions.prewarm_now) {
    LogEvent(LogLevel::kInfo, "keep_alive_prewarm", Fields({{"model", model.config.name}}));
    StartInstance(model);
  }
  Pump(model);
}

policy::ProvisionedFloor Runtime::ProvisionedMinimum(const Model& model) const {
  std::vector<policy::ProvisionedWindow> windows;
  for (const ScheduleWindow& w : model.config.provisioned_schedule)
    windows.push_back({w.days_mask, w.start_minute, w.end_minute, w.min_instances});
  return policy::MinInstancesAt(windows, model.config.min_instances, clock_.WallMicros());
}

policy::KeepAliveActions Runtime::KeepAliveActionsFor(const Model& model, Micros now) const {
  std::vector<policy::IdleInstance> idle;
  for (const auto& [id, instance] : model.instances)
    if (instance->ready && instance->in_flight.empty()) idle.push_back({id, instance->idle_since_us});
  // Provisioned instances stay; so does what a panic asked for (no scale-down while panicking).
  const int floor = std::max(ProvisionedMinimum(model).min_instances, model.panicking ? model.desired : 0);
  return model.keep_alive.Decide(idle, static_cast<int>(model.instances.size()), floor, now);
}

void Runtime::Reschedule(Model& model) {
  if (model.removed) return;
  const Micros now = clock_.NowMicros();
  Micros wake = std::numeric_limits<Micros>::max();
  for (const auto& pending : model.queue) wake = std::min(wake, pending->deadline_us);
  for (const auto& [id, instance] : model.instances)
    for (const auto& [eid, execution] : instance->in_flight)
      for (const auto& pending : execution.requests) wake = std::min(wake, pending->deadline_us);
  wake = std::min(wake, model.batch_wake_us);
  const policy::KeepAliveActions actions = KeepAliveActionsFor(model, now);
  if (!actions.stop.empty() || actions.prewarm_now) wake = now;
  if (actions.next_wake_us) wake = std::min(wake, *actions.next_wake_us);
  wake = std::min(wake, model.autoscaler_wake_us);
  const policy::ProvisionedFloor provisioned = ProvisionedMinimum(model);
  if (provisioned.next_change_wall_us)  // the schedule's next change, on the monotonic scale
    wake = std::min(wake, now + std::max<Micros>(0, *provisioned.next_change_wall_us - clock_.WallMicros()));
  if (static_cast<int>(model.instances.size()) < provisioned.min_instances && model.start_retry_after_us > now)
    wake = std::min(wake, model.start_retry_after_us);
  // Start deadlines: instances and the template or zygote they wait for.
  for (const auto& [id, instance] : model.instances)
    if (!instance->ready) wake = std::min(wake, instance->spawn_start_us + StartTimeoutUs(model.config));
  if (const Spawner* spawner = SpawnerOf(model); spawner && !spawner->gone && !spawner->ready)
    wake = std::min(wake, spawner->StartDeadline());

  if (wake == model.scheduled_wake_us) return;
  model.scheduled_wake_us = wake;
  if (wake == kNever) return CancelTimer(model);
  // A timer armed for no later than `wake` stays: if it fires before the
  // wake then wanted, it only re-arms (OnTimer is for when something is due).
  // Under steady load the earliest deadline moves with every execution;
  // cancelling and re-arming each time cost CPU.
  if (model.armed_wake_us <= wake) return;
  ArmTimer(model, wake, now);
}

Runtime::Spawner* Runtime::SpawnerOf(const Model& model) const {
  if (model.config.start_path == StartPath::kTemplate) return model.spawner.get();
  if (model.config.start_path == StartPath::kZygote) return zygote_.get();
  return nullptr;
}

void Runtime::CheckStartDeadlines(Model& model, Micros now) {
  Spawner* spawner = SpawnerOf(model);
  if (spawner && !spawner->gone && !spawner->ready && now >= spawner->StartDeadline())
    TimeOutSpawner(*spawner, StartTimeoutMessage(spawner->owner ? "template" : "zygote",
                                                 spawner->owner ? spawner->owner->config : model.config));
  std::vector<std::shared_ptr<Instance>> overdue;
  for (const auto& [id, instance] : model.instances)
    if (!instance->ready && now >= instance->spawn_start_us + StartTimeoutUs(model.config)) overdue.push_back(instance);
  if (overdue.empty()) return;
  const std::string message = StartTimeoutMessage("instance", model.config);
  model.last_start_error = message;
  model.start_retry_after_us = now + model.start_retry_backoff_us;
  model.start_retry_backoff_us = std::min(kMaxStartRetryUs, model.start_retry_backoff_us * 2);
  for (const auto& instance : overdue) {
    if (instance->removed) continue;
    // A forked instance that never reported: its template or zygote may be
    // the one stuck (stopped, or its fork hung). Kill it and the children
    // that have not reported (their pids are unknown to us); a template that
    // had been ready is replaced at once.
    if (std::shared_ptr<Spawner> by = instance->forked_by.lock(); by && !by->gone && by->ready) {
      std::vector<pid_t> known;
      for (const auto& [name, other] : models_)
        for (const auto& [oid, o] : other->instances)
          if (o->pid > 0) known.push_back(o->pid);
      for (pid_t child : ChildrenOf(by->pid))
        if (std::find(known.begin(), known.end(), child) == known.end()) ::kill(child, SIGKILL);
      TimeOutSpawner(*by, message);
    }
    if (instance->removed) continue;
    StopInstance(model, instance->id, StopKind::kKillFault, "start_timeout", Unavailable(message));
  }
  bool can_serve = false;
  for (const auto& [id, instance] : model.instances) can_serve |= instance->ready && instance->generation == model.generation;
  if (!can_serve) FailQueued(model, Unavailable(message));
}

void Runtime::TimeOutSpawner(Spawner& spawner, const std::string& message) {
  LogEvent(LogLevel::kWarning, "spawner_start_timeout",
           Fields({{"pid", std::to_string(spawner.pid)}, {"error", LogValue(message)}}));
  // Instances waiting for it fail their start naming the cause.
  for (auto& [name, model] : models_) {
    if (SpawnerOf(*model) != &spawner) continue;
    bool waiting = false;
    for (const auto& [id, instance] : model->instances) waiting |= !instance->ready;
    if (waiting || spawner.owner == model.get()) model->last_start_error = message;
  }
  ::kill(spawner.pid, SIGKILL);
  OnSpawnerGone(spawner);
}

void Runtime::ArmTimer(Model& model, Micros wake, Micros now) {
  model.armed_wake_us = wake;
  model.timer.expires_after(std::chrono::microseconds(std::max<Micros>(0, wake - now)));  // cancels the earlier wait
  model.timer.async_wait([this, &model, wake](const boost::system::error_code& ec) {
    if (ec || model.armed_wake_us != wake) return;  // cancelled or superseded
    model.armed_wake_us = kNever;
    const Micros now = clock_.NowMicros();
    // Nothing changes but through Reschedule, so nothing is due before its wake.
    if (now < model.scheduled_wake_us) return ArmTimer(model, model.scheduled_wake_us, now);
    model.scheduled_wake_us = kNever;
    OnTimer(model);
  });
}

void Runtime::CancelTimer(Model& model) {
  model.scheduled_wake_us = kNever;
  if (model.armed_wake_us == kNever) return;
  model.armed_wake_us = kNever;
  model.timer.cancel();
}

void Runtime::WatchChildren() {
  child_watcher_->signals.async_wait([this](const boost::system::error_code& ec, int) {
    if (ec) return;
    ReapChildren();
    WatchChildren();
  });
}

void Runtime::ReapChildren() {
  int status = 0;
  pid_t pid;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    std::string how = WIFEXITED(status) ? "exit=" + std::to_string(WEXITSTATUS(status))
                                        : "signal=" + std::to_string(WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    LogEvent(LogLevel::kDebug, "worker_reaped", Fields({{"pid", std::to_string(pid)}, {"status", how}}));
  }
  RemoveCgroups();
}

StatusOr<std::string> Runtime::MakeCgroup(const std::string& name, int64_t memory_mb) {
  if (!options_.memory_cgroups) return std::string();
  return options_.memory_cgroups->Create(name, memory_mb << 20);
}

bool Runtime::OomKilled(const std::string& dir) const {
  if (dir.empty()) return false;
  auto kills = cgroup::OomKillCount(dir);
  return kills.ok() && *kills > 0;
}

void Runtime::RemoveCgroupLater(std::string dir) {
  if (dir.empty()) return;
  cgroup_cleanup_->dirs.push_back(std::move(dir));
  RemoveCgroups();
}

void Runtime::RemoveCgroups() {
  CgroupCleanup& cleanup = *cgroup_cleanup_;
  if (!options_.memory_cgroups || cleanup.dirs.empty()) return;
  std::erase_if(cleanup.dirs, [&](const std::string& dir) {
    Status removed = options_.memory_cgroups->Remove(dir);
    if (!removed.ok() && removed.code() != StatusCode::kUnavailable)
      LogEvent(LogLevel::kWarning, "cgroup_remove_failed", Fields({{"dir", LogValue(dir)}, {"error", LogValue(removed.message())}}));
    return removed.code() != StatusCode::kUnavailable;  // still in use: retry
  });
  if (cleanup.dirs.empty()) {
    cleanup.retry_us = 0;
    return;
  }
  // Killed processes leave in milliseconds; a retiring one finishes its work first.
  if (cleanup.armed || shut_down_) return;
  cleanup.retry_us = std::clamp<Micros>(cleanup.retry_us * 2, 20 * kMicrosPerMilli, 2 * kMicrosPerSecond);
  cleanup.armed = true;
  cleanup.timer.expires_after(std::chrono::microseconds(cleanup.retry_us));
  cleanup.timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    cgroup_cleanup_->armed = false;
    RemoveCgroups();
  });
}

void Runtime::Drain(std::function<void()> drained) {
  draining_ = true;
  on_drained_ = std::move(drained);
  CheckDrained();
}

void Runtime::CheckDrained() {
  for (const auto& [name, model] : models_)
    if (!model->queue.empty() || model->in_flight() > 0) return;
  // Answers are delivered through posted callbacks; finish after them.
  asio::post(io_, std::exchange(on_drained_, nullptr));
}

void Runtime::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  const Status status = Unavailable("server is shutting down");
  for (auto& [name, model] : models_) {
    FailQueued(*model, status);
    std::vector<uint64_t> ids;
    for (const auto& [id, instance] : model->instances) ids.push_back(id);
    for (uint64_t id : ids) StopInstance(*model, id, StopKind::kKill, "shutdown", status);
    UpdateProvisioned(*model, 0);
    CancelTimer(*model);
    if (model->spawner) {
      // The template's process group holds its standby and its instances too.
      ::kill(-model->spawner->pid, SIGKILL);
      OnSpawnerGone(*model->spawner);
    }
  }
  if (zygote_) {
    ::kill(-zygote_->pid, SIGKILL);
    OnSpawnerGone(*zygote_);
  }
  while (!validations_.empty())
    FinishValidation(*validations_.begin()->second, Unavailable("server is shutting down"));
  boost::system::error_code ignored;
  child_watcher_->signals.cancel(ignored);
  cgroup_cleanup_->timer.cancel();
  // Reap the processes just killed (templates, the zygote, exec instances),
  // so none outlives the server as a zombie; bounded, as a kill takes a moment.
  const Micros give_up = clock_.NowMicros() + 500 * kMicrosPerMilli;
  for (;;) {
    ReapChildren();
    errno = 0;
    // Done when no child is left and every cgroup is gone (their processes left).
    if (::waitpid(-1, nullptr, WNOHANG) < 0 && errno == ECHILD && cgroup_cleanup_->dirs.empty()) break;
    if (clock_.NowMicros() >= give_up) break;
    ::usleep(5000);
  }
}

}  // namespace thaw
