#include "tensor/batch.h"

#include <gtest/gtest.h>

#include <cstring>

namespace thaw {
namespace {

template <typename T>
Tensor Numeric(const std::string& name, DataType type, Shape shape, const std::vector<T>& values) {
  Tensor t{name, type, std::move(shape), std::string(values.size() * sizeof(T), '\0')};
  std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

Tensor Bytes(const std::string& name, Shape shape, const std::vector<std::string>& elements) {
  Tensor t{name, DataType::kBytes, std::move(shape), ""};
  for (const auto& e : elements) {
    uint32_t len = static_cast<uint32_t>(e.size());
    t.data.append(reinterpret_cast<const char*>(&len), 4);
    t.data += e;
  }
  return t;
}

void ExpectSameTensors(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_EQ(a[i].datatype, b[i].datatype);
    EXPECT_EQ(a[i].shape, b[i].shape);
    EXPECT_EQ(a[i].data, b[i].data) << a[i].name;
  }
}

void ExpectRoundTrip(const std::vector<std::vector<Tensor>>& requests) {
  auto batch = ConcatBatch(requests);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  std::vector<int64_t> rows;
  for (const auto& r : requests) {
    auto n = BatchRows(r);
    ASSERT_TRUE(n.ok());
    rows.push_back(*n);
  }
  auto split = SplitBatch(*batch, rows);
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  ASSERT_EQ(split->size(), requests.size());
  for (size_t r = 0; r < requests.size(); ++r) ExpectSameTensors((*split)[r], requests[r]);
}

TEST(BatchTest, ConcatAppendsRowsFp32) {
  auto a = Numeric<float>("x", DataType::kFp32, {1, 2}, {1, 2});
  auto b = Numeric<float>("x", DataType::kFp32, {2, 2}, {3, 4, 5, 6});
  auto batch = ConcatBatch({{a}, {b}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ(batch->size(), 1u);
  EXPECT_EQ((*batch)[0].shape, (Shape{3, 2}));
  std::vector<float> got(6);
  std::memcpy(got.data(), (*batch)[0].data.data(), 24);
  EXPECT_EQ(got, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(CheckTensorData((*batch)[0]).ok());
}

TEST(BatchTest, RoundTripFp32MixedRows) {
  ExpectRoundTrip({
      {Numeric<float>("img", DataType::kFp32, {1, 2, 2}, {1, 2, 3, 4})},
      {Numeric<float>("img", DataType::kFp32, {3, 2, 2}, {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})},
      {Numeric<float>("img", DataType::kFp32, {2, 2, 2}, {17, 18, 19, 20, 21, 22, 23, 24})},
  });
}

TEST(BatchTest, RoundTripInt64SeveralInputs) {
  ExpectRoundTrip({
      {Numeric<int64_t>("ids", DataType::kInt64, {2, 3}, {1, 2, 3, 4, 5, 6}),
       Numeric<int64_t>("mask", DataType::kInt64, {2, 3}, {1, 1, 0, 1, 0, 0})},
      {Numeric<int64_t>("ids", DataType::kInt64, {1, 3}, {7, 8, 9}),
       Numeric<int64_t>("mask", DataType::kInt64, {1, 3}, {1, 1, 1})},
  });
}

TEST(BatchTest, RoundTripBytes) {
  std::vector<std::vector<Tensor>> requests = {
      {Bytes("text", {2, 2}, {"a", "", "hello", "bb"})},
      {Bytes("text", {1, 2}, {"x", "yz"})},
      {Bytes("text", {3, 2}, {"", "", "long element", "q", "r", "s"})},
  };
  auto batch = ConcatBatch(requests);
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ((*batch)[0].shape, (Shape{6, 2}));
  EXPECT_TRUE(CheckTensorData((*batch)[0]).ok());
  ExpectRoundTrip(requests);
}

TEST(BatchTest, SplitAllowsZeroRowRequests) {
  auto out = Numeric<int32_t>("y", DataType::kInt32, {3}, {1, 2, 3});
  auto split = SplitBatch({out}, {2, 0, 1});
  ASSERT_TRUE(split.ok()) << split.status().ToString();
  EXPECT_EQ((*split)[0][0].shape, (Shape{2}));
  EXPECT_EQ((*split)[1][0].shape, (Shape{0}));
  EXPECT_TRUE((*split)[1][0].data.empty());
  EXPECT_EQ((*split)[2][0].shape, (Shape{1}));
}

void ExpectInvalidNaming(const Status& s, const std::string& needle) {
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(BatchTest, ConcatRejectsMismatches) {
  auto x1 = Numeric<float>("x", DataType::kFp32, {1, 2}, {1, 2});
  auto x3 = Numeric<float>("x", DataType::kFp32, {1, 3}, {1, 2, 3});
  auto xi = Numeric<int32_t>("x", DataType::kInt32, {1, 2}, {1, 2});
  auto y1 = Numeric<float>("y", DataType::kFp32, {1, 2}, {1, 2});
  auto y2rows = Numeric<float>("y", DataType::kFp32, {2, 2}, {1, 2, 3, 4});
  auto scalar = Numeric<float>("s", DataType::kFp32, {}, {1});
  auto bad_data = x1;
  bad_data.data.pop_back();

  ExpectInvalidNaming(ConcatBatch({{x1}, {x3}}).status(), "'x'");        // non-batch dim
  ExpectInvalidNaming(ConcatBatch({{x1}, {xi}}).status(), "'x'");        // datatype
  ExpectInvalidNaming(ConcatBatch({{x1}, {y1}}).status(), "'y'");        // name
  ExpectInvalidNaming(ConcatBatch({{x1, y1}, {x1}}).status(), "tensors");  // count
  ExpectInvalidNaming(ConcatBatch({{x1, y2rows}}).status(), "'y'");      // dim 0 differs within a request
  ExpectInvalidNaming(ConcatBatch({{scalar}}).status(), "'s'");          // no batch dim
  ExpectInvalidNaming(ConcatBatch({{x1}, {bad_data}}).status(), "'x'");  // data does not match shape
  EXPECT_EQ(ConcatBatch({}).status().code(), StatusCode::kInvalidArgument);
}

TEST(BatchTest, SplitRejectsWrongRowSum) {
  auto out = Numeric<float>("out", DataType::kFp32, {3, 1}, {1, 2, 3});
  ExpectInvalidNaming(SplitBatch({out}, {1, 1}).status(), "'out'");
  ExpectInvalidNaming(SplitBatch({out}, {4, -1}).status(), "negative");
}

TEST(BatchTest, ShapeKeyIgnoresOnlyBatchDim) {
  auto a = Numeric<float>("x", DataType::kFp32, {1, 2}, {1, 2});
  auto b = Numeric<float>("x", DataType::kFp32, {2, 2}, {1, 2, 3, 4});
  auto c = Numeric<float>("x", DataType::kFp32, {1, 3}, {1, 2, 3});
  auto d = Numeric<int32_t>("x", DataType::kInt32, {1, 2}, {1, 2});
  auto e = Numeric<float>("z", DataType::kFp32, {1, 2}, {1, 2});
  EXPECT_EQ(ShapeKey({a}), ShapeKey({b}));
  EXPECT_NE(ShapeKey({a}), ShapeKey({c}));
  EXPECT_NE(ShapeKey({a}), ShapeKey({d}));
  EXPECT_NE(ShapeKey({a}), ShapeKey({e}));
  EXPECT_NE(ShapeKey({a}), ShapeKey({a, e}));
  EXPECT_NE(ShapeKey({a, e}), ShapeKey({e, a}));
}

}  // namespace
}  // namespace thaw
