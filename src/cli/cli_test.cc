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

}  // namespace
}  // namespace thaw::cli
