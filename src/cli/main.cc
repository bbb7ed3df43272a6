// The `thaw` binary. It does not link any inference engine, so it starts in
// milliseconds; engines live in thaw-worker processes.
#include <signal.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <thread>
#include <boost/asio/steady_timer.hpp>
#include <algorithm>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "base/format.h"
#include "base/json_writer.h"
#include "base/clock.h"
#include "base/log.h"
#include "cgroup/memory_cgroup.h"
#include "cli/cli.h"
#include "cli/profile_command.h"
#include "cli/variants_command.h"
#include "cli/deploy_command.h"
#include "cli/init_command.h"
#include "lambda/lambda_runtime.h"
#include "server/upstream_client.h"
#include "cli/progress.h"
#include "load/arrivals.h"
#include "load/load_generator.h"
#include "load/report.h"
#include "metering/meter.h"
#include "metering/price_sheet.h"
#include "metering/usage_log.h"
#include "metering/usage_stats.h"
#include "protocol/v2.h"
#include "repo/model_config.h"
#include "runtime/runtime.h"
#ifdef THAW_WITH_GRPC
#include "grpc/grpc_load.h"
#include "grpc/grpc_server.h"
#endif
#include "server/auth.h"
#include "server/http_server.h"
#include "server/metrics.h"
#include "server/v2_handler.h"
#include "sim/planner.h"
#include "sim/profile_json.h"
#include "sim/routing.h"
#include "sim/simulator.h"
#include "sim/fleet.h"
#include "sim/variant_choice.h"
#include "trace/azure_trace.h"
#include "trace/csv_trace.h"
#include "trace/suite.h"
#include "trace/synthetic.h"

namespace {

namespace fs = std::filesystem;

fs::path ExecutableDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::current_path() : self.parent_path();
}

int Serve(const thaw::cli::ServeOptions& options, thaw::Micros process_start_us) {
  using thaw::LogEvent;
  using thaw::LogLevel;
  using thaw::LogValue;
  using thaw::LogFields;
  const std::string repo = thaw::cli::RepoOrDefault(options.repo);
  const std::string worker =
      options.worker_path.empty() ? (ExecutableDir() / "thaw-worker").string() : options.worker_path;
  if (::access(worker.c_str(), X_OK) != 0) {
    std::cerr << "thaw: worker executable '" << worker << "' not found; pass --worker\n";
    return 2;
  }
  auto scan = thaw::ScanRepository(repo);
  if (!scan.ok()) {
    std::cerr << "thaw: " << scan.status().message() << "\n";
    return 2;
  }
  if (!options.models.empty()) {  // --models: only these at start, each one in the repository (valid or not)
    auto named = [&](const std::string& name) {
      return std::find(options.models.begin(), options.models.end(), name) != options.models.end();
    };
    for (const std::string& name : options.models) {
      const bool present = std::any_of(scan->models.begin(), scan->models.end(), [&](auto& m) { return m.name == name; }) ||
                           std::any_of(scan->errors.begin(), scan->errors.end(), [&](auto& e) { return e.model == name; });
      if (!present) {
        std::cerr << "thaw: --models: no model '" << name << "' in " << repo << "\n";
        return 2;
      }
    }
    std::erase_if(scan->models, [&](const thaw::ModelConfig& m) { return !named(m.name); });
    std::erase_if(scan->errors, [&](const thaw::RepositoryEntryError& e) { return !named(e.model); });
  }
  // Default budget: 80 % of physical memory.
  const int64_t memory_mb = options.memory_mb > 0
                                ? options.memory_mb
                                : static_cast<int64_t>(::sysconf(_SC_PHYS_PAGES)) * ::sysconf(_SC_PAGE_SIZE) / (1 << 20) * 8 / 10;
  auto prices = thaw::metering::LoadPriceSheet(options.prices);
  if (!prices.ok()) {
    std::cerr << "thaw: --prices: " << prices.status().message() << "\n";
    return 2;
  }
  if (const fs::path log_dir = fs::path(options.usage_log_path).parent_path();
      !options.usage_log_path.empty() && !log_dir.empty()) {
    std::error_code ignored;  // a directory that cannot be made fails the open below, naming the path
    fs::create_directories(log_dir, ignored);
  }
  // Small writes: one large write every few seconds would stall the event loop for milliseconds.
  auto meter = thaw::metering::Meter::Create(
      {.prices = *prices,
       .usage_log_path = options.usage_log_path,
       .log = {.flush_at_bytes = 64 << 10, .max_buffer_bytes = static_cast<size_t>(options.usage_log_buffer_mb) << 20}});
  if (!meter.ok()) {
    std::cerr << "thaw: --usage-log: " << meter.status().message();
    if (options.usage_log_path == thaw::cli::DefaultUsageLogPath())
      std::cerr << " (the default state directory: set THAW_STATE_DIR to a writable directory, or give --usage-log FILE)";
    std::cerr << "\n";
    return 2;
  }
  thaw::PrometheusMetrics metrics;
  thaw::InferenceStatistics inference_statistics;
  thaw::metering::UsageFanOut usage({&metrics, &inference_statistics, meter->get()});  // the meter keeps the record: last, so it gets it moved
  ::signal(SIGPIPE, SIG_IGN);
  boost::asio::io_context io;
  thaw::RealClock clock;
  // Outlives the runtime: removes this server's cgroups after its workers are gone.
  std::optional<thaw::cgroup::MemoryCgroups> memory_cgroups;
  std::string memory_limit = "not enforced (--memory-limits off)";
  if (options.memory_limits) {
    memory_cgroups.emplace();
    memory_limit = memory_cgroups->enforced() ? "enforced (" + memory_cgroups->description() + ")"
                                              : memory_cgroups->description();
    if (!memory_cgroups->enforced())
      LogEvent(LogLevel::kWarning, "memory_limit_not_enforced", LogFields({{"reason", LogValue(memory_cgroups->description())}}));
  }
  // Measured charges come from instances' memory cgroups: none, none to measure.
  const thaw::sched::MemoryCharge memory_charge = memory_cgroups && memory_cgroups->enforced()
                                                      ? options.node.memory_charge
                                                      : thaw::sched::MemoryCharge::kConfigured;
  thaw::Runtime runtime(io, clock,
                        thaw::RuntimeOptions{.worker_path = worker,
                                             .memory_budget_mb = memory_mb,
                                             .memory_charge = memory_charge,
                                             .eviction_order = options.node.eviction_order,
                                             .max_starting_templates = options.node.template_starts,
                                             .template_admit_calls = options.node.template_admit_calls,
                                             .keep_alive_pool = options.node.keep_alive_pool,
                                             .on_execution =
                                                 [&](const thaw::ExecutionRecord& e) {
                                                   metrics.OnExecution(e);
                                                   inference_statistics.OnExecution(e);
                                                 },
                                             .usage = &usage,
                                             .memory_cgroups = memory_cgroups ? &*memory_cgroups : nullptr,
                                             .sandbox = options.sandbox,
                                             .worker_user = options.worker_user,
                                             .prepared_dir = options.prepared_dir,
                                             .prepare = options.prepare,
                                             .zygote_standby = options.zygote_standby});
  for (const auto& error : scan->errors)
    LogEvent(LogLevel::kError, "model_invalid",
             LogFields({{"model", LogValue(error.model)}, {"error", LogValue(error.status.message())}}));
  for (auto& model : scan->models) {
    thaw::Status added = runtime.AddModel(model);
    if (!added.ok())
      LogEvent(LogLevel::kError, "model_invalid", LogFields({{"model", LogValue(model.name)}, {"error", LogValue(added.message())}}));
  }
  thaw::metering::Meter& usage_meter = **meter;
  thaw::Observability observability{
      .metrics = &metrics,
      .costs =
          [&] {
            std::vector<thaw::ModelCostTotals> costs;
            // Counters: from records only (an instance's usage so far, priced at a
            // charge that may be re-measured lower, could make them dip).
            for (const auto& row : usage_meter.Report().models)
              costs.push_back({.model = row.model,
                               .on_demand_gb_s = row.usage.on_demand_duration_gb_s,
                               .init_gb_s = row.usage.init_gb_s,
                               .provisioned_gb_s = row.usage.provisioned_capacity_gb_s,
                               .provisioned_duration_gb_s = row.usage.provisioned_duration_gb_s,
                               .idle_warm_gb_s = row.usage.idle_warm_gb_s,
                               .dollars = row.bill.total_usd,
                               .held = row.usage.held,
                               .host_dollars = row.bill.host_usd});
            return costs;
          },
      .stats_json = [&] { return usage_meter.StatsJson(runtime.RunningInstanceRecords()); },
      .model_stats_json = [&](const std::string& model) -> std::optional<std::string> {
        return usage_meter.ModelStatsJson(model, runtime.RunningInstanceRecords());
      },
      .usage_log = [&] { return usage_meter.log_health(); },
      .inference_statistics = &inference_statistics};
  // The usage log is written in batches, once a second (backing off to 30 s
  // while writes fail), and at exit.
  boost::asio::steady_timer usage_flush(io);
  std::function<void()> flush_usage_soon = [&] {
    usage_flush.expires_after(std::chrono::milliseconds(usage_meter.next_flush_delay_ms()));
    usage_flush.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      (void)usage_meter.Flush();  // failures are counted and logged by the meter
      flush_usage_soon();
    });
  };
  flush_usage_soon();
  thaw::AccessOptions access_options{.allowed_hosts = options.allowed_hosts,
                                     .allowed_origins = options.allowed_origins};
  if (!options.auth_tokens_path.empty()) {
    std::string warning;
    auto tokens = thaw::LoadTokenFile(options.auth_tokens_path, &warning);
    if (!tokens.ok()) {
      std::cerr << "thaw: --auth-tokens: " << tokens.status().message() << "\n";
      return 2;
    }
    if (!warning.empty()) {
      std::cerr << "thaw: warning: " << warning << "\n";
      LogEvent(LogLevel::kWarning, "auth_tokens_readable", LogFields({{"warning", LogValue(warning)}}));
    }
    access_options.tokens = std::move(tokens).value();
  }
  const thaw::AccessPolicy access(std::move(access_options));
  // Without tokens anyone who can reach the port controls the server.
  for (const std::string& address : {options.host, options.admin_port ? options.admin_host : options.host}) {
    if (access.requires_tokens() || thaw::IsLoopbackAddress(address)) continue;
    const std::string warning = "listening on " + address +
                                ", which is not a loopback address, without --auth-tokens: anyone who can reach it "
                                "can run, reconfigure, load and unload models";
    std::cerr << "\n*** thaw: WARNING: " << warning << " ***\n\n";
    LogEvent(LogLevel::kWarning, "no_auth_on_network", LogFields({{"address", LogValue(address)}}));
    break;
  }
  thaw::V2HandlerOptions handler_options{.io = &io,
                                               .offload_threads = options.offload_threads,
                                               .max_inflated_body_bytes = static_cast<size_t>(options.max_body_mb) << 20,
                                               .strict_readiness = options.strict_readiness};
  // The HTTP limits hold on both listeners.
  auto http_options = [&](const std::string& host, uint16_t port) {
    return thaw::HttpServerOptions{.host = host,
                                   .port = port,
                                   .max_body_bytes = static_cast<size_t>(options.max_body_mb) << 20,
                                   .max_buffered_body_bytes = static_cast<size_t>(options.max_buffered_body_mb) << 20,
                                   .idle_timeout = std::chrono::seconds(options.idle_timeout_s),
                                   .body_read_timeout = std::chrono::seconds(options.body_timeout_s)};
  };
  std::optional<thaw::UpstreamClient> upstream;
  if (!options.upstream.empty()) {
    const thaw::UpstreamOptions upstream_options{.url = options.upstream};
    if (thaw::Status valid = thaw::Validate(upstream_options); !valid.ok()) {
      std::cerr << "thaw: " << valid.message() << "\n";
      return 2;
    }
    upstream.emplace(io, clock, upstream_options);
    handler_options.upstream = &*upstream;
  }
  thaw::V2Handler handler(runtime, clock, repo, observability, handler_options);
  handler.SetAccess(&access, options.admin_port ? thaw::RouteSet::kMain : thaw::RouteSet::kAll);
  thaw::HttpServer server(io, handler, clock, http_options(options.host, options.port));
  if (auto started = server.Start(); !started.ok()) {
    std::cerr << "thaw: " << started.message() << "\n";
    return 1;
  }
  // The admin routes on their own listener: same runtime, same event loop.
  std::optional<thaw::V2Handler> admin_handler;
  std::optional<thaw::HttpServer> admin_server;
  if (options.admin_port) {
    admin_handler.emplace(runtime, clock, repo, observability, handler_options);
    admin_handler->SetAccess(&access, thaw::RouteSet::kAdmin);
    admin_server.emplace(io, *admin_handler, clock, http_options(options.admin_host, *options.admin_port));
    if (auto started = admin_server->Start(); !started.ok()) {
      std::cerr << "thaw: --admin-port: " << started.message() << "\n";
      return 1;
    }
    LogEvent(LogLevel::kInfo, "admin_listening",
             LogFields({{"address", LogValue(options.admin_host + ":" + std::to_string(admin_server->port()))}}));
  }
  // gRPC beside REST: the main handler behind it (its routes and tokens).
