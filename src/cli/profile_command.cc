#include "cli/profile_command.h"

#include <algorithm>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstring>
#include <boost/asio/io_context.hpp>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <variant>

#include "base/clock.h"
#include "base/log.h"
#include "cgroup/memory_cgroup.h"
#include "cli/cli.h"
#include "cli/progress.h"
#include "load/arrivals.h"
#include "load/load_generator.h"
#include "protocol/v2.h"
#include "repo/model_config.h"
#include "runtime/process_memory.h"
#include "runtime/runtime.h"
#include "metering/usage_log.h"
#include "sim/profile_json.h"
#include "sim/usage_profile.h"
#include "tensor/batch.h"

namespace thaw::cli {
namespace {

namespace fs = std::filesystem;

template <typename F>
bool RunUntil(boost::asio::io_context& io, const Clock& clock, F done, Micros limit_us = 120 * kMicrosPerSecond) {
  const Micros give_up = clock.NowMicros() + limit_us;
  // One handler at a time, so the caller regains control as soon as `done`.
  while (!done() && clock.NowMicros() < give_up) {
    io.run_one_for(std::chrono::milliseconds(5));
    if (io.stopped()) io.restart();
  }
  return done();
}

// Longer than the template's standby replenish delay (src/worker/worker.cc, 200 ms).
constexpr int kStandbySettleMs = 400;

// `rows` rows made of the request's first row repeated (BYTES tensors too).
StatusOr<std::vector<Tensor>> RowsOf(const std::vector<Tensor>& request, int64_t rows) {
  auto total = BatchRows(request);
  if (!total.ok()) return total.status();
  std::vector<int64_t> split = {1, *total - 1};
  auto parts = SplitBatch(request, split);
  if (!parts.ok()) return parts.status();
  std::vector<std::vector<Tensor>> copies(static_cast<size_t>(rows), (*parts)[0]);
  return ConcatBatch(copies);
}

// A comma-separated list of numbers, each passing `valid` (default: >= 1).
template <typename T, typename Valid = bool (*)(T)>
bool ParseList(const std::string& text, std::vector<T>* out, Valid valid = [](T v) { return v >= 1; }) {
  out->clear();
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    T v{};
    auto [end, err] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (err != std::errc() || end != item.data() + item.size() || !valid(v)) return false;
    out->push_back(v);
  }
  return !out->empty();
}

// The model served for real: a `thaw serve` of it (this binary) in a
// temporary repository, one provisioned instance, keep-alive long; Poisson
// traffic over HTTP from the load generator; the usage log's warm round
// trips. The served profile, or an error naming what failed.
StatusOr<sim::ProfileFile> MeasureServed(const ProfileCommandOptions& o, const ModelConfig& config,
                                         const std::string& body, const Clock& clock) {
  char pattern[] = "/tmp/thaw_profile_XXXXXX";
  if (!::mkdtemp(pattern)) return Unavailable("cannot make a temporary directory");
  const fs::path tmp = pattern;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmp};
  const fs::path model_dir = tmp / "repo" / config.name;
  std::error_code ec;
  fs::create_directories(model_dir, ec);
  for (const auto& entry : fs::directory_iterator(config.directory, ec))
    if (entry.path().filename() != "config.json") fs::create_symlink(entry.path(), model_dir / entry.path().filename(), ec);
  ModelConfig served = config;
  served.min_instances = 1;  // warm round trips only: no cold start in the measurement
  served.keep_alive_policy = KeepAlive::kFixed;
  served.keep_alive_s = 3600;
  served.batching = Batching::kOff;
  std::ofstream(model_dir / "config.json") << EncodeModelConfig(served);

