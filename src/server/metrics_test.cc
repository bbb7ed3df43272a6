// PrometheusMetrics renders counters and histograms from records, and gauges
// from a runtime (here one with no models loaded).
#include "server/metrics.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace thaw {
namespace {

metering::InvocationRecord Invocation(std::string model, int status, Micros latency_us, bool cold = false) {
  metering::InvocationRecord r;
  r.model = std::move(model);
  r.http_status = status;
  r.latency_us = latency_us;
  r.queue_us = latency_us / 4;
  r.compute_us = latency_us / 2;
  r.instance_id = status == 429 ? 0 : 1;
  r.cold_start = cold;
  r.start_path = "template";
  r.init_us = cold ? 3000 : 0;
  return r;
}

bool Has(const std::string& text, const std::string& line) { return text.find(line + "\n") != std::string::npos; }

TEST(PrometheusMetricsTest, CountsHistogramsAndCosts) {
  boost::asio::io_context io;
  RealClock clock;
  Runtime runtime(io, clock, RuntimeOptions{.worker_path = "/nonexistent"});
  PrometheusMetrics metrics;
  metrics.Record(Invocation("fraud", 200, 700));
  metrics.Record(Invocation("fraud", 200, 2000, /*cold=*/true));
  metrics.Record(Invocation("fraud", 429, 10));
  metrics.Record(Invocation("a\"b", 200, 100));  // a label value that needs escaping
  metrics.OnExecution({.model = "fraud", .requests = 4, .rows = 8});
  metrics.Record(metering::InstanceRecord{.model = "fraud", .stop_reason = "oom"});
  metrics.Record(metering::InstanceRecord{.model = "fraud", .stop_reason = "keep_alive"});
  const std::string text = metrics.Render(runtime, {{.model = "fraud", .on_demand_gb_s = 0.5, .dollars = 0.25}});

  EXPECT_TRUE(Has(text, "# TYPE thaw_requests_total counter")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_requests_total{model="fraud",code="200"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_requests_total{model="fraud",code="429"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_requests_total{model="a\"b",code="200"} 1)")) << text;
  // 0.7 ms and 2 ms fall in the 1 ms and 2.5 ms buckets; buckets are cumulative.
  EXPECT_TRUE(Has(text, R"(thaw_request_duration_seconds_bucket{model="fraud",le="0.0005"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_request_duration_seconds_bucket{model="fraud",le="0.001"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_request_duration_seconds_bucket{model="fraud",le="0.0025"} 3)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_request_duration_seconds_bucket{model="fraud",le="+Inf"} 3)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_request_duration_seconds_count{model="fraud"} 3)")) << text;
  // The refused request never ran: no compute observation.
  EXPECT_TRUE(Has(text, R"(thaw_compute_duration_seconds_count{model="fraud"} 2)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_cold_starts_total{model="fraud",start_path="template"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_cold_start_duration_seconds_sum{model="fraud",start_path="template"} 0.003)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_batch_rows_bucket{model="fraud",le="8"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_batch_rows_bucket{model="fraud",le="4"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_gigabyte_seconds_total{model="fraud",kind="on_demand"} 0.5)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_cost_dollars_total{model="fraud"} 0.25)")) << text;
  EXPECT_TRUE(Has(text, "# TYPE thaw_instances gauge")) << text;
  EXPECT_TRUE(Has(text, "# TYPE thaw_instance_oom_kills_total counter")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_instance_oom_kills_total{model="fraud"} 1)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_instance_oom_kills_total{model="a\"b"} 0)")) << text;
  EXPECT_EQ(text.find("thaw_usage_records_dropped_total"), std::string::npos) << "no usage log, no family";
}

TEST(PrometheusMetricsTest, MemoryHeldByKindAndTheHostCost) {
  boost::asio::io_context io;
  RealClock clock;
  Runtime runtime(io, clock, RuntimeOptions{.worker_path = "/nonexistent"});
  PrometheusMetrics metrics;
  const std::string text = metrics.Render(
      runtime, {{.model = "fraud",
                 .dollars = 0.25,
                 .held = {.busy_gb_s = 21, .idle_warm_gb_s = 120, .provisioned_gb_s = 300, .template_gb_s = 300.5,
                          .standby_gb_s = 60, .zygote_gb_s = 0},
                 .host_dollars = 0.001839796875},
                {.model = "(platform)", .held = {.zygote_gb_s = 900}, .host_dollars = 0.0020671875}});
  EXPECT_TRUE(Has(text, "# TYPE thaw_memory_held_gigabyte_seconds_total counter")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_memory_held_gigabyte_seconds_total{model="fraud",kind="busy"} 21)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_memory_held_gigabyte_seconds_total{model="fraud",kind="idle_warm"} 120)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_memory_held_gigabyte_seconds_total{model="fraud",kind="provisioned"} 300)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_memory_held_gigabyte_seconds_total{model="fraud",kind="template"} 300.5)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_memory_held_gigabyte_seconds_total{model="fraud",kind="standby"} 60)")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_memory_held_gigabyte_seconds_total{model="fraud",kind="zygote"} 0)")) << text;
  EXPECT_TRUE(Has(text, R"x(thaw_memory_held_gigabyte_seconds_total{model="(platform)",kind="zygote"} 900)x")) << text;
  EXPECT_TRUE(Has(text, "# TYPE thaw_host_cost_dollars_total counter")) << text;
  EXPECT_TRUE(Has(text, R"(thaw_host_cost_dollars_total{model="fraud"} 0.001839796875)")) << text;
  EXPECT_TRUE(Has(text, R"x(thaw_host_cost_dollars_total{model="(platform)"} 0.0020671875)x")) << text;
  // The Lambda-style cost stays what it was.
  EXPECT_TRUE(Has(text, R"(thaw_cost_dollars_total{model="fraud"} 0.25)")) << text;
  EXPECT_TRUE(Has(text, R"x(thaw_cost_dollars_total{model="(platform)"} 0)x")) << text;
  // One HELP and one TYPE line per family.
  for (const std::string family : {"thaw_memory_held_gigabyte_seconds_total", "thaw_host_cost_dollars_total"}) {
    size_t types = 0;
    for (size_t at = text.find("# TYPE " + family + " "); at != std::string::npos;
         at = text.find("# TYPE " + family + " ", at + 1))
      ++types;
    EXPECT_EQ(types, 1u) << family;
    EXPECT_NE(text.find("# HELP " + family + " "), std::string::npos) << family;
  }
}

TEST(PrometheusMetricsTest, UsageLogHealth) {
  boost::asio::io_context io;
  RealClock clock;
  Runtime runtime(io, clock, RuntimeOptions{.worker_path = "/nonexistent"});
  PrometheusMetrics metrics;
  const std::string text = metrics.Render(
      runtime, {},
      metering::UsageLogHealth{
          .ok = false, .error = "No space left on device", .buffered_records = 7, .dropped_records = 42, .write_errors = 3});
  EXPECT_TRUE(Has(text, "# TYPE thaw_usage_records_dropped_total counter")) << text;
  EXPECT_TRUE(Has(text, "thaw_usage_records_dropped_total 42")) << text;
  EXPECT_TRUE(Has(text, "thaw_usage_log_write_errors_total 3")) << text;
  EXPECT_TRUE(Has(text, "thaw_usage_log_buffered_records 7")) << text;
  EXPECT_TRUE(Has(text, "thaw_usage_log_healthy 0")) << text;
}

}  // namespace
}  // namespace thaw
