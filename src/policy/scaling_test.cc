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

}  // namespace
}  // namespace thaw::policy