  int port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      if (fd >= 0) ::close(fd);
      return Unavailable("cannot find a free port");
    }
    port = ntohs(addr.sin_port);
    ::close(fd);
  }
  const std::string self = fs::read_symlink("/proc/self/exe", ec).string();
  const std::string usage_log = (tmp / "usage.jsonl").string(), server_log = (tmp / "server.log").string();
  std::vector<std::string> args = {self, "serve", "--repo", (tmp / "repo").string(), "--host", "127.0.0.1",
                                   "--port", std::to_string(port), "--usage-log", usage_log};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  ::posix_spawn_file_actions_init(&files);
  ::posix_spawn_file_actions_addopen(&files, 1, server_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ::posix_spawn_file_actions_adddup2(&files, 1, 2);
  pid_t server = 0;
  const int spawned = ::posix_spawn(&server, self.c_str(), &files, nullptr, argv.data(), environ);
  ::posix_spawn_file_actions_destroy(&files);
  if (spawned != 0) return Unavailable("cannot start thaw serve: " + std::string(std::strerror(spawned)));
  auto stop_server = [&] {
    ::kill(server, SIGTERM);
    int status = 0;
    ::waitpid(server, &status, 0);
  };

  load::LoadOptions load_options{.url = "http://127.0.0.1:" + std::to_string(port),
                                 .model = config.name,
                                 .body = body,
                                 .max_connections = 64,
                                 .drain_timeout_s = 10};
  // Ready: a request answered 200 (the server up, the provisioned instance warm).
  bool ready = false;
  for (const Micros give_up = clock.NowMicros() + 120 * kMicrosPerSecond; !ready && clock.NowMicros() < give_up;) {
    load::LoadGenerator probe(clock, load_options);
    auto r = probe.Run({0});
    ready = r.ok() && !r->requests.empty() && r->requests[0].status == 200;
    if (!ready) ::usleep(200'000);
  }
  if (!ready) {
    stop_server();
    return Unavailable("thaw serve did not answer 200 within 120 s (its log: " + server_log + " is removed)");
  }
  // A Poisson phase per rate, each lasting in proportion to 1/sqrt(rate),
  // cycled kRounds times so that a slow spell of the host is spread over
  // every rate instead of landing on one; after a warm-up at the first rate.
  constexpr int kRounds = 4;
  const Micros warmup_us = 2 * kMicrosPerSecond;
  std::vector<Micros> offsets;
  double weights = 0;
  for (double rate : o.served_rates) weights += 1 / std::sqrt(rate);
  Micros phase_start_us = 0;
  auto add_phase = [&](double rate, double phase_s, uint64_t seed) -> Status {
    auto phase = load::MakeArrivals({.rate_per_s = rate, .duration_s = phase_s, .seed = seed});
    if (!phase.ok()) return phase.status();
    for (Micros t : *phase) offsets.push_back(phase_start_us + t);
    phase_start_us += std::llround(phase_s * kMicrosPerSecond);
    return Status::Ok();
  };
  Status made = add_phase(o.served_rates.front(), static_cast<double>(warmup_us) / kMicrosPerSecond, 1);
  for (int round = 0; made.ok() && round < kRounds; ++round)
    for (size_t i = 0; made.ok() && i < o.served_rates.size(); ++i)
      made = add_phase(o.served_rates[i], o.served_s * (1 / std::sqrt(o.served_rates[i])) / weights / kRounds,
                       2 + round * o.served_rates.size() + i);
  if (!made.ok()) {
    stop_server();
    return made;
  }
  load_options.warmup_us = warmup_us;
  const Micros measured_from_wall_us = clock.WallMicros() + warmup_us;
  load::LoadGenerator generator(clock, load_options);
  auto result = generator.Run(offsets);
  stop_server();
  if (!result.ok()) return result.status();
  // The whole measurement gives the medians and the time by idle gap; the
  // spread is each quantile's median over the rounds, as a median of runs
  // is: a slow spell of the host in one round does not make the tail.
  sim::UsageProfileBuilder builder(config.name);
  std::vector<sim::UsageProfileBuilder> rounds(kRounds, sim::UsageProfileBuilder(config.name));
  const double round_us = static_cast<double>(o.served_s) * kMicrosPerSecond / kRounds;
  THAW_RETURN_IF_ERROR(metering::ReadUsageLog(usage_log, measured_from_wall_us, [&](metering::UsageRecord record) {
    if (const auto* call = std::get_if<metering::InvocationRecord>(&record)) {
      const int round = static_cast<int>(static_cast<double>(call->arrival_wall_us - measured_from_wall_us) / round_us);
      rounds[static_cast<size_t>(std::clamp(round, 0, kRounds - 1))].Add(record);
    }
    builder.Add(record);
  }));
  auto whole = builder.Build();
  if (!whole.ok() || whole->profile.exec_factor_by_idle_us.empty()) return whole;
  std::vector<std::vector<double>> spreads;
  for (const auto& round : rounds) {
    auto part = round.Build();
    if (!part.ok() || part->profile.exec_factor_by_idle_us.empty()) return whole;  // too few samples: the whole's
    spreads.push_back(part->profile.exec_spread);
  }
  for (size_t q = 0; q < whole->profile.exec_spread.size(); ++q) {
    std::vector<double> at;
    for (const auto& spread : spreads) at.push_back(spread[q]);
    whole->profile.exec_spread[q] = sim::MedianOf(at);
  }
  return whole;
}

}  // namespace

