#include "base/format.h"

#include <gtest/gtest.h>

#include <cmath>

namespace thaw {
namespace {

TEST(FormatTest, SignificantDigitsNotFixedDecimals) {
  EXPECT_EQ(SignificantText(0.00516369), "0.00516");
  EXPECT_EQ(SignificantText(0.00516369, 2), "0.0052");
  EXPECT_EQ(SignificantText(1.5e-7), "0.000000150");
  EXPECT_EQ(SignificantText(155.734), "156");
  EXPECT_EQ(SignificantText(12345.6), "12346");
  EXPECT_EQ(SignificantText(2.5), "2.50");
  EXPECT_EQ(SignificantText(-0.0123), "-0.0123");
  EXPECT_EQ(SignificantText(0), "0");
  EXPECT_EQ(SignificantText(std::nan("")), "-");
  EXPECT_EQ(SignificantText(1.0 / 0.0), "-");
}

TEST(FormatTest, OffsetsFromTheTraceStart) {
  EXPECT_EQ(OffsetText(0), "+00:00:00.000");
  EXPECT_EQ(OffsetText((12 * 60 + 3) * kMicrosPerSecond + 250'000), "+00:12:03.250");
  EXPECT_EQ(OffsetText(26 * 3600 * kMicrosPerSecond), "+26:00:00.000");
  EXPECT_EQ(OffsetText(-kMicrosPerSecond), "-00:00:01.000");
  EXPECT_EQ(OffsetText(999), "+00:00:00.000");  // below a millisecond
}

}  // namespace
}  // namespace thaw
