// The scheduler in virtual time: every scenario the runtime's tests cover
// with real workers (cold start, crash, deadline kill, 429, batching,
// keep-alive, provisioned floor, memory budget, start timeout and backoff,
// settings change), with instances that exist only as events.
#include "sched/scheduler.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace thaw::sched {
namespace {

using Kind = Action::Kind;

ModelConfig Config(const std::string& name) {
  ModelConfig c;
  c.name = name;
  c.start_path = StartPath::kExec;
  c.max_concurrency = 2;
  c.keep_alive_s = 10;
  c.timeout_ms = 1000;
  c.start_timeout_ms = 5000;
  c.memory_mb = 200;
  return c;
}

// Drives a Scheduler at a virtual time and keeps what it asked for.
class Driver {
 public:
  explicit Driver(SchedulerOptions options = {}) : scheduler(options) {}

  Now At(Micros t) const { return {.mono_us = t, .wall_us = kWallOrigin + t}; }
  Actions Take() { return std::exchange(actions, {}); }

  Status Add(const ModelConfig& c, Micros t = 0) { return scheduler.AddModel(c, At(t), &actions); }
  Status Arrive(const std::string& model, Micros t, int64_t rows = 1, const std::string& key = "") {
    const uint64_t id = next_request_id++;
    return scheduler.Arrive(model, {.id = id, .rows = rows, .batch_key = key, .arrival_us = t,
                                    .deadline_us = t + deadline_us},
                            At(t), &actions);
  }
  void Ready(const std::string& model, uint64_t instance, Micros t) { scheduler.InstanceReady(model, instance, At(t), &actions); }
  std::optional<Completion> Done(const std::string& model, uint64_t instance, uint64_t execution, Micros t,
                                 Micros round_trip_us = 1000) {
    return scheduler.ExecutionDone(model, instance, execution, round_trip_us, true, At(t), &actions);
  }
  void Wake(const std::string& model, Micros t) { scheduler.Wake(model, At(t), &actions); }

  // The last kWake the scheduler asked for, for `model`.
  Micros WakeOf(const std::string& model) {
    for (const Action& a : history)
      if (a.kind == Kind::kWake && a.model == model) wake[model] = a.at_us;
    history.clear();
    return wake.count(model) ? wake[model] : kNever;
  }

