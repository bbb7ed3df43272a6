// onnx_backend.cc compiled without THAW_WITH_OPENCV_DNN, as on a machine
// without libopencv-dnn-dev: a model of that backend fails its load with a
// reason a user can act on.
#include "backend/onnx_backend.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace thaw {
namespace {

TEST(OnnxBackendOffTest, LoadSaysTheEngineIsNotBuilt) {
  EXPECT_FALSE(OnnxBuiltIn());
  ModelConfig config;
  config.name = "fashion-onnx";
  config.backend = "onnx";
  RealClock clock;
  BackendLoadTimings timings;
  auto backend = CreateOnnxBackend(config, clock, &timings, {});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(backend.status().message().find("'fashion-onnx'"), std::string::npos) << backend.status().message();
  EXPECT_NE(backend.status().message().find("libopencv-dnn-dev"), std::string::npos) << backend.status().message();
}

}  // namespace
}  // namespace thaw
