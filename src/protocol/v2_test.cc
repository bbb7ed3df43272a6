#include "protocol/v2.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

namespace thaw::v2 {
namespace {

using ::testing::HasSubstr;

template <typename T>
std::string Bytes(std::initializer_list<T> values) {
  std::string s;
  for (T v : values) s.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return s;
}

std::string BytesElements(std::initializer_list<std::string_view> values) {
  std::string s;
  for (std::string_view v : values) {
    const uint32_t len = static_cast<uint32_t>(v.size());
    s.append(reinterpret_cast<const char*>(&len), 4);
    s.append(v);
  }
  return s;
}

InferRequest MustParse(std::string_view body, std::optional<size_t> header_length = std::nullopt) {
  StatusOr<InferRequest> r = ParseInferRequest(body, header_length);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << "\nbody: " << body;
  return r.ok() ? std::move(r).value() : InferRequest{};
}

std::string ParseError(std::string_view body, std::optional<size_t> header_length = std::nullopt) {
  StatusOr<InferRequest> r = ParseInferRequest(body, header_length);
  EXPECT_FALSE(r.ok()) << "body: " << body;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::string OneInput(std::string_view name, std::string_view shape, std::string_view datatype,
                     std::string_view data) {
  return "{\"inputs\":[{\"name\":\"" + std::string(name) + "\",\"shape\":" + std::string(shape) +
         ",\"datatype\":\"" + std::string(datatype) + "\",\"data\":" + std::string(data) + "}]}";
}

// Encodes `t` as a JSON response output and parses that back as a request
// input (an encoded output entry has exactly an input's fields).
Tensor RoundTrip(const Tensor& t) {
  InferRequest req;
  EncodedBody enc = EncodeInferResponse("m", req, {t});
  EXPECT_EQ(enc.content_type, "application/json");
  std::string body = enc.body;
  const size_t at = body.find("\"outputs\":");
  EXPECT_NE(at, std::string::npos);
  body.replace(at, std::strlen("\"outputs\":"), "\"inputs\":");
  InferRequest back = MustParse(body);
  EXPECT_EQ(back.inputs.size(), 1u);
  return back.inputs.empty() ? Tensor{} : back.inputs[0];
}

// ---------------------------------------------------------------------------
// Parsing JSON data

TEST(ParseInferRequest, FlatFp32) {
  InferRequest r = MustParse(OneInput("x", "[2,3]", "FP32", "[1,2.5,-3,4e2,0.1,-0.0]"));
  ASSERT_EQ(r.inputs.size(), 1u);
  const Tensor& t = r.inputs[0];
  EXPECT_EQ(t.name, "x");
  EXPECT_EQ(t.datatype, DataType::kFp32);
  EXPECT_EQ(t.shape, (Shape{2, 3}));
  EXPECT_EQ(t.data, Bytes<float>({1.f, 2.5f, -3.f, 400.f, 0.1f, -0.f}));
  EXPECT_FALSE(r.id.has_value());
  EXPECT_TRUE(r.outputs.empty());
  EXPECT_FALSE(r.binary_data_output);
  EXPECT_FALSE(r.timeout_ms.has_value());
}

TEST(EncodeBinaryInferRequest, ReadsBackAsTheSameRequest) {
  InferRequest request = MustParse(
      R"({"id":"r7","parameters":{"timeout_ms":250,"binary_data_output":true},
          "inputs":[{"name":"x","datatype":"FP32","shape":[2,2],"data":[1,2.5,-3,4]},
                    {"name":"s","datatype":"BYTES","shape":[2],"data":["hi","\u00e9t\u00e9"]}],
          "outputs":[{"name":"y","parameters":{"binary_data":false,"classification":3}},{"name":"z"}]})");
  const EncodedBody encoded = EncodeBinaryInferRequest(request);
  ASSERT_TRUE(encoded.header_length.has_value());
  EXPECT_EQ(encoded.content_type, "application/octet-stream");
  EXPECT_EQ(encoded.body.size(), *encoded.header_length + 16 + (4 + 2) + (4 + 5));
  const InferRequest back = MustParse(encoded.body, encoded.header_length);
  EXPECT_EQ(back.id, request.id);
  EXPECT_EQ(back.timeout_ms, std::optional<int64_t>(250));
  EXPECT_TRUE(back.binary_data_output);
  ASSERT_EQ(back.inputs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back.inputs[i].name, request.inputs[i].name);
    EXPECT_EQ(back.inputs[i].datatype, request.inputs[i].datatype);
    EXPECT_EQ(back.inputs[i].shape, request.inputs[i].shape);
    EXPECT_EQ(back.inputs[i].data, request.inputs[i].data);
  }
  EXPECT_EQ(back.inputs[1].data, BytesElements({"hi", "\xc3\xa9t\xc3\xa9"}));
  ASSERT_EQ(back.outputs.size(), 2u);
  EXPECT_EQ(back.outputs[0].name, "y");
  EXPECT_EQ(back.outputs[0].binary_data, std::optional<bool>(false));
  EXPECT_EQ(back.outputs[0].classification, 3);
  EXPECT_EQ(back.outputs[1].name, "z");
  EXPECT_FALSE(back.outputs[1].binary_data.has_value());
}

TEST(ParseInferRequest, NestedDataFlattensRowMajor) {
  const std::string flat = Bytes<int32_t>({1, 2, 3, 4, 5, 6});
  EXPECT_EQ(MustParse(OneInput("x", "[2,3]", "INT32", "[[1,2,3],[4,5,6]]")).inputs[0].data, flat);
  EXPECT_EQ(MustParse(OneInput("x", "[1,2,3]", "INT32", "[[[1,2,3],[4,5,6]]]")).inputs[0].data, flat);
  EXPECT_EQ(MustParse(OneInput("x", "[3,2]", "INT32", "[[1,2],[3,4],[5,6]]")).inputs[0].data, flat);
  EXPECT_EQ(MustParse(OneInput("x", "[6]", "INT32", "[1,2,3,4,5,6]")).inputs[0].data, flat);
  EXPECT_EQ(MustParse(OneInput("x", "[2,3]", "INT32", "[1,2,3,4,5,6]")).inputs[0].data, flat);  // flat: any rank
}

TEST(ParseInferRequest, NestedDataMustMatchTheShape) {
  // Ragged rows.
  EXPECT_EQ(ParseError(OneInput("x", "[2,2]", "INT32", "[[1,2],[3]]")),
            "input 'x': data[1] has 1 item(s); shape [2,2] needs 2 at dimension 1");
  EXPECT_EQ(ParseError(OneInput("x", "[2,2]", "INT32", "[[1,2],[3,4,5]]")),
            "input 'x': data[1] has 3 item(s); shape [2,2] needs 2 at dimension 1");
  // Right count, wrong structure.
  EXPECT_EQ(ParseError(OneInput("x", "[2,2]", "INT32", "[[1,2,3,4]]")),
            "input 'x': data has 1 item(s); shape [2,2] needs 2 at dimension 0");
  EXPECT_EQ(ParseError(OneInput("x", "[6]", "INT32", "[[[[1]]],[2,[3,4]],5,[6]]")),
            "input 'x': data has 4 item(s); shape [6] needs 6 at dimension 0");
  EXPECT_EQ(ParseError(OneInput("x", "[2]", "INT32", "[[1,2],[3]]")),
            "input 'x': data[0] is nested deeper than shape [2]");
  EXPECT_EQ(ParseError(OneInput("x", "[2,2]", "INT32", "[[1,2],3]")),
            "input 'x': data[1] must be an array (shape [2,2] has 2 dimensions), got an integer");
  EXPECT_EQ(ParseError(OneInput("x", "[1,2,2]", "INT32", "[[[1,2],[3,[4]]]]")),
            "input 'x': data[0][1][1] is nested deeper than shape [1,2,2]");
  EXPECT_EQ(ParseError(OneInput("x", "[]", "INT32", "[[1]]")), "input 'x': data is nested deeper than shape []");
  EXPECT_EQ(ParseError(OneInput("s", "[2,1]", "BYTES", R"([["a"],"b"])")),
            "input 's': data[1] must be an array (shape [2,1] has 2 dimensions), got a string");
}

TEST(ParseInferRequest, RepeatedKeysAreRefusedAtEveryLevel) {
  EXPECT_EQ(ParseError(R"({"inputs":[],"inputs":[]})"), "request: key 'inputs' appears more than once");
  EXPECT_EQ(ParseError(R"({"id":"a","id":"b","inputs":[]})"), "request: key 'id' appears more than once");
  EXPECT_EQ(ParseError(R"({"parameters":{"timeout_ms":1,"timeout_ms":2},"inputs":[]})"),
            "parameters: key 'timeout_ms' appears more than once");
  EXPECT_EQ(ParseError(R"({"inputs":[{"name":"x","shape":[1],"shape":[2],"datatype":"FP32","data":[1]}]})"),
            "inputs[0]: key 'shape' appears more than once");
  EXPECT_EQ(ParseError(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"data":[2]}]})"),
            "inputs[0]: key 'data' appears more than once");
  EXPECT_EQ(ParseError(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","parameters":)"
                       R"({"binary_data_size":4,"binary_data_size":4}}]})"),
            "input 'x': parameters: key 'binary_data_size' appears more than once");
  EXPECT_EQ(ParseError(R"({"outputs":[{"name":"o","name":"p"}],"inputs":[]})"),
            "outputs[0]: key 'name' appears more than once");
  EXPECT_EQ(ParseError(R"({"outputs":[{"name":"o","parameters":{"binary_data":true,"binary_data":false}}],)"
                       R"("inputs":[]})"),
            "output 'o': parameters: key 'binary_data' appears more than once");
  // Many keys (the hashed path): the repeat is still found.
  std::string many = "{";
  for (int i = 0; i < 100; ++i) many += "\"k" + std::to_string(i) + "\":1,";
  many += R"("k50":2,"inputs":[]})";
  EXPECT_EQ(ParseError(many), "request: key 'k50' appears more than once");
  // Unknown keys stay allowed (KServe clients send extra fields).
  MustParse(R"({"extra":1,"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"extra":2}]})");
}

