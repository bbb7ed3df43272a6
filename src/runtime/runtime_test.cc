// Runtime tests against real worker processes and the bundled fraud and
// fashion models. Assertions are on behaviour (which instance served, which
// status came back), never on how long anything took.
#include "runtime/runtime.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <sstream>

#include "base/test_paths.h"
#include "cgroup/memory_cgroup.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;

std::string SourceDir() { return TestSourceDir(); }
std::string BuildDir() { return TestBuildDir(); }

Tensor FloatTensor(std::string name, Shape shape, float value) {
  Tensor t;
  t.name = std::move(name);
  t.datatype = DataType::kFp32;
  t.shape = std::move(shape);
  std::vector<float> values(ElementCount(t.shape), value);
  t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return t;
}

// Whether `pid` is a running process (not gone, not a zombie).
bool Alive(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  std::getline(in, stat);
  const size_t paren = stat.rfind(')');  // the state follows the command name
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] != 'Z' && stat[paren + 2] != 'X';
}

class RuntimeTest : public ::testing::Test {
 public:
  void SetUp() override {
    for (const char* model : {"fraud", "fashion"}) {
      if (!fs::exists(SourceDir() + "/examples/models/" + model + "/model.pt"))
        GTEST_SKIP() << "example model '" << model << "' is missing; run models/build_models.py";
    }
    runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{BuildDir() + "/thaw-worker"});
  }
  void TearDown() override {
    if (runtime_) runtime_->Shutdown();
    io_.poll();
    runtime_.reset();
    fs::remove_all(fs::temp_directory_path() / ("thaw_rt_" + std::to_string(::getpid())));
  }

  ModelConfig Load(const std::string& name) {
    auto config = LoadModelConfig(SourceDir() + "/examples/models/" + name);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return config.value();
  }

  // Workers read config.json from the model directory, so a changed config
  // needs a directory of its own: the example's model file, this config.
  ModelConfig Deploy(const ModelConfig& config) {
    const fs::path dir = fs::temp_directory_path() / ("thaw_rt_" + std::to_string(::getpid())) / config.name;
    fs::remove_all(dir);
    fs::create_directories(dir);
    fs::create_symlink(config.ModelPath(), dir / config.model_file);
    std::ofstream(dir / "config.json") << EncodeModelConfig(config);
    auto deployed = LoadModelConfig(dir.string());
    EXPECT_TRUE(deployed.ok()) << deployed.status().ToString();
    return deployed.value();
  }

  // Sends one request and runs the loop until it completes.
  InferOutcome Run(const std::string& model, std::vector<Tensor> inputs, Micros timeout_us = 30 * kMicrosPerSecond) {
    std::optional<InferOutcome> result;
    runtime_->Infer(model, std::move(inputs), {}, clock_.NowMicros() + timeout_us,
                    [&](InferOutcome outcome) { result = std::move(outcome); });
    RunUntil([&] { return result.has_value(); });
    return std::move(*result);
  }

  // Runs the event loop until `done` holds; fails the test after 60 s.
  template <typename F>
  void RunUntil(F done) {
    const Micros give_up = clock_.NowMicros() + 60 * kMicrosPerSecond;
    while (!done() && clock_.NowMicros() < give_up) {
      io_.run_for(std::chrono::milliseconds(10));
      io_.restart();
    }
    ASSERT_TRUE(done()) << "condition not reached within 60 s";
  }

  int InstanceCount(const std::string& model) { return runtime_->GetModelStatus(model)->instances.size(); }
  // The template cache's state: "none", "starting" or "ready".
  std::string TemplateState(const std::string& model) { return runtime_->GetModelStatus(model)->template_state; }

  // Kills the model's instances and runs until the runtime has seen them go,
  // so its next request starts a new instance (from its template, once that
  // is ready).
  void KillInstances(const std::string& model) {
    const auto status = runtime_->GetModelStatus(model);
    ASSERT_TRUE(status.ok());
    for (const InstanceStatus& instance : status->instances) {
      ASSERT_GT(instance.pid, 0);
      ASSERT_EQ(::kill(instance.pid, SIGKILL), 0) << "pid " << instance.pid << ": " << std::strerror(errno);
    }
    RunUntil([&] { return InstanceCount(model) == 0; });
  }

  boost::asio::io_context io_;
  RealClock clock_;
  std::unique_ptr<Runtime> runtime_;
};

TEST_F(RuntimeTest, FirstRequestColdStartsThenInstanceIsReused) {
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  EXPECT_EQ(InstanceCount("fraud"), 0);  // scale to zero until asked

  InferOutcome first = Run("fraud", {FloatTensor("features", {2, 30}, 1.0f)});
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_TRUE(first.timing.cold_start);
  EXPECT_GT(first.timing.cold.spawn_us + first.timing.cold.runtime_init_us + first.timing.cold.model_load_us, 0);
  ASSERT_EQ(first.outputs.size(), 1u);
  EXPECT_EQ(first.outputs[0].name, "probabilities");
  EXPECT_EQ(first.outputs[0].shape, (Shape{2, 2}));

  InferOutcome second = Run("fraud", {FloatTensor("features", {1, 30}, 0.5f)});
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_FALSE(second.timing.cold_start);
  EXPECT_EQ(second.timing.instance_id, first.timing.instance_id);
  EXPECT_EQ(InstanceCount("fraud"), 1);
}

TEST_F(RuntimeTest, IdleInstanceStopsAfterKeepAlive) {
  ModelConfig config = Load("fraud");
  config.keep_alive_s = 1;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  EXPECT_EQ(InstanceCount("fraud"), 1);
  RunUntil([&] { return InstanceCount("fraud") == 0; });
  InferOutcome again = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(again.status.ok());
  EXPECT_TRUE(again.timing.cold_start);
}

TEST_F(RuntimeTest, MinInstancesStartAtOnceAndStay) {
  ModelConfig config = Load("fraud");
  config.min_instances = 1;
  config.keep_alive_s = 0;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  RunUntil([&] {
    auto status = runtime_->GetModelStatus("fraud");
    return status->instances.size() == 1 && status->instances[0].state == InstanceState::kIdle;
  });
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_FALSE(outcome.timing.cold_start);
  io_.run_for(std::chrono::milliseconds(200));
  EXPECT_EQ(InstanceCount("fraud"), 1);  // keep_alive_s = 0, but provisioned
}

TEST_F(RuntimeTest, KilledInstanceIsReplacedOnNextRequest) {
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  InferOutcome first = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(first.status.ok());
  const int pid = runtime_->GetModelStatus("fraud")->instances.at(0).pid;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  RunUntil([&] { return InstanceCount("fraud") == 0; });
  InferOutcome second = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_TRUE(second.timing.cold_start);
  EXPECT_NE(second.timing.instance_id, first.timing.instance_id);
}

TEST_F(RuntimeTest, DeadlinePassedInQueueNeverRuns) {
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  // A 100 ms deadline cannot survive this cold start (the zygote alone spends ~0.6 s
  // loading libtorch), yet is long enough to be in the future when Infer is called on a
  // loaded machine: the request expires queued, not at the door.
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, 100 * kMicrosPerMilli);
  EXPECT_EQ(outcome.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(outcome.status.message().find("queue"), std::string::npos) << outcome.status.message();
  EXPECT_EQ(outcome.timing.instance_id, 0u);
}

TEST_F(RuntimeTest, LaterRequestWithEarlierDeadlineExpiresFirst) {
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  // Both wait for the cold start; the second one's deadline comes first, so
  // the runtime's wake must move earlier for it.
  std::vector<std::string> order;
  std::optional<InferOutcome> first, second;
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 30 * kMicrosPerSecond,
                  [&](InferOutcome outcome) {
                    first = std::move(outcome);
                    order.push_back("first");
                  });
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 100 * kMicrosPerMilli,
                  [&](InferOutcome outcome) {
                    second = std::move(outcome);
                    order.push_back("second");
                  });
  RunUntil([&] { return first && second; });
  EXPECT_TRUE(first->status.ok()) << first->status.ToString();
  EXPECT_EQ(second->status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(second->status.message().find("queue"), std::string::npos) << second->status.message();
  EXPECT_EQ(order, (std::vector<std::string>{"second", "first"}));
}

TEST_F(RuntimeTest, RequestRunningPastDeadlineFailsAndInstanceIsReplaced) {
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());
  InferOutcome warm = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(warm.status.ok()) << warm.status.ToString();
  // A batch of 4000 images cannot finish in 50 ms (a shorter deadline could pass
  // before Infer is called on a loaded machine).
  InferOutcome slow = Run("fashion", {FloatTensor("image", {4000, 1, 28, 28}, 0.5f)}, 50 * kMicrosPerMilli);
  EXPECT_EQ(slow.status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(slow.timing.instance_id, warm.timing.instance_id);
  EXPECT_EQ(InstanceCount("fashion"), 0);
  InferOutcome after = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(after.status.ok());
  EXPECT_NE(after.timing.instance_id, warm.timing.instance_id);
}

TEST_F(RuntimeTest, FullQueueIsRefusedWithResourceExhausted) {
  ModelConfig config = Load("fraud");
  config.max_concurrency = 1;
  config.max_queue = 0;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  std::vector<InferOutcome> outcomes;
  for (int i = 0; i < 3; ++i)
    runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 30 * kMicrosPerSecond,
                    [&](InferOutcome o) { outcomes.push_back(std::move(o)); });
  RunUntil([&] { return outcomes.size() == 3; });
  int ok = 0, refused = 0;
  for (const auto& o : outcomes) {
    ok += o.status.ok();
    refused += o.status.code() == StatusCode::kResourceExhausted;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(refused, 2);
}

