#include "cli/cli.h"

#include <gtest/gtest.h>

namespace thaw::cli {
namespace {

TEST(CliTest, NoArgumentsOrHelpPrintsHelp) {
  EXPECT_EQ(ParseCommandLine({})->kind, CommandKind::kHelp);
  EXPECT_EQ(ParseCommandLine({"--help"})->kind, CommandKind::kHelp);
  EXPECT_EQ(ParseCommandLine({"serve", "--help"})->kind, CommandKind::kHelp);
  EXPECT_NE(HelpText().find("thaw serve"), std::string::npos);
}

TEST(CliTest, ServeDefaults) {
  auto command = ParseCommandLine({"serve"});
  ASSERT_TRUE(command.ok());
  EXPECT_EQ(command->kind, CommandKind::kServe);
  EXPECT_EQ(command->serve.port, 8080);
  EXPECT_EQ(command->serve.host, "127.0.0.1");
  EXPECT_TRUE(command->serve.repo.empty());
}

TEST(CliTest, ServeFlagsInBothForms) {
  auto command = ParseCommandLine({"serve", "--repo", "/models", "--port=9000", "--host", "0.0.0.0", "--memory-mb", "4096"});
  ASSERT_TRUE(command.ok()) << command.status().ToString();
  EXPECT_EQ(command->serve.repo, "/models");
  EXPECT_EQ(command->serve.port, 9000);
  EXPECT_EQ(command->serve.host, "0.0.0.0");
  EXPECT_EQ(command->serve.memory_mb, 4096);
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
  EXPECT_EQ(ParseCommandLine({"load", "--help"})->kind, CommandKind::kHelp);
  EXPECT_NE(HelpText().find("thaw load"), std::string::npos);
  EXPECT_NE(HelpText().find("client_overload"), std::string::npos);
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

}  // namespace
}  // namespace thaw::cli
