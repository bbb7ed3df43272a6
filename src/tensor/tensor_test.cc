#include "tensor/tensor.h"

#include <gtest/gtest.h>

#include <cstring>

namespace thaw {
namespace {

TEST(DataTypeTest, NamesRoundTrip) {
  for (auto name : {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                    "FP64", "BYTES"}) {
    auto type = ParseDataType(name);
    ASSERT_TRUE(type.has_value()) << name;
    EXPECT_EQ(DataTypeName(*type), name);
  }
  EXPECT_FALSE(ParseDataType("FP33").has_value());
  EXPECT_FALSE(ParseDataType("fp32").has_value());
}

TEST(DataTypeTest, Sizes) {
  EXPECT_EQ(DataTypeSize(DataType::kBool), 1u);
  EXPECT_EQ(DataTypeSize(DataType::kFp16), 2u);
  EXPECT_EQ(DataTypeSize(DataType::kInt32), 4u);
  EXPECT_EQ(DataTypeSize(DataType::kFp64), 8u);
  EXPECT_EQ(DataTypeSize(DataType::kBytes), 0u);
}

TEST(ShapeTest, ElementCount) {
  EXPECT_EQ(ElementCount({}), 1);
  EXPECT_EQ(ElementCount({2, 3, 4}), 24);
  EXPECT_EQ(ElementCount({2, 0}), 0);
  EXPECT_EQ(ElementCount({-1, 3}), -1);
  EXPECT_EQ(ElementCount({int64_t{1} << 40, int64_t{1} << 40}), -1);
  EXPECT_EQ(ShapeToString({1, 3, 224, 224}), "[1,3,224,224]");
}

TEST(ShapeTest, Matches) {
  EXPECT_TRUE(ShapeMatches({-1, 30}, Shape{2, 30}));
  EXPECT_TRUE(ShapeMatches({-1, 30}, Shape{0, 30}));
  EXPECT_TRUE(ShapeMatches({}, Shape{}));
  EXPECT_FALSE(ShapeMatches({-1, 30}, Shape{2, 29}));
  EXPECT_FALSE(ShapeMatches({-1, 30}, Shape{60}));
  EXPECT_FALSE(ShapeMatches({-1, 30}, Shape{-1, 30}));  // an actual shape has no unknown dims
  EXPECT_FALSE(ShapeMatches({-1}, Shape{2, 1}));
}

TEST(BytesElementsTest, ReadsWhatAppendBytesElementWroteAndStopsAtATruncatedOne) {
  std::string data;
  for (std::string_view e : {"hi", "", "\xc3\xa9t\xc3\xa9"}) AppendBytesElement(&data, e);
  EXPECT_EQ(BytesElements(data), (std::vector<std::string_view>{"hi", "", "\xc3\xa9t\xc3\xa9"}));
  data.pop_back();  // the last element is now one byte short
  EXPECT_EQ(BytesElements(data), (std::vector<std::string_view>{"hi", ""}));
  EXPECT_TRUE(BytesElements("").empty());
}

TEST(CheckTensorDataTest, FixedSizeTypes) {
  Tensor t{"x", DataType::kFp32, {2, 3}, std::string(24, '\0')};
  EXPECT_TRUE(CheckTensorData(t).ok());
  t.data.resize(20);
  Status s = CheckTensorData(t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("'x'"), std::string::npos);
}

TEST(CheckTensorDataTest, ByteCountOverflowIsRefused) {
  // 2^61 FP64 elements need 2^64 bytes: a wrapped product would say 0 and pass.
  Tensor t{"x", DataType::kFp64, {int64_t{1} << 61}, ""};
  Status s = CheckTensorData(t);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("too many bytes"), std::string::npos) << s.message();
  // A BYTES length prefix past the end is an error, not a read past it.
  Tensor b{"s", DataType::kBytes, {int64_t{1} << 40}, std::string("\xff\xff\xff\x7f", 4) + "ab"};
  EXPECT_EQ(CheckTensorData(b).code(), StatusCode::kInvalidArgument);
}

std::string BytesElement(std::string_view s) {
  uint32_t len = s.size();
  std::string out(4, '\0');
  std::memcpy(out.data(), &len, 4);
  out += s;
  return out;
}

TEST(CheckTensorDataTest, BytesElements) {
  Tensor t{"s", DataType::kBytes, {2}, BytesElement("ab") + BytesElement("")};
  EXPECT_TRUE(CheckTensorData(t).ok());
  t.data += "x";
  EXPECT_FALSE(CheckTensorData(t).ok());
  t.data = BytesElement("abc").substr(0, 5);
  EXPECT_FALSE(CheckTensorData(t).ok());
}

}  // namespace
}  // namespace thaw
