#include "policy/scaling.h"

#include <gtest/gtest.h>

namespace thaw::policy {
namespace {

TEST(InstancesToStartTest, ColdStartForFirstRequest) {
  EXPECT_EQ(InstancesToStart({.queued = 1}, {.max_instances = 4}), 1);
}

TEST(InstancesToStartTest, NothingWhenFreeSlotsCoverQueue) {
  EXPECT_EQ(InstancesToStart({.ready_instances = 2, .free_slots = 2, .queued = 2}, {.max_instances = 4}), 0);
}

TEST(InstancesToStartTest, CountsInstancesAlreadyStarting) {
  EXPECT_EQ(InstancesToStart({.starting_instances = 1, .queued = 1}, {.max_instances = 4}), 0);
  EXPECT_EQ(InstancesToStart({.starting_instances = 1, .queued = 3}, {.max_instances = 4}), 2);
}

TEST(InstancesToStartTest, NeverAboveMaxInstances) {
  EXPECT_EQ(InstancesToStart({.ready_instances = 1, .queued = 50}, {.max_instances = 2}), 1);
  EXPECT_EQ(InstancesToStart({.ready_instances = 2, .queued = 50}, {.max_instances = 2}), 0);
}

TEST(InstancesToStartTest, InstanceConcurrencyPacksRequests) {
  EXPECT_EQ(InstancesToStart({.queued = 5}, {.max_instances = 10, .instance_concurrency = 4}), 2);
  EXPECT_EQ(InstancesToStart({.starting_instances = 1, .queued = 4}, {.max_instances = 10, .instance_concurrency = 4}),
            0);
}

TEST(InstancesToStartTest, KeepsProvisionedFloor) {
  EXPECT_EQ(InstancesToStart({}, {.min_instances = 2, .max_instances = 4}), 2);
  EXPECT_EQ(InstancesToStart({.ready_instances = 1}, {.min_instances = 2, .max_instances = 4}), 1);
  EXPECT_EQ(InstancesToStart({.ready_instances = 2, .free_slots = 2}, {.min_instances = 2, .max_instances = 4}), 0);
}

constexpr Micros kKeepAlive = 10 * kMicrosPerSecond;

TEST(KeepAliveTest, StopsExactlyAtKeepAlive) {
  const IdleInstance idle[] = {{.id = 7, .idle_since_us = 1000}};
  auto before = DecideKeepAlive(idle, 1, 0, kKeepAlive, 1000 + kKeepAlive - 1);
  EXPECT_TRUE(before.stop.empty());
  ASSERT_TRUE(before.next_wake_us.has_value());
  EXPECT_EQ(*before.next_wake_us, 1000 + kKeepAlive);

  auto at = DecideKeepAlive(idle, 1, 0, kKeepAlive, *before.next_wake_us);
  EXPECT_EQ(at.stop, std::vector<uint64_t>{7});
  EXPECT_FALSE(at.next_wake_us.has_value());
}

TEST(KeepAliveTest, NeverBelowMinInstances) {
  const IdleInstance idle[] = {{.id = 1, .idle_since_us = 0}, {.id = 2, .idle_since_us = 5}};
  auto decision = DecideKeepAlive(idle, 2, 1, kKeepAlive, 100 * kKeepAlive);
  EXPECT_EQ(decision.stop, std::vector<uint64_t>{1});  // the longest idle goes first
  EXPECT_FALSE(decision.next_wake_us.has_value());
  EXPECT_TRUE(DecideKeepAlive(idle, 2, 2, kKeepAlive, 100 * kKeepAlive).stop.empty());
}

TEST(KeepAliveTest, BusyInstancesCountTowardTheFloor) {
  // One busy and one idle instance with min_instances = 1: the idle one may go.
  const IdleInstance idle[] = {{.id = 3, .idle_since_us = 0}};
  EXPECT_EQ(DecideKeepAlive(idle, 2, 1, kKeepAlive, kKeepAlive).stop, std::vector<uint64_t>{3});
}

TEST(KeepAliveTest, WakesForTheEarliestExpiry) {
  const IdleInstance idle[] = {{.id = 1, .idle_since_us = 300}, {.id = 2, .idle_since_us = 100}};
  auto decision = DecideKeepAlive(idle, 2, 0, kKeepAlive, 200);
  EXPECT_TRUE(decision.stop.empty());
  EXPECT_EQ(decision.next_wake_us, 100 + kKeepAlive);
}

TEST(KeepAliveTest, ZeroKeepAliveStopsAtOnce) {
  const IdleInstance idle[] = {{.id = 1, .idle_since_us = 50}};
  EXPECT_EQ(DecideKeepAlive(idle, 1, 0, 0, 50).stop, std::vector<uint64_t>{1});
}

}  // namespace
}  // namespace thaw::policy
