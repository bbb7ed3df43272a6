// xgboost_backend.cc compiled without THAW_WITH_XGBOOST, as on a machine
// without libxgboost-dev: a model of that backend fails its load with a
// reason a user can act on.
#include "backend/xgboost_backend.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace thaw {
namespace {

TEST(XgboostBackendOffTest, LoadSaysTheEngineIsNotBuilt) {
  EXPECT_FALSE(XgboostBuiltIn());
  ModelConfig config;
  config.name = "fraud-xgb";
  config.backend = "xgboost";
  RealClock clock;
  BackendLoadTimings timings;
  auto backend = CreateXgboostBackend(config, clock, &timings, {});
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(backend.status().message().find("'fraud-xgb'"), std::string::npos) << backend.status().message();
  EXPECT_NE(backend.status().message().find("not built"), std::string::npos) << backend.status().message();
  EXPECT_NE(backend.status().message().find("libxgboost-dev"), std::string::npos) << backend.status().message();
}

}  // namespace
}  // namespace thaw
