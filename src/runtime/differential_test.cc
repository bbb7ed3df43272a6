// One control loop, two drivers: the live runtime (real workers) and the
// simulator, fed the same arrivals and the same measured times, are asked
// for the same actions in the same order. The runtime records the events it
// gives its scheduler; from them come the simulator's trace (arrival times
// and rows) and its durations (each instance's start, each execution's round
// trip, as the runtime saw them); the simulator's own events, replayed,
// must give the runtime's decisions: every start, dispatch, failure and stop.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/test_paths.h"
#include "runtime/runtime.h"
#include "sched/scheduler.h"
#include "sim/simulator.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;
using sched::Action;

Tensor Features(int64_t rows) {
  Tensor t;
  t.name = "features";
  t.datatype = DataType::kFp32;
  t.shape = {rows, 30};
  t.data.assign(static_cast<size_t>(rows * 30 * 4), 0);
  return t;
}

// The decisions worth comparing: timers (kWake) are each driver's plumbing,
// notices are logs, provisioned intervals carry wall times.
std::vector<std::string> Decisions(const sched::Actions& actions) {
  std::vector<std::string> out;
  for (const Action& a : actions) {
    std::string d;
    switch (a.kind) {
      case Action::Kind::kStart: d = "start " + std::to_string(a.instance_id); break;
      case Action::Kind::kDispatch:
        d = "dispatch " + std::to_string(a.execution_id) + " to " + std::to_string(a.instance_id) + ":";
        for (uint64_t id : a.request_ids) d += " " + std::to_string(id);
        break;
      case Action::Kind::kFail:
        d = "fail " + std::to_string(a.request_ids.at(0)) + " " + std::string(StatusCodeName(a.status.code()));
        break;
      case Action::Kind::kStop: d = "stop " + std::to_string(a.instance_id) + " " + a.reason; break;
      default: continue;
    }
    out.push_back(a.model + ": " + d);
  }
  return out;
}

TEST(DifferentialTest, SimulatorGivenTheRuntimesTimesMakesTheRuntimesDecisions) {
  const std::string model_dir = TestSourceDir() + "/examples/models/fraud";
  if (!fs::exists(model_dir + "/model.pt")) GTEST_SKIP() << "example model 'fraud' is missing; run models/build_models.py";
  auto loaded = LoadModelConfig(model_dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ModelConfig config = *loaded;
  config.start_path = StartPath::kTemplate;
  config.max_concurrency = 2;
  config.batching = Batching::kOff;
  config.keep_alive_s = 600;   // no keep-alive stop inside the test
  config.timeout_ms = 900000;  // no deadline either: timers never decide here

  sched::EventLog live_log;
  boost::asio::io_context io;
  RealClock clock;
  RuntimeOptions options{TestBuildDir() + "/thaw-worker"};
  options.scheduler_log = &live_log;
  auto runtime = std::make_unique<Runtime>(io, clock, options);
  ASSERT_TRUE(runtime->AddModel(config).ok());

  // Load: one request at a time, then bursts of three (a second instance
  // starts, one request queues), then one at a time again.
  int answered = 0, sent = 0;
  auto send = [&](int64_t rows) {
    ++sent;
    runtime->Infer("fraud", {Features(rows)}, {}, clock.NowMicros() + 900 * kMicrosPerSecond, [&](InferOutcome outcome) {
      EXPECT_TRUE(outcome.status.ok()) << outcome.status.ToString();
      ++answered;
    });
  };
  auto settle = [&] {
    const Micros give_up = clock.NowMicros() + 60 * kMicrosPerSecond;
    while (answered < sent && clock.NowMicros() < give_up) io.run_one_for(std::chrono::milliseconds(10));
    ASSERT_EQ(answered, sent);
  };
  for (int i = 0; i < 3; ++i) {
    send(1);
    settle();
  }
  for (int burst = 0; burst < 3; ++burst) {
    for (int i = 0; i < 3; ++i) send(1 + i);
    settle();
  }
  // Let the second instance finish starting, then load both.
  const Micros until = clock.NowMicros() + 1500 * kMicrosPerMilli;
  while (clock.NowMicros() < until) io.run_one_for(std::chrono::milliseconds(10));
  for (int burst = 0; burst < 3; ++burst) {
    for (int i = 0; i < 4; ++i) send(1);
    settle();
  }
  for (int i = 0; i < 3; ++i) {
    send(2);
    settle();
  }
  runtime->Shutdown();
  io.poll();
  runtime.reset();

  // What the runtime decided, and from which event each decision came.
  std::vector<size_t> origins;
  const sched::Actions live = sched::Replay(live_log, {}, &origins);
  const Micros t0 = live_log.front().now.mono_us;
  std::vector<sim::SimArrival> arrivals;
  std::map<uint64_t, Micros> start_us, exec_us;
  std::map<uint64_t, Micros> started_at, dispatched_at;
  for (size_t i = 0; i < live.size(); ++i) {
    const Micros at = live_log[origins[i]].now.mono_us;
    if (live[i].kind == Action::Kind::kStart) started_at[live[i].instance_id] = at;
    if (live[i].kind == Action::Kind::kDispatch) dispatched_at[live[i].execution_id] = at;
  }
  for (const sched::Event& e : live_log) {
    if (e.kind == sched::Event::Kind::kArrive) arrivals.push_back({e.now.mono_us - t0, 0, e.request.rows});
    if (e.kind == sched::Event::Kind::kInstanceReady) start_us[e.instance_id] = e.now.mono_us - started_at.at(e.instance_id);
    if (e.kind == sched::Event::Kind::kExecutionDone)
      exec_us[e.execution_id] = e.now.mono_us - dispatched_at.at(e.execution_id);
  }
  ASSERT_EQ(arrivals.size(), 27u);
  ASSERT_GE(start_us.size(), 2u) << "the bursts should have started a second instance";

  sim::SimModel model{.config = config};
  model.profile.exec_us_by_rows = {{1, 1000}};  // unused: every time is the runtime's
  sched::EventLog sim_log;
  sim::SimOptions sim_options;
  sim_options.log = &sim_log;
  // An instance the runtime never saw ready is not ready within the trace.
  sim_options.start_us_of = [&](uint64_t id) -> std::optional<Micros> {
    auto it = start_us.find(id);
    return it == start_us.end() ? 3600 * kMicrosPerSecond : it->second;
  };
  sim_options.exec_us_of = [&](uint64_t id) -> std::optional<Micros> {
    auto it = exec_us.find(id);
    return it == exec_us.end() ? std::nullopt : std::optional(it->second);
  };
  auto result = sim::Simulate({model}, arrivals, policy::PriceSheet{}, sim_options);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->requests, 27);

  const std::vector<std::string> runtime_decisions = Decisions(live);
  std::vector<std::string> sim_decisions = Decisions(sched::Replay(sim_log, {}));
  // The runtime's record ends at its shutdown, the simulator's at the end of
  // the trace: compare what both saw.
  ASSERT_GE(sim_decisions.size(), runtime_decisions.size());
  std::vector<std::string> common_runtime(runtime_decisions.begin(), runtime_decisions.end());
  while (!common_runtime.empty() && common_runtime.back().find(" shutdown") != std::string::npos) common_runtime.pop_back();
  sim_decisions.resize(common_runtime.size());
  EXPECT_EQ(sim_decisions, common_runtime);
  EXPECT_GE(common_runtime.size(), 27u + 2);  // a dispatch per request at least, and the starts
}

}  // namespace
}  // namespace thaw