#ifdef THAW_WITH_GRPC
  std::optional<thaw::GrpcServer> grpc_server;
#else
  struct NoGrpc {
    void Shutdown() {}
  };
  std::optional<NoGrpc> grpc_server;
  if (options.grpc_port) {
    std::cerr << "thaw: --grpc-port: this build has no gRPC (built without the grpc component)\n";
    return 2;
  }
#endif
  if (options.modelmesh && !options.grpc_port) {
    std::cerr << "thaw: --modelmesh on serves ModelMesh's model-runtime API on the gRPC port: give --grpc-port\n";
    return 2;
  }
#ifdef THAW_WITH_GRPC
  if (options.grpc_port) {
    grpc_server.emplace(io, handler,
                        thaw::GrpcServerOptions{.host = options.host,
                                                .port = *options.grpc_port,
                                                .max_message_bytes = static_cast<size_t>(options.max_body_mb) << 20,
                                                .model_runtime = options.modelmesh ? &runtime : nullptr,
                                                .capacity_mb = memory_mb});
    if (auto started = grpc_server->Start(); !started.ok()) {
      std::cerr << "thaw: --grpc-port: " << started.message() << "\n";
      return 1;
    }
    LogEvent(LogLevel::kInfo, "grpc_listening",
             LogFields({{"address", LogValue(options.host + ":" + std::to_string(grpc_server->port()))}}));
  }
