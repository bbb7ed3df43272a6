// JsonWriter: the one way thaw writes JSON text (v2 responses, stats,
// reports, configs, profiles, the usage log). Commas and colons are placed
// for the caller; every string goes through one escaper; numbers are exact.
//
//   std::string out;
//   JsonWriter w(&out);
//   w.BeginObject().Field("name", model).Field("ready", true).Key("sizes").BeginArray();
//   for (int s : sizes) w.Int(s);
//   w.EndArray().EndObject();
//
// Guarantees: the text is valid JSON if Begin/End calls pair up and each
// object member has a Key. Strings: '"', '\' and control characters are
// escaped, well-formed UTF-8 is kept, other bytes >= 0x80 are written as
// \u00XX. Doubles: shortest round-trip text (to_chars); NaN and infinities
// as null; -0 as -0.0; integral values too large for 64 bits with ".0".
// Thread safety: a writer is used by one thread; AppendJsonString is pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace thaw {

// Appends `s` as a quoted, escaped JSON string.
void AppendJsonString(std::string* out, std::string_view s);
// `s` as a quoted, escaped JSON string.
std::string JsonString(std::string_view s);
// Appends `v` as a JSON number (see above); float keeps float's shortest text.
void AppendJsonNumber(std::string* out, double v);
void AppendJsonNumber(std::string* out, float v);

class JsonWriter {
 public:
  struct Options {
    // Members of the outermost object one per line, indented two spaces
    // (config files people read); nested values stay on their line.
    bool indent_top_level = false;
  };
  explicit JsonWriter(std::string* out) : JsonWriter(out, Options()) {}
  JsonWriter(std::string* out, Options options) : out_(out), options_(options) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Text that is already JSON (an encoded sub-document).
  JsonWriter& Raw(std::string_view json);
  // For a value the caller appends itself (a large array written straight
  // into the buffer): places the comma, then the caller appends exactly one
  // JSON value to the returned string.
  std::string* RawValue();

  // Key(key) and the value.
  JsonWriter& Field(std::string_view key, std::string_view value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, const std::string& value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, const char* value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, bool value) { return Key(key).Bool(value); }
  JsonWriter& Field(std::string_view key, int value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, long value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, long long value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, unsigned value) { return Key(key).Uint(value); }
  JsonWriter& Field(std::string_view key, unsigned long value) { return Key(key).Uint(value); }
  JsonWriter& Field(std::string_view key, unsigned long long value) { return Key(key).Uint(value); }
  JsonWriter& Field(std::string_view key, double value) { return Key(key).Double(value); }

 private:
  // Before a value: a comma unless it is the first in its container (or
  // follows its key).
  void BeforeValue();

  std::string* out_;
  Options options_;
  std::vector<bool> first_;  // per open container: no member written yet
  bool after_key_ = false;
};

}  // namespace thaw