TEST(ParseInferRequest, ScalarAndEmptyTensors) {
  EXPECT_EQ(MustParse(OneInput("x", "[]", "INT64", "[7]")).inputs[0].data, Bytes<int64_t>({7}));
  EXPECT_EQ(MustParse(OneInput("x", "[]", "INT64", "7")).inputs[0].data, Bytes<int64_t>({7}));
  // An empty tensor would run and be billed as nothing: refused.
  EXPECT_EQ(ParseError(OneInput("x", "[0,3]", "FP32", "[]")),
            "input 'x': dimension 0 of 'shape' is 0; every dimension must be at least 1");
  EXPECT_EQ(ParseError(OneInput("x", "[1,0]", "FP32", "[]")),
            "input 'x': dimension 1 of 'shape' is 0; every dimension must be at least 1");
  const std::string json =
      R"({"inputs":[{"name":"x","shape":[0,30],"datatype":"FP32","parameters":{"binary_data_size":0}}]})";
  EXPECT_EQ(ParseError(json, json.size()),
            "input 'x': dimension 0 of 'shape' is 0; every dimension must be at least 1");
}

TEST(ParseInferRequest, EveryDatatype) {
  EXPECT_EQ(MustParse(OneInput("x", "[3]", "BOOL", "[true,false,true]")).inputs[0].data, std::string("\1\0\1", 3));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "UINT8", "[0,255]")).inputs[0].data, Bytes<uint8_t>({0, 255}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "UINT16", "[0,65535]")).inputs[0].data, Bytes<uint16_t>({0, 65535}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "UINT32", "[0,4294967295]")).inputs[0].data,
            Bytes<uint32_t>({0, 4294967295u}));
  EXPECT_EQ(MustParse(OneInput("x", "[3]", "UINT64", "[0,9223372036854775807,18446744073709551615]")).inputs[0].data,
            Bytes<uint64_t>({0, 9223372036854775807ull, 18446744073709551615ull}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "INT8", "[-128,127]")).inputs[0].data, Bytes<int8_t>({-128, 127}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "INT16", "[-32768,32767]")).inputs[0].data,
            Bytes<int16_t>({-32768, 32767}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "INT32", "[-2147483648,2147483647]")).inputs[0].data,
            Bytes<int32_t>({std::numeric_limits<int32_t>::min(), 2147483647}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "INT64", "[-9223372036854775808,9223372036854775807]")).inputs[0].data,
            Bytes<int64_t>({std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()}));
  EXPECT_EQ(MustParse(OneInput("x", "[3]", "FP64", "[0.1,-2,1e300]")).inputs[0].data,
            Bytes<double>({0.1, -2.0, 1e300}));
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "FP32", "[3,18446744073709551615]")).inputs[0].data,
            Bytes<float>({3.f, 18446744073709551615.f}));
  EXPECT_EQ(MustParse(OneInput("x", "[2,1]", "BYTES", "[[\"hi\"],[\"\\u00e9\\n\"]]")).inputs[0].data,
            BytesElements({"hi", "\xc3\xa9\n"}));
  EXPECT_EQ(MustParse(OneInput("x", "[1]", "BYTES", "[\"\"]")).inputs[0].data, BytesElements({""}));
}

TEST(ParseInferRequest, Fp16Bits) {
  const Tensor t =
      MustParse(OneInput("x", "[10]", "FP16",
                         "[1,-2,0.1,65504,65519,5.960464477539063e-8,2.9802322387695312e-8,1e-9,6.103515625e-5,0]"))
          .inputs[0];
  EXPECT_EQ(t.data, Bytes<uint16_t>({0x3c00, 0xc000, 0x2e66, 0x7bff, 0x7bff, 0x0001,
                                     0x0000,  // exactly half the smallest subnormal: ties to even
                                     0x0000, 0x0400, 0x0000}));
}

TEST(ParseInferRequest, FloatRangeLimits) {
  // FLT_MAX's shortest text is slightly above FLT_MAX but rounds to it.
  EXPECT_EQ(MustParse(OneInput("x", "[2]", "FP32", "[3.4028235e38,-3.4028235e38]")).inputs[0].data,
            Bytes<float>({std::numeric_limits<float>::max(), -std::numeric_limits<float>::max()}));
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "FP32", "[1e39]")),
            "input 'x': data element 0: 1e+39 is out of range for FP32");
  EXPECT_EQ(ParseError(OneInput("x", "[2]", "FP16", "[1,70000]")),
            "input 'x': data element 1: 70000 is out of range for FP16");
}