#endif
  LogEvent(LogLevel::kInfo, "server_listening",
           LogFields({{"address", LogValue(options.host + ":" + std::to_string(server.port()))},
                      {"auth", access.requires_tokens() ? "tokens" : "none"},
                      {"repo", LogValue(fs::absolute(repo).string())},
                      {"usage_log", LogValue(options.usage_log_path.empty() ? std::string("none")
                                                                           : fs::absolute(options.usage_log_path).string())},
                      {"models", std::to_string(scan->models.size())}, {"invalid", std::to_string(scan->errors.size())},
                      {"memory_budget_mb", std::to_string(memory_mb)},
                      {"memory_charge", std::string(thaw::sched::MemoryChargeName(memory_charge))},
                      {"eviction", std::string(thaw::policy::EvictionOrderName(options.node.eviction_order))},
                      {"run_dir", LogValue(runtime.run_dir())},
                      {"memory_limit", LogValue(memory_limit)}}));

  // SIGTERM/SIGINT: stop accepting connections, answer every request already
  // accepted (new ones on open connections get 503), then stop. A second
  // signal, or kDrainLimit, stops at once.
  constexpr auto kDrainLimit = std::chrono::seconds(30);
  std::thread grpc_shutdown;
  std::atomic<bool> grpc_stopped = false;
  boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  boost::asio::steady_timer drain_limit(io);
  boost::asio::steady_timer flush_wait(io);
  auto stop_now = [&](const char* how) {
    LogEvent(LogLevel::kInfo, "server_stopping", std::string("how=") + how);
    runtime.Shutdown();
    usage_flush.cancel();
    // Let the last responses leave their sockets before the loop stops.
    flush_wait.expires_after(std::chrono::milliseconds(100));
    flush_wait.async_wait([&](const boost::system::error_code&) { io.stop(); });
  };
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signal) {
        if (ec) return;
        static bool draining = false;
        if (draining) return stop_now("second_signal");
        draining = true;
        LogEvent(LogLevel::kInfo, "server_draining", LogFields({{"signal", std::to_string(signal)}}));
        server.Stop();
        if (admin_server) admin_server->Stop();
        // gRPC stops taking calls now; its calls in flight finish through the
        // loop, so the wait for them runs beside it.
        if (grpc_server) grpc_shutdown = std::thread([&] { grpc_server->Shutdown(); grpc_stopped = true; });
        // Then the requests still being decoded or encoded off the loop, on both listeners.
        runtime.Drain([&] {
          handler.Drain([&] {
            if (!admin_handler) return stop_now("drained");
            admin_handler->Drain([&] { stop_now("drained"); });
          });
        });
        drain_limit.expires_after(kDrainLimit);
        drain_limit.async_wait([&](const boost::system::error_code& ec) {
          if (!ec) stop_now("drain_limit");
        });
        stop_signals.async_wait(on_signal);
      };
  stop_signals.async_wait(on_signal);
  // Lambda runtime mode: events from the Runtime API into the same handler.
  int exit_code = 0;
  std::optional<thaw::lambda::RuntimeApiClient> lambda_client;
  if (!options.lambda_runtime_api.empty()) {
    lambda_client.emplace(io, handler, runtime, clock,
                          thaw::lambda::RuntimeApiOptions{.endpoint = options.lambda_runtime_api,
                                                          .model = options.lambda_model,
                                                          .memory_size_mb = options.lambda_memory_size_mb,
                                                          .process_start_us = process_start_us},
                          [&](int code) {
                            exit_code = code;
                            server.Stop();
                            stop_now("lambda_runtime_end");
                          });
    lambda_client->Start();
  }
  io.run();
  lambda_client.reset();
  // gRPC calls that reached the loop after it stopped still need it to finish.
  if (grpc_server && !grpc_shutdown.joinable())
    grpc_shutdown = std::thread([&] { grpc_server->Shutdown(); grpc_stopped = true; });
  while (grpc_shutdown.joinable() && !grpc_stopped) {
    io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  if (grpc_shutdown.joinable()) grpc_shutdown.join();
  // Records of the last answers and of the instances Shutdown stopped.
  // Never silent: records that could not be written are counted here.
  if (thaw::Status closed = usage_meter.CloseLog(); !closed.ok()) {
    LogEvent(LogLevel::kError, "usage_log_lost", LogFields({{"error", LogValue(closed.message())}}));
    std::cerr << "thaw: usage log: " << closed.message() << "\n";
  }
  LogEvent(LogLevel::kInfo, "server_stopped",
           LogFields({{"usage_records", std::to_string(usage_meter.Report().total.invocations)},
                      {"usage_log", LogValue(options.usage_log_path.empty() ? std::string("none") : options.usage_log_path)}}));
  return exit_code;
}

// The --request file's contents, or nullopt after saying why on stderr.
std::optional<std::string> ReadRequestFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    std::cerr << "thaw: cannot read --request file '" << path << "'\n";
    return std::nullopt;
  }
  std::stringstream body;
  body << file.rdbuf();
  return body.str();
}

// THAW_TOKEN from the environment (not a flag: argv is visible to every
// user in ps): the bearer token thaw load and thaw replay send.
std::string BearerTokenFromEnvironment() {
  const char* token = std::getenv("THAW_TOKEN");
  if (!token) return "";
  std::string value(token);
  // A token is one header value: no control characters, no spaces.
  for (char c : value)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return "";
  return value;
}

int Load(const thaw::cli::LoadCommandOptions& options) {
  namespace load = thaw::load;
  auto body = ReadRequestFile(options.request_path);
  if (!body) return 2;
  // Warm-up and measurement are one schedule: the warm-up is its first
  // warmup_s seconds, so the arrival process runs on without a seam.
  auto offsets = load::MakeArrivals({.process = options.arrivals,
                                     .rate_per_s = options.rate_per_s,
                                     .duration_s = options.warmup_s + options.duration_s,
                                     .seed = options.seed});
  if (!offsets.ok()) {
    std::cerr << "thaw: " << offsets.status().message() << "\n";
    return 2;
  }
  ::signal(SIGPIPE, SIG_IGN);
  std::cout << "thaw load: " << load::ArrivalProcessName(options.arrivals) << " " << options.rate_per_s
            << " req/s for " << options.duration_s << " s";
  if (options.warmup_s > 0) std::cout << " after " << options.warmup_s << " s warm-up";
  const bool grpc = options.protocol == thaw::cli::LoadCommandOptions::Protocol::kGrpc;
  std::cout << " -> " << options.url << (grpc ? " (gRPC)" : options.binary_tensors ? " (binary tensors)" : "")
            << " model " << options.model << " (" << offsets->size() << " requests)" << std::endl;
  thaw::RealClock clock;
  const thaw::Micros warmup_us = static_cast<thaw::Micros>(options.warmup_s * thaw::kMicrosPerSecond);
  thaw::StatusOr<load::LoadResult> result = thaw::Internal("not run");
  std::string protocol = "http";
  if (grpc) {
    protocol = "grpc";
#ifdef THAW_WITH_GRPC
    thaw::GrpcLoadGenerator generator(clock, {.url = options.url,
                                              .model = options.model,
                                              .request_json = *body,
                                              .max_in_flight = options.max_connections,
                                              .drain_timeout_s = options.drain_timeout_s,
                                              .warmup_us = warmup_us,
                                              .bearer_token = BearerTokenFromEnvironment()});
    result = generator.Run(*offsets);
#else
    result = thaw::Unavailable("--protocol grpc: this build has no gRPC (built without the grpc component)");
#endif
  } else {
    std::optional<size_t> header_length;
    if (options.binary_tensors) {
      // The request file is JSON; the binary extension's body is made from it once.
      auto parsed = thaw::v2::ParseInferRequest(*body, std::nullopt);
      if (!parsed.ok()) {
        std::cerr << "thaw: " << options.request_path << ": " << parsed.status().message() << "\n";
        return 2;
      }
      thaw::v2::EncodedBody encoded = thaw::v2::EncodeBinaryInferRequest(*parsed);
      *body = std::move(encoded.body);
      header_length = encoded.header_length;
      protocol = "http-binary";
    }
    load::LoadGenerator generator(clock, {.url = options.url,
                                          .model = options.model,
                                          .body = *body,
                                          .body_header_length = header_length,
                                          .max_connections = options.max_connections,
                                          .drain_timeout_s = options.drain_timeout_s,
                                          .warmup_us = warmup_us,
                                          .bearer_token = BearerTokenFromEnvironment()});
    result = generator.Run(*offsets);
  }
  if (!result.ok()) {
    std::cerr << "thaw: " << result.status().message() << "\n";
    return 1;
  }
  const load::LoadSummary summary = load::Summarize(*result, options.duration_s);
  std::cout << load::SummaryText(summary);
  int exit_code = load::LoadExitCode(summary);
  if (exit_code != 0) std::cerr << "thaw: " << load::NoSuccessReason(summary) << " (" << options.url << ")\n";
  if (!options.json_path.empty()) {
    const load::RunInfo run{.url = options.url,
                            .model = options.model,
                            .arrivals = std::string(load::ArrivalProcessName(options.arrivals)),
                            .rate_per_s = options.rate_per_s,
                            .duration_s = options.duration_s,
                            .warmup_s = options.warmup_s,
                            .seed = options.seed,
                            .max_connections = options.max_connections,
                            .protocol = protocol};
    if (auto written = load::WriteTextFile(options.json_path, load::SummaryJson(summary, run)); !written.ok()) {
      std::cerr << "thaw: " << written.message() << "\n";
      exit_code = 1;
    }
  }
  if (!options.csv_path.empty()) {
    if (auto written = load::WriteTextFile(options.csv_path, load::RequestsCsv(*result)); !written.ok()) {
      std::cerr << "thaw: " << written.message() << "\n";
      exit_code = 1;
    }
  }
  return exit_code;
}

// `thaw cost`: reads the usage log into UsageStats and prints the report.
thaw::sim::PlanOptions PlanOptionsOf(const thaw::cli::SimulateCommandOptions& options) {
  namespace sim = thaw::sim;
  sim::PlanOptions plan_options{.slo_p99_ms = options.slo_p99_ms, .seed = options.seed};
  if (!options.plan_memory_mb.empty()) plan_options.memory_mb = options.plan_memory_mb;
  if (!options.plan_max_concurrency.empty()) plan_options.max_concurrency = options.plan_max_concurrency;
  if (!options.plan_min_instances.empty()) plan_options.min_instances = options.plan_min_instances;
  if (!options.plan_keep_alive_s.empty()) plan_options.keep_alive_s = options.plan_keep_alive_s;
  if (!options.plan_template_keep_alive_s.empty())
    plan_options.template_keep_alive_s = options.plan_template_keep_alive_s;
  if (!options.plan_threads.empty()) plan_options.threads = options.plan_threads;
  if (!options.plan_keep_alive_policies.empty()) {
    const auto& named = options.plan_keep_alive_policies;
    plan_options.try_adaptive = std::find(named.begin(), named.end(), "adaptive") != named.end();
    plan_options.try_histogram = std::find(named.begin(), named.end(), "histogram") != named.end();
  }
  plan_options.bill_weight = options.bill_weight;
  plan_options.host_weight = options.host_weight;
  return plan_options;
}

