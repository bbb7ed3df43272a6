// The xgboost backend through CreateBackend: outputs against XGBoost's own
// predictions in Python (testdata/make_xgboost_models.py and the fraud-xgb
// example's reference), batch rows against single rows, the load-time
// checks of the config against the booster, and bad inputs.
#include "backend/xgboost_backend.h"

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "backend/backend.h"
#include "base/clock.h"
#include "base/test_paths.h"
#include "repo/model_config.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;

#define SKIP_WITHOUT_XGBOOST() \
  if (!XgboostBuiltIn()) GTEST_SKIP() << "thaw is built without XGBoost (apt-get install libxgboost-dev)"

std::string Testdata() { return TestSourceDir() + "/src/backend/testdata"; }

TensorSpec Spec(std::string name, DataType type, Shape shape) { return TensorSpec{std::move(name), type, std::move(shape)}; }

ModelConfig BoosterConfig(const std::string& booster, Shape output_shape, int64_t features = 4) {
  ModelConfig c;
  c.name = booster;
  c.backend = "xgboost";
  c.directory = Testdata();
  c.model_file = booster + ".ubj";
  c.inputs = {Spec("x", DataType::kFp32, {-1, features})};
  c.outputs = {Spec("y", DataType::kFp32, std::move(output_shape))};
  return c;
}

StatusOr<std::unique_ptr<Backend>> Load(const ModelConfig& config) {
  RealClock clock;
  BackendLoadTimings timings;
  return CreateBackend(config, clock, &timings);
}

Tensor Floats(std::string name, Shape shape, const std::vector<float>& values) {
  std::string bytes(values.size() * sizeof(float), '\0');
  if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  return Tensor{std::move(name), DataType::kFp32, std::move(shape), std::move(bytes)};
}

std::vector<float> Values(const Tensor& t) {
  std::vector<float> v(t.data.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), v.size() * sizeof(float));
  return v;
}

// The probe rows (null = missing, NaN here) and each booster's expected values.
struct Reference {
  std::vector<float> probe;
  std::map<std::string, std::vector<double>> expected;
};

Reference ReadReference() {
  Reference r;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(Testdata() + "/xgb_reference.json");
  for (simdjson::dom::element row : doc["probe"].get_array())
    for (simdjson::dom::element v : row.get_array())
      r.probe.push_back(v.is_null() ? std::numeric_limits<float>::quiet_NaN() : static_cast<float>(double(v)));
  for (const char* name : {"xgb_softprob", "xgb_regression"})
    for (simdjson::dom::element v : doc[name].get_array()) r.expected[name].push_back(double(v));
  return r;
}

TEST(XgboostBackendTest, SoftprobMatchesXgboostInPython) {
  SKIP_WITHOUT_XGBOOST();
  auto backend = Load(BoosterConfig("xgb_softprob", {-1, 3}));
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  const Reference ref = ReadReference();
  std::vector<Tensor> out;
  ASSERT_TRUE((*backend)->Run({Floats("x", {3, 4}, ref.probe)}, &out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].name, "y");
  EXPECT_EQ(out[0].shape, (Shape{3, 3}));
  const std::vector<float> got = Values(out[0]);
  ASSERT_EQ(got.size(), ref.expected.at("xgb_softprob").size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref.expected.at("xgb_softprob")[i], 1e-6) << i;
}

TEST(XgboostBackendTest, RegressionAsVectorOrColumn) {
  SKIP_WITHOUT_XGBOOST();
  const Reference ref = ReadReference();
  for (const Shape& shape : {Shape{-1}, Shape{-1, 1}}) {
    SCOPED_TRACE(ShapeToString(shape));
    auto backend = Load(BoosterConfig("xgb_regression", shape));
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    std::vector<Tensor> out;
    ASSERT_TRUE((*backend)->Run({Floats("x", {3, 4}, ref.probe)}, &out).ok());
    EXPECT_EQ(out[0].shape, (shape.size() == 1 ? Shape{3} : Shape{3, 1}));
    const std::vector<float> got = Values(out[0]);
    ASSERT_EQ(got.size(), 3u);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref.expected.at("xgb_regression")[i], 1e-5) << i;
  }
}