bool ParseProfileArgs(const std::vector<std::string>& args, ProfileCommandOptions* o, std::string* error) {
  return ParseModelAndFlags("profile", args, &o->model, error, [&](const std::string& a, const std::string& v, bool* ok) {
    if (a == "--repo") o->repo = v;
    else if (a == "--from-usage") o->usage_log_path = v;
    else if (a == "--request") o->request_path = v;
    else if (a == "--out") o->out_path = v;
    else if (a == "--worker") o->worker_path = v;
    else if (a == "--batch-sizes") *ok = ParseList(v, &o->batch_sizes);
    else if (a == "--threads") *ok = ParseList(v, &o->threads) && std::all_of(o->threads.begin(), o->threads.end(), [](int t) { return t <= 64; });
    else if (a == "--paths") {
      o->start_paths.clear();
      std::stringstream in(v);
      std::string p;
      while (std::getline(in, p, ',')) {
        *ok = *ok && ParseStartPath(p).has_value();
        o->start_paths.push_back(p);
      }
    } else if (a == "--served-s") {
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), o->served_s);
      *ok = err == std::errc() && end == v.data() + v.size() && o->served_s >= 0 && o->served_s <= 3600;
    } else if (a == "--served-rates" || a == "--served-rate") {
      *ok = ParseList(v, &o->served_rates, [](double rate) { return std::isfinite(rate) && rate > 0 && rate <= 10000; });
    } else if (a == "--reps" || a == "--cold-reps" || a == "--spread-reps" || a == "--gap-ms") {
      int n = 0;
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), n);
      const int least = a == "--gap-ms" ? 0 : a == "--spread-reps" ? 2 : 1;
      *ok = err == std::errc() && end == v.data() + v.size() && n >= least && n <= 100000;
      (a == "--reps" ? o->reps : a == "--cold-reps" ? o->cold_reps : a == "--spread-reps" ? o->spread_reps : o->gap_ms) = n;
    } else {
      return false;
    }
    return true;
  });
}

