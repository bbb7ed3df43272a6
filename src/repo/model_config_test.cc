#include "repo/model_config.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "base/test_paths.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kValid = R"({
  "backend": "torchscript",
  "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
  "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}],
  "memory_mb": 1024, "max_concurrency": 3, "min_instances": 1, "keep_alive_s": 30
})";

StatusOr<ModelConfig> Parse(std::string_view json) { return ParseModelConfig(json, "m", "/repo/m", "m/config.json"); }

constexpr std::string_view kMinimal = R"({
  "inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 1, 28, 28]}],
  "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
})";

std::string With(std::string_view extra);

TEST(ModelConfigTest, ParsesFieldsAndKeepsDefaults) {
  auto config = Parse(kValid);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->name, "m");
  ASSERT_EQ(config->inputs.size(), 1u);
  EXPECT_EQ(config->inputs[0].shape, (Shape{-1, 1, 28, 28}));
  EXPECT_EQ(config->outputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(config->memory_mb, 1024);
  EXPECT_EQ(config->max_concurrency, 3);
  EXPECT_EQ(config->min_instances, 1);
  EXPECT_EQ(config->keep_alive_s, 30);
  EXPECT_EQ(config->instance_concurrency, 1);  // default, as Lambda
  EXPECT_EQ(config->threads, 1);
  EXPECT_EQ(config->start_path, StartPath::kTemplate);
  EXPECT_EQ(config->start_timeout_ms, 60000);  // default: generous
  EXPECT_EQ(config->ModelPath(), "/repo/m/model.pt");
}

TEST(ModelConfigTest, BackendsAndTheirPlatforms) {
  auto torch = Parse(kMinimal);
  ASSERT_TRUE(torch.ok());
  EXPECT_EQ(torch->backend, "torchscript");
  EXPECT_EQ(torch->platform, "pytorch_torchscript");
  auto xgb = Parse(With(R"("backend": "xgboost", "model_file": "model.ubj")"));
  ASSERT_TRUE(xgb.ok()) << xgb.status().ToString();
  EXPECT_EQ(xgb->platform, "xgboost");  // the backend's, when the file names none
  EXPECT_EQ(xgb->ModelPath(), "/repo/m/model.ubj");
  auto named = Parse(With(R"("backend": "xgboost", "platform": "xgboost_ubj")"));
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->platform, "xgboost_ubj");
  auto again = Parse(EncodeModelConfig(*xgb));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->backend, "xgboost");
  EXPECT_EQ(again->platform, "xgboost");
  auto unknown = Parse(With(R"("backend": "tensorflow")"));
  ASSERT_FALSE(unknown.ok());
  auto onnx = Parse(With(R"("backend": "onnx", "model_file": "model.onnx")"));
  ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
  EXPECT_EQ(onnx->platform, "onnx_opencv");
  EXPECT_NE(unknown.status().message().find("supported: torchscript, xgboost, onnx"), std::string::npos)
      << unknown.status().message();
}

TEST(ModelConfigTest, EncodeRoundTrips) {
  auto config = Parse(kValid);
  ASSERT_TRUE(config.ok());
  config->threads = 2;
  config->start_path = StartPath::kZygote;
  config->template_standby = false;
  config->keep_alive_policy = KeepAlive::kHistogram;
  config->target_concurrency = 0.7;
  config->start_timeout_ms = 1500;
  auto again = Parse(EncodeModelConfig(*config));
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << EncodeModelConfig(*config);
  EXPECT_EQ(EncodeModelConfig(*again), EncodeModelConfig(*config));
  EXPECT_EQ(again->threads, 2);
  EXPECT_EQ(again->start_path, StartPath::kZygote);
  EXPECT_FALSE(again->template_standby);
  EXPECT_EQ(again->keep_alive_policy, KeepAlive::kHistogram);
  EXPECT_DOUBLE_EQ(again->target_concurrency, 0.7);
  EXPECT_EQ(again->start_timeout_ms, 1500);
  EXPECT_EQ(again->inputs[0].shape, (Shape{-1, 1, 28, 28}));
}

