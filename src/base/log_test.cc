#include "base/log.h"

#include <gtest/gtest.h>

#include "base/clock.h"

namespace thaw {
namespace {

TEST(LogValueTest, PlainWordsStayBare) { EXPECT_EQ(LogValue("fashion"), "fashion"); }

TEST(LogValueTest, SpacesQuotesAndEmptyAreQuoted) {
  EXPECT_EQ(LogValue("no such file"), "\"no such file\"");
  EXPECT_EQ(LogValue("a=b"), "\"a=b\"");
  EXPECT_EQ(LogValue(""), "\"\"");
  EXPECT_EQ(LogValue(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
}

TEST(LogValueTest, NewlinesKeepTheEventOnOneLine) {
  std::string value = LogValue("first line\nsecond\r\nthird");
  EXPECT_EQ(value.find('\n'), std::string::npos);
  EXPECT_EQ(value, "\"first line | second | third\"");
}

TEST(MillisTextTest, ThreeDecimals) {
  EXPECT_EQ(MillisText(0), "0.000");
  EXPECT_EQ(MillisText(12345), "12.345");
  EXPECT_EQ(MillisText(1), "0.001");
  EXPECT_EQ(MillisText(1000), "1.000");
  EXPECT_EQ(MillisText(9876543210), "9876543.210");
  EXPECT_EQ(MillisText(-1500), "-1.500");
}

}  // namespace
}  // namespace thaw
