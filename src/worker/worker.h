// The worker process: loads one model and serves inference requests for the
// server over one Unix stream socket (protocol in src/ipc/messages.h).
//
//   thaw-worker --model-dir DIR --fd N             an instance (start path exec)
//   thaw-worker --template --model-dir DIR --fd N  a template for DIR's model
//   thaw-worker --zygote --fd N                    a zygote (engines only)
//   ... --cgroup DIR                               join the memory cgroup DIR first
//
// Templates and zygotes are spawners: they become ready (a template loads and
// warms its model on ONE thread first, so forked children can use OpenMP),
// then fork one instance per kSpawn frame on the control socket N. The
// instance serves on the socket passed with the frame, exactly as below,
// after setting its own thread count; a zygote's instance loads its model
// after the fork. Forked instances share the parent's pages copy-on-write.
//
// Memory limit: a worker given a cgroup (--cgroup, or a Spawn frame's
// cgroup_dir for a forked instance) moves itself into it before it loads or
// allocates anything; if it cannot, it fails its start (InitError naming
// the cause), since its memory_mb would not hold. Privilege drops belong
// after the join (see cgroup/memory_cgroup.h).
// Inherited descriptors: every descriptor >= 3 but the worker's socket is
// closed at start (sandbox or not), and a forked instance closes all but its
// own socket, so no server socket (listening or a client's) reaches model code.
//
// Lifecycle: tune malloc (page faults are expensive, see the engine notes),
// load `DIR/config.json`, set the intra-op thread count, load and warm the
// model, then send exactly one Ready (or InitError and exit 1). Then serve
// InferRequest frames, answering each with one InferResponse carrying the
// same request_id. With instance_concurrency == 1 requests run inline on the
// reading thread; with N > 1 they run on N executor threads and responses may
// come back out of order. EOF on the socket finishes in-flight requests and
// exits 0; a malformed or unexpected frame finishes in-flight requests and
// exits 2.
//
// Output filtering: a request with output_names gets exactly those outputs,
// in the requested order; an unknown name fails that request with
// kInvalidArgument.
// Thread safety: RunWorker is meant to be called once per process.
#pragma once

#include <optional>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "sandbox/sandbox.h"

namespace thaw {

constexpr int kWorkerExitOk = 0;             // the server closed the socket
constexpr int kWorkerExitInitError = 1;      // InitError sent (or could not be)
constexpr int kWorkerExitProtocolError = 2;  // malformed or unexpected frame
constexpr int kWorkerExitUsage = 64;         // bad command line

enum class WorkerMode { kInstance, kTemplate, kZygote };

struct WorkerOptions {
  WorkerMode mode = WorkerMode::kInstance;
  std::string model_dir;  // empty for a zygote
  std::string cgroup_dir;  // memory cgroup to join first; empty = none
  int fd = -1;  // connected stream socket to the server, owned by the worker
  // RealClock time at main() entry, the start of runtime_init_us; -1 means
  // "when RunWorker starts".
  Micros start_us = -1;
  // The sandbox (src/sandbox/sandbox.h), applied right after start, before
  // the model loads; a spawner applies it once and its instances inherit
  // it. Off unless asked for: the runtime always passes --sandbox.
  sandbox::SandboxMode sandbox = sandbox::SandboxMode::kOff;
  std::optional<sandbox::WorkerUser> user;  // --user UID:GID; nullopt = keep the uid
  std::string writable_dir;                 // --writable-dir DIR: the one writable path
  // --standby (zygote only): keep one child forked ahead of demand for the
  // next instance (its Forked on the control socket, so the server can move
  // it into a memory cgroup before it is needed).
  bool zygote_standby = false;
};

// Parses `[--template|--zygote [--standby]] --model-dir DIR --fd N [--cgroup DIR]` (also `--flag=VALUE`)
// and the sandbox's `--sandbox=on|off|no-seccomp`, `--user=UID:GID`, `--writable-dir=DIR`.
StatusOr<WorkerOptions> ParseWorkerArgs(int argc, const char* const* argv);

// Sets glibc's mmap threshold to 64 MiB and trim threshold to 1 GiB so
// activation buffers are reused instead of being returned to the kernel and
// faulted in again on every call. Call first thing in main().
void ConfigureWorkerMalloc();

// Runs the worker until the socket closes; returns the process exit code.
int RunWorker(const WorkerOptions& options);

// Runs a template (model_dir set) or zygote until its control socket closes;
// forked instances return from here only through _exit.
int RunSpawner(const WorkerOptions& options);

}  // namespace thaw