int Plan(const thaw::cli::SimulateCommandOptions& options, const thaw::ModelConfig& config,
         const thaw::sim::ProfileFile& profile, const std::vector<thaw::sim::SimArrival>& requests,
         const thaw::policy::PriceSheet& prices, const thaw::Clock& clock) {
  namespace sim = thaw::sim;
  const sim::PlanOptions plan_options = PlanOptionsOf(options);
  const thaw::Micros started = clock.NowMicros();
  thaw::cli::ProgressBar bar(clock);
  auto result = sim::Plan(config, profile, requests, prices, plan_options,
                          [&](int done, int total) { bar.Update(done, total, "settings"); });
  bar.Clear();
  if (!result.ok()) {
    std::cerr << "thaw: " << result.status().message() << "\n";
    return 2;
  }
  std::cout << "thaw plan: " << result->candidates.size() << " settings (" << result->simulations
            << " simulations) on " << requests.size() << " requests in "
            << thaw::cli::DecimalText((clock.NowMicros() - started) / 1e6, 1) << " s; p99 target "
            << options.slo_p99_ms << " ms; cost = " << options.bill_weight << " x Lambda-style bill + "
            << options.host_weight << " x host cost of the memory held ($ " << prices.host_usd_per_gb_hour
            << "/GB-h)\n\nPareto front (cost vs p99, no 429/504):\n";
  char line[640];
  auto print_row = [&](const sim::Candidate& c, const char* note) {
    std::snprintf(line, sizeof(line), "  %-11s %-11s %-11s %-8s %-7lld %s%s%s\n", thaw::SignificantText(c.objective, 4).c_str(),
                  thaw::SignificantText(c.dollars, 4).c_str(), thaw::SignificantText(c.host_dollars, 4).c_str(),
                  thaw::SignificantText(c.p99_ms, 3).c_str(), static_cast<long long>(c.cold_starts), c.label.c_str(),
                  c.meets_slo ? "" : "  (misses target)", note);
    std::cout << line;
  };
  std::snprintf(line, sizeof(line), "  %-11s %-11s %-11s %-8s %-7s %s\n", "cost $", "bill $", "host $", "p99 ms", "cold",
                "settings");
  std::cout << line;
  for (const sim::Candidate& c : result->candidates)
    if (c.pareto) print_row(c, "");
  const sim::Candidate& input = result->candidates[result->input];
  std::cout << "\nYour config:\n";
  print_row(input, "");
  if (result->always_on) {
    std::cout << "Always on, for comparison:\n";
    print_row(*result->always_on, "");
  }
  if (!result->best) {
    std::cout << "\nNo setting met p99 <= " << options.slo_p99_ms << " ms without 429/504.\n";
    return 1;
  }
  const sim::Candidate& best = result->candidates[*result->best];
  const std::string out = options.out_path.empty() ? config.name + ".plan.json" : options.out_path;
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << thaw::EncodeModelConfig(best.config);
  std::cout << "\nCheapest meeting the target: " << best.label << "\n  cost $" << thaw::SignificantText(best.objective, 4)
            << " (bill $" << thaw::SignificantText(best.dollars, 4) << ", host $"
            << thaw::SignificantText(best.host_dollars, 4) << "), p99 " << thaw::SignificantText(best.p99_ms, 3) << " ms, "
            << best.cold_starts << " cold starts -> " << out << (file ? "" : " (could not be written)") << "\n";
  if (input.meets_slo && input.objective > 0)
    std::cout << "  against your config: " << thaw::cli::PercentText(best.objective, input.objective) << " of its cost\n";
  if (result->always_on && result->always_on->objective > 0)
    std::cout << "  against always on: " << thaw::cli::PercentText(best.objective, result->always_on->objective)
              << " of its cost\n";
  // Why this one: the next cheapest that meet the target, and what they trade.
  std::cout << "  next best meeting the target:\n";
  int shown = 0;
  for (size_t i = *result->best + 1; i < result->candidates.size() && shown < 3; ++i) {
    const sim::Candidate& c = result->candidates[i];
    if (!c.meets_slo) continue;
    ++shown;
    std::cout << "    +" << thaw::cli::PercentText(c.objective - best.objective, best.objective)
              << " cost, p99 " << thaw::cli::DecimalText(c.p99_ms, 2) << " ms, " << c.cold_starts
              << " cold starts: " << c.label << "\n";
  }
  if (shown == 0) std::cout << "    (none)\n";
  return file ? 0 : 1;
}

// thaw plan --accuracy-floor: plans the model and each of its variants (in
// its repository, each with the profile thaw variants --measure wrote), and
// writes the best settings of the cheapest variant meeting the floor.
int PlanVariants(const thaw::cli::SimulateCommandOptions& options, const thaw::ModelConfig& config,
                 const thaw::sim::ProfileFile& profile, const fs::path& repo,
                 const std::vector<thaw::sim::SimArrival>& requests, const thaw::policy::PriceSheet& prices,
                 const thaw::Clock& clock) {
  namespace sim = thaw::sim;
  namespace cli = thaw::cli;
  const sim::AccuracyFloor floor = *sim::ParseAccuracyFloor(options.accuracy_floor);
  auto rows = cli::ReadVariants(repo, config.name);
  if (!rows.ok()) {
    std::cerr << "thaw: --accuracy-floor: " << rows.status().message() << "\n";
    return 2;
  }
  if (std::isnan(rows->front().accuracy)) {
    std::cerr << "thaw: --accuracy-floor: model '" << config.name << "' has no measured test accuracy ("
              << (repo / config.name / "accuracy.json").string() << ")\n";
    return 2;
  }
  // The base as given (its config and profile flags); each variant from its directory.
  std::vector<thaw::ModelConfig> configs = {config};
  std::vector<sim::ProfileFile> profiles = {profile};
  for (size_t i = 1; i < rows->size(); ++i) {
    const fs::path dir = repo / (*rows)[i].name;
    auto variant_config = thaw::LoadModelConfig(dir.string());
    auto variant_profile = sim::ReadProfileFile((dir / "profile.json").string());
    if (!variant_config.ok() || !variant_profile.ok()) {
      std::cerr << "thaw: --accuracy-floor: variant '" << (*rows)[i].name << "': "
                << (!variant_config.ok() ? variant_config.status().message()
                                         : variant_profile.status().message() + " (measure it: thaw variants " +
                                               config.name + " --measure)")
                << "\n";
      return 2;
    }
    configs.push_back(std::move(*variant_config));
    profiles.push_back(std::move(*variant_profile));
  }
  const sim::PlanOptions plan_options = PlanOptionsOf(options);
  const thaw::Micros started = clock.NowMicros();
  std::vector<sim::VariantOption> choices;
  std::vector<std::optional<sim::Candidate>> bests;
  int simulations = 0;
  thaw::cli::ProgressBar bar(clock);
  for (size_t i = 0; i < rows->size(); ++i) {
    auto result = sim::Plan(configs[i], profiles[i], requests, prices, plan_options, [&](int done, int total) {
      bar.Update(static_cast<int>(i) * total + done, static_cast<int>(rows->size()) * total, (*rows)[i].name);
    });
    if (!result.ok()) {
      bar.Clear();
      std::cerr << "thaw: " << (*rows)[i].name << ": " << result.status().message() << "\n";
      return 2;
    }
    simulations += result->simulations;
    std::optional<sim::Candidate> best;
    if (result->best) best = result->candidates[*result->best];
    choices.push_back({(*rows)[i].name, (*rows)[i].accuracy, best.has_value(), best ? best->objective : 0});
    bests.push_back(std::move(best));
  }
  bar.Clear();
  const sim::VariantChoice choice = sim::ChooseVariant(choices, floor);
  const double minimum = floor.MinimumFor(rows->front().accuracy);
  std::cout << "thaw plan: " << rows->size() << " variants of " << config.name << " (" << simulations
            << " simulations) on " << requests.size() << " requests in "
            << cli::DecimalText((clock.NowMicros() - started) / 1e6, 1) << " s; p99 target " << options.slo_p99_ms
            << " ms; accuracy floor " << floor.ToString() << " (>= " << cli::DecimalText(minimum, 4) << ")\n\n";
  char line[512];
  std::snprintf(line, sizeof line, "  %-26s %-15s %-9s %-11s %-11s %-8s %s\n", "model", "method", "accuracy",
                "cost $", "$/1M", "p99 ms", "verdict");
  std::cout << line;
  for (size_t i = 0; i < rows->size(); ++i) {
    const auto& best = bests[i];
    std::snprintf(line, sizeof line, "  %-26s %-15s %-9s %-11s %-11s %-8s %s\n", (*rows)[i].name.c_str(),
                  (*rows)[i].method.c_str(), cli::DecimalText((*rows)[i].accuracy, 4).c_str(),
                  best ? thaw::SignificantText(best->objective, 4).c_str() : "-",
                  best ? thaw::SignificantText(best->dollars_per_million, 4).c_str() : "-",
                  best ? cli::DecimalText(best->p99_ms, 2).c_str() : "-", sim::VariantVerdictName(choice.verdicts[i]));
    std::cout << line;
  }
  if (!choice.chosen) {
    std::cout << "\nNo variant meets both the accuracy floor and p99 <= " << options.slo_p99_ms << " ms.\n";
    return 1;
  }
  const size_t chosen = *choice.chosen;
  const sim::Candidate& best = *bests[chosen];
  const std::string out = options.out_path.empty() ? best.config.name + ".plan.json" : options.out_path;
  std::ofstream file(out, std::ios::binary | std::ios::trunc);
  file << thaw::EncodeModelConfig(best.config);
  if (chosen == 0) {
    std::cout << "\nThe base model stays: no variant meeting the floor is cheaper. Its best settings: " << best.label;
  } else {
    std::cout << "\nVariant chosen: " << best.config.name << " (" << (*rows)[chosen].method << ", accuracy "
              << cli::DecimalText((*rows)[chosen].accuracy, 4) << " vs " << cli::DecimalText(rows->front().accuracy, 4)
              << "), settings: " << best.label;
    if (bests[0])
      std::cout << "\n  cost " << cli::PercentText(best.objective, bests[0]->objective)
                << " of the base model's cheapest settings meeting the target (" << bests[0]->label << ")";
    else
      std::cout << "\n  the base model has no settings meeting the target";
  }
  std::cout << "\n  -> " << out << (file ? "" : " (could not be written)")
            << " (its model directory: " << (repo / best.config.name).string() << ")\n";
  return file ? 0 : 1;
}

