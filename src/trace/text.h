// Internal to the trace readers: line-by-line input from a string or a
// stream, field splitting and strict number parsing, and the seeded random
// draws the readers and generators share. Not part of the public API.
//
// Guarantees: LineReader strips a trailing "\r" (CRLF files) and a UTF-8
// byte order mark before the first line; line numbers count from 1. The
// random draws use only mt19937_64's raw output, which the standard fixes
// (std::*_distribution algorithms are implementation-defined), so a seed
// gives the same values with any standard library.
// Ownership: a LineReader borrows the text or stream, which must outlive it;
// a returned line is valid until the next call to Next.
// Thread safety: LineReader is not thread-safe; the functions are pure.
#pragma once

#include <charconv>
#include <cmath>
#include <cstdint>
#include <istream>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace thaw::trace::internal {

class LineReader {
 public:
  explicit LineReader(std::string_view text) : text_(text) {}
  explicit LineReader(std::istream& in) : in_(&in) {}

  // The next line without its line ending; false at the end of the input.
  bool Next(std::string_view& line) {
    if (in_ != nullptr) {
      if (!std::getline(*in_, buffer_)) return false;
      line = buffer_;
    } else {
      if (pos_ >= text_.size()) return false;
      const size_t end = text_.find('\n', pos_);
      const size_t stop = end == std::string_view::npos ? text_.size() : end;
      line = text_.substr(pos_, stop - pos_);
      pos_ = end == std::string_view::npos ? text_.size() : end + 1;
    }
    ++line_number_;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line_number_ == 1 && line.starts_with("\xEF\xBB\xBF")) line.remove_prefix(3);
    return true;
  }

  int64_t line_number() const { return line_number_; }
  // A stream read error (not end of input) happened.
  bool failed() const { return in_ != nullptr && in_->bad(); }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  std::istream* in_ = nullptr;
  std::string buffer_;
  int64_t line_number_ = 0;
};

// Splits "a,b,c" one field at a time, without allocating.
class FieldSplitter {
 public:
  explicit FieldSplitter(std::string_view line) : rest_(line) {}
  // The next field; false after the last one. "a," has two fields.
  bool Next(std::string_view& field) {
    if (done_) return false;
    const size_t comma = rest_.find(',');
    if (comma == std::string_view::npos) {
      field = rest_;
      done_ = true;
    } else {
      field = rest_.substr(0, comma);
      rest_.remove_prefix(comma + 1);
    }
    return true;
  }

 private:
  std::string_view rest_;
  bool done_ = false;
};

inline std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The whole field as a non-negative decimal integer (no sign, no blanks).
inline std::optional<uint64_t> ParseCount(std::string_view s) {
  uint64_t value = 0;
  if (s.empty()) return std::nullopt;
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (err != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return value;
}

// The whole field as a finite decimal number ("1", "0.25", "1e3").
inline std::optional<double> ParseFinite(std::string_view s) {
  double value = 0;
  if (s.empty()) return std::nullopt;
  auto [end, err] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (err != std::errc() || end != s.data() + s.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

// For messages: the field as written, cut short if long.
inline std::string Quoted(std::string_view s) {
  constexpr size_t kMax = 40;
  return "'" + std::string(s.substr(0, kMax)) + (s.size() > kMax ? "...'" : "'");
}

// SplitMix64's finaliser: turns related seeds (seed, seed + 1, a name's hash)
// into unrelated engine seeds.
inline uint64_t MixSeed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a: a name's hash that, unlike std::hash, is the same everywhere.
inline uint64_t NameHash(std::string_view name) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

// Uniform in [0, 1): 53 random bits.
inline double Uniform01(std::mt19937_64& engine) { return static_cast<double>(engine() >> 11) * 0x1.0p-53; }

// An exponential gap with the given mean, by inversion (as load/arrivals.cc):
// u in (0, 1], never 0, so log(u) is finite.
inline double ExponentialGap(std::mt19937_64& engine, double mean) {
  const double u = (static_cast<double>(engine() >> 11) + 1.0) * 0x1.0p-53;
  return -std::log(u) * mean;
}

}  // namespace thaw::trace::internal
