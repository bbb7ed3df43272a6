// Which variant of a model to serve: given each variant's test accuracy and
// the cheapest settings the planner found for it (planner.h), the cheapest
// variant whose accuracy meets a floor and whose plan meets the p99 target.
// The floor is absolute ("0.9": test accuracy >= 0.9) or relative to the
// base model ("base-1pt": at most 1 point below the base's accuracy).
// Guarantees: the base is chosen when it is the cheapest qualifying one or
// no variant qualifies; ties keep the earlier option (the base first).
// Errors: ParseAccuracyFloor names the malformed text. Thread safety: pure.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"

namespace thaw::sim {

struct AccuracyFloor {
  enum class Kind { kAbsolute, kPointsBelowBase };
  Kind kind = Kind::kAbsolute;
  double value = 0;  // kAbsolute: accuracy in [0, 1]; kPointsBelowBase: points >= 0

  // The least accuracy allowed, for a base model of `base_accuracy`.
  double MinimumFor(double base_accuracy) const;
  std::string ToString() const;  // as parsed: "0.9" or "base-1pt"
};

StatusOr<AccuracyFloor> ParseAccuracyFloor(const std::string& text);

struct VariantOption {
  std::string model;
  double test_accuracy = 0;
  bool planned = false;      // the planner found settings meeting the p99 target
  double objective = 0;      // their cost (PlanResult's best candidate), when planned
};

enum class VariantVerdict { kChosen, kBelowFloor, kMissesTarget, kCostlier };
const char* VariantVerdictName(VariantVerdict verdict);

struct VariantChoice {
  std::optional<size_t> chosen;          // index into the options; none qualifies: nullopt
  std::vector<VariantVerdict> verdicts;  // one per option
};

// options[0] is the base model; its accuracy anchors a relative floor.
VariantChoice ChooseVariant(const std::vector<VariantOption>& options, const AccuracyFloor& floor);

}  // namespace thaw::sim