TEST_F(RuntimeTest, ModelThatCannotLoadFailsRequestsWithUnavailable) {
  ModelConfig config = Load("fraud");
  const fs::path dir = fs::temp_directory_path() / ("thaw_broken_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "model.pt") << "this is not a TorchScript archive";
  fs::copy_file(config.directory + "/config.json", dir / "config.json", fs::copy_options::overwrite_existing);
  auto broken = LoadModelConfig(dir.string());
  ASSERT_TRUE(broken.ok()) << broken.status().ToString();
  ASSERT_TRUE(runtime_->AddModel(broken.value()).ok());
  InferOutcome outcome = Run(broken->name, {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(outcome.status.message().find("failed to start"), std::string::npos) << outcome.status.message();
  EXPECT_FALSE(runtime_->GetModelStatus(broken->name)->last_start_error.empty());
  fs::remove_all(dir);
}

TEST_F(RuntimeTest, UnknownModelIsNotFound) {
  InferOutcome outcome = Run("nope", {});
  EXPECT_EQ(outcome.status.code(), StatusCode::kNotFound);
}

// Every start path serves, reports a cold start with its breakdown, and a
// forked instance runs with 2 intra-op threads without hanging (a parent
// that ran OpenMP on more than one thread would hang it).
class StartPathTest : public RuntimeTest,
                      public ::testing::WithParamInterface<std::tuple<StartPath, bool>> {};

TEST_P(StartPathTest, ColdStartWithTwoThreadsServesAndReportsBreakdown) {
  const auto [path, standby] = GetParam();
  ModelConfig config = Load("fashion");
  config.start_path = path;
  config.template_standby = standby;
  config.threads = 2;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  // Batch 8 makes both threads work.
  InferOutcome first = Run("fashion", {FloatTensor("image", {8, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  EXPECT_EQ(first.outputs.at(0).shape, (Shape{8, 10}));
  EXPECT_TRUE(first.timing.cold_start);
  if (path == StartPath::kTemplate) {
    // Deploying started no template: the first instance starts from the
    // zygote, and its request starts the template. Once that is ready, the
    // next instance forks from it.
    EXPECT_EQ(first.timing.start_path, StartPath::kZygote);
    EXPECT_GT(first.timing.cold.model_load_us, 0);
    RunUntil([&] { return TemplateState("fashion") == "ready"; });
    KillInstances("fashion");
    const Tensor from_zygote = first.outputs.at(0);
    first = Run("fashion", {FloatTensor("image", {8, 1, 28, 28}, 0.5f)});
    ASSERT_TRUE(first.status.ok()) << first.status.ToString();
    EXPECT_TRUE(first.timing.cold_start);
    EXPECT_EQ(first.outputs.at(0).data, from_zygote.data);
  }
  EXPECT_EQ(first.timing.start_path, path);
  const ColdStartBreakdown& cold = first.timing.cold;
  EXPECT_GT(cold.first_inference_us, 0);
  EXPECT_GE(cold.total_us, cold.first_inference_us);
  switch (path) {
    case StartPath::kTemplate:
      EXPECT_EQ(cold.model_load_us, 0);  // loaded in the template, before the fork
      EXPECT_EQ(cold.warmup_us, 0);
      EXPECT_EQ(first.timing.start_level, standby ? StartLevel::kStandby : StartLevel::kTemplate);
      break;
    case StartPath::kZygote:
      EXPECT_GT(cold.model_load_us, 0);
      EXPECT_TRUE(first.timing.start_level == StartLevel::kZygote || first.timing.start_level == StartLevel::kPrepared)
          << StartLevelName(first.timing.start_level);
      break;
    case StartPath::kExec:
      EXPECT_GT(cold.model_load_us, 0);
      EXPECT_EQ(first.timing.start_level, StartLevel::kExec);
      break;
  }
  InferOutcome second = Run("fashion", {FloatTensor("image", {8, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(second.status.ok()) << second.status.ToString();
  EXPECT_FALSE(second.timing.cold_start);
  EXPECT_EQ(second.timing.instance_id, first.timing.instance_id);
  EXPECT_EQ(second.outputs.at(0).data, first.outputs.at(0).data);

  auto status = runtime_->GetModelStatus("fashion");
  ASSERT_EQ(status->instances.size(), 1u);
  EXPECT_GT(status->instances[0].pid, 0);
  EXPECT_EQ(status->spawner.has_value(), path != StartPath::kExec);
}

INSTANTIATE_TEST_SUITE_P(Paths, StartPathTest,
                         ::testing::Values(std::make_tuple(StartPath::kExec, false),
                                           std::make_tuple(StartPath::kZygote, false),
                                           std::make_tuple(StartPath::kTemplate, false),
                                           std::make_tuple(StartPath::kTemplate, true)));

// A template is a cache, not a fixture: deploying starts none; a request
// starts its instance from the zygote and the template in the background;
// once that is ready, new instances fork from it (nothing left to load).
TEST_F(RuntimeTest, TemplatePathStartsFromTheZygoteThenForksFromTheReadyTemplate) {
  for (const bool standby : {true, false}) {
    ModelConfig config = Load("fraud");
    config.name = standby ? "fraud_standby" : "fraud_plain";
    config.start_path = StartPath::kTemplate;
    config.template_standby = standby;
    config.keep_alive_s = 0;  // an instance stops once idle: each request starts one
    ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
    auto deployed = runtime_->GetModelStatus(config.name);
    EXPECT_EQ(deployed->template_state, "none") << config.name;
    ASSERT_TRUE(deployed->spawner.has_value());  // the zygote
    RunUntil([&] { return runtime_->Ready(); });  // the zygote only: no template to wait for
    EXPECT_EQ(TemplateState(config.name), "none");

    InferOutcome first = Run(config.name, {FloatTensor("features", {2, 30}, 1.0f)});
    ASSERT_TRUE(first.status.ok()) << first.status.ToString();
    EXPECT_TRUE(first.timing.cold_start);
    EXPECT_EQ(first.timing.start_path, StartPath::kZygote);
    EXPECT_TRUE(first.timing.start_level == StartLevel::kZygote || first.timing.start_level == StartLevel::kPrepared)
        << StartLevelName(first.timing.start_level);
    EXPECT_GT(first.timing.cold.model_load_us, 0);
    const std::string after_first = TemplateState(config.name);  // the request started it
    EXPECT_TRUE(after_first == "starting" || after_first == "ready") << after_first;

    RunUntil([&] { return TemplateState(config.name) == "ready" && InstanceCount(config.name) == 0; });
    auto status = runtime_->GetModelStatus(config.name);
    ASSERT_TRUE(status->spawner.has_value());  // now the template
    EXPECT_TRUE(status->spawner->ready);
    const int template_pid = status->spawner->pid;

    InferOutcome second = Run(config.name, {FloatTensor("features", {2, 30}, 1.0f)});
    ASSERT_TRUE(second.status.ok()) << second.status.ToString();
    EXPECT_TRUE(second.timing.cold_start);
    EXPECT_NE(second.timing.instance_id, first.timing.instance_id);
    EXPECT_EQ(second.timing.start_path, StartPath::kTemplate);
    EXPECT_EQ(second.timing.start_level, standby ? StartLevel::kStandby : StartLevel::kTemplate);
    EXPECT_EQ(second.timing.cold.model_load_us, 0);
    EXPECT_EQ(second.timing.cold.warmup_us, 0);
    EXPECT_EQ(second.outputs.at(0).data, first.outputs.at(0).data);
    EXPECT_EQ(runtime_->GetModelStatus(config.name)->spawner->pid, template_pid);
    EXPECT_EQ(TemplateState(config.name), "ready");
    // The zygote prepared its artifact in the background.
    RunUntil([&] { return runtime_->GetModelStatus(config.name)->prepared; });
  }
}

// The OpenMP trap needs a parent that really ran a parallel region: the
// large model's 224x224 warm-up does (fashion's 28x28 one is too small for
// libtorch to go parallel). A template that warmed on 2 threads hangs here.
TEST_F(RuntimeTest, TemplateChildRunsLargeModelOnTwoThreads) {
  if (!fs::exists(SourceDir() + "/examples/models/large/model.pt"))
    GTEST_SKIP() << "examples/models/large is generated by scripts/build";
  ModelConfig config = Load("large");
  config.start_path = StartPath::kTemplate;
  config.template_standby = false;
  config.threads = 2;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  // The first instance starts from the zygote; the request starts the template.
  ASSERT_TRUE(Run("large", {FloatTensor("image", {2, 3, 224, 224}, 0.5f)}).status.ok());
  RunUntil([&] { return TemplateState("large") == "ready"; });
  KillInstances("large");
  InferOutcome outcome = Run("large", {FloatTensor("image", {2, 3, 224, 224}, 0.5f)});
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_TRUE(outcome.timing.cold_start);
  EXPECT_EQ(outcome.timing.start_path, StartPath::kTemplate);  // a child of the template
  EXPECT_EQ(outcome.outputs.at(0).shape, (Shape{2, 1000}));
}

// A template that dies is not restarted by itself: the model's next request
// (it is still wanted) starts a new one, and instances fork from that.
TEST_F(RuntimeTest, KilledTemplateIsReplacedWhenTheModelIsNextWanted) {
  ModelConfig config = Load("fraud");
  config.start_path = StartPath::kTemplate;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  RunUntil([&] { return TemplateState("fraud") == "ready"; });
  const int old_pid = runtime_->GetModelStatus("fraud")->spawner->pid;
  ASSERT_EQ(::kill(old_pid, SIGKILL), 0);
  RunUntil([&] { return TemplateState("fraud") == "none"; });
  const Micros later = clock_.NowMicros() + 300 * kMicrosPerMilli;
  RunUntil([&] { return clock_.NowMicros() >= later; });
  EXPECT_EQ(TemplateState("fraud"), "none");  // nothing wanted it meanwhile
  InferOutcome served = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(served.status.ok()) << served.status.ToString();
  EXPECT_FALSE(served.timing.cold_start);  // the idle instance serves it
  EXPECT_NE(TemplateState("fraud"), "none");  // the request wanted it
  RunUntil([&] {
    auto spawner = runtime_->GetModelStatus("fraud")->spawner;
    return TemplateState("fraud") == "ready" && spawner && spawner->ready && spawner->pid != old_pid;
  });
  KillInstances("fraud");
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_TRUE(outcome.timing.cold_start);
  EXPECT_EQ(outcome.timing.start_path, StartPath::kTemplate);
}

TEST_F(RuntimeTest, WarmStartsInstancesAheadOfTraffic) {
  ModelConfig config = Load("fraud");
  config.max_concurrency = 2;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  auto started = runtime_->Warm("fraud", 5);
  ASSERT_TRUE(started.ok());
  EXPECT_EQ(*started, 2);  // capped at max_concurrency
  EXPECT_EQ(*runtime_->Warm("fraud", 1), 0);
  RunUntil([&] {
    auto status = runtime_->GetModelStatus("fraud");
    return status->instances.size() == 2 && status->instances[0].state == InstanceState::kIdle &&
           status->instances[1].state == InstanceState::kIdle;
  });
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_FALSE(outcome.timing.cold_start);
  EXPECT_EQ(runtime_->Warm("nope", 1).status().code(), StatusCode::kNotFound);
}

// A caller that comes back every ~1 s, with keep_alive_s 0: under the fixed
// policy every call is a cold start; the histogram policy learns the idle
// time, unloads, and pre-warms an instance just before the next call.
int ColdStartsForPeriodicCaller(RuntimeTest& test, const std::string& policy, int calls) {
  ModelConfig config = test.Load("fraud");
  config.name = "fraud_" + policy;
  config.keep_alive_s = 0;
  config.keep_alive_policy = *ParseKeepAlive(policy);
  config.histogram_bin_ms = 100;
  config.histogram_range_s = 60;
  EXPECT_TRUE(test.runtime_->AddModel(test.Deploy(config)).ok());
  int cold = 0;
  for (int i = 0; i < calls; ++i) {
    InferOutcome outcome = test.Run(config.name, {FloatTensor("features", {1, 30}, 1.0f)});
    EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
    cold += outcome.timing.cold_start;
    const Micros next = test.clock_.NowMicros() + kMicrosPerSecond;
    test.RunUntil([&] { return test.clock_.NowMicros() >= next; });
  }
  return cold;
}

TEST_F(RuntimeTest, HistogramKeepAlivePrewarmsForAPeriodicCaller) {
  constexpr int kCalls = 14;  // the histogram needs 10 idle times before it is trusted
  const int fixed_cold = ColdStartsForPeriodicCaller(*this, "fixed", kCalls);
  const int histogram_cold = ColdStartsForPeriodicCaller(*this, "histogram", kCalls);
  EXPECT_EQ(fixed_cold, kCalls);
  // Cold until the histogram has 10 samples (the first 11 calls), then warm.
  EXPECT_LE(histogram_cold, 12);
  EXPECT_LT(histogram_cold, fixed_cold - 1);
}

TEST_F(RuntimeTest, MemoryPressureEvictsLeastRecentlyUsedIdleInstanceOfAnotherModel) {
  runtime_->Shutdown();
  // fraud needs 512 MB and fashion 1024 MB: 1200 MB holds one instance of
  // either. Both start from the zygote, so no template takes a share.
  runtime_ = std::make_unique<Runtime>(
      io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .memory_budget_mb = 1200});
  for (const char* name : {"fraud", "fashion"}) {
    ModelConfig config = Load(name);
    config.start_path = StartPath::kZygote;
    ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  }
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  EXPECT_EQ(InstanceCount("fraud"), 1);
  InferOutcome fashion = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(fashion.status.ok()) << fashion.status.ToString();
  EXPECT_EQ(InstanceCount("fraud"), 0);  // evicted to make room
  EXPECT_EQ(InstanceCount("fashion"), 1);
}

TEST_F(RuntimeTest, MemoryPressureKeepsProvisionedInstances) {
  runtime_->Shutdown();
  // fraud's floor holds its instance (512 MB) and its template with a
  // standby (2 x 512 MB); fashion's instance needs 1024 MB. 2248 MB leaves
  // 712 MB beside fraud: fashion would fit only by evicting fraud's
  // provisioned instance or its held template.
  runtime_ = std::make_unique<Runtime>(
      io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .memory_budget_mb = 2248});
  ModelConfig fraud = Load("fraud");
  fraud.min_instances = 1;  // provisioned: must not be evicted for fashion
  ASSERT_TRUE(runtime_->AddModel(Deploy(fraud)).ok());
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());
  RunUntil([&] {
    auto status = runtime_->GetModelStatus("fraud");
    return status->template_state == "ready" && status->instances.size() == 1 &&
           status->instances[0].state == InstanceState::kIdle;
  });
  InferOutcome fashion = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  EXPECT_EQ(fashion.status.code(), StatusCode::kUnavailable) << fashion.status.ToString();
  EXPECT_NE(fashion.status.message().find("memory"), std::string::npos) << fashion.status.message();
  EXPECT_EQ(InstanceCount("fraud"), 1);
  EXPECT_EQ(TemplateState("fraud"), "ready");
  EXPECT_EQ(InstanceCount("fashion"), 0);
}

TEST_F(RuntimeTest, StartOverMemoryBudgetIsUnavailable) {
  runtime_->Shutdown();
  runtime_ = std::make_unique<Runtime>(
      io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .memory_budget_mb = 1000});
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());  // 1024 MB per instance
  InferOutcome outcome = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(outcome.status.message().find("memory"), std::string::npos) << outcome.status.message();
  EXPECT_EQ(InstanceCount("fashion"), 0);
}

TEST_F(RuntimeTest, TemplatesCountAgainstTheMemoryBudget) {
  runtime_->Shutdown();
  runtime_ = std::make_unique<Runtime>(
      io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .memory_budget_mb = 1200});
  // With a standby, fraud's template counts 2 x 512 MB: it does not fit
  // beside the instance (512 MB), so it is not started; the request is
  // served from the zygote all the same.
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_EQ(outcome.timing.start_path, StartPath::kZygote);
  EXPECT_EQ(TemplateState("fraud"), "none");
  ASSERT_TRUE(runtime_->RemoveModel("fraud").ok());

  // Without a standby it counts 512 MB: instance and template fit together.
  ModelConfig plain = Load("fraud");
  plain.template_standby = false;
  plain.keep_alive_s = 0;  // the instance goes once idle; the template stays (template_keep_alive_s)
  ASSERT_TRUE(runtime_->AddModel(Deploy(plain)).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  RunUntil([&] { return TemplateState("fraud") == "ready" && InstanceCount("fraud") == 0; });

  // The ready template holds its 512 MB: fashion's instance (1024 MB) fits
  // only by evicting it, as it would an idle instance of another model.
  ModelConfig fashion = Load("fashion");
  fashion.start_path = StartPath::kZygote;
  ASSERT_TRUE(runtime_->AddModel(Deploy(fashion)).ok());
  InferOutcome served = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(served.status.ok()) << served.status.ToString();
  EXPECT_EQ(TemplateState("fraud"), "none");
  EXPECT_EQ(InstanceCount("fashion"), 1);
}

TEST_F(RuntimeTest, RemoveModelFailsItsWorkLoudlyAndFreesTheName) {
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());
  ASSERT_TRUE(Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)}).status.ok());
  std::vector<InferOutcome> outcomes;
  for (int i = 0; i < 3; ++i)  // one running, two queued (max_concurrency 2 is not reached: one instance busy)
    runtime_->Infer("fashion", {FloatTensor("image", {2000, 1, 28, 28}, 0.5f)}, {},
                    clock_.NowMicros() + 60 * kMicrosPerSecond, [&](InferOutcome o) { outcomes.push_back(std::move(o)); });
  ASSERT_TRUE(runtime_->RemoveModel("fashion").ok());
  RunUntil([&] { return outcomes.size() == 3; });
  for (const auto& o : outcomes) {
    EXPECT_EQ(o.status.code(), StatusCode::kUnavailable);
    EXPECT_NE(o.status.message().find("unloaded"), std::string::npos) << o.status.message();
  }
  EXPECT_EQ(runtime_->FindModel("fashion"), nullptr);
  EXPECT_EQ(runtime_->RemoveModel("fashion").code(), StatusCode::kNotFound);
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());
  InferOutcome again = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
}

TEST_F(RuntimeTest, UpdatedSettingsReplaceTheTemplateAndRetireIdleInstances) {
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  const int old_template = runtime_->GetModelStatus("fraud")->spawner->pid;
  ModelConfig changed = *runtime_->FindModel("fraud");
  changed.threads = 2;  // read by workers: they must be replaced
  ASSERT_TRUE(runtime_->UpdateModelConfig(changed).ok());
  EXPECT_EQ(runtime_->FindModel("fraud")->threads, 2);
  RunUntil([&] {
    auto status = runtime_->GetModelStatus("fraud");
    return status->instances.empty() && status->spawner && status->spawner->ready && status->spawner->pid != old_template;
  });
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_TRUE(outcome.timing.cold_start);
  changed.name = "nope";
  EXPECT_EQ(runtime_->UpdateModelConfig(changed).code(), StatusCode::kNotFound);
}

TEST_F(RuntimeTest, ProvisionedScheduleRaisesTheFloorOnlyWhileInForce) {
  // 1970-01-01 was a Thursday; bit 0 is Monday.
  const int today = static_cast<int>((clock_.WallMicros() / kMicrosPerSecond / 86400 + 3) % 7);
  ModelConfig in_force = Load("fraud");
  in_force.name = "fraud_today";
  in_force.provisioned_schedule = {{.days_mask = static_cast<uint8_t>(1 << today), .min_instances = 1}};
  ModelConfig not_today = Load("fraud");
  not_today.name = "fraud_other_days";
  not_today.provisioned_schedule = {{.days_mask = static_cast<uint8_t>(0x7f & ~(1 << today)), .min_instances = 1}};
  ASSERT_TRUE(runtime_->AddModel(Deploy(in_force)).ok());
  ASSERT_TRUE(runtime_->AddModel(Deploy(not_today)).ok());
  // Adding a model starts its provisioned instances at once.
  EXPECT_EQ(InstanceCount("fraud_today"), 1);
  EXPECT_EQ(InstanceCount("fraud_other_days"), 0);
  RunUntil([&] { return runtime_->GetModelStatus("fraud_today")->instances[0].state == InstanceState::kIdle; });
  InferOutcome outcome = Run("fraud_today", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_FALSE(outcome.timing.cold_start);
}

TEST_F(RuntimeTest, ProvisionedInstanceThatDiesIsReplaced) {
  ModelConfig config = Load("fraud");
  config.min_instances = 1;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  RunUntil([&] {
    auto status = runtime_->GetModelStatus("fraud");
    return status->instances.size() == 1 && status->instances[0].state == InstanceState::kIdle;
  });
  const int pid = runtime_->GetModelStatus("fraud")->instances[0].pid;
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  RunUntil([&] {
    auto status = runtime_->GetModelStatus("fraud");
    return status->instances.size() == 1 && status->instances[0].state == InstanceState::kIdle &&
           status->instances[0].pid != pid;
  });
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(outcome.status.ok());
  EXPECT_FALSE(outcome.timing.cold_start);
}

TEST_F(RuntimeTest, DrainAnswersAcceptedWorkAndRefusesNewWork) {
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());
  std::vector<InferOutcome> accepted;
  for (int i = 0; i < 3; ++i)
    runtime_->Infer("fashion", {FloatTensor("image", {64, 1, 28, 28}, 0.5f)}, {},
                    clock_.NowMicros() + 60 * kMicrosPerSecond, [&](InferOutcome o) { accepted.push_back(std::move(o)); });
  bool drained = false;
  runtime_->Drain([&] { drained = true; });
  std::optional<InferOutcome> refused;
  runtime_->Infer("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)}, {},
                  clock_.NowMicros() + 60 * kMicrosPerSecond, [&](InferOutcome o) { refused = std::move(o); });
  RunUntil([&] { return drained; });
  ASSERT_EQ(accepted.size(), 3u);  // every accepted request answered before `drained`
  for (const auto& o : accepted) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->status.code(), StatusCode::kUnavailable);
}