TEST(ParseInferRequest, LargeImageTensor) {
  // [1,224,224,3] FP32, nested per pixel row, values i % 251 / 4.
  std::string data = "[[";
  std::string expect;
  for (int h = 0; h < 224; ++h) {
    data += h ? ",[" : "[";
    for (int w = 0; w < 224; ++w) {
      data += w ? ",[" : "[";
      for (int c = 0; c < 3; ++c) {
        const int i = (h * 224 + w) * 3 + c;
        const float v = static_cast<float>(i % 251) / 4.0f;
        if (c) data += ',';
        data += std::to_string(v);
        expect.append(reinterpret_cast<const char*>(&v), 4);
      }
      data += ']';
    }
    data += ']';
  }
  data += "]]";
  const InferRequest r = MustParse(OneInput("image", "[1,224,224,3]", "FP32", data));
  ASSERT_EQ(r.inputs.size(), 1u);
  EXPECT_EQ(r.inputs[0].data.size(), 224u * 224 * 3 * 4);
  EXPECT_EQ(r.inputs[0].data, expect);
}

TEST(ParseInferRequest, RequestFields) {
  const InferRequest r = MustParse(
      R"({"id":"req-7","parameters":{"binary_data_output":true,"timeout_ms":250,"other":[1]},
          "inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[1],"parameters":{"x":"y"}}],
          "outputs":[{"name":"o1"},{"name":"o2","parameters":{"binary_data":true}},
                     {"name":"o3","parameters":{"binary_data":false,"foo":1}}],
          "unknown_field":{"ignored":true}})");
  EXPECT_EQ(r.id, "req-7");
  EXPECT_TRUE(r.binary_data_output);
  EXPECT_EQ(r.timeout_ms, 250);
  ASSERT_EQ(r.outputs.size(), 3u);
  EXPECT_EQ(r.outputs[0].name, "o1");
  EXPECT_EQ(r.outputs[0].binary_data, std::nullopt);  // not given: binary_data_output decides
  EXPECT_EQ(r.outputs[1].name, "o2");
  EXPECT_EQ(r.outputs[1].binary_data, true);
  EXPECT_EQ(r.outputs[2].name, "o3");
  EXPECT_EQ(r.outputs[2].binary_data, false);
}

// ---------------------------------------------------------------------------
// Parse errors

TEST(ParseInferRequest, MalformedJson) {
  EXPECT_THAT(ParseError("{\"inputs\": ["), HasSubstr("malformed JSON: "));
  EXPECT_THAT(ParseError(""), HasSubstr("malformed JSON: "));
  EXPECT_THAT(ParseError("{\"inputs\":[]} trailing"), HasSubstr("malformed JSON: "));
  EXPECT_EQ(ParseError("[1,2]"), "request body must be a JSON object");
}

TEST(ParseInferRequest, StructuralErrors) {
  EXPECT_EQ(ParseError("{}"), "missing 'inputs'");
  EXPECT_EQ(ParseError(R"({"inputs":[]})"), "'inputs' must be a non-empty array");
  EXPECT_EQ(ParseError(R"({"inputs":{}})"), "'inputs' must be a non-empty array");
  EXPECT_EQ(ParseError(R"({"inputs":[3]})"), "inputs[0] must be an object");
  EXPECT_EQ(ParseError(R"({"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]})"), "inputs[0]: missing 'name'");
  EXPECT_EQ(ParseError(R"({"inputs":[{"name":"x","datatype":"FP32","data":[1]}]})"), "input 'x': missing 'shape'");
  EXPECT_EQ(ParseError(OneInput("x", "[1,-1]", "FP32", "[1]")),
            "input 'x': 'shape' must be an array of positive integers");
  EXPECT_EQ(ParseError(OneInput("x", "[1.5]", "FP32", "[1]")),
            "input 'x': 'shape' must be an array of positive integers");
  EXPECT_EQ(ParseError(R"({"inputs":[{"name":"x","shape":[1],"data":[1]}]})"), "input 'x': missing 'datatype'");
  EXPECT_EQ(ParseError(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]})"),
            "input 'x': missing 'data' (or parameters.binary_data_size)");
  EXPECT_EQ(ParseError(R"({"id":5,"inputs":[]})"), "'id' must be a string");
  EXPECT_EQ(ParseError(R"({"parameters":{"timeout_ms":1.5},"inputs":[]})"),
            "parameters.timeout_ms must be a non-negative integer");
  EXPECT_EQ(ParseError(R"({"parameters":{"binary_data_output":1},"inputs":[]})"),
            "parameters.binary_data_output must be a boolean");
  EXPECT_EQ(ParseError(R"({"outputs":[{"name":"o"},{"name":"o"}],"inputs":[]})"),
            "output 'o' is requested more than once");
  EXPECT_EQ(ParseError(R"({"outputs":[{"name":"o","parameters":{"binary_data":"yes"}}],"inputs":[]})"),
            "output 'o': parameters.binary_data must be a boolean");
}

TEST(ParseInferRequest, WrongElementCount) {
  std::string data = "[";
  for (int i = 0; i < 700; ++i) data += i ? ",0" : "0";
  data += "]";
  EXPECT_EQ(ParseError(OneInput("image", "[1,1,28,28]", "FP32", data)),
            "input 'image': expected 784 elements for shape [1,1,28,28], got 700");
  EXPECT_EQ(ParseError(OneInput("x", "[2]", "BYTES", "[\"a\"]")),
            "input 'x': expected 2 elements for shape [2], got 1");
  // A huge declared shape is rejected without allocating for it.
  EXPECT_EQ(ParseError(OneInput("x", "[100000000000]", "FP64", "[1,2]")),
            "input 'x': expected 100000000000 elements for shape [100000000000], got 2");
  EXPECT_EQ(ParseError(OneInput("x", "[9223372036854775807,2]", "FP64", "[1,2]")),
            "input 'x': shape [9223372036854775807,2] has too many elements");
}

TEST(ParseInferRequest, UnknownDatatype) {
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "FP33", "[1]")), "input 'x': unknown datatype 'FP33'");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "fp32", "[1]")), "input 'x': unknown datatype 'fp32'");
}

