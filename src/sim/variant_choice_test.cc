#include "sim/variant_choice.h"

#include <gtest/gtest.h>

namespace thaw::sim {
namespace {

TEST(AccuracyFloorTest, ParsesAbsoluteAndRelativeFloors) {
  auto absolute = ParseAccuracyFloor("0.9");
  ASSERT_TRUE(absolute.ok());
  EXPECT_EQ(absolute->kind, AccuracyFloor::Kind::kAbsolute);
  EXPECT_DOUBLE_EQ(absolute->MinimumFor(0.95), 0.9);
  auto relative = ParseAccuracyFloor("base-1.5pt");
  ASSERT_TRUE(relative.ok());
  EXPECT_EQ(relative->kind, AccuracyFloor::Kind::kPointsBelowBase);
  EXPECT_DOUBLE_EQ(relative->MinimumFor(0.91), 0.895);
  EXPECT_EQ(relative->ToString(), "base-1.5pt");
  EXPECT_EQ(absolute->ToString(), "0.9");
}

TEST(AccuracyFloorTest, RefusesWhatIsNotAFloor) {
  for (const char* bad : {"", "1.2", "-0.1", "base-pt", "base--1pt", "0.9x", "nan", "base-101pt", "1pt"}) {
    auto floor = ParseAccuracyFloor(bad);
    EXPECT_FALSE(floor.ok()) << bad;
    if (!floor.ok()) {
      EXPECT_NE(floor.status().message().find("base-1pt"), std::string::npos);
    }
  }
}

TEST(ChooseVariantTest, PicksTheCheapestThatMeetsTheFloorAndTheTarget) {
  const std::vector<VariantOption> options = {
      {"fashion", 0.9098, true, 10.0},
      {"fashion-int8", 0.9088, true, 6.0},      // 0.1 pt lost
      {"fashion-tiny", 0.8700, true, 2.0},      // cheapest, 4 pt lost
      {"fashion-slow", 0.9100, false, 0.0},     // no setting meets the target
  };
  VariantChoice within_one = ChooseVariant(options, *ParseAccuracyFloor("base-1pt"));
  ASSERT_TRUE(within_one.chosen.has_value());
  EXPECT_EQ(*within_one.chosen, 1u);
  EXPECT_EQ(within_one.verdicts, (std::vector<VariantVerdict>{VariantVerdict::kCostlier, VariantVerdict::kChosen,
                                                              VariantVerdict::kBelowFloor,
                                                              VariantVerdict::kMissesTarget}));
  // A looser floor lets the cheapest in.
  EXPECT_EQ(*ChooseVariant(options, *ParseAccuracyFloor("0.85")).chosen, 2u);
  // Only the base qualifies: the base stays.
  EXPECT_EQ(*ChooseVariant(options, *ParseAccuracyFloor("0.9095")).chosen, 0u);
  // Nothing qualifies.
  EXPECT_FALSE(ChooseVariant(options, *ParseAccuracyFloor("0.95")).chosen.has_value());
}

TEST(ChooseVariantTest, ATieKeepsTheBaseAndAFloorAtTheBaseAdmitsItself) {
  const std::vector<VariantOption> options = {{"m", 0.8369, true, 5.0}, {"m-int8", 0.8369, true, 5.0}};
  VariantChoice choice = ChooseVariant(options, *ParseAccuracyFloor("base-0pt"));
  ASSERT_TRUE(choice.chosen.has_value());
  EXPECT_EQ(*choice.chosen, 0u);
  EXPECT_EQ(choice.verdicts[1], VariantVerdict::kCostlier);
}

}  // namespace
}  // namespace thaw::sim
