#include "policy/batching.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>

namespace thaw::policy {
namespace {

constexpr Micros kMs = kMicrosPerMilli;
constexpr Micros kSecond = kMicrosPerSecond;

// Slack 0 keeps the deadline arithmetic in these tests exact; the slack has a test of its own.
BatchingOptions Options(BatchingMode mode) {
  BatchingOptions o;
  o.mode = mode;
  o.deadline_slack_us = 0;
  return o;
}

// Keys are string literals: a BatchRequest only views its key.
BatchRequest Req(uint64_t id, Micros arrival, int64_t rows = 1, std::string_view key = "k", Micros deadline = kNoDeadline) {
  return {id, arrival, deadline, rows, key};
}

// ---- A virtual-time simulation of one model's queue and instances ----

struct Arrival {
  Micros t = 0;
  int64_t rows = 1;
  std::string key = "k";
  Micros deadline_us = kNoDeadline;
};

struct Batch {
  Micros sent_us = 0;
  std::vector<uint64_t> ids;
  int64_t rows = 0;
  Micros max_wait_us = 0;  // longest time a request in it spent queued
};

struct SimResult {
  std::vector<Batch> batches;
  // Times the batcher chose to wait although a slot was free and work was queued.
  std::vector<Micros> voluntary_waits;
  int deadline_misses = 0;
};

// Runs `batcher` against `arrivals` (sorted by time) with `slots` instances
// whose batch of n rows takes a + b * n microseconds; calls Decide on every
// arrival, completion and requested wake, exactly as the runtime is meant to.
SimResult Simulate(AdaptiveBatcher& batcher, const std::vector<Arrival>& arrivals, int slots, Micros a, Micros b) {
  SimResult result;
  std::vector<BatchRequest> queue;
  std::multimap<Micros, int64_t> running;  // completion time -> rows
  int free_slots = slots;
  std::optional<Micros> wake;
  size_t next = 0;
  while (true) {
    Micros now = kNoDeadline;
    if (next < arrivals.size()) now = std::min(now, arrivals[next].t);
    if (!running.empty()) now = std::min(now, running.begin()->first);
    if (wake) now = std::min(now, *wake);
    if (now == kNoDeadline) break;
    while (!running.empty() && running.begin()->first <= now) {
      batcher.OnBatchDone(running.begin()->second, a + b * running.begin()->second);
      running.erase(running.begin());
      ++free_slots;
    }
    while (next < arrivals.size() && arrivals[next].t <= now) {
      const Arrival& r = arrivals[next];
      queue.push_back({next, r.t, r.deadline_us, r.rows, r.key});
      batcher.OnArrival(r.t, r.rows);
      ++next;
    }
    wake.reset();
    while (true) {
      BatchDecision d = batcher.Decide({.now_us = now, .queue = queue, .free_slots = free_slots});
      if (d.dispatch.empty()) {
        if (d.next_wake_us) {
          EXPECT_GT(*d.next_wake_us, now);
          wake = d.next_wake_us;
        }
        if (free_slots > 0 && !queue.empty()) result.voluntary_waits.push_back(now);
        break;
      }
      EXPECT_GT(free_slots, 0);
      EXPECT_FALSE(d.next_wake_us.has_value());
      Batch batch{now, d.dispatch, 0, 0};
      Micros min_deadline = kNoDeadline;
      const std::string key(queue.front().shape_key);
      for (uint64_t id : d.dispatch) {
        auto it = std::find_if(queue.begin(), queue.end(), [id](const BatchRequest& q) { return q.id == id; });
        if (it == queue.end()) {
          ADD_FAILURE() << "dispatched id " << id << " is not queued";
          return result;
        }
        EXPECT_EQ(it->shape_key, key) << "mixed shape keys";
        batch.rows += it->rows;
        batch.max_wait_us = std::max(batch.max_wait_us, now - it->arrival_us);
        min_deadline = std::min(min_deadline, it->deadline_us);
        queue.erase(it);
      }
      EXPECT_TRUE(std::is_sorted(d.dispatch.begin(), d.dispatch.end())) << "not FIFO";
      const Micros exec = a + b * batch.rows;
      if (now + exec > min_deadline) ++result.deadline_misses;
      running.emplace(now + exec, batch.rows);
      --free_slots;
      result.batches.push_back(std::move(batch));
    }
  }
  EXPECT_TRUE(queue.empty());
  return result;
}

std::vector<Arrival> Steady(Micros from, Micros until, Micros gap) {
  std::vector<Arrival> out;
  for (Micros t = from; t < until; t += gap) out.push_back({t});
  return out;
}

double MeanRows(const std::vector<Batch>& batches, size_t from) {
  double sum = 0;
  for (size_t i = from; i < batches.size(); ++i) sum += static_cast<double>(batches[i].rows);
  return sum / static_cast<double>(batches.size() - from);
}

// ---- Options ----

TEST(BatchingTest, ValidateNamesTheField) {
  EXPECT_TRUE(Validate(BatchingOptions()).ok());
  auto expect_bad = [](const BatchingOptions& o, const std::string& field) {
    Status s = Validate(o);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << field;
    EXPECT_NE(s.message().find("'" + field + "'"), std::string::npos) << s.message();
  };
  BatchingOptions o;
  o.mode = static_cast<BatchingMode>(7);
  expect_bad(o, "mode");
  o = BatchingOptions();
  o.max_batch_size = 0;
  expect_bad(o, "max_batch_size");
  o = BatchingOptions();
  o.max_queue_delay_us = -1;
  expect_bad(o, "max_queue_delay_us");
  o = BatchingOptions();
  o.preferred_batch_sizes = {4, 9};
  expect_bad(o, "preferred_batch_sizes");
  o.preferred_batch_sizes = {4, 4};
  expect_bad(o, "preferred_batch_sizes");
  o = BatchingOptions();
  o.slo_p99_ms = 0;
  expect_bad(o, "slo_p99_ms");
}

// ---- Cost model ----

TEST(BatchingTest, CostModelFitsALine) {
  ExecCostModel cost(8);
  EXPECT_FALSE(cost.has_samples());
  EXPECT_EQ(cost.Predict(4), 0);
  cost.Add(1, 1100);
  // One size only: assumes all overhead.
  EXPECT_DOUBLE_EQ(cost.Predict(8), 1100);
  cost.Add(4, 1400);
  cost.Add(8, 1800);
  EXPECT_NEAR(cost.intercept_us(), 1000, 1e-6);
  EXPECT_NEAR(cost.slope_us_per_row(), 100, 1e-6);
  cost.Add(9, 1);  // beyond max_batch_size: ignored
  EXPECT_NEAR(cost.Predict(2), 1200, 1e-6);
}

// ---- kOff ----

TEST(BatchingTest, OffSendsTheOldestAloneAndNeverWaits) {
  AdaptiveBatcher batcher(Options(BatchingMode::kOff));
  std::vector<BatchRequest> queue = {Req(1, 0), Req(2, 10), Req(3, 20)};
  BatchDecision d = batcher.Decide({.now_us = 20, .queue = queue, .free_slots = 2});
  EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1}));
  EXPECT_FALSE(d.next_wake_us);
  d = batcher.Decide({.now_us = 20, .queue = queue, .free_slots = 0});
  EXPECT_TRUE(d.dispatch.empty());
  EXPECT_FALSE(d.next_wake_us);

  SimResult r = Simulate(batcher, Steady(0, 1 * kSecond, 300), 2, 1000, 10);
  EXPECT_TRUE(r.voluntary_waits.empty());
  for (const Batch& b : r.batches) EXPECT_EQ(b.rows, 1);
}

