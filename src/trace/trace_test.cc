#include "trace/trace.h"

#include <gtest/gtest.h>

#include <cstdio>

#include "trace/azure_trace.h"
#include "trace/csv_trace.h"
#include "trace/synthetic.h"

namespace thaw::trace {
namespace {

// (time, name) pairs: what survives a CSV round trip (function indices may
// be renumbered, idle functions dropped).
std::vector<std::pair<Micros, std::string>> Named(const Trace& trace) {
  std::vector<std::pair<Micros, std::string>> out;
  for (const Arrival& a : trace.arrivals) out.emplace_back(a.time_us, trace.functions[a.function]);
  return out;
}

Trace RoundTrip(const Trace& trace) {
  auto csv = WriteCsv(trace);
  EXPECT_TRUE(csv.ok()) << csv.status().ToString();
  if (!csv.ok()) return {};
  auto back = ParseCsvTrace(*csv);
  EXPECT_TRUE(back.ok()) << back.status().ToString();
  return back.ok() ? *back : Trace{};
}

TEST(TraceTest, DurationCountsAndLookup) {
  Trace trace{.functions = {"a", "b", "idle"}, .arrivals = {{0, 1}, {5, 0}, {5, 1}, {9, 1}}};
  EXPECT_EQ(trace.Duration(), 9);
  trace.end_us = 20;
  EXPECT_EQ(trace.Duration(), 20);
  EXPECT_EQ(trace.CountPerFunction(), (std::vector<uint64_t>{1, 3, 0}));
  EXPECT_EQ(trace.FunctionIndex("b"), 1);
  EXPECT_EQ(trace.FunctionIndex("nope"), -1);
  EXPECT_EQ(Trace{}.Duration(), 0);
  EXPECT_TRUE(Validate(trace).ok());
}

TEST(TraceTest, ValidateFindsBrokenGuarantees) {
  EXPECT_FALSE(Validate(Trace{.functions = {"a"}, .arrivals = {{5, 0}, {4, 0}}}).ok());  // unsorted
  EXPECT_FALSE(Validate(Trace{.functions = {"a"}, .arrivals = {{-1, 0}}}).ok());
  EXPECT_FALSE(Validate(Trace{.functions = {"a"}, .arrivals = {{1, 1}}}).ok());  // no function 1
  EXPECT_FALSE(Validate(Trace{.functions = {"a", "a"}}).ok());
  EXPECT_FALSE(Validate(Trace{.functions = {""}}).ok());
}

TEST(TraceTest, WriteCsvIsExactMicroseconds) {
  Trace trace{.functions = {"a", "idle", "b"}, .arrivals = {{0, 0}, {1, 2}, {1'500'000, 0}, {3'600'000'000'123, 2}}};
  auto csv = WriteCsv(trace);
  ASSERT_TRUE(csv.ok()) << csv.status().ToString();
  EXPECT_EQ(*csv,
            "timestamp_s,model\n"
            "0.000000,a\n"
            "0.000001,b\n"
            "1.500000,a\n"
            "3600000.000123,b\n");
  Trace back = RoundTrip(trace);
  EXPECT_EQ(back.functions, (std::vector<std::string>{"a", "b"}));  // the idle function is not written
  EXPECT_EQ(Named(back), Named(trace));
}

TEST(TraceTest, WriteCsvRejectsNamesItCannotCarry) {
  for (const std::string name : {"a,b", "a\nb", "\"a\"", " a", "a\t"}) {
    auto csv = WriteCsv(Trace{.functions = {name}, .arrivals = {{0, 0}}});
    EXPECT_EQ(csv.status().code(), StatusCode::kInvalidArgument) << name;
  }
  // An idle function's name is never written.
  EXPECT_TRUE(WriteCsv(Trace{.functions = {"ok", "a,b"}, .arrivals = {{0, 0}}}).ok());
  EXPECT_FALSE(WriteCsv(Trace{.functions = {"a"}, .arrivals = {{0, 3}}}).ok());  // invalid trace
}

TEST(TraceTest, AzureAndSyntheticTracesRoundTripThroughCsv) {
  std::string azure = "HashOwner,HashApp,HashFunction,Trigger";
  for (int m = 1; m <= 1440; ++m) azure += "," + std::to_string(m);
  azure += "\n";
  for (int f = 0; f < 3; ++f) {
    azure += "o,a,fn" + std::to_string(f) + ",timer";
    for (int m = 0; m < 1440; ++m) azure += "," + std::to_string((m * 7 + f * 3) % 11);
    azure += "\n";
  }
  auto poisson = ParseAzureTrace(azure, {.time_scale = 60, .spread = Spread::kPoisson, .seed = 5});
  ASSERT_TRUE(poisson.ok()) << poisson.status().ToString();
  ASSERT_GT(poisson->arrivals.size(), 10'000u);
  EXPECT_EQ(Named(RoundTrip(*poisson)), Named(*poisson));
  auto uniform = ParseAzureTrace(azure, {.num_minutes = 30});
  ASSERT_TRUE(uniform.ok()) << uniform.status().ToString();
  EXPECT_EQ(Named(RoundTrip(*uniform)), Named(*uniform));

  auto bursty = MakeOnOffTrace({.on_rate_per_s = 1000, .off_rate_per_s = 10, .mean_on_s = 0.5, .mean_off_s = 2,
                                .duration_s = 60},
                               {.function = "model-x"});
  ASSERT_TRUE(bursty.ok()) << bursty.status().ToString();
  Trace back = RoundTrip(*bursty);
  EXPECT_EQ(back.functions, bursty->functions);
  EXPECT_EQ(back.arrivals, bursty->arrivals);
}

TEST(TraceTest, WriteCsvFileReplaysThroughTheReader) {
  auto trace = MakePoissonTrace({.rate_per_s = 100, .duration_s = 10}, {.function = "f", .seed = 9});
  ASSERT_TRUE(trace.ok());
  const std::string path = testing::TempDir() + "/trace_test.csv";
  ASSERT_TRUE(WriteCsvFile(*trace, path).ok());
  auto back = ReadCsvTraceFile(path);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->arrivals, trace->arrivals);
  std::remove(path.c_str());
  EXPECT_EQ(WriteCsvFile(*trace, "/nonexistent-dir/x.csv").code(), StatusCode::kUnavailable);
}


TEST(TraceWindowTest, KeepsTheArrivalsInsideShiftedToZero) {
  Trace t;
  t.functions = {"a", "b"};
  t.arrivals = {{10, 0}, {20, 1}, {30, 0}, {40, 1}};
  t.end_us = 50;
  auto w = Window(t, 20, 40);
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->functions, t.functions);
  ASSERT_EQ(w->arrivals.size(), 2u);
  EXPECT_EQ(w->arrivals[0], (Arrival{0, 1}));
  EXPECT_EQ(w->arrivals[1], (Arrival{10, 0}));
  EXPECT_EQ(w->end_us, 20);
  EXPECT_TRUE(Validate(*w).ok());
  EXPECT_FALSE(Window(t, 40, 40).ok());
  EXPECT_FALSE(Window(t, -1, 40).ok());
}

}  // namespace
}  // namespace thaw::trace
