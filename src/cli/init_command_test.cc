#include "cli/init_command.h"

#include <gtest/gtest.h>

#include "cli/cli.h"

namespace thaw::cli {
namespace {

TEST(InitCommandTest, ParsesFlagsAndDefaultsTheName) {
  InitCommandOptions o;
  std::string error;
  ASSERT_TRUE(ParseInitArgs({"exports/My MLP.v2.pt"}, &o, &error)) << error;
  EXPECT_EQ(o.model_file, "exports/My MLP.v2.pt");
  EXPECT_EQ(o.name, "My-MLP.v2");
  EXPECT_EQ(o.repo, "thaw-models");
  EXPECT_FALSE(o.force);
  EXPECT_TRUE(o.example_input.empty());

  InitCommandOptions p;
  ASSERT_TRUE(ParseInitArgs({"--force", "m.pt", "--name", "fraud", "--repo", "r", "--example-input", "ex.json"}, &p,
                            &error))
      << error;
  EXPECT_EQ(p.model_file, "m.pt");
  EXPECT_EQ(p.name, "fraud");
  EXPECT_EQ(p.repo, "r");
  EXPECT_EQ(p.example_input, "ex.json");
  EXPECT_TRUE(p.force);
}

TEST(InitCommandTest, RejectsBadArguments) {
  auto error_of = [](std::vector<std::string> args) {
    InitCommandOptions o;
    std::string error;
    EXPECT_FALSE(ParseInitArgs(args, &o, &error));
    return error;
  };
  EXPECT_NE(error_of({}).find("MODEL_FILE"), std::string::npos);
  EXPECT_NE(error_of({"m.pt", "--name", "a/b"}).find("--name: bad value 'a/b' (a model name is"), std::string::npos);
  EXPECT_NE(error_of({"m.pt", "--bogus", "1"}).find("unknown flag '--bogus'"), std::string::npos);
  EXPECT_NE(error_of({"m.pt", "--repo"}).find("--repo needs a value"), std::string::npos);
  EXPECT_NE(error_of({"a.pt", "b.pt"}).find("unexpected argument 'b.pt'"), std::string::npos);
}

TEST(InitCommandTest, ModelNames) {
  EXPECT_EQ(DefaultModelName("/x/y/.hidden"), "hidden");
  EXPECT_EQ(DefaultModelName("/x/y/"), "model");
  EXPECT_EQ(DefaultModelName("fraud_v1.pt"), "fraud_v1");
  EXPECT_TRUE(ValidModelName("fraud-0042.v1"));
  EXPECT_FALSE(ValidModelName(".x"));
  EXPECT_FALSE(ValidModelName(""));
  EXPECT_FALSE(ValidModelName("a b"));
  EXPECT_FALSE(ValidModelName(std::string(129, 'a')));
}

TEST(InitCommandTest, ExampleInputIsAV2Request) {
  auto specs = ParseExampleInput(
      R"({"id": "1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "data": [1,2,3,4,5,6,7,8]},
                                 {"name": "ids", "datatype": "INT64", "shape": [2]}]})",
      "ex.json");
  ASSERT_TRUE(specs.ok()) << specs.status().ToString();
  ASSERT_EQ(specs->size(), 2u);
  EXPECT_EQ((*specs)[0].name, "x");
  EXPECT_EQ((*specs)[0].shape, (Shape{2, 4}));
  EXPECT_EQ((*specs)[1].datatype, DataType::kInt64);

  auto bad = [](std::string_view json) { return ParseExampleInput(json, "ex.json").status().message(); };
  EXPECT_NE(bad("{").find("ex.json: malformed JSON"), std::string::npos);
  EXPECT_NE(bad(R"({"inputs": []})").find("at least one input"), std::string::npos);
  EXPECT_NE(bad(R"({"inputs": [{"name": "x", "datatype": "FP33", "shape": [1]}]})").find("unknown datatype 'FP33'"),
            std::string::npos);
  EXPECT_NE(bad(R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]})").find("no -1"),
            std::string::npos);
  EXPECT_NE(bad(R"({"inputs": [{"datatype": "FP32", "shape": [1]}]})").find("inputs[0]: field 'name'"),
            std::string::npos);
}

InitDescription TwoInputsTwoOutputs() {
  auto d = ParseDescription(
      R"({"inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]},{"name":"y","datatype":"INT64","shape":[-1,3]}],)"
      R"("outputs":[{"name":"output__0","datatype":"FP32","shape":[-1,2]},{"name":"output__1","datatype":"FP32","shape":[-1,1]}]})");
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return *d;
}