// Deterministic distinct inputs per request, for comparing batched with unbatched results.
Tensor PatternTensor(const TensorSpec& spec, int64_t rows, int64_t seq_len, uint32_t seed) {
  Tensor t;
  t.name = spec.name;
  t.datatype = spec.datatype;
  t.shape = spec.shape;
  t.shape[0] = rows;
  for (size_t d = 1; d < t.shape.size(); ++d)
    if (t.shape[d] == -1) t.shape[d] = seq_len;
  const int64_t n = ElementCount(t.shape);
  uint32_t x = seed * 2654435761u + 12345u;
  auto next = [&] {
    x = x * 1664525u + 1013904223u;
    return x >> 8;
  };
  if (spec.datatype == DataType::kInt64) {
    std::vector<int64_t> values(n);
    for (auto& v : values) v = 1 + next() % 2000;  // token ids within textenc's vocabulary
    t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
  } else {
    std::vector<float> values(n);
    for (auto& v : values) v = static_cast<float>(next() % 20000) / 10000.0f - 1.0f;
    t.data.assign(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  }
  return t;
}

struct BatchCase {
  int64_t rows;
  int64_t seq_len;
};

// Largest difference between two FP32 tensors (infinity if their shapes differ).
double MaxAbsDiff(const Tensor& a, const Tensor& b) {
  if (a.shape != b.shape || a.data.size() != b.data.size()) return std::numeric_limits<double>::infinity();
  const auto* x = reinterpret_cast<const float*>(a.data.data());
  const auto* y = reinterpret_cast<const float*>(b.data.data());
  double worst = 0;
  for (size_t i = 0; i < a.data.size() / sizeof(float); ++i) worst = std::max<double>(worst, std::abs(x[i] - y[i]));
  return worst;
}

class BatchingEqualsUnbatchedTest : public RuntimeTest, public ::testing::WithParamInterface<std::string> {};

// Requests sent together to a batching model run as one execution and each
// gets what it gets when it runs alone. textenc's sequence length is a
// non-batch dim: requests of another length are never mixed in.
TEST_P(BatchingEqualsUnbatchedTest, EachRequestGetsItsUnbatchedResult) {
  const std::string name = GetParam();
  if (!fs::exists(SourceDir() + "/examples/models/" + name + "/model.pt"))
    GTEST_SKIP() << "examples/models/" << name << " is generated by scripts/build";
  std::vector<ExecutionRecord> executions;
  runtime_.reset();
  RuntimeOptions options{BuildDir() + "/thaw-worker"};
  options.on_execution = [&](const ExecutionRecord& record) { executions.push_back(record); };
  runtime_ = std::make_unique<Runtime>(io_, clock_, options);

  ModelConfig plain = Load(name);
  plain.name = name + "_plain";
  ModelConfig batched = Load(name);
  batched.name = name + "_batched";
  batched.batching = Batching::kFixed;
  // large runs ~100 ms per image here: keep its batch small.
  const bool large = name == "large";
  batched.max_batch_size = large ? 2 : 5;
  batched.max_queue_delay_us = 10 * kMicrosPerSecond;  // only a full batch goes
  batched.timeout_ms = 60000;
  ASSERT_TRUE(runtime_->AddModel(Deploy(plain)).ok());
  ASSERT_TRUE(runtime_->AddModel(Deploy(batched)).ok());

  // Rows 1 + 2 + 1 + 1 = 5 fill one batch; textenc adds a request of another
  // sequence length, which must run in an execution of its own.
  std::vector<BatchCase> cases = large ? std::vector<BatchCase>{{1, 0}, {1, 0}}
                                       : std::vector<BatchCase>{{1, 7}, {2, 7}, {1, 7}, {1, 7}};
  if (name == "textenc") cases.push_back({1, 12});
  const TensorSpec& spec = plain.inputs[0];
  std::vector<InferOutcome> alone;
  for (size_t i = 0; i < cases.size(); ++i) {
    alone.push_back(Run(plain.name, {PatternTensor(spec, cases[i].rows, cases[i].seq_len, i)}));
    ASSERT_TRUE(alone.back().status.ok()) << alone.back().status.ToString();
  }
  // Warm the batching model so the batch forms on a ready instance; the
  // first execution (sent at once) teaches the batcher the cost.
  ASSERT_TRUE(Run(batched.name, {PatternTensor(spec, 1, 7, 50)}).status.ok());
  executions.clear();

  std::vector<std::optional<InferOutcome>> together(cases.size());
  for (size_t i = 0; i < cases.size(); ++i)
    runtime_->Infer(batched.name, {PatternTensor(spec, cases[i].rows, cases[i].seq_len, i)}, {},
                    clock_.NowMicros() + 60 * kMicrosPerSecond, [&, i](InferOutcome o) { together[i] = std::move(o); });
  if (name == "textenc") {
    // The odd-length request waits behind the batch (head of line) and then
    // alone for max_queue_delay_us; a request of its length fills its batch.
    runtime_->Infer(batched.name, {PatternTensor(spec, 4, 12, 99)}, {}, clock_.NowMicros() + 60 * kMicrosPerSecond,
                    [](InferOutcome) {});
  }
  RunUntil([&] { return std::all_of(together.begin(), together.end(), [](const auto& o) { return o.has_value(); }); });

  const int64_t batch_rows = large ? 2 : 5;
  for (size_t i = 0; i < cases.size(); ++i) {
    const InferOutcome& got = *together[i];
    ASSERT_TRUE(got.status.ok()) << got.status.ToString();
    const bool odd_length = name == "textenc" && i == 4;
    EXPECT_EQ(got.timing.batch_size, odd_length ? 5 : batch_rows) << "request " << i;
    EXPECT_EQ(got.timing.batch_requests, odd_length ? 2 : static_cast<int>(large ? 2 : 4)) << "request " << i;
    EXPECT_DOUBLE_EQ(got.timing.batch_share, static_cast<double>(cases[i].rows) / got.timing.batch_size);
    ASSERT_EQ(got.outputs.size(), alone[i].outputs.size());
    for (size_t o = 0; o < got.outputs.size(); ++o) {
      EXPECT_EQ(got.outputs[o].shape, alone[i].outputs[o].shape) << "request " << i;
      // Row results of a batch equal the unbatched ones up to float rounding
      // (measured here: fraud, fashion and large bit-exact; textenc within
      // 2.4e-7, as its matrix kernels block 5 rows differently from 1).
      EXPECT_LE(MaxAbsDiff(got.outputs[o], alone[i].outputs[o]), 1e-5) << "request " << i;
    }
  }
  // One execution per batch, metered once.
  RunUntil([&] { return executions.size() >= (name == "textenc" ? 2u : 1u); });
  EXPECT_EQ(executions[0].requests, large ? 2 : 4);
  EXPECT_EQ(executions[0].rows, batch_rows);
  EXPECT_TRUE(executions[0].ok);
  EXPECT_EQ(executions[0].memory_mb, batched.memory_mb);
}

INSTANTIATE_TEST_SUITE_P(ExampleModels, BatchingEqualsUnbatchedTest,
                         ::testing::Values("fraud", "fashion", "textenc", "large"),
                         [](const auto& info) { return info.param; });

// Batching first: a queue that the next batch of each instance absorbs starts
// no instance; only work beyond that does. Without batching, the same queue
// starts an instance per queued request (up to max_concurrency).
TEST_F(RuntimeTest, BatchingAbsorbsAQueueBeforeScalingOut) {
  for (const std::string mode : {"fixed", "off"}) {
    ModelConfig config = Load("fraud");
    config.name = "fraud_" + mode;
    config.batching = *ParseBatching(mode);
    config.max_batch_size = 8;
    config.max_queue_delay_us = 10 * kMicrosPerSecond;
    config.max_concurrency = 4;
    ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
    ASSERT_TRUE(Run(config.name, {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
    ASSERT_EQ(InstanceCount(config.name), 1);
    int answered = 0;
    auto send = [&](int n) {
      for (int i = 0; i < n; ++i)
        runtime_->Infer(config.name, {FloatTensor("features", {1, 30}, 0.1f * i)}, {},
                        clock_.NowMicros() + 60 * kMicrosPerSecond, [&](InferOutcome o) {
                          EXPECT_TRUE(o.status.ok()) << o.status.ToString();
                          ++answered;
                        });
    };
    // 8 fill the instance's batch, 8 more wait for its next one.
    send(16);
    EXPECT_EQ(InstanceCount(config.name), mode == "fixed" ? 1 : 4) << mode;
    if (mode == "fixed") {
      send(8);  // beyond what the instance's next batch takes: one more instance
      EXPECT_EQ(InstanceCount(config.name), 2);
    }
    const int total = mode == "fixed" ? 24 : 16;
    RunUntil([&] { return answered == total; });
  }
}

// A request's deadline is never missed by waiting for a batch to fill: with a
// long max_queue_delay_us the lone request still goes out before its deadline.
TEST_F(RuntimeTest, LoneRequestIsSentBeforeItsDeadlineDespiteTheBatchWindow) {
  ModelConfig config = Load("fraud");
  config.batching = Batching::kFixed;
  config.max_batch_size = 8;
  config.max_queue_delay_us = 10 * kMicrosPerSecond;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  // The first execution goes at once and teaches the batcher its cost.
  InferOutcome first = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});  // a cold start: a long deadline
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  InferOutcome lone = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, 2 * kMicrosPerSecond);
  ASSERT_TRUE(lone.status.ok()) << lone.status.ToString();
  EXPECT_EQ(lone.timing.batch_size, 1);
  EXPECT_GT(lone.timing.batch_wait_us, 0);  // it did wait for company, within its deadline
}


struct CollectingSink : metering::UsageSink {
  void Record(metering::UsageRecord record) override { records.push_back(std::move(record)); }
  template <typename T>
  std::vector<T> Of() const {
    std::vector<T> out;
    for (const auto& r : records)
      if (const T* t = std::get_if<T>(&r)) out.push_back(*t);
    return out;
  }
  std::vector<metering::UsageRecord> records;
};

// Every request leaves an invocation record (refused ones too), every
// stopped instance an instance record, and a provisioned floor its interval.
TEST_F(RuntimeTest, UsageRecordsForRequestsInstancesAndProvisionedTime) {
  CollectingSink sink;
  runtime_.reset();
  runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .usage = &sink});
  ModelConfig config = Load("fraud");
  config.min_instances = 1;
  config.max_concurrency = 1;
  config.max_queue = 0;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  RunUntil([&] { return runtime_->GetModelStatus("fraud")->instances.at(0).state == InstanceState::kIdle; });
  InferOutcome ok = Run("fraud", {FloatTensor("features", {3, 30}, 1.0f)});
  ASSERT_TRUE(ok.status.ok());
  // With the only slot busy and no queue, a second request is refused (429).
  std::optional<InferOutcome> first, refused;
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + kMicrosPerSecond * 30,
                  [&](InferOutcome o) { first = std::move(o); });
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + kMicrosPerSecond * 30,
                  [&](InferOutcome o) { refused = std::move(o); });
  RunUntil([&] { return first && refused; });
  ASSERT_EQ(refused->status.code(), StatusCode::kResourceExhausted);
  runtime_->FlushUsage();
  runtime_->Shutdown();
  io_.poll();

  const auto invocations = sink.Of<metering::InvocationRecord>();
  ASSERT_EQ(invocations.size(), 3u);
  const metering::InvocationRecord& served = invocations[0];
  EXPECT_EQ(served.model, "fraud");
  EXPECT_EQ(served.http_status, 200);
  EXPECT_EQ(served.batch_rows, 3);
  EXPECT_DOUBLE_EQ(served.share, 1.0);
  EXPECT_EQ(served.memory_mb, config.memory_mb);
  EXPECT_TRUE(served.provisioned);  // the min_instances instance
  EXPECT_FALSE(served.cold_start);
  EXPECT_GT(served.compute_us, 0);
  // The floor's instance and template start together at deploy: the
  // template is not ready yet, so the instance starts from the zygote.
  EXPECT_EQ(served.start_path, "zygote");
  const auto refused_record = std::find_if(invocations.begin(), invocations.end(),
                                           [](const auto& r) { return r.http_status == 429; });
  ASSERT_NE(refused_record, invocations.end());
  EXPECT_EQ(refused_record->instance_id, 0u);  // never ran: billed nothing
  EXPECT_EQ(refused_record->batch_rows, 0);

  const auto instances = sink.Of<metering::InstanceRecord>();
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0].stop_reason, "shutdown");
  EXPECT_TRUE(instances[0].provisioned);
  EXPECT_GT(instances[0].busy_us, 0);
  EXPECT_GT(instances[0].init_us, 0);
  EXPECT_LE(instances[0].init_us + instances[0].busy_us + instances[0].idle_us,
            instances[0].stop_wall_us - instances[0].start_wall_us + 1000);

  // FlushUsage closed the first interval; Shutdown closed the reopened one.
  const auto provisioned = sink.Of<metering::ProvisionedRecord>();
  ASSERT_EQ(provisioned.size(), 2u);
  EXPECT_EQ(provisioned[0].instances, 1);
  EXPECT_EQ(provisioned[0].end_wall_us, provisioned[1].start_wall_us);
  EXPECT_GE(provisioned[1].end_wall_us, provisioned[1].start_wall_us);

  // The floor holds the template and its standby from deploy: each holds
  // memory_mb, recorded like the provisioned intervals.
  for (const metering::HeldKind kind : {metering::HeldKind::kTemplate, metering::HeldKind::kStandby}) {
    int intervals = 0;
    for (const auto& held : sink.Of<metering::HeldRecord>()) {
      if (held.model != "fraud" || held.kind != kind) continue;
      ++intervals;
      EXPECT_EQ(held.memory_mb, config.memory_mb);
      EXPECT_GE(held.end_wall_us, held.start_wall_us);
    }
    EXPECT_GE(intervals, 1) << metering::HeldKindName(kind);
  }
  // The shared zygote's held memory is the platform's (no model), recorded
  // at FlushUsage and at shutdown without gaps or overlaps.
  std::vector<metering::HeldRecord> zygote;
  for (const auto& held : sink.Of<metering::HeldRecord>())
    if (held.kind == metering::HeldKind::kZygote) zygote.push_back(held);
  ASSERT_EQ(zygote.size(), 2u);
  for (const auto& held : zygote) {
    EXPECT_EQ(held.model, "");
    EXPECT_EQ(held.memory_mb, cgroup::kZygoteMemoryMb);
    EXPECT_GT(held.end_wall_us, held.start_wall_us);
  }
  EXPECT_EQ(zygote[0].end_wall_us, zygote[1].start_wall_us);
}


