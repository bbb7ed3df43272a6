#include "load/report.h"

#include <gtest/gtest.h>

namespace thaw::load {
namespace {

RequestRecord Ok(Micros offset, Micros latency, int batch = -1) {
  return {.offset_us = offset, .send_lateness_us = 10, .latency_us = latency, .outcome = Outcome::kResponse,
          .status = 200, .batch_size = batch};
}

TEST(ReportTest, CountsRatesAndPercentiles) {
  LoadResult result;
  // 100 ok responses with latencies 1..100 ms, sent every 10 ms.
  for (int i = 0; i < 100; ++i) result.requests.push_back(Ok(i * 10'000, (i + 1) * 1000, i < 50 ? 2 : -1));
  result.requests.push_back({.offset_us = 1'000'000, .send_lateness_us = 20, .latency_us = 500, .outcome = Outcome::kResponse, .status = 429});
  result.requests.push_back({.offset_us = 1'000'000, .outcome = Outcome::kClientOverload});
  result.requests.push_back({.offset_us = 1'000'000, .send_lateness_us = 5, .outcome = Outcome::kTimeout});
  result.requests.push_back({.offset_us = 1'000'000, .send_lateness_us = 5, .outcome = Outcome::kError});
  result.parameters.push_back({"queue_ms", 10.0, 4});

  LoadSummary s = Summarize(result, 2.0);
  EXPECT_EQ(s.scheduled, 104);
  EXPECT_EQ(s.sent, 103);
  EXPECT_EQ(s.responses, 101);
  EXPECT_EQ(s.ok_2xx, 100);
  EXPECT_EQ(s.client_overload, 1);
  EXPECT_EQ(s.timeouts, 1);
  EXPECT_EQ(s.errors, 1);
  ASSERT_EQ(s.status_counts.size(), 2u);
  EXPECT_EQ(s.status_counts[1], std::make_pair(429, int64_t{1}));
  EXPECT_DOUBLE_EQ(s.offered_rate_per_s, 52.0);
  // Latency over 2xx only: the fast 429 does not count.
  EXPECT_EQ(s.latency.count, 100);
  EXPECT_DOUBLE_EQ(s.latency.p50_ms, 50.0);
  EXPECT_DOUBLE_EQ(s.latency.p90_ms, 90.0);
  EXPECT_DOUBLE_EQ(s.latency.p99_ms, 99.0);
  EXPECT_DOUBLE_EQ(s.latency.p999_ms, 100.0);
  EXPECT_DOUBLE_EQ(s.latency.max_ms, 100.0);
  EXPECT_DOUBLE_EQ(s.latency.mean_ms, 50.5);
  // First send at 10 us; last 2xx done at 990 ms + 100 ms.
  EXPECT_NEAR(s.achieved_per_s, 100.0 / (1.090 - 0.000010), 1e-6);
  EXPECT_EQ(s.batch_size_responses, 50);
  EXPECT_DOUBLE_EQ(s.mean_batch_size, 2.0);
  EXPECT_DOUBLE_EQ(s.send_lateness.max_ms, 0.020);

  const std::string text = SummaryText(s);
  EXPECT_NE(text.find("WARNING: 1 requests were not sent"), std::string::npos) << text;
  EXPECT_NE(text.find("2xx only"), std::string::npos) << text;
  EXPECT_NE(text.find("queue_ms 2.50"), std::string::npos) << text;

  const std::string json = SummaryJson(s, {.url = "http://h:1", .model = "m\"x", .arrivals = "poisson", .rate_per_s = 52});
  EXPECT_NE(json.find("\"client_overload\":1"), std::string::npos) << json;
  EXPECT_NE(json.find("\"status_counts\":{\"200\":100,\"429\":1}"), std::string::npos) << json;
  EXPECT_NE(json.find("\"p99_ms\":99.000"), std::string::npos) << json;
  EXPECT_NE(json.find("\"model\":\"m\\\"x\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"queue_ms\":{\"mean\":2.500000,\"count\":4}"), std::string::npos) << json;
}

TEST(ReportTest, FailuresByCauseAndDistinctInstances) {
  LoadResult result;
  RequestRecord ok = Ok(0, 1000);
  for (int64_t instance : {2, 3, 2, 4, 3}) {
    ok.instance = instance;
    result.requests.push_back(ok);
  }
  auto error = [](ErrorCause cause) {
    return RequestRecord{.offset_us = 0, .send_lateness_us = 1, .outcome = Outcome::kError, .error = cause};
  };
  auto status = [](int code) {
    return RequestRecord{.offset_us = 0, .send_lateness_us = 1, .latency_us = 5, .outcome = Outcome::kResponse, .status = code};
  };
  for (RequestRecord r : {error(ErrorCause::kConnectionRefused), error(ErrorCause::kConnectionRefused),
                          error(ErrorCause::kConnectionReset), error(ErrorCause::kOther), status(429), status(503),
                          status(503), status(500), status(404)})
    result.requests.push_back(r);
  result.requests.push_back({.offset_us = 0, .send_lateness_us = 1, .outcome = Outcome::kTimeout});

  const LoadSummary s = Summarize(result, 1.0);
  EXPECT_EQ(s.distinct_instances, 3);
  std::vector<std::pair<std::string, int64_t>> failures;
  for (const LoadSummary::Failure& f : s.failures) failures.emplace_back(f.key, f.count);
  const std::vector<std::pair<std::string, int64_t>> expected = {
      {"connection_refused", 2}, {"connection_reset", 1}, {"timeout", 1}, {"http_429", 1},
      {"http_503", 2},           {"http_404", 1},         {"http_500", 1}, {"other_error", 1}};
  EXPECT_EQ(failures, expected);
  const std::string text = SummaryText(s);
  EXPECT_NE(text.find("failures          connection refused 2  connection reset 1  timeout 1  HTTP 429 1  HTTP 503 2"),
            std::string::npos) << text;
  EXPECT_NE(text.find("instances         3 distinct"), std::string::npos) << text;
  EXPECT_EQ(text.find("instance 2."), std::string::npos) << text;
  const std::string json = SummaryJson(s, {});
  EXPECT_NE(json.find("\"failures\":{\"connection_refused\":2,\"connection_reset\":1,\"timeout\":1,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"distinct_instances\":3"), std::string::npos) << json;
  // Some 2xx: the run counts as done, whatever failed beside.
  EXPECT_EQ(NoSuccessReason(s), "");
  EXPECT_EQ(LoadExitCode(s), 0);
}

TEST(ReportTest, NoSuccessExitsOneAndSaysWhy) {
  LoadResult result;
  for (int i = 0; i < 6; ++i)
    result.requests.push_back({.offset_us = i, .send_lateness_us = 1, .outcome = Outcome::kError,
                               .error = ErrorCause::kConnectionRefused});
  const LoadSummary refused = Summarize(result, 1.0);
  EXPECT_EQ(LoadExitCode(refused), 1);
  EXPECT_EQ(NoSuccessReason(refused),
            "no request succeeded: 6 of 6 failed: connection refused 6 (is a server listening at the url?)");

  LoadResult overloaded;
  overloaded.requests.push_back({.offset_us = 0, .send_lateness_us = 1, .latency_us = 5, .outcome = Outcome::kResponse, .status = 429});
  EXPECT_EQ(LoadExitCode(Summarize(overloaded, 1.0)), 1);
  EXPECT_EQ(NoSuccessReason(Summarize(overloaded, 1.0)), "no request succeeded: 1 of 1 failed: HTTP 429 1");
  // Nothing scheduled is not a failure of the server.
  EXPECT_EQ(LoadExitCode(Summarize(LoadResult{}, 1.0)), 0);
}

TEST(ReportTest, EmptyResultHasZeroes) {
  LoadSummary s = Summarize(LoadResult{}, 1.0);
  EXPECT_EQ(s.scheduled, 0);
  EXPECT_EQ(s.latency.count, 0);
  EXPECT_EQ(s.achieved_per_s, 0.0);
  EXPECT_NE(SummaryText(s).find("(no responses)"), std::string::npos);
}

TEST(ReportTest, CsvHasOneRowPerRequest) {
  LoadResult result;
  result.requests.push_back(Ok(0, 1500, 3));
  result.requests.push_back({.offset_us = 1000, .outcome = Outcome::kClientOverload});
  EXPECT_EQ(RequestsCsv(result),
            "offset_us,latency_us,status,batch_size,compute_ms,outcome,send_lateness_us\n"
            "0,1500,200,3,,response,10\n"
            "1000,,0,,,client_overload,\n");
}

}  // namespace
}  // namespace thaw::load