// GET http://host:port/path -> body (status 200 only).
thaw::StatusOr<std::string> HttpGet(const std::string& url, const std::string& path) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  auto parsed = thaw::load::ParseHttpUrl(url);
  if (!parsed.ok()) return parsed.status();
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  beast::tcp_stream stream(io);
  beast::error_code ec;
  auto endpoints = resolver.resolve(parsed->host, std::to_string(parsed->port), ec);
  if (!ec) stream.connect(endpoints, ec);
  http::request<http::empty_body> request{http::verb::get, path, 11};
  request.set(http::field::host, parsed->host);
  if (const std::string token = BearerTokenFromEnvironment(); !token.empty())
    request.set(http::field::authorization, "Bearer " + token);
  if (!ec) http::write(stream, request, ec);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  if (!ec) http::read(stream, buffer, response, ec);
  if (ec) return thaw::Unavailable("GET " + url + path + ": " + ec.message());
  if (response.result_int() != 200)
    return thaw::Unavailable("GET " + url + path + ": HTTP " + std::to_string(response.result_int()) + " " + response.body());
  return response.body();
}

// Reads the trace flags shared by simulate, plan and replay.
thaw::StatusOr<thaw::trace::Trace> LoadWholeTrace(const thaw::cli::SimulateCommandOptions& options) {
  namespace trace = thaw::trace;
  if (!options.suite.empty()) return trace::MakeSuiteTrace(options.suite, options.seed);
  if (options.poisson_rate_per_s > 0)
    return trace::MakePoissonTrace({.rate_per_s = options.poisson_rate_per_s, .duration_s = options.duration_s},
                                   {.seed = options.seed});
  if (options.azure)
    return trace::ReadAzureTraceFile(options.trace_path,
                                     {.select = trace::AzureSelect::kTopN, .top_n = options.azure_top,
                                      .time_scale = options.time_scale, .spread = *trace::ParseSpread(options.spread),
                                      .seed = options.seed});
  return trace::ReadCsvTraceFile(options.trace_path, {.time_scale = options.time_scale});
}

// The trace, cut to --from-s/--to-s if given.
thaw::StatusOr<thaw::trace::Trace> LoadTrace(const thaw::cli::SimulateCommandOptions& options) {
  auto whole = LoadWholeTrace(options);
  if (!whole.ok() || (options.from_s == 0 && options.to_s == 0)) return whole;
  const thaw::Micros from_us = std::llround(options.from_s * thaw::kMicrosPerSecond);
  const thaw::Micros to_us = options.to_s > 0 ? std::llround(options.to_s * thaw::kMicrosPerSecond) : whole->Duration() + 1;
  if (from_us > whole->Duration())
    return thaw::InvalidArgument("--from-s " + thaw::cli::DecimalText(options.from_s, 3) + " is past the trace's end (" +
                                 thaw::cli::DecimalText(whole->Duration() / 1e6, 3) + " s)");
  return thaw::trace::Window(*whole, from_us, to_us);
}

// Routes a trace's functions to models (sim::RouteFunctions) and reports
// errors on stderr; nullopt after an error.
std::optional<std::vector<uint32_t>> ModelOfFunction(const thaw::trace::Trace& trace,
                                                     const std::vector<std::string>& models,
                                                     const std::vector<std::string>& route_texts) {
  namespace sim = thaw::sim;
  std::vector<sim::FunctionRoute> routes;
  for (const std::string& text : route_texts) {
    auto route = sim::ParseFunctionRoute(text);
    if (!route.ok()) {
      std::cerr << "thaw: " << route.status().message() << "\n";
      return std::nullopt;
    }
    routes.push_back(*route);
  }
  auto model_of_function = sim::RouteFunctions(trace.functions, models, routes);
  if (!model_of_function.ok()) {
    std::cerr << "thaw: " << model_of_function.status().message() << "\n";
    return std::nullopt;
  }
  return *model_of_function;
}

int Simulate(const thaw::cli::SimulateCommandOptions& options, bool plan, thaw::metering::UsageReport* report_out);