TEST(ModelConfigTest, BatchingFieldsParseAndRoundTrip) {
  auto config = Parse(With(R"("batching": "fixed", "max_batch_size": 16, "max_queue_delay_us": 2500,
                              "preferred_batch_sizes": [4, 8], "slo_p99_ms": 25.5)"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->batching, Batching::kFixed);
  EXPECT_EQ(config->max_batch_size, 16);
  EXPECT_EQ(config->max_queue_delay_us, 2500);
  EXPECT_EQ(config->preferred_batch_sizes, (std::vector<int>{4, 8}));
  EXPECT_DOUBLE_EQ(config->slo_p99_ms, 25.5);
  auto again = Parse(EncodeModelConfig(*config));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(EncodeModelConfig(*again), EncodeModelConfig(*config));

  auto defaults = Parse(kMinimal);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->batching, Batching::kOff);
  EXPECT_EQ(defaults->max_batch_size, 8);
  // A settings change may switch batching on while serving.
  auto adaptive = ApplySettings(*defaults, R"({"batching": "adaptive", "slo_p99_ms": 20})", "PUT");
  ASSERT_TRUE(adaptive.ok()) << adaptive.status().ToString();
  EXPECT_EQ(adaptive->batching, Batching::kAdaptive);
}

TEST(ModelConfigTest, ApplySettingsChangesServerlessFieldsOnly) {
  auto config = Parse(kValid);
  ASSERT_TRUE(config.ok());
  auto changed = ApplySettings(*config, R"({"max_concurrency": 5, "keep_alive_policy": "histogram"})", "PUT");
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(changed->max_concurrency, 5);
  EXPECT_EQ(changed->keep_alive_policy, KeepAlive::kHistogram);
  EXPECT_EQ(changed->memory_mb, config->memory_mb);  // untouched
  EXPECT_EQ(changed->name, "m");
  EXPECT_EQ(changed->inputs[0].shape, config->inputs[0].shape);

  auto fixed = ApplySettings(*config, R"({"inputs": []})", "PUT");
  EXPECT_EQ(fixed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fixed.status().message().find("'inputs'"), std::string::npos);
  auto unknown = ApplySettings(*config, R"({"max_concurency": 5})", "PUT");
  EXPECT_NE(unknown.status().message().find("'max_concurency': unknown field"), std::string::npos);
  auto bad = ApplySettings(*config, R"({"min_instances": 9})", "PUT");
  EXPECT_NE(bad.status().message().find("'min_instances'"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(ApplySettings(*config, "[1]", "PUT").ok());
  EXPECT_FALSE(ApplySettings(*config, "{", "PUT").ok());
}

TEST(ModelConfigTest, ApplySettingsRefusesRepeatedKeys) {
  auto config = Parse(kValid);
  ASSERT_TRUE(config.ok());
  // The merge would otherwise keep one of the two values without a word.
  auto twice = ApplySettings(*config, R"({"max_concurrency": 5, "max_concurrency": 50})", "PUT");
  EXPECT_EQ(twice.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(twice.status().message().find("'max_concurrency': appears twice"), std::string::npos)
      << twice.status().message();
  auto nested = ApplySettings(*config,
                              R"({"provisioned_schedule": [{"days": "daily", "start": "08:00", "start": "09:00",
                                  "end": "10:00", "min_instances": 1}]})",
                              "PUT");
  EXPECT_EQ(nested.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(nested.status().message().find("'provisioned_schedule[0].start': appears twice"), std::string::npos)
      << nested.status().message();
}