// The written config is a valid config.json with exactly the described
// tensors and config.json's defaults for the rest.
TEST(InitCommandTest, ConfigFromADescriptionLoads) {
  const InitDescription d = TwoInputsTwoOutputs();
  EXPECT_TRUE(d.problem.empty());
  const std::string text = InitConfigJson(d);
  auto config = ParseModelConfig(text, "mlp", "/repo/mlp", "config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString() << "\n" << text;
  EXPECT_EQ(config->backend, "torchscript");
  EXPECT_EQ(config->model_file, "model.pt");
  ASSERT_EQ(config->inputs.size(), 2u);
  EXPECT_EQ(config->inputs[1].name, "y");
  EXPECT_EQ(config->inputs[1].datatype, DataType::kInt64);
  EXPECT_EQ(config->inputs[1].shape, (Shape{-1, 3}));
  ASSERT_EQ(config->outputs.size(), 2u);
  EXPECT_EQ(config->outputs[1].name, "output__1");
  EXPECT_EQ(config->outputs[1].shape, (Shape{-1, 1}));
  EXPECT_EQ(text.find("memory_mb"), std::string::npos);  // only what is needed
}

TEST(InitCommandTest, SampleRequestFillsOneRow) {
  const InitDescription d = TwoInputsTwoOutputs();
  EXPECT_EQ(SampleRequestJson(d.inputs),
            R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[0.5,0.5,0.5,0.5]},)"
            R"({"name":"y","datatype":"INT64","shape":[1,3],"data":[1,1,1]}]})"
            "\n");
}

TEST(InitCommandTest, NextStepsNameTheRepoAndModel) {
  const std::string steps = NextSteps("my-repo", "mlp");
  EXPECT_NE(steps.find("thaw serve --repo my-repo\n"), std::string::npos) << steps;
  EXPECT_NE(steps.find("curl -s -H 'Content-Type: application/json' -d @my-repo/mlp/request.json http://127.0.0.1:8080/v2/models/mlp/infer"),
            std::string::npos)
      << steps;
}

TEST(InitCommandTest, ProblemsAreNamedWithTheirFix) {
  auto problem = [](std::string_view json) {
    auto d = ParseDescription(json);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return ProblemMessage("net.pt", *d);
  };
  const std::string newer = problem(
      R"({"problem":"newer_format","message":"m","file_version":11,"max_file_version":10,"input":""})");
  EXPECT_NE(newer.find("net.pt was saved by a newer torch"), std::string::npos) << newer;
  EXPECT_NE(newer.find("version 11"), std::string::npos) << newer;
  EXPECT_NE(newer.find("up to 10"), std::string::npos) << newer;
  EXPECT_NE(newer.find("torch 1.13"), std::string::npos) << newer;

  const std::string eager = problem(R"({"problem":"not_torchscript","message":"a torch.save archive"})");
  EXPECT_NE(eager.find("net.pt is not TorchScript"), std::string::npos) << eager;
  EXPECT_NE(eager.find("state_dict"), std::string::npos) << eager;
  EXPECT_NE(eager.find("torch.jit.trace"), std::string::npos) << eager;
  EXPECT_NE(eager.find("torch.jit.script"), std::string::npos) << eager;

  const std::string missing = problem(R"({"problem":"missing","message":"Permission denied"})");
  EXPECT_EQ(missing, "cannot read model file net.pt: Permission denied");

  const std::string shape = problem(R"({"problem":"no_shape","message":"","input":"image"})");
  EXPECT_NE(shape.find("input 'image'"), std::string::npos) << shape;
  EXPECT_NE(shape.find("--example-input"), std::string::npos) << shape;

  const std::string run = problem(R"({"problem":"run","message":"RuntimeError: mat1 and mat2 shapes cannot be multiplied"})");
  EXPECT_NE(run.find("mat1 and mat2"), std::string::npos) << run;
}

TEST(InitCommandTest, MalformedWorkerAnswerIsAnError) {
  EXPECT_FALSE(ParseDescription("").ok());
  EXPECT_FALSE(ParseDescription(R"({"inputs": 3})").ok());
  EXPECT_FALSE(ParseDescription(R"({"inputs": [], "outputs": [{"name": "o"}]})").ok());
}

TEST(InitCommandTest, HelpIsInTheCommandsStyle) {
  EXPECT_TRUE(InitHelp().starts_with("  thaw init MODEL_FILE [--name N] [--repo DIR] [--example-input FILE] [--force]\n"));
  EXPECT_EQ(ParseCommandLine({"help", "init"})->help_topic, "init");
}

}  // namespace
}  // namespace thaw::cli