// ---- No stuck model: settings changes mid-start, start deadlines, readiness, reloads ----

// A model directory of its own holding a copy (not a link) of `model_file`
// and `config`; returns the config as loaded from it.
ModelConfig DeployCopy(const ModelConfig& config, const std::string& model_file, const std::string& dir_name) {
  const fs::path dir = fs::temp_directory_path() / ("thaw_rt_" + std::to_string(::getpid())) / dir_name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(model_file, dir / config.model_file);
  std::ofstream(dir / "config.json") << EncodeModelConfig(config);
  auto deployed = LoadModelConfig(dir.string());
  EXPECT_TRUE(deployed.ok()) << deployed.status().ToString();
  return deployed.value();
}

// The loop model (src/backend/testdata): its forward never returns for the
// warm-up's inputs, so a start hangs.
ModelConfig LoopConfig(StartPath path, int64_t start_timeout_ms) {
  ModelConfig c;
  c.name = "looper";
  c.model_file = "model.pt";
  c.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  c.outputs = {{"y", DataType::kFp32, {-1, 4}}};
  c.memory_mb = 256;
  c.start_path = path;
  c.start_timeout_ms = start_timeout_ms;
  c.max_concurrency = 1;
  return DeployCopy(c, SourceDir() + "/src/backend/testdata/loop_model.pt", "looper");
}

