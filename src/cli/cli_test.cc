#include "cli/cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <map>

namespace thaw::cli {
namespace {

TEST(CliTest, NoArgumentsOrHelpPrintsHelp) {
  EXPECT_EQ(ParseCommandLine({})->kind, CommandKind::kHelp);
  EXPECT_EQ(ParseCommandLine({"--help"})->kind, CommandKind::kHelp);
  EXPECT_EQ(ParseCommandLine({"serve", "--help"})->kind, CommandKind::kHelp);
  EXPECT_NE(HelpText().find("thaw serve"), std::string::npos);
}

// thaw --help is an overview: one line per command of the table, not their flags.
TEST(CliTest, OverviewListsEveryCommandOnOneLine) {
  const std::string overview = HelpText();
  for (const CommandDoc& command : Commands()) {
    SCOPED_TRACE(std::string(command.name));
    EXPECT_NE(overview.find("\n  " + std::string(command.name) + " "), std::string::npos) << overview;
    EXPECT_NE(overview.find(std::string(command.summary)), std::string::npos);
    EXPECT_EQ(std::string(command.summary).find('\n'), std::string::npos);
    EXPECT_EQ(FindCommand(command.name), &command);
  }
  EXPECT_NE(overview.find("thaw CMD --help"), std::string::npos);
  EXPECT_EQ(overview.find("--auth-tokens"), std::string::npos);   // serve's flags are in thaw serve --help
  EXPECT_EQ(overview.find("--slo-p99-ms"), std::string::npos);
  EXPECT_LT(std::count(overview.begin(), overview.end(), '\n'), 25);
  EXPECT_EQ(FindCommand("nonsense"), nullptr);
}

// Every command of the table, those main parses too, answers --help and help CMD with its own help.
TEST(CliTest, EveryCommandHasItsOwnHelp) {
  for (const CommandDoc& command : Commands()) {
    const std::string name(command.name);
    SCOPED_TRACE(name);
    for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
             {name, "--help"}, {name, "-h"}, {"help", name}, {name, "--repo", "x", "--help"}}) {
      EXPECT_TRUE(AsksForHelp(args));
      auto parsed = ParseCommandLine(args);
      ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
      EXPECT_EQ(parsed->kind, CommandKind::kHelp);
      EXPECT_EQ(parsed->help_topic, name);
    }
    const std::string help = CommandHelp(name);
    EXPECT_TRUE(help.starts_with("Usage:\n  thaw " + name)) << help;
    for (const CommandDoc& other : Commands()) {
      if (other.name != command.name) {
        EXPECT_EQ(help.find("\n  thaw " + std::string(other.name) + " "), std::string::npos) << other.name;
      }
    }
  }
  EXPECT_NE(CommandHelp("profile").find("--batch-sizes"), std::string::npos);
  EXPECT_NE(CommandHelp("deploy").find("thaw deploy mappings"), std::string::npos);
  EXPECT_FALSE(AsksForHelp({"serve", "--port", "1"}));
  EXPECT_FALSE(AsksForHelp({"nonsense", "--help"}));  // an error, not help
}

// Unknown commands and flags are named, with the help to read.
TEST(CliTest, UnknownCommandOrFlagPointsToTheRightHelp) {
  auto unknown = ParseCommandLine({"simulat"});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "unknown command 'simulat'; see 'thaw --help'");
  EXPECT_EQ(ParseCommandLine({"--bogus"}).status().message(), "unknown flag '--bogus'; see 'thaw --help'");
  EXPECT_EQ(ParseCommandLine({"help", "nonsense"}).status().message(), "unknown command 'nonsense'; see 'thaw --help'");
  EXPECT_EQ(ParseCommandLine({"serve", "--bogus", "1"}).status().message(),
            "unknown flag '--bogus' for 'thaw serve'; see 'thaw serve --help'");
  EXPECT_EQ(ParseCommandLine({"replay", "--bogus", "1"}).status().message(),
            "unknown flag '--bogus' for 'thaw replay'; see 'thaw replay --help'");
  EXPECT_EQ(ParseCommandLine({"cost", "stray"}).status().message(), "unexpected argument 'stray'; see 'thaw cost --help'");
  std::string model, error;
  EXPECT_FALSE(ParseModelAndFlags("profile", {"m", "--bogus", "1"}, &model, &error,
                                  [](const std::string&, const std::string&, bool*) { return false; }));
  EXPECT_EQ(error, "unknown flag '--bogus' for 'thaw profile'; see 'thaw profile --help'");
}