int Replay(const thaw::cli::SimulateCommandOptions& options) {
  namespace load = thaw::load;
  // With --profile and --config, the simulation of the same trace first: bad inputs fail before any request.
  std::optional<thaw::metering::UsageReport> simulated;
  if (!options.profile_paths.empty()) {
    thaw::metering::UsageReport report;
    if (int failed = Simulate(options, /*plan=*/false, &report); failed != 0) return failed;
    simulated = std::move(report);
  }
  auto arrivals = LoadTrace(options);
  if (!arrivals.ok()) {
    std::cerr << "thaw: trace: " << arrivals.status().message() << "\n";
    return 2;
  }
  // Targets: --model with --request, or --target MODEL=FILE per model.
  std::vector<load::LoadTarget> targets;
  auto model_and_file = options.targets;
  if (model_and_file.empty()) model_and_file.push_back({options.model, options.request_path});
  std::vector<std::string> models;
  for (const auto& [model, request_path] : model_and_file) {
    auto body = ReadRequestFile(request_path);
    if (!body) return 2;
    models.push_back(model);
    targets.push_back({model, *body});
  }
  auto model_of_function = ModelOfFunction(*arrivals, models, options.routes);
  if (!model_of_function) return 2;
  std::vector<thaw::Micros> offsets;
  std::vector<uint32_t> target_of;
  offsets.reserve(arrivals->arrivals.size());
  target_of.reserve(arrivals->arrivals.size());
  for (const auto& a : arrivals->arrivals) {
    offsets.push_back(a.time_us);
    target_of.push_back((*model_of_function)[a.function]);
  }
  const std::string label = models.size() == 1 ? "model " + models[0] : std::to_string(models.size()) + " models";
  ::signal(SIGPIPE, SIG_IGN);
  thaw::RealClock clock;
  if (!options.json)
    std::cout << "thaw replay: " << offsets.size() << " requests over " << arrivals->Duration() / 1e6 << " s -> "
              << options.url << " " << label << std::endl;
  // The schedule fixes the ETA: progress is time into the trace.
  const thaw::Micros started = clock.NowMicros();
  const double total_s = std::max(1e-6, arrivals->Duration() / 1e6);
  thaw::cli::ProgressBar bar(clock);
  auto progress = [&](size_t sent, size_t total) {
    const double elapsed_s = (clock.NowMicros() - started) / 1e6;
    bar.Show(sent == total ? 1.0 : elapsed_s / total_s, total_s - elapsed_s,
             std::to_string(sent) + "/" + std::to_string(total) + " sent");
  };
  load::LoadGenerator generator(clock, {.url = options.url, .targets = targets,
                                        .max_connections = options.max_connections,
                                        .on_progress = bar.enabled() ? std::function<void(size_t, size_t)>(progress)
                                                                     : nullptr,
                                        .bearer_token = BearerTokenFromEnvironment()});
  auto result = generator.Run(offsets, target_of);
  bar.Clear();
  if (!result.ok()) {
    std::cerr << "thaw: " << result.status().message() << "\n";
    return 1;
  }
  const load::LoadSummary summary = load::Summarize(*result, std::max(1e-6, arrivals->Duration() / 1e6));
  const std::string stats_path = models.size() == 1 ? "/v2/models/" + models[0] + "/usage" : "/v2/stats";
  auto stats = HttpGet(options.url, stats_path);
  if (options.json) {
    std::string json;
    thaw::JsonWriter w(&json);
    w.BeginObject().Key("load").Raw(load::SummaryJson(summary, {.url = options.url,
                                                                 .model = models.size() == 1 ? models[0] : label,
                                                                 .arrivals = "trace"}));
    w.Key("server").Raw(stats.ok() ? std::string_view(*stats) : std::string_view("null"));
    if (simulated) w.Key("simulated").Raw(thaw::metering::ReportJson(*simulated));
    w.EndObject();
    std::cout << json << "\n";
    return stats.ok() ? 0 : 1;
  }
  std::cout << load::SummaryText(summary) << "\nserver report (" << options.url << stats_path << "):\n";
  if (!stats.ok()) {
    std::cout << stats.status().message() << "\n";
    return 1;
  }
  // The table thaw simulate and thaw cost print, from the server's JSON.
  auto replayed = thaw::metering::ParseReportJson(*stats, stats_path);
  if (!replayed.ok()) {
    std::cerr << "thaw: " << replayed.status().message() << "\n";
    return 1;
  }
  std::cout << thaw::metering::ReportTable(*replayed);
  if (simulated) {
    std::cout << "\nsimulated (--profile, --config) vs replayed, same trace:\n"
              << thaw::metering::CompareReportsTable(*simulated, *replayed);
    std::cout << "\nsimulated report:\n" << thaw::metering::ReportTable(*simulated);
  }
  return 0;
}

// thaw simulate, and thaw plan (the same inputs, a grid of settings).
// thaw simulate --nodes N: the trace on a fleet of N machines (sim/fleet.h).
int SimulateFleet(const thaw::cli::SimulateCommandOptions& options, const std::vector<thaw::sim::SimModel>& models,
                  const std::vector<thaw::sim::SimArrival>& requests, const thaw::policy::PriceSheet& prices,
                  const thaw::Clock& clock) {
  namespace sim = thaw::sim;
  using thaw::cli::DecimalText;
  const thaw::Micros started = clock.NowMicros();
  auto fleet = sim::SimulateFleet(models, requests, prices,
                                  {.nodes = options.nodes,
                                   .node_memory_mb = options.node_memory_mb,
                                   .copy_rate_per_s = options.copy_rate_per_s,
                                   .sim = {.seed = options.seed,
                                           .memory_charge = options.node.memory_charge,
                                           .eviction_order = options.node.eviction_order,
                                           .max_starting_templates = options.node.template_starts,
                                           .template_admit_calls = options.node.template_admit_calls,
                                           .keep_alive_pool = options.node.keep_alive_pool}});
  if (!fleet.ok()) {
    std::cerr << "thaw: " << fleet.status().message() << "\n";
    return 2;
  }
  const double elapsed_s = (clock.NowMicros() - started) / 1e6;
  const auto& total = fleet->report.total;
  if (options.json) {
    std::string json;
    thaw::JsonWriter w(&json);
    w.BeginObject().Key("fleet").BeginObject().Field("nodes", options.nodes);
    w.Field("node_memory_mb", options.node_memory_mb).Field("copy_rate_per_s", options.copy_rate_per_s);
    w.Field("models", static_cast<int64_t>(models.size())).Field("requests", static_cast<int64_t>(requests.size()));
    w.Field("placements", fleet->placement.placements).Field("copies_added", fleet->placement.copies_added);
    w.Field("unloads", fleet->placement.unloads).Field("duration_s", fleet->duration_us / 1e6);
    w.Key("per_node").BeginArray();
    for (size_t i = 0; i < fleet->nodes.size(); ++i) {
      const auto& n = fleet->nodes[i];
      const auto& t = n.result.report.total;
      w.BeginObject().Field("node", static_cast<int64_t>(i)).Field("requests", n.result.requests);
      w.Field("placements", n.placements).Field("unloads", n.unloads).Field("cold_starts", n.result.cold_starts);
      w.Field("rejected_429", n.result.rejected_429).Field("p50_ms", t.p50_ms).Field("p99_ms", t.p99_ms);
      w.Field("mean_held_mb", n.mean_held_mb).Field("usd", t.bill.total_usd).Field("host_usd", t.bill.host_usd);
      w.EndObject();
    }
    w.EndArray().EndObject();
    std::string report = thaw::metering::ReportJson(fleet->report);
    std::cout << json << "," << report.substr(report.find('{') + 1);
    return 0;
  }
  std::cout << "thaw simulate --nodes " << options.nodes << ": " << requests.size() << " requests to " << models.size()
            << " models over " << DecimalText(fleet->duration_us / 1e6, 1) << " s, simulated in "
            << DecimalText(elapsed_s, 2) << " s\n"
            << "  router: memory-bounded at " << options.node_memory_mb << " MB per node, LRU; a copy per "
            << DecimalText(options.copy_rate_per_s, 1) << " calls/s; " << fleet->placement.placements
            << " placements, " << fleet->placement.copies_added << " copies added, " << fleet->placement.unloads
            << " unloads\n\n";
  std::cout << "  node  requests  placed  unloaded  cold starts  429    p50 ms   p99 ms   held MB   $          host $\n";
  for (size_t i = 0; i < fleet->nodes.size(); ++i) {
    const auto& n = fleet->nodes[i];
    const auto& t = n.result.report.total;
    char line[256];
    std::snprintf(line, sizeof line, "  %-4zu  %-8lld  %-6lld  %-8lld  %-11lld  %-5lld  %-7.2f  %-7.2f  %-8.0f  %-9s  %s\n",
                  i, static_cast<long long>(n.result.requests), static_cast<long long>(n.placements),
                  static_cast<long long>(n.unloads), static_cast<long long>(n.result.cold_starts),
                  static_cast<long long>(n.result.rejected_429), t.p50_ms, t.p99_ms, n.mean_held_mb,
                  thaw::SignificantText(t.bill.total_usd, 4).c_str(), thaw::SignificantText(t.bill.host_usd, 4).c_str());
    std::cout << line;
  }
  double held = 0;
  for (const auto& n : fleet->nodes) held += n.mean_held_mb;
  std::cout << "\n  fleet: " << total.invocations << " requests, " << total.cold_starts << " cold starts, p50 "
            << DecimalText(total.p50_ms, 2) << " ms, p99 " << DecimalText(total.p99_ms, 2) << " ms, memory held "
            << DecimalText(held, 0) << " MB (mean over the run, all nodes), $" << thaw::SignificantText(total.bill.total_usd, 4)
            << " Lambda-style, $" << thaw::SignificantText(total.bill.host_usd, 4) << " host cost of the memory held\n";
  return 0;
}