class StuckStartTest : public RuntimeTest, public ::testing::WithParamInterface<StartPath> {};

TEST_P(StuckStartTest, ModelThatHangsAtWarmUpTimesOutWith503AndIsNotReady) {
  // Long enough for a healthy start on a loaded machine (a process start
  // can take seconds there); the loop never ends, so it is always overrun.
  ASSERT_TRUE(runtime_->AddModel(LoopConfig(GetParam(), 12000)).ok());
  InferOutcome outcome = Run("looper", {FloatTensor("x", {1, 4}, 1.0f)});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnavailable) << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find("did not become ready within start_timeout_ms=12000"), std::string::npos)
      << outcome.status.message();
  // Every path's instance hangs (a template-path model's first one starts
  // from the zygote, its template not being ready).
  EXPECT_NE(outcome.status.message().find("instance of model 'looper'"), std::string::npos) << outcome.status.message();
  auto status = runtime_->GetModelStatus("looper");
  EXPECT_FALSE(status->ready);
  EXPECT_NE(status->not_ready_reason.find("start_timeout_ms=12000"), std::string::npos) << status->not_ready_reason;
  EXPECT_EQ(runtime_->ModelNotReadyReason("looper").value(), status->not_ready_reason);  // the probes' shortcut
  EXPECT_EQ(runtime_->ModelNotReadyReason("nosuch").status().code(), StatusCode::kNotFound);
  for (const auto& instance : status->instances) EXPECT_NE(instance.state, InstanceState::kIdle);
  EXPECT_TRUE(runtime_->Ready());  // a failed model does not hold the server's readiness
  if (GetParam() == StartPath::kTemplate) {
    // The request started the template; it hangs at warm-up too and is
    // killed at its own deadline.
    RunUntil([&] { return TemplateState("looper") == "none"; });
    EXPECT_FALSE(runtime_->GetModelStatus("looper")->ready);
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, StuckStartTest,
                         ::testing::Values(StartPath::kExec, StartPath::kZygote, StartPath::kTemplate),
                         [](const auto& info) { return std::string(StartPathName(info.param)); });

// Template and zygote starts may take seconds on a loaded machine: tests
// that time out a stopped process lower start_timeout_ms once the healthy
// starts are done (a runtime-only setting: no worker is replaced).
void SetStartTimeout(Runtime& runtime, const std::string& model, int64_t ms) {
  ModelConfig changed = *runtime.FindModel(model);
  changed.start_timeout_ms = ms;
  ASSERT_TRUE(runtime.UpdateModelConfig(changed).ok());
}

TEST_F(RuntimeTest, StoppedTemplateIsKilledAndReplaced) {
  ModelConfig config = Load("fraud");
  config.keep_alive_s = 0;  // an instance stops once idle: each request starts one
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());  // starts the template
  RunUntil([&] { return TemplateState("fraud") == "ready" && InstanceCount("fraud") == 0; });
  SetStartTimeout(*runtime_, "fraud", 2000);
  EXPECT_EQ(TemplateState("fraud"), "ready");  // kept: a runtime-only setting
  const int stopped = runtime_->GetModelStatus("fraud")->spawner->pid;
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  // The instance is forked by the stopped template: it never reports.
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_EQ(outcome.status.code(), StatusCode::kUnavailable) << outcome.status.ToString();
  EXPECT_NE(outcome.status.message().find("start_timeout_ms=2000"), std::string::npos) << outcome.status.message();
  RunUntil([&] { return !Alive(stopped); });  // killed, not left stopped
  EXPECT_EQ(TemplateState("fraud"), "none");
  SetStartTimeout(*runtime_, "fraud", 60000);  // for the replacement's own (healthy, maybe slow) start
  // The next request is served (from the zygote) and starts a new template.
  InferOutcome again = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_TRUE(runtime_->GetModelStatus("fraud")->ready);
  RunUntil([&] {
    auto spawner = runtime_->GetModelStatus("fraud")->spawner;
    return TemplateState("fraud") == "ready" && spawner && spawner->ready && spawner->pid != stopped &&
           InstanceCount("fraud") == 0;
  });
  InferOutcome forked = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(forked.status.ok()) << forked.status.ToString();
  EXPECT_EQ(forked.timing.start_path, StartPath::kTemplate);
  EXPECT_TRUE(runtime_->GetModelStatus("fraud")->ready);
}

TEST_F(RuntimeTest, TemplateStoppedWhileLoadingIsKilledAndRetried) {
  // Templates of their own, whose load (~0.6 s) leaves time to stop one
  // while it loads; one forked by the zygote is ready within milliseconds.
  runtime_->Shutdown();
  runtime_ = std::make_unique<Runtime>(
      io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .templates_from_zygote = false});
  ModelConfig config = Load("fraud");
  config.start_timeout_ms = 2000;  // the template's deadline is set when it starts
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  EXPECT_EQ(TemplateState("fraud"), "none");  // deploying starts no template
  RunUntil([&] { return runtime_->Ready(); });  // the server waits for the zygote only
  std::optional<InferOutcome> first;
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 30 * kMicrosPerSecond,
                  [&](InferOutcome o) { first = std::move(o); });
  ASSERT_EQ(TemplateState("fraud"), "starting");  // the request started it
  const int stopped = runtime_->GetModelStatus("fraud")->spawner->pid;
  ASSERT_EQ(::kill(stopped, SIGSTOP), 0);
  // The request does not wait for the template: its instance starts from the zygote.
  RunUntil([&] { return first.has_value(); });
  ASSERT_TRUE(first->status.ok()) << first->status.ToString();
  EXPECT_EQ(first->timing.start_path, StartPath::kZygote);
  RunUntil([&] { return TemplateState("fraud") == "none"; });  // killed at its deadline
  const Micros gone_us = clock_.NowMicros();
  // A template that never got ready is retried when the model is next
  // wanted after a backoff (1 s): not at once.
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  EXPECT_EQ(TemplateState("fraud"), "none");
  RunUntil([&] { return !Alive(stopped); });
  EXPECT_TRUE(runtime_->GetModelStatus("fraud")->ready);  // its instances start from the zygote meanwhile
  EXPECT_TRUE(runtime_->Ready());
  SetStartTimeout(*runtime_, "fraud", 60000);
  RunUntil([&] { return clock_.NowMicros() >= gone_us + 1200 * kMicrosPerMilli; });
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_NE(TemplateState("fraud"), "none");
  RunUntil([&] {
    auto spawner = runtime_->GetModelStatus("fraud")->spawner;
    return TemplateState("fraud") == "ready" && spawner && spawner->ready && spawner->pid != stopped;
  });
  EXPECT_TRUE(runtime_->GetModelStatus("fraud")->ready);
}

