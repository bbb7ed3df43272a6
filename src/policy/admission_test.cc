#include "policy/admission.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <deque>

namespace thaw::policy {
namespace {

constexpr Micros kMilli = kMicrosPerMilli;

TEST(AdmissionTest, ValidateNamesTheField) {
  EXPECT_TRUE(Validate(AdmissionOptions{}).ok());
  Status s = Validate({.max_concurrency = 0});
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'max_concurrency'"), std::string::npos);
  EXPECT_NE(Validate({.instance_concurrency = 0}).message().find("'instance_concurrency'"), std::string::npos);
  EXPECT_NE(Validate({.max_queue = -1}).message().find("'max_queue'"), std::string::npos);
}

TEST(AdmissionTest, FullQueueIsResourceExhausted) {
  const AdmissionOptions options{.max_concurrency = 2, .instance_concurrency = 1, .max_queue = 0};
  EXPECT_TRUE(Admit({.queued = 0, .in_flight = 0}, options).ok());
  // Unused slots absorb queued requests (they wait for instances starting).
  EXPECT_TRUE(Admit({.queued = 1, .in_flight = 0}, options).ok());
  EXPECT_TRUE(Admit({.queued = 0, .in_flight = 1}, options).ok());
  Status full = Admit({.queued = 0, .in_flight = 2}, options);
  EXPECT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(HttpStatusFor(full.code()), 429);
  EXPECT_EQ(Admit({.queued = 2, .in_flight = 0}, options).code(), StatusCode::kResourceExhausted);
}

TEST(AdmissionTest, AdmitsWhileWaitersBeyondAllSlotsStayWithinMaxQueue) {
  for (int max_concurrency : {1, 3}) {
    for (int instance_concurrency : {1, 4}) {
      for (int max_queue : {0, 2, 5}) {
        const AdmissionOptions options{max_concurrency, instance_concurrency, max_queue};
        const int slots = max_concurrency * instance_concurrency;
        for (int in_flight = 0; in_flight <= slots; ++in_flight) {
          for (int queued = 0; queued <= slots + max_queue + 2; ++queued) {
            // With the new request, how many wait beyond every slot?
            const int beyond = queued + 1 - (slots - in_flight);
            EXPECT_EQ(Admit({queued, in_flight}, options).ok(), beyond <= max_queue)
                << max_concurrency << " " << instance_concurrency << " " << max_queue << " " << in_flight << " "
                << queued;
          }
        }
      }
    }
  }
}

TEST(AdmissionTest, DeadlineIsTheShorterTimeout) {
  EXPECT_EQ(*RequestDeadline(1000, 5000, std::nullopt), 1000 + 5000 * kMilli);
  EXPECT_EQ(*RequestDeadline(1000, 5000, 200), 1000 + 200 * kMilli);
  EXPECT_EQ(*RequestDeadline(1000, 5000, 9000), 1000 + 5000 * kMilli);
  EXPECT_EQ(RequestDeadline(1000, 5000, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RequestDeadline(1000, 5000, -3).status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(RequestDeadline(1000, 5000, 0).status().message().find("timeout_ms"), std::string::npos);
}

TEST(AdmissionTest, ExpiredRequestsAreReportedAndNeverDispatched) {
  const QueuedRequest queue[] = {{.id = 1, .deadline_us = 100}, {.id = 2, .deadline_us = 50},
                                 {.id = 3, .deadline_us = 300}, {.id = 4, .deadline_us = 101}};
  ExpiryScan scan = ExpiredRequests(queue, 100);
  EXPECT_EQ(scan.expired, (std::vector<uint64_t>{1, 2}));  // at the deadline counts as past it
  EXPECT_EQ(scan.next_deadline_us, 101);
  EXPECT_FALSE(ExpiredRequests({}, 100).next_deadline_us.has_value());

  // A dispatcher in virtual time: one slot frees at 250; the queue is scanned
  // for expiry at every wake before anything is dispatched.
  std::deque<QueuedRequest> waiting(std::begin(queue), std::end(queue));
  std::vector<uint64_t> dispatched, failed;
  Micros now = 0;
  const Micros slot_free_at = 250;
  while (!waiting.empty()) {
    std::vector<QueuedRequest> snapshot(waiting.begin(), waiting.end());
    ExpiryScan s = ExpiredRequests(snapshot, now);
    for (uint64_t id : s.expired) {
      failed.push_back(id);
      std::erase_if(waiting, [id](const QueuedRequest& r) { return r.id == id; });
    }
    if (now >= slot_free_at && !waiting.empty()) {
      dispatched.push_back(waiting.front().id);
      waiting.pop_front();
      continue;
    }
    Micros next = slot_free_at > now ? slot_free_at : now;
    if (s.next_deadline_us) next = std::min(next, *s.next_deadline_us);
    now = next;
  }
  EXPECT_EQ(failed, (std::vector<uint64_t>{2, 1, 4}));
  EXPECT_EQ(dispatched, (std::vector<uint64_t>{3}));
}

std::vector<LiveInstance> Node() {
  return {
      {.model = "a", .id = 1, .memory_mb = 1024, .idle = true, .last_used_us = 500},
      {.model = "b", .id = 2, .memory_mb = 512, .idle = true, .last_used_us = 100},   // least recently used
      {.model = "b", .id = 3, .memory_mb = 512, .idle = false, .last_used_us = 50},   // busy: never evicted
      {.model = "c", .id = 4, .memory_mb = 1024, .idle = true, .last_used_us = 10},   // the requester's own
      {.model = "a", .id = 5, .memory_mb = 1024, .idle = true, .last_used_us = 900},
  };  // 4096 MB in use
}

TEST(PlanColdStartTest, FitsWithoutEvicting) {
  auto plan = PlanColdStart(1024, 8192, Node(), "c");
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->evict.empty());
  EXPECT_EQ(plan->used_mb, 4096);
  EXPECT_EQ(plan->free_mb_after, 8192 - 4096 - 1024);
}

TEST(PlanColdStartTest, EvictsLeastRecentlyUsedIdleInstancesOfOtherModels) {
  // 4096 used + 1024 needed over a 4608 budget: 512 MB must go; b/2 is the LRU idle of another model.
  auto plan = PlanColdStart(1024, 4608, Node(), "c");
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->evict.size(), 1u);
  EXPECT_EQ(plan->evict[0].model, "b");
  EXPECT_EQ(plan->evict[0].id, 2u);
  EXPECT_EQ(plan->free_mb_after, 0);

  // More pressure: then a/1 (used at 500) before a/5 (used at 900).
  plan = PlanColdStart(1024, 4096, Node(), "c");
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->evict.size(), 2u);
  EXPECT_EQ(plan->evict[0].id, 2u);
  EXPECT_EQ(plan->evict[1].id, 1u);
  EXPECT_EQ(plan->free_mb_after, 512);
}

TEST(PlanColdStartTest, RefusesWith503WhenEvictingAllIdleOthersIsNotEnough) {
  // Evictable for "c": 1024 + 512 + 1024 = 2560 MB; 4096 - 2560 + 2048 > 3000.
  auto plan = PlanColdStart(2048, 3000, Node(), "c");
  EXPECT_EQ(plan.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusFor(plan.status().code()), 503);
  EXPECT_NE(plan.status().message().find("2560 MB"), std::string::npos) << plan.status().message();
  // Nothing idle to evict at all.
  const LiveInstance busy[] = {{.model = "a", .id = 1, .memory_mb = 1024, .idle = false}};
  EXPECT_EQ(PlanColdStart(1024, 1536, busy, "b").status().code(), StatusCode::kUnavailable);
  // More than the whole budget.
  EXPECT_EQ(PlanColdStart(4096, 2048, {}, "a").status().code(), StatusCode::kUnavailable);
}

TEST(PlanColdStartTest, CheapestRestartEvictsTheCheapestFirstThenTheLeastRecentlyUsed) {
  std::vector<LiveInstance> live = Node();
  live[0].restart_cost_us = 3'000;                 // a/1
  live[1].restart_cost_us = kEvictionCostUnknown;  // b/2, the LRU, never measured
  live[4].restart_cost_us = 3'000;                 // a/5, as cheap as a/1 but used later
  // 1024 MB must go: a/1 (cheapest, older than a/5), not the LRU b/2.
  auto plan = PlanColdStart(1024, 4096, live, "c", EvictionOrder::kCheapestRestart);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->evict.size(), 1u);
  EXPECT_EQ(plan->evict[0].id, 1u);
  // More: then a/5; the unmeasured b/2 last.
  plan = PlanColdStart(1024, 3072, live, "c", EvictionOrder::kCheapestRestart);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->evict.size(), 2u);
  EXPECT_EQ(plan->evict[1].id, 5u);
  plan = PlanColdStart(1024, 2560, live, "c", EvictionOrder::kCheapestRestart);
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->evict.size(), 3u);
  EXPECT_EQ(plan->evict[2].id, 2u);
  // The same node under LRU: b/2 first, whatever the costs.
  plan = PlanColdStart(1024, 4096, live, "c", EvictionOrder::kLeastRecentlyUsed);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->evict[0].id, 2u);
}

TEST(EvictionOrderTest, NamesRoundTrip) {
  for (EvictionOrder order : {EvictionOrder::kLeastRecentlyUsed, EvictionOrder::kCheapestRestart})
    EXPECT_EQ(ParseEvictionOrder(EvictionOrderName(order)), order);
  EXPECT_FALSE(ParseEvictionOrder("fifo").has_value());
}

TEST(PlanColdStartTest, RejectsNonPositiveSizes) {
  EXPECT_EQ(PlanColdStart(0, 1024, {}, "a").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(PlanColdStart(128, 0, {}, "a").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace thaw::policy
