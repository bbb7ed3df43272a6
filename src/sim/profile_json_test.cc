#include "sim/profile_json.h"

#include <gtest/gtest.h>

#include <algorithm>

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

TEST(ProfileJsonTest, IdleGapFactorsRoundTripSortedAndAreValidated) {
  auto p = ParseProfile(R"({"exec_us_by_rows": {"2": 70}, "exec_factor_by_idle_us": {"60000": 3.5, "700": 0.6}})", "p.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const std::vector<std::pair<Micros, double>> sorted = {{700, 0.6}, {60000, 3.5}};
  EXPECT_EQ(p->profile.exec_factor_by_idle_us, sorted);
  EXPECT_DOUBLE_EQ(p->profile.IdleFactor(100), 0.6);    // before the first point: its factor
  EXPECT_DOUBLE_EQ(p->profile.IdleFactor(1'000'000), 3.5);
  auto again = ParseProfile(EncodeProfile(*p), "again");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->profile.exec_factor_by_idle_us, sorted);
  EXPECT_NE(ProfileSummaryText(*p).find("idle gap"), std::string::npos);
  auto bad = ParseProfile(R"({"exec_us_by_rows": {"2": 70}, "exec_factor_by_idle_us": {"x": 1}})", "p.json");
  EXPECT_NE(bad.status().message().find("exec_factor_by_idle_us"), std::string::npos);
  auto zero = ParseProfile(R"({"exec_us_by_rows": {"2": 70}, "exec_factor_by_idle_us": {"10": 0}})", "p.json");
  EXPECT_NE(zero.status().message().find("exec_factor_by_idle_us"), std::string::npos);
}

// What thaw profile prints: a few lines, the spread as quantiles, not its 1,001 points.
TEST(ProfileJsonTest, SummaryIsShortAndShowsTheSpreadsQuantiles) {
  std::string spread = "[";
  for (int i = 0; i <= 1000; ++i) spread += (i ? ", " : "") + std::to_string(i < 990 ? 1.0 : 4.0);
  spread += "]";
  auto p = ParseProfile(R"({"model": "m", "exec_us_by_rows": {"1": 100, "8": 300}, "exec_spread": )" + spread +
                            R"(, "start_us": {"exec": 471500}, "memory_kb": {"cgroup_peak": 2048}})",
                        "p.json");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const std::string text = ProfileSummaryText(*p);
  EXPECT_LE(std::count(text.begin(), text.end(), '\n'), 6) << text;
  EXPECT_NE(text.find("1001 points"), std::string::npos) << text;
  EXPECT_NE(text.find("p50 1.00"), std::string::npos) << text;
  EXPECT_NE(text.find("max 4.00"), std::string::npos) << text;
  // Per batch size: the median and the p99 the spread gives (x 4.00 past its 990th point).
  EXPECT_NE(text.find("\n     1    0.100    0.400\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\n     8    0.300     1.20\n"), std::string::npos) << text;
  EXPECT_NE(text.find("exec 472 ms"), std::string::npos) << text;
  EXPECT_NE(text.find("memory (MB): cgroup_peak 2.00"), std::string::npos) << text;
  EXPECT_EQ(text.find("exec_spread"), std::string::npos) << text;
  EXPECT_EQ(text.find("0.000000"), std::string::npos) << text;
}

ProfileFile ProfileOf(const std::string& model) {
  ProfileFile p;
  p.model = model;
  return p;
}

GivenConfig Given(const std::string& name, bool named) {
  GivenConfig g;
  g.config.name = name;
  g.named = named;
  return g;
}

TEST(PairProfilesTest, NamedConfigsPairByModel) {
  std::vector<GivenConfig> configs{Given("fraud", true), Given("fashion", true)};
  auto pairs = PairProfiles(configs, {ProfileOf("fashion"), ProfileOf("fraud")});
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  EXPECT_EQ(*pairs, (std::vector<size_t>{1, 0}));
}

