#include "base/format.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace thaw {

std::string SignificantText(double value, int digits) {
  if (!std::isfinite(value)) return "-";
  if (value == 0) return "0";
  digits = digits < 1 ? 1 : digits;
  const int magnitude = static_cast<int>(std::floor(std::log10(std::fabs(value))));
  int decimals = digits - 1 - magnitude;
  decimals = decimals < 0 ? 0 : decimals > 15 ? 15 : decimals;
  char text[400];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  // Rounding can carry into a new digit (0.09996 -> "0.1000"): one decimal too many then, harmless.
  return text;
}

std::string OffsetText(Micros offset_us) {
  const bool negative = offset_us < 0;
  const unsigned long long us = negative ? 0ULL - static_cast<unsigned long long>(offset_us) : offset_us;
  const unsigned long long ms = us / 1000, s = ms / 1000;
  char text[48];
  std::snprintf(text, sizeof text, "%c%02llu:%02llu:%02llu.%03llu", negative ? '-' : '+', s / 3600, s / 60 % 60, s % 60,
                ms % 1000);
  return text;
}

}  // namespace thaw