TEST(ParseInferRequest, ElementTypeErrors) {
  EXPECT_EQ(ParseError(OneInput("x", "[3]", "INT8", "[1,2,128]")),
            "input 'x': data element 2: 128 is out of range for INT8");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "INT8", "[-129]")),
            "input 'x': data element 0: -129 is out of range for INT8");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "UINT8", "[-1]")),
            "input 'x': data element 0: -1 is out of range for UINT8");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "INT64", "[9223372036854775808]")),
            "input 'x': data element 0: 9223372036854775808 is out of range for INT64");
  EXPECT_EQ(ParseError(OneInput("x", "[2]", "INT64", "[1,1.5]")),
            "input 'x': data element 1: expected an integer for INT64, got 1.5");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "INT64", "[2.0]")),
            "input 'x': data element 0: expected an integer for INT64, got 2");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "INT32", "[\"1\"]")),
            "input 'x': data element 0: expected an integer for INT32, got a string");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "UINT16", "[true]")),
            "input 'x': data element 0: expected an integer for UINT16, got a boolean");
  EXPECT_EQ(ParseError(OneInput("x", "[2,1]", "FP32", "[[1],[null]]")),
            "input 'x': data element 1: expected a number for FP32, got null");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "BOOL", "[1]")),
            "input 'x': data element 0: expected true or false for BOOL, got an integer");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "BYTES", "[1]")),
            "input 'x': data element 0: expected a string for BYTES, got an integer");
  EXPECT_EQ(ParseError(OneInput("x", "[1]", "FP32", "[{}]")),
            "input 'x': data element 0: expected a number for FP32, got an object");
}

// ---------------------------------------------------------------------------
// Binary tensor data extension

TEST(ParseInferRequest, BinaryInputs) {
  const std::string json =
      R"({"inputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},)"
      R"({"name":"b","shape":[1],"datatype":"INT32","data":[9]},)"
      R"({"name":"c","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":11}},)"
      R"({"name":"d","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":8}}]})";
  const std::string a = Bytes<float>({1.5f, -2.f});
  const std::string c = BytesElements({"abc", "\x00\xff"});
  const std::string d = Bytes<double>({0.25});
  ASSERT_EQ(c.size(), 11u);
  const InferRequest r = MustParse(json + a + c + d, json.size());
  ASSERT_EQ(r.inputs.size(), 4u);
  EXPECT_EQ(r.inputs[0].data, a);
  EXPECT_EQ(r.inputs[1].data, Bytes<int32_t>({9}));
  EXPECT_EQ(r.inputs[2].data, c);
  EXPECT_EQ(r.inputs[3].data, d);
}

TEST(ParseInferRequest, HeaderLengthWithoutBinaryData) {
  const std::string json = OneInput("x", "[1]", "FP32", "[1]");
  EXPECT_EQ(MustParse(json, json.size()).inputs[0].data, Bytes<float>({1.f}));
}

TEST(ParseInferRequest, BinaryErrors) {
  const auto bin = [](std::string_view shape, std::string_view type, int size) {
    return "{\"inputs\":[{\"name\":\"x\",\"shape\":" + std::string(shape) + ",\"datatype\":\"" + std::string(type) +
           "\",\"parameters\":{\"binary_data_size\":" + std::to_string(size) + "}}]}";
  };
  std::string json = bin("[2]", "FP32", 4);
  EXPECT_EQ(ParseError(json + "1234", json.size()),
            "input 'x': binary_data_size 4 does not match shape [2] of FP32 (8 bytes)");
  json = bin("[2]", "FP32", 8);
  EXPECT_EQ(ParseError(json + "1234", json.size()),
            "input 'x': binary_data_size 8 exceeds the 4 bytes of binary data remaining");
  EXPECT_EQ(ParseError(json + "123456789", json.size()),
            "1 bytes of binary data left over after the inputs' binary_data_size");
  // Without the header length the binary bytes are part of the JSON text.
  EXPECT_THAT(ParseError(json + "12345678"), HasSubstr("malformed JSON: "));
  EXPECT_EQ(ParseError(json),
            "input 'x': parameters.binary_data_size given but the request has no binary data "
            "(no Inference-Header-Content-Length)");
  EXPECT_EQ(ParseError(json, json.size() + 1),
            "Inference-Header-Content-Length " + std::to_string(json.size() + 1) + " exceeds the body size " +
                std::to_string(json.size()));
  json = bin("[2]", "BYTES", 7);
  EXPECT_THAT(ParseError(json + BytesElements({"abc"}), json.size()),
              HasSubstr("input 'x': invalid BYTES binary data: "));
  json = bin("[2]", "FP32", -8);
  EXPECT_EQ(ParseError(json, json.size()), "input 'x': parameters.binary_data_size must be a non-negative integer");
  json = R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]})";
  EXPECT_EQ(ParseError(json + "1234", json.size()), "input 'x': has both 'data' and parameters.binary_data_size");
  // Sizes that do not fit: huge, past the end, overflowing count x size.
  json = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":"
         "{\"binary_data_size\":18446744073709551615}}]}";
  EXPECT_EQ(ParseError(json + "12345678", json.size()),
            "input 'x': parameters.binary_data_size must be a non-negative integer");
  json = "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"parameters\":"
         "{\"binary_data_size\":9223372036854775807}}]}";
  EXPECT_EQ(ParseError(json + "12345678", json.size()),
            "input 'x': binary_data_size 9223372036854775807 exceeds the 8 bytes of binary data remaining");
  json = bin("[1099511627776,1099511627776]", "FP32", 8);
  EXPECT_EQ(ParseError(json + "12345678", json.size()),
            "input 'x': shape [1099511627776,1099511627776] has too many elements");
  json = bin("[2305843009213693952]", "FP64", 8);  // 2^61 elements: 2^64 bytes wraps to 0
  EXPECT_EQ(ParseError(json + "12345678", json.size()),
            "input 'x': binary_data_size 8 does not match shape [2305843009213693952] of FP64 (too many bytes)");
  json = "{\"inputs\":[" + std::string("{\"name\":\"a\",\"shape\":[1],\"datatype\":\"FP32\",") +
         "\"parameters\":{\"binary_data_size\":4}},{\"name\":\"b\",\"shape\":[1],\"datatype\":\"FP32\"," +
         "\"parameters\":{\"binary_data_size\":4}}]}";
  EXPECT_EQ(ParseError(json + "123456", json.size()),
            "input 'b': binary_data_size 4 exceeds the 2 bytes of binary data remaining");
  // BYTES: a length prefix past the end.
  json = bin("[1]", "BYTES", 6);
  EXPECT_THAT(ParseError(json + std::string("\xff\xff\xff\x7f", 4) + "ab", json.size()),
              HasSubstr("input 'x': invalid BYTES binary data: "));
  json = bin("[2]", "BYTES", 4);
  EXPECT_THAT(ParseError(json + BytesElements({""}), json.size()), HasSubstr("BYTES data is truncated"));
  // Leftover bytes with no binary inputs at all.
  json = OneInput("x", "[1]", "FP32", "[1]");
  EXPECT_EQ(ParseError(json + "zz", json.size()),
            "2 bytes of binary data left over after the inputs' binary_data_size");
}

// ---------------------------------------------------------------------------
// Validation

ModelConfig Fashion() {
  ModelConfig m;
  m.name = "fashion";
  m.inputs = {{"image", DataType::kFp32, {-1, 1, 28, 28}}, {"scale", DataType::kFp32, {1}}};
  m.outputs = {{"logits", DataType::kFp32, {-1, 10}}, {"label", DataType::kInt64, {-1}}};
  return m;
}

InferRequest Request(std::vector<Tensor> inputs) {
  InferRequest r;
  r.inputs = std::move(inputs);
  return r;
}

Tensor Image(Shape shape, DataType type = DataType::kFp32) {
  return Tensor{"image", type, shape, std::string(ElementCount(shape) * DataTypeSize(type), '\0')};
}
Tensor Scale() { return Tensor{"scale", DataType::kFp32, {1}, Bytes<float>({1.f})}; }