TEST(ModelConfigTest, StartPaths) {
  for (auto name : {"exec", "zygote", "template"}) {
    auto config = Parse(std::string(R"({"start_path": ")") + name + R"(",
      "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
      "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    EXPECT_EQ(StartPathName(config->start_path), name);
  }
}

TEST(ModelConfigTest, AnInputsImageFormatParsesAndRoundTrips) {
  auto config = Parse(R"({"inputs": [{"name": "image", "datatype": "FP32", "shape": [-1, 3, 8, 8], "format": "NCHW"},
                                     {"name": "hw", "datatype": "FP32", "shape": [8, 8, 3], "format": "NHWC"},
                                     {"name": "plain", "datatype": "FP32", "shape": [-1, 4], "format": "NONE"}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->inputs[0].format, TensorFormat::kNchw);
  EXPECT_EQ(config->inputs[1].format, TensorFormat::kNhwc);
  EXPECT_EQ(config->inputs[2].format, TensorFormat::kNone);
  const std::string encoded = EncodeModelConfig(*config);
  EXPECT_NE(encoded.find(R"("format":"NCHW")"), std::string::npos) << encoded;
  auto again = Parse(encoded);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->inputs[1].format, TensorFormat::kNhwc);
  EXPECT_EQ(EncodeModelConfig(*again), encoded);
}

TEST(ModelConfigTest, ATokenizedTextInputParsesAndRoundTrips) {
  auto config = Parse(R"({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1],
      "tokenizer": {"vocab": "vocab.txt", "feeds": "input_ids", "begin": "[CLS]", "unknown": "[UNK]",
                    "pad": "[PAD]", "max_tokens": 64}}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_TRUE(config->inputs[0].tokenizer.has_value());
  const TokenizerSpec& t = *config->inputs[0].tokenizer;
  EXPECT_EQ(t.kind, "words");
  EXPECT_EQ(t.vocab_file, "vocab.txt");
  EXPECT_EQ(t.feeds, "input_ids");
  EXPECT_EQ(t.begin_token, "[CLS]");
  EXPECT_EQ(t.unknown_token, "[UNK]");
  EXPECT_EQ(t.pad_token, "[PAD]");
  EXPECT_EQ(t.max_tokens, 64);
  const std::string encoded = EncodeModelConfig(*config);
  auto again = Parse(encoded);
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << encoded;
  EXPECT_EQ(EncodeModelConfig(*again), encoded);
  ASSERT_TRUE(again->inputs[0].tokenizer.has_value());
  EXPECT_EQ(again->inputs[0].tokenizer->max_tokens, 64);
}

struct BadCase {
  std::string json;
  std::string field;
};

class ModelConfigErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ModelConfigErrorTest, NamesFileAndField) {
  auto config = Parse(GetParam().json);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("m/config.json"), std::string::npos) << config.status().message();
  EXPECT_NE(config.status().message().find(GetParam().field), std::string::npos) << config.status().message();
}

std::string With(std::string_view extra) {
  std::string json(kMinimal);
  json.insert(json.rfind('}'), std::string(", ") + std::string(extra));
  return json;
}