// ---- kFixed ----

TEST(BatchingTest, FixedSendsAFullBatchAtOnce) {
  BatchingOptions o = Options(BatchingMode::kFixed);
  o.max_batch_size = 4;
  o.max_queue_delay_us = 10 * kMs;
  AdaptiveBatcher batcher(o);
  std::vector<BatchRequest> queue = {Req(1, 0), Req(2, 1), Req(3, 2), Req(4, 3), Req(5, 4)};
  BatchDecision d = batcher.Decide({.now_us = 4, .queue = queue, .free_slots = 1});
  EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1, 2, 3, 4}));
  // Rows count, not requests: 3 + 1 fills 4; a 2-row request cannot join 3 rows.
  queue = {Req(1, 0, 3), Req(2, 1, 2), Req(3, 2, 1)};
  d = batcher.Decide({.now_us = 2, .queue = queue, .free_slots = 1});
  EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1}));  // the next request does not fit: full
  // An oversized request goes alone.
  queue = {Req(1, 0, 6), Req(2, 1)};
  d = batcher.Decide({.now_us = 1, .queue = queue, .free_slots = 1});
  EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1}));
  // No free slot: nothing, and no wake (a freed slot is an event).
  queue = {Req(1, 0), Req(2, 1), Req(3, 2), Req(4, 3)};
  d = batcher.Decide({.now_us = 4, .queue = queue, .free_slots = 0});
  EXPECT_TRUE(d.dispatch.empty());
  EXPECT_FALSE(d.next_wake_us);
}