  static constexpr Micros kWallOrigin = 1'700'000'000LL * kMicrosPerSecond;
  Scheduler scheduler;
  Actions actions;
  Actions history;
  std::map<std::string, Micros> wake;
  uint64_t next_request_id = 1;
  Micros deadline_us = 1'000'000;
};

std::vector<Action> OfKind(const Actions& actions, Kind kind) {
  std::vector<Action> found;
  for (const Action& a : actions)
    if (a.kind == kind) found.push_back(a);
  return found;
}

Micros LastWake(const Actions& actions, Micros otherwise) {
  for (const Action& a : actions)
    if (a.kind == Kind::kWake) otherwise = a.at_us;
  return otherwise;
}

TEST(Scheduler, ColdStartDispatchesOnceTheInstanceIsReady) {
  Driver d;
  ASSERT_TRUE(d.Add(Config("m")).ok());
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStart).empty());  // no floor: nothing starts at deploy
  ASSERT_TRUE(d.Arrive("m", 100).ok());
  Actions a = d.Take();
  auto starts = OfKind(a, Kind::kStart);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].path, StartPath::kExec);
  EXPECT_FALSE(starts[0].provisioned);
  EXPECT_TRUE(OfKind(a, Kind::kDispatch).empty());
  const uint64_t instance = starts[0].instance_id;

  d.Ready("m", instance, 50'000);
  auto dispatches = OfKind(d.Take(), Kind::kDispatch);
  ASSERT_EQ(dispatches.size(), 1u);
  EXPECT_EQ(dispatches[0].instance_id, instance);
  EXPECT_EQ(dispatches[0].request_ids, std::vector<uint64_t>{1});

  auto done = d.Done("m", instance, dispatches[0].execution_id, 51'000);
  ASSERT_TRUE(done.has_value());
  ASSERT_EQ(done->requests.size(), 1u);
  EXPECT_EQ(done->requests[0].id, 1u);
  EXPECT_GT(done->instance.ready_us, done->requests[0].arrival_us);  // a cold start
  EXPECT_EQ(done->dispatched_us, 50'000);
  EXPECT_TRUE(d.scheduler.Idle());
  // Answered once: a second completion of the same execution is ignored.
  EXPECT_FALSE(d.Done("m", instance, dispatches[0].execution_id, 52'000).has_value());
}

TEST(Scheduler, FullQueueIsRefusedWithResourceExhausted) {
  Driver d;
  ModelConfig c = Config("m");
  c.max_concurrency = 1;
  c.max_queue = 2;
  ASSERT_TRUE(d.Add(c).ok());
  // One slot (not yet started) plus two queued.
  EXPECT_TRUE(d.Arrive("m", 0).ok());
  EXPECT_TRUE(d.Arrive("m", 0).ok());
  EXPECT_TRUE(d.Arrive("m", 0).ok());
  Status refused = d.Arrive("m", 0);
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("model 'm'"), std::string::npos);
  EXPECT_EQ(d.scheduler.Queued("m"), 3);
  EXPECT_EQ(d.scheduler.Arrive("nope", {.id = 99}, d.At(0), &d.actions).code(), StatusCode::kNotFound);
}

TEST(Scheduler, QueuedRequestFailsAtItsDeadlineWithoutRunning) {
  Driver d;
  ASSERT_TRUE(d.Add(Config("m")).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  Actions a = d.Take();
  EXPECT_EQ(LastWake(a, kNever), 1'000'000);  // the request's deadline
  d.Wake("m", 1'000'000);
  auto fails = OfKind(d.Take(), Kind::kFail);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(fails[0].instance_id, 0u);
  EXPECT_EQ(d.scheduler.Queued("m"), 0);
}

TEST(Scheduler, RunningPastTheDeadlineFailsItAndStopsTheInstance) {
  Driver d;
  ModelConfig c = Config("m");
  c.instance_concurrency = 2;
  ASSERT_TRUE(d.Add(c).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("m", instance, 10);
  d.deadline_us = 5'000'000;
  ASSERT_TRUE(d.Arrive("m", 20).ok());  // a later deadline, on the same instance
  Actions a = d.Take();
  ASSERT_EQ(OfKind(a, Kind::kDispatch).size(), 2u);
  d.Wake("m", 1'000'000);
  a = d.Take();
  auto fails = OfKind(a, Kind::kFail);
  ASSERT_EQ(fails.size(), 2u);
  EXPECT_EQ(fails[0].request_ids[0], 1u);
  EXPECT_EQ(fails[0].status.code(), StatusCode::kDeadlineExceeded);
  EXPECT_EQ(fails[1].request_ids[0], 2u);  // its neighbour on the killed instance
  EXPECT_EQ(fails[1].status.code(), StatusCode::kUnavailable);
  auto stops = OfKind(a, Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].reason, "timeout");
  EXPECT_TRUE(stops[0].fault);
  EXPECT_EQ(stops[0].request_ids, std::vector<uint64_t>{2});  // the neighbour it failed
  EXPECT_TRUE(d.scheduler.Instances("m").empty());
  // The next request starts a replacement.
  ASSERT_TRUE(d.Arrive("m", 2'000'000).ok());
  EXPECT_EQ(OfKind(d.Take(), Kind::kStart).size(), 1u);
}

TEST(Scheduler, CrashFailsRunningRequestsAndQueuedOnesGetAFreshInstance) {
  Driver d;
  ModelConfig c = Config("m");
  c.max_concurrency = 1;
  ASSERT_TRUE(d.Add(c).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  const uint64_t first = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("m", first, 10);
  ASSERT_TRUE(d.Arrive("m", 20).ok());  // queued behind the running one
  d.Take();
  d.scheduler.InstanceGone("m", first, GoneKind::kCrashed, Unavailable("instance exited"), "", d.At(30), &d.actions);
  Actions a = d.Take();
  auto fails = OfKind(a, Kind::kFail);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].request_ids[0], 1u);
  EXPECT_EQ(fails[0].status.message(), "instance exited");
  ASSERT_EQ(OfKind(a, Kind::kStop).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kStop)[0].reason, "crashed");
  auto starts = OfKind(a, Kind::kStart);
  ASSERT_EQ(starts.size(), 1u);
  d.Ready("m", starts[0].instance_id, 40);
  auto dispatches = OfKind(d.Take(), Kind::kDispatch);
  ASSERT_EQ(dispatches.size(), 1u);
  EXPECT_EQ(dispatches[0].request_ids, std::vector<uint64_t>{2});
  EXPECT_TRUE(d.scheduler.LastStartError("m").empty());
}

// Instances dying under queued work (an OOM kill, then a deadline kill)
// leave a replacement that then sits idle: keep-alive still stops it, on the
// wakes the scheduler asks for.
TEST(Scheduler, AnInstanceLeftByAPanicAmidKillsIsStoppedOnceThePanicEnds) {
  Driver d;
  ModelConfig c = Config("m");
  c.max_concurrency = 1;
  c.keep_alive_s = 2;
  c.stable_window_s = 6;
  c.panic_window_s = 2;
  c.keep_alive_policy = KeepAlive::kAdaptive;  // the default, as the model it was seen on
  ASSERT_TRUE(d.Add(c).ok());
  d.deadline_us = 3'000'000;
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("m", instance, 100'000);
  ASSERT_TRUE(d.Arrive("m", 200'000).ok());  // queued behind the running one
  ASSERT_TRUE(d.Arrive("m", 300'000).ok());
  d.Take();
  // The running request is killed at the memory limit; the queue starts a replacement.
  d.scheduler.InstanceGone("m", instance, GoneKind::kOom, Unavailable("memory limit"), "", d.At(1'000'000), &d.actions);
  Actions a = d.Take();
  ASSERT_EQ(OfKind(a, Kind::kStart).size(), 1u);
  instance = OfKind(a, Kind::kStart)[0].instance_id;
  d.Ready("m", instance, 1'100'000);
  d.Take();
  // Its request runs past the deadline: killed, and (the other still queued) replaced.
  d.Wake("m", 3'200'000);
  a = d.Take();
  ASSERT_FALSE(OfKind(a, Kind::kStop).empty());
  Micros wake = LastWake(a, kNever);
  for (const Action& start : OfKind(a, Kind::kStart)) d.Ready("m", start.instance_id, 3'300'000);
  Micros now = 3'300'000;
  // Follow the scheduler: start what it starts, answer what it dispatches,
  // wake it when it asks (the last wake asked for stands until replaced).
  for (int step = 0; step < 200 && !d.scheduler.Instances("m").empty(); ++step) {
    a = d.Take();
    wake = LastWake(a, wake);
    for (const Action& start : OfKind(a, Kind::kStart)) d.Ready("m", start.instance_id, now);
    for (const Action& dispatch : OfKind(a, Kind::kDispatch)) d.Done("m", dispatch.instance_id, dispatch.execution_id, now);
    if (!OfKind(a, Kind::kStart).empty() || !OfKind(a, Kind::kDispatch).empty()) continue;
    if (wake == kNever) break;
    now = std::max(now, wake);
    wake = kNever;
    d.Wake("m", now);
  }
  EXPECT_TRUE(d.scheduler.Instances("m").empty()) << "an idle instance was held at " << now << " us";
  EXPECT_LT(now, 30 * kMicrosPerSecond);
}

TEST(Scheduler, FailedStartsBackOffTheProvisionedFloor) {
  Driver d;
  ModelConfig c = Config("m");
  c.min_instances = 1;
  ASSERT_TRUE(d.Add(c).ok());
  auto starts = OfKind(d.Take(), Kind::kStart);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_TRUE(starts[0].provisioned);
  Micros t = 100;
  Micros expected_backoff = kMinStartRetryUs;
  uint64_t instance = starts[0].instance_id;
  for (int attempt = 0; attempt < 3; ++attempt) {
    d.scheduler.InstanceGone("m", instance, GoneKind::kCrashed, Unavailable("x"), "model.pt is corrupt", d.At(t),
                             &d.actions);
    Actions a = d.Take();
    EXPECT_TRUE(OfKind(a, Kind::kStart).empty()) << "retried without backoff";
    EXPECT_EQ(OfKind(a, Kind::kStop).at(0).reason, "start_failed");
    EXPECT_EQ(d.scheduler.LastStartError("m"), "model.pt is corrupt");
    const Micros wake = LastWake(a, kNever);
    EXPECT_EQ(wake, t + expected_backoff);
    d.Wake("m", wake);
    starts = OfKind(d.Take(), Kind::kStart);
    ASSERT_EQ(starts.size(), 1u);
    instance = starts[0].instance_id;
    t = wake + 100;
    expected_backoff *= 2;
  }
  d.Ready("m", instance, t);
  EXPECT_TRUE(d.scheduler.LastStartError("m").empty());
}

TEST(Scheduler, StartNotReadyInTimeIsStoppedAndItsQueueFails) {
  Driver d;
  ASSERT_TRUE(d.Add(Config("m")).ok());
  d.deadline_us = 60'000'000;
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  Actions a = d.Take();
  EXPECT_EQ(LastWake(a, kNever), 5'000'000);  // start_timeout_ms
  d.Wake("m", 5'000'000);
  a = d.Take();
  auto stops = OfKind(a, Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].reason, "start_timeout");
  auto fails = OfKind(a, Kind::kFail);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].status.code(), StatusCode::kUnavailable);
  EXPECT_NE(fails[0].status.message().find("start_timeout_ms=5000"), std::string::npos);
}

TEST(Scheduler, KeepAliveStopsAnIdleInstanceAfterKeepAliveS) {
  Driver d;
  ASSERT_TRUE(d.Add(Config("m")).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("m", instance, 10);
  const uint64_t execution = OfKind(d.Take(), Kind::kDispatch).at(0).execution_id;
  d.Done("m", instance, execution, 1'000);
  Actions a = d.Take();
  EXPECT_EQ(LastWake(a, kNever), 1'000 + 10 * kMicrosPerSecond);
  d.Wake("m", 1'000 + 10 * kMicrosPerSecond - 1);  // early: nothing stops
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStop).empty());
  d.Wake("m", 1'000 + 10 * kMicrosPerSecond);
  a = d.Take();
  auto stops = OfKind(a, Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].reason, "keep_alive");
  EXPECT_EQ(stops[0].usage.init_us, 10);
  EXPECT_EQ(stops[0].usage.busy_us, 990);
  EXPECT_EQ(stops[0].usage.idle_us, 10 * kMicrosPerSecond);
}

// Keep-alive 0 does not stop the instance a batch is filling for: a request
// waiting in the queue is work for it.
TEST(Scheduler, KeepAliveZeroDoesNotStopTheInstanceABatchWaitsFor) {
  Driver d;
  ModelConfig c = Config("m");
  c.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  c.outputs = {{"y", DataType::kFp32, {-1, 2}}};
  c.keep_alive_s = 0;
  c.max_concurrency = 1;
  c.batching = Batching::kFixed;
  c.max_batch_size = 4;
  c.max_queue_delay_us = 1'000;
  ASSERT_TRUE(d.Add(c).ok());
  // A first request, sent at once (no execution cost known yet); its instance stops when idle.
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  const uint64_t first = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("m", first, 10);
  d.Done("m", first, OfKind(d.Take(), Kind::kDispatch).at(0).execution_id, 1'010);
  d.Wake("m", 1'010);
  ASSERT_EQ(OfKind(d.Take(), Kind::kStop).size(), 1u);
  // The second waits for its batch to fill, until 3,000, on a ready instance.
  ASSERT_TRUE(d.Arrive("m", 2'000).ok());
  const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("m", instance, 2'010);
  Actions a = d.Take();
  EXPECT_TRUE(OfKind(a, Kind::kStop).empty());
  EXPECT_TRUE(OfKind(a, Kind::kDispatch).empty());
  d.Wake("m", 2'500);
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStop).empty());
  d.Wake("m", 3'000);
  a = d.Take();
  EXPECT_TRUE(OfKind(a, Kind::kStop).empty());
  ASSERT_EQ(OfKind(a, Kind::kDispatch).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kDispatch)[0].instance_id, instance);
}

// A live instance's usage so far is what its stop now would carry, and asking changes nothing.
TEST(Scheduler, RunningInstanceUsageIsTheStopsUsageSoFar) {
  Driver d;
  ASSERT_TRUE(d.Add(Config("m")).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  EXPECT_EQ(d.scheduler.RunningInstanceUsage(d.At(5)).at(0).usage.init_us, 5);  // not ready yet: all init
  d.Ready("m", instance, 10);
  const uint64_t execution = OfKind(d.Take(), Kind::kDispatch).at(0).execution_id;
  d.Done("m", instance, execution, 1'000);
  d.Take();
  const std::vector<Action> running = d.scheduler.RunningInstanceUsage(d.At(1'000 + 4 * kMicrosPerSecond));
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].model, "m");
  EXPECT_EQ(running[0].instance_id, instance);
  EXPECT_EQ(running[0].reason, "running");
  EXPECT_EQ(running[0].usage.init_us, 10);
  EXPECT_EQ(running[0].usage.busy_us, 990);
  EXPECT_EQ(running[0].usage.idle_us, 4 * kMicrosPerSecond);
  EXPECT_TRUE(d.actions.empty());
  d.Wake("m", 1'000 + 10 * kMicrosPerSecond);  // still stops on time, with its whole idle time
  auto stops = OfKind(d.Take(), Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].usage.idle_us, 10 * kMicrosPerSecond);
  EXPECT_TRUE(d.scheduler.RunningInstanceUsage(d.At(1'000 + 11 * kMicrosPerSecond)).empty());
}

TEST(Scheduler, ProvisionedInstancesStartAtOnceAndOutliveKeepAlive) {
  Driver d;
  ModelConfig c = Config("m");
  c.min_instances = 2;
  c.max_concurrency = 3;
  ASSERT_TRUE(d.Add(c).ok());
  auto starts = OfKind(d.Take(), Kind::kStart);
  ASSERT_EQ(starts.size(), 2u);
  for (const Action& s : starts) {
    EXPECT_TRUE(s.provisioned);
    d.Ready("m", s.instance_id, 10);
  }
  d.Take();
  d.Wake("m", 3600 * kMicrosPerSecond);
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStop).empty());
  EXPECT_EQ(d.scheduler.Instances("m").size(), 2u);
  // The floor's time is a usage record when it is closed.
  d.scheduler.FlushProvisioned(d.At(3600 * kMicrosPerSecond), &d.actions);
  auto intervals = OfKind(d.Take(), Kind::kProvisioned);
  ASSERT_EQ(intervals.size(), 1u);
  EXPECT_EQ(intervals[0].instances, 2);
  EXPECT_EQ(intervals[0].at_us - intervals[0].start_wall_us, 3600 * kMicrosPerSecond);
}

TEST(Scheduler, FixedBatchingSendsAFullBatchAsOneExecution) {
  Driver d;
  ModelConfig c = Config("m");
  c.max_concurrency = 1;
  c.batching = Batching::kFixed;
  c.max_batch_size = 4;
  c.max_queue_delay_us = 2000;
  ASSERT_TRUE(d.Add(c).ok());
  ASSERT_TRUE(d.Arrive("m", 0, 1, "k").ok());
  const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  // With no execution measured yet the batcher sends what it has.
  d.Ready("m", instance, 10);
  auto first = OfKind(d.Take(), Kind::kDispatch);
  ASSERT_EQ(first.size(), 1u);
  ASSERT_TRUE(d.Done("m", instance, first[0].execution_id, 510, 500).has_value());
  d.Take();
  ASSERT_TRUE(d.Arrive("m", 1000, 1, "k").ok());
  Actions a = d.Take();
  EXPECT_TRUE(OfKind(a, Kind::kDispatch).empty());  // waits for the batch to fill
  EXPECT_EQ(LastWake(a, kNever), 3000);             // arrival + max_queue_delay_us
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(d.Arrive("m", 1000 + i, 1, "k").ok());
  auto dispatches = OfKind(d.Take(), Kind::kDispatch);
  ASSERT_EQ(dispatches.size(), 1u);
  EXPECT_EQ(dispatches[0].request_ids, (std::vector<uint64_t>{2, 3, 4, 5}));
  EXPECT_EQ(dispatches[0].rows, 4);
  auto done = d.Done("m", instance, dispatches[0].execution_id, 1600);
  ASSERT_TRUE(done.has_value());
  ASSERT_EQ(done->requests.size(), 4u);
  EXPECT_EQ(done->requests[0].batch_wait_us, 3);  // arrived at 1000 to an idle instance, sent at 1003
  EXPECT_EQ(done->requests[3].batch_wait_us, 0);
}

TEST(Scheduler, MemoryBudgetEvictsAnotherModelsIdleInstanceElseRefuses) {
  Driver d({.memory_budget_mb = 300});
  ASSERT_TRUE(d.Add(Config("a")).ok());
  ASSERT_TRUE(d.Add(Config("b")).ok());
  ASSERT_TRUE(d.Arrive("a", 0).ok());
  const uint64_t a_instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.Ready("a", a_instance, 10);
  const uint64_t a_execution = OfKind(d.Take(), Kind::kDispatch).at(0).execution_id;
  // a is busy: b cannot get room, and its queue fails.
  ASSERT_TRUE(d.Arrive("b", 20).ok());
  Actions refused = d.Take();
  EXPECT_TRUE(OfKind(refused, Kind::kStart).empty());
  auto fails = OfKind(refused, Kind::kFail);
  ASSERT_EQ(fails.size(), 1u);
  EXPECT_EQ(fails[0].status.code(), StatusCode::kUnavailable);
  EXPECT_NE(fails[0].status.message().find("no memory"), std::string::npos);
  // Once a is idle, b's start evicts it first.
  d.Done("a", a_instance, a_execution, 30);
  d.Take();
  ASSERT_TRUE(d.Arrive("b", 40).ok());
  Actions a = d.Take();
  ASSERT_GE(a.size(), 2u);
  auto stops = OfKind(a, Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].model, "a");
  EXPECT_EQ(stops[0].reason, "memory_pressure");
  auto starts = OfKind(a, Kind::kStart);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].model, "b");
  size_t stop_at = 0, start_at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind == Kind::kStop) stop_at = i;
    if (a[i].kind == Kind::kStart) start_at = i;
  }
  EXPECT_LT(stop_at, start_at);  // room first
}

ModelConfig TemplateConfig(const std::string& name) {
  ModelConfig c = Config(name);
  c.start_path = StartPath::kTemplate;
  c.template_standby = true;
  c.template_keep_alive_s = 60;
  return c;
}

TEST(Scheduler, TemplateIsACacheStartedWhenCalledAndReleasedAfterItsKeepAlive) {
  Driver d;
  ASSERT_TRUE(d.Add(TemplateConfig("m")).ok());
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStartTemplate).empty());  // deploying holds nothing
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  Actions a = d.Take();
  // The request does not wait for the template: its instance starts from the zygote.
  auto starts = OfKind(a, Kind::kStart);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].path, StartPath::kZygote);
  auto templates = OfKind(a, Kind::kStartTemplate);
  ASSERT_EQ(templates.size(), 1u);
  EXPECT_TRUE(templates[0].standby);
  EXPECT_EQ(d.scheduler.TemplateStateOf("m"), Scheduler::TemplateState::kStarting);
  d.Ready("m", starts[0].instance_id, 30'000);
  const uint64_t execution = OfKind(d.Take(), Kind::kDispatch).at(0).execution_id;
  d.scheduler.TemplateReady("m", d.At(700'000), &d.actions);
  d.Take();
  // A second request while the first instance is busy forks from the template.
  ASSERT_TRUE(d.Arrive("m", 800'000).ok());
  a = d.Take();
  starts = OfKind(a, Kind::kStart);
  ASSERT_EQ(starts.size(), 1u);
  EXPECT_EQ(starts[0].path, StartPath::kTemplate);
  EXPECT_TRUE(OfKind(a, Kind::kStartTemplate).empty());  // already held
  d.Done("m", starts[0].instance_id - 1, execution, 900'000);
  d.Take();
  // Held until 60 s after it was last wanted (the start at 0.8 s).
  d.Wake("m", 60'799'999);
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStopTemplate).empty());
  d.Wake("m", 60'800'000);
  a = d.Take();
  auto stops = OfKind(a, Kind::kStopTemplate);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].reason, "keep_alive");
  // Its memory held, template and standby, from its start to its stop.
  auto held = OfKind(a, Kind::kHeld);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_FALSE(held[0].standby);
  EXPECT_TRUE(held[1].standby);
  for (const Action& h : held) {
    EXPECT_EQ(h.start_wall_us, Driver::kWallOrigin);
    EXPECT_EQ(h.at_us, Driver::kWallOrigin + 60'800'000);
  }
  EXPECT_EQ(d.scheduler.TemplateStateOf("m"), Scheduler::TemplateState::kNone);
  // Called again: a new template, and the instance from the zygote meanwhile.
  d.Wake("m", 70'000'000);  // keep-alive (10 s) stops the idle instances first
  d.Take();
  ASSERT_TRUE(d.Arrive("m", 71'000'000).ok());
  a = d.Take();
  ASSERT_EQ(OfKind(a, Kind::kStart).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kStart)[0].path, StartPath::kZygote);
  EXPECT_EQ(OfKind(a, Kind::kStartTemplate).size(), 1u);
}

TEST(Scheduler, TemplateCountsAgainstTheBudgetAndTheLeastRecentlyWantedGoesFirst) {
  Driver d({.memory_budget_mb = 1000});
  ASSERT_TRUE(d.Add(TemplateConfig("a")).ok());
  ASSERT_TRUE(d.Add(TemplateConfig("b")).ok());
  ASSERT_TRUE(d.Arrive("a", 0).ok());
  Actions a = d.Take();
  const uint64_t a_instance = OfKind(a, Kind::kStart).at(0).instance_id;
  ASSERT_EQ(OfKind(a, Kind::kStartTemplate).size(), 1u);  // 200 + 2 x 200 of 1000
  d.Ready("a", a_instance, 10'000);
  const uint64_t execution = OfKind(d.Take(), Kind::kDispatch).at(0).execution_id;
  // A template still starting is not evicted; a ready one may be.
  d.scheduler.TemplateReady("a", d.At(500'000), &d.actions);
  d.Done("a", a_instance, execution, 1'000'000);  // a's instance idle since 1 s; its template wanted at 0
  d.Take();
  // b needs 200 for its instance (fits: 800) and 400 for its template: a's
  // template, wanted least recently, goes, not a's idle instance.
  ASSERT_TRUE(d.Arrive("b", 2'000'000).ok());
  a = d.Take();
  auto stopped = OfKind(a, Kind::kStopTemplate);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0].model, "a");
  EXPECT_EQ(stopped[0].reason, "memory_pressure");
  EXPECT_TRUE(OfKind(a, Kind::kStop).empty());
  ASSERT_EQ(OfKind(a, Kind::kStartTemplate).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kStartTemplate)[0].model, "b");
  // b's instance was given its room before b's template.
  size_t start_at = 0, template_at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kind == Kind::kStart) start_at = i;
    if (a[i].kind == Kind::kStartTemplate) template_at = i;
  }
  EXPECT_LT(start_at, template_at);
}

TEST(Scheduler, AnInstanceStartStopsAnotherModelsTemplateEvenWhileItStarts) {
  Driver d({.memory_budget_mb = 700});
  ASSERT_TRUE(d.Add(TemplateConfig("a")).ok());
  ASSERT_TRUE(d.Add(TemplateConfig("b")).ok());
  ASSERT_TRUE(d.Arrive("a", 0).ok());
  ASSERT_EQ(OfKind(d.Take(), Kind::kStartTemplate).size(), 1u);  // 200 + 400 of 700, still starting
  // b's instance (200) needs room: a's template is only a cache and goes;
  // then b's own template finds no room (a ready template could have gone).
  ASSERT_TRUE(d.Arrive("b", 1000).ok());
  Actions a = d.Take();
  auto stopped = OfKind(a, Kind::kStopTemplate);
  ASSERT_EQ(stopped.size(), 1u);
  EXPECT_EQ(stopped[0].model, "a");
  ASSERT_EQ(OfKind(a, Kind::kStart).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kStart)[0].model, "b");
  EXPECT_TRUE(OfKind(a, Kind::kStartTemplate).empty());
  EXPECT_EQ(d.scheduler.TemplateStateOf("a"), Scheduler::TemplateState::kNone);
  // A template a stopped while it started reports nothing more: a late TemplateReady is ignored.
  d.scheduler.TemplateReady("a", d.At(2000), &d.actions);
  EXPECT_EQ(d.scheduler.TemplateStateOf("a"), Scheduler::TemplateState::kNone);
}

TEST(Scheduler, TemplateWithoutRoomIsNotStartedButTheInstanceIs) {
  Driver d({.memory_budget_mb = 500});
  ASSERT_TRUE(d.Add(TemplateConfig("a")).ok());
  ASSERT_TRUE(d.Arrive("a", 0).ok());
  Actions a = d.Take();
  EXPECT_EQ(OfKind(a, Kind::kStart).size(), 1u);       // 200
  EXPECT_TRUE(OfKind(a, Kind::kStartTemplate).empty());  // + 400 > 500
  bool refused = false;
  for (const Action& n : OfKind(a, Kind::kNotice)) refused |= n.reason == "template_start_refused";
  EXPECT_TRUE(refused);
}

TEST(Scheduler, MeasuredChargeFollowsTheObservedPeakSoSmallModelsShareTheBudget) {
  EventLog log;
  const SchedulerOptions options{.memory_budget_mb = 300, .memory_charge = MemoryCharge::kMeasured,
                                 .measured_headroom_pct = 25, .log = &log};
  Driver d(options);
  Actions all;  // everything asked for, to compare with a replay
  auto take = [&] {
    Actions a = d.Take();
    all.insert(all.end(), a.begin(), a.end());
    return a;
  };
  ASSERT_TRUE(d.Add(Config("a")).ok());
  ASSERT_TRUE(d.Add(Config("b")).ok());
  EXPECT_EQ(d.scheduler.InstanceChargeMb("a"), 200);  // memory_mb until measured
  ASSERT_TRUE(d.Arrive("a", 0).ok());
  const uint64_t a_instance = OfKind(take(), Kind::kStart).at(0).instance_id;
  d.Ready("a", a_instance, 10);
  d.Done("a", a_instance, OfKind(take(), Kind::kDispatch).at(0).execution_id, 20);
  d.scheduler.ObserveMemory("a", a_instance, 40 << 20, d.At(20));
  d.scheduler.ObserveMemory("a", a_instance, 30 << 20, d.At(21));  // the highest is kept
  d.scheduler.ObserveMemory("a", 999, 250 << 20, d.At(22));        // no such instance: ignored
  EXPECT_EQ(d.scheduler.InstanceChargeMb("a"), 50);                // 40 MB + 25 %
  take();
  // b (200, unmeasured) fits next to a's 50: a stays, where charging
  // memory_mb would have stopped it (MemoryBudgetEvictsAnotherModelsIdleInstanceElseRefuses).
  ASSERT_TRUE(d.Arrive("b", 30).ok());
  Actions a = take();
  EXPECT_TRUE(OfKind(a, Kind::kStop).empty());
  const uint64_t b_instance = OfKind(a, Kind::kStart).at(0).instance_id;
  // A peak above memory_mb charges memory_mb (the cgroup holds it there).
  d.scheduler.ObserveMemory("b", b_instance, int64_t{1} << 30, d.At(40));
  EXPECT_EQ(d.scheduler.InstanceChargeMb("b"), 200);
  // Settings workers read changed: what was measured no longer holds.
  ASSERT_TRUE(d.scheduler.UpdateModel(Config("a"), /*replace_workers=*/true, "config_changed", d.At(50), &d.actions).ok());
  EXPECT_EQ(d.scheduler.InstanceChargeMb("a"), 200);
  auto stops = OfKind(take(), Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].memory_mb, 50);  // its usage record meters memory held at its charge
  // The observations are in the log: a replay decides the same.
  const Actions replayed = Replay(log, options);
  ASSERT_EQ(replayed.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(replayed[i].kind, all[i].kind) << i;
}

TEST(Scheduler, TemplateChargeUnderMeasuredIsItsOwnPeakPlusAStandbysInstanceCharge) {
  Driver d({.memory_budget_mb = 10'000, .memory_charge = MemoryCharge::kMeasured, .measured_headroom_pct = 0});
  ASSERT_TRUE(d.Add(TemplateConfig("m")).ok());
  EXPECT_EQ(d.scheduler.TemplateChargeMb("m"), 400);  // memory_mb each, unmeasured
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
  d.scheduler.ObserveMemory("m", 0, 90 << 20, d.At(5));  // the template, starting
  d.Ready("m", instance, 10);
  d.scheduler.ObserveMemory("m", instance, 20 << 20, d.At(20));
  EXPECT_EQ(d.scheduler.InstanceChargeMb("m"), 20);
  EXPECT_EQ(d.scheduler.TemplateChargeMb("m"), 110);
}

// LRU stops the instance idle longest; cheapest-to-restart the one whose
// model measured the fastest start, though it was used more recently.
TEST(Scheduler, EvictionOrderLeastRecentlyUsedOrCheapestRestart) {
  for (policy::EvictionOrder order : {policy::EvictionOrder::kLeastRecentlyUsed, policy::EvictionOrder::kCheapestRestart}) {
    SCOPED_TRACE(std::string(policy::EvictionOrderName(order)));
    Driver d({.memory_budget_mb = 400, .eviction_order = order});
    for (const char* name : {"slow", "fast", "c"}) ASSERT_TRUE(d.Add(Config(name)).ok());
    auto serve = [&](const std::string& model, Micros start, Micros ready_after) {
      ASSERT_TRUE(d.Arrive(model, start).ok());
      const uint64_t instance = OfKind(d.Take(), Kind::kStart).at(0).instance_id;
      d.Ready(model, instance, start + ready_after);
      d.Done(model, instance, OfKind(d.Take(), Kind::kDispatch).at(0).execution_id, start + ready_after + 1000);
      d.Take();
    };
    serve("slow", 0, 500'000);           // starts in 500 ms, idle since 0.5 s
    serve("fast", 1'000'000, 10'000);    // starts in 10 ms, idle since 1.01 s
    ASSERT_TRUE(d.Arrive("c", 2'000'000).ok());
    auto stops = OfKind(d.Take(), Kind::kStop);
    ASSERT_EQ(stops.size(), 1u);
    EXPECT_EQ(stops[0].model, order == policy::EvictionOrder::kLeastRecentlyUsed ? "slow" : "fast");
  }
}

// One template start slot: a second model's template waits for the first to
// be ready; a waiting template no longer wanted when the slot frees is
// never started; a stopped starting template frees its slot too.
TEST(Scheduler, TemplateStartsBeyondTheLimitWaitForASlotMostRecentlyWantedFirst) {
  Driver d({.max_starting_templates = 1});
  for (const char* name : {"a", "b", "c"}) ASSERT_TRUE(d.Add(TemplateConfig(name)).ok());
  ASSERT_TRUE(d.Arrive("a", 0).ok());
  ASSERT_EQ(OfKind(d.Take(), Kind::kStartTemplate).size(), 1u);
  ASSERT_TRUE(d.Arrive("b", 1000).ok());
  ASSERT_TRUE(d.Arrive("c", 2000).ok());
  Actions a = d.Take();
  EXPECT_TRUE(OfKind(a, Kind::kStartTemplate).empty());  // the slot is a's
  EXPECT_EQ(OfKind(a, Kind::kStart).size(), 2u);          // b and c start from the zygote meanwhile
  EXPECT_EQ(d.scheduler.TemplateStateOf("b"), Scheduler::TemplateState::kNone);
  // a ready: c, wanted last, gets the slot.
  d.scheduler.TemplateReady("a", d.At(300'000), &d.actions);
  auto started = OfKind(d.Take(), Kind::kStartTemplate);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].model, "c");
  // c fails; b waited past its template keep-alive (60 s): not started.
  d.scheduler.TemplateGone("c", "load failed", d.At(61'500'000), &d.actions);
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStartTemplate).empty());
  EXPECT_EQ(d.scheduler.TemplateStateOf("b"), Scheduler::TemplateState::kNone);
  // The slot is free: b's next call starts its template at once.
  ASSERT_TRUE(d.Arrive("b", 62'000'000).ok());
  started = OfKind(d.Take(), Kind::kStartTemplate);
  ASSERT_EQ(started.size(), 1u);
  EXPECT_EQ(started[0].model, "b");
  // Stopping a starting template (its model removed) frees the slot.
  ASSERT_TRUE(d.scheduler.RemoveModel("b", Unavailable("removed"), "removed", d.At(62'100'000), &d.actions).ok());
  d.Take();
  ASSERT_TRUE(d.Arrive("a", 62'200'000).ok());  // a's template is ready: no start
  ASSERT_TRUE(d.Arrive("c", 63'000'000).ok());  // c, after its 1 s backoff
  EXPECT_EQ(OfKind(d.Take(), Kind::kStartTemplate).size(), 1u);
}

// With template_admit_calls 2 a model called once loads no template; the
// second call within template_keep_alive_s starts it; a call after a longer
// gap counts as a first one again; a pre-warm starts it at once.
TEST(Scheduler, TemplateStartsAtTheSecondCallInARowOrAtAPreWarm) {
  Driver d({.template_admit_calls = 2});
  ASSERT_TRUE(d.Add(TemplateConfig("m")).ok());  // template_keep_alive_s 60
  ASSERT_TRUE(d.Add(TemplateConfig("w")).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  Actions a = d.Take();
  EXPECT_EQ(OfKind(a, Kind::kStart).size(), 1u);
  EXPECT_TRUE(OfKind(a, Kind::kStartTemplate).empty());
  ASSERT_TRUE(d.Arrive("m", 61'000'000).ok());  // 61 s later: a first call again
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStartTemplate).empty());
  ASSERT_TRUE(d.Arrive("m", 90'000'000).ok());  // 29 s later: the second in a row
  EXPECT_EQ(OfKind(d.Take(), Kind::kStartTemplate).size(), 1u);
  ASSERT_TRUE(d.scheduler.Warm("w", 1, d.At(91'000'000), &d.actions).ok());
  a = d.Take();
  ASSERT_EQ(OfKind(a, Kind::kStartTemplate).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kStartTemplate)[0].model, "w");
}

TEST(Scheduler, TemplateThatFailsBacksOffAndAFloorHoldsOne) {
  Driver d;
  ModelConfig c = TemplateConfig("m");
  ASSERT_TRUE(d.Add(c).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  ASSERT_EQ(OfKind(d.Take(), Kind::kStartTemplate).size(), 1u);
  d.scheduler.TemplateGone("m", "cannot load", d.At(100'000), &d.actions);
  Actions a = d.Take();
  EXPECT_EQ(OfKind(a, Kind::kHeld).size(), 2u);  // held while it tried
  // Not retried on every request during the backoff (1 s), then retried.
  ASSERT_TRUE(d.Arrive("m", 600'000).ok());
  EXPECT_TRUE(OfKind(d.Take(), Kind::kStartTemplate).empty());
  ASSERT_TRUE(d.Arrive("m", 1'100'000).ok());
  EXPECT_EQ(OfKind(d.Take(), Kind::kStartTemplate).size(), 1u);

  // A provisioned floor starts a template at deploy and keeps it past its keep-alive.
  Driver f;
  ModelConfig floor = TemplateConfig("p");
  floor.min_instances = 1;
  ASSERT_TRUE(f.Add(floor).ok());
  a = f.Take();
  EXPECT_EQ(OfKind(a, Kind::kStartTemplate).size(), 1u);
  f.scheduler.TemplateReady("p", f.At(1'000'000), &f.actions);
  f.Wake("p", 3600 * kMicrosPerSecond);
  EXPECT_TRUE(OfKind(f.Take(), Kind::kStopTemplate).empty());
  // Its held memory is flushed with the provisioned intervals.
  f.scheduler.FlushProvisioned(f.At(3600 * kMicrosPerSecond), &f.actions);
  auto held = OfKind(f.Take(), Kind::kHeld);
  ASSERT_EQ(held.size(), 2u);
  EXPECT_EQ(held[0].at_us - held[0].start_wall_us, 3600 * kMicrosPerSecond);
}

TEST(Scheduler, SettingsChangeRetiresIdleAndStartingAndBusyOnesWhenDone) {
  Driver d;
  ModelConfig c = Config("m");
  c.max_concurrency = 3;
  ASSERT_TRUE(d.Add(c).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  auto starts = OfKind(d.Take(), Kind::kStart);
  ASSERT_EQ(starts.size(), 2u);
  d.Ready("m", starts[0].instance_id, 10);  // busy with request 1
  const uint64_t execution = OfKind(d.Take(), Kind::kDispatch).at(0).execution_id;
  // starts[1] is still starting.
  ModelConfig changed = c;
  changed.threads = 2;
  ASSERT_TRUE(d.scheduler.UpdateModel(changed, true, "config_changed", d.At(20), &d.actions).ok());
  Actions a = d.Take();
  auto stops = OfKind(a, Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].instance_id, starts[1].instance_id);
  // The queued request 2 gets an instance of the new settings.
  auto new_starts = OfKind(a, Kind::kStart);
  ASSERT_EQ(new_starts.size(), 1u);
  // The busy one finishes its request, then retires.
  auto done = d.Done("m", starts[0].instance_id, execution, 30);
  ASSERT_TRUE(done.has_value());
  a = d.Take();
  stops = OfKind(a, Kind::kStop);
  ASSERT_EQ(stops.size(), 1u);
  EXPECT_EQ(stops[0].instance_id, starts[0].instance_id);
  EXPECT_EQ(stops[0].reason, "config_changed");
  EXPECT_TRUE(OfKind(a, Kind::kDispatch).empty());  // nothing new ran on it
}

TEST(Scheduler, RemoveFailsEverythingAndStopsEveryInstance) {
  Driver d;
  ASSERT_TRUE(d.Add(Config("m")).ok());
  ASSERT_TRUE(d.Arrive("m", 0).ok());
  d.Take();
  ASSERT_TRUE(d.scheduler.RemoveModel("m", Unavailable("unloaded"), "unload", d.At(5), &d.actions).ok());
  Actions a = d.Take();
  EXPECT_EQ(OfKind(a, Kind::kFail).size(), 1u);
  EXPECT_EQ(OfKind(a, Kind::kStop).size(), 1u);
  EXPECT_FALSE(d.scheduler.HasModel("m"));
  EXPECT_TRUE(d.scheduler.Idle());
}

// The same events give the same actions: the property the simulator's
// fidelity rests on.
TEST(Scheduler, SameEventsGiveSameActions) {
  auto run = [] {
    Driver d;
    ModelConfig c = Config("m");
    c.batching = Batching::kAdaptive;
    c.max_batch_size = 8;
    c.keep_alive_policy = KeepAlive::kHistogram;
    c.histogram_bin_ms = 1000;
    c.histogram_range_s = 100;
    EXPECT_TRUE(d.Add(c).ok());
    Actions all;
    std::map<uint64_t, std::vector<uint64_t>> running;  // instance -> executions
    for (int i = 0; i < 200; ++i) {
      const Micros t = i * 7'919;
      (void)d.Arrive("m", t, 1 + i % 3);
      // InstanceReady appends to d.actions: collect the starts first.
      std::vector<uint64_t> started;
      for (const Action& a : d.actions)
        if (a.kind == Kind::kStart) started.push_back(a.instance_id);
      for (uint64_t id : started) d.scheduler.InstanceReady("m", id, d.At(t), &d.actions);
      Actions step = d.Take();
      for (const Action& a : step) {
        all.push_back(a);
        if (a.kind == Kind::kDispatch) running[a.instance_id].push_back(a.execution_id);
      }
      for (auto& [instance, executions] : running) {
        for (uint64_t e : executions) d.Done("m", instance, e, t + 500);
        executions.clear();
      }
      for (const Action& a : d.Take()) all.push_back(a);
    }
    return all;
  };
  const Actions a = run(), b = run();
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GT(a.size(), 200u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].kind, b[i].kind) << i;
    EXPECT_EQ(a[i].instance_id, b[i].instance_id) << i;
    EXPECT_EQ(a[i].request_ids, b[i].request_ids) << i;
    EXPECT_EQ(a[i].at_us, b[i].at_us) << i;
  }
}

// A recorded log, replayed, asks for the same actions: the record holds
// everything the scheduler decided from.
TEST(Scheduler, ReplayOfTheEventLogGivesTheSameActions) {
  EventLog log;
  Driver d({.memory_budget_mb = 500, .log = &log});
  ModelConfig c = Config("m");
  c.min_instances = 1;
  ASSERT_TRUE(d.Add(c).ok());
  ASSERT_TRUE(d.Add(Config("n")).ok());
  Actions all = d.Take();
  for (int i = 0; i < 30; ++i) {
    const Micros t = 1000 + i * 50'000;
    const std::string model = i % 3 ? "m" : "n";
    (void)d.Arrive(model, t, 1 + i % 2);
    for (const Action& a : d.Take()) {
      all.push_back(a);
      if (a.kind == Kind::kStart) d.scheduler.InstanceReady(a.model, a.instance_id, d.At(t + 10), &d.actions);
      if (a.kind == Kind::kDispatch) d.Done(a.model, a.instance_id, a.execution_id, t + 20);
    }
    for (const Action& a : d.Take()) {
      all.push_back(a);
      if (a.kind == Kind::kDispatch) d.Done(a.model, a.instance_id, a.execution_id, t + 30);
    }
    for (const Action& a : d.Take()) all.push_back(a);
  }
  d.Wake("n", 100 * kMicrosPerSecond);
  for (const Action& a : d.Take()) all.push_back(a);
  std::vector<size_t> origins;
  const Actions replayed = Replay(log, {.memory_budget_mb = 500}, &origins);
  ASSERT_EQ(replayed.size(), all.size());
  ASSERT_EQ(origins.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(replayed[i].kind, all[i].kind) << i;
    EXPECT_EQ(replayed[i].model, all[i].model) << i;
    EXPECT_EQ(replayed[i].instance_id, all[i].instance_id) << i;
    EXPECT_EQ(replayed[i].request_ids, all[i].request_ids) << i;
    EXPECT_EQ(replayed[i].reason, all[i].reason) << i;
    EXPECT_LT(origins[i], log.size());
    if (i) {
      EXPECT_GE(origins[i], origins[i - 1]);
    }
  }
  // The keep-alive stops at the end are there, replayed too.
  EXPECT_FALSE(OfKind(replayed, Kind::kStop).empty());
}

}  // namespace
}  // namespace thaw::sched
