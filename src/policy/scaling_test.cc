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

// Batching first: rows the next batch of every serving slot takes need no
// instance; the rest count as executions of batch_rows.
TEST(QueuedExecutionsTest, OnlyRowsBeyondTheNextBatchesCount) {
  EXPECT_EQ(QueuedExecutions(8, 1, 8), 0);    // one busy instance, its next batch forms
  EXPECT_EQ(QueuedExecutions(9, 1, 8), 1);
  EXPECT_EQ(QueuedExecutions(24, 1, 8), 2);
  EXPECT_EQ(QueuedExecutions(3, 0, 8), 1);    // no instance yet: one execution's worth
  EXPECT_EQ(QueuedExecutions(5, 2, 1), 3);    // batch of 1: as without batching
  EXPECT_EQ(QueuedExecutions(0, 0, 8), 0);
}

}  // namespace
}  // namespace thaw::policy
