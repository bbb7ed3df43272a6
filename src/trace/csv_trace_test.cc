#include "trace/csv_trace.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace thaw::trace {
namespace {

Trace Parse(const std::string& csv, const CsvTraceOptions& options = {}) {
  auto trace = ParseCsvTrace(csv, options);
  EXPECT_TRUE(trace.ok()) << trace.status().ToString();
  return trace.ok() ? *trace : Trace{};
}

Status ParseError(const std::string& csv, const CsvTraceOptions& options = {}) {
  auto trace = ParseCsvTrace(csv, options);
  EXPECT_FALSE(trace.ok());
  return trace.status();
}

void ExpectMessageHas(const Status& s, const std::string& part) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(part), std::string::npos) << s.message();
}

TEST(CsvTraceTest, TimestampsOnlyWithoutHeaderAreSorted) {
  Trace trace = Parse("0.5\n0.25\n1\n0\n2e-6\n");
  EXPECT_EQ(trace.functions, std::vector<std::string>{"default"});
  EXPECT_EQ(trace.arrivals, (std::vector<Arrival>{{0, 0}, {2, 0}, {250'000, 0}, {500'000, 0}, {1'000'000, 0}}));
  EXPECT_EQ(trace.end_us, 0);
  EXPECT_EQ(trace.Duration(), 1'000'000);
  EXPECT_TRUE(Validate(trace).ok());

  Trace named = Parse("3\n1\n", {.default_function = "resnet"});
  EXPECT_EQ(named.functions, std::vector<std::string>{"resnet"});
}

TEST(CsvTraceTest, HeaderAndModelColumnSortStably) {
  // Equal times keep file order; functions are numbered by first line.
  Trace trace = Parse(
      "timestamp_s,model\n"
      "2.0,b\n"
      "1.0,a\n"
      "2.0,a\n"
      "1.5,c\n"
      "1.0,b\n");
  EXPECT_EQ(trace.functions, (std::vector<std::string>{"b", "a", "c"}));
  EXPECT_EQ(trace.arrivals, (std::vector<Arrival>{{1'000'000, 1}, {1'000'000, 0}, {1'500'000, 2}, {2'000'000, 0},
                                                  {2'000'000, 1}}));
  EXPECT_EQ(trace.CountPerFunction(), (std::vector<uint64_t>{2, 2, 1}));
}

TEST(CsvTraceTest, AcceptedVariants) {
  // time_s header, timestamps only.
  EXPECT_EQ(Parse("time_s\n1\n").arrivals, (std::vector<Arrival>{{1'000'000, 0}}));
  // No header, with and without the model column mixed; blanks, CRLF and
  // blank lines tolerated.
  Trace mixed = Parse("\n 0.1 , m1 \r\n0.2\r\n\n0.3,default\n");
  EXPECT_EQ(mixed.functions, (std::vector<std::string>{"m1", "default"}));
  EXPECT_EQ(mixed.arrivals, (std::vector<Arrival>{{100'000, 0}, {200'000, 1}, {300'000, 1}}));
  // Empty input: an empty trace.
  EXPECT_TRUE(Parse("").arrivals.empty());
  EXPECT_TRUE(Parse("timestamp_s,model\n").functions.empty());
}

TEST(CsvTraceTest, TimeScaleAndRebase) {
  Trace fast = Parse("timestamp_s,model\n60,a\n30,a\n", {.time_scale = 60});
  EXPECT_EQ(fast.arrivals, (std::vector<Arrival>{{500'000, 0}, {1'000'000, 0}}));
  Trace slow = Parse("1\n", {.time_scale = 0.5});
  EXPECT_EQ(slow.arrivals, (std::vector<Arrival>{{2'000'000, 0}}));

  // Unix-epoch seconds with microseconds.
  Trace epoch = Parse("1700000000.250000\n1700000000.000001\n1700000003\n", {.rebase_to_first = true});
  EXPECT_EQ(epoch.arrivals, (std::vector<Arrival>{{0, 0}, {249'999, 0}, {2'999'999, 0}}));
}

TEST(CsvTraceTest, ErrorsNameTheLine) {
  ExpectMessageHas(ParseError("1\n2\nabc\n"), "line 3: timestamp 'abc' is not a number of seconds");
  ExpectMessageHas(ParseError("1\n-0.5\n"), "line 2");
  ExpectMessageHas(ParseError("1\nnan\n"), "line 2");
  ExpectMessageHas(ParseError("1\ninf\n"), "line 2");
  ExpectMessageHas(ParseError("1\n+1\n"), "line 2");
  ExpectMessageHas(ParseError("1,a,b\n"), "line 1: 3 columns");
  ExpectMessageHas(ParseError("1,\n"), "line 1: the model name is empty");
  ExpectMessageHas(ParseError("\nts,model\n1,a\n"), "line 2: timestamp 'ts' is not a number of seconds >= 0 (a header");
  ExpectMessageHas(ParseError("timestamp_s,function\n"), "line 1: the header must be");
  ExpectMessageHas(ParseError("timestamp_s,model\n1,a\n2\n"), "line 3: 1 columns, expected 2 as in the header");
  ExpectMessageHas(ParseError("timestamp_s\n1\n2,a\n"), "line 3: 2 columns, expected 1 as in the header");
  ExpectMessageHas(ParseError("5000000000\n"), "beyond 4e9 s");
  ExpectMessageHas(ParseError("1\n", {.time_scale = 1e-10}), "beyond 4e9 s after time_scale");
  ExpectMessageHas(ParseError("1\n2\n3\n", {.max_arrivals = 2}), "more than 2 requests");
  ExpectMessageHas(ParseError("1\n", {.time_scale = 0}), "time_scale");
  ExpectMessageHas(ParseError("1\n", {.default_function = ""}), "default_function");
}

TEST(CsvTraceTest, ReadsStreamsAndFiles) {
  const std::string csv = "timestamp_s,model\n2,a\n1,b\n";
  std::istringstream in(csv);
  auto from_stream = ReadCsvTrace(in);
  ASSERT_TRUE(from_stream.ok()) << from_stream.status().ToString();
  EXPECT_EQ(*from_stream, Parse(csv));

  const std::string path = testing::TempDir() + "/csv_trace_test.csv";
  std::ofstream(path, std::ios::binary) << csv << "x,a\n";
  auto broken = ReadCsvTraceFile(path);
  EXPECT_NE(broken.status().message().find("'" + path + "' line 4"), std::string::npos) << broken.status().message();
  std::ofstream(path, std::ios::binary) << csv;
  auto from_file = ReadCsvTraceFile(path);
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(*from_file, Parse(csv));
  std::remove(path.c_str());
  EXPECT_EQ(ReadCsvTraceFile(path).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace thaw::trace
