// xgboost_backend.cc and onnx_backend.cc compiled without their engines
// (THAW_WITH_XGBOOST, THAW_WITH_OPENCV_DNN unset), as on a machine without
// libxgboost-dev or libopencv-dnn-dev: a model of either backend fails its
// load with a reason a user can act on.
#include <gtest/gtest.h>

#include "backend/onnx_backend.h"
#include "backend/xgboost_backend.h"
#include "base/clock.h"

namespace thaw {
namespace {

using CreateFn = StatusOr<std::unique_ptr<Backend>> (*)(const ModelConfig&, const Clock&, BackendLoadTimings*,
                                                         const BackendLoadOptions&);

void ExpectNotBuilt(CreateFn create, const std::string& model, const std::string& backend, const std::string& package) {
  ModelConfig config;
  config.name = model;
  config.backend = backend;
  RealClock clock;
  BackendLoadTimings timings;
  auto loaded = create(config, clock, &timings, {});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kUnavailable);
  const std::string& m = loaded.status().message();
  EXPECT_NE(m.find("'" + model + "'"), std::string::npos) << m;
  EXPECT_NE(m.find("not built"), std::string::npos) << m;
  EXPECT_NE(m.find(package), std::string::npos) << m;
}

TEST(EnginesOffTest, XgboostLoadSaysTheEngineIsNotBuilt) {
  EXPECT_FALSE(XgboostBuiltIn());
  ExpectNotBuilt(&CreateXgboostBackend, "fraud-xgb", "xgboost", "libxgboost-dev");
}

TEST(EnginesOffTest, OnnxLoadSaysTheEngineIsNotBuilt) {
  EXPECT_FALSE(OnnxBuiltIn());
  ExpectNotBuilt(&CreateOnnxBackend, "fashion-onnx", "onnx", "libopencv-dnn-dev");
}

}  // namespace
}  // namespace thaw