// A model directory's config with another model's profile is an error naming both.
TEST(PairProfilesTest, NamedConfigWithAnotherModelsProfileIsAnError) {
  std::vector<GivenConfig> configs{Given("fraud", true)};
  auto pairs = PairProfiles(configs, {ProfileOf("fashion")});
  EXPECT_EQ(pairs.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(pairs.status().message().find("'fraud'"), std::string::npos) << pairs.status().message();
  EXPECT_NE(pairs.status().message().find("'fashion'"), std::string::npos) << pairs.status().message();
}

// A config.json outside a model directory ("cfg/config.json") is named by its only profile, not "cfg".
TEST(PairProfilesTest, UnnamedConfigTakesItsProfilesModel) {
  std::vector<GivenConfig> configs{Given("cfg", false)};
  auto pairs = PairProfiles(configs, {ProfileOf("fashion")});
  ASSERT_TRUE(pairs.ok()) << pairs.status().ToString();
  EXPECT_EQ(configs[0].config.name, "fashion");
  std::vector<GivenConfig> two{Given("cfg", false), Given("fraud", true)};
  EXPECT_EQ(PairProfiles(two, {ProfileOf("fashion"), ProfileOf("fraud")}).status().code(), StatusCode::kInvalidArgument);
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

ModelConfig ConfigWithPath(StartPath path, bool standby = true) {
  ModelConfig c;
  c.name = "fraud";
  c.start_path = path;
  c.template_standby = standby;
  return c;
}

TEST(StartTimesTest, AProfileWithoutTheConfigsStartPathIsRefusedNamingPathProfileAndFix) {
  // What `thaw profile --from-usage` gives after a template-path server: template and zygote starts only.
  auto from_usage = ParseProfile(R"({"model": "fraud", "exec_us_by_rows": {"1": 100},
                                     "start_us": {"template": 1200, "zygote": 65000}})", "live.json");
  ASSERT_TRUE(from_usage.ok()) << from_usage.status().ToString();
  const Status exec = CheckStartTimes(*from_usage, ConfigWithPath(StartPath::kExec), "live.json");
  EXPECT_EQ(exec.code(), StatusCode::kInvalidArgument);
  for (const char* part : {"live.json", "'exec'", "model 'fraud'", "template, zygote", "--start-times-from",
                           "thaw profile fraud --paths exec"})
    EXPECT_NE(exec.message().find(part), std::string::npos) << part << " not in: " << exec.message();
  EXPECT_TRUE(CheckStartTimes(*from_usage, ConfigWithPath(StartPath::kZygote), "live.json").ok());
  EXPECT_TRUE(CheckStartTimes(*from_usage, ConfigWithPath(StartPath::kTemplate), "live.json").ok());
  EXPECT_TRUE(CheckStartTimes(*from_usage, ConfigWithPath(StartPath::kTemplate, false), "live.json").ok());

  // A measured template profile has standby and prepared: a standby config has its time, one without does not.
  ProfileFile measured;
  measured.model = "fraud";
  measured.profile.start_us = {{"prepared", 7000}, {"standby", 300}, {"template_start", 90000}};
  EXPECT_TRUE(CheckStartTimes(measured, ConfigWithPath(StartPath::kTemplate), "m.json").ok());
  EXPECT_TRUE(CheckStartTimes(measured, ConfigWithPath(StartPath::kZygote), "m.json").ok());
  EXPECT_FALSE(CheckStartTimes(measured, ConfigWithPath(StartPath::kTemplate, false), "m.json").ok());
  ProfileFile none;
  none.model = "fraud";
  const Status empty = CheckStartTimes(none, ConfigWithPath(StartPath::kZygote), "none.json");
  EXPECT_NE(empty.message().find("prepared or zygote; it has none"), std::string::npos) << empty.message();
}

TEST(StartTimesTest, BorrowingFillsOnlyWhatIsMissing) {
  ProfileFile live;
  live.model = "fraud";
  live.profile.start_us = {{"template", 1500}, {"zygote", 70000}};
  ProfileFile measured;
  measured.model = "fraud";
  measured.profile.start_us = {{"exec", 470000}, {"template", 1200}, {"template_start", 90000}};
  EXPECT_EQ(BorrowStartTimes(&live, measured), (std::vector<std::string>{"exec", "template_start"}));
  EXPECT_EQ(live.profile.start_us, (std::map<std::string, Micros>{
                                       {"exec", 470000}, {"template", 1500}, {"template_start", 90000}, {"zygote", 70000}}));
  EXPECT_TRUE(CheckStartTimes(live, ConfigWithPath(StartPath::kExec), "live.json").ok());
}

}  // namespace
}  // namespace thaw::sim