namespace {

int WriteProfile(const ProfileCommandOptions& o, const sim::ProfileFile& profile) {
  const std::string out_path = o.out_path.empty() ? o.model + ".profile.json" : o.out_path;
  if (out_path == "-") {  // the JSON on stdout, for a pipe; the summary to stderr
    std::cout << sim::EncodeProfile(profile) << std::flush;
    if (o.print_summary) std::cerr << "thaw profile " << o.model << ":\n" << sim::ProfileSummaryText(profile);
    return std::cout ? 0 : 1;
  }
  std::ofstream file(out_path, std::ios::binary | std::ios::trunc);
  file << sim::EncodeProfile(profile);
  if (!file) {
    std::cerr << "thaw: cannot write " << out_path << "\n";
    return 1;
  }
  if (o.print_summary)
    std::cout << "thaw profile " << o.model << ":\n"
              << sim::ProfileSummaryText(profile) << "wrote " << fs::absolute(out_path).string()
              << " (for thaw simulate --profile)\n";
  return 0;
}

int ProfileFromUsage(const ProfileCommandOptions& o) {
  sim::UsageProfileBuilder builder(o.model);
  Status read = metering::ReadUsageLog(o.usage_log_path, metering::kSinceBeginning,
                                       [&](metering::UsageRecord record) { builder.Add(record); });
  if (!read.ok()) {
    std::cerr << "thaw: --from-usage: " << read.message() << "\n";
    return 2;
  }
  auto profile = builder.Build();
  if (!profile.ok()) {
    std::cerr << "thaw: --from-usage " << o.usage_log_path << ": " << profile.status().message() << "\n";
    return 2;
  }
  profile->measured = WallTimeIso8601() + " from " + o.usage_log_path;
  return WriteProfile(o, *profile);
}

}  // namespace