// "thaw simulate --help" and "thaw help simulate" give that command's help only.
TEST(CliTest, CommandHelpIsThatCommandsPart) {
  for (const char* name : {"serve", "load", "cost", "simulate", "plan", "replay"}) {
    SCOPED_TRACE(name);
    auto command = ParseCommandLine({name, "--help"});
    ASSERT_TRUE(command.ok()) << command.status().ToString();
    EXPECT_EQ(command->kind, CommandKind::kHelp);
    EXPECT_EQ(command->help_topic, name);
    EXPECT_EQ(ParseCommandLine({"help", name})->help_topic, name);
    const std::string help = CommandHelp(name);
    EXPECT_TRUE(help.starts_with("Usage:\n  thaw " + std::string(name) + " ")) << help;
  }
  EXPECT_NE(CommandHelp("simulate").find("--map"), std::string::npos);
  EXPECT_EQ(CommandHelp("simulate").find("--auth-tokens"), std::string::npos);  // serve's
  EXPECT_EQ(CommandHelp("simulate").find("  thaw cost "), std::string::npos);
  EXPECT_NE(CommandHelp("plan").find("--slo-p99-ms"), std::string::npos);
  EXPECT_NE(CommandHelp("replay").find("--target"), std::string::npos);
  EXPECT_EQ(CommandHelp("replay").find("thaw version"), std::string::npos);
  EXPECT_EQ(CommandHelp("nonsense"), "");
  EXPECT_EQ(ParseCommandLine({"help", "profile"})->help_topic, "profile");
  EXPECT_EQ(ParseCommandLine({"--help"})->help_topic, "");
}

TEST(CliTest, PercentAndDecimalText) {
  EXPECT_EQ(PercentText(1, 19366), "0.01 %");
  EXPECT_EQ(PercentText(1, 6), "16.67 %");
  EXPECT_EQ(PercentText(1, 1000000), "< 0.01 %");
  EXPECT_EQ(PercentText(0, 5), "0.00 %");
  EXPECT_EQ(PercentText(0, 0), "0 %");
  EXPECT_EQ(PercentText(5, 5), "100.00 %");
  EXPECT_EQ(DecimalText(155.7312, 1), "155.7");
  EXPECT_EQ(DecimalText(8.7e-05, 3), "0.000");
}