TEST(BatchingTest, FixedWaitsForTheQueueDelayThenSends) {
  BatchingOptions o = Options(BatchingMode::kFixed);
  o.max_queue_delay_us = 1000;
  AdaptiveBatcher batcher(o);
  batcher.OnBatchDone(1, 100);
  // A lone request with a free slot still waits (Triton semantics).
  std::vector<BatchRequest> queue = {Req(7, 500)};
  BatchDecision d = batcher.Decide({.now_us = 500, .queue = queue, .free_slots = 1});
  EXPECT_TRUE(d.dispatch.empty());
  EXPECT_EQ(d.next_wake_us, 1500);
  queue.push_back(Req(8, 900));
  d = batcher.Decide({.now_us = 900, .queue = queue, .free_slots = 1});
  EXPECT_TRUE(d.dispatch.empty());
  EXPECT_EQ(d.next_wake_us, 1500);  // the oldest request sets the timeout
  d = batcher.Decide({.now_us = 1500, .queue = queue, .free_slots = 1});
  EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{7, 8}));
}

// Before any execution there is no cost estimate to keep a deadline with, so
// even kFixed sends at once; the slack moves the latest start earlier.
TEST(BatchingTest, FixedSendsAtOnceUntilItKnowsTheCostAndKeepsTheSlack) {
  BatchingOptions o = Options(BatchingMode::kFixed);
  o.max_queue_delay_us = 10 * kMs;
  o.deadline_slack_us = 700;
  AdaptiveBatcher batcher(o);
  std::vector<BatchRequest> queue = {Req(1, 0, 1, "k", 5 * kMs)};
  EXPECT_EQ(batcher.Decide({.now_us = 0, .queue = queue, .free_slots = 1}).dispatch, (std::vector<uint64_t>{1}));
  batcher.OnBatchDone(1, 1000);
  BatchDecision d = batcher.Decide({.now_us = 0, .queue = queue, .free_slots = 1});
  EXPECT_TRUE(d.dispatch.empty());
  EXPECT_EQ(d.next_wake_us, 5 * kMs - 1000 - 700);
  EXPECT_EQ(batcher.Decide({.now_us = 5 * kMs - 1700, .queue = queue, .free_slots = 1}).dispatch,
            (std::vector<uint64_t>{1}));
  o.deadline_slack_us = -1;
  EXPECT_FALSE(Validate(o).ok());
}

TEST(BatchingTest, FixedSendsTheLargestPreferredPrefix) {
  BatchingOptions o = Options(BatchingMode::kFixed);
  o.max_batch_size = 8;
  o.max_queue_delay_us = 10 * kMs;
  o.preferred_batch_sizes = {2, 4};
  AdaptiveBatcher batcher(o);
  batcher.OnBatchDone(1, 100);
  std::vector<BatchRequest> queue = {Req(1, 0), Req(2, 1), Req(3, 2), Req(4, 3), Req(5, 4)};
  EXPECT_EQ(batcher.Decide({.now_us = 4, .queue = queue, .free_slots = 1}).dispatch, (std::vector<uint64_t>{1, 2, 3, 4}));
  queue = {Req(1, 0), Req(2, 1), Req(3, 2)};
  EXPECT_EQ(batcher.Decide({.now_us = 2, .queue = queue, .free_slots = 1}).dispatch, (std::vector<uint64_t>{1, 2}));
  queue = {Req(1, 0)};
  EXPECT_TRUE(batcher.Decide({.now_us = 0, .queue = queue, .free_slots = 1}).dispatch.empty());
}