// report_out set: simulate one machine (no plan, no fleet), store the report
// there and print nothing but errors (thaw replay compares it with the server's).
int Simulate(const thaw::cli::SimulateCommandOptions& options, bool plan,
             thaw::metering::UsageReport* report_out = nullptr) {
  namespace sim = thaw::sim;
  namespace trace = thaw::trace;
  auto prices = thaw::metering::LoadPriceSheet(options.prices);
  if (!prices.ok()) {
    std::cerr << "thaw: --prices: " << prices.status().message() << "\n";
    return 2;
  }
  // Configs, then the profile of each (sim::PairProfiles).
  std::vector<sim::GivenConfig> given;
  for (const std::string& path : options.config_paths) {
    std::ifstream config_file(path, std::ios::binary);
    std::stringstream config_text;
    config_text << config_file.rdbuf();
    const fs::path config_dir = fs::absolute(path).parent_path();
    auto config = thaw::ParseModelConfig(config_text.str(), config_dir.filename().string(), config_dir.string(), path);
    if (!config_file || !config.ok()) {
      std::cerr << "thaw: --config: " << (config_file ? config.status().message() : "cannot read " + path) << "\n";
      return 2;
    }
    // In a model directory (it holds the model file) the folder names the model, as in a repository.
    const bool named = fs::exists(config_dir / config->model_file);
    given.push_back({std::move(*config), named});
  }
  std::vector<sim::ProfileFile> profiles;
  for (const std::string& path : options.profile_paths) {
    auto profile = sim::ReadProfileFile(path);
    if (!profile.ok()) {
      std::cerr << "thaw: --profile: " << profile.status().message() << "\n";
      return 2;
    }
    profiles.push_back(std::move(*profile));
  }
  for (const std::string& path : options.start_times_from_paths) {
    auto measured = sim::ReadProfileFile(path);
    if (!measured.ok()) {
      std::cerr << "thaw: --start-times-from: " << measured.status().message() << "\n";
      return 2;
    }
    bool used = false;
    for (sim::ProfileFile& profile : profiles)
      if (profile.model == measured->model) {
        sim::BorrowStartTimes(&profile, *measured);
        used = true;
      }
    if (!used) {
      std::cerr << "thaw: --start-times-from: " << path << " measured model '" << measured->model
                << "', and no --profile is of that model\n";
      return 2;
    }
  }
  auto pairs = sim::PairProfiles(given, profiles);
  if (!pairs.ok()) {
    std::cerr << "thaw: --profile: " << pairs.status().message() << "\n";
    return 2;
  }
  for (size_t i = 0; i < given.size(); ++i) {
    std::string source = options.profile_paths[(*pairs)[i]];
    if (!options.start_times_from_paths.empty()) source += " (after --start-times-from)";
    if (thaw::Status has = sim::CheckStartTimes(profiles[(*pairs)[i]], given[i].config, source); !has.ok()) {
      std::cerr << "thaw: --profile: " << has.message() << "\n";
      return 2;
    }
  }
  std::vector<thaw::ModelConfig> configs;
  std::vector<const sim::ProfileFile*> profile_of;
  for (size_t i = 0; i < given.size(); ++i) {
    if (std::any_of(configs.begin(), configs.end(), [&](const auto& c) { return c.name == given[i].config.name; })) {
      std::cerr << "thaw: --config: model '" << given[i].config.name << "' is given twice\n";
      return 2;
    }
    configs.push_back(std::move(given[i].config));
    profile_of.push_back(&profiles[(*pairs)[i]]);
  }
  auto arrivals = LoadTrace(options);
  if (!arrivals.ok()) {
    std::cerr << "thaw: trace: " << arrivals.status().message() << "\n";
    return 2;
  }
  if (options.per_function) {
    // One model per function, each a copy of a config under the function's
    // name: the config named as the function up to its last '-', else the first.
    const std::vector<thaw::ModelConfig> bases = std::move(configs);
    const std::vector<const sim::ProfileFile*> base_profiles = std::move(profile_of);
    configs.clear();
    profile_of.clear();
    for (const std::string& function : arrivals->functions) {
      const std::string kind = function.substr(0, function.rfind('-'));
      size_t base = 0;
      for (size_t i = 0; i < bases.size(); ++i)
        if (bases[i].name == kind) base = i;
      thaw::ModelConfig c = bases[base];
      c.name = function;
      configs.push_back(std::move(c));
      profile_of.push_back(base_profiles[base]);
    }
  }
  std::vector<std::string> model_names;
  for (const thaw::ModelConfig& c : configs) model_names.push_back(c.name);
  auto model_of_function = ModelOfFunction(*arrivals, model_names, options.routes);
  if (!model_of_function) return 2;
  std::vector<sim::SimArrival> requests;
  requests.reserve(arrivals->arrivals.size());
  for (const trace::Arrival& a : arrivals->arrivals)
    requests.push_back({a.time_us, (*model_of_function)[a.function], options.rows_per_request});
  thaw::RealClock clock;
  if (plan && report_out == nullptr && !options.accuracy_floor.empty()) {
    if (configs.size() != 1 || !given[0].named) {
      std::cerr << "thaw: --accuracy-floor plans one model given by the config.json in its model directory "
                   "(its variants are the directories beside it)\n";
      return 2;
    }
    const fs::path repo = fs::absolute(options.config_paths[0]).parent_path().parent_path();
    return PlanVariants(options, configs[0], *profile_of[0], repo, requests, *prices, clock);
  }
  if (plan && report_out == nullptr) return Plan(options, configs[0], *profile_of[0], requests, *prices, clock);
  std::vector<sim::SimModel> models;
  for (size_t i = 0; i < configs.size(); ++i) models.push_back({configs[i], profile_of[i]->ForThreads(configs[i].threads)});
  if (options.nodes > 0 && report_out == nullptr) return SimulateFleet(options, models, requests, *prices, clock);
  const thaw::Micros started = clock.NowMicros();
  auto result = sim::Simulate(models, requests, *prices,
                              {.seed = options.seed,
                               .memory_budget_mb = options.memory_mb,
                               .memory_charge = options.node.memory_charge,
                               .eviction_order = options.node.eviction_order,
                               .max_starting_templates = options.node.template_starts,
                               .template_admit_calls = options.node.template_admit_calls,
                               .keep_alive_pool = options.node.keep_alive_pool,
                               .start_wall_us = 0});
  const double elapsed_s = (clock.NowMicros() - started) / 1e6;
  if (!result.ok()) {
    std::cerr << "thaw: " << result.status().message() << "\n";
    return 2;
  }
  if (report_out != nullptr) {
    *report_out = std::move(result->report);
    return 0;
  }
  if (options.json) {
    // The report as thaw cost --json gives it, after what only a simulation knows.
    std::string json;
    thaw::JsonWriter w(&json);
    w.BeginObject().Key("simulation").BeginObject();
    w.Field("requests", static_cast<int64_t>(requests.size())).Field("cold_starts", result->cold_starts);
    w.Key("starts_by_level").BeginObject();
    for (const auto& [level, n] : result->starts_by_level) w.Field(level, n);
    w.EndObject().Field("template_starts", result->template_starts);
    w.Field("rejected_429", result->rejected_429).Field("deadline_504", result->deadline_504);
    w.Field("busy_instance_s", result->busy_instance_s).Field("idle_instance_s", result->idle_instance_s);
    w.Field("provisioned_instance_s", result->provisioned_instance_s).Field("max_instances", result->max_instances);
    w.Field("memory_budget_mb", options.memory_mb);
    w.Field("memory_charge", thaw::sched::MemoryChargeName(options.node.memory_charge));
    w.Field("eviction", thaw::policy::EvictionOrderName(options.node.eviction_order)).EndObject();
    std::string report = thaw::metering::ReportJson(result->report);
    std::cout << json << "," << report.substr(report.find('{') + 1);
    return 0;
  }
  std::cout << "thaw simulate: " << requests.size() << " requests over "
            << thaw::cli::DecimalText(arrivals->Duration() / 1e6, 1) << " s of trace, simulated in "
            << thaw::cli::DecimalText(elapsed_s, 3) << " s\n";
  for (size_t i = 0; i < configs.size(); ++i) {
    const thaw::ModelConfig& config = configs[i];
    if (options.per_function && i == 1) {
      std::cout << "  ... and " << configs.size() - 1 << " more, one per trace function, with the same settings\n";
      break;
    }
    std::cout << "  model " << config.name << ": " << thaw::StartPathName(config.start_path) << ", keep_alive "
              << KeepAliveName(config.keep_alive_policy) << " " << config.keep_alive_s << " s, batching "
              << BatchingName(config.batching)
              << ", memory " << config.memory_mb << " MB\n";
  }
  std::cout << "  cold starts " << result->cold_starts << " ("
            << thaw::cli::PercentText(static_cast<double>(result->cold_starts), static_cast<double>(requests.size())) << "), 429 "
            << result->rejected_429 << ", 504 " << result->deadline_504 << ", instance-seconds busy "
            << thaw::cli::DecimalText(result->busy_instance_s, 1) << " idle "
            << thaw::cli::DecimalText(result->idle_instance_s, 1) << " provisioned "
            << thaw::cli::DecimalText(result->provisioned_instance_s, 1) << ", most instances "
            << result->max_instances << "\n";
  std::cout << "  starts by level:";
  for (const auto& [level, n] : result->starts_by_level) std::cout << " " << level << " " << n;
  std::cout << "; template starts " << result->template_starts << "\n";
  if (options.memory_mb > 0)
    std::cout << "  memory budget " << options.memory_mb << " MB, charged "
              << thaw::sched::MemoryChargeName(options.node.memory_charge) << ", eviction "
              << thaw::policy::EvictionOrderName(options.node.eviction_order) << "\n";
  std::cout << "\n";
  std::cout << thaw::metering::ReportTable(result->report);
  return 0;
}

