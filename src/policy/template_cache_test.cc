#include "policy/template_cache.h"

#include <gtest/gtest.h>

namespace thaw::policy {
namespace {

constexpr Micros kSecond = kMicrosPerSecond;

TEST(TemplateCacheTest, HeldUntilKeepAliveAfterLastWanted) {
  const TemplateCacheOptions options{.keep_alive_us = 300 * kSecond};
  const TemplateCacheState state{.last_wanted_us = 1000 * kSecond};
  TemplateCacheDecision d = DecideTemplate(state, options, 1100 * kSecond);
  EXPECT_TRUE(d.hold);
  ASSERT_TRUE(d.release_at_us.has_value());
  EXPECT_EQ(*d.release_at_us, 1300 * kSecond);
  d = DecideTemplate(state, options, 1300 * kSecond - 1);
  EXPECT_TRUE(d.hold);
  d = DecideTemplate(state, options, 1300 * kSecond);
  EXPECT_FALSE(d.hold);
  EXPECT_FALSE(d.release_at_us.has_value());
}

TEST(TemplateCacheTest, ProvisionedFloorHoldsForever) {
  const TemplateCacheDecision d =
      DecideTemplate({.last_wanted_us = 0, .provisioned_floor = 1}, {.keep_alive_us = kSecond}, 1'000'000 * kSecond);
  EXPECT_TRUE(d.hold);
  EXPECT_FALSE(d.release_at_us.has_value());
}

TEST(TemplateCacheTest, AKeepAlivePlanReleasesItEarlierUnlessAFloorHolds) {
  const TemplateCacheOptions options{.keep_alive_us = 300};
  EXPECT_FALSE(DecideTemplate({.last_wanted_us = 100, .keep_alive_release_at_us = 150}, options, 150).hold);
  const TemplateCacheDecision later = DecideTemplate({.last_wanted_us = 100, .keep_alive_release_at_us = 200}, options, 150);
  EXPECT_TRUE(later.hold);
  EXPECT_EQ(later.release_at_us, 200);
  // A plan releasing it after the cache's own time does not hold it longer.
  EXPECT_EQ(DecideTemplate({.last_wanted_us = 100, .keep_alive_release_at_us = 900}, options, 150).release_at_us, 400);
  EXPECT_TRUE(
      DecideTemplate({.last_wanted_us = 100, .provisioned_floor = 1, .keep_alive_release_at_us = 150}, options, 150)
          .hold);
}

TEST(TemplateCacheTest, ZeroKeepAliveReleasesAtOnce) {
  const TemplateCacheDecision d = DecideTemplate({.last_wanted_us = 5 * kSecond}, {.keep_alive_us = 0}, 5 * kSecond);
  EXPECT_FALSE(d.hold);
}

}  // namespace
}  // namespace thaw::policy