// The fraud-xgb example: binary:logistic served as both classes'
// probabilities; a batch's rows are bit-identical to the rows alone.
TEST(XgboostBackendTest, FraudBatchRowsEqualSingleRows) {
  SKIP_WITHOUT_XGBOOST();
  auto config = LoadModelConfig(TestSourceDir() + "/examples/models/fraud-xgb");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->platform, "xgboost");
  auto backend = Load(*config);
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  std::vector<float> rows;
  for (int r = 0; r < 8; ++r)
    for (int i = 0; i < 30; ++i) rows.push_back(0.7f * static_cast<float>((i + 1) * (r + 1) % 23));
  std::vector<Tensor> batch;
  ASSERT_TRUE((*backend)->Run({Floats("features", {8, 30}, rows)}, &batch).ok());
  ASSERT_EQ(batch[0].shape, (Shape{8, 2}));
  const std::vector<float> all = Values(batch[0]);
  for (int r = 0; r < 8; ++r) {
    std::vector<Tensor> one;
    ASSERT_TRUE((*backend)->Run({Floats("features", {1, 30}, {rows.begin() + 30 * r, rows.begin() + 30 * (r + 1)})}, &one).ok());
    const std::vector<float> alone = Values(one[0]);
    ASSERT_EQ(alone.size(), 2u);
    EXPECT_EQ(std::memcmp(alone.data(), all.data() + 2 * r, 2 * sizeof(float)), 0) << "row " << r;
    EXPECT_EQ(alone[0], 1.0f - alone[1]);
  }
}

// Calls on one thread share its proxy DMatrix: each call still answers its
// own input, whatever the previous call's rows or booster were.
TEST(XgboostBackendTest, AlternatingInputsAndBoostersKeepTheirAnswers) {
  SKIP_WITHOUT_XGBOOST();
  auto softprob = Load(BoosterConfig("xgb_softprob", {-1, 3}));
  auto regression = Load(BoosterConfig("xgb_regression", {-1}));
  ASSERT_TRUE(softprob.ok() && regression.ok());
  const Reference ref = ReadReference();
  const Tensor three = Floats("x", {3, 4}, ref.probe);
  const Tensor one = Floats("x", {1, 4}, {ref.probe.begin() + 8, ref.probe.end()});  // the third probe row
  for (int i = 0; i < 3; ++i) {
    std::vector<Tensor> a, b, c;
    ASSERT_TRUE((*softprob)->Run({three}, &a).ok());
    ASSERT_TRUE((*regression)->Run({one}, &b).ok());
    ASSERT_TRUE((*softprob)->Run({one}, &c).ok());
    const std::vector<float> va = Values(a[0]), vb = Values(b[0]), vc = Values(c[0]);
    ASSERT_EQ(va.size(), 9u);
    ASSERT_EQ(vb.size(), 1u);
    ASSERT_EQ(vc.size(), 3u);
    for (size_t k = 0; k < 9; ++k) EXPECT_NEAR(va[k], ref.expected.at("xgb_softprob")[k], 1e-6);
    EXPECT_NEAR(vb[0], ref.expected.at("xgb_regression")[2], 1e-5);
    for (size_t k = 0; k < 3; ++k) EXPECT_NEAR(vc[k], ref.expected.at("xgb_softprob")[6 + k], 1e-6);
  }
}

TEST(XgboostBackendTest, TwoThreadsGiveTheSameValues) {
  SKIP_WITHOUT_XGBOOST();
  auto backend = Load(BoosterConfig("xgb_softprob", {-1, 3}));
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  std::vector<float> rows(64 * 4);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = std::sin(static_cast<float>(i));
  std::vector<Tensor> one_thread, two_threads;
  ASSERT_TRUE((*backend)->Run({Floats("x", {64, 4}, rows)}, &one_thread).ok());
  SetIntraOpThreads(2);  // this test's own process (one process per test)
  ASSERT_TRUE((*backend)->Run({Floats("x", {64, 4}, rows)}, &two_threads).ok());
  SetIntraOpThreads(1);
  EXPECT_EQ(one_thread[0].data, two_threads[0].data);
}

