#include "trace/azure_trace.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

namespace thaw::trace {
namespace {

constexpr Micros kMinuteUs = 60 * kMicrosPerSecond;

// One row of an invocations_per_function file; counts by 0-based minute.
struct Row {
  std::string owner = "o1", app = "a1", function;
  std::map<int, uint32_t> counts;
};

std::string Header() {
  std::string h = "HashOwner,HashApp,HashFunction,Trigger";
  for (int m = 1; m <= kAzureMinutesPerDay; ++m) h += "," + std::to_string(m);
  return h + "\n";
}

std::string RowLine(const Row& row) {
  std::string line = row.owner + "," + row.app + "," + row.function + ",http";
  for (int m = 0; m < kAzureMinutesPerDay; ++m) {
    auto it = row.counts.find(m);
    line += "," + std::to_string(it == row.counts.end() ? 0u : it->second);
  }
  return line + "\n";
}

std::string Csv(const std::vector<Row>& rows) {
  std::string csv = Header();
  for (const Row& row : rows) csv += RowLine(row);
  return csv;
}

// Three functions with activity in a few minutes (totals 13, 60, 30).
std::vector<Row> ThreeFunctions() {
  return {
      {.function = "fa", .counts = {{0, 3}, {1, 7}, {1439, 3}}},
      {.function = "fb", .counts = {{1, 20}, {10, 40}}},
      {.function = "fc", .counts = {{0, 1}, {5, 29}}},
  };
}

Trace Parse(const std::string& csv, const AzureTraceOptions& options) {
  auto trace = ParseAzureTrace(csv, options);
  EXPECT_TRUE(trace.ok()) << trace.status().ToString();
  return trace.ok() ? *trace : Trace{};
}

Status ParseError(const std::string& csv, const AzureTraceOptions& options = {}) {
  auto trace = ParseAzureTrace(csv, options);
  EXPECT_FALSE(trace.ok());
  return trace.status();
}

// Arrivals of `function` in [start, end).
int64_t CountIn(const Trace& trace, uint32_t function, Micros start, Micros end) {
  return std::count_if(trace.arrivals.begin(), trace.arrivals.end(), [&](const Arrival& a) {
    return a.function == function && a.time_us >= start && a.time_us < end;
  });
}

std::vector<Micros> TimesOf(const Trace& trace, uint32_t function) {
  std::vector<Micros> times;
  for (const Arrival& a : trace.arrivals)
    if (a.function == function) times.push_back(a.time_us);
  return times;
}

void ExpectCountsPerMinute(const Trace& trace, const std::vector<Row>& rows, int start_minute, int num_minutes,
                           Micros minute_us) {
  for (const Row& row : rows) {
    const int64_t f = trace.FunctionIndex(row.function);
    ASSERT_GE(f, 0) << row.function;
    int64_t total = 0;
    for (int m = 0; m < num_minutes; ++m) {
      auto it = row.counts.find(start_minute + m);
      const int64_t expected = it == row.counts.end() ? 0 : it->second;
      total += expected;
      ASSERT_EQ(CountIn(trace, static_cast<uint32_t>(f), m * minute_us, (m + 1) * minute_us), expected)
          << row.function << " minute " << m;
    }
    EXPECT_EQ(static_cast<int64_t>(trace.CountPerFunction()[static_cast<size_t>(f)]), total);
  }
}

bool SortedByTimeThenFunction(const Trace& trace) {
  return std::is_sorted(trace.arrivals.begin(), trace.arrivals.end(), [](const Arrival& a, const Arrival& b) {
    return a.time_us != b.time_us ? a.time_us < b.time_us : a.function < b.function;
  });
}

TEST(AzureTraceTest, AllFunctionsKeepEveryMinutesCountForBothSpreads) {
  const auto rows = ThreeFunctions();
  for (Spread spread : {Spread::kUniform, Spread::kPoisson}) {
    SCOPED_TRACE(std::string(SpreadName(spread)));
    Trace trace = Parse(Csv(rows), {.spread = spread});
    EXPECT_TRUE(Validate(trace).ok());
    EXPECT_EQ(trace.functions, (std::vector<std::string>{"fa", "fb", "fc"}));  // file order
    EXPECT_EQ(trace.arrivals.size(), 103u);
    EXPECT_EQ(trace.end_us, 1440 * kMinuteUs);
    EXPECT_EQ(trace.Duration(), 1440 * kMinuteUs);
    EXPECT_TRUE(SortedByTimeThenFunction(trace));
    ExpectCountsPerMinute(trace, rows, 0, 1440, kMinuteUs);
  }
}

TEST(AzureTraceTest, UniformSpacingIsExact) {
  Trace trace = Parse(Csv({{.function = "f", .counts = {{2, 4}, {3, 7}, {4, 1}}}}), {.spread = Spread::kUniform});
  std::vector<Micros> expected = {2 * kMinuteUs + 7'500'000, 2 * kMinuteUs + 22'500'000, 2 * kMinuteUs + 37'500'000,
                                  2 * kMinuteUs + 52'500'000};
  for (int i = 0; i < 7; ++i)  // 60 s / 7 apart, rounded down to the microsecond
    expected.push_back(3 * kMinuteUs + static_cast<Micros>(std::floor((i + 0.5) * 60e6 / 7)));
  expected.push_back(4 * kMinuteUs + 30'000'000);  // one invocation: mid-minute
  EXPECT_EQ(TimesOf(trace, 0), expected);
}

TEST(AzureTraceTest, PoissonArrivalsStayInTheirMinuteAndFollowTheSeed) {
  const std::vector<Row> rows = {{.function = "f", .counts = {{0, 500}, {1, 500}, {2, 1}}}};
  const std::string csv = Csv(rows);
  Trace a = Parse(csv, {.spread = Spread::kPoisson, .seed = 7});
  EXPECT_EQ(a, Parse(csv, {.spread = Spread::kPoisson, .seed = 7}));
  EXPECT_NE(a.arrivals, Parse(csv, {.spread = Spread::kPoisson, .seed = 8}).arrivals);
  ExpectCountsPerMinute(a, rows, 0, 3, kMinuteUs);
  // Random, not evenly spaced: the gaps within minute 0 vary.
  std::vector<Micros> minute0 = TimesOf(a, 0);
  minute0.resize(500);
  std::vector<Micros> gaps;
  for (size_t i = 1; i < minute0.size(); ++i) gaps.push_back(minute0[i] - minute0[i - 1]);
  EXPECT_GT(*std::max_element(gaps.begin(), gaps.end()), 4 * *std::min_element(gaps.begin(), gaps.end()) + 1);
}

TEST(AzureTraceTest, PoissonArrivalsOfAFunctionDoNotDependOnTheOthersKept) {
  const std::string csv = Csv(ThreeFunctions());
  Trace all = Parse(csv, {.spread = Spread::kPoisson, .seed = 3});
  Trace one = Parse(csv, {.select = AzureSelect::kNamed, .names = {"fb"}, .spread = Spread::kPoisson, .seed = 3});
  ASSERT_EQ(one.functions, std::vector<std::string>{"fb"});
  EXPECT_EQ(TimesOf(one, 0), TimesOf(all, static_cast<uint32_t>(all.FunctionIndex("fb"))));
}

TEST(AzureTraceTest, TopNRanksByInvocationsInTheMinuteRange) {
  const std::string csv = Csv(ThreeFunctions());
  Trace top2 = Parse(csv, {.select = AzureSelect::kTopN, .top_n = 2});
  EXPECT_EQ(top2.functions, (std::vector<std::string>{"fb", "fc"}));  // 60, 30 (fa has 13)
  EXPECT_EQ(top2.arrivals.size(), 90u);
  EXPECT_TRUE(SortedByTimeThenFunction(top2));
  ExpectCountsPerMinute(top2, {ThreeFunctions()[1], ThreeFunctions()[2]}, 0, 1440, kMinuteUs);

  // Minutes 0..4: fa has 10, fb 20, fc 1.
  Trace early = Parse(csv, {.select = AzureSelect::kTopN, .top_n = 2, .num_minutes = 5});
  EXPECT_EQ(early.functions, (std::vector<std::string>{"fb", "fa"}));

  // Only functions with invocations count: minutes 5..9 have only fc.
  Trace sparse = Parse(csv, {.select = AzureSelect::kTopN, .top_n = 3, .start_minute = 5, .num_minutes = 5});
  EXPECT_EQ(sparse.functions, std::vector<std::string>{"fc"});

  // Ties keep file order.
  Trace tie = Parse(Csv({{.function = "x", .counts = {{0, 5}}},
                         {.function = "y", .counts = {{0, 9}}},
                         {.function = "z", .counts = {{1, 5}}},
                         {.function = "w", .counts = {{2, 5}}}}),
                    {.select = AzureSelect::kTopN, .top_n = 3});
  EXPECT_EQ(tie.functions, (std::vector<std::string>{"y", "x", "z"}));
}

TEST(AzureTraceTest, NamedSelectionAndQualifiedNames) {
  std::vector<Row> rows = ThreeFunctions();
  rows[2].owner = "o2";
  rows[2].app = "a2";
  const std::string csv = Csv(rows);
  Trace named = Parse(csv, {.select = AzureSelect::kNamed, .names = {"fc", "fa"}});
  EXPECT_EQ(named.functions, (std::vector<std::string>{"fa", "fc"}));  // file order
  EXPECT_EQ(named.arrivals.size(), 43u);

  Trace qualified = Parse(csv, {.select = AzureSelect::kNamed, .names = {"o2/a2/fc", "fb"}, .qualified_names = true});
  EXPECT_EQ(qualified.functions, (std::vector<std::string>{"o1/a1/fb", "o2/a2/fc"}));

  Status missing = ParseError(csv, {.select = AzureSelect::kNamed, .names = {"fa", "nope", "o9/a9/fc"}});
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_NE(missing.message().find("'nope', 'o9/a9/fc'"), std::string::npos) << missing.message();
}

TEST(AzureTraceTest, TheSameHashFunctionInTwoAppsNeedsQualifiedNames) {
  const std::string csv = Csv({{.app = "a1", .function = "f", .counts = {{0, 1}}},
                               {.app = "a2", .function = "f", .counts = {{0, 2}}}});
  Status duplicate = ParseError(csv);
  EXPECT_EQ(duplicate.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(duplicate.message().find("lines 2 and 3"), std::string::npos) << duplicate.message();
  Trace qualified = Parse(csv, {.qualified_names = true});
  EXPECT_EQ(qualified.functions, (std::vector<std::string>{"o1/a1/f", "o1/a2/f"}));
  EXPECT_EQ(qualified.CountPerFunction(), (std::vector<uint64_t>{1, 2}));
}

TEST(AzureTraceTest, MinuteRangeShiftsToZero) {
  const auto rows = ThreeFunctions();
  Trace trace = Parse(Csv(rows), {.start_minute = 1, .num_minutes = 10});  // minutes 1..10
  EXPECT_EQ(trace.end_us, 10 * kMinuteUs);
  EXPECT_EQ(trace.CountPerFunction(), (std::vector<uint64_t>{7, 60, 29}));
  ExpectCountsPerMinute(trace, rows, 1, 10, kMinuteUs);

  Trace last = Parse(Csv(rows), {.start_minute = 1439, .num_minutes = 1});
  EXPECT_EQ(last.CountPerFunction(), (std::vector<uint64_t>{3, 0, 0}));  // idle functions stay in the table
  EXPECT_EQ(TimesOf(last, 0), (std::vector<Micros>{10'000'000, 30'000'000, 50'000'000}));
}

TEST(AzureTraceTest, TimeScaleCompressesMinutes) {
  const auto rows = ThreeFunctions();
  // time_scale 60: a trace minute lasts one second.
  for (Spread spread : {Spread::kUniform, Spread::kPoisson}) {
    Trace trace = Parse(Csv(rows), {.time_scale = 60, .spread = spread});
    EXPECT_EQ(trace.end_us, 1440 * kMicrosPerSecond);
    ExpectCountsPerMinute(trace, rows, 0, 1440, kMicrosPerSecond);
  }
  Trace uniform = Parse(Csv(rows), {.select = AzureSelect::kNamed, .names = {"fa"}, .num_minutes = 1, .time_scale = 60});
  EXPECT_EQ(TimesOf(uniform, 0), (std::vector<Micros>{166'666, 500'000, 833'333}));
  // A scale that does not divide a minute: boundaries are rounded from the
  // index, so minute m still starts at round(m x 60 s / 7).
  Trace odd = Parse(Csv(rows), {.time_scale = 7});
  for (int m : {0, 1, 5, 10}) {
    const Micros start = std::llround(m * 60e6 / 7), end = std::llround((m + 1) * 60e6 / 7);
    int64_t expected = 0;
    for (const Row& row : rows)
      if (auto it = row.counts.find(m); it != row.counts.end()) expected += it->second;
    EXPECT_EQ(std::count_if(odd.arrivals.begin(), odd.arrivals.end(),
                            [&](const Arrival& a) { return a.time_us >= start && a.time_us < end; }),
              expected)
        << "minute " << m;
  }
}

TEST(AzureTraceTest, ToleratesCrlfAndBlankLines) {
  std::string csv = Csv(ThreeFunctions());
  std::string crlf;
  for (char c : csv) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  crlf += "\r\n\n";
  EXPECT_EQ(Parse(crlf, {}), Parse(csv, {}));
}

TEST(AzureTraceTest, ErrorsNameTheLineAndColumn) {
  const std::string header = Header();
  std::string bad_header = header;
  bad_header.replace(bad_header.find("HashFunction"), 12, "Function");
  Status s = ParseError(bad_header + RowLine(ThreeFunctions()[0]));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("line 1, column 3"), std::string::npos) << s.message();

  std::string short_header = header.substr(0, header.rfind(',')) + "\n";  // no "1440"
  s = ParseError(short_header);
  EXPECT_NE(s.message().find("line 1: the header has 1443 columns"), std::string::npos) << s.message();

  s = ParseError("");
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.message();

  // A non-integer count on line 3, minute 6 = column 10.
  std::string row = RowLine({.function = "g"});
  auto with_field = [&](int column, const std::string& value) {
    std::string line = row;
    size_t start = 0;
    for (int c = 1; c < column; ++c) start = line.find(',', start) + 1;
    const size_t end = line.find_first_of(",\n", start);
    return line.replace(start, end - start, value);
  };
  for (const std::string value : {"x", "1.5", "-1", "", " 2", "4294967296"}) {
    s = ParseError(header + RowLine(ThreeFunctions()[0]) + with_field(10, value));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("line 3, column 10 (minute 6)"), std::string::npos) << value << ": " << s.message();
  }
  // The largest count that fits is fine.
  EXPECT_TRUE(ParseAzureTrace(header + with_field(10, "4294967295"),
                              {.start_minute = 0, .num_minutes = 1}).ok());

  s = ParseError(header + with_field(3, ""));
  EXPECT_NE(s.message().find("line 2, column 3"), std::string::npos) << s.message();

  std::string too_few = row.substr(0, row.rfind(',')) + "\n";
  s = ParseError(header + "\n" + too_few);
  EXPECT_NE(s.message().find("line 3: 1443 columns, expected 1444"), std::string::npos) << s.message();

  std::string too_many = row.substr(0, row.size() - 1) + ",0\n";
  s = ParseError(header + too_many);
  EXPECT_NE(s.message().find("line 2: more than 1444 columns"), std::string::npos) << s.message();

  // Rows outside the kept minutes and functions are still checked.
  s = ParseError(header + RowLine(ThreeFunctions()[0]) + with_field(1444, "?"),
                 {.select = AzureSelect::kNamed, .names = {"fa"}, .num_minutes = 1});
  EXPECT_NE(s.message().find("line 3, column 1444 (minute 1440)"), std::string::npos) << s.message();
}

TEST(AzureTraceTest, RejectsBadOptionsAndOversizedTraces) {
  const std::string csv = Csv(ThreeFunctions());
  for (const AzureTraceOptions& options : std::vector<AzureTraceOptions>{
           {.select = AzureSelect::kTopN, .top_n = 0},
           {.select = AzureSelect::kNamed},
           {.start_minute = -1},
           {.start_minute = 1440, .num_minutes = 1},
           {.start_minute = 100, .num_minutes = 1341},
           {.num_minutes = 0},
           {.time_scale = 0},
           {.time_scale = NAN},
           {.time_scale = 1e8},
           {.time_scale = 1e-6},
       }) {
    EXPECT_EQ(ParseError(csv, options).code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(ParseAzureTrace(csv, {.start_minute = 100, .num_minutes = 1340}).ok());
  Status s = ParseError(csv, {.max_arrivals = 102});
  EXPECT_NE(s.message().find("more than 102 invocations"), std::string::npos) << s.message();
  EXPECT_TRUE(ParseAzureTrace(csv, {.max_arrivals = 103}).ok());
}

TEST(AzureTraceTest, ReadsStreamsAndFiles) {
  const std::string csv = Csv(ThreeFunctions());
  const Trace expected = Parse(csv, {.spread = Spread::kPoisson});
  std::istringstream in(csv);
  auto from_stream = ReadAzureTrace(in, {.spread = Spread::kPoisson});
  ASSERT_TRUE(from_stream.ok()) << from_stream.status().ToString();
  EXPECT_EQ(*from_stream, expected);

  const std::string path = testing::TempDir() + "/azure_trace_test.csv";
  {
    std::ofstream file(path, std::ios::binary);
    file << csv;
  }
  auto from_file = ReadAzureTraceFile(path, {.spread = Spread::kPoisson});
  ASSERT_TRUE(from_file.ok()) << from_file.status().ToString();
  EXPECT_EQ(*from_file, expected);
  std::remove(path.c_str());

  auto missing = ReadAzureTraceFile(path, {});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(path), std::string::npos);

  std::ofstream(path, std::ios::binary) << Header() << RowLine({.function = "f"}).substr(0, 20) << "\n";
  auto broken = ReadAzureTraceFile(path, {});
  EXPECT_NE(broken.status().message().find("'" + path + "' line 2"), std::string::npos) << broken.status().message();
  std::remove(path.c_str());
}

TEST(AzureTraceTest, ParsesSpreadNames) {
  EXPECT_EQ(*ParseSpread("uniform"), Spread::kUniform);
  EXPECT_EQ(*ParseSpread("poisson"), Spread::kPoisson);
  EXPECT_FALSE(ParseSpread("random").ok());
  EXPECT_EQ(SpreadName(Spread::kPoisson), "poisson");
}

}  // namespace
}  // namespace thaw::trace