int RunProfile(const ProfileCommandOptions& o) {
  if (!o.usage_log_path.empty()) return ProfileFromUsage(o);
  const std::string repo = RepoOrDefault(o.repo);
  auto config = LoadModelConfig(repo + "/" + o.model);
  if (!config.ok()) {
    std::cerr << "thaw: " << config.status().message() << "\n";
    return 2;
  }
  const std::string request_path =
      o.request_path.empty() ? (fs::path(repo).parent_path() / "requests" / (o.model + ".json")).string() : o.request_path;
  std::ifstream request_file(request_path, std::ios::binary);
  std::stringstream body;
  body << request_file.rdbuf();
  auto request = v2::ParseInferRequest(body.str(), std::nullopt);
  if (!request_file || !request.ok()) {
    std::cerr << "thaw: --request " << request_path << ": "
              << (request_file ? request.status().message() : "cannot be read") << "\n";
    return 2;
  }
  if (Status valid = v2::ValidateInferRequest(*config, &*request); !valid.ok()) {
    std::cerr << "thaw: --request: " << valid.message() << "\n";
    return 2;
  }
  std::string worker = o.worker_path;
  if (worker.empty()) {
    std::error_code ec;
    worker = (fs::read_symlink("/proc/self/exe", ec).parent_path() / "thaw-worker").string();
  }

  // The runtime's and workers' INFO events are noise in a measuring tool's
  // output; THAW_LOG_LEVEL still overrides (workers read it too).
  ::setenv("THAW_LOG_LEVEL", "warning", /*overwrite=*/0);
  SetLogLevel(ParseLogLevel(std::getenv("THAW_LOG_LEVEL"), LogLevel::kWarning));
  boost::asio::io_context io;
  RealClock clock;
  // Instances in memory cgroups, as under thaw serve, so their peak charge
  // (what a server with --memory-charge measured counts) can be read.
  cgroup::MemoryCgroups memory_cgroups;
  Runtime runtime(io, clock, RuntimeOptions{.worker_path = worker, .memory_cgroups = &memory_cgroups});
  const int steps = static_cast<int>(o.threads.size() * o.batch_sizes.size()) +
                    static_cast<int>(o.start_paths.size()) * o.cold_reps;
  ProgressBar progress(clock);
  int steps_done = 0;
  sim::ProfileFile out;
  out.model = o.model;
  out.measured = WallTimeIso8601();

  auto infer = [&](const std::string& model, std::vector<Tensor> inputs) -> std::optional<InferOutcome> {
    std::optional<InferOutcome> result;
    runtime.Infer(model, std::move(inputs), {}, clock.NowMicros() + 120 * kMicrosPerSecond,
                  [&](InferOutcome outcome) { result = std::move(outcome); });
    if (!RunUntil(io, clock, [&] { return result.has_value(); }) || !result->status.ok()) {
      std::cerr << "\nthaw: " << model << ": " << (result ? result->status.message() : "no answer in 120 s") << "\n";
      return std::nullopt;
    }
    return result;
  };

  // Executions per batch size and thread count, on a warm template instance.
  for (int threads : o.threads) {
    ModelConfig c = *config;
    c.name = o.model + "-t" + std::to_string(threads);
    c.threads = threads;
    c.start_path = StartPath::kTemplate;
    c.keep_alive_s = 3600;
    c.max_concurrency = 1;
    c.batching = Batching::kOff;
    if (Status added = runtime.AddModel(c); !added.ok()) {
      std::cerr << "thaw: " << added.message() << "\n";
      return 1;
    }
    std::vector<std::pair<int64_t, Micros>> table;
    std::vector<double> single;
    for (int64_t rows : o.batch_sizes) {
      auto inputs = RowsOf(request->inputs, rows);
      if (!inputs.ok()) {
        std::cerr << "thaw: cannot build a batch of " << rows << ": " << inputs.status().message() << "\n";
        return 2;
      }
      std::vector<double> samples;
      const int reps = rows == o.batch_sizes.front() ? std::max(o.reps, o.spread_reps) : o.reps;
      for (int r = 0; r < reps + 3; ++r) {
        io.run_for(std::chrono::milliseconds(o.gap_ms));
        io.restart();
        auto result = infer(c.name, *inputs);
        if (!result) return 1;
        if (r >= 3) samples.push_back(static_cast<double>(result->timing.total_us));  // first runs warm up
      }
      if (rows == o.batch_sizes.front()) single = samples;
      table.push_back({rows, std::max<Micros>(1, static_cast<Micros>(sim::MedianOf(samples)))});
      progress.Update(++steps_done, steps, "threads " + std::to_string(threads) + " rows " + std::to_string(rows));
    }
    if (threads == config->threads || threads == o.threads.front()) {
      out.profile.exec_us_by_rows = table;
      out.profile.exec_cv = sim::CoefficientOfVariation(single);
      out.profile.exec_spread = sim::SpreadOverMedian(single);
    }
    out.exec_us_by_threads[threads] = table;
    if (threads == o.threads.front()) {
      auto status = runtime.GetModelStatus(c.name);
      if (status.ok() && !status->instances.empty()) {
        if (auto memory = ReadProcessMemory(status->instances[0].pid); memory.ok())
          out.memory_kb = {{"rss", memory->rss_kb}, {"pss", memory->pss_kb}, {"private", memory->private_kb}};
        if (auto peak = cgroup::MemoryPeakBytes(status->instances[0].cgroup_dir);
            !status->instances[0].cgroup_dir.empty() && peak.ok())
          out.memory_kb["cgroup_peak"] = *peak / 1024;
        if (c.start_path == StartPath::kTemplate && status->spawner && !status->spawner->cgroup_dir.empty())
          if (auto peak = cgroup::MemoryPeakBytes(status->spawner->cgroup_dir); peak.ok())
            out.memory_kb["template_cgroup_peak"] = *peak / 1024;
      }
    }
    // Its artifact, prepared in the background from this model's run directory,
    // is shared by content with the models measured next: let it finish, or
    // removing the directory makes the runtime prepare it again from theirs.
    RunUntil(io, clock, [&] {
      auto s = runtime.GetModelStatus(c.name);
      return !s.ok() || !s->preparing;
    });
    (void)runtime.RemoveModel(c.name);
  }

  // Cold starts: start to ready of the instance a request waited for.
  auto one_row = RowsOf(request->inputs, 1);
  for (const std::string& path : o.start_paths) {
    ModelConfig c = *config;
    c.name = o.model + "-" + path;
    c.start_path = *ParseStartPath(path);
    c.keep_alive_s = 0;
    c.max_concurrency = 1;
    c.batching = Batching::kOff;
    if (Status added = runtime.AddModel(c); !added.ok()) {
      std::cerr << "thaw: " << added.message() << "\n";
      return 1;
    }
    // The zygote starts with the model and its artifact is prepared in the
    // background; let both finish first, so the first start is "prepared".
    RunUntil(io, clock, [&] {
      auto s = runtime.GetModelStatus(c.name);
      return s.ok() && (!s->spawner || s->spawner->ready) && (c.start_path == StartPath::kExec || s->prepared);
    });
    // Start to ready by level (StartLevel): a template-path model's first start
    // is from the zygote while its template starts; later ones fork from it.
    std::map<std::string, std::vector<double>> starts;
    for (int r = 0; r < o.cold_reps; ++r) {
      RunUntil(io, clock, [&] { return runtime.GetModelStatus(c.name)->instances.empty(); });
      // A template forks its next standby a while after handing one off; a
      // cold start of real traffic, seconds after the last, finds it ready.
      if (c.start_path == StartPath::kTemplate && c.template_standby && r > 0) {
        io.run_for(std::chrono::milliseconds(kStandbySettleMs));
        io.restart();
      }
      const Micros sent_us = clock.NowMicros();
      auto result = infer(c.name, *one_row);
      if (!result) return 1;
      if (result->timing.cold_start) {
        const ColdStartBreakdown& b = result->timing.cold;
        starts[std::string(StartLevelName(result->timing.start_level))].push_back(
            static_cast<double>(b.init_us));
      }
      if (c.start_path == StartPath::kTemplate && r == 0) {
        // The template the first request asked for: its start to ready.
        RunUntil(io, clock, [&] { return runtime.GetModelStatus(c.name)->template_state == "ready"; });
        out.profile.start_us["template_start"] = clock.NowMicros() - sent_us;
      }
      progress.Update(++steps_done, steps, "cold start " + path);
    }
    for (const auto& [level, us] : starts) out.profile.start_us[level] = static_cast<Micros>(sim::MedianOf(us));
    (void)runtime.RemoveModel(c.name);
  }
  progress.Clear();
  runtime.Shutdown();
  io.poll();

  if (o.served_s > 0) {
    std::string rates_text;
    for (double rate : o.served_rates) rates_text += (rates_text.empty() ? "" : ", ") + DecimalText(rate, 0);
    if (::isatty(STDERR_FILENO))  // a note for a person; nothing on stderr otherwise
      std::cerr << "serving " << o.model << " over HTTP for " << o.served_s << " s at " << rates_text << " req/s ...\n";
    auto served = MeasureServed(o, *config, body.str(), clock);
    if (!served.ok()) {
      std::cerr << "thaw: measuring " << o.model << " served: " << served.status().message() << "\n";
      return 1;
    }
    // The in-process table's shape by batch size, lifted by what serving adds
    // at the rows the request has.
    const int64_t rows = served->profile.exec_us_by_rows.front().first;
    const Micros in_process_us = out.profile.ExecUs(rows), served_us = served->profile.ExecUs(rows);
    const Micros overhead_us = served_us - in_process_us;
    // A noisy in-process median (above the served one) must not push larger
    // batches below what the served request took.
    auto lift = [&](std::vector<std::pair<int64_t, Micros>>& table) {
      for (auto& [r, us] : table) us = std::max<Micros>(r >= rows ? served_us : 1, us + overhead_us);
    };
    lift(out.profile.exec_us_by_rows);
    for (auto& [threads, table] : out.exec_us_by_threads) lift(table);
    out.profile.exec_spread = served->profile.exec_spread;
    out.profile.exec_cv = served->profile.exec_cv;
    out.profile.exec_factor_by_idle_us = served->profile.exec_factor_by_idle_us;
    out.measured += " (round trips served over HTTP: " + std::to_string(o.served_s) + " s at " + rates_text +
                    " req/s; " + std::to_string(rows) + " rows " +
                    std::to_string(served_us) + " us vs " + std::to_string(in_process_us) + " us in process)";
  }
  return WriteProfile(o, out);
}

}  // namespace thaw::cli