int Cost(const thaw::cli::CostCommandOptions& options) {
  namespace metering = thaw::metering;
  auto prices = metering::LoadPriceSheet(options.prices);
  if (!prices.ok()) {
    std::cerr << "thaw: --prices: " << prices.status().message() << "\n";
    return 2;
  }
  thaw::RealClock clock;
  const thaw::Micros since_wall_us = thaw::cli::SinceWallUs(options.since, clock.WallMicros());
  metering::UsageStats stats(prices->granularity_us);
  thaw::Status read = metering::ReadUsageLog(options.usage_log_path, since_wall_us,
                                             [&](metering::UsageRecord record) { stats.Add(record); });
  if (!read.ok()) {
    std::cerr << "thaw: " << read.message() << "\n";
    return 1;
  }
  const metering::UsageReport report = stats.Report(*prices);
  if (options.json) {
    std::cout << metering::ReportJson(report);
    return 0;
  }
  std::cout << "usage log " << options.usage_log_path;
  if (options.since.kind != thaw::cli::Since::Kind::kAll)
    std::cout << ", since " << metering::WallTimeText(since_wall_us);
  std::cout << "\n" << metering::ReportTable(report);
  return 0;
}

}  // namespace

// `thaw lambda [--model NAME] [serve flags]`, and `thaw serve` when
// AWS_LAMBDA_RUNTIME_API is set (the image's entrypoint inside Lambda): serve
// one model on loopback and take its events from the Runtime API. The model:
// --model, else _HANDLER, else the repository's only one; the repository:
// --repo, else $LAMBDA_TASK_ROOT/models, else $LAMBDA_TASK_ROOT.
static int Lambda(const std::vector<std::string>& args, thaw::Micros process_start_us) {
  const char* api = std::getenv("AWS_LAMBDA_RUNTIME_API");
  if (!api || !*api) {
    std::cerr << "thaw lambda: AWS_LAMBDA_RUNTIME_API is not set; this command is a Lambda function's bootstrap "
                 "(README: AWS Lambda)\n";
    return 2;
  }
  // Lambda's file system is read-only but for /tmp: no usage log by default.
  std::vector<std::string> serve_args = {"serve", "--host", "127.0.0.1", "--port", "0", "--usage-log", ""};
  std::string model;
  bool repo_given = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--model" && i + 1 < args.size()) {
      model = args[++i];
      continue;
    }
    repo_given = repo_given || args[i] == "--repo";
    serve_args.push_back(args[i]);
  }
  if (!repo_given) {
    const char* task_root = std::getenv("LAMBDA_TASK_ROOT");
    const fs::path root = task_root && *task_root ? task_root : ".";
    serve_args.push_back("--repo");
    serve_args.push_back(fs::is_directory(root / "models") ? (root / "models").string() : root.string());
  }
  auto command = thaw::cli::ParseCommandLine(serve_args);
  if (!command.ok()) {
    std::cerr << "thaw: " << command.status().message() << "\n";
    return 2;
  }
  if (command->kind == thaw::cli::CommandKind::kHelp) {
    std::cout << thaw::cli::CommandHelp("serve");
    return 0;
  }
  thaw::cli::ServeOptions& options = command->serve;
  if (model.empty() && options.models.size() == 1) model = options.models[0];
  if (const char* handler = std::getenv("_HANDLER"); model.empty() && handler) model = handler;
  if (model.empty()) {
    auto scan = thaw::ScanRepository(thaw::cli::RepoOrDefault(options.repo));
    if (scan.ok() && scan->models.size() == 1) model = scan->models[0].name;
  }
  if (model.empty()) {
    std::cerr << "thaw lambda: which model? pass --model NAME or set the function's handler (_HANDLER) to it\n";
    return 2;
  }
  options.models = {model};
  options.lambda_runtime_api = api;
  options.lambda_model = model;
  if (const char* memory = std::getenv("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")) options.lambda_memory_size_mb = std::atoll(memory);
  return Serve(options, process_start_us);
}

int main(int argc, char** argv) {
  const thaw::Micros process_start_us = thaw::RealClock().NowMicros();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "lambda" || (args[0] == "serve" && std::getenv("AWS_LAMBDA_RUNTIME_API"))))
    return Lambda(args, process_start_us);
  if (thaw::cli::AsksForHelp(args)) {
    auto command = thaw::cli::ParseCommandLine(args);
    if (!command.ok()) {
      std::cerr << "thaw: " << command.status().message() << "\n";
      return 2;
    }
    std::cout << (command->help_topic.empty() ? thaw::cli::HelpText() : thaw::cli::CommandHelp(command->help_topic));
    return 0;
  }
  if (!args.empty() && args[0] == "profile") {
    thaw::cli::ProfileCommandOptions options;
    std::string error;
    if (!thaw::cli::ParseProfileArgs({args.begin() + 1, args.end()}, &options, &error)) {
      std::cerr << "thaw: " << error << "\n";
      return 2;
    }
    return thaw::cli::RunProfile(options);
  }
  if (!args.empty() && (args[0] == "optimize" || args[0] == "variants")) {
    const bool optimize = args[0] == "optimize";
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    std::string error;
    thaw::cli::OptimizeCommandOptions optimize_options;
    thaw::cli::VariantsCommandOptions variants_options;
    if (optimize ? !thaw::cli::ParseOptimizeArgs(rest, &optimize_options, &error)
                 : !thaw::cli::ParseVariantsArgs(rest, &variants_options, &error)) {
      std::cerr << "thaw: " << error << "\n";
      return 2;
    }
    return optimize ? thaw::cli::RunOptimize(optimize_options) : thaw::cli::RunVariants(variants_options);
  }
  if (!args.empty() && args[0] == "init") {
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (rest.empty()) {
      std::cerr << thaw::cli::CommandHelp("init");
      return 2;
    }
    thaw::cli::InitCommandOptions options;
    std::string error;
    if (!thaw::cli::ParseInitArgs(rest, &options, &error)) {
      std::cerr << "thaw: " << error << "\n";
      return 2;
    }
    return thaw::cli::RunInit(options);
  }
  if (!args.empty() && args[0] == "deploy") {
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    if (rest.empty()) {
      std::cerr << thaw::cli::CommandHelp("deploy");
      return 2;
    }
    thaw::cli::DeployCommandOptions options;
    std::string error;
    if (!thaw::cli::ParseDeployArgs(rest, &options, &error)) {
      std::cerr << "thaw: " << error << "\n";
      return 2;
    }
    return thaw::cli::RunDeploy(options);
  }
  auto command = thaw::cli::ParseCommandLine(args);
  if (!command.ok()) {
    std::cerr << "thaw: " << command.status().message() << "\n";
    return 2;
  }
  switch (command->kind) {
    case thaw::cli::CommandKind::kHelp:
      std::cout << (command->help_topic.empty() ? thaw::cli::HelpText() : thaw::cli::CommandHelp(command->help_topic));
      return 0;
    case thaw::cli::CommandKind::kVersion:
      std::cout << "thaw 0.1.0\n";
      return 0;
    case thaw::cli::CommandKind::kServe:
      return Serve(command->serve, process_start_us);
    case thaw::cli::CommandKind::kLoad:
      return Load(command->load);
    case thaw::cli::CommandKind::kCost:
      return Cost(command->cost);
    case thaw::cli::CommandKind::kSimulate:
      return Simulate(command->simulate, /*plan=*/false);
    case thaw::cli::CommandKind::kPlan:
      return Simulate(command->simulate, /*plan=*/true);
    case thaw::cli::CommandKind::kReplay:
      return Replay(command->simulate);
  }
  return 0;
}
