#include "lambda/lambda_runtime.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

namespace thaw::lambda {
namespace {

using ::testing::HasSubstr;

TEST(ParseEventTest, AV2RequestIsTheModelsInfer) {
  const std::string body = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"data":[1,2]}]})";
  auto invocation = ParseEvent(body, "fraud");
  ASSERT_TRUE(invocation.ok()) << invocation.status().message();
  EXPECT_FALSE(invocation->http_event);
  EXPECT_EQ(invocation->request.method, "POST");
  EXPECT_EQ(invocation->request.target, "/v2/models/fraud/infer");
  EXPECT_EQ(invocation->request.body, body);
  EXPECT_EQ(invocation->request.content_type, "application/json");
}

TEST(ParseEventTest, AnHttpApiOrFunctionUrlEventGoesToItsRoute) {
  auto invocation = ParseEvent(R"({"version":"2.0","rawPath":"/v2/models/fashion/infer","rawQueryString":"a=1",
      "headers":{"content-type":"application/json","inference-header-content-length":"7"},
      "requestContext":{"http":{"method":"POST"}},"body":"{\"x\":1}","isBase64Encoded":false})",
                               "fraud");
  ASSERT_TRUE(invocation.ok()) << invocation.status().message();
  EXPECT_TRUE(invocation->http_event);
  EXPECT_EQ(invocation->request.method, "POST");
  EXPECT_EQ(invocation->request.target, "/v2/models/fashion/infer?a=1");
  EXPECT_EQ(invocation->request.body, "{\"x\":1}");
  EXPECT_EQ(invocation->request.inference_header_length, 7u);
}

TEST(ParseEventTest, ARestApiEventWithABase64Body) {
  auto invocation = ParseEvent(R"({"httpMethod":"POST","path":"/v2/models/m/infer",
      "headers":{"Content-Type":"application/octet-stream"},"body":")" + Base64Encode(std::string("\0\1\2\xff", 4)) +
                                   R"(","isBase64Encoded":true})",
                               "fraud");
  ASSERT_TRUE(invocation.ok()) << invocation.status().message();
  EXPECT_TRUE(invocation->http_event);
  EXPECT_EQ(invocation->request.body, std::string("\0\1\2\xff", 4));
  EXPECT_EQ(invocation->request.content_type, "application/octet-stream");
}

TEST(ParseEventTest, OtherEventsAreClearErrors) {
  for (const char* bad : {"not json", "[1]", R"({"hello":"world"})"}) {
    auto invocation = ParseEvent(bad, "fraud");
    ASSERT_FALSE(invocation.ok()) << bad;
    EXPECT_EQ(invocation.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_THAT(ParseEvent(R"({"hello":1})", "m").status().message(), HasSubstr("neither a KServe v2 inference request"));
  EXPECT_THAT(ParseEvent(R"({"httpMethod":"GET"})", "m").status().message(), HasSubstr("no path"));
  EXPECT_THAT(ParseEvent(R"({"httpMethod":"POST","path":"/v2","body":"@@","isBase64Encoded":true})", "m")
                  .status()
                  .message(),
              HasSubstr("not base64"));
}

TEST(ReplyTest, DirectInvocationsGetTheBodyOrAnError) {
  auto ok = ReplyFor({.status = 200, .body = R"({"outputs":[]})"}, false);
  EXPECT_FALSE(ok.error);
  EXPECT_EQ(ok.payload, R"({"outputs":[]})");
  auto bad = ReplyFor({.status = 400, .body = R"({"error":"input 'x' has shape [3]"})"}, false);
  EXPECT_TRUE(bad.error);
  EXPECT_EQ(bad.payload, R"({"errorType":"InvalidArgument","errorMessage":"400: input 'x' has shape [3]"})");
  EXPECT_THAT(ReplyFor({.status = 429, .body = "{}"}, false).payload, HasSubstr("TooManyRequests"));
}

TEST(ReplyTest, HttpEventsGetTheirResponseShapeBinaryInBase64) {
  auto json = ReplyFor({.status = 404, .body = R"({"error":"no"})", .headers = {{"x-a", "1"}}}, true);
  EXPECT_FALSE(json.error);
  EXPECT_EQ(json.payload, R"({"statusCode":404,"headers":{"content-type":"application/json","x-a":"1"},)"
                          R"("body":"{\"error\":\"no\"}","isBase64Encoded":false})");
  auto binary = ReplyFor({.status = 200, .content_type = "application/octet-stream", .body = std::string("\0\1", 2)}, true);
  EXPECT_THAT(binary.payload, HasSubstr(R"("body":"AAE=","isBase64Encoded":true)"));
}

TEST(ReportTest, LambdasReportLine) {
  EXPECT_EQ(ReportLine("abc", 1.234, 512, 80, std::nullopt),
            "REPORT RequestId: abc\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 512 MB\tMax Memory Used: 80 MB");
  EXPECT_THAT(ReportLine("abc", 0.2, 512, 80, 45.678), HasSubstr("Billed Duration: 1 ms"));
  // Billed agrees with the duration printed: 2.004 prints as 2.00 and bills 2 ms.
  EXPECT_THAT(ReportLine("abc", 2.004, 512, 80, std::nullopt), HasSubstr("Duration: 2.00 ms\tBilled Duration: 2 ms"));
  EXPECT_THAT(ReportLine("abc", 0.2, 512, 80, 45.678), HasSubstr("\tInit Duration: 45.68 ms"));
}

TEST(Base64Test, RoundTripsEveryLengthAndRefusesOtherText) {
  std::string bytes;
  for (int n = 0; n < 20; ++n) {
    EXPECT_EQ(Base64Decode(Base64Encode(bytes)), bytes) << n;
    bytes += static_cast<char>(n * 37 + 200);
  }
  EXPECT_EQ(Base64Encode("Man"), "TWFu");
  EXPECT_EQ(Base64Encode("Ma"), "TWE=");
  EXPECT_EQ(Base64Decode("TWE"), "Ma");
  EXPECT_FALSE(Base64Decode("T").has_value());
  EXPECT_FALSE(Base64Decode("TW!u").has_value());
}

}  // namespace
}  // namespace thaw::lambda