TEST(ValidateInferRequest, AcceptsAndSortsIntoConfigOrder) {
  InferRequest r = Request({Scale(), Image({3, 1, 28, 28})});
  r.outputs = {{"label", false}};
  ASSERT_TRUE(ValidateInferRequest(Fashion(), &r).ok());
  ASSERT_EQ(r.inputs.size(), 2u);
  EXPECT_EQ(r.inputs[0].name, "image");
  EXPECT_EQ(r.inputs[0].shape, (Shape{3, 1, 28, 28}));
  EXPECT_EQ(r.inputs[1].name, "scale");
  EXPECT_EQ(r.inputs[1].data, Bytes<float>({1.f}));
}

TEST(ValidateInferRequest, VariableDimAcceptsAnyNonNegativeSize) {
  for (int64_t batch : {0, 1, 64}) {
    InferRequest r = Request({Image({batch, 1, 28, 28}), Scale()});
    EXPECT_TRUE(ValidateInferRequest(Fashion(), &r).ok()) << batch;
  }
}

Status ValidateError(InferRequest r) {
  Status s = ValidateInferRequest(Fashion(), &r);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  return s;
}

TEST(ValidateInferRequest, Errors) {
  EXPECT_EQ(ValidateError(Request({Image({1, 2, 28, 28}), Scale()})).message(),
            "input 'image': shape [1,2,28,28] does not match model shape [-1,1,28,28]");
  EXPECT_EQ(ValidateError(Request({Image({1, 28, 28}), Scale()})).message(),
            "input 'image': shape [1,28,28] does not match model shape [-1,1,28,28]");
  EXPECT_EQ(ValidateError(Request({Image({1, 1, 28, 28}, DataType::kFp64), Scale()})).message(),
            "input 'image': datatype FP64 does not match model datatype FP32");
  EXPECT_EQ(ValidateError(Request({Scale()})).message(), "missing input 'image'");
  Tensor foo = Scale();
  foo.name = "foo";
  EXPECT_EQ(ValidateError(Request({Image({1, 1, 28, 28}), Scale(), foo})).message(),
            "model 'fashion' has no input 'foo'");
  EXPECT_EQ(ValidateError(Request({Image({1, 1, 28, 28}), Scale(), Scale()})).message(),
            "input 'scale' is given more than once");
  InferRequest r = Request({Image({1, 1, 28, 28}), Scale()});
  r.outputs = {{"logits", false}, {"x", true}};
  EXPECT_EQ(ValidateError(r).message(), "model 'fashion' has no output 'x'");
}

// ---------------------------------------------------------------------------
// Encoding responses

std::vector<Tensor> Outputs() {
  return {Tensor{"logits", DataType::kFp32, {1, 3}, Bytes<float>({0.5f, -1.f, 0.1f})},
          Tensor{"label", DataType::kInt64, {1}, Bytes<int64_t>({2})}};
}

TEST(EncodeInferResponse, AllOutputsAsJson) {
  InferRequest req;
  req.id = "abc";
  EncodedBody e = EncodeInferResponse("fashion", req, Outputs());
  EXPECT_EQ(e.content_type, "application/json");
  EXPECT_FALSE(e.header_length.has_value());
  EXPECT_EQ(e.body,
            R"({"model_name":"fashion","model_version":"1","id":"abc","outputs":[)"
            R"({"name":"logits","datatype":"FP32","shape":[1,3],"data":[0.5,-1,0.1]},)"
            R"({"name":"label","datatype":"INT64","shape":[1],"data":[2]}]})");
}

TEST(EncodeInferResponse, IdAbsentAndParameters) {
  InferRequest req;
  EncodedBody e = EncodeInferResponse("m", req, {Tensor{"o", DataType::kBool, {2}, std::string("\1\0", 2)}},
                                      R"({"cold_start":true})");
  EXPECT_EQ(e.body,
            R"({"model_name":"m","model_version":"1","parameters":{"cold_start":true},"outputs":[)"
            R"({"name":"o","datatype":"BOOL","shape":[2],"data":[true,false]}]})");
}

TEST(EncodeInferResponse, OutputSelectionInRequestOrder) {
  InferRequest req;
  req.outputs = {{"label", std::nullopt}};
  EXPECT_EQ(EncodeInferResponse("m", req, Outputs()).body,
            R"({"model_name":"m","model_version":"1","outputs":[)"
            R"({"name":"label","datatype":"INT64","shape":[1],"data":[2]}]})");
  req.outputs = {{"label", std::nullopt}, {"logits", false}};
  EXPECT_EQ(EncodeInferResponse("m", req, Outputs()).body,
            R"({"model_name":"m","model_version":"1","outputs":[)"
            R"({"name":"label","datatype":"INT64","shape":[1],"data":[2]},)"
            R"({"name":"logits","datatype":"FP32","shape":[1,3],"data":[0.5,-1,0.1]}]})");
}

TEST(EncodeInferResponse, BinaryOutputByParameter) {
  InferRequest req;
  req.outputs = {{"logits", true}, {"label", false}};
  EncodedBody e = EncodeInferResponse("m", req, Outputs());
  const std::string json =
      R"({"model_name":"m","model_version":"1","outputs":[)"
      R"({"name":"logits","datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}},)"
      R"({"name":"label","datatype":"INT64","shape":[1],"data":[2]}]})";
  EXPECT_EQ(e.content_type, "application/octet-stream");
  ASSERT_TRUE(e.header_length.has_value());
  EXPECT_EQ(*e.header_length, json.size());
  EXPECT_EQ(e.body, json + Bytes<float>({0.5f, -1.f, 0.1f}));
}

TEST(EncodeInferResponse, BinaryOutputByRequestFlag) {
  InferRequest req;
  req.binary_data_output = true;
  EncodedBody e = EncodeInferResponse("m", req, Outputs());
  const std::string json =
      R"({"model_name":"m","model_version":"1","outputs":[)"
      R"({"name":"logits","datatype":"FP32","shape":[1,3],"parameters":{"binary_data_size":12}},)"
      R"({"name":"label","datatype":"INT64","shape":[1],"parameters":{"binary_data_size":8}}]})";
  EXPECT_EQ(e.content_type, "application/octet-stream");
  EXPECT_EQ(e.header_length, json.size());
  EXPECT_EQ(e.body, json + Bytes<float>({0.5f, -1.f, 0.1f}) + Bytes<int64_t>({2}));

  // The flag also applies to selected outputs that do not say otherwise.
  req.outputs = {{"label", std::nullopt}};
  e = EncodeInferResponse("m", req, Outputs());
  EXPECT_EQ(e.body,
            std::string(R"({"model_name":"m","model_version":"1","outputs":[)"
                        R"({"name":"label","datatype":"INT64","shape":[1],"parameters":{"binary_data_size":8}}]})") +
                Bytes<int64_t>({2}));

  // An output's own binary_data: false overrides the request-wide flag.
  req.outputs = {{"logits", false}, {"label", std::nullopt}};
  e = EncodeInferResponse("m", req, Outputs());
  const std::string mixed =
      R"({"model_name":"m","model_version":"1","outputs":[)"
      R"({"name":"logits","datatype":"FP32","shape":[1,3],"data":[0.5,-1,0.1]},)"
      R"({"name":"label","datatype":"INT64","shape":[1],"parameters":{"binary_data_size":8}}]})";
  EXPECT_EQ(e.header_length, mixed.size());
  EXPECT_EQ(e.body, mixed + Bytes<int64_t>({2}));

  // With every selected output set to JSON the response is plain JSON.
  req.outputs = {{"label", false}};
  e = EncodeInferResponse("m", req, Outputs());
  EXPECT_EQ(e.content_type, "application/json");
  EXPECT_FALSE(e.header_length.has_value());
}

