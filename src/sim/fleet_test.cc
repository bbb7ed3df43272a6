#include "sim/fleet.h"

#include <gtest/gtest.h>

#include "policy/pricing.h"

namespace thaw::sim {
namespace {

constexpr Micros kMs = 1000;
constexpr Micros kS = 1'000'000;

SimModel Model(std::string name, int64_t memory_mb = 512) {
  SimModel m;
  m.config.name = std::move(name);
  m.config.inputs = {{"x", DataType::kFp32, {-1, 4}}};
  m.config.outputs = {{"y", DataType::kFp32, {-1, 2}}};
  m.config.memory_mb = memory_mb;
  m.config.keep_alive_s = 10;
  m.config.max_concurrency = 4;
  m.profile.exec_us_by_rows = {{1, 2 * kMs}, {8, 4 * kMs}};
  m.profile.start_us = {{"template", 5 * kMs}, {"exec", 500 * kMs}};
  return m;
}

TEST(FleetTest, PlacementIsMemoryBoundedAndUnloadsTheLeastRecentlyUsed) {
  // Two nodes of 1024 MB hold four 512 MB models; a fifth unloads the least recently used.
  std::vector<SimModel> models = {Model("a"), Model("b"), Model("c"), Model("d"), Model("e")};
  std::vector<SimArrival> calls;
  for (uint32_t m : {0u, 1u, 2u, 3u, 0u, 4u}) calls.push_back({static_cast<Micros>(calls.size()) * kS, m, 1});
  FleetOptions o{.nodes = 2, .node_memory_mb = 1024};
  FleetPlacement p = PlaceOnFleet(models, calls, o);
  EXPECT_EQ(p.placements, 5);
  EXPECT_EQ(p.unloads, 1);
  EXPECT_EQ(p.copies_added, 0);
  // a, c on node 0 (most free memory first, ties to the lower index), b, d on node 1. At 5 s both are full: e
  // goes to the node holding the fleet's least recently called model, b (node 1; a was called again at 4 s).
  ASSERT_EQ(p.arrivals_by_node[1].size(), 3u);  // b, d, e
  EXPECT_EQ(p.arrivals_by_node[1].back().model, 4u);
  EXPECT_EQ(p.unloads_by_node[1], 1);
  EXPECT_EQ(p.arrivals_by_node[0].size(), 3u);  // a, c, a
  // A call to the unloaded b places it again, unloading the least recently called model left: c on node 0.
  calls.push_back({6 * kS, 1, 1});
  p = PlaceOnFleet(models, calls, o);
  EXPECT_EQ(p.arrivals_by_node[0].back().model, 1u);
  EXPECT_EQ(p.unloads_by_node[0], 1);
  EXPECT_EQ(p.placements, 6);
  EXPECT_EQ(p.unloads, 2);
}

TEST(FleetTest, AHotModelGetsCopiesAndItsCallsAlternate) {
  std::vector<SimModel> models = {Model("hot")};
  std::vector<SimArrival> calls;
  for (int i = 0; i < 400; ++i) calls.push_back({i * 10 * kMs, 0, 1});  // 100 calls/s
  FleetOptions o{.nodes = 4, .node_memory_mb = 4096, .copy_rate_per_s = 30, .rate_window_us = 1 * kS};
  FleetPlacement p = PlaceOnFleet(models, calls, o);
  EXPECT_EQ(p.placements, 1);
  EXPECT_EQ(p.copies_added, 3);  // 100/s needs ceil(100 / 30) = 4 copies: all four nodes
  for (const auto& node : p.arrivals_by_node) EXPECT_GT(node.size(), 50u);
  o.nodes = 1;
  EXPECT_EQ(PlaceOnFleet(models, calls, o).copies_added, 0);  // nowhere to put a copy
}

TEST(FleetTest, OneNodeIsTheSingleMachineSimulation) {
  std::vector<SimModel> models = {Model("a"), Model("b")};
  std::vector<SimArrival> calls;
  for (int i = 0; i < 300; ++i) calls.push_back({i * 37 * kMs, static_cast<uint32_t>(i % 3 == 0), 1});
  const auto prices = policy::AwsLambdaX86();
  FleetOptions o{.nodes = 1, .node_memory_mb = 8192};
  o.sim.memory_budget_mb = 8192;
  auto fleet = SimulateFleet(models, calls, prices, o);
  ASSERT_TRUE(fleet.ok()) << fleet.status().message();
  SimOptions single = o.sim;
  auto alone = Simulate(models, calls, prices, single);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(fleet->report.total.invocations, 300);
  EXPECT_EQ(fleet->report.total.cold_starts, alone->report.total.cold_starts);
  EXPECT_DOUBLE_EQ(fleet->report.total.p99_ms, alone->report.total.p99_ms);
  EXPECT_DOUBLE_EQ(fleet->report.total.bill.total_usd, alone->report.total.bill.total_usd);
  EXPECT_DOUBLE_EQ(fleet->report.total.bill.host_usd, alone->report.total.bill.host_usd);
  ASSERT_EQ(fleet->nodes.size(), 1u);
  EXPECT_GT(fleet->nodes[0].mean_held_mb, 0);
}

TEST(FleetTest, NodesSplitTheCallsAndTheReportCountsThemAll) {
  std::vector<SimModel> models;
  for (int i = 0; i < 8; ++i) models.push_back(Model("m" + std::to_string(i)));
  std::vector<SimArrival> calls;
  for (int i = 0; i < 800; ++i) calls.push_back({i * 50 * kMs, static_cast<uint32_t>(i % 8), 1});
  FleetOptions o{.nodes = 4, .node_memory_mb = 1024};
  auto fleet = SimulateFleet(models, calls, policy::AwsLambdaX86(), o);
  ASSERT_TRUE(fleet.ok()) << fleet.status().message();
  EXPECT_EQ(fleet->report.total.invocations, 800);
  int64_t by_nodes = 0;
  for (const auto& node : fleet->nodes) {
    EXPECT_GT(node.result.requests, 0);
    by_nodes += node.result.requests;
  }
  EXPECT_EQ(by_nodes, 800);
  EXPECT_FALSE(Validate(FleetOptions{.nodes = 0}).ok());
}

}  // namespace
}  // namespace thaw::sim
