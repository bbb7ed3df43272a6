#include "cli/commands.h"

#include "cli/init_command.h"

#include <algorithm>
#include <string>

namespace thaw::cli {

std::string ServeHelp() {
  return R"(  thaw serve [--repo DIR] [--models A,B] [--host ADDR] [--port N] [--memory-mb N] [--memory-charge measured|configured]
             [--eviction lru|cheapest_restart] [--template-starts N] [--template-admit-calls N]
             [--keep-alive-pool on|off]
             [--worker PATH]
             [--usage-log FILE] [--usage-log-buffer-mb N] [--prices NAME|FILE]
             [--memory-limits on|off] [--sandbox on|off|no-seccomp] [--prepare on|off] [--prepared-dir DIR]
             [--zygote-standby on|off] [--strict-readiness on|off]
             [--worker-user NAME|UID[:GID]] [--max-body-mb N]
             [--max-buffered-body-mb N] [--body-timeout-s S] [--idle-timeout-s S]
             [--offload-threads N] [--auth-tokens FILE] [--admin-port N] [--grpc-port N] [--modelmesh on|off]
             [--upstream URL]
             [--admin-host ADDR] [--allowed-host NAME] [--allowed-origin ORIGIN]
      Serve every model in the repository DIR over the KServe v2 REST API.
      --repo    model repository (default: ./examples/models, else the
                bundled examples of this build)
      --models  deploy only these models of the repository at start (as
                Triton's explicit model control); the others can be loaded
                through the repository API. A name not in the repository is
                an error (one pod per model: thaw deploy render)
      --host    address to listen on (default 127.0.0.1)
      --port    port to listen on (default 8080; 0 picks a free one)
      --memory-mb  budget for the memory of live instances and templates
                (default: 80 % of RAM); a start over it first stops idle
                instances and templates of other models (--eviction), else
                gets 503
      --memory-charge  what an instance or template counts against it:
                measured (default: its model's highest memory cgroup peak
                + 25 %, at most memory_mb; memory_mb until measured or
                without --memory-limits) or configured (memory_mb; a
                template with its standby twice)
      --eviction  whom a start stops first: lru (default: least recently
                used) or cheapest_restart (the model whose start measured
                fastest)
      --template-starts  templates loading at once, all models (default 1;
                0: no limit); a template wanted beyond it waits, its model's
                instances start from the zygote meanwhile
      --template-admit-calls  a model's template starts once it has been
                called N times in a row, each within template_keep_alive_s
                of the last (default 2: a model called once loads no
                template; 1: at the first call); a provisioned floor or a
                pre-warm starts it at once
      --keep-alive-pool  on (default): the adaptive keep-alive plans of all
                models share one memory budget, what fixed keep-alive would
                hold for them all, so memory one model's plan saves can keep
                a busier model warm longer; off: each model keeps within
                its own
      --worker  the thaw-worker executable (default: beside thaw)
      --usage-log  append usage records (invocations, instances, provisioned
                intervals) to FILE as JSON lines (default usage.jsonl in
                $THAW_STATE_DIR, else $XDG_STATE_HOME/thaw, else
                ~/.local/state/thaw; the startup log says where;
                --usage-log '' keeps none)
      --usage-log-buffer-mb  records kept in memory while the usage log
                cannot be written (default 16); past it new records are
                dropped and counted (thaw_usage_records_dropped_total)
      --prices  price sheet for /v2/stats: aws-x86 (default), aws-arm64
                (AWS Lambda, US East) or a price sheet file (prices/README.md)
      --prepare  on (default): after deploy, prepare each model once (frozen,
                by content hash) in the background, so an instance started from
                the zygote loads that; off: it loads and freezes the model file
      --prepared-dir  keep models' prepared artifacts in DIR across runs
                (default: made again each run)
      --zygote-standby  on (default): the zygote keeps one child forked
                ahead of demand, already in a memory cgroup, for the next
                instance it starts; off: each such start forks then and
                waits for the move into its cgroup
      --strict-readiness  on (default, as Triton): /v2/health/ready is 200
                only while every model can serve (400 naming those that
                cannot); off: 200 once started, whatever one model's state
      --memory-limits  on (default): each instance is held to its memory_mb
                by a memory cgroup (needs root or a delegated cgroup; the
                startup log says whether it is enforced); off: not enforced
      --sandbox  confine workers (default on): only their own socket, an
                unprivileged uid, no_new_privs, a seccomp filter, no network,
                a read-only file system but their run directory; 'off' for
                debugging, 'no-seccomp' to measure the filter's cost
      --worker-user  the user (and group) workers run as (default when root:
                nobody:nogroup; a server that is not root keeps its own)
      --max-body-mb  largest request body (default 256; larger: 413)
      --max-buffered-body-mb  bytes of all request bodies still arriving
                (default 512); the request that passes it gets 503
      --body-timeout-s  a body not complete this long after its header gets
                408 and the connection closes (default 30)
      --idle-timeout-s  keep-alive connections idle this long close (default 300)
      --offload-threads  threads that decode and encode large bodies (over
                64 KiB) and read /status memory, off the event loop (default 2;
                0: all on the event loop)
      --auth-tokens FILE  require 'Authorization: Bearer <token>' on every
                route but /v2/health/*; FILE has one '<token> <scope>' per
                line, scope metrics, infer or admin (each implies the ones
                before it); '#' comments; keep it chmod 600
      --grpc-port N  also serve the Open Inference Protocol over gRPC
                (inference.GRPCInferenceService, Triton's port is 8001) on
                --host:N; same models, checks, errors and tokens as REST
                (with --admin-port, its repository RPCs are refused: the
                admin port is REST only)
      --upstream URL  edge offload to a central thaw (http://host:port):
                requests for models not deployed here go there, and infer
                requests whose predicted wait here would pass the model's
                slo_p99_ms (or that the full queue would refuse) go there
                instead; responses say served_by local or upstream
      --modelmesh on  also serve KServe ModelMesh's model-runtime API
                (mmesh.ModelRuntime: loadModel from a model directory,
                unloadModel, modelSize, runtimeStatus) on the gRPC port, for
                a ModelMesh serving runtime (default off; it loads any
                directory the server can read: only the mesh should reach it)
      --admin-port N  serve the admin routes (status, warm, settings,
                repository) only on this port, and inference only on --port
      --admin-host ADDR  address of the admin port (default 127.0.0.1)
      --allowed-host NAME  (repeatable) a host name clients use in URLs, for
                POST/PUT requests (IP addresses and localhost always pass)
      --allowed-origin ORIGIN  (repeatable) a browser origin such as
                https://dash.example.com that may send POST/PUT requests
                (default: none)
)";
}

std::string LoadHelp() {
  return R"(  thaw load --url http://HOST:PORT --model NAME --request FILE --rate RPS --duration-s S
            [--arrivals poisson|constant] [--seed N] [--max-connections N] [--warmup-s S]
            [--drain-timeout-s S] [--json FILE] [--csv FILE] [--protocol http|grpc]
            [--tensors json|binary]
      Open-loop load: POST FILE to /v2/models/NAME/infer at RPS requests per
      second for S seconds, each at its scheduled time whether or not earlier
      ones were answered, and report throughput, latency percentiles (from
      the scheduled time, 2xx only), status counts and mean batch_size.
      --protocol grpc  call ModelInfer instead (thaw serve --grpc-port; --url
                  names that port): FILE's tensors go as raw_input_contents,
                  all calls on one HTTP/2 connection, --max-connections caps
                  the calls in flight; gRPC codes count as their REST status
      --tensors binary  send FILE's tensors in the binary tensor extension
                  (Inference-Header-Content-Length) instead of JSON
      --arrivals  poisson (default; exponential gaps from --seed, default 1)
                  or constant (exactly 1/RPS apart)
      --max-connections  keep-alive connections at most (default 256); a
                  request due when all are busy is not sent and counted as
                  client_overload: then the generator, not the server, was
                  the limit
      --warmup-s  send at the same rate for S seconds first; not reported
      --drain-timeout-s  after the last send, wait this long for responses
                  (default 30); the rest count as timeouts
      --json FILE  write the summary as JSON;  --csv FILE  one row per
                  request: offset_us,latency_us,status,batch_size,outcome,send_lateness_us
      Sends THAW_TOKEN, if set, as 'Authorization: Bearer' (for a server
      started with --auth-tokens).
)";
}

std::string CostHelp() {
  return R"(  thaw cost [--usage-log FILE] [--since WHEN] [--prices NAME|FILE] [--json]
      What the usage in the usage log would cost on a serverless provider:
      per model and in total, invocations, 2xx, cold starts, p50/p90/p99
      latency of 2xx, mean batch rows, GB-s (on-demand, init, provisioned,
      idle-warm), dollars and dollars per 1 M 2xx inferences; then memory
      held in GB-s (busy, idle-warm, provisioned, template, standby, zygote:
      the platform's row) and its host cost, next to the dollars, not in them.
      --usage-log  the log written by thaw serve (default: where thaw serve
                writes it, see thaw serve --help)
      --since   only usage from WHEN on: an ISO-8601 UTC time
                (2026-11-28T20:00:00Z) or a duration before now (30s, 15m,
                2h, 7d); default: everything
      --prices  aws-x86 (default), aws-arm64 or a price sheet file
      --json    print JSON instead of the table
)";
}

std::string SimulateHelp() {
  return R"(  thaw simulate (--trace FILE | --azure FILE [--azure-top N] [--spread uniform|poisson]
                 | --suite NAME | --poisson RATE --duration-s S) (--profile FILE --config FILE)...
                [--start-times-from FILE]... [--map FUNCTION=MODEL]... [--per-function] [--time-scale X] [--from-s S] [--to-s S]
                [--prices NAME|FILE] [--seed N] [--json]
                [--memory-mb N] [--memory-charge measured|configured] [--eviction lru|cheapest_restart]
                [--template-starts N] [--template-admit-calls N] [--keep-alive-pool on|off]
      Run a trace through the server's own policies in virtual time (each
      model of a --config, with the times of its --profile, written by
      thaw profile) and report what thaw cost reports, per model and in
      total, plus cold starts, 429s, 504s and instance-seconds.
      Deterministic per seed.
      --map     which model a trace function (CSV model column, Azure
                function) calls: explicit --map, else the model of the same
                name, else --map '*=MODEL', else the only model
      --trace   plain CSV: timestamp_s[,model] per line
      --azure   Azure Functions 2019 invocations_per_function file; its
                --azure-top N busiest functions (default 1)
      --suite   a trace of the development suite (docs/trace_suite.md,
                seeded by --seed): azure-mix, timers, bursty-inference,
                diurnal-http, sparse-poisson, drift
      --per-function  each trace function is its own model named after it:
                a copy of the --config (and its profile) whose model name is
                the function's up to its last '-' (fraud-0042: fraud), else
                of the first
      --nodes N  a fleet of N machines, models placed by a ModelMesh-like
                router (memory-bounded per --node-memory-mb, default 16384;
                least recently used unloaded; a model above --copy-rate
                calls/s per copy, default 20, gets another copy): each
                machine's cold starts, p99, memory held and cost, and the
                fleet's (sim/fleet.h)
      --from-s, --to-s  only this window of the trace (in trace seconds,
                after --time-scale), shifted to start at 0
      --time-scale  trace seconds per simulated second (default 1)
      --rows    rows (dim 0) per request, as in the requests replayed (default 1)
      --start-times-from  a measured profile (thaw profile MODEL) whose
                start times fill those the --profile of the same model lacks:
                one from thaw profile --from-usage has only the start paths
                its server used, and a config whose start path its profile
                has no time for is refused
      --memory-mb, --memory-charge, --eviction, --template-starts,
      --template-admit-calls, --keep-alive-pool  as for thaw serve (default budget: unlimited); measured charges come
                from the profiles' memory_kb (cgroup_peak, else private)
)";
}

std::string PlanHelp() {
  return R"(  thaw plan (trace flags as for simulate) --profile FILE --config FILE --slo-p99-ms X
            [--out FILE] [--prices NAME|FILE] [--seed N] [--memory-grid MB,..]
            [--max-concurrency-grid N,..] [--min-instances-grid N,..]
            [--keep-alive-grid S,..] [--template-keep-alive-grid S,..] [--threads-grid N,..]
            [--keep-alive-policies fixed,adaptive,histogram]
            [--bill-weight W] [--host-weight W] [--accuracy-floor 0.9|base-1pt]
      Simulate your config and a grid of settings (memory_mb and so threads,
      batching, max_concurrency, provisioned instances, keep-alive policy
      and time, template keep-alive; the config's own values are always in
      it) on the trace,
      print the Pareto front of cost vs p99, your config, the cheapest
      meeting the p99 target and the next best, and write the cheapest as a
      config.json thaw serve accepts (--out, default <model>.plan.json).
      Cost = bill weight x the Lambda-style bill + host weight x the host
      cost of the memory held (both 1 by default; 0 leaves one out).
      Defaults: --memory-grid 128,256,512,1024,1769,3538 (sizes below the
      profile's measured RSS + 25 % are skipped), --max-concurrency-grid 1
      (and the config's, and twice it), --min-instances-grid 0,1,2,4,
      --keep-alive-grid 0,10,60,600 (fixed; adaptive against 600 s and
      the config's), --keep-alive-policies fixed,adaptive (histogram too if
      named), --threads-grid: the profile's thread counts (each up to one
      per 1,769 MB), --template-keep-alive-grid 60,300 (template path
      only). Also simulates your config always on, provisioned for its peak,
      for comparison. Simulations use every core. Shows progress on a
      terminal.
      --accuracy-floor  also choose among the model's variants (thaw
                optimize; each needs its profile.json from thaw variants
                --measure): plan each, keep those whose test accuracy is at
                least 0.9 (absolute) or at most 1 point below the base
                (base-1pt), and write the cheapest meeting the target.
)";
}

std::string ReplayHelp() {
  return R"(  thaw replay (trace flags as for simulate) --url http://HOST:PORT
              (--model NAME --request FILE | (--target MODEL=FILE)... [--map FUNCTION=MODEL]...)
              [(--profile FILE --config FILE)... [--rows N]]
      Send the trace's requests to a running server at their times (open loop,
      with thaw load's generator; --time-scale compresses), then print the
      load summary and the server's own report (/v2/models/NAME/usage, or
      /v2/stats with --target), to compare with thaw simulate. With
      --target, each trace function's requests go to a model as --map
      routes them (as for simulate) with that model's request file.
      Use a fresh server: stats count from its start. The report is the
      table thaw simulate and thaw cost print.
      --profile FILE --config FILE (as for simulate, repeatable)  also
                simulate the same trace and print simulated and replayed
                side by side, with the differences (--rows as for simulate)
      Sends THAW_TOKEN, if set, as 'Authorization: Bearer' (for a server
      started with --auth-tokens).
)";
}

std::string ProfileHelp() {
  return "  thaw profile MODEL [--repo DIR] [--request FILE] [--out FILE] [--batch-sizes 1,2,4,8,16]\n"
         "               [--threads 1,2] [--paths exec,zygote,template] [--reps N] [--spread-reps N]\n"
         "               [--gap-ms MS] [--cold-reps N] [--served-s S] [--served-rates R,..]\n"
         "  thaw profile MODEL --from-usage FILE [--out FILE]\n"
         "      Measure MODEL on this machine with real workers: the round trip of an\n"
         "      execution per batch size and thread count (median of --reps, 30), its\n"
         "      distribution (--spread-reps single-row executions, 300), the cold start\n"
         "      per start path, and a warm instance's memory; write a profile for thaw\n"
         "      simulate (--out, default <MODEL>.profile.json; --out - prints it to\n"
         "      stdout) and print a summary: p50/p99 per batch size, start times,\n"
         "      memory, and the file written. Executions are --gap-ms apart\n"
         "      (5): an instance waits idle between requests, as under real traffic,\n"
         "      and waking it is part of the round trip. Then the model is served: a thaw\n"
         "      serve of it gets --served-s (60; 0 skips) of Poisson traffic over HTTP,\n"
         "      a phase at each of --served-rates (200,50,5 per second; phases last in\n"
         "      proportion to 1/sqrt(rate)), and the round trips its usage log shows\n"
         "      (the HTTP side and event loop included, and how they grow with the idle\n"
         "      gap before them) give the distribution and add their overhead to every\n"
         "      batch size. A progress bar shows on a terminal.\n"
         "      --from-usage builds the profile from a live server's usage log instead\n"
         "      (thaw serve --usage-log): the round trips and cold starts production saw.\n";
}

std::string OptimizeHelp() {
  return R"(  thaw optimize MODEL [--repo DIR] [--method all|M[,M...]] [--epochs N] [--sparsity S]
      Make smaller variants of MODEL, each a model directory of its own,
      <repo>/<MODEL>-<method>, with variant.json: how it was made, its file
      size and parameters, and its test accuracy beside the base's, both
      measured on the base's held-out test split. Methods (all: those that
      apply to the model):
        int8-dynamic     int8 Linear weights (MLP, text encoder)
        int8-static      post-training static int8, calibrated (CNN)
        prune-magnitude  global L1 pruning to --sparsity + fine-tune (CNN)
        prune-channels   structured: drops --sparsity of each block's
                         expansion channels + fine-tune (CNN)
        distill          a smaller student trained on the model's outputs (CNN)
        distill-int8     the student, then int8-static (CNN)
      Runs models/optimize.py on Debian's python3-torch; seeded.
      --epochs N        training epochs (default: distill 8 CNN, 3 encoder; fine-tune 1)
      --sparsity S      share removed by pruning, in (0, 1) (default 0.5)
      --out-root DIR    where variant directories go (default: the repository)
      --python PATH     the interpreter (default /usr/bin/python3)
      --request FILE --references-dir DIR
                        also write each variant's outputs for this v2 request
                        to DIR/<variant>.json
)";
}

std::string VariantsHelp() {
  return R"(  thaw variants MODEL [--repo DIR] [--measure] [--json]
      MODEL and its variants (directories with a variant.json naming it as
      their base, as thaw optimize writes them) side by side: method, file
      size, parameters, test accuracy and points lost against MODEL.
      --measure         also profile each on this machine (real workers):
                        warm round trip at 1 and 8 rows, cold start from a
                        template and from a fresh process, private memory
                        of a warm instance; write <model>/profile.json (for
                        thaw plan --accuracy-floor); price a Poisson stream
                        with each model's config in the simulator: GB-s and
                        $ per 1 M requests; ratios against MODEL
      --request FILE    the v2 request every variant is measured with
                        (default: <repo>/../requests/MODEL.json)
      --reps N          executions per batch size (default 100)
      --cold-reps N     cold starts per start path (default 5)
      --served-s S      thaw profile's HTTP-served phase (default 0: off)
      --rate R --duration-s S  the priced stream (default 10 req/s, 3600 s)
)";
}

std::string DeployHelp() {
  return R"(  thaw deploy render --target knative|kserve|lambda|modelmesh [--repo DIR] [--models A,B] [--out DIR]
                     [--image REF] [--namespace NS] [--max-scale N] [--pod-overhead-mb N]
                     [--max-revision-timeout-s N] [--storage-uri URI] [--capacity-mb N]
      Write deployment files for each model of the repository into --out
      (default ./thaw-TARGET): a Knative Service per model, or KServe's
      ServingRuntime `thaw` and an InferenceService per model (protocol v2),
      each running the image of scripts/image (--image, default
      localhost/thaw:latest); or for lambda one CloudFormation template
      (template.json) with a function, a function URL and, for
      min_instances, provisioned concurrency per model; or for modelmesh a
      multi-model ServingRuntime `thaw-modelmesh` (thaw --modelmesh on,
      --capacity-mb of models per pod, default 4096) and an
      InferenceService per model placed by ModelMesh. Every setting of config.json is mapped to the
      engine's knob or has none (thaw deploy mappings). --max-scale caps
      pods per model (default: the engine's); --pod-overhead-mb is the pod
      memory above max_concurrency x memory_mb (default 512); kserve needs
      --storage-uri, a repository holding the model's directory (modelmesh:
      each model at URI/<model>).
  thaw deploy mappings --target knative|kserve|lambda|modelmesh
      The table of thaw settings and the engine's knobs (Markdown).
)";
}

namespace {

std::string VersionHelp() { return "  thaw version\n      Print the version.\n"; }

// One entry per command, in the order thaw --help lists them.
constexpr CommandDoc kCommands[] = {
    {"serve", "serve a model repository over KServe v2 REST (and gRPC)", ServeHelp},
    {"init", "make a model directory (config.json, sample request) for your TorchScript file", InitHelp},
    {"load", "open-loop load against a running server: throughput, latency, failures", LoadHelp},
    {"cost", "what the usage log of thaw serve would cost on a serverless provider", CostHelp},
    {"profile", "measure a model on this machine for simulate and plan", ProfileHelp},
    {"simulate", "run a trace through thaw's policies in virtual time", SimulateHelp},
    {"plan", "choose a model's config for a trace and a p99 target", PlanHelp},
    {"replay", "send a trace to a running server; compare with simulate", ReplayHelp},
    {"optimize", "make smaller variants of a model (int8, pruned, distilled)", OptimizeHelp},
    {"variants", "a model and its variants side by side", VariantsHelp},
    {"deploy", "write Knative, KServe, Lambda or ModelMesh deployment files", DeployHelp},
    {"version", "print the version", VersionHelp},
};

}  // namespace

std::span<const CommandDoc> Commands() { return kCommands; }

const CommandDoc* FindCommand(std::string_view name) {
  for (const CommandDoc& command : kCommands)
    if (command.name == name) return &command;
  return nullptr;
}

std::string HelpText() {
  std::string text =
      "thaw: serverless inference for machine-learning models on one machine.\n\n"
      "Usage: thaw COMMAND [flags]\n\nCommands:\n";
  size_t width = 0;
  for (const CommandDoc& command : kCommands) width = std::max(width, command.name.size());
  for (const CommandDoc& command : kCommands)
    text += "  " + std::string(command.name) + std::string(width + 3 - command.name.size(), ' ') +
            std::string(command.summary) + "\n";
  text +=
      "\nthaw CMD --help (or thaw help CMD) for more: that command's usage and flags.\n"
      "Logs go to stderr, one line per event; THAW_LOG_LEVEL=debug|info|warning|error.\n";
  return text;
}

std::string CommandHelp(std::string_view name) {
  const CommandDoc* command = FindCommand(name);
  if (command == nullptr) return "";
  return "Usage:\n" + command->help();
}

}  // namespace thaw::cli