TEST(EncodeInferResponse, BinaryRoundTripThroughParser) {
  // A binary response has the same layout as a binary request.
  InferRequest req;
  req.binary_data_output = true;
  const Tensor t = Tensor{"s", DataType::kBytes, {2}, BytesElements({"x\0y", "\xff"})};
  EncodedBody e = EncodeInferResponse("m", req, {t});
  std::string body = e.body;
  body.replace(body.find("\"outputs\":"), std::strlen("\"outputs\":"), "\"inputs\":");
  const size_t grow = std::strlen("\"inputs\":") - std::strlen("\"outputs\":");
  InferRequest back = MustParse(body, *e.header_length + grow);
  ASSERT_EQ(back.inputs.size(), 1u);
  EXPECT_EQ(back.inputs[0].data, t.data);
}

TEST(EncodeInferResponse, NonFiniteFloatsAreNull) {
  const float inf = std::numeric_limits<float>::infinity();
  const Tensor t = Tensor{"o", DataType::kFp32, {3}, Bytes<float>({std::nanf(""), inf, -inf})};
  EXPECT_THAT(EncodeInferResponse("m", {}, {t}).body, HasSubstr("\"data\":[null,null,null]"));
  const Tensor h = Tensor{"o", DataType::kFp16, {2}, Bytes<uint16_t>({0x7c00, 0x7e00})};
  EXPECT_THAT(EncodeInferResponse("m", {}, {h}).body, HasSubstr("\"data\":[null,null]"));
  // "-0" would read back as the integer 0, so negative zero keeps a fraction.
  const Tensor z = Tensor{"o", DataType::kFp64, {2}, Bytes<double>({-0.0, 0.0})};
  EXPECT_THAT(EncodeInferResponse("m", {}, {z}).body, HasSubstr("\"data\":[-0.0,0]"));
}

TEST(EncodeInferResponse, BytesOutputsAsJsonStrings) {
  const Tensor t = Tensor{"o", DataType::kBytes, {3}, BytesElements({"caf\xc3\xa9", "q\"\\", "\x80\x01"})};
  EXPECT_THAT(EncodeInferResponse("m", {}, {t}).body,
              HasSubstr(R"("data":["café","q\"\\","\u0080\u0001"])"));
}

// ---------------------------------------------------------------------------
// Round trips: every datatype through encode (JSON) and parse.

TEST(RoundTrip, EveryDatatype) {
  const std::vector<Tensor> tensors = {
      Tensor{"b", DataType::kBool, {2}, std::string("\0\1", 2)},
      Tensor{"u8", DataType::kUint8, {2}, Bytes<uint8_t>({0, 255})},
      Tensor{"u16", DataType::kUint16, {2}, Bytes<uint16_t>({1, 65535})},
      Tensor{"u32", DataType::kUint32, {2}, Bytes<uint32_t>({2, 4294967295u})},
      Tensor{"u64", DataType::kUint64, {2}, Bytes<uint64_t>({3, 18446744073709551615ull})},
      Tensor{"i8", DataType::kInt8, {2}, Bytes<int8_t>({-128, 127})},
      Tensor{"i16", DataType::kInt16, {2}, Bytes<int16_t>({-32768, 32767})},
      Tensor{"i32", DataType::kInt32, {2}, Bytes<int32_t>({std::numeric_limits<int32_t>::min(), 7})},
      Tensor{"i64", DataType::kInt64, {2}, Bytes<int64_t>({std::numeric_limits<int64_t>::min(), -1})},
      Tensor{"f32", DataType::kFp32, {2, 4},
                 Bytes<float>({0.1f, -0.f, std::numeric_limits<float>::max(), std::numeric_limits<float>::min(),
                               std::numeric_limits<float>::denorm_min(), 1e-10f, 3.14159274f, -123456.789f})},
      Tensor{"f64", DataType::kFp64, {5},
                 Bytes<double>({0.1, std::numeric_limits<double>::max(), std::numeric_limits<double>::denorm_min(),
                                -1e-300, 2.718281828459045})},
      Tensor{"s", DataType::kBytes, {2, 2}, BytesElements({"", "plain", "tab\there \"q\"", "\xe2\x82\xac\n"})},
  };
  for (const Tensor& t : tensors) {
    const Tensor back = RoundTrip(t);
    EXPECT_EQ(back.name, t.name);
    EXPECT_EQ(back.datatype, t.datatype) << t.name;
    EXPECT_EQ(back.shape, t.shape) << t.name;
    EXPECT_EQ(back.data, t.data) << t.name;
  }
}

TEST(RoundTrip, EveryFiniteFp16Value) {
  std::vector<uint16_t> halves;
  for (uint32_t h = 0; h < 0x10000; ++h)
    if ((h & 0x7c00) != 0x7c00) halves.push_back(static_cast<uint16_t>(h));
  std::string data(reinterpret_cast<const char*>(halves.data()), halves.size() * 2);
  const Tensor t = Tensor{"h", DataType::kFp16, {static_cast<int64_t>(halves.size())}, data};
  EXPECT_EQ(RoundTrip(t).data, data);
}

TEST(RoundTrip, Fp16ShortestText) {
  const Tensor t = Tensor{"h", DataType::kFp16, {5}, Bytes<uint16_t>({0x3c00, 0x2e66, 0x7bff, 0x0001, 0xc000})};
  EXPECT_THAT(EncodeInferResponse("m", {}, {t}).body, HasSubstr("\"data\":[1,0.1,65504,6e-08,-2]"));
}

// ---------------------------------------------------------------------------
// Errors, metadata, strings

TEST(EncodeError, Escapes) {
  EXPECT_EQ(EncodeError("plain"), R"({"error":"plain"})");
  EXPECT_EQ(EncodeError("input 'x': bad \"q\" \\ \n\t\r\b\f \x01\x1f end"),
            R"({"error":"input 'x': bad \"q\" \\ \n\t\r\b\f \u0001\u001f end"})");
}

TEST(EncodeServerMetadata, Fields) {
  EXPECT_EQ(EncodeServerMetadata("thaw", "0.1.0", {"binary_tensor_data", "model_repository"}),
            R"({"name":"thaw","version":"0.1.0","extensions":["binary_tensor_data","model_repository"]})");
  EXPECT_EQ(EncodeServerMetadata("thaw", "0.1.0", {}), R"({"name":"thaw","version":"0.1.0","extensions":[]})");
}