INSTANTIATE_TEST_SUITE_P(
    BadConfigs, ModelConfigErrorTest,
    ::testing::Values(BadCase{"{", "malformed JSON"}, BadCase{"[]", "JSON object"},
                      BadCase{With(R"("memory_mb": 64)"), "'memory_mb'"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2], "format": "NCHW"}],
                                  "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})",
                              "'inputs[0].format': NCHW needs an image shape"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 8, 8], "format": "CHW"}],
                                  "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}]})",
                              "'inputs[0].format': is 'CHW'"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
                                  "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3, 8, 8], "format": "NCHW"}]})",
                              "'outputs[0].format': unknown field"},
                      BadCase{With(R"("memory_mb": "big")"), "'memory_mb'"},
                      BadCase{With(R"("timeout_ms": 0)"), "'timeout_ms'"},
                      BadCase{With(R"("start_timeout_ms": 0)"), "'start_timeout_ms'"},
                      BadCase{With(R"("max_concurrency": 0)"), "'max_concurrency'"},
                      BadCase{With(R"("instance_concurrency": 0)"), "'instance_concurrency'"},
                      BadCase{With(R"("min_instances": 5)"), "'min_instances'"},
                      BadCase{With(R"("keep_alive_s": -1)"), "'keep_alive_s'"},
                      BadCase{With(R"("threads": 0)"), "'threads'"},
                      BadCase{With(R"("backend": "tensorflow")"), "'backend'"},
                      BadCase{With(R"("start_path": "snapshot")"), "'start_path'"},
                      BadCase{With(R"("template_standby": 1)"), "'template_standby'"},
                      BadCase{With(R"("keep_alive_policy": "lru")"), "'keep_alive_policy'"},
                      BadCase{With(R"("histogram_bin_ms": 0)"), "'histogram_bin_ms'"},
                      BadCase{With(R"("histogram_bin_ms": 7000, "histogram_range_s": 60)"), "'histogram_range_s'"},
                      BadCase{With(R"("target_concurrency": -1)"), "'target_concurrency'"},
                      BadCase{With(R"("panic_window_s": 61)"), "'panic_window_s'"},
                      BadCase{With(R"("provisioned_schedule": [{"days": "often", "start": "08:00", "end": "09:00",
                                     "min_instances": 1}])"), "'provisioned_schedule[0].days'"},
                      BadCase{With(R"("provisioned_schedule": [{"days": "daily", "start": "8am", "end": "09:00",
                                     "min_instances": 1}])"), "'provisioned_schedule[0].start'"},
                      BadCase{With(R"("provisioned_schedule": [{"days": "daily", "start": "08:00", "end": "08:00",
                                     "min_instances": 1}])"), "'provisioned_schedule[0].end'"},
                      BadCase{With(R"("provisioned_schedule": [{"days": "daily", "start": "08:00", "end": "09:00",
                                     "min_instances": 9}])"), "'provisioned_schedule[0].min_instances'"},
                      BadCase{With(R"("batching": "dynamic")"), "'batching'"},
                      BadCase{With(R"("max_batch_size": 0)"), "'max_batch_size'"},
                      BadCase{With(R"("max_queue_delay_us": -1)"), "'max_queue_delay_us'"},
                      BadCase{With(R"("preferred_batch_sizes": [4, 16])"), "'preferred_batch_sizes'"},
                      BadCase{With(R"("preferred_batch_sizes": [4, 4])"), "'preferred_batch_sizes'"},
                      BadCase{With(R"("preferred_batch_sizes": "4")"), "'preferred_batch_sizes'"},
                      BadCase{With(R"("slo_p99_ms": 0)"), "'slo_p99_ms'"},
                      BadCase{With(R"("batching": "adaptive", "timeout_ms": 50, "slo_p99_ms": 100)"), "'slo_p99_ms'"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 2]}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
                                 "batching": "fixed"})",
                              "'batching': needs a variable batch dimension"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "INT64", "shape": [-1],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "ids", "unknown": "u", "pad": "p"}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer': needs a BYTES input"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1, 3],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "ids", "unknown": "u", "pad": "p"}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer': needs one text per row"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1],
                                   "tokenizer": {"vocab": "../v.txt", "feeds": "ids", "unknown": "u", "pad": "p"}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer.vocab'"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "ids", "pad": "p"}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer.unknown': is required"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "ids", "unknown": "u", "pad": "p",
                                                 "kind": "bpe"}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer.kind'"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "ids", "unknown": "u", "pad": "p",
                                                 "max_tokens": 0}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer.max_tokens'"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "mask", "unknown": "u", "pad": "p"}},
                                             {"name": "mask", "datatype": "INT64", "shape": [-1, -1]}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer.feeds': 'mask' is another input"},
                      BadCase{R"({"inputs": [{"name": "t", "datatype": "BYTES", "shape": [-1],
                                   "tokenizer": {"vocab": "v.txt", "feeds": "ids", "unknown": "u", "pad": "p",
                                                 "lowercase": true}}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].tokenizer.lowercase': unknown field"},
                      BadCase{With(R"("model_file": "../x.pt")"), "'model_file'"},
                      BadCase{With(R"("memroy_mb": 5)"), "'memroy_mb'"},
                      BadCase{With(R"("threads": 1, "threads": 2)"), "'threads': appears twice"},
                      BadCase{With(R"("provisioned_schedule": [{"days": "daily", "start": "08:00", "end": "09:00",
                                     "min_instances": 1, "colour": 2}])"),
                              "'provisioned_schedule[0].colour': unknown field"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "shape": [2]}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].shape': appears twice"},
                      BadCase{R"({"outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})", "'inputs'"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP33", "shape": [1]}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].datatype'"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0]}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "'inputs[0].shape'"},
                      BadCase{R"({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]},
                                             {"name": "x", "datatype": "FP32", "shape": [1]}],
                                 "outputs": [{"name": "y", "datatype": "FP32", "shape": [1]}]})",
                              "appears twice"}));

