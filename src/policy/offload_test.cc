#include "policy/offload.h"

#include <gtest/gtest.h>

namespace thaw::policy {
namespace {

OffloadObservation Busy() {
  return {.deployed = true, .slots = 2, .in_flight = 2, .queued = 0, .max_queue = 8, .mean_execution_us = 10'000,
          .budget_us = 100'000, .upstream_round_trip_us = 25'000};
}

TEST(OffloadTest, AModelNotDeployedHereGoesUpstream) {
  OffloadObservation o = Busy();
  o.deployed = false;
  auto d = DecideOffload(o);
  EXPECT_EQ(d.target, OffloadTarget::kUpstream);
  EXPECT_EQ(d.reason, "not deployed here");
  EXPECT_EQ(d.cause, "not_deployed");
}

TEST(OffloadTest, AFreeSlotAlwaysRunsHereEvenWithATightBudget) {
  OffloadObservation o = Busy();
  o.in_flight = 1;
  o.budget_us = 1;
  EXPECT_EQ(DecideOffload(o).target, OffloadTarget::kLocal);
}

TEST(OffloadTest, AFullQueueGoesUpstreamInsteadOf429) {
  OffloadObservation o = Busy();
  o.queued = 8;
  o.mean_execution_us = 0;  // even with nothing measured
  auto d = DecideOffload(o);
  EXPECT_EQ(d.target, OffloadTarget::kUpstream);
  EXPECT_EQ(d.reason, "local queue full");
  EXPECT_EQ(d.cause, "queue_full");
  o.queued = 7;
  EXPECT_EQ(DecideOffload(o).target, OffloadTarget::kLocal);
}

TEST(OffloadTest, PredictedWaitInWavesOfSlotsAgainstTheBudget) {
  OffloadObservation o = Busy();  // 2 running, 0 queued: this one waits one wave
  auto d = DecideOffload(o);
  EXPECT_EQ(d.target, OffloadTarget::kLocal);
  EXPECT_EQ(d.predicted_local_us, 20'000);  // one wave + its own execution
  o.queued = 5;                             // 6 ahead of it in 2 slots: 3 waves + its execution
  d = DecideOffload(o);
  EXPECT_EQ(d.predicted_local_us, 40'000);
  EXPECT_EQ(d.target, OffloadTarget::kLocal);
  o.budget_us = 39'000;
  d = DecideOffload(o);
  EXPECT_EQ(d.target, OffloadTarget::kUpstream);
  EXPECT_EQ(d.reason, "predicted local wait and execution 40000 us over the budget 39000 us");
  EXPECT_EQ(d.cause, "over_budget");
}

TEST(OffloadTest, StaysLocalWhenTheUpstreamIsSlowerOrNothingIsMeasured) {
  OffloadObservation o = Busy();
  o.queued = 5;
  o.budget_us = 30'000;
  o.upstream_round_trip_us = 45'000;  // slower than the 40 ms predicted here
  EXPECT_EQ(DecideOffload(o).target, OffloadTarget::kLocal);
  o.upstream_round_trip_us = 0;  // not measured yet: try it
  EXPECT_EQ(DecideOffload(o).target, OffloadTarget::kUpstream);
  o.mean_execution_us = 0;
  EXPECT_EQ(DecideOffload(o).target, OffloadTarget::kLocal);
}

TEST(OffloadTest, UpdateMeanStartsAtTheFirstSampleThenMovesAnEighth) {
  EXPECT_EQ(UpdateMean(0, 800), 800);
  EXPECT_EQ(UpdateMean(800, 1600), 900);
  EXPECT_EQ(UpdateMean(900, 100), 800);
}

}  // namespace
}  // namespace thaw::policy