TEST(EncodeModelMetadata, Fields) {
  EXPECT_EQ(EncodeModelMetadata(Fashion()),
            R"({"name":"fashion","versions":["1"],"platform":"pytorch_torchscript",)"
            R"("inputs":[{"name":"image","datatype":"FP32","shape":[-1,1,28,28]},)"
            R"({"name":"scale","datatype":"FP32","shape":[1]}],)"
            R"("outputs":[{"name":"logits","datatype":"FP32","shape":[-1,10]},)"
            R"({"name":"label","datatype":"INT64","shape":[-1]}]})");
}

}  // namespace
}  // namespace thaw::v2

namespace thaw::v2 {
namespace {

// Found by fuzz/infer_request_fuzz: 2^64 as FP64 was written as the integer
// 18446744073709551616, which no 64-bit integer holds and the request parser refused.
TEST(EncodeInferResponse, HugeWholeFloatsReadBack) {
  Tensor t{.name = "d", .datatype = DataType::kFp64, .shape = {4},
           .data = Bytes<double>({18446744073709551616.0, -18446744073709551616.0, 9223372036854775808.0, 1e18})};
  EXPECT_EQ(RoundTrip(t).data, t.data);
  Tensor f{.name = "f", .datatype = DataType::kFp32, .shape = {2}, .data = Bytes<float>({1e19f, -3.4028235e38f})};
  EXPECT_EQ(RoundTrip(f).data, f.data);
}

// ---------------------------------------------------------------------------
// Raw binary requests (Inference-Header-Content-Length: 0)

ModelConfig OneInputModel(DataType type, Shape shape, Batching batching = Batching::kOff) {
  ModelConfig m;
  m.name = "m";
  m.inputs = {{"x", type, std::move(shape)}};
  m.outputs = {{"y", DataType::kFp32, {-1, 2}}};
  m.batching = batching;
  return m;
}

TEST(ParseRawInferRequest, TheBodyIsTheOnlyInputAndTheVariableDimFollowsFromItsSize) {
  const std::string three_rows = Bytes<float>({1, 2, 3, 4, 5, 6});
  auto r = ParseRawInferRequest(OneInputModel(DataType::kFp32, {-1, 2}), three_rows);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->inputs.size(), 1u);
  EXPECT_EQ(r->inputs[0].name, "x");
  EXPECT_EQ(r->inputs[0].shape, (Shape{3, 2}));
  EXPECT_EQ(r->inputs[0].data, three_rows);
  EXPECT_TRUE(r->binary_data_output);  // every output comes back binary
  EXPECT_TRUE(r->outputs.empty());
  // A batching model takes one row: the batch dim is 1, another -1 is free.
  auto batched = ParseRawInferRequest(OneInputModel(DataType::kFp32, {-1, -1}, Batching::kFixed), three_rows);
  ASSERT_TRUE(batched.ok()) << batched.status().ToString();
  EXPECT_EQ(batched->inputs[0].shape, (Shape{1, 6}));
  // Fixed shapes must match exactly.
  EXPECT_TRUE(ParseRawInferRequest(OneInputModel(DataType::kFp32, {2, 3}), three_rows).ok());
  EXPECT_THAT(ParseRawInferRequest(OneInputModel(DataType::kFp32, {2, 2}), three_rows).status().message(),
              HasSubstr("24 bytes do not match shape [2,2] of FP32 (16 bytes)"));
}

TEST(ParseRawInferRequest, RefusesWhatTheBytesCannotTell) {
  EXPECT_THAT(ParseRawInferRequest(OneInputModel(DataType::kFp32, {-1, 2}), std::string(12, '\0')).status().message(),
              HasSubstr("12 bytes are not a whole number of 8-byte slices"));
  EXPECT_THAT(ParseRawInferRequest(OneInputModel(DataType::kFp32, {-1, -1}), std::string(8, '\0')).status().message(),
              HasSubstr("more than one variable dim"));
  ModelConfig two = OneInputModel(DataType::kFp32, {-1, 2});
  two.inputs.push_back({"z", DataType::kFp32, {-1}});
  auto refused = ParseRawInferRequest(two, std::string(8, '\0'));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("needs a model with one input; 'm' has 2"));
}

TEST(ParseRawInferRequest, ABytesInputIsOneElementOfTheBody) {
  auto r = ParseRawInferRequest(OneInputModel(DataType::kBytes, {-1}), "caf\xc3\xa9 au lait");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->inputs[0].shape, (Shape{1}));
  EXPECT_EQ(r->inputs[0].data, BytesElements({"caf\xc3\xa9 au lait"}));
  EXPECT_THAT(ParseRawInferRequest(OneInputModel(DataType::kBytes, {2}), "ab").status().message(),
              HasSubstr("a BYTES input takes one element raw"));
}

// ---------------------------------------------------------------------------
// Triton's model configuration

ModelConfig FraudConfig() {
  ModelConfig m;
  m.name = "fraud";
  m.inputs = {{"features", DataType::kFp32, {-1, 30}}};
  m.outputs = {{"probabilities", DataType::kFp32, {-1, 2}}};
  m.max_concurrency = 2;
  return m;
}

TEST(EncodeTritonModelConfig, BatchingOffHasMaxBatchSizeZeroAndWholeShapes) {
  EXPECT_EQ(EncodeTritonModelConfig(FraudConfig()),
            R"({"name":"fraud","platform":"pytorch_torchscript","backend":"pytorch",)"
            R"("version_policy":{"latest":{"num_versions":1}},"max_batch_size":0,)"
            R"("input":[{"name":"features","data_type":"TYPE_FP32","format":"FORMAT_NONE","dims":[-1,30],)"
            R"("is_shape_tensor":false,"allow_ragged_batch":false,"optional":false}],)"
            R"("output":[{"name":"probabilities","data_type":"TYPE_FP32","dims":[-1,2],"label_filename":"",)"
            R"("is_shape_tensor":false}],)"
            R"("instance_group":[{"name":"fraud_0","kind":"KIND_CPU","count":2,"gpus":[]}],)"
            R"("default_model_filename":"model.pt","parameters":{}})");
}

TEST(EncodeTritonModelConfig, BatchingOnLeavesTheBatchDimOutAndShowsTheBatcher) {
  ModelConfig m = FraudConfig();
  m.batching = Batching::kFixed;
  m.max_batch_size = 16;
  m.max_queue_delay_us = 500;
  m.preferred_batch_sizes = {4, 8};
  m.inputs[0].format = TensorFormat::kNchw;  // only to see it written
  m.inputs.push_back({"text", DataType::kBytes, {-1, 1}});
  const std::string json = EncodeTritonModelConfig(m);
  EXPECT_THAT(json, HasSubstr(R"("max_batch_size":16,)"));
  EXPECT_THAT(json, HasSubstr(R"("format":"FORMAT_NCHW","dims":[30],)"));
  EXPECT_THAT(json, HasSubstr(R"({"name":"text","data_type":"TYPE_STRING","format":"FORMAT_NONE","dims":[1],)"));
  EXPECT_THAT(json, HasSubstr(R"("dims":[2],)"));
  EXPECT_THAT(json, HasSubstr(R"("dynamic_batching":{"preferred_batch_size":[4,8],"max_queue_delay_microseconds":500,)"
                              R"("preserve_ordering":false,"priority_levels":0,"default_priority_level":0})"));
}