TEST(CliTest, ServeDefaults) {
  auto command = ParseCommandLine({"serve"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->kind, CommandKind::kServe);
  EXPECT_EQ(command->serve.port, 8080);
  EXPECT_EQ(command->serve.host, "127.0.0.1");
  EXPECT_TRUE(command->serve.repo.empty());
  EXPECT_EQ(command->serve.usage_log_path, DefaultUsageLogPath());
  EXPECT_TRUE(std::filesystem::path(DefaultUsageLogPath()).is_absolute()) << DefaultUsageLogPath();
  EXPECT_EQ(command->serve.prices, "aws-x86");
  EXPECT_EQ(command->serve.sandbox, sandbox::SandboxMode::kOn);
  EXPECT_FALSE(command->serve.worker_user.has_value());
}

TEST(CliTest, ServeSandboxFlags) {
  auto command = ParseCommandLine({"serve", "--sandbox=off", "--worker-user", "nobody"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.sandbox, sandbox::SandboxMode::kOff);
  EXPECT_EQ(command->serve.worker_user, (sandbox::WorkerUser{65534, 65534}));
  command = ParseCommandLine({"serve", "--sandbox", "no-seccomp", "--worker-user=1000:1001"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.sandbox, sandbox::SandboxMode::kNoSeccomp);
  EXPECT_EQ(command->serve.worker_user, (sandbox::WorkerUser{1000, 1001}));
  EXPECT_NE(ParseCommandLine({"serve", "--sandbox=maybe"}).status().message().find("--sandbox"), std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--worker-user=no-such-user-thaw"}).status().message().find("--worker-user"),
            std::string::npos);
  EXPECT_NE(CommandHelp("serve").find("--worker-user"), std::string::npos);
}

TEST(CliTest, ServePreparationFlags) {
  auto command = ParseCommandLine({"serve"});
  ASSERT_TRUE(command.ok());
  EXPECT_TRUE(command->serve.prepare);
  EXPECT_EQ(command->serve.prepared_dir, "");
  command = ParseCommandLine({"serve", "--prepare", "off", "--prepared-dir=/var/cache/thaw"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_FALSE(command->serve.prepare);
  EXPECT_EQ(command->serve.prepared_dir, "/var/cache/thaw");
  EXPECT_TRUE(command->serve.zygote_standby);
  command = ParseCommandLine({"serve", "--zygote-standby", "off"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_FALSE(command->serve.zygote_standby);
  EXPECT_NE(ParseCommandLine({"serve", "--zygote-standby=maybe"}).status().message().find("--zygote-standby must be on or off"),
            std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--prepare=later"}).status().message().find("--prepare must be on or off"),
            std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--prepared-dir="}).status().message().find("--prepared-dir"), std::string::npos);
  EXPECT_NE(CommandHelp("serve").find("--prepared-dir"), std::string::npos);
}

TEST(CliTest, ServeMemoryBudgetFlags) {
  auto command = ParseCommandLine({"serve"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->serve.node.memory_charge, sched::MemoryCharge::kMeasured);
  EXPECT_EQ(command->serve.node.eviction_order, policy::EvictionOrder::kLeastRecentlyUsed);
  EXPECT_EQ(command->serve.node.template_starts, 1);
  EXPECT_EQ(command->serve.node.template_admit_calls, 2);
  EXPECT_TRUE(command->serve.node.keep_alive_pool);
  command = ParseCommandLine({"serve", "--memory-charge", "configured", "--eviction=cheapest_restart",
                              "--template-starts", "0", "--template-admit-calls", "1", "--keep-alive-pool", "off"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.node.memory_charge, sched::MemoryCharge::kConfigured);
  EXPECT_EQ(command->serve.node.eviction_order, policy::EvictionOrder::kCheapestRestart);
  EXPECT_EQ(command->serve.node.template_starts, 0);
  EXPECT_EQ(command->serve.node.template_admit_calls, 1);
  EXPECT_FALSE(command->serve.node.keep_alive_pool);
  EXPECT_NE(ParseCommandLine({"serve", "--keep-alive-pool", "maybe"}).status().message().find("on or off"),
            std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--memory-charge=rss"}).status().message().find("measured or configured"),
            std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--eviction=fifo"}).status().message().find("lru or cheapest_restart"),
            std::string::npos);
  EXPECT_FALSE(ParseCommandLine({"serve", "--template-admit-calls", "0"}).ok());
  EXPECT_FALSE(ParseCommandLine({"serve", "--template-starts", "-1"}).ok());
  for (const char* flag : {"--memory-charge", "--eviction", "--template-starts", "--template-admit-calls"})
    EXPECT_NE(CommandHelp("serve").find(flag), std::string::npos) << flag;
}

TEST(CliTest, ServeUsageLogBuffer) {
  auto command = ParseCommandLine({"serve"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->serve.usage_log_buffer_mb, 16);
  command = ParseCommandLine({"serve", "--usage-log-buffer-mb", "64"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.usage_log_buffer_mb, 64);
  for (const char* bad : {"0", "-1", "1x", "", "70000"})
    EXPECT_NE(ParseCommandLine({"serve", std::string("--usage-log-buffer-mb=") + bad}).status().message().find(
                  "--usage-log-buffer-mb"),
              std::string::npos)
        << bad;
}

TEST(CliTest, ServeUsageLogAndPrices) {
  auto command = ParseCommandLine({"serve", "--usage-log", "/var/log/thaw.jsonl", "--prices=aws-arm64"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.usage_log_path, "/var/log/thaw.jsonl");
  EXPECT_EQ(command->serve.prices, "aws-arm64");
  command = ParseCommandLine({"serve", "--usage-log=", "--prices", "prices/mine.json"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.usage_log_path, "");  // no log
  EXPECT_EQ(command->serve.prices, "prices/mine.json");
  EXPECT_NE(ParseCommandLine({"serve", "--prices="}).status().message().find("--prices"), std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--usage-log"}).status().message().find("--usage-log needs a value"),
            std::string::npos);
  EXPECT_NE(CommandHelp("serve").find("--usage-log"), std::string::npos);
}

TEST(CliTest, ServeFlagsInBothForms) {
  auto command = ParseCommandLine({"serve", "--repo", "/models", "--port=9000", "--host", "0.0.0.0", "--memory-mb", "4096"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.repo, "/models");
  EXPECT_EQ(command->serve.port, 9000);
  EXPECT_EQ(command->serve.host, "0.0.0.0");
  EXPECT_EQ(command->serve.memory_mb, 4096);
}

TEST(CliTest, ServeAccessFlags) {
  auto defaults = ParseCommandLine({"serve"});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->serve.auth_tokens_path, "");
  EXPECT_FALSE(defaults->serve.admin_port);
  EXPECT_EQ(defaults->serve.admin_host, "127.0.0.1");
  EXPECT_TRUE(defaults->serve.allowed_hosts.empty());
  EXPECT_TRUE(defaults->serve.allowed_origins.empty());
  auto command = ParseCommandLine({"serve", "--auth-tokens", "/etc/thaw/tokens", "--admin-port=9001", "--admin-host",
                                   "::1", "--allowed-host", "gpu-box", "--allowed-host=gpu-box.example.com",
                                   "--allowed-origin", "https://dash.example.com",
                                   "--allowed-origin=http://localhost:3000"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.auth_tokens_path, "/etc/thaw/tokens");
  ASSERT_TRUE(command->serve.admin_port);
  EXPECT_EQ(*command->serve.admin_port, 9001);
  EXPECT_EQ(command->serve.admin_host, "::1");
  EXPECT_EQ(command->serve.allowed_hosts, (std::vector<std::string>{"gpu-box", "gpu-box.example.com"}));
  EXPECT_EQ(command->serve.allowed_origins,
            (std::vector<std::string>{"https://dash.example.com", "http://localhost:3000"}));
  auto message = [](std::vector<std::string> args) { return ParseCommandLine(args).status().message(); };
  EXPECT_NE(message({"serve", "--admin-port", "x"}).find("--admin-port must be"), std::string::npos);
  EXPECT_NE(message({"serve", "--admin-host", "0.0.0.0"}).find("--admin-host needs --admin-port"), std::string::npos);
  EXPECT_NE(message({"serve", "--port", "9000", "--admin-port", "9000"}).find("must differ"), std::string::npos);
  EXPECT_TRUE(ParseCommandLine({"serve", "--port", "0", "--admin-port", "0"}).ok());
  EXPECT_NE(message({"serve", "--auth-tokens="}).find("--auth-tokens needs"), std::string::npos);
  EXPECT_NE(message({"serve", "--allowed-host", "http://x/"}).find("--allowed-host"), std::string::npos);
  for (std::string origin : {"dash.example.com", "https://dash.example.com/", "https://x.com/path", "https://", "*"})
    EXPECT_NE(message({"serve", "--allowed-origin", origin}).find("--allowed-origin"), std::string::npos) << origin;
  EXPECT_NE(CommandHelp("serve").find("--auth-tokens"), std::string::npos);
  EXPECT_NE(CommandHelp("load").find("THAW_TOKEN"), std::string::npos);
}

TEST(CliTest, ErrorsNameTheProblem) {
  auto bad_port = ParseCommandLine({"serve", "--port", "http"});
  EXPECT_EQ(bad_port.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_port.status().message().find("--port"), std::string::npos);
  EXPECT_FALSE(ParseCommandLine({"serve", "--port", "70000"}).ok());
  EXPECT_NE(ParseCommandLine({"serve", "--memory-mb", "lots"}).status().message().find("--memory-mb"), std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--repo"}).status().message().find("--repo needs a value"), std::string::npos);
  EXPECT_NE(ParseCommandLine({"serve", "--colour", "red"}).status().message().find("--colour"), std::string::npos);
  EXPECT_NE(ParseCommandLine({"deploy"}).status().message().find("deploy"), std::string::npos);
}

std::vector<std::string> LoadArgs(std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"load", "--url", "http://127.0.0.1:8080", "--model", "fraud",
                                   "--request", "req.json", "--rate", "1000", "--duration-s", "5"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TEST(CliTest, LoadDefaults) {
  auto command = ParseCommandLine(LoadArgs());
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->kind, CommandKind::kLoad);
  const LoadCommandOptions& load = command->load;
  EXPECT_EQ(load.url, "http://127.0.0.1:8080");
  EXPECT_EQ(load.model, "fraud");
  EXPECT_EQ(load.request_path, "req.json");
  EXPECT_DOUBLE_EQ(load.rate_per_s, 1000);
  EXPECT_DOUBLE_EQ(load.duration_s, 5);
  EXPECT_EQ(load.arrivals, load::ArrivalProcess::kPoisson);
  EXPECT_EQ(load.seed, 1u);
  EXPECT_EQ(load.max_connections, 256);
  EXPECT_DOUBLE_EQ(load.warmup_s, 0);
  EXPECT_DOUBLE_EQ(load.drain_timeout_s, 30);
  EXPECT_TRUE(load.json_path.empty());
  EXPECT_TRUE(load.csv_path.empty());
  EXPECT_EQ(load.protocol, LoadCommandOptions::Protocol::kHttp);
  EXPECT_FALSE(load.binary_tensors);
}

TEST(CliTest, LoadFlagsInBothForms) {
  auto command = ParseCommandLine(LoadArgs({"--arrivals=constant", "--seed", "18446744073709551615",
                                            "--max-connections=64", "--warmup-s", "1.5", "--drain-timeout-s", "0",
                                            "--json", "out.json", "--csv=out.csv", "--rate=2500.5"}));
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  const LoadCommandOptions& load = command->load;
  EXPECT_EQ(load.arrivals, load::ArrivalProcess::kConstant);
  EXPECT_EQ(load.seed, 18446744073709551615u);
  EXPECT_EQ(load.max_connections, 64);
  EXPECT_DOUBLE_EQ(load.warmup_s, 1.5);
  EXPECT_DOUBLE_EQ(load.drain_timeout_s, 0);
  EXPECT_EQ(load.json_path, "out.json");
  EXPECT_EQ(load.csv_path, "out.csv");
  EXPECT_DOUBLE_EQ(load.rate_per_s, 2500.5);  // the last one wins
  auto grpc = ParseCommandLine(LoadArgs({"--protocol", "grpc"}));
  ASSERT_TRUE(grpc.ok()) << grpc.status().ToString();
  EXPECT_EQ(grpc->load.protocol, LoadCommandOptions::Protocol::kGrpc);
  auto binary = ParseCommandLine(LoadArgs({"--tensors=binary"}));
  ASSERT_TRUE(binary.ok()) << binary.status().ToString();
  EXPECT_TRUE(binary->load.binary_tensors);
  EXPECT_EQ(ParseCommandLine({"load", "--help"})->kind, CommandKind::kHelp);
  EXPECT_NE(CommandHelp("load").find("thaw load"), std::string::npos);
  EXPECT_NE(CommandHelp("load").find("client_overload"), std::string::npos);
}

TEST(CliTest, LoadErrorsNameTheFlag) {
  auto expect_error = [](std::vector<std::string> args, const std::string& needle) {
    auto command = ParseCommandLine(args);
    ASSERT_FALSE(command.ok()) << needle;
    EXPECT_EQ(command.status().code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(command.status().message().find(needle), std::string::npos) << command.status().message();
  };
  expect_error({"load", "--model", "m", "--request", "r", "--rate", "1", "--duration-s", "1"}, "--url");
  expect_error({"load", "--url", "http://h:1", "--request", "r", "--rate", "1", "--duration-s", "1"}, "--model");
  expect_error({"load", "--url", "http://h:1", "--model", "m", "--rate", "1", "--duration-s", "1"}, "--request");
  expect_error({"load", "--url", "http://h:1", "--model", "m", "--request", "r", "--duration-s", "1"}, "--rate");
  expect_error({"load", "--url", "http://h:1", "--model", "m", "--request", "r", "--rate", "1"}, "--duration-s");
  expect_error(LoadArgs({"--url", "https://h:1"}), "--url");
  expect_error(LoadArgs({"--url", "http://h:1/v2"}), "--url");
  expect_error(LoadArgs({"--model", "a/b"}), "--model");
  expect_error(LoadArgs({"--protocol", "h2"}), "--protocol");
  expect_error(LoadArgs({"--tensors", "raw"}), "--tensors");
  expect_error(LoadArgs({"--protocol", "grpc", "--tensors", "binary"}), "--tensors binary");
  expect_error(LoadArgs({"--rate", "0"}), "--rate");
  expect_error(LoadArgs({"--rate", "fast"}), "--rate");
  expect_error(LoadArgs({"--rate", "-3"}), "--rate");
  expect_error(LoadArgs({"--rate", "nan"}), "--rate");
  expect_error(LoadArgs({"--duration-s", "0"}), "--duration-s");
  expect_error(LoadArgs({"--duration-s", "5s"}), "--duration-s");
  expect_error(LoadArgs({"--arrivals", "bursty"}), "--arrivals");
  expect_error(LoadArgs({"--seed", "-1"}), "--seed");
  expect_error(LoadArgs({"--max-connections", "0"}), "--max-connections");
  expect_error(LoadArgs({"--warmup-s", "-1"}), "--warmup-s");
  expect_error(LoadArgs({"--drain-timeout-s", "x"}), "--drain-timeout-s");
  expect_error(LoadArgs({"--json"}), "--json needs a value");
  expect_error(LoadArgs({"--port", "80"}), "'--port' for 'thaw load'");
  expect_error(LoadArgs({"--rate", "10000000", "--duration-s", "86400"}), "--rate x");
}

constexpr Micros kNov28 = 1'795'896'000 * kMicrosPerSecond;  // 2026-11-28T20:00:00Z

// The default usage log is in a state directory, never the current one.
TEST(CliTest, DefaultUsageLogIsInTheStateDirectory) {
  auto with = [](std::map<std::string, std::string> env) {
    return DefaultUsageLogPath([&env](const char* name) -> const char* {
      auto found = env.find(name);
      return found == env.end() ? nullptr : found->second.c_str();
    });
  };
  EXPECT_EQ(with({{"THAW_STATE_DIR", "/srv/thaw"}, {"XDG_STATE_HOME", "/x"}, {"HOME", "/home/a"}}), "/srv/thaw/usage.jsonl");
  EXPECT_EQ(with({{"THAW_STATE_DIR", ""}, {"XDG_STATE_HOME", "/x"}, {"HOME", "/home/a"}}), "/x/thaw/usage.jsonl");
  EXPECT_EQ(with({{"HOME", "/home/a"}}), "/home/a/.local/state/thaw/usage.jsonl");
  EXPECT_EQ(with({}), "/tmp/thaw-state/usage.jsonl");
}

TEST(CliTest, CostDefaults) {
  auto command = ParseCommandLine({"cost"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->kind, CommandKind::kCost);
  EXPECT_EQ(command->cost.usage_log_path, DefaultUsageLogPath());  // where serve writes
  EXPECT_EQ(command->cost.since.kind, Since::Kind::kAll);
  EXPECT_EQ(command->cost.prices, "aws-x86");
  EXPECT_FALSE(command->cost.json);
  EXPECT_EQ(SinceWallUs(command->cost.since, kNov28), std::numeric_limits<Micros>::min());
  EXPECT_EQ(ParseCommandLine({"cost", "--help"})->kind, CommandKind::kHelp);
  EXPECT_NE(CommandHelp("cost").find("thaw cost"), std::string::npos);
}

TEST(CliTest, CostFlagsInBothForms) {
  auto command = ParseCommandLine({"cost", "--usage-log", "u.jsonl", "--since=2026-11-28T20:00:00Z", "--json",
                                   "--prices", "aws-arm64"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  const CostCommandOptions& cost = command->cost;
  EXPECT_EQ(cost.usage_log_path, "u.jsonl");
  EXPECT_EQ(cost.since.kind, Since::Kind::kWallTime);
  EXPECT_EQ(SinceWallUs(cost.since, 0), kNov28);
  EXPECT_TRUE(cost.json);
  EXPECT_EQ(cost.prices, "aws-arm64");
}

TEST(CliTest, SinceWallTimes) {
  EXPECT_EQ(ParseSince("2026-11-28T20:00:00Z")->wall_us, kNov28);
  EXPECT_EQ(ParseSince("2026-11-28T20:00Z")->wall_us, kNov28);
  EXPECT_EQ(ParseSince("2026-11-28T20:00:00.25Z")->wall_us, kNov28 + 250'000);
  EXPECT_EQ(ParseSince("2026-11-28T20:00:00.000001Z")->wall_us, kNov28 + 1);
  EXPECT_EQ(ParseSince("1970-01-01T00:00:00Z")->wall_us, 0);
  EXPECT_EQ(ParseSince("2024-02-29T23:59:59Z")->wall_us, 1'709'251'199 * kMicrosPerSecond);  // leap day
  for (const char* bad : {"2026-11-28", "2026-11-28T20:00:00", "2026-11-28T20:00:00+01:00", "2026-13-01T00:00:00Z",
                          "2026-02-29T00:00:00Z", "2026-11-31T00:00:00Z", "2026-11-28T24:00:00Z",
                          "2026-11-28T20:60:00Z", "2026-11-28T20:00:60Z", "2026-11-28T20:00:00.Z",
                          "2026-11-28T20:00:00.1234567Z", "26-11-28T20:00:00Z", "2026-11-28t20:00:00z"}) {
    auto since = ParseSince(bad);
    ASSERT_FALSE(since.ok()) << bad;
    EXPECT_NE(since.status().message().find("--since"), std::string::npos);
    EXPECT_NE(since.status().message().find(bad), std::string::npos);
  }
}

TEST(CliTest, SinceDurationsBeforeNow) {
  EXPECT_EQ(SinceWallUs(*ParseSince("30s"), kNov28), kNov28 - 30 * kMicrosPerSecond);
  EXPECT_EQ(SinceWallUs(*ParseSince("15m"), kNov28), kNov28 - 15 * 60 * kMicrosPerSecond);
  EXPECT_EQ(SinceWallUs(*ParseSince("2h"), kNov28), kNov28 - 2 * 3600 * kMicrosPerSecond);
  EXPECT_EQ(SinceWallUs(*ParseSince("7d"), kNov28), kNov28 - 7 * 86400 * kMicrosPerSecond);
  EXPECT_EQ(ParseSince("7d")->kind, Since::Kind::kBeforeNow);
  for (const char* bad : {"", "s", "0s", "-5m", "1.5h", "10w", "10", "99999999999d", "2 h"})
    EXPECT_FALSE(ParseSince(bad).ok()) << bad;
}

TEST(CliTest, CostErrorsNameTheFlag) {
  auto expect_error = [](std::vector<std::string> args, const std::string& needle) {
    auto command = ParseCommandLine(args);
    ASSERT_FALSE(command.ok()) << needle;
    EXPECT_EQ(command.status().code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(command.status().message().find(needle), std::string::npos) << command.status().message();
  };
  expect_error({"cost", "--since", "yesterday"}, "--since");
  expect_error({"cost", "--since"}, "--since needs a value");
  expect_error({"cost", "--usage-log="}, "--usage-log");
  expect_error({"cost", "--prices", ""}, "--prices");
  expect_error({"cost", "--json=yes"}, "--json takes no value");
  expect_error({"cost", "--port", "1"}, "'--port' for 'thaw cost'");
  expect_error({"cost", "extra"}, "unexpected argument 'extra'");
}


TEST(CliTest, SimulateParsesATraceAProfileAndAConfig) {
  auto command = ParseCommandLine({"simulate", "--azure", "d01.csv", "--azure-top", "3", "--spread", "uniform",
                                   "--time-scale", "60", "--profile", "p.json", "--config", "c.json", "--seed=4", "--json"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->kind, CommandKind::kSimulate);
  const SimulateCommandOptions& s = command->simulate;
  EXPECT_TRUE(s.azure);
  EXPECT_EQ(s.trace_path, "d01.csv");
  EXPECT_EQ(s.azure_top, 3u);
  EXPECT_EQ(s.spread, "uniform");
  EXPECT_DOUBLE_EQ(s.time_scale, 60);
  EXPECT_EQ(s.seed, 4u);
  EXPECT_TRUE(s.json);
  EXPECT_EQ(s.profile_paths, std::vector<std::string>{"p.json"});
  EXPECT_EQ(s.config_paths, std::vector<std::string>{"c.json"});
  auto two = ParseCommandLine({"simulate", "--trace", "t.csv", "--profile", "a.json", "--profile", "b.json", "--config",
                               "a/config.json", "--config", "b/config.json", "--map", "hash1=b", "--map", "*=a"});
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  EXPECT_EQ(two->simulate.config_paths.size(), 2u);
  EXPECT_EQ(two->simulate.routes, (std::vector<std::string>{"hash1=b", "*=a"}));
  EXPECT_EQ(s.memory_mb, 0);  // unlimited unless asked
  auto budget = ParseCommandLine({"simulate", "--trace", "t.csv", "--profile", "p", "--config", "c", "--memory-mb", "4096",
                                  "--memory-charge", "configured", "--eviction", "cheapest_restart",
                                  "--template-starts", "2", "--template-admit-calls", "1"});
  ASSERT_TRUE(budget.ok()) << budget.status().ToString();
  EXPECT_EQ(budget->simulate.memory_mb, 4096);
  EXPECT_EQ(budget->simulate.node.memory_charge, sched::MemoryCharge::kConfigured);
  EXPECT_EQ(budget->simulate.node.eviction_order, policy::EvictionOrder::kCheapestRestart);
  EXPECT_EQ(budget->simulate.node.template_starts, 2);
  EXPECT_EQ(budget->simulate.node.template_admit_calls, 1);
  EXPECT_FALSE(ParseCommandLine({"simulate", "--trace", "t.csv", "--profile", "p", "--config", "c", "--memory-mb", "64"}).ok());
  auto synthetic = ParseCommandLine({"simulate", "--poisson", "100", "--duration-s", "60", "--profile", "p", "--config", "c"});
  ASSERT_TRUE(synthetic.ok()) << synthetic.status().ToString();
  EXPECT_DOUBLE_EQ(synthetic->simulate.poisson_rate_per_s, 100);
}

TEST(CliTest, ReplayTakesOneModelOrTargetsPerModel) {
  auto one = ParseCommandLine({"replay", "--trace", "t.csv", "--url", "http://127.0.0.1:8080", "--model", "fraud",
                               "--request", "r.json"});
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(one->kind, CommandKind::kReplay);
  EXPECT_EQ(one->simulate.model, "fraud");
  auto two = ParseCommandLine({"replay", "--trace", "t.csv", "--url", "http://127.0.0.1:8080", "--target",
                               "fraud=f.json", "--target", "fashion=i.json", "--map", "*=fraud"});
  ASSERT_TRUE(two.ok()) << two.status().ToString();
  using Target = std::pair<std::string, std::string>;
  EXPECT_EQ(two->simulate.targets, (std::vector<Target>{{"fraud", "f.json"}, {"fashion", "i.json"}}));
  EXPECT_EQ(two->simulate.routes, std::vector<std::string>{"*=fraud"});
  auto error = [](std::vector<std::string> args) { return ParseCommandLine(args).status().message(); };
  EXPECT_NE(error({"replay", "--trace", "t", "--url", "http://h:1"}).find("--target MODEL=FILE"), std::string::npos);
  EXPECT_NE(error({"replay", "--trace", "t", "--url", "http://h:1", "--model", "m", "--request", "r", "--target", "a=b"})
                .find("--target MODEL=FILE"),
            std::string::npos);
  EXPECT_NE(error({"replay", "--trace", "t", "--url", "http://h:1", "--target", "fraud"}).find("MODEL=REQUEST_FILE"),
            std::string::npos);
}

TEST(CliTest, SimulateErrorsNameWhatIsMissing) {
  auto error = [](std::vector<std::string> args) { return ParseCommandLine(args).status().message(); };
  EXPECT_NE(error({"simulate", "--trace", "t.csv", "--config", "c"}).find("--profile"), std::string::npos);
  EXPECT_NE(error({"simulate", "--trace", "t.csv", "--profile", "p"}).find("--config"), std::string::npos);
  EXPECT_NE(error({"simulate", "--profile", "p", "--config", "c"}).find("one trace"), std::string::npos);
  EXPECT_NE(error({"simulate", "--poisson", "5", "--profile", "p", "--config", "c"}).find("--duration-s"), std::string::npos);
  EXPECT_NE(error({"simulate", "--spread", "even"}).find("--spread"), std::string::npos);
  EXPECT_NE(error({"simulate", "--map", "fraud"}).find("FUNCTION=MODEL"), std::string::npos);
  EXPECT_NE(error({"plan", "--trace", "t", "--profile", "p", "--config", "a", "--config", "b", "--slo-p99-ms", "5"})
                .find("one --config"),
            std::string::npos);
}

TEST(CliTest, PlanGridAndWeightFlags) {
  const std::vector<std::string> base = {"plan", "--poisson", "1", "--duration-s", "10", "--profile", "p.json",
                                         "--config", "c.json", "--slo-p99-ms", "50"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    return ParseCommandLine(args);
  };
  auto command = with({"--memory-grid", "256,1024", "--max-concurrency-grid=1,3", "--min-instances-grid", "0",
                       "--keep-alive-grid", "5,60", "--template-keep-alive-grid", "30", "--host-weight", "0.5",
                       "--bill-weight", "2"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->simulate.plan_memory_mb, (std::vector<int64_t>{256, 1024}));
  EXPECT_EQ(command->simulate.plan_max_concurrency, (std::vector<int>{1, 3}));
  EXPECT_EQ(command->simulate.plan_min_instances, (std::vector<int>{0}));
  EXPECT_EQ(command->simulate.plan_keep_alive_s, (std::vector<int64_t>{5, 60}));
  EXPECT_EQ(command->simulate.plan_template_keep_alive_s, (std::vector<int64_t>{30}));
  EXPECT_DOUBLE_EQ(command->simulate.host_weight, 0.5);
  EXPECT_DOUBLE_EQ(command->simulate.bill_weight, 2);
  EXPECT_TRUE(with({}).value().simulate.plan_memory_mb.empty());  // the planner's default grid
  EXPECT_NE(with({"--memory-grid", "64"}).status().message().find("--memory-grid"), std::string::npos);
  EXPECT_NE(with({"--memory-grid", "256,,512"}).status().message().find("--memory-grid"), std::string::npos);
  EXPECT_NE(with({"--max-concurrency-grid", "0"}).status().message().find("--max-concurrency-grid"), std::string::npos);
  EXPECT_NE(with({"--host-weight", "0", "--bill-weight", "0"}).status().message().find("both be 0"), std::string::npos);
  EXPECT_EQ(with({"--accuracy-floor", "base-1pt"}).value().simulate.accuracy_floor, "base-1pt");
  EXPECT_EQ(with({"--accuracy-floor", "0.9"}).value().simulate.accuracy_floor, "0.9");
  EXPECT_TRUE(with({}).value().simulate.accuracy_floor.empty());
  EXPECT_NE(with({"--accuracy-floor", "90"}).status().message().find("--accuracy-floor '90'"), std::string::npos);
  EXPECT_FALSE(ParseCommandLine({"simulate", "--poisson", "1", "--duration-s", "10", "--profile", "p", "--config", "c",
                                 "--memory-grid", "256"})
                   .ok());  // plan only
  EXPECT_NE(CommandHelp("plan").find("--host-weight"), std::string::npos);
}

}  // namespace
}  // namespace thaw::cli
