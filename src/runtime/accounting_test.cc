#include "runtime/accounting.h"

#include <gtest/gtest.h>

namespace thaw {
namespace {

// A fork asked of a template still loading: 500 us waiting for it, then the
// fork, the worker's parts, and the runtime's attach until dispatchable.
StartTimes WaitedFork() {
  return {.path = StartPath::kTemplate,
          .level = StartLevel::kTemplate,
          .spawn_start_us = 10'000,
          .spawner_wait_us = 500,
          .spawn_done_us = 10'600,  // the child's first moment
          .ready_us = 11'000,
          .worker_started_us = 10'600,
          .runtime_init_us = 50,
          .model_load_us = 200,
          .warmup_us = 100};
}

TEST(Accounting, ColdStartNamesTheWaitForItsSpawnerAndCoversTheWholeStart) {
  const ColdStartBreakdown cold = ColdStartOf(WaitedFork(), /*arrival_us=*/9'900, /*dispatched_us=*/11'020,
                                              /*first_inference_us=*/300, /*total_us=*/1'450);
  EXPECT_EQ(cold.queue_us, 100 + 20);
  EXPECT_EQ(cold.spawner_wait_us, 500);
  EXPECT_EQ(cold.spawn_us, 100);  // not the 600 us since the start was asked for
  EXPECT_EQ(cold.runtime_init_us, 50);
  EXPECT_EQ(cold.model_load_us, 200);
  EXPECT_EQ(cold.warmup_us, 100);
  EXPECT_EQ(cold.attach_us, 1'000 - 950);
  EXPECT_EQ(cold.init_us, 1'000);  // the decision to start until dispatchable
  EXPECT_EQ(cold.spawner_wait_us + cold.spawn_us + cold.runtime_init_us + cold.model_load_us + cold.warmup_us +
                cold.attach_us,
            cold.init_us);
  auto parts = ColdStartParts(cold);
  EXPECT_EQ(parts[1].first, "spawner_wait");
  EXPECT_EQ(parts[1].second, 500);
  EXPECT_EQ(parts[6].first, "attach");
  EXPECT_EQ(parts[8].first, "init");
}

TEST(Accounting, ExecStartCountsTheLoaderAsRuntimeInitAndNoWait) {
  StartTimes exec{.path = StartPath::kExec, .level = StartLevel::kExec, .spawn_start_us = 0, .spawn_done_us = 2'000,
                  .ready_us = 700'000, .worker_started_us = 300'000, .runtime_init_us = 100'000,
                  .model_load_us = 200'000, .warmup_us = 90'000};
  const ColdStartBreakdown cold = ColdStartOf(exec, 0, 700'000, 1'000, 701'000);
  EXPECT_EQ(cold.spawner_wait_us, 0);
  EXPECT_EQ(cold.spawn_us, 2'000);
  EXPECT_EQ(cold.runtime_init_us, 100'000 + 298'000);
  EXPECT_EQ(cold.attach_us, 700'000 - 690'000);
  EXPECT_EQ(cold.init_us, 700'000);
}

TEST(Accounting, WorkerPartsOverrunningTheRuntimesViewNeverMakeInitSmaller) {
  StartTimes start = WaitedFork();
  start.model_load_us = 5'000;  // the worker's clock reads overshoot ready_us - spawn_start_us
  const ColdStartBreakdown cold = ColdStartOf(start, 10'000, 11'000, 0, 1'000);
  EXPECT_EQ(cold.attach_us, 0);
  EXPECT_EQ(cold.init_us, 500 + 100 + 50 + 5'000 + 100);
}

TEST(Accounting, BilledInitIsTheWholeStartNotTheSpawnStep) {
  InferOutcome outcome;
  outcome.timing.cold_start = true;
  outcome.timing.instance_id = 3;
  outcome.timing.total_us = 1'450;
  outcome.timing.cold = ColdStartOf(WaitedFork(), 9'900, 11'020, 300, 1'450);
  const metering::InvocationRecord record = InvocationRecordOf("m", 1024, 1, outcome, 5'000'000);
  EXPECT_EQ(record.init_us, 1'000);
  EXPECT_TRUE(record.cold_start);
  outcome.timing.cold_start = false;
  EXPECT_EQ(InvocationRecordOf("m", 1024, 1, outcome, 5'000'000).init_us, 0);
}

}  // namespace
}  // namespace thaw
