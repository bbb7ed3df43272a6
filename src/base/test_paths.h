// Where tests find the source tree (example models) and the build tree
// (thaw, thaw-worker). The build defines THAW_TEST_SOURCE_DIR and
// THAW_TEST_BUILD_DIR for every test target; the environment variables
// THAW_SOURCE_DIR and THAW_BUILD_DIR override them. For tests only.
#pragma once

#include <cstdlib>
#include <string>

namespace thaw {

inline std::string TestSourceDir() {
  const char* dir = std::getenv("THAW_SOURCE_DIR");
  return dir ? dir : THAW_TEST_SOURCE_DIR;
}

inline std::string TestBuildDir() {
  const char* dir = std::getenv("THAW_BUILD_DIR");
  return dir ? dir : THAW_TEST_BUILD_DIR;
}

}  // namespace thaw
