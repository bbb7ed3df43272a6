#include "sim/variant_choice.h"

#include <cmath>
#include <cstdlib>

namespace thaw::sim {

double AccuracyFloor::MinimumFor(double base_accuracy) const {
  return kind == Kind::kAbsolute ? value : base_accuracy - value / 100;
}

std::string AccuracyFloor::ToString() const {
  char text[64];
  if (kind == Kind::kAbsolute) std::snprintf(text, sizeof text, "%g", value);
  else std::snprintf(text, sizeof text, "base-%gpt", value);
  return text;
}

StatusOr<AccuracyFloor> ParseAccuracyFloor(const std::string& text) {
  const std::string why = "--accuracy-floor '" + text +
                          "': give an accuracy in [0, 1] (0.9) or the points a variant may lose against the base "
                          "(base-1pt)";
  AccuracyFloor floor;
  std::string number = text;
  if (text.starts_with("base-") && text.ends_with("pt")) {
    floor.kind = AccuracyFloor::Kind::kPointsBelowBase;
    number = text.substr(5, text.size() - 7);
  }
  char* end = nullptr;
  floor.value = std::strtod(number.c_str(), &end);
  if (number.empty() || end != number.c_str() + number.size() || !std::isfinite(floor.value) || floor.value < 0)
    return InvalidArgument(why);
  if (floor.kind == AccuracyFloor::Kind::kAbsolute && floor.value > 1) return InvalidArgument(why);
  if (floor.kind == AccuracyFloor::Kind::kPointsBelowBase && floor.value > 100) return InvalidArgument(why);
  return floor;
}

const char* VariantVerdictName(VariantVerdict verdict) {
  switch (verdict) {
    case VariantVerdict::kChosen: return "chosen";
    case VariantVerdict::kBelowFloor: return "below the accuracy floor";
    case VariantVerdict::kMissesTarget: return "no setting meets the p99 target";
    case VariantVerdict::kCostlier: return "costlier";
  }
  return "?";
}

VariantChoice ChooseVariant(const std::vector<VariantOption>& options, const AccuracyFloor& floor) {
  VariantChoice choice;
  if (options.empty()) return choice;
  // Accuracies are measured to 4 decimals: compare with a tolerance below that.
  const double minimum = floor.MinimumFor(options[0].test_accuracy) - 1e-9;
  for (size_t i = 0; i < options.size(); ++i) {
    const VariantOption& o = options[i];
    if (o.test_accuracy < minimum) {
      choice.verdicts.push_back(VariantVerdict::kBelowFloor);
    } else if (!o.planned) {
      choice.verdicts.push_back(VariantVerdict::kMissesTarget);
    } else {
      choice.verdicts.push_back(VariantVerdict::kCostlier);
      if (!choice.chosen || o.objective < options[*choice.chosen].objective) choice.chosen = i;
    }
  }
  if (choice.chosen) choice.verdicts[*choice.chosen] = VariantVerdict::kChosen;
  return choice;
}

}  // namespace thaw::sim
