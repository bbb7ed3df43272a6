// The server's request parsing on bytes in memory (the sessions run the same
// steps on sockets; http_server_test covers those end to end).
#include "server/request_parsing.h"

#include <gtest/gtest.h>

#include <string>

namespace thaw {
namespace {

using Outcome = ParsedRequest::Outcome;

const std::string kInfer =
    "POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"inputs\":1";

TEST(ParseRequestStream, OneRequestWithBody) {
  auto parsed = ParseRequestStream(kInfer, {});
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].outcome, Outcome::kRequest);
  EXPECT_EQ(parsed[0].request.method, "POST");
  EXPECT_EQ(parsed[0].request.target, "/v2/models/fraud/infer");
  EXPECT_EQ(parsed[0].request.body, "{\"inputs\":1");
  EXPECT_TRUE(parsed[0].keep_alive);
  EXPECT_FALSE(parsed[0].request.inference_header_length.has_value());
}

TEST(ParseRequestStream, PipelinedRequestsAreParsedInOrderAtEveryReadSize) {
  const std::string stream = kInfer + "GET /v2/health/ready HTTP/1.1\r\n\r\n" +
                             "GET /v2 HTTP/1.1\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\n\r\n";
  for (size_t read_size : {1, 3, 64, 8192}) {
    auto parsed = ParseRequestStream(stream, {}, read_size);
    ASSERT_EQ(parsed.size(), 3u) << "read size " << read_size;
    EXPECT_EQ(parsed[0].request.body, "{\"inputs\":1");
    EXPECT_EQ(parsed[1].request.target, "/v2/health/ready");
    EXPECT_EQ(parsed[2].request.target, "/v2");
    EXPECT_FALSE(parsed[2].keep_alive);  // the server closes: the 4th is never read
  }
}

TEST(ParseRequestStream, BodyOverTheLimitIs413) {
  auto parsed = ParseRequestStream(kInfer, {.max_body_bytes = 10});
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_EQ(parsed[0].outcome, Outcome::kBodyTooLarge);
  // Chunked bodies have no Content-Length up front: the limit holds as they arrive.
  auto chunked = ParseRequestStream(
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
      {.max_body_bytes = 10});
  ASSERT_EQ(chunked.size(), 1u);
  EXPECT_EQ(chunked[0].outcome, Outcome::kBodyTooLarge);
}

// Found by fuzz/http_request_fuzz: Beast parses a chunk's extensions up to
// the end of the data read so far, so a quoted value left open at the line's
// end is parsed again after every read, and the chunk's size was counted
// against the limit each time: with 1-byte reads a 5-byte chunk became a 413.
// The stream is malformed at every read size.
TEST(ParseRequestStream, ChunkCountsOnceAgainstTheLimitWhateverTheReadSize) {
  const std::string stream =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"\n\r\nhello world, more bytes than the limit\r\n";
  for (size_t read_size : {size_t{1}, size_t{2}, size_t{5}, stream.size() + 1}) {
    auto parsed = ParseRequestStream(stream, {.max_body_bytes = 16}, read_size);
    ASSERT_EQ(parsed.size(), 1u) << "read size " << read_size;
    EXPECT_EQ(parsed[0].outcome, Outcome::kMalformed) << "read size " << read_size;
  }
  // Chunks still add up against the limit, once each, at every read size.
  const std::string two_chunks =
      "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;e=\"v\"\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
  for (size_t read_size : {size_t{1}, size_t{3}, two_chunks.size() + 1}) {
    auto fits = ParseRequestStream(two_chunks, {.max_body_bytes = 10}, read_size);
    ASSERT_EQ(fits.size(), 1u);
    EXPECT_EQ(fits[0].outcome, Outcome::kRequest) << "read size " << read_size;
    EXPECT_EQ(fits[0].request.body, "helloworld");
    auto over = ParseRequestStream(two_chunks, {.max_body_bytes = 9}, read_size);
    ASSERT_EQ(over.size(), 1u);
    EXPECT_EQ(over[0].outcome, Outcome::kBodyTooLarge) << "read size " << read_size;
  }
}

TEST(ParseRequestStream, BadInferenceHeaderLengthIs400AndKeepsTheConnection) {
  for (const char* value : {"-1", "12x", "", "99999999999999999999999"}) {
    auto parsed = ParseRequestStream(std::string("POST /x HTTP/1.1\r\nInference-Header-Content-Length: ") + value +
                                         "\r\nContent-Length: 0\r\n\r\nGET /y HTTP/1.1\r\n\r\n",
                                     {});
    ASSERT_EQ(parsed.size(), 2u) << value;
    EXPECT_EQ(parsed[0].outcome, Outcome::kBadRequest) << value;
    EXPECT_EQ(parsed[0].error.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(parsed[1].request.target, "/y");
  }
  auto good = ParseRequestStream("POST /x HTTP/1.1\r\nInference-Header-Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", {});
  ASSERT_EQ(good.size(), 1u);
  EXPECT_EQ(good[0].request.inference_header_length, std::optional<size_t>(2));
}

TEST(ParseRequestStream, MalformedOrTruncatedClosesTheConnection) {
  for (const std::string& bytes : {std::string("NOT HTTP\r\n\r\n"), std::string("GET /x HTTP/1.1\r\nHost"),
                                  kInfer.substr(0, kInfer.size() - 1),
                                  std::string("POST /x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n")}) {
    auto parsed = ParseRequestStream(bytes, {});
    ASSERT_EQ(parsed.size(), 1u) << bytes;
    EXPECT_EQ(parsed[0].outcome, Outcome::kMalformed) << bytes;
  }
  EXPECT_TRUE(ParseRequestStream("", {}).empty());
}

TEST(ParseRequestStream, ExpectContinueReadsTheBodyAfterTheHeader) {
  auto parsed = ParseRequestStream(
      "POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody", {});
  ASSERT_EQ(parsed.size(), 1u);
  EXPECT_TRUE(parsed[0].expect_continue);
  EXPECT_EQ(parsed[0].request.body, "body");
}

}  // namespace
}  // namespace thaw