TEST_F(RuntimeTest, StoppedStartingInstanceIsKilledAndReplaced) {
  ModelConfig config = Load("fraud");
  config.start_path = StartPath::kExec;
  config.start_timeout_ms = 2000;
  config.max_concurrency = 1;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  std::optional<InferOutcome> first;
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 30 * kMicrosPerSecond,
                  [&](InferOutcome o) { first = std::move(o); });
  auto status = runtime_->GetModelStatus("fraud");
  ASSERT_EQ(status->instances.size(), 1u);
  ASSERT_GT(status->instances[0].pid, 0);
  ASSERT_EQ(::kill(status->instances[0].pid, SIGSTOP), 0);
  RunUntil([&] { return first.has_value(); });
  EXPECT_EQ(first->status.code(), StatusCode::kUnavailable) << first->status.ToString();
  EXPECT_NE(first->status.message().find("instance of model 'fraud' did not become ready within start_timeout_ms=2000"),
            std::string::npos) << first->status.message();
  EXPECT_FALSE(runtime_->GetModelStatus("fraud")->ready);
  SetStartTimeout(*runtime_, "fraud", 60000);
  InferOutcome again = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_TRUE(runtime_->GetModelStatus("fraud")->ready);
}

class SettingsDuringColdStartTest : public RuntimeTest, public ::testing::WithParamInterface<StartPath> {};

// With max_concurrency 1, an instance started under replaced settings must
// not hold the only slot: requests queued across two changes all succeed.
TEST_P(SettingsDuringColdStartTest, ChangesMidStartDoNotWedgeTheModel) {
  ModelConfig config = Load("fraud");
  config.start_path = GetParam();
  config.max_concurrency = 1;
  ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  std::vector<InferOutcome> outcomes;
  auto send = [&] {
    runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 20 * kMicrosPerSecond,
                    [&](InferOutcome o) { outcomes.push_back(std::move(o)); });
  };
  send();
  ModelConfig changed = *runtime_->FindModel("fraud");
  changed.threads = 2;
  ASSERT_TRUE(runtime_->UpdateModelConfig(changed).ok());
  send();
  io_.run_for(std::chrono::milliseconds(300));
  io_.restart();
  changed.threads = 1;
  ASSERT_TRUE(runtime_->UpdateModelConfig(changed).ok());
  send();
  RunUntil([&] { return outcomes.size() == 3; });
  for (const auto& o : outcomes) EXPECT_TRUE(o.status.ok()) << o.status.ToString();
  // Nothing is left retiring: the one instance serves the current settings.
  auto status = runtime_->GetModelStatus("fraud");
  ASSERT_EQ(status->instances.size(), 1u);
  EXPECT_EQ(status->instances[0].state, InstanceState::kIdle);
  EXPECT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
}

INSTANTIATE_TEST_SUITE_P(Paths, SettingsDuringColdStartTest,
                         ::testing::Values(StartPath::kExec, StartPath::kZygote, StartPath::kTemplate),
                         [](const auto& info) { return std::string(StartPathName(info.param)); });

// A template is the zygote's child, leading its own process group (so its
// standby and instances go with it), and loads in the zygote's initialised
// engine: its Ready reports no runtime_init of its own.
TEST_F(RuntimeTest, TemplateIsForkedByTheZygoteInItsOwnProcessGroup) {
  ModelConfig zygote_model = Load("fashion");
  zygote_model.start_path = StartPath::kZygote;
  ASSERT_TRUE(runtime_->AddModel(Deploy(zygote_model)).ok());
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  RunUntil([&] { return TemplateState("fraud") == "ready"; });
  const int template_pid = runtime_->GetModelStatus("fraud")->spawner->pid;
  const int zygote_pid = runtime_->GetModelStatus("fashion")->spawner->pid;
  ASSERT_GT(template_pid, 0);
  std::ifstream stat("/proc/" + std::to_string(template_pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string state;
  int ppid = 0, pgrp = 0;
  fields >> state >> ppid >> pgrp;
  EXPECT_EQ(ppid, zygote_pid);
  EXPECT_EQ(pgrp, template_pid);
  // Its standby serves at normal priority, not the nice value the template
  // loaded at (it may fork before the server restored the template's).
  EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(template_pid)), 0);
  ASSERT_TRUE(runtime_->Warm("fraud", 2).ok());
  RunUntil([&] { return InstanceCount("fraud") == 2 && runtime_->GetModelStatus("fraud")->instances[1].pid > 0; });
  auto warmed = runtime_->GetModelStatus("fraud");
  ASSERT_TRUE(warmed.ok());
  for (const auto& instance : warmed->instances)
    EXPECT_EQ(::getpriority(PRIO_PROCESS, static_cast<id_t>(instance.pid)), 0) << instance.pid;
  // Its instances fork from it.
  ModelConfig changed = *runtime_->FindModel("fraud");
  changed.keep_alive_s = 0;  // the next request starts an instance
  ASSERT_TRUE(runtime_->UpdateModelConfig(changed).ok());
  RunUntil([&] { return InstanceCount("fraud") == 0; });
  std::optional<InferOutcome> forked;
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + 30 * kMicrosPerSecond,
                  [&](InferOutcome o) { forked = std::move(o); });
  RunUntil([&] { return forked.has_value(); });
  ASSERT_TRUE(forked->status.ok()) << forked->status.ToString();
  EXPECT_EQ(forked->timing.start_path, StartPath::kTemplate);
}

TEST_F(RuntimeTest, RuntimeOnlySettingsKeepTheTemplateAndWarmInstances) {
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  InferOutcome first = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(first.status.ok());
  RunUntil([&] { return TemplateState("fraud") == "ready"; });
  const int template_pid = runtime_->GetModelStatus("fraud")->spawner->pid;
  ModelConfig changed = *runtime_->FindModel("fraud");
  changed.keep_alive_s = 5;
  changed.max_queue = 7;
  changed.timeout_ms = 20000;
  changed.max_concurrency = 3;
  changed.start_timeout_ms = 30000;
  ASSERT_TRUE(runtime_->UpdateModelConfig(changed).ok());
  EXPECT_EQ(runtime_->FindModel("fraud")->max_queue, 7);
  InferOutcome second = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(second.status.ok());
  EXPECT_FALSE(second.timing.cold_start);
  EXPECT_EQ(second.timing.instance_id, first.timing.instance_id);
  EXPECT_EQ(runtime_->GetModelStatus("fraud")->spawner->pid, template_pid);
}

TEST_F(RuntimeTest, NotReadyWhilePreparingThenTheFirstRequestIsANormalColdStart) {
  ASSERT_TRUE(runtime_->AddModel(Load("fashion")).ok());
  // Its artifact is being made (a fresh store): a request now would load
  // and freeze the model file itself.
  auto reason = runtime_->ModelNotReadyReason("fashion");
  ASSERT_TRUE(reason.ok());
  EXPECT_NE(reason->find("is preparing"), std::string::npos) << *reason;
  EXPECT_TRUE(runtime_->GetModelStatus("fashion")->preparing);
  RunUntil([&] { return runtime_->ModelNotReadyReason("fashion").value().empty(); });
  auto status = runtime_->GetModelStatus("fashion");
  EXPECT_TRUE(status->prepared);
  EXPECT_FALSE(status->preparing);
  InferOutcome first = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_TRUE(first.timing.cold_start);
  EXPECT_EQ(first.timing.start_level, StartLevel::kPrepared);
  EXPECT_EQ(first.timing.cold.spawner_wait_us, 0);  // the zygote was ready
  const ColdStartBreakdown& c = first.timing.cold;
  EXPECT_EQ(c.spawner_wait_us + c.spawn_us + c.runtime_init_us + c.model_load_us + c.warmup_us + c.attach_us, c.init_us);
}

TEST_F(RuntimeTest, RemovingTheModelAnArtifactIsPreparedFromLeavesItToTheOthersWithThatContent) {
  // Two models with one model file share one preparation, which runs from
  // the first one's run directory; removing the first deletes that directory.
  ModelConfig first = Load("fashion");
  first.name = "fashion-a";
  ModelConfig second = Load("fashion");
  second.name = "fashion-b";
  ASSERT_TRUE(runtime_->AddModel(Deploy(first)).ok());
  ASSERT_TRUE(runtime_->AddModel(Deploy(second)).ok());
  ASSERT_TRUE(runtime_->GetModelStatus("fashion-b")->preparing);
  ASSERT_TRUE(runtime_->RemoveModel("fashion-a").ok());
  RunUntil([&] { return !runtime_->GetModelStatus("fashion-b")->preparing; });
  EXPECT_TRUE(runtime_->GetModelStatus("fashion-b")->prepared);
  EXPECT_EQ(runtime_->ModelNotReadyReason("fashion-b").value(), "");
  InferOutcome out = Run("fashion-b", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.timing.start_level, StartLevel::kPrepared);
}

TEST_F(RuntimeTest, AForkAskedOfAZygoteStillStartingShowsTheWaitAsItsOwnPart) {
  RuntimeOptions options{BuildDir() + "/thaw-worker"};
  options.prepare = false;
  runtime_ = std::make_unique<Runtime>(io_, clock_, options);
  ModelConfig config = Load("fraud");
  config.start_path = StartPath::kZygote;
  ASSERT_TRUE(runtime_->AddModel(config).ok());
  EXPECT_NE(runtime_->ModelNotReadyReason("fraud").value().find("zygote is not ready"), std::string::npos);
  InferOutcome first = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});  // sent before the zygote is ready
  ASSERT_TRUE(first.status.ok()) << first.status.ToString();
  ASSERT_TRUE(first.timing.cold_start);
  const ColdStartBreakdown& c = first.timing.cold;
  EXPECT_GT(c.spawner_wait_us, 0);
  EXPECT_EQ(c.spawner_wait_us + c.spawn_us + c.runtime_init_us + c.model_load_us + c.warmup_us + c.attach_us, c.init_us);
}

TEST_F(RuntimeTest, RunDirectoryHoldsACopySoRepositoryEditsNeedAReload) {
  ModelConfig config = Load("fraud");
  config.start_path = StartPath::kExec;
  ModelConfig deployed = DeployCopy(config, config.ModelPath(), "fraud");
  ASSERT_TRUE(runtime_->AddModel(deployed).ok());
  const fs::path served = fs::path(runtime_->run_dir()) / "fraud" / "model.pt";
  EXPECT_FALSE(fs::is_symlink(served));
  // Editing the repository file without a reload changes nothing served.
  std::ofstream(deployed.ModelPath(), std::ios::trunc) << "this is not a TorchScript archive";
  InferOutcome outcome = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  EXPECT_TRUE(outcome.timing.cold_start);
}