TEST(ApplyTritonModelConfig, WhatGetConfigWritesReadsBackUnchanged) {
  for (Batching batching : {Batching::kOff, Batching::kFixed, Batching::kAdaptive}) {
    ModelConfig m = FraudConfig();
    m.batching = batching;
    m.max_batch_size = 8;
    auto back = ApplyTritonModelConfig(m, EncodeTritonModelConfig(m), "load parameters.config");
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(EncodeModelConfig(*back), EncodeModelConfig(m)) << BatchingName(batching);
  }
}

TEST(ApplyTritonModelConfig, MapsTritonsSettingsOntoThaws) {
  auto changed = ApplyTritonModelConfig(FraudConfig(), R"({"name":"fraud","max_batch_size":32,
      "input":[{"name":"features","data_type":"TYPE_FP32","dims":[30]}],
      "output":[{"name":"probabilities","data_type":"TYPE_FP32","dims":[2]}],
      "dynamic_batching":{"preferred_batch_size":[8,16],"max_queue_delay_microseconds":2000},
      "instance_group":[{"kind":"KIND_CPU","count":2},{"count":1}],
      "default_model_filename":"model.pt"})", "load parameters.config");
  ASSERT_TRUE(changed.ok()) << changed.status().ToString();
  EXPECT_EQ(changed->batching, Batching::kFixed);
  EXPECT_EQ(changed->max_batch_size, 32);
  EXPECT_EQ(changed->max_queue_delay_us, 2000);
  EXPECT_EQ(changed->preferred_batch_sizes, (std::vector<int>{8, 16}));
  EXPECT_EQ(changed->max_concurrency, 3);
  EXPECT_EQ(changed->inputs[0].shape, (Shape{-1, 30}));  // the batch dim is back
  EXPECT_EQ(changed->outputs[0].shape, (Shape{-1, 2}));
  // max_batch_size 0 turns batching off; only the fields given change.
  auto off = ApplyTritonModelConfig(*changed, R"({"max_batch_size":0})", "load parameters.config");
  ASSERT_TRUE(off.ok()) << off.status().ToString();
  EXPECT_EQ(off->batching, Batching::kOff);
  EXPECT_EQ(off->max_concurrency, 3);
}

TEST(ApplyTritonModelConfig, RefusesWhatThawCannotDoNamingTheField) {
  auto error = [](std::string_view json) {
    auto r = ApplyTritonModelConfig(FraudConfig(), json, "load parameters.config");
    EXPECT_FALSE(r.ok()) << json;
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_THAT(error(R"({"sequence_batching":{}})"), HasSubstr("field 'sequence_batching' is not supported by thaw"));
  EXPECT_THAT(error(R"({"instance_group":[{"kind":"KIND_GPU","count":1}]})"), HasSubstr("instance_group[0].kind"));
  EXPECT_THAT(error(R"({"name":"other"})"), HasSubstr("must be the model's name 'fraud'"));
  EXPECT_THAT(error(R"({"platform":"onnxruntime_onnx"})"), HasSubstr("field 'platform'"));
  EXPECT_THAT(error(R"({"max_batch_size":-1})"), HasSubstr("field 'max_batch_size'"));
  EXPECT_THAT(error(R"({"dynamic_batching":{}})"), HasSubstr("needs max_batch_size > 0"));
  EXPECT_THAT(error(R"({"input":[{"name":"features","data_type":"FP32","dims":[-1,30]}]})"),
              HasSubstr("input[0].data_type"));
  EXPECT_THAT(error(R"({"input":[{"name":"features","data_type":"TYPE_FP32"}]})"), HasSubstr("input[0].dims"));
  EXPECT_THAT(error(R"({"output":[{"name":"probabilities","data_type":"TYPE_FP32","dims":[-1,2],"label_filename":"../l.txt"}]})"),
              HasSubstr("output[0].label_filename"));
  EXPECT_THAT(error(R"({"max_batch_size":8,"dynamic_batching":{"preferred_batch_size":[16]}})"),
              HasSubstr("preferred_batch_sizes"));  // thaw's own check of the result
  EXPECT_THAT(error("{"), HasSubstr("malformed JSON"));
  EXPECT_FALSE(LooksLikeTritonModelConfig(R"({"memory_mb": 512})"));
  EXPECT_TRUE(LooksLikeTritonModelConfig(R"({"max_batch_size": 0})"));
  EXPECT_FALSE(LooksLikeTritonModelConfig("not json"));
}

// ---------------------------------------------------------------------------
// Classification

std::vector<std::string> Elements(const Tensor& t) {
  std::vector<std::string> out;
  for (size_t pos = 0; pos + 4 <= t.data.size();) {
    uint32_t len;
    std::memcpy(&len, t.data.data() + pos, 4);
    out.push_back(t.data.substr(pos + 4, len));
    pos += 4 + len;
  }
  return out;
}

TEST(ClassifyOutputs, TopClassesPerRowWithLabels) {
  ModelConfig m;
  m.name = "fashion";
  m.outputs = {{"logits", DataType::kFp32, {-1, 4}}, {"other", DataType::kInt64, {3}}};
  m.outputs[0].labels = {"tee", "trouser", "pullover"};  // fewer labels than classes: the last has none
  InferRequest r = MustParse(R"({"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[0]}],
      "outputs":[{"name":"logits","parameters":{"classification":2}},{"name":"other","parameters":{"classification":5}}]})");
  EXPECT_EQ(r.outputs[0].classification, 2);
  std::vector<Tensor> outputs = {{"logits", DataType::kFp32, {2, 4}, Bytes<float>({0.1f, 0.7f, 0.2f, 0.7f, 3, 1, 2, 4})},
                                 {"other", DataType::kInt64, {3}, Bytes<int64_t>({5, 9, 1})}};
  ASSERT_TRUE(ClassifyOutputs(m, r, &outputs).ok());
  EXPECT_EQ(outputs[0].datatype, DataType::kBytes);
  EXPECT_EQ(outputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(Elements(outputs[0]),
            (std::vector<std::string>{"0.700000:1:trouser", "0.700000:3", "4.000000:3", "3.000000:0:tee"}));
  // No batch dim in the config: ranked over every element, k capped at the count.
  EXPECT_EQ(outputs[1].shape, (Shape{3}));
  EXPECT_EQ(Elements(outputs[1]), (std::vector<std::string>{"9.000000:1", "5.000000:0", "1.000000:2"}));
  EXPECT_TRUE(CheckTensorData(outputs[0]).ok());
}

TEST(ClassifyOutputs, RefusesBytesOutputsAndBadCounts) {
  ModelConfig m;
  m.outputs = {{"text", DataType::kBytes, {-1}}};
  InferRequest r;
  r.outputs = {{"text", std::nullopt, 1}};
  std::vector<Tensor> outputs = {{"text", DataType::kBytes, {1}, BytesElements({"a"})}};
  EXPECT_THAT(ClassifyOutputs(m, r, &outputs).message(), HasSubstr("needs a numeric output"));
  EXPECT_EQ(ParseError(R"({"outputs":[{"name":"o","parameters":{"classification":-1}}],"inputs":[]})"),
            "output 'o': parameters.classification must be a non-negative integer");
}

}  // namespace
}  // namespace thaw::v2