TEST(XgboostBackendTest, ConcurrentRunsAgree) {
  SKIP_WITHOUT_XGBOOST();
  auto backend = Load(BoosterConfig("xgb_softprob", {-1, 3}));
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  const Reference ref = ReadReference();
  std::vector<Tensor> expected;
  ASSERT_TRUE((*backend)->Run({Floats("x", {3, 4}, ref.probe)}, &expected).ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 100; ++i) {
        std::vector<Tensor> out;
        if (!(*backend)->Run({Floats("x", {3, 4}, ref.probe)}, &out).ok() || out[0].data != expected[0].data) ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(XgboostBackendTest, BadInputsAreInvalidArgument) {
  SKIP_WITHOUT_XGBOOST();
  auto backend = Load(BoosterConfig("xgb_softprob", {-1, 3}));
  ASSERT_TRUE(backend.ok()) << backend.status().ToString();
  std::vector<Tensor> out;
  EXPECT_EQ((*backend)->Run({Floats("x", {2, 3}, std::vector<float>(6))}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*backend)->Run({Floats("x", {2, 4}, std::vector<float>(7))}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*backend)->Run({Floats("x", {8}, std::vector<float>(8))}, &out).code(), StatusCode::kInvalidArgument);
  Tensor doubles{"x", DataType::kFp64, {1, 4}, std::string(32, '\0')};
  EXPECT_EQ((*backend)->Run({doubles}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*backend)->Run({}, &out).code(), StatusCode::kInvalidArgument);
  // No rows: an empty answer of the right shape.
  ASSERT_TRUE((*backend)->Run({Floats("x", {0, 4}, {})}, &out).ok());
  EXPECT_EQ(out[0].shape, (Shape{0, 3}));
  // Still serves.
  EXPECT_TRUE((*backend)->Run({Floats("x", {1, 4}, std::vector<float>(4))}, &out).ok());
}

// Each mismatch between config and booster fails the load with a message
// naming both sides.
TEST(XgboostBackendTest, ConfigThatDisagreesFailsTheLoad) {
  SKIP_WITHOUT_XGBOOST();
  struct Case {
    ModelConfig config;
    std::string mentions;
  };
  std::vector<Case> cases;
  cases.push_back({BoosterConfig("xgb_softprob", {-1, 3}, 5), "trained on 4"});
  cases.push_back({BoosterConfig("xgb_softprob", {-1, 2}), "predicts 3 value(s)"});
  cases.push_back({BoosterConfig("xgb_regression", {-1, 2}), "reg:squarederror"});
  {
    ModelConfig c = BoosterConfig("xgb_softprob", {-1, 3});
    c.inputs[0].datatype = DataType::kFp64;
    cases.push_back({c, "FP32"});
  }
  {
    ModelConfig c = BoosterConfig("xgb_softprob", {-1, 3});
    c.inputs.push_back(Spec("z", DataType::kFp32, {-1, 4}));
    cases.push_back({c, "one input"});
  }
  {
    ModelConfig c = BoosterConfig("xgb_softprob", {-1, 3});
    c.inputs[0].shape = {-1, 2, 2};
    cases.push_back({c, "[-1, features]"});
  }
  for (const Case& test : cases) {
    auto backend = Load(test.config);
    ASSERT_FALSE(backend.ok()) << test.mentions;
    EXPECT_EQ(backend.status().code(), StatusCode::kInvalidArgument) << backend.status().ToString();
    EXPECT_NE(backend.status().message().find(test.mentions), std::string::npos) << backend.status().message();
  }
}

TEST(XgboostBackendTest, MissingOrCorruptBoosterFile) {
  SKIP_WITHOUT_XGBOOST();
  ModelConfig missing = BoosterConfig("no_such_booster", {-1, 3});
  EXPECT_EQ(Load(missing).status().code(), StatusCode::kNotFound);

  const std::string dir = ::testing::TempDir() + "/xgb_corrupt_" + std::to_string(::getpid());
  fs::create_directories(dir);
  for (const std::string& contents : {std::string("not a booster"), std::string(), std::string("{\"learner\":")}) {
    std::ofstream(dir + "/model.ubj", std::ios::trunc) << contents;
    ModelConfig c = BoosterConfig("model", {-1, 3});
    c.directory = dir;
    auto backend = Load(c);
    ASSERT_FALSE(backend.ok());
    EXPECT_EQ(backend.status().code(), StatusCode::kInvalidArgument) << backend.status().ToString();
    EXPECT_NE(backend.status().message().find("model.ubj"), std::string::npos) << backend.status().message();
    // One line for the client: no stack trace of this process.
    EXPECT_EQ(backend.status().message().find("Stack trace"), std::string::npos) << backend.status().message();
    EXPECT_EQ(backend.status().message().find('\n'), std::string::npos) << backend.status().message();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace thaw
