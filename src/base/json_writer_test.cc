// The one JSON writer: escaping, numbers, commas and the config layout.
#include "base/json_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

namespace thaw {
namespace {

TEST(AppendJsonString, Utf8) {
  std::string out = "x";
  AppendJsonString(&out, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");  // é € 😀 pass through
  EXPECT_EQ(out, "x\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  out.clear();
  // Malformed: stray continuation, truncated sequence, overlong, surrogate, 0xff.
  AppendJsonString(&out, std::string_view("\x80|\xc3|\xc0\xaf|\xed\xa0\x80|\xff", 12));
  EXPECT_EQ(out, R"("\u0080|\u00c3|\u00c0\u00af|\u00ed\u00a0\u0080|\u00ff")");
  out.clear();
  AppendJsonString(&out, std::string_view("a\0b\x7f", 4));
  EXPECT_EQ(out, "\"a\\u0000b\x7f\"");
}

TEST(JsonString, EscapesQuotesBackslashesAndControls) {
  EXPECT_EQ(JsonString("a\"b\\c\nd\x01"), R"("a\"b\\c\nd\u0001")");
  EXPECT_EQ(JsonString(""), R"("")");
  EXPECT_EQ(JsonString(std::string("x\ny\x01", 4)), R"("x\ny\u0001")");
}

TEST(JsonWriter, PlacesCommasAndEscapesKeysAndValues) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("name", "fr\"aud").Field("ready", true).Field("n", 3).Key("sizes").BeginArray();
  for (int s : {1, 2, 4}) w.Int(s);
  w.EndArray().Key("nested").BeginObject().EndObject().Key("none").Null().Key("raw").Raw("[1]").EndObject();
  EXPECT_EQ(out, R"({"name":"fr\"aud","ready":true,"n":3,"sizes":[1,2,4],"nested":{},"none":null,"raw":[1]})");
}

TEST(JsonWriter, NumbersAreExact) {
  std::string out;
  JsonWriter w(&out);
  w.BeginArray().Double(0.1).Double(1e-7).Double(-0.0).Double(std::numeric_limits<double>::quiet_NaN());
  w.Double(1e19).Int(-5).Uint(18446744073709551615ull).Double(2.5).EndArray();
  EXPECT_EQ(out, "[0.1,1e-07,-0.0,null,1e+19,-5,18446744073709551615,2.5]");
}

TEST(JsonWriter, IndentsTheTopLevelForFilesPeopleRead) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("a", 1).Key("b").BeginArray().Int(1).Int(2).EndArray().EndObject();
  EXPECT_EQ(out, "{\n  \"a\": 1,\n  \"b\": [1,2]\n}\n");
}

}  // namespace
}  // namespace thaw
