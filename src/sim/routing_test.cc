#include "sim/routing.h"

#include <gtest/gtest.h>

namespace thaw::sim {
namespace {

using Routes = std::vector<FunctionRoute>;

TEST(RoutingTest, SameNameThenExplicitThenCatchAll) {
  auto routes = RouteFunctions({"fraud", "hash1", "hash2", "fashion"}, {"fraud", "fashion"},
                               Routes{{"hash1", "fashion"}, {"*", "fraud"}});
  ASSERT_TRUE(routes.ok()) << routes.status().ToString();
  EXPECT_EQ(*routes, (std::vector<uint32_t>{0, 1, 0, 1}));
  // An explicit route wins over the same name.
  auto swapped = RouteFunctions({"fraud"}, {"fraud", "fashion"}, Routes{{"fraud", "fashion"}});
  ASSERT_TRUE(swapped.ok());
  EXPECT_EQ(*swapped, (std::vector<uint32_t>{1}));
}

TEST(RoutingTest, OneModelTakesEveryFunction) {
  auto routes = RouteFunctions({"a", "b", "c"}, {"fraud"}, {});
  ASSERT_TRUE(routes.ok());
  EXPECT_EQ(*routes, (std::vector<uint32_t>{0, 0, 0}));
}

TEST(RoutingTest, ErrorsNameTheCulprit) {
  auto unplaced = RouteFunctions({"fraud", "hash9"}, {"fraud", "fashion"}, {});
  ASSERT_FALSE(unplaced.ok());
  EXPECT_NE(unplaced.status().message().find("'hash9'"), std::string::npos);
  auto no_model = RouteFunctions({"a"}, {"fraud"}, Routes{{"a", "textenc"}});
  EXPECT_NE(no_model.status().message().find("'textenc'"), std::string::npos);
  auto no_function = RouteFunctions({"a"}, {"fraud"}, Routes{{"typo", "fraud"}});
  EXPECT_NE(no_function.status().message().find("'typo'"), std::string::npos);
  EXPECT_FALSE(RouteFunctions({"a"}, {"fraud"}, Routes{{"a", "fraud"}, {"a", "fraud"}}).ok());
  EXPECT_FALSE(RouteFunctions({"a"}, {"fraud"}, Routes{{"*", "fraud"}, {"*", "fraud"}}).ok());
}

TEST(RoutingTest, ParsesFunctionEqualsModel) {
  auto route = ParseFunctionRoute("a=b=fraud");  // function names may hold '='; model names may not
  ASSERT_TRUE(route.ok());
  EXPECT_EQ(route->function, "a=b");
  EXPECT_EQ(route->model, "fraud");
  EXPECT_FALSE(ParseFunctionRoute("fraud").ok());
  EXPECT_FALSE(ParseFunctionRoute("=fraud").ok());
  EXPECT_FALSE(ParseFunctionRoute("a=").ok());
}

}  // namespace
}  // namespace thaw::sim