TEST_F(RuntimeTest, ReloadWithACorruptModelKeepsTheOldVersionServing) {
  ModelConfig config = Load("fraud");
  ModelConfig deployed = DeployCopy(config, config.ModelPath(), "fraud");
  ASSERT_TRUE(runtime_->AddModel(deployed).ok());
  InferOutcome before = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(before.status.ok());
  RunUntil([&] { return TemplateState("fraud") == "ready"; });
  const int template_pid = runtime_->GetModelStatus("fraud")->spawner->pid;

  std::ofstream(deployed.ModelPath(), std::ios::trunc) << "this is not a TorchScript archive";
  std::optional<Status> reloaded;
  runtime_->ReloadModel(deployed, [&](Status s) { reloaded = s; });
  // The old version serves while the new one is tried.
  EXPECT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  RunUntil([&] { return reloaded.has_value(); });
  EXPECT_EQ(reloaded->code(), StatusCode::kUnavailable) << reloaded->ToString();
  EXPECT_NE(reloaded->message().find("failed to load"), std::string::npos) << reloaded->message();

  InferOutcome after = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(after.status.ok()) << after.status.ToString();
  EXPECT_EQ(after.timing.instance_id, before.timing.instance_id);
  EXPECT_EQ(runtime_->GetModelStatus("fraud")->spawner->pid, template_pid);
  EXPECT_TRUE(runtime_->GetModelStatus("fraud")->ready);
}

TEST_F(RuntimeTest, ReloadWithAHangingModelTimesOutAndKeepsTheOldVersion) {
  ModelConfig fraud = Load("fraud");
  ModelConfig deployed = DeployCopy(fraud, fraud.ModelPath(), "looper");  // named like the loop model
  ASSERT_TRUE(runtime_->AddModel(deployed).ok());
  InferOutcome before = Run("looper", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(before.status.ok()) << before.status.ToString();
  std::optional<Status> reloaded;
  runtime_->ReloadModel(LoopConfig(StartPath::kTemplate, 12000), [&](Status s) { reloaded = s; });
  RunUntil([&] { return reloaded.has_value(); });
  EXPECT_EQ(reloaded->code(), StatusCode::kUnavailable);
  EXPECT_NE(reloaded->message().find("start_timeout_ms=12000"), std::string::npos) << reloaded->message();
  EXPECT_EQ(runtime_->FindModel("looper")->inputs.at(0).name, "features");
  EXPECT_TRUE(Run("looper", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
}

TEST_F(RuntimeTest, ReloadWithAGoodVersionReplacesTheOld) {
  ModelConfig config = Load("fraud");
  ModelConfig deployed = DeployCopy(config, config.ModelPath(), "fraud");
  ASSERT_TRUE(runtime_->AddModel(deployed).ok());
  InferOutcome before = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  ASSERT_TRUE(before.status.ok());
  deployed.threads = 2;
  std::optional<Status> reloaded;
  runtime_->ReloadModel(deployed, [&](Status s) { reloaded = s; });
  std::optional<Status> second;
  runtime_->ReloadModel(deployed, [&](Status s) { second = s; });
  RunUntil([&] { return reloaded.has_value() && second.has_value(); });
  EXPECT_TRUE(reloaded->ok()) << reloaded->ToString();
  EXPECT_EQ(second->code(), StatusCode::kUnavailable);  // one reload at a time
  EXPECT_EQ(runtime_->FindModel("fraud")->threads, 2);
  InferOutcome after = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(after.status.ok()) << after.status.ToString();
  EXPECT_NE(after.timing.instance_id, before.timing.instance_id);  // new workers for the new version
  // Not loaded yet: loaded at once.
  std::optional<Status> fresh;
  runtime_->ReloadModel(Load("fashion"), [&](Status s) { fresh = s; });
  RunUntil([&] { return fresh.has_value(); });
  EXPECT_TRUE(fresh->ok());
  EXPECT_NE(runtime_->FindModel("fashion"), nullptr);
}

TEST_F(RuntimeTest, RequestsRefusedWhileDrainingAreInTheUsageLog) {
  CollectingSink sink;
  runtime_.reset();
  runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .usage = &sink});
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  bool drained = false;
  runtime_->Drain([&] { drained = true; });
  std::optional<InferOutcome> refused;
  runtime_->Infer("fraud", {FloatTensor("features", {1, 30}, 1.0f)}, {}, clock_.NowMicros() + kMicrosPerSecond,
                  [&](InferOutcome o) { refused = std::move(o); });
  RunUntil([&] { return drained && refused.has_value(); });
  EXPECT_EQ(refused->status.code(), StatusCode::kUnavailable);
  const auto invocations = sink.Of<metering::InvocationRecord>();
  ASSERT_EQ(invocations.size(), 1u);
  EXPECT_EQ(invocations[0].http_status, 503);
  EXPECT_EQ(invocations[0].model, "fraud");
  runtime_.reset();  // before the sink it writes to (shutdown records the zygote's held memory)
}

// memory_mb enforced by a memory cgroup: a model that allocates past it is
// OOM-killed, its request fails naming the limit, the kill is recorded, the
// host and other models carry on, and the model recovers.
class MemoryLimitTest : public RuntimeTest, public ::testing::WithParamInterface<StartPath> {
 public:
  void SetUp() override {
    RuntimeTest::SetUp();
    if (IsSkipped()) return;
    cgroups_ = std::make_unique<cgroup::MemoryCgroups>(cgroup::MemoryCgroupsOptions{.parent_prefix = "thaw-rt-"});
    if (!cgroups_->enforced()) GTEST_SKIP() << "no writable memory controller: " << cgroups_->description();
    runtime_ = std::make_unique<Runtime>(
        io_, clock_,
        RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker", .usage = &sink_, .memory_cgroups = cgroups_.get()});
  }

  // A model directory for src/backend/testdata/alloc_model.pt: its request
  // value is the MiB its forward allocates and fills.
  ModelConfig AllocModel(int64_t memory_mb) {
    const fs::path dir = fs::temp_directory_path() / ("thaw_rt_" + std::to_string(::getpid())) / "alloc";
    fs::create_directories(dir);
    fs::copy_file(SourceDir() + "/src/backend/testdata/alloc_model.pt", dir / "model.pt",
                  fs::copy_options::overwrite_existing);
    std::ofstream(dir / "config.json")
        << R"({"backend": "torchscript", "model_file": "model.pt",
               "inputs": [{"name": "mib", "datatype": "FP32", "shape": [-1, 1]}],
               "outputs": [{"name": "same", "datatype": "FP32", "shape": [-1, 1]}],
               "memory_mb": )" << memory_mb << R"(, "max_concurrency": 1, "threads": 1, "start_path": ")"
        << StartPathName(GetParam()) << R"("})";
    auto config = LoadModelConfig(dir.string());
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    return config.value();
  }

  // Groups left below this runtime's parent (instances, templates, zygote).
  int GroupsLeft() const {
    int n = 0;
    for (const auto& entry : fs::directory_iterator(cgroups_->parent_dir())) n += entry.is_directory();
    return n;
  }

  CollectingSink sink_;
  std::unique_ptr<cgroup::MemoryCgroups> cgroups_;
};

TEST_P(MemoryLimitTest, AllocationPastMemoryMbIsKilledReportedAndRecovered) {
  ASSERT_TRUE(runtime_->AddModel(AllocModel(128)).ok());
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());

  // Within the limit: served, from an instance in its own limited group.
  InferOutcome small = Run("alloc", {FloatTensor("mib", {1, 1}, 8.0f)});
  ASSERT_TRUE(small.status.ok()) << small.status.ToString();
  auto status = runtime_->GetModelStatus("alloc");
  ASSERT_EQ(status->instances.size(), 1u);
  const std::string group = status->instances[0].cgroup_dir;
  ASSERT_FALSE(group.empty());
  EXPECT_EQ(*cgroup::MemoryLimitBytes(group), 128LL << 20);
  auto procs = [&] {
    std::ifstream in(group + "/cgroup.procs");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  // A forked instance is moved off the event loop from its fork on (held by
  // its spawner's group until then): in its own group within moments.
  const std::string pid = std::to_string(status->instances[0].pid);
  RunUntil([&] { return procs().find(pid) != std::string::npos; });
  EXPECT_NE(procs().find(pid), std::string::npos) << "instance not in " << group;

  // 1 GiB in a 128 MB instance: killed by the kernel, not by the runtime.
  InferOutcome big = Run("alloc", {FloatTensor("mib", {1, 1}, 1024.0f)});
  EXPECT_EQ(big.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(big.status.message().find("instance of model 'alloc' exceeded its memory limit (memory_mb=128) and was killed"),
            std::string::npos)
      << big.status.message();
  const auto stops = sink_.Of<metering::InstanceRecord>();
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].stop_reason, "oom");
  EXPECT_EQ(stops[0].model, "alloc");

  // Another model is untouched; the model itself recovers on a fresh instance.
  InferOutcome fraud = Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)});
  EXPECT_TRUE(fraud.status.ok()) << fraud.status.ToString();
  InferOutcome again = Run("alloc", {FloatTensor("mib", {1, 1}, 8.0f)});
  ASSERT_TRUE(again.status.ok()) << again.status.ToString();
  EXPECT_NE(again.timing.instance_id, small.timing.instance_id);
  // The killed instance's group is gone once its process is.
  RunUntil([&] { return !fs::exists(group); });

  runtime_->Shutdown();
  io_.poll();
  EXPECT_EQ(GroupsLeft(), 0) << "groups left under " << cgroups_->parent_dir();
}

// Charged what their cgroups measured, instances of fraud (memory_mb 512)
// and fashion (1024) share a 1200 MB budget that charged by memory_mb holds
// only one of them (MemoryPressureEvictsLeastRecentlyUsedIdleInstanceOfAnotherModel).
TEST_P(MemoryLimitTest, MeasuredChargeLetsTwoModelsShareABudgetTheirMemoryMbWouldNot) {
  runtime_->Shutdown();
  runtime_ = std::make_unique<Runtime>(io_, clock_,
                                       RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker",
                                                      .memory_budget_mb = 1200,
                                                      .memory_charge = sched::MemoryCharge::kMeasured,
                                                      .usage = &sink_,
                                                      .memory_cgroups = cgroups_.get()});
  for (const char* name : {"fraud", "fashion"}) {
    ModelConfig config = Load(name);
    config.start_path = GetParam();
    ASSERT_TRUE(runtime_->AddModel(Deploy(config)).ok());
  }
  EXPECT_EQ(runtime_->GetModelStatus("fraud")->instance_charge_mb, 512);  // not measured yet
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  const int64_t fraud_charge = runtime_->GetModelStatus("fraud")->instance_charge_mb;
  EXPECT_GT(fraud_charge, 0);
  EXPECT_LT(fraud_charge, 1200 - 1024) << "fraud's instance measured at most this, with headroom";
  InferOutcome fashion = Run("fashion", {FloatTensor("image", {1, 1, 28, 28}, 0.5f)});
  ASSERT_TRUE(fashion.status.ok()) << fashion.status.ToString();
  EXPECT_EQ(InstanceCount("fraud"), 1);  // not evicted
  EXPECT_EQ(InstanceCount("fashion"), 1);
  EXPECT_LT(runtime_->GetModelStatus("fashion")->instance_charge_mb, 1024);
}