TEST(BatchingTest, WaitingNeverMakesARequestMissItsDeadline) {
  BatchingOptions o = Options(BatchingMode::kFixed);
  o.max_queue_delay_us = 10 * kMs;
  AdaptiveBatcher batcher(o);
  batcher.OnBatchDone(1, 1000);
  batcher.OnBatchDone(2, 1100);
  // Deadline 3 ms after arrival; a batch of one runs ~1 ms: send by 2 ms.
  std::vector<BatchRequest> queue = {Req(1, 0, 1, "k", 3 * kMs)};
  BatchDecision d = batcher.Decide({.now_us = 0, .queue = queue, .free_slots = 1});
  EXPECT_TRUE(d.dispatch.empty());
  EXPECT_EQ(d.next_wake_us, 2 * kMs);
  // A later request with an earlier deadline pulls the batch forward.
  queue.push_back(Req(2, 500, 1, "k", 2 * kMs));
  d = batcher.Decide({.now_us = 500, .queue = queue, .free_slots = 1});
  EXPECT_EQ(d.next_wake_us, 2 * kMs - 1100);
  d = batcher.Decide({.now_us = 900, .queue = queue, .free_slots = 1});
  EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1, 2}));

  // Under load, in every mode that waits: deadlines between 5 and 40 ms,
  // ample instances, a cost model learned from the start.
  for (BatchingMode mode : {BatchingMode::kFixed, BatchingMode::kAdaptive}) {
    BatchingOptions lo = Options(mode);
    lo.max_queue_delay_us = 50 * kMs;
    lo.max_batch_size = 16;
    AdaptiveBatcher b(lo);
    b.OnBatchDone(1, 2000 + 100);
    b.OnBatchDone(16, 2000 + 1600);
    std::vector<Arrival> arrivals;
    for (int i = 0; i < 2000; ++i) {
      const Micros t = static_cast<Micros>(i) * 1700 + (i * 7919) % 1300;
      arrivals.push_back({t, 1 + i % 3, "k", t + 5 * kMs + (i * 104729) % (35 * kMs)});
    }
    SimResult r = Simulate(b, arrivals, 100, 2000, 100);
    EXPECT_EQ(r.deadline_misses, 0) << static_cast<int>(mode);
    EXPECT_GT(MeanRows(r.batches, 0), 1.5) << static_cast<int>(mode);  // and it did batch
  }
}

TEST(BatchingTest, NeverMixesShapeKeys) {
  for (BatchingMode mode : {BatchingMode::kOff, BatchingMode::kFixed, BatchingMode::kAdaptive}) {
    BatchingOptions o = Options(mode);
    o.max_batch_size = 3;
    AdaptiveBatcher batcher(o);
    batcher.OnBatchDone(1, 1000);
    std::vector<BatchRequest> queue = {Req(1, 0, 1, "a"), Req(2, 1, 1, "b"), Req(3, 2, 1, "a"),
                                        Req(4, 3, 1, "b"), Req(5, 4, 1, "a"), Req(6, 5, 1, "a")};
    BatchDecision d = batcher.Decide({.now_us = 5 * kSecond, .queue = queue, .free_slots = 1});
    if (mode == BatchingMode::kOff) {
      EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1}));
    } else {
      EXPECT_EQ(d.dispatch, (std::vector<uint64_t>{1, 3, 5}));
    }
    // And in a simulated mixed stream (Simulate checks each batch's keys).
    std::vector<Arrival> arrivals;
    for (int i = 0; i < 600; ++i) arrivals.push_back({static_cast<Micros>(i) * 400, 1, i % 3 == 0 ? "x" : "y"});
    SimResult r = Simulate(batcher, arrivals, 2, 1000, 50);
    EXPECT_FALSE(r.batches.empty());
  }
}

