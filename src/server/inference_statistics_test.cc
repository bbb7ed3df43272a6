// InferenceStatistics: Triton's statistics from the runtime's records, in
// the JSON shape perf_analyzer and tritonclient read.
#include "server/inference_statistics.h"

#include <gtest/gtest.h>
#include <simdjson.h>

namespace thaw {
namespace {

metering::InvocationRecord Invocation(int status, Micros latency_us, Micros queue_us, int64_t batch_rows, double share,
                                      Micros arrival_wall_us = 1'700'000'000'000'000) {
  metering::InvocationRecord r;
  r.model = "fraud";
  r.http_status = status;
  r.latency_us = latency_us;
  r.queue_us = queue_us;
  r.batch_rows = batch_rows;
  r.share = share;
  r.arrival_wall_us = arrival_wall_us;
  return r;
}

uint64_t Get(simdjson::dom::element e, std::string_view pointer) {
  uint64_t value = 0;
  EXPECT_EQ(e.at_pointer(pointer).get_uint64().get(value), simdjson::SUCCESS) << pointer;
  return value;
}

TEST(InferenceStatisticsTest, CountsRequestsRowsAndExecutionsAsTritonDoes) {
  InferenceStatistics stats;
  // One execution of 4 rows: a 3-row and a 1-row request.
  stats.Record(Invocation(200, 900, 300, 4, 0.75));
  stats.Record(Invocation(200, 1100, 500, 4, 0.25, 1'700'000'000'002'000));
  stats.OnExecution({.model = "fraud", .requests = 2, .rows = 4, .compute_us = 400, .round_trip_us = 520, .ok = true});
  // One of 2 rows, one request.
  stats.Record(Invocation(200, 600, 100, 2, 1.0));
  stats.OnExecution({.model = "fraud", .requests = 1, .rows = 2, .compute_us = 300, .round_trip_us = 350, .ok = true});
  // A failure counts as fail only; a failed execution counts nothing.
  stats.Record(Invocation(503, 5000, 0, 0, 0));
  stats.OnExecution({.model = "fraud", .requests = 1, .rows = 1, .compute_us = 10, .round_trip_us = 20, .ok = false});
  stats.Record(metering::InstanceRecord{.model = "fraud"});  // other records are not requests

  const std::string json = stats.Json({"fraud", "idle"});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  simdjson::dom::array models = doc["model_stats"].get_array();
  ASSERT_EQ(models.size(), 2u);
  simdjson::dom::element fraud = models.at(0);
  EXPECT_EQ(std::string_view(fraud["name"].get_string()), "fraud");
  EXPECT_EQ(std::string_view(fraud["version"].get_string()), "1");
  EXPECT_EQ(Get(fraud, "/inference_count"), 6u);  // rows: 3 + 1 + 2
  EXPECT_EQ(Get(fraud, "/execution_count"), 2u);
  EXPECT_EQ(Get(fraud, "/last_inference"), 1'700'000'000'003u);  // ms of the latest answer (arrival + latency)
  EXPECT_EQ(Get(fraud, "/inference_stats/success/count"), 3u);
  EXPECT_EQ(Get(fraud, "/inference_stats/success/ns"), (900u + 1100 + 600) * 1000);
  EXPECT_EQ(Get(fraud, "/inference_stats/fail/count"), 1u);
  EXPECT_EQ(Get(fraud, "/inference_stats/fail/ns"), 5'000'000u);
  EXPECT_EQ(Get(fraud, "/inference_stats/queue/count"), 3u);
  EXPECT_EQ(Get(fraud, "/inference_stats/queue/ns"), 900'000u);
  EXPECT_EQ(Get(fraud, "/inference_stats/compute_infer/count"), 2u);
  EXPECT_EQ(Get(fraud, "/inference_stats/compute_infer/ns"), 700'000u);
  EXPECT_EQ(Get(fraud, "/inference_stats/compute_input/ns"), (120u + 50) * 1000);  // round trip - compute
  EXPECT_EQ(Get(fraud, "/inference_stats/compute_output/count"), 2u);
  EXPECT_EQ(Get(fraud, "/inference_stats/cache_hit/count"), 0u);
  EXPECT_EQ(Get(fraud, "/inference_stats/cache_miss/ns"), 0u);
  simdjson::dom::array batches = fraud["batch_stats"].get_array();
  ASSERT_EQ(batches.size(), 2u);  // by size, ascending
  EXPECT_EQ(Get(batches.at(0), "/batch_size"), 2u);
  EXPECT_EQ(Get(batches.at(0), "/compute_infer/ns"), 300'000u);
  EXPECT_EQ(Get(batches.at(1), "/batch_size"), 4u);
  EXPECT_EQ(Get(batches.at(1), "/compute_infer/count"), 1u);

  // A loaded model without requests: zeros, in the same shape.
  simdjson::dom::element idle = models.at(1);
  EXPECT_EQ(std::string_view(idle["name"].get_string()), "idle");
  EXPECT_EQ(Get(idle, "/inference_count"), 0u);
  EXPECT_EQ(Get(idle, "/last_inference"), 0u);
  EXPECT_EQ(Get(idle, "/inference_stats/success/count"), 0u);
  EXPECT_EQ(idle["batch_stats"].get_array().size(), 0u);
}

TEST(InferenceStatisticsTest, NoModelsIsAnEmptyList) {
  EXPECT_EQ(InferenceStatistics().Json({}), R"({"model_stats":[]})");
}

}  // namespace
}  // namespace thaw