class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("thaw_repo_test_" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void AddModel(const std::string& name, std::string_view config, bool with_model_file) {
    fs::create_directories(root_ / name);
    std::ofstream(root_ / name / "config.json") << config;
    if (with_model_file) std::ofstream(root_ / name / "model.pt") << "weights";
  }

  fs::path root_;
};

TEST_F(RepositoryTest, BadModelsAreReportedAndGoodOnesLoad) {
  AddModel("good", kValid, true);
  AddModel("broken", With(R"("threads": 0)"), true);
  AddModel("nofile", kValid, false);
  fs::create_directories(root_ / "not_a_model");
  auto scan = ScanRepository(root_.string());
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->models.size(), 1u);
  EXPECT_EQ(scan->models[0].name, "good");
  EXPECT_EQ(scan->models[0].directory, (root_ / "good").string());
  ASSERT_EQ(scan->errors.size(), 2u);
  EXPECT_EQ(scan->errors[0].model, "broken");
  EXPECT_EQ(scan->errors[0].status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(scan->errors[1].model, "nofile");
  EXPECT_EQ(scan->errors[1].status.code(), StatusCode::kNotFound);
  EXPECT_NE(scan->errors[1].status.message().find("model_file"), std::string::npos);
}

TEST_F(RepositoryTest, OutputLabelsAreReadWithTheModelAndAMissingFileIsAnError) {
  constexpr std::string_view kLabelled = R"({
    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3], "labels": "classes.txt"}]})";
  AddModel("labelled", kLabelled, true);
  std::ofstream(root_ / "labelled" / "classes.txt") << "cat\r\ndog\nbird\n";
  AddModel("unlabelled", kLabelled, true);  // no classes.txt
  auto scan = ScanRepository(root_.string());
  ASSERT_TRUE(scan.ok());
  ASSERT_EQ(scan->models.size(), 1u);
  EXPECT_EQ(scan->models[0].outputs[0].labels_file, "classes.txt");
  EXPECT_EQ(scan->models[0].outputs[0].labels, (std::vector<std::string>{"cat", "dog", "bird"}));
  ASSERT_EQ(scan->errors.size(), 1u);
  EXPECT_EQ(scan->errors[0].model, "unlabelled");
  EXPECT_EQ(scan->errors[0].status.code(), StatusCode::kNotFound);
  EXPECT_NE(scan->errors[0].status.message().find("'outputs[0].labels'"), std::string::npos)
      << scan->errors[0].status.message();
  // Workers load configs without reading labels files.
  auto worker_view = LoadModelConfig((root_ / "unlabelled").string());
  ASSERT_TRUE(worker_view.ok()) << worker_view.status().ToString();
  EXPECT_TRUE(worker_view->outputs[0].labels.empty());
}

TEST_F(RepositoryTest, ATokenizersVocabularyMustExist) {
  constexpr std::string_view kText = R"({
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1],
                "tokenizer": {"vocab": "vocab.txt", "feeds": "ids", "unknown": "[UNK]", "pad": "[PAD]"}}],
    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}]})";
  AddModel("text", kText, true);
  auto missing = LoadModelConfig((root_ / "text").string());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'inputs[0].tokenizer.vocab'"), std::string::npos)
      << missing.status().message();
  std::ofstream(root_ / "text" / "vocab.txt") << "[PAD]\n[UNK]\n";
  EXPECT_TRUE(LoadModelConfig((root_ / "text").string()).ok());
}

