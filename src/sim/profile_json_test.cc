#include "sim/profile_json.h"

#include <gtest/gtest.h>

namespace thaw::sim {
namespace {

constexpr std::string_view kProfile = R"({
  "model": "fraud", "measured": "2026-11-28T21:50:00Z",
  "exec_us_by_rows": {"1": 180, "16": 230, "4": 190},
  "exec_us_by_threads": {"2": {"1": 150, "4": 160}},
  "exec_cv": 0.12,
  "start_us": {"exec": 471500, "template": 1200},
  "memory_kb": {"rss": 72540, "pss": 17171}
})";

TEST(ProfileJsonTest, ParsesSortsAndRoundTrips) {
  auto p = ParseProfile(kProfile, "p.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->model, "fraud");
  ASSERT_EQ(p->profile.exec_us_by_rows.size(), 3u);
  EXPECT_EQ(p->profile.exec_us_by_rows[1], (std::pair<int64_t, Micros>{4, 190}));  // sorted by rows
  EXPECT_EQ(p->profile.start_us.at("template"), 1200);
  EXPECT_DOUBLE_EQ(p->profile.exec_cv, 0.12);
  EXPECT_EQ(p->ForThreads(2).ExecUs(4), 160);
  EXPECT_EQ(p->ForThreads(3).ExecUs(4), 190);  // not measured: the default table
  auto again = ParseProfile(EncodeProfile(*p), "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << EncodeProfile(*p);
  EXPECT_EQ(EncodeProfile(*again), EncodeProfile(*p));
}

TEST(ProfileJsonTest, SpreadRoundTripsAndIsValidated) {
  std::string spread = "[";
  for (int i = 0; i <= 1000; ++i) spread += (i ? ", " : "") + std::to_string(i < 500 ? 0.9 : i < 990 ? 1.0 + i / 1000.0 : 3);
  spread += "]";
  auto p = ParseProfile(R"({"exec_us_by_rows": {"1": 100}, "exec_spread": )" + spread + "}", "p.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ASSERT_EQ(p->profile.exec_spread.size(), 1001u);
  EXPECT_DOUBLE_EQ(p->profile.exec_spread[1000], 3.0);
  auto again = ParseProfile(EncodeProfile(*p), "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->profile.exec_spread, p->profile.exec_spread);
  auto short_spread = ParseProfile(R"({"exec_us_by_rows": {"1": 100}, "exec_spread": [1, 2]})", "p.json");
  EXPECT_NE(short_spread.status().message().find("exec_spread"), std::string::npos);
  auto not_numbers = ParseProfile(R"({"exec_us_by_rows": {"1": 100}, "exec_spread": ["a"]})", "p.json");
  EXPECT_NE(not_numbers.status().message().find("'exec_spread'"), std::string::npos);
}

TEST(ProfileJsonTest, ErrorsNameTheField) {
  auto unknown = ParseProfile(R"({"exec_us_by_rows": {"1": 5}, "speed": 1})", "p.json");
  EXPECT_NE(unknown.status().message().find("'speed'"), std::string::npos);
  auto missing = ParseProfile(R"({"start_us": {}})", "p.json");
  EXPECT_NE(missing.status().message().find("'exec_us_by_rows'"), std::string::npos);
  auto bad = ParseProfile(R"({"exec_us_by_rows": {"one": 5}})", "p.json");
  EXPECT_NE(bad.status().message().find("'exec_us_by_rows'"), std::string::npos);
  EXPECT_FALSE(ParseProfile("{", "p.json").ok());
  auto twice = ParseProfile(R"({"exec_us_by_rows": {"1": 5}, "exec_cv": 0.1, "exec_cv": 0.2})", "p.json");
  EXPECT_NE(twice.status().message().find("'exec_cv': appears twice"), std::string::npos) << twice.status().message();
}

// Found by fuzz/profile_fuzz.cc: names with quotes, and values that only
// survived at full precision, did not come back from EncodeProfile.
TEST(ProfileJsonTest, EncodingKeepsEscapedNamesAndFullPrecision) {
  auto p = ParseProfile(R"({"model": "a\"b\\c\n", "exec_us_by_rows": {"1": 5}, "exec_cv": 0.123456789,
                            "start_us": {"te\"mplate": 7}, "memory_kb": {"r\u0001ss": 1}})",
                        "p.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  auto again = ParseProfile(EncodeProfile(*p), "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << EncodeProfile(*p);
  EXPECT_EQ(again->model, "a\"b\\c\n");
  EXPECT_DOUBLE_EQ(again->profile.exec_cv, 0.123456789);
  EXPECT_EQ(again->profile.start_us.at("te\"mplate"), 7);
  EXPECT_EQ(again->memory_kb.at("r\x01ss"), 1);
  std::string spread = "[0.00004";
  for (int i = 1; i <= 1000; ++i) spread += ", 1";
  auto tiny = ParseProfile(R"({"exec_us_by_rows": {"1": 100}, "exec_spread": )" + spread + "]}", "p.json");
  ASSERT_TRUE(tiny.ok()) << tiny.status().ToString();
  auto tiny_again = ParseProfile(EncodeProfile(*tiny), "again");
  ASSERT_TRUE(tiny_again.ok()) << tiny_again.status().ToString();
  EXPECT_EQ(tiny_again->profile.exec_spread, tiny->profile.exec_spread);
}

TEST(ProfileJsonTest, RepeatedKeysInsideTablesAreErrors) {
  auto rows = ParseProfile(R"({"exec_us_by_rows": {"1": 5, "01": 6}})", "p.json");
  EXPECT_NE(rows.status().message().find("row count 1 appears twice"), std::string::npos) << rows.status().message();
  auto threads = ParseProfile(R"({"exec_us_by_rows": {"1": 5}, "exec_us_by_threads": {"2": {"1": 5}, "02": {"1": 6}}})",
                              "p.json");
  EXPECT_NE(threads.status().message().find("thread count 2 appears twice"), std::string::npos)
      << threads.status().message();
  auto starts = ParseProfile(R"({"exec_us_by_rows": {"1": 5}, "start_us": {"exec": 1, "exec": 2}})", "p.json");
  EXPECT_NE(starts.status().message().find("'exec' appears twice"), std::string::npos) << starts.status().message();
}

}  // namespace
}  // namespace thaw::sim