// ---- kAdaptive ----

BatchingOptions AdaptiveOptions() {
  BatchingOptions o = Options(BatchingMode::kAdaptive);
  o.max_batch_size = 8;
  o.max_queue_delay_us = 50 * kMs;
  o.slo_p99_ms = 100;
  return o;
}

TEST(BatchingTest, AdaptiveGrowsUnderAHighRateAndShrinksUnderATrickle) {
  AdaptiveBatcher batcher(AdaptiveOptions());
  // Per-call overhead dominates: 2 ms + 50 us per row. One instance, a
  // request every 3 ms: without batching the instance would idle 1/3 of the
  // time and every request would pay the full 2 ms overhead.
  const Micros a = 2000, b = 50;
  SimResult high = Simulate(batcher, Steady(0, 3 * kSecond, 3000), 1, a, b);
  ASSERT_GT(high.batches.size(), 100u);
  EXPECT_GE(MeanRows(high.batches, high.batches.size() - 50), 7.5);
  EXPECT_EQ(batcher.TargetBatchSize(3 * kSecond - 3000), 8);
  for (size_t i = high.batches.size() - 50; i < high.batches.size(); ++i)
    EXPECT_LE(high.batches[i].max_wait_us + a + b * high.batches[i].rows, 80 * kMs);  // within the SLO budget

  // Then a trickle: one request every 400 ms. Filling even two rows would
  // blow the 100 ms SLO, so requests go alone, at once.
  SimResult trickle = Simulate(batcher, Steady(4 * kSecond, 24 * kSecond, 400 * kMs), 1, a, b);
  ASSERT_EQ(trickle.batches.size(), 50u);
  for (size_t i = 5; i < trickle.batches.size(); ++i) {
    EXPECT_EQ(trickle.batches[i].rows, 1);
    EXPECT_EQ(trickle.batches[i].max_wait_us, 0) << i;
  }
  EXPECT_EQ(batcher.TargetBatchSize(24 * kSecond), 1);
}

TEST(BatchingTest, AdaptiveStopsWaitingWhenBatchingDoesNotPay) {
  AdaptiveBatcher batcher(AdaptiveOptions());
  // Compute-bound: a batch of n costs n single calls (1 ms per row, no
  // overhead). The batcher starts optimistic, tries larger batches, learns
  // the slope, and then sends each request as soon as a slot is free.
  const Micros a = 0, b = 1000;
  SimResult r = Simulate(batcher, Steady(0, 3 * kSecond, 3000), 1, a, b);
  EXPECT_NEAR(batcher.cost().slope_us_per_row(), 1000, 1);
  EXPECT_NEAR(batcher.cost().intercept_us(), 0, 1);
  EXPECT_EQ(batcher.TargetBatchSize(3 * kSecond), 1);
  ASSERT_FALSE(r.voluntary_waits.empty());  // it did explore at first...
  EXPECT_LT(r.voluntary_waits.back(), 1 * kSecond);  // ...and then stopped waiting
  for (size_t i = r.batches.size() - 100; i < r.batches.size(); ++i) EXPECT_EQ(r.batches[i].max_wait_us, 0) << i;

  // The same rate with overhead-dominated cost keeps batching.
  AdaptiveBatcher overhead(AdaptiveOptions());
  SimResult o = Simulate(overhead, Steady(0, 3 * kSecond, 3000), 1, 2000, 50);
  EXPECT_GT(MeanRows(o.batches, o.batches.size() / 2), 4);
}

TEST(BatchingTest, AdaptiveRespectsTheQueueDelayCap) {
  BatchingOptions o = AdaptiveOptions();
  o.max_queue_delay_us = 5 * kMs;
  AdaptiveBatcher batcher(o);
  SimResult r = Simulate(batcher, Steady(0, 2 * kSecond, 3000), 1, 2000, 50);
  for (const Batch& b : r.batches) EXPECT_LE(b.max_wait_us, 5 * kMs + 2000 + 50 * 8);  // cap + a running batch
  EXPECT_GT(MeanRows(r.batches, r.batches.size() / 2), 1.5);
}

}  // namespace
}  // namespace thaw::policy