TEST_P(MemoryLimitTest, RequestLargerThanTheInstanceCanHoldIsRefusedBeforeRunning) {
  ASSERT_TRUE(runtime_->AddModel(AllocModel(128)).ok());
  // 64 MiB + 4 bytes of input: over half of memory_mb=128.
  InferOutcome outcome = Run("alloc", {FloatTensor("mib", {(16 << 20) + 1, 1}, 0.0f)});
  EXPECT_EQ(outcome.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(outcome.status.message().find("request inputs take 67108868 bytes"), std::string::npos) << outcome.status.message();
  EXPECT_NE(outcome.status.message().find("memory_mb=128"), std::string::npos);
  EXPECT_EQ(outcome.timing.instance_id, 0u);
  EXPECT_EQ(InstanceCount("alloc"), 0) << "nothing started for a refused request";
}

// The zygote's standby waits in a memory cgroup of its own; the instance it
// becomes keeps that group, limited to the instance's model's memory_mb (one
// standby after another, models of different sizes), and the limit holds.
class ZygoteStandbyTest : public MemoryLimitTest {};

TEST_P(ZygoteStandbyTest, BecomesAnInstanceInAGroupLimitedToItsModel) {
  ASSERT_TRUE(runtime_->AddModel(AllocModel(128)).ok());
  ModelConfig fraud = Load("fraud");
  fraud.start_path = StartPath::kZygote;
  fraud.memory_mb = 512;
  ASSERT_TRUE(runtime_->AddModel(Deploy(fraud)).ok());
  // The zygote's standby once the runtime knows it is in its group: that group.
  auto waiting_standby = [&](const std::string& taken = "") -> std::string {
    auto status = runtime_->GetModelStatus("alloc");
    if (!status->spawner || !status->spawner->standby_waiting) return "";
    for (const auto& entry : fs::directory_iterator(cgroups_->parent_dir())) {
      if (!entry.is_directory() || !entry.path().filename().string().starts_with("standby-")) continue;
      if (entry.path().string() == taken) continue;
      std::ifstream procs(entry.path() / "cgroup.procs");
      std::string pid;
      if (procs >> pid) return entry.path().string();
    }
    return "";
  };
  auto instance_group = [&](const std::string& model) {
    auto status = runtime_->GetModelStatus(model);
    return status->instances.empty() ? std::string() : status->instances[0].cgroup_dir;
  };

  RunUntil([&] { return !waiting_standby().empty(); });
  const std::string first = waiting_standby();
  InferOutcome small = Run("alloc", {FloatTensor("mib", {1, 1}, 8.0f)});
  ASSERT_TRUE(small.status.ok()) << small.status.ToString();
  EXPECT_EQ(instance_group("alloc"), first);
  EXPECT_EQ(*cgroup::MemoryLimitBytes(first), 128LL << 20);

  RunUntil([&] { return !waiting_standby(first).empty(); });
  const std::string second = waiting_standby(first);
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  EXPECT_EQ(instance_group("fraud"), second);
  EXPECT_EQ(*cgroup::MemoryLimitBytes(second), 512LL << 20);

  // The 128 MB limit is the one enforced on the former standby.
  InferOutcome big = Run("alloc", {FloatTensor("mib", {1, 1}, 1024.0f)});
  EXPECT_EQ(big.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(big.status.message().find("exceeded its memory limit (memory_mb=128)"), std::string::npos)
      << big.status.message();
  runtime_->Shutdown();
  io_.poll();
  EXPECT_EQ(GroupsLeft(), 0) << "groups left under " << cgroups_->parent_dir();
}

// Without the standby, every zygote start forks and gets a fresh group.
TEST_P(ZygoteStandbyTest, WithoutItEachInstanceGetsAFreshGroup) {
  runtime_->Shutdown();
  runtime_ = std::make_unique<Runtime>(io_, clock_,
                                       RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker",
                                                      .usage = &sink_,
                                                      .memory_cgroups = cgroups_.get(),
                                                      .zygote_standby = false});
  ASSERT_TRUE(runtime_->AddModel(AllocModel(128)).ok());
  ASSERT_TRUE(Run("alloc", {FloatTensor("mib", {1, 1}, 8.0f)}).status.ok());
  auto status = runtime_->GetModelStatus("alloc");
  ASSERT_EQ(status->instances.size(), 1u);
  EXPECT_TRUE(fs::path(status->instances[0].cgroup_dir).filename().string().starts_with("instance-"))
      << status->instances[0].cgroup_dir;
  for (const auto& entry : fs::directory_iterator(cgroups_->parent_dir()))
    EXPECT_FALSE(entry.path().filename().string().starts_with("standby-")) << entry.path();
}

INSTANTIATE_TEST_SUITE_P(Zygote, ZygoteStandbyTest, ::testing::Values(StartPath::kZygote));

INSTANTIATE_TEST_SUITE_P(StartPaths, MemoryLimitTest,
                         ::testing::Values(StartPath::kExec, StartPath::kTemplate, StartPath::kZygote),
                         [](const ::testing::TestParamInfo<StartPath>& info) {
                           return std::string(StartPathName(info.param));
                         });

// The isolation test: a worker whose engine is hostile native code
// (thaw-worker-probe, backend/probe_backend.h) tries to open a network
// socket, read /etc/shadow, write outside its run directory, accept() on
// every descriptor it holds and ptrace its parent, on every start path; it
// gets nothing, and /proc shows the uid drop, no_new_privs and the filter.
class IsolationTest : public RuntimeTest, public ::testing::WithParamInterface<std::tuple<StartPath, bool>> {
 public:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: namespaces and the uid drop need CAP_SYS_ADMIN/CAP_SETUID";
    runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{BuildDir() + "/thaw-worker-probe"});
  }

  // A model directory for the probe engine: a readable file stands for the model.
  ModelConfig ProbeModel(StartPath path, bool standby) {
    const fs::path dir = fs::temp_directory_path() / ("thaw_rt_" + std::to_string(::getpid())) / "probe";
    fs::create_directories(dir);
    std::ofstream(dir / "model.pt") << "not a model: the probe only opens it";
    std::ofstream(dir / "config.json") << R"({"backend": "torchscript", "model_file": "model.pt",
      "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 1]}],
      "outputs": [{"name": "errnos", "datatype": "FP32", "shape": [-1, 6]}]})";
    auto config = LoadModelConfig(dir.string());
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    config->start_path = path;
    config->template_standby = standby;
    return *config;
  }
};

std::string ProcStatusField(int pid, const std::string& name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(name + ":")) {
      std::string value = line.substr(name.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  return "";
}

TEST_P(IsolationTest, HostileWorkerGetsNothing) {
  const auto [path, standby] = GetParam();
  ASSERT_TRUE(runtime_->AddModel(ProbeModel(path, standby)).ok());
  InferOutcome outcome = Run("probe", {FloatTensor("x", {1, 1}, 0.0f)});
  ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  if (path == StartPath::kTemplate) {
    // The first instance started from the zygote; probe one forked by the
    // template (or its standby) once that is ready.
    EXPECT_EQ(outcome.timing.start_path, StartPath::kZygote);
    RunUntil([&] { return TemplateState("probe") == "ready"; });
    KillInstances("probe");
    outcome = Run("probe", {FloatTensor("x", {1, 1}, 0.0f)});
    ASSERT_TRUE(outcome.status.ok()) << outcome.status.ToString();
  }
  EXPECT_EQ(outcome.timing.start_path, path);
  ASSERT_EQ(outcome.outputs.size(), 1u);
  ASSERT_EQ(outcome.outputs[0].shape, (Shape{1, 6}));
  const float* errnos = reinterpret_cast<const float*>(outcome.outputs[0].data.data());
  EXPECT_EQ(errnos[0], EPERM) << "socket(AF_INET)";
  EXPECT_EQ(errnos[1], EACCES) << "open /etc/shadow";
  EXPECT_EQ(errnos[2], EROFS) << "write outside the run directory";
  EXPECT_EQ(errnos[3], EPERM) << "accept4 on inherited descriptors";
  EXPECT_EQ(errnos[4], 0) << "descriptors besides stdio and its socket";
  EXPECT_EQ(errnos[5], EPERM) << "ptrace of the server";

  auto status = runtime_->GetModelStatus("probe");
  ASSERT_TRUE(status.ok());
  ASSERT_EQ(status->instances.size(), 1u);
  const InstanceStatus& instance = status->instances[0];
  ASSERT_TRUE(instance.sandbox.has_value());
  EXPECT_TRUE(instance.sandbox->Complete()) << instance.sandbox->Summary();
  EXPECT_EQ(instance.sandbox->uid, 65534);
  EXPECT_TRUE(ProcStatusField(instance.pid, "Uid").starts_with("65534\t65534\t65534")) << ProcStatusField(instance.pid, "Uid");
  EXPECT_EQ(ProcStatusField(instance.pid, "NoNewPrivs"), "1");
  EXPECT_EQ(ProcStatusField(instance.pid, "Seccomp"), "2");
  EXPECT_EQ(ProcStatusField(instance.pid, "CapEff"), "0000000000000000");
  if (path != StartPath::kExec) {
    ASSERT_TRUE(status->spawner.has_value());
    ASSERT_TRUE(status->spawner->sandbox.has_value());
    EXPECT_TRUE(status->spawner->sandbox->Complete()) << status->spawner->sandbox->Summary();
    EXPECT_EQ(ProcStatusField(status->spawner->pid, "Seccomp"), "2");
    EXPECT_TRUE(ProcStatusField(status->spawner->pid, "Uid").starts_with("65534\t"));
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, IsolationTest,
                         ::testing::Values(std::make_tuple(StartPath::kExec, false),
                                           std::make_tuple(StartPath::kZygote, false),
                                           std::make_tuple(StartPath::kTemplate, false),
                                           std::make_tuple(StartPath::kTemplate, true)));

TEST_F(RuntimeTest, SandboxOffReportsNothingApplied) {
  runtime_ = std::make_unique<Runtime>(io_, clock_,
                                       RuntimeOptions{.worker_path = BuildDir() + "/thaw-worker",
                                                      .sandbox = sandbox::SandboxMode::kOff});
  ASSERT_TRUE(runtime_->AddModel(Load("fraud")).ok());
  ASSERT_TRUE(Run("fraud", {FloatTensor("features", {1, 30}, 1.0f)}).status.ok());
  auto status = runtime_->GetModelStatus("fraud");
  ASSERT_EQ(status->instances.size(), 1u);
  ASSERT_TRUE(status->instances[0].sandbox.has_value());
  EXPECT_FALSE(status->instances[0].sandbox->seccomp.applied);
  EXPECT_TRUE(status->instances[0].sandbox->fds_closed.applied);  // fd hygiene is not optional
  EXPECT_EQ(status->instances[0].sandbox->uid, static_cast<int64_t>(::getuid()));
  EXPECT_EQ(ProcStatusField(status->instances[0].pid, "Seccomp"), "0");
}

}  // namespace
}  // namespace thaw