TEST_F(RepositoryTest, MissingRootIsNotFound) {
  auto scan = ScanRepository((root_ / "absent").string());
  EXPECT_EQ(scan.status().code(), StatusCode::kNotFound);
}

TEST(ExampleRepositoryTest, BundledExamplesAreValid) {
  auto scan = ScanRepository(TestSourceDir() + "/examples/models");
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  for (const auto& error : scan->errors) {
    // `large` is generated by the setup script and may be absent before setup.
    if (error.model == "large" && error.status.code() == StatusCode::kNotFound) continue;
    ADD_FAILURE() << error.model << ": " << error.status.ToString();
  }
}

TEST(ModelConfigTest, ProvisionedScheduleParsesAndRoundTrips) {
  auto config = Parse(With(R"("max_concurrency": 4, "provisioned_schedule": [
      {"days": "weekdays", "start": "08:00", "end": "18:00", "min_instances": 3},
      {"days": ["sat", "sun"], "start": "22:30", "end": "02:00", "min_instances": 1}])"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  ASSERT_EQ(config->provisioned_schedule.size(), 2u);
  EXPECT_EQ(config->provisioned_schedule[0].days_mask, 0x1f);
  EXPECT_EQ(config->provisioned_schedule[0].start_minute, 8 * 60);
  EXPECT_EQ(config->provisioned_schedule[0].end_minute, 18 * 60);
  EXPECT_EQ(config->provisioned_schedule[1].days_mask, 0x60);
  EXPECT_EQ(config->provisioned_schedule[1].end_minute, 120);
  auto again = Parse(EncodeModelConfig(*config));
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(EncodeModelConfig(*again), EncodeModelConfig(*config));
}

}  // namespace
}  // namespace thaw

namespace thaw {
namespace {

// Found by fuzz/model_config_fuzz: strings were written into the JSON
// verbatim, so a NUL or a quote in a file or tensor name made the encoded
// config invalid JSON that did not read back.
TEST(ModelConfigTest, EncodedConfigEscapesStrings) {
  auto config = ParseModelConfig(R"({
    "model_file": "mo\"del\u0001.pt", "platform": "a\\b",
    "inputs": [{"name": "in\"put\n", "datatype": "FP32", "shape": [-1, 2]}],
    "outputs": [{"name": "out", "datatype": "FP32", "shape": [-1, 1]}]})",
                                 "m", "/repo/m", "m/config.json");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  const std::string text = EncodeModelConfig(*config);
  auto back = ParseModelConfig(text, "m", "/repo/m", "m/config.json");
  ASSERT_TRUE(back.ok()) << back.status().ToString() << "\n" << text;
  EXPECT_EQ(back->model_file, "mo\"del\x01.pt");
  EXPECT_EQ(back->platform, "a\\b");
  EXPECT_EQ(back->inputs[0].name, "in\"put\n");
  EXPECT_EQ(EncodeModelConfig(*back), text);
}

}  // namespace
}  // namespace thaw

namespace thaw {
namespace {

// README's config table documents every field a config may have.
TEST(ModelConfigTest, ReadmeTableListsEveryField) {
  std::ifstream in(TestSourceDir() + "/README.md");
  ASSERT_TRUE(in) << "README.md not found under " << TestSourceDir();
  std::string first_cells;  // the first cell of every table row naming fields
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("| `")) first_cells += line.substr(0, line.find(" |", 2)) + "\n";
  for (std::string_view field : kModelConfigFields)
    EXPECT_NE(first_cells.find("`" + std::string(field) + "`"), std::string::npos) << field << " is not in README's config table";
}

}  // namespace
}  // namespace thaw
