// Command-line parsing for the `thaw` binary. Parsing is separate from
// running so it can be tested; errors are kInvalidArgument with a message
// that names the offending flag.
#pragma once

#include <cstdint>
#include <optional>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "cli/commands.h"
#include "load/arrivals.h"
#include "sandbox/sandbox.h"
#include "sched/scheduler.h"

namespace thaw::cli {

// How the node's scheduler spends its memory budget and template starts
// (sched::SchedulerOptions): the same flags for thaw serve and thaw simulate.
struct NodeMemoryFlags {
  // What counts against the budget; measured needs enforced memory limits.
  sched::MemoryCharge memory_charge = sched::MemoryCharge::kMeasured;
  policy::EvictionOrder eviction_order = policy::EvictionOrder::kLeastRecentlyUsed;
  int template_starts = 1;       // templates loading at once; 0 = no limit
  int template_admit_calls = 2;  // calls in a row before a model's template starts
  bool keep_alive_pool = true;   // adaptive keep-alive plans share the node's budget
};

struct ServeOptions {
  std::string repo;         // model repository; empty = the bundled examples
  std::vector<std::string> models;  // deploy only these at start (others stay loadable); empty = all
  std::string host = "127.0.0.1";
  uint16_t port = 8080;
  std::string worker_path;  // empty = thaw-worker beside the thaw binary
  int64_t memory_mb = 0;    // node memory budget for instances and templates; 0 = 80 % of RAM
  NodeMemoryFlags node;     // --memory-charge, --eviction, --template-starts, --template-admit-calls
  std::string usage_log_path;  // usage records as JSON lines; ParseCommandLine's default: DefaultUsageLogPath(); empty = keep no log
  int64_t usage_log_buffer_mb = 16;  // records kept in memory while the log cannot be written; >= 1
  std::string prices = "aws-x86";  // price sheet for /stats: aws-x86, aws-arm64 or a file (metering/price_sheet.h)
  std::string prepared_dir;  // prepared artifacts kept across runs; empty = per run (runtime/preparations.h)
  bool prepare = true;       // --prepare on|off: prepare models' artifacts in the background
  bool zygote_standby = true;  // --zygote-standby on|off (RuntimeOptions::zygote_standby)
  bool strict_readiness = true;  // --strict-readiness on|off (V2HandlerOptions::strict_readiness)
  bool modelmesh = false;        // --modelmesh on: ModelMesh's model-runtime API on the gRPC port
  std::string upstream;          // --upstream http://host:port: edge offload to a central thaw; empty = off
  bool memory_limits = true;  // enforce memory_mb with cgroups where the kernel allows (cgroup/memory_cgroup.h)
  sandbox::SandboxMode sandbox = sandbox::SandboxMode::kOn;  // --sandbox on|off|no-seccomp
  std::optional<sandbox::WorkerUser> worker_user;  // --worker-user; nullopt = nobody/nogroup when root
  // HTTP limits (server/http_server.h).
  int64_t max_body_mb = 256;           // one request body
  int64_t max_buffered_body_mb = 512;  // all request bodies still arriving
  int64_t body_timeout_s = 30;         // a body not complete this long after its header: 408
  int64_t idle_timeout_s = 300;        // keep-alive connections waiting for a request
  int offload_threads = 2;             // decode/encode of large bodies and /status memory, off the event loop
  // Access (server/auth.h).
  std::string auth_tokens_path;     // "<token> <scope>" per line; empty = no tokens required
  std::optional<uint16_t> grpc_port;   // the gRPC service (grpc/grpc_server.h); none = REST only
  std::optional<uint16_t> admin_port;  // a separate listener for admin routes; none = all routes on --port
  std::string admin_host = "127.0.0.1";
  std::vector<std::string> allowed_hosts;    // Host names accepted on state-changing requests
  std::vector<std::string> allowed_origins;  // Origin values accepted on state-changing requests
  // Lambda runtime mode (`thaw lambda`, lambda/lambda_runtime.h): events from
  // this Runtime API (host:port) to `lambda_model`; empty = off.
  std::string lambda_runtime_api;
  std::string lambda_model;
  int64_t lambda_memory_size_mb = 0;
};

// `thaw load`: an open-loop load generator (src/load).
struct LoadCommandOptions {
  std::string url;            // http://host:port
  std::string model;
  std::string request_path;   // the request body, sent with every request
  enum class Protocol { kHttp, kGrpc };
  Protocol protocol = Protocol::kHttp;  // kGrpc: ModelInfer to the url's host:port
  bool binary_tensors = false;  // HTTP: the request's tensors in the binary extension
  double rate_per_s = 0;
  double duration_s = 0;
  load::ArrivalProcess arrivals = load::ArrivalProcess::kPoisson;
  uint64_t seed = 1;
  int max_connections = 256;
  double warmup_s = 0;
  double drain_timeout_s = 30;
  std::string json_path;      // empty = no JSON file
  std::string csv_path;       // empty = no CSV file
};

// `thaw cost --since WHEN`: a wall time, or a duration before the moment
// the command runs (resolved then, since parsing reads no clock).
struct Since {
  enum class Kind { kAll, kWallTime, kBeforeNow };
  Kind kind = Kind::kAll;
  Micros wall_us = 0;    // kWallTime: microseconds since the Unix epoch, UTC
  Micros before_us = 0;  // kBeforeNow: how long before now
};

// WHEN: an ISO-8601 UTC time, YYYY-MM-DDTHH:MM[:SS[.ffffff]]Z
// ("2026-11-28T20:00:00Z"), or a positive whole number of s, m, h or d
// ("30s", "15m", "2h", "7d"; at most 100 years).
StatusOr<Since> ParseSince(std::string_view text);
// The wall time `since` stands for when it is now_wall_us; kAll -> the
// smallest Micros (everything).
Micros SinceWallUs(const Since& since, Micros now_wall_us);

// `thaw cost`: a cost report from the usage log (src/metering).
struct CostCommandOptions {
  std::string usage_log_path;  // ParseCommandLine's default: DefaultUsageLogPath(), where thaw serve writes
  Since since;
  std::string prices = "aws-x86";  // a built-in sheet name or a price sheet file
  bool json = false;               // JSON instead of the table
};

// `thaw simulate`: a trace through the server's policies in virtual time (src/sim).
struct SimulateCommandOptions {
  std::string trace_path;        // plain CSV (timestamp_s[,model]) or, with azure, an Azure Functions 2019 file
  bool azure = false;            // --azure FILE instead of --trace FILE
  size_t azure_top = 1;          // Azure: the N busiest functions
  std::string spread = "poisson";  // Azure: arrivals within a minute: uniform or poisson
  double time_scale = 1;         // trace seconds per simulated second (60: a minute lasts a second)
  double poisson_rate_per_s = 0; // --poisson RATE --duration-s S instead of a file
  double duration_s = 0;
  std::string suite;             // --suite NAME: a trace of the suite (trace/suite.h) instead of a file
  // --per-function: each trace function is its own model, a copy of a --config: the one whose model name is the
  // function's name up to its last '-' ("fraud-0042": fraud), else the first.
  bool per_function = false;
  // --nodes N: a fleet of N machines with ModelMesh-like placement (sim/fleet.h); 0 = one machine, no router.
  int nodes = 0;
  int64_t node_memory_mb = 16384;  // --node-memory-mb: each machine's memory for models
  double copy_rate_per_s = 20;     // --copy-rate: calls/s per copy above which a model gets another copy
  double from_s = 0, to_s = 0;   // --from-s/--to-s: only [from, to) of the trace, shifted to 0; to 0 = the end
  // Required, one or more (plan: one): each model's config.json (the
  // server's format) and profile; profiles pair with configs by their
  // "model" field, or by being the only one.
  std::vector<std::string> profile_paths;
  std::vector<std::string> config_paths;
  // --start-times-from FILE: a measured profile whose start_us fill the entries
  // the --profile of the same model lacks (one from thaw profile --from-usage).
  std::vector<std::string> start_times_from_paths;
  std::vector<std::string> routes;  // --map FUNCTION=MODEL: which model a trace function calls
  std::string prices = "aws-x86";
  uint64_t seed = 1;
  bool json = false;
  int64_t rows_per_request = 1;  // dim 0 of each simulated request (the profile is by rows)
  int64_t memory_mb = 0;         // node memory budget as thaw serve --memory-mb; 0 = unlimited
  NodeMemoryFlags node;          // as for thaw serve
  // `thaw plan` only (same trace, profile and config flags):
  double slo_p99_ms = 0;  // required for plan
  std::string out_path;   // where the chosen config goes; empty = <model>.plan.json
  // --accuracy-floor (sim::ParseAccuracyFloor, checked when parsed): also
  // choose among the model's variants; empty = the model as given.
  std::string accuracy_floor;
  // The grid (sim::PlanOptions; empty = its default), comma-separated on the
  // command line; the config's own values are always added.
  std::vector<int64_t> plan_memory_mb;        // --memory-grid
  std::vector<int> plan_max_concurrency;      // --max-concurrency-grid
  std::vector<int> plan_min_instances;        // --min-instances-grid
  std::vector<int64_t> plan_keep_alive_s;     // --keep-alive-grid
  std::vector<int64_t> plan_template_keep_alive_s;  // --template-keep-alive-grid
  std::vector<int> plan_threads;              // --threads-grid
  std::vector<std::string> plan_keep_alive_policies;  // --keep-alive-policies (fixed is always in)
  double bill_weight = 1;                     // --bill-weight: cost = bill_weight x bill
  double host_weight = 1;                     // --host-weight:  + host_weight x host cost
  // `thaw replay` only (same trace flags; no profile or config):
  std::string url;            // http://host:port of a running thaw serve
  std::string model;          // the model every request of the trace goes to
  std::string request_path;   // the request body sent each time
  // Or, per model, --target MODEL=REQUEST_FILE (routed by --map): (model, request file).
  std::vector<std::pair<std::string, std::string>> targets;
  int max_connections = 1024;
};

enum class CommandKind { kHelp, kVersion, kServe, kLoad, kCost, kSimulate, kPlan, kReplay };

struct Command {
  CommandKind kind = CommandKind::kHelp;
  std::string help_topic;  // kHelp: the command whose help was asked for ("thaw simulate --help"); empty = all
  ServeOptions serve;
  LoadCommandOptions load;
  CostCommandOptions cost;
  SimulateCommandOptions simulate;
};

// "a,b,,c" -> {"a", "b", "", "c"}: every piece, empty ones too (callers
// refuse them with their flag's message); "" -> {""}.
std::vector<std::string> SplitCommas(std::string_view text);

// True when args ask for help: none, --help/-h, "help [CMD]", or a command
// of Commands() with --help/-h among its flags. ParseCommandLine then gives
// kHelp (or an error for "help NOT-A-COMMAND").
bool AsksForHelp(const std::vector<std::string>& args);

// Where thaw serve keeps its usage log unless --usage-log says otherwise,
// and where thaw cost reads it: $THAW_STATE_DIR/usage.jsonl, else
// $XDG_STATE_HOME/thaw/usage.jsonl, else $HOME/.local/state/thaw/usage.jsonl,
// else /tmp/thaw-state/usage.jsonl (never the current directory, which is
// often a checkout). Empty variables count as unset. `getenv` is the
// environment to read (a test passes its own).
std::string DefaultUsageLogPath(const std::function<const char*(const char*)>& getenv);
std::string DefaultUsageLogPath();  // of this process's environment

// args excludes argv[0]. Parses serve, load, cost, simulate, plan, replay,
// version and every help request; other commands (profile, deploy, ...)
// are main's. Errors name the flag or command and the help to read.
StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args);

// The model repository a command uses: `repo` if given, else
// ./examples/models when it exists, else the source tree's examples.
std::string RepoOrDefault(const std::string& repo);

// The loop of the commands that take one MODEL and flags with a value
// (profile, optimize, variants): `flag(name, value, &ok)` returns false for
// a flag it does not know and sets ok = false for a bad value; `boolean`
// (may be empty) consumes flags without a value. False with an error:
// "unexpected argument 'X'", "X needs a value", "unknown flag 'X' for
// 'thaw COMMAND'", "X: bad value 'V'", "thaw COMMAND needs a MODEL".
bool ParseModelAndFlags(
    const std::string& command, const std::vector<std::string>& args, std::string* model, std::string* error,
    const std::function<bool(const std::string& flag, const std::string& value, bool* ok)>& flag,
    const std::function<bool(const std::string& flag)>& boolean = {});

// `part` of `whole` as a percentage with two decimals ("16.67 %"); "< 0.01 %"
// for a nonzero share below that, "0 %" when whole is 0.
std::string PercentText(double part, double whole);
// `value` with `decimals` digits after the point ("155.7").
std::string DecimalText(double value, int decimals);

}  // namespace thaw::cli
