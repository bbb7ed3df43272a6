#include "json/object_fields.h"

#include <gtest/gtest.h>

namespace thaw::json {
namespace {

constexpr std::string_view kKnown[] = {"a", "b"};

TEST(ObjectFieldsTest, ParsesAnObjectOrNamesTheSource) {
  simdjson::dom::parser parser;
  auto object = ParseObject(parser, R"({"a": 1, "b": "x"})", "c.json");
  ASSERT_TRUE(object.ok()) << object.status().ToString();
  int64_t a = 0;
  EXPECT_FALSE((*object)["a"].get_int64().get(a));
  EXPECT_EQ(a, 1);
  EXPECT_FALSE(FindKeyProblem(*object, kKnown).has_value());

  auto malformed = ParseObject(parser, "{", "c.json");
  EXPECT_EQ(malformed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(malformed.status().message().find("c.json: malformed JSON"), std::string::npos);
  auto array = ParseObject(parser, "[1]", "c.json");
  EXPECT_EQ(array.status().message(), "c.json: must be a JSON object");
}

TEST(ObjectFieldsTest, FirstUnknownOrRepeatedKeyInDocumentOrder) {
  simdjson::dom::parser parser;
  auto unknown = ParseObject(parser, R"({"a": 1, "c": 2, "a": 3})", "s");
  ASSERT_TRUE(unknown.ok());
  auto problem = FindKeyProblem(*unknown, kKnown);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->key, "c");
  EXPECT_FALSE(problem->repeated);

  auto repeated = ParseObject(parser, R"({"a": 1, "b": 2, "a": 3})", "s");
  ASSERT_TRUE(repeated.ok());
  problem = FindKeyProblem(*repeated, kKnown);
  ASSERT_TRUE(problem.has_value());
  EXPECT_EQ(problem->key, "a");
  EXPECT_TRUE(problem->repeated);
}

}  // namespace
}  // namespace thaw::json
