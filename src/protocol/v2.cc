#include "protocol/v2.h"

#include "base/json_writer.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <unordered_set>
#include <utility>

namespace thaw::v2 {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

// ---------------------------------------------------------------------------
// Half precision

// Rounds `d` to the nearest IEEE binary16 value (ties to even) and returns its
// bits. Works from the double's bits directly so there is no double rounding.
// Magnitudes too large for binary16 become infinity; callers range-check first.
uint16_t DoubleToHalf(double d) {
  const uint64_t bits = std::bit_cast<uint64_t>(d);
  const uint16_t sign = static_cast<uint16_t>((bits >> 48) & 0x8000);
  const int biased = static_cast<int>((bits >> 52) & 0x7ff);
  const uint64_t mant = bits & ((uint64_t{1} << 52) - 1);
  if (biased == 0x7ff) return sign | (mant ? 0x7e00 : 0x7c00);  // NaN / Inf
  if (biased == 0) return sign;  // zero or double subnormal: far below half's range
  const int exp = biased - 1023;
  if (exp > 15) return sign | 0x7c00;
  if (exp >= -14) {
    // Normal half: keep the top 10 mantissa bits, round on the other 42.
    uint32_t m = static_cast<uint32_t>(mant >> 42);
    const uint64_t rem = mant & ((uint64_t{1} << 42) - 1);
    const uint64_t halfway = uint64_t{1} << 41;
    if (rem > halfway || (rem == halfway && (m & 1))) ++m;
    // A carry out of the mantissa correctly bumps the exponent (up to Inf).
    return static_cast<uint16_t>(sign | ((static_cast<uint32_t>(exp + 15) << 10) + m));
  }
  // Subnormal half: the value in units of 2^-24.
  const uint64_t full = mant | (uint64_t{1} << 52);
  const int shift = 28 - exp;  // 52 - 24 - exp; >= 43 here
  if (shift >= 64) return sign;
  uint32_t m = static_cast<uint32_t>(full >> shift);
  const uint64_t rem = full & ((uint64_t{1} << shift) - 1);
  const uint64_t halfway = uint64_t{1} << (shift - 1);
  if (rem > halfway || (rem == halfway && (m & 1))) ++m;
  return static_cast<uint16_t>(sign | m);  // m == 0x400 is the smallest normal
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f;
  const uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    const float f = std::ldexp(static_cast<float>(mant), -24);  // exact
    return sign ? -f : f;
  }
  return std::bit_cast<float>(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

// Largest magnitudes that still round to a finite value.
constexpr double kFp16Limit = 65520.0;               // halfway between 65504 and 2^16
constexpr double kFp32Limit = 0x1.ffffffp127;        // halfway between FLT_MAX and 2^128

// ---------------------------------------------------------------------------
// JSON output helpers

template <typename T>
void AppendInt(std::string* out, T v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

// Shortest decimal text that a reader converting to double and then to FP16
// (round to nearest) maps back to the same half. Five significant digits
// always suffice for binary16.
void AppendHalf(std::string* out, uint16_t h) {
  const float f = HalfToFloat(h);
  if (!std::isfinite(f) || f == 0) {
    AppendJsonNumber(out, f);
    return;
  }
  char best[32];
  size_t best_len = 0;
  char buf[32];
  for (int precision = 1; precision <= 5; ++precision) {
    auto r = std::to_chars(buf, buf + sizeof buf, f, std::chars_format::general, precision);
    double back = 0;
    std::from_chars(buf, r.ptr, back);
    const size_t len = static_cast<size_t>(r.ptr - buf);
    if (DoubleToHalf(back) == h && (best_len == 0 || len < best_len)) {
      std::memcpy(best, buf, len);
      best_len = len;
    }
  }
  if (best_len == 0) {
    AppendJsonNumber(out, f);  // not reached: 5 digits always round-trip
    return;
  }
  out->append(best, best_len);
}

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

// ---------------------------------------------------------------------------
// Request decoding

const char* KindName(element_type t) {
  switch (t) {
    case element_type::ARRAY: return "an array";
    case element_type::OBJECT: return "an object";
    case element_type::INT64:
    case element_type::UINT64: return "an integer";
    case element_type::DOUBLE: return "a floating-point number";
    case element_type::STRING: return "a string";
    case element_type::BOOL: return "a boolean";
    case element_type::NULL_VALUE: return "null";
  }
  return "an unknown value";
}

std::string NumberText(const element& e) {
  std::string s;
  switch (e.type()) {
    case element_type::INT64: AppendInt(&s, e.get_int64().value_unsafe()); break;
    case element_type::UINT64: AppendInt(&s, e.get_uint64().value_unsafe()); break;
    case element_type::DOUBLE: AppendJsonNumber(&s, e.get_double().value_unsafe()); break;
    default: s = KindName(e.type());
  }
  return s;
}

bool IsNumber(element_type t) {
  return t == element_type::INT64 || t == element_type::UINT64 || t == element_type::DOUBLE;
}
bool IsInteger(element_type t) { return t == element_type::INT64 || t == element_type::UINT64; }

// Calls fn(leaf) for each non-array value under `e`, flattening nested arrays
// row-major; a bare scalar is one leaf. Stops early when fn returns false.
template <typename Fn>
bool ForEachLeaf(const element& e, Fn& fn) {
  if (e.type() != element_type::ARRAY) return fn(e);
  const simdjson::dom::array arr = e.get_array().value_unsafe();  // a copy: no dangling temporary
  for (element child : arr) {
    if (child.type() == element_type::ARRAY) {
      if (!ForEachLeaf(child, fn)) return false;
    } else if (!fn(child)) {
      return false;
    }
  }
  return true;
}

int64_t CountLeaves(const element& e) {
  int64_t n = 0;
  auto fn = [&n](const element&) { ++n; return true; };
  ForEachLeaf(e, fn);
  return n;
}

// Element converters: false when the JSON value does not fit the datatype.
template <typename T>
bool ToInteger(const element& e, T* out) {
  switch (e.type()) {
    case element_type::INT64: {
      const int64_t v = e.get_int64().value_unsafe();
      if (!std::in_range<T>(v)) return false;
      *out = static_cast<T>(v);
      return true;
    }
    case element_type::UINT64: {
      const uint64_t v = e.get_uint64().value_unsafe();
      if (!std::in_range<T>(v)) return false;
      *out = static_cast<T>(v);
      return true;
    }
    default:
      return false;
  }
}

bool ToBool(const element& e, uint8_t* out) {
  if (e.type() != element_type::BOOL) return false;
  *out = e.get_bool().value_unsafe() ? 1 : 0;
  return true;
}

bool ToFp64(const element& e, double* out) { return !e.get_double().get(*out); }

bool ToFp32(const element& e, float* out) {
  double d;
  if (e.get_double().get(d) || !(std::fabs(d) < kFp32Limit)) return false;
  *out = static_cast<float>(d);
  return true;
}

bool ToFp16(const element& e, uint16_t* out) {
  double d;
  if (e.get_double().get(d) || !(std::fabs(d) < kFp16Limit)) return false;
  *out = DoubleToHalf(d);
  return true;
}

// Why `leaf` (flat index `index`) could not be converted to `type`.
Status ElementError(const std::string& name, DataType type, int64_t index, const element& leaf) {
  const std::string where = "input " + Quoted(name) + ": data element " + std::to_string(index) + ": ";
  const std::string tname(DataTypeName(type));
  const element_type kind = leaf.type();
  switch (type) {
    case DataType::kBool:
      return InvalidArgument(where + "expected true or false for BOOL, got " + KindName(kind));
    case DataType::kBytes:
      return InvalidArgument(where + "expected a string for BYTES, got " + KindName(kind));
    case DataType::kFp16:
    case DataType::kFp32:
    case DataType::kFp64:
      if (IsNumber(kind)) return InvalidArgument(where + NumberText(leaf) + " is out of range for " + tname);
      return InvalidArgument(where + "expected a number for " + tname + ", got " + KindName(kind));
    default:
      if (IsInteger(kind)) return InvalidArgument(where + NumberText(leaf) + " is out of range for " + tname);
      if (kind == element_type::DOUBLE)
        return InvalidArgument(where + "expected an integer for " + tname + ", got " + NumberText(leaf));
      return InvalidArgument(where + "expected an integer for " + tname + ", got " + KindName(kind));
  }
}

Status CountError(const Tensor& t, int64_t count, int64_t got) {
  return InvalidArgument("input " + Quoted(t.name) + ": expected " + std::to_string(count) +
                         " elements for shape " + ShapeToString(t.shape) + ", got " + std::to_string(got));
}

// Fixed-size datatypes: converts straight into the tensor's byte buffer.
template <typename T, bool (*Convert)(const element&, T*)>
Status DecodeFixed(const element& data, int64_t count, Tensor* t) {
  t->data.resize(static_cast<size_t>(count) * sizeof(T));
  char* out = t->data.data();
  int64_t n = 0;
  element bad;
  auto fn = [&](const element& leaf) {
    if (n < count) {  // past `count` only count, to report the real total
      T v;
      if (!Convert(leaf, &v)) {
        bad = leaf;
        return false;
      }
      std::memcpy(out + n * static_cast<int64_t>(sizeof(T)), &v, sizeof(T));
    }
    ++n;
    return true;
  };
  if (!ForEachLeaf(data, fn)) return ElementError(t->name, t->datatype, n, bad);
  if (n != count) return CountError(*t, count, n);
  return Status::Ok();
}

Status DecodeBytes(const element& data, int64_t count, Tensor* t) {
  t->data.reserve(static_cast<size_t>(count) * 4);
  int64_t n = 0;
  element bad;
  auto fn = [&](const element& leaf) {
    if (n < count) {
      std::string_view s;
      if (leaf.get_string().get(s) || s.size() > std::numeric_limits<uint32_t>::max()) {
        bad = leaf;
        return false;
      }
      AppendBytesElement(&t->data, s);
    }
    ++n;
    return true;
  };
  if (!ForEachLeaf(data, fn)) return ElementError(t->name, t->datatype, n, bad);
  if (n != count) return CountError(*t, count, n);
  return Status::Ok();
}

Status DecodeJsonData(const element& data, size_t json_size, Tensor* t) {
  const int64_t count = t->element_count();
  // Every element takes at least one byte of JSON text, so a larger count
  // cannot match; report it without allocating count * size bytes.
  if (static_cast<uint64_t>(count) > json_size) return CountError(*t, count, CountLeaves(data));
  switch (t->datatype) {
    case DataType::kBool: return DecodeFixed<uint8_t, ToBool>(data, count, t);
    case DataType::kUint8: return DecodeFixed<uint8_t, ToInteger<uint8_t>>(data, count, t);
    case DataType::kUint16: return DecodeFixed<uint16_t, ToInteger<uint16_t>>(data, count, t);
    case DataType::kUint32: return DecodeFixed<uint32_t, ToInteger<uint32_t>>(data, count, t);
    case DataType::kUint64: return DecodeFixed<uint64_t, ToInteger<uint64_t>>(data, count, t);
    case DataType::kInt8: return DecodeFixed<int8_t, ToInteger<int8_t>>(data, count, t);
    case DataType::kInt16: return DecodeFixed<int16_t, ToInteger<int16_t>>(data, count, t);
    case DataType::kInt32: return DecodeFixed<int32_t, ToInteger<int32_t>>(data, count, t);
    case DataType::kInt64: return DecodeFixed<int64_t, ToInteger<int64_t>>(data, count, t);
    case DataType::kFp16: return DecodeFixed<uint16_t, ToFp16>(data, count, t);
    case DataType::kFp32: return DecodeFixed<float, ToFp32>(data, count, t);
    case DataType::kFp64: return DecodeFixed<double, ToFp64>(data, count, t);
    case DataType::kBytes: return DecodeBytes(data, count, t);
  }
  return Internal("unhandled datatype");
}

// The first key, in document order, that repeats an earlier key of `obj`: a
// repeated key would silently take one of its values.
std::optional<std::string_view> RepeatedKey(const simdjson::dom::object& obj) {
  std::vector<std::string_view> keys;
  for (auto field : obj) keys.push_back(field.key);
  if (keys.size() <= 16) {
    for (size_t i = 1; i < keys.size(); ++i)
      for (size_t j = 0; j < i; ++j)
        if (keys[i] == keys[j]) return keys[i];
    return std::nullopt;
  }
  std::unordered_set<std::string_view> seen;
  for (std::string_view key : keys)
    if (!seen.insert(key).second) return key;
  return std::nullopt;
}

// `what` is where the object is ("the request", "inputs[0]", ...).
Status CheckNoRepeatedKey(const simdjson::dom::object& obj, const std::string& what) {
  if (auto key = RepeatedKey(obj)) return InvalidArgument(what + ": key " + Quoted(*key) + " appears more than once");
  return Status::Ok();
}

// Nested data must have exactly the shape's structure: at depth d an array
// of shape[d] items, arrays down to the last dimension, scalars there.
// Flat data (an array of scalars) and a bare scalar are checked by count only.
// `at` holds the indices leading here; the text "data[i][j]" is built only
// for an error, so a large tensor costs one walk and no strings.
Status CheckNesting(const element& e, const Tensor& t, std::vector<size_t>& at) {
  auto where = [&] {
    std::string text = "input " + Quoted(t.name) + ": data";
    for (size_t i : at) text += "[" + std::to_string(i) + "]";
    return text;
  };
  const size_t depth = at.size();
  const simdjson::dom::array arr = e.get_array().value_unsafe();
  const size_t size = arr.size();
  if (depth >= t.shape.size()) return InvalidArgument(where() + " is nested deeper than shape " + ShapeToString(t.shape));
  if (static_cast<int64_t>(size) != t.shape[depth])
    return InvalidArgument(where() + " has " + std::to_string(size) + " item(s); shape " + ShapeToString(t.shape) +
                           " needs " + std::to_string(t.shape[depth]) + " at dimension " + std::to_string(depth));
  const bool last = depth + 1 == t.shape.size();
  at.push_back(0);
  for (element child : arr) {
    const bool is_array = child.type() == element_type::ARRAY;
    if (last && is_array) return InvalidArgument(where() + " is nested deeper than shape " + ShapeToString(t.shape));
    if (!last && !is_array)
      return InvalidArgument(where() + " must be an array (shape " + ShapeToString(t.shape) + " has " +
                             std::to_string(t.shape.size()) + " dimensions), got " + KindName(child.type()));
    if (!last) THAW_RETURN_IF_ERROR(CheckNesting(child, t, at));
    ++at.back();
  }
  at.pop_back();
  return Status::Ok();
}

Status CheckDataStructure(const element& data, const Tensor& t) {
  if (data.type() != element_type::ARRAY) return Status::Ok();
  bool nested = false;
  const simdjson::dom::array arr = data.get_array().value_unsafe();  // a copy: no dangling temporary
  for (element child : arr) nested = nested || child.type() == element_type::ARRAY;
  if (!nested) return Status::Ok();
  std::vector<size_t> at;
  return CheckNesting(data, t, at);
}

// Looks up an optional field; false (and *out untouched) when absent.
bool Field(const simdjson::dom::object& obj, std::string_view key, element* out) {
  return !obj.at_key(key).get(*out);
}

bool GetNonNegativeInt(const element& e, int64_t* out) {
  int64_t v;
  if (e.type() != element_type::INT64 || e.get_int64().get(v) || v < 0) return false;
  *out = v;
  return true;
}

// Per-input state carried from the JSON pass to the binary pass.
struct PendingInput {
  element data;
  bool has_data = false;
  std::optional<int64_t> binary_size;
};

Status ParseInput(const element& e, size_t index, Tensor* t, PendingInput* p) {
  const std::string at = "inputs[" + std::to_string(index) + "]";
  simdjson::dom::object obj;
  if (e.get_object().get(obj)) return InvalidArgument(at + " must be an object");
  THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(obj, at));

  element v;
  std::string_view name;
  if (!Field(obj, "name", &v)) return InvalidArgument(at + ": missing 'name'");
  if (v.get_string().get(name)) return InvalidArgument(at + ": 'name' must be a string");
  t->name = std::string(name);
  const std::string who = "input " + Quoted(name);

  if (!Field(obj, "shape", &v)) return InvalidArgument(who + ": missing 'shape'");
  simdjson::dom::array dims;
  if (v.get_array().get(dims)) return InvalidArgument(who + ": 'shape' must be an array of positive integers");
  for (element d : dims) {
    int64_t dim;
    if (!GetNonNegativeInt(d, &dim))
      return InvalidArgument(who + ": 'shape' must be an array of positive integers");
    // An empty tensor would run (and be billed) as nothing; refuse it here.
    if (dim == 0)
      return InvalidArgument(who + ": dimension " + std::to_string(t->shape.size()) + " of 'shape' is 0; every " +
                             "dimension must be at least 1");
    t->shape.push_back(dim);
  }
  if (t->element_count() < 0)
    return InvalidArgument(who + ": shape " + ShapeToString(t->shape) + " has too many elements");

  if (!Field(obj, "datatype", &v)) return InvalidArgument(who + ": missing 'datatype'");
  std::string_view dtype;
  if (v.get_string().get(dtype)) return InvalidArgument(who + ": 'datatype' must be a string");
  const std::optional<DataType> type = ParseDataType(dtype);
  if (!type) return InvalidArgument(who + ": unknown datatype " + Quoted(dtype));
  t->datatype = *type;

  if (Field(obj, "parameters", &v)) {
    simdjson::dom::object params;
    if (v.get_object().get(params)) return InvalidArgument(who + ": 'parameters' must be an object");
    THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(params, who + ": parameters"));
    element size;
    if (Field(params, "binary_data_size", &size)) {
      int64_t n;
      if (!GetNonNegativeInt(size, &n))
        return InvalidArgument(who + ": parameters.binary_data_size must be a non-negative integer");
      p->binary_size = n;
    }
  }
  p->has_data = Field(obj, "data", &p->data);
  if (p->has_data && p->binary_size)
    return InvalidArgument(who + ": has both 'data' and parameters.binary_data_size");
  if (!p->has_data && !p->binary_size)
    return InvalidArgument(who + ": missing 'data' (or parameters.binary_data_size)");
  return Status::Ok();
}

Status ParseOutputs(const element& e, InferRequest* req) {
  simdjson::dom::array arr;
  if (e.get_array().get(arr)) return InvalidArgument("'outputs' must be an array");
  size_t index = 0;
  for (element item : arr) {
    const std::string at = "outputs[" + std::to_string(index++) + "]";
    simdjson::dom::object obj;
    if (item.get_object().get(obj)) return InvalidArgument(at + " must be an object");
    THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(obj, at));
    element v;
    std::string_view name;
    if (!Field(obj, "name", &v)) return InvalidArgument(at + ": missing 'name'");
    if (v.get_string().get(name)) return InvalidArgument(at + ": 'name' must be a string");
    const std::string who = "output " + Quoted(name);
    RequestedOutput out;
    out.name = std::string(name);
    if (Field(obj, "parameters", &v)) {
      simdjson::dom::object params;
      if (v.get_object().get(params)) return InvalidArgument(who + ": 'parameters' must be an object");
      THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(params, who + ": parameters"));
      element b;
      if (Field(params, "binary_data", &b)) {
        bool binary = false;
        if (b.get_bool().get(binary)) return InvalidArgument(who + ": parameters.binary_data must be a boolean");
        out.binary_data = binary;
      }
      if (Field(params, "classification", &b) && !GetNonNegativeInt(b, &out.classification))
        return InvalidArgument(who + ": parameters.classification must be a non-negative integer");
    }
    for (const RequestedOutput& prev : req->outputs)
      if (prev.name == out.name) return InvalidArgument(who + " is requested more than once");
    req->outputs.push_back(std::move(out));
  }
  return Status::Ok();
}

// Documents up to this size are parsed with a per-thread parser whose
// buffers are reused across requests (the common case, including a JSON
// 224x224x3 image). Larger ones get a parser of their own, freed afterwards,
// so one huge request does not pin tens of MB per thread for good.
constexpr size_t kReusableParserLimit = 4 << 20;

// `binary` is the body after the JSON when the request declared a header
// length (the binary extension), nullopt otherwise.
Status ParseJson(std::string_view json, std::optional<std::string_view> binary_section,
                 simdjson::dom::parser& parser, InferRequest* req) {
  element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root))
    return InvalidArgument(std::string("malformed JSON: ") + simdjson::error_message(err));
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) return InvalidArgument("request body must be a JSON object");
  THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(obj, "request"));

  element v;
  if (Field(obj, "id", &v)) {
    std::string_view id;
    if (v.get_string().get(id)) return InvalidArgument("'id' must be a string");
    req->id = std::string(id);
  }
  if (Field(obj, "parameters", &v)) {
    simdjson::dom::object params;
    if (v.get_object().get(params)) return InvalidArgument("'parameters' must be an object");
    THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(params, "parameters"));
    element p;
    if (Field(params, "binary_data_output", &p) && p.get_bool().get(req->binary_data_output))
      return InvalidArgument("parameters.binary_data_output must be a boolean");
    if (Field(params, "timeout_ms", &p)) {
      int64_t ms;
      if (!GetNonNegativeInt(p, &ms)) return InvalidArgument("parameters.timeout_ms must be a non-negative integer");
      req->timeout_ms = ms;
    }
  }
  if (Field(obj, "outputs", &v)) THAW_RETURN_IF_ERROR(ParseOutputs(v, req));

  if (!Field(obj, "inputs", &v)) return InvalidArgument("missing 'inputs'");
  simdjson::dom::array inputs;
  if (v.get_array().get(inputs) || inputs.size() == 0)
    return InvalidArgument("'inputs' must be a non-empty array");

  std::vector<PendingInput> pending;
  size_t index = 0;
  for (element item : inputs) {
    Tensor& t = req->inputs.emplace_back();
    THAW_RETURN_IF_ERROR(ParseInput(item, index++, &t, &pending.emplace_back()));
  }

  // JSON data first (cheap checks of the binary layout come after).
  for (size_t i = 0; i < req->inputs.size(); ++i) {
    if (!pending[i].has_data) continue;
    THAW_RETURN_IF_ERROR(CheckDataStructure(pending[i].data, req->inputs[i]));
    THAW_RETURN_IF_ERROR(DecodeJsonData(pending[i].data, json.size(), &req->inputs[i]));
  }

  // Binary data: consecutive slices of the body after the JSON, in input order.
  const bool has_binary = binary_section.has_value();
  std::string_view binary = binary_section.value_or(std::string_view());
  for (size_t i = 0; i < req->inputs.size(); ++i) {
    if (!pending[i].binary_size) continue;
    Tensor& t = req->inputs[i];
    const std::string who = "input " + Quoted(t.name);
    const uint64_t size = static_cast<uint64_t>(*pending[i].binary_size);
    if (!has_binary)
      return InvalidArgument(who + ": parameters.binary_data_size given but the request has no binary data "
                                   "(no Inference-Header-Content-Length)");
    if (size > binary.size())
      return InvalidArgument(who + ": binary_data_size " + std::to_string(size) + " exceeds the " +
                             std::to_string(binary.size()) + " bytes of binary data remaining");
    if (t.datatype != DataType::kBytes) {
      const uint64_t count = static_cast<uint64_t>(t.element_count());
      const uint64_t elem = DataTypeSize(t.datatype);
      const bool fits = count <= std::numeric_limits<uint64_t>::max() / elem;
      if (!fits || count * elem != size)
        return InvalidArgument(who + ": binary_data_size " + std::to_string(size) + " does not match shape " +
                               ShapeToString(t.shape) + " of " + std::string(DataTypeName(t.datatype)) + " (" +
                               (fits ? std::to_string(count * elem) : std::string("too many")) + " bytes)");
    }
    t.data.assign(binary.substr(0, size));
    binary.remove_prefix(size);
    if (t.datatype == DataType::kBytes) {
      Status s = CheckTensorData(t);
      if (!s.ok()) return InvalidArgument(who + ": invalid BYTES binary data: " + s.message());
    }
  }
  if (!binary.empty())
    return InvalidArgument(std::to_string(binary.size()) +
                           " bytes of binary data left over after the inputs' binary_data_size");
  return Status::Ok();
}

}  // namespace

StatusOr<InferRequest> ParseInferRequest(std::string_view body, std::optional<size_t> header_length) {
  std::string_view json = body;
  std::optional<std::string_view> binary;
  if (header_length) {
    if (*header_length > body.size())
      return InvalidArgument("Inference-Header-Content-Length " + std::to_string(*header_length) +
                             " exceeds the body size " + std::to_string(body.size()));
    json = body.substr(0, *header_length);
    binary = body.substr(*header_length);
  }
  InferRequest req;
  Status s;
  if (json.size() <= kReusableParserLimit) {
    thread_local simdjson::dom::parser parser;
    s = ParseJson(json, binary, parser, &req);
  } else {
    simdjson::dom::parser parser;
    s = ParseJson(json, binary, parser, &req);
  }
  if (!s.ok()) return s;
  return req;
}

StatusOr<InferRequest> ParseRawInferRequest(const ModelConfig& model, std::string_view body) {
  if (model.inputs.size() != 1)
    return InvalidArgument("a raw binary request (Inference-Header-Content-Length: 0) needs a model with one input; " +
                           Quoted(model.name) + " has " + std::to_string(model.inputs.size()));
  const TensorSpec& spec = model.inputs[0];
  const std::string who = "raw binary request for input " + Quoted(spec.name);
  Tensor t;
  t.name = spec.name;
  t.datatype = spec.datatype;
  t.shape = spec.shape;
  if (model.batching != Batching::kOff && !t.shape.empty()) t.shape[0] = 1;  // one request is one row
  if (t.datatype == DataType::kBytes) {
    for (int64_t& d : t.shape) {
      if (d == -1) d = 1;
    }
    if (t.element_count() != 1)
      return InvalidArgument(who + ": a BYTES input takes one element raw; its shape is " + ShapeToString(spec.shape));
    if (body.size() > std::numeric_limits<uint32_t>::max())
      return InvalidArgument(who + ": a BYTES element holds at most 4 GiB");
    AppendBytesElement(&t.data, body);
  } else {
    size_t variable = 0, variable_at = 0;
    uint64_t fixed = DataTypeSize(t.datatype);
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (t.shape[d] == -1) {
        ++variable;
        variable_at = d;
      } else {
        fixed *= static_cast<uint64_t>(t.shape[d]);
      }
    }
    if (variable > 1)
      return InvalidArgument(who + ": its shape " + ShapeToString(t.shape) +
                             " has more than one variable dim, so the byte count cannot tell it");
    if (variable == 1) {
      if (fixed == 0 || body.size() % fixed != 0)
        return InvalidArgument(who + ": " + std::to_string(body.size()) + " bytes are not a whole number of " +
                               std::to_string(fixed) + "-byte slices of shape " + ShapeToString(t.shape) + " of " +
                               std::string(DataTypeName(t.datatype)));
      t.shape[variable_at] = static_cast<int64_t>(body.size() / fixed);
    } else if (body.size() != fixed) {
      return InvalidArgument(who + ": " + std::to_string(body.size()) + " bytes do not match shape " +
                             ShapeToString(t.shape) + " of " + std::string(DataTypeName(t.datatype)) + " (" +
                             std::to_string(fixed) + " bytes)");
    }
    t.data.assign(body);
  }
  InferRequest request;
  request.inputs.push_back(std::move(t));
  request.binary_data_output = true;
  return request;
}

Status ValidateInferRequest(const ModelConfig& model, InferRequest* request) {
  std::vector<Tensor> sorted(model.inputs.size());
  std::vector<bool> seen(model.inputs.size(), false);
  for (Tensor& t : request->inputs) {
    size_t k = 0;
    while (k < model.inputs.size() && model.inputs[k].name != t.name) ++k;
    if (k == model.inputs.size())
      return InvalidArgument("model " + Quoted(model.name) + " has no input " + Quoted(t.name));
    if (seen[k]) return InvalidArgument("input " + Quoted(t.name) + " is given more than once");
    const TensorSpec& spec = model.inputs[k];
    if (t.datatype != spec.datatype)
      return InvalidArgument("input " + Quoted(t.name) + ": datatype " + std::string(DataTypeName(t.datatype)) +
                             " does not match model datatype " + std::string(DataTypeName(spec.datatype)));
    if (!ShapeMatches(spec.shape, t.shape))
      return InvalidArgument("input " + Quoted(t.name) + ": shape " + ShapeToString(t.shape) +
                             " does not match model shape " + ShapeToString(spec.shape));
    seen[k] = true;
  }
  for (size_t k = 0; k < model.inputs.size(); ++k)
    if (!seen[k]) return InvalidArgument("missing input " + Quoted(model.inputs[k].name));
  for (const RequestedOutput& out : request->outputs) {
    bool found = false;
    for (const TensorSpec& spec : model.outputs) found = found || spec.name == out.name;
    if (!found) return InvalidArgument("model " + Quoted(model.name) + " has no output " + Quoted(out.name));
  }
  // All checks passed: move into config order.
  for (Tensor& t : request->inputs) {
    size_t k = 0;
    while (model.inputs[k].name != t.name) ++k;
    sorted[k] = std::move(t);
  }
  request->inputs = std::move(sorted);
  return Status::Ok();
}

namespace {

template <typename T>
T Load(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Appends the tensor's elements as a flat JSON array. Reads only whole
// elements present in `data` (callers pass tensors that pass CheckTensorData).
void AppendJsonData(std::string* out, const Tensor& t) {
  const std::string& d = t.data;
  const size_t size = DataTypeSize(t.datatype);
  out->push_back('[');
  if (t.datatype == DataType::kBytes) {
    bool first = true;
    for (std::string_view element : BytesElements(d)) {
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(out, element);
    }
    out->push_back(']');
    return;
  }
  const size_t n = d.size() / size;
  out->reserve(out->size() + n * (t.datatype == DataType::kFp32 || t.datatype == DataType::kFp64 ? 14 : 4));
  for (size_t i = 0; i < n; ++i) {
    if (i) out->push_back(',');
    const char* p = d.data() + i * size;
    switch (t.datatype) {
      case DataType::kBool: out->append(*p ? "true" : "false"); break;
      case DataType::kUint8: AppendInt(out, Load<uint8_t>(p)); break;
      case DataType::kUint16: AppendInt(out, Load<uint16_t>(p)); break;
      case DataType::kUint32: AppendInt(out, Load<uint32_t>(p)); break;
      case DataType::kUint64: AppendInt(out, Load<uint64_t>(p)); break;
      case DataType::kInt8: AppendInt(out, Load<int8_t>(p)); break;
      case DataType::kInt16: AppendInt(out, Load<int16_t>(p)); break;
      case DataType::kInt32: AppendInt(out, Load<int32_t>(p)); break;
      case DataType::kInt64: AppendInt(out, Load<int64_t>(p)); break;
      case DataType::kFp16: AppendHalf(out, Load<uint16_t>(p)); break;
      case DataType::kFp32: AppendJsonNumber(out, Load<float>(p)); break;
      case DataType::kFp64: AppendJsonNumber(out, Load<double>(p)); break;
      case DataType::kBytes: break;
    }
  }
  out->push_back(']');
}

void WriteShape(JsonWriter& w, const std::vector<int64_t>& shape) {
  w.BeginArray();
  for (int64_t d : shape) w.Int(d);
  w.EndArray();
}

void WriteSpecs(JsonWriter& w, const std::vector<TensorSpec>& specs) {
  w.BeginArray();
  for (const TensorSpec& spec : specs) {
    w.BeginObject().Field("name", spec.name).Field("datatype", DataTypeName(spec.datatype)).Key("shape");
    WriteShape(w, spec.shape);
    w.EndObject();
  }
  w.EndArray();
}

}  // namespace

EncodedBody EncodeInferResponse(const std::string& model_name, const InferRequest& request,
                                const std::vector<Tensor>& outputs, std::string_view parameters_json) {
  // The selection: the request's outputs in the request's order, or every
  // output in config order. A requested name with no tensor is skipped
  // (ValidateInferRequest rejects unknown names up front).
  std::vector<std::pair<const Tensor*, bool>> selected;  // tensor, binary
  if (request.outputs.empty()) {
    for (const Tensor& t : outputs) selected.emplace_back(&t, request.binary_data_output);
  } else {
    for (const RequestedOutput& r : request.outputs)
      for (const Tensor& t : outputs)
        if (t.name == r.name) {
          selected.emplace_back(&t, r.binary_data.value_or(request.binary_data_output));
          break;
        }
  }

  EncodedBody result;
  std::string& out = result.body;
  JsonWriter w(&out);
  w.BeginObject().Field("model_name", model_name).Field("model_version", "1");
  if (request.id) w.Field("id", *request.id);
  if (!parameters_json.empty()) w.Key("parameters").Raw(parameters_json);
  w.Key("outputs").BeginArray();
  size_t binary_bytes = 0;
  for (const auto& [t, binary] : selected) {
    w.BeginObject().Field("name", t->name).Field("datatype", DataTypeName(t->datatype)).Key("shape");
    WriteShape(w, t->shape);
    if (binary) {
      w.Key("parameters").BeginObject().Field("binary_data_size", t->data.size()).EndObject();
      binary_bytes += t->data.size();
    } else {
      w.Key("data");
      AppendJsonData(w.RawValue(), *t);
    }
    w.EndObject();
  }
  w.EndArray().EndObject();

  bool any_binary = false;
  for (const auto& s : selected) any_binary = any_binary || s.second;
  if (!any_binary) {
    result.content_type = "application/json";
    return result;
  }
  result.header_length = out.size();
  result.content_type = "application/octet-stream";
  out.reserve(out.size() + binary_bytes);
  for (const auto& [t, binary] : selected)
    if (binary) out.append(t->data);
  return result;
}

EncodedBody EncodeBinaryInferRequest(const InferRequest& request) {
  EncodedBody result;
  std::string& out = result.body;
  JsonWriter w(&out);
  w.BeginObject();
  if (request.id) w.Field("id", *request.id);
  w.Key("parameters").BeginObject().Field("binary_data_output", request.binary_data_output);
  if (request.timeout_ms) w.Field("timeout_ms", *request.timeout_ms);
  w.EndObject().Key("inputs").BeginArray();
  size_t data_bytes = 0;
  for (const Tensor& t : request.inputs) {
    w.BeginObject().Field("name", t.name).Field("datatype", DataTypeName(t.datatype)).Key("shape");
    WriteShape(w, t.shape);
    w.Key("parameters").BeginObject().Field("binary_data_size", t.data.size()).EndObject().EndObject();
    data_bytes += t.data.size();
  }
  w.EndArray();
  if (!request.outputs.empty()) {
    w.Key("outputs").BeginArray();
    for (const RequestedOutput& o : request.outputs) {
      w.BeginObject().Field("name", o.name);
      if (o.binary_data || o.classification > 0) {
        w.Key("parameters").BeginObject();
        if (o.binary_data) w.Field("binary_data", *o.binary_data);
        if (o.classification > 0) w.Field("classification", o.classification);
        w.EndObject();
      }
      w.EndObject();
    }
    w.EndArray();
  }
  w.EndObject();
  result.header_length = out.size();
  result.content_type = "application/octet-stream";
  out.reserve(out.size() + data_bytes);
  for (const Tensor& t : request.inputs) out.append(t.data);
  return result;
}

namespace {

// Element i of a numeric tensor as a double.
double ElementAsDouble(const Tensor& t, int64_t i) {
  const char* p = t.data.data() + i * static_cast<int64_t>(DataTypeSize(t.datatype));
  switch (t.datatype) {
    case DataType::kBool: return Load<uint8_t>(p) ? 1 : 0;
    case DataType::kUint8: return Load<uint8_t>(p);
    case DataType::kUint16: return Load<uint16_t>(p);
    case DataType::kUint32: return Load<uint32_t>(p);
    case DataType::kUint64: return static_cast<double>(Load<uint64_t>(p));
    case DataType::kInt8: return Load<int8_t>(p);
    case DataType::kInt16: return Load<int16_t>(p);
    case DataType::kInt32: return Load<int32_t>(p);
    case DataType::kInt64: return static_cast<double>(Load<int64_t>(p));
    case DataType::kFp16: return HalfToFloat(Load<uint16_t>(p));
    case DataType::kFp32: return Load<float>(p);
    case DataType::kFp64: return Load<double>(p);
    case DataType::kBytes: return 0;
  }
  return 0;
}

}  // namespace

Status ClassifyOutputs(const ModelConfig& model, const InferRequest& request, std::vector<Tensor>* outputs) {
  for (const RequestedOutput& requested : request.outputs) {
    if (requested.classification == 0) continue;
    auto spec_it = std::find_if(model.outputs.begin(), model.outputs.end(),
                                [&](const TensorSpec& spec) { return spec.name == requested.name; });
    auto tensor_it = std::find_if(outputs->begin(), outputs->end(),
                                  [&](const Tensor& tensor) { return tensor.name == requested.name; });
    if (spec_it == model.outputs.end() || tensor_it == outputs->end()) continue;  // validation names unknown outputs
    const TensorSpec& spec = *spec_it;
    Tensor& t = *tensor_it;
    if (t.datatype == DataType::kBytes)
      return InvalidArgument("output " + Quoted(t.name) + ": parameters.classification needs a numeric output, not BYTES");
    const int64_t count = t.element_count();
    const bool per_row = !spec.shape.empty() && spec.shape[0] == -1 && !t.shape.empty() && t.shape[0] > 0;
    const int64_t rows = per_row ? t.shape[0] : 1;
    const int64_t classes = rows > 0 ? count / rows : 0;
    const int64_t top = std::min<int64_t>(requested.classification, classes);
    Tensor ranked{t.name, DataType::kBytes, per_row ? Shape{rows, top} : Shape{top}, ""};
    std::vector<int64_t> order(static_cast<size_t>(classes));
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < classes; ++c) order[static_cast<size_t>(c)] = c;
      auto score = [&](int64_t c) { return ElementAsDouble(t, r * classes + c); };
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score(a) > score(b); });
      for (int64_t i = 0; i < top; ++i) {
        const int64_t c = order[static_cast<size_t>(i)];
        char text[64];
        std::snprintf(text, sizeof text, "%f:%lld", score(c), static_cast<long long>(c));
        std::string entry = text;
        if (c < static_cast<int64_t>(spec.labels.size())) entry += ":" + spec.labels[static_cast<size_t>(c)];
        AppendBytesElement(&ranked.data, entry);
      }
    }
    t = std::move(ranked);
  }
  return Status::Ok();
}

std::string EncodeError(std::string_view message) {
  std::string out;
  JsonWriter(&out).BeginObject().Field("error", message).EndObject();
  return out;
}

std::string EncodeServerMetadata(std::string_view name, std::string_view version,
                                 const std::vector<std::string>& extensions) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("name", name).Field("version", version).Key("extensions").BeginArray();
  for (const std::string& extension : extensions) w.String(extension);
  w.EndArray().EndObject();
  return out;
}

std::string EncodeModelMetadata(const ModelConfig& model) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("name", model.name).Key("versions").BeginArray().String("1").EndArray();
  w.Field("platform", model.platform).Key("inputs");
  WriteSpecs(w, model.inputs);
  w.Key("outputs");
  WriteSpecs(w, model.outputs);
  w.EndObject();
  return out;
}

namespace {

// Triton's DataType enum names: TYPE_FP32, ...; BYTES is TYPE_STRING.
std::string TritonDataType(DataType type) {
  if (type == DataType::kBytes) return "TYPE_STRING";
  return "TYPE_" + std::string(DataTypeName(type));
}

void WriteDims(JsonWriter& w, const Shape& shape, bool drop_batch_dim) {
  w.BeginArray();
  for (size_t d = drop_batch_dim ? 1 : 0; d < shape.size(); ++d) w.Int(shape[d]);
  w.EndArray();
}

}  // namespace

std::string EncodeTritonModelConfig(const ModelConfig& model) {
  // Batching on needs a variable dim 0 on every tensor (ValidateModelConfig):
  // that dim is the batch, which Triton's dims leave out.
  const bool batching = model.batching != Batching::kOff;
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("name", model.name).Field("platform", model.platform);
  w.Field("backend", model.backend == "torchscript" ? "pytorch" : model.backend);
  w.Key("version_policy").BeginObject().Key("latest").BeginObject().Field("num_versions", 1).EndObject().EndObject();
  w.Field("max_batch_size", batching ? model.max_batch_size : 0);
  w.Key("input").BeginArray();
  for (const TensorSpec& spec : model.inputs) {
    w.BeginObject().Field("name", spec.name).Field("data_type", TritonDataType(spec.datatype));
    w.Field("format", "FORMAT_" + std::string(TensorFormatName(spec.format))).Key("dims");
    WriteDims(w, spec.shape, batching);
    w.Field("is_shape_tensor", false).Field("allow_ragged_batch", false).Field("optional", false).EndObject();
  }
  w.EndArray().Key("output").BeginArray();
  for (const TensorSpec& spec : model.outputs) {
    w.BeginObject().Field("name", spec.name).Field("data_type", TritonDataType(spec.datatype)).Key("dims");
    WriteDims(w, spec.shape, batching);
    w.Field("label_filename", spec.labels_file).Field("is_shape_tensor", false).EndObject();
  }
  w.EndArray();
  if (batching) {
    w.Key("dynamic_batching").BeginObject().Key("preferred_batch_size").BeginArray();
    for (int size : model.preferred_batch_sizes) w.Int(size);
    w.EndArray().Field("max_queue_delay_microseconds", model.max_queue_delay_us);
    w.Field("preserve_ordering", false).Field("priority_levels", 0).Field("default_priority_level", 0).EndObject();
  }
  // Instances start on demand up to max_concurrency: that is the group's count.
  w.Key("instance_group").BeginArray().BeginObject().Field("name", model.name + "_0").Field("kind", "KIND_CPU");
  w.Field("count", model.max_concurrency).Key("gpus").BeginArray().EndArray().EndObject().EndArray();
  w.Field("default_model_filename", model.model_file);
  w.Key("parameters").BeginObject().EndObject();
  w.EndObject();
  return out;
}

namespace {

std::optional<DataType> ParseTritonDataType(std::string_view name) {
  if (name == "TYPE_STRING") return DataType::kBytes;
  if (!name.starts_with("TYPE_")) return std::nullopt;
  return ParseDataType(name.substr(5));
}

Status TritonFieldError(const std::string& source, const std::string& field, const std::string& problem) {
  return InvalidArgument(source + ": field '" + field + "' " + problem);
}

// Triton's tensors -> thaw's specs; `batch_dim`: prepend -1 (max_batch_size > 0).
Status ReadTritonTensors(const simdjson::dom::array& items, bool input, bool batch_dim, const std::string& source,
                         std::vector<TensorSpec>* out) {
  const std::string key = input ? "input" : "output";
  size_t index = 0;
  for (element item : items) {
    const std::string field = key + "[" + std::to_string(index++) + "]";
    simdjson::dom::object obj;
    if (item.get_object().get(obj)) return TritonFieldError(source, field, "must be an object");
    THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(obj, source + ": " + field));
    TensorSpec spec;
    for (auto [k, v] : obj) {
      const std::string sub = field + "." + std::string(k);
      if (k == "name") {
        std::string_view name;
        if (v.get_string().get(name) || name.empty()) return TritonFieldError(source, sub, "must be a non-empty string");
        spec.name = std::string(name);
      } else if (k == "data_type") {
        std::string_view name;
        std::optional<DataType> type;
        if (!v.get_string().get(name)) type = ParseTritonDataType(name);
        if (!type) return TritonFieldError(source, sub, "must be a Triton data type such as \"TYPE_FP32\"");
        spec.datatype = *type;
      } else if (k == "dims") {
        simdjson::dom::array dims;
        if (v.get_array().get(dims)) return TritonFieldError(source, sub, "must be an array of integers");
        if (batch_dim) spec.shape.push_back(-1);
        for (element dim : dims) {
          int64_t d;
          if (dim.get_int64().get(d) || d < -1 || d == 0)
            return TritonFieldError(source, sub, "dimensions must be positive integers or -1");
          spec.shape.push_back(d);
        }
      } else if (k == "format" && input) {
        std::string_view name;
        std::optional<TensorFormat> format;
        if (!v.get_string().get(name) && name.starts_with("FORMAT_")) format = ParseTensorFormat(name.substr(7));
        if (!format) return TritonFieldError(source, sub, "must be FORMAT_NONE, FORMAT_NCHW or FORMAT_NHWC");
        spec.format = *format;
      } else if (k == "is_shape_tensor" || k == "allow_ragged_batch" || k == "optional") {
        bool value = true;
        if (v.get_bool().get(value) || value)
          return TritonFieldError(source, sub, "must be false: thaw has no shape tensors, ragged batches or optional inputs");
      } else if (k == "label_filename" && !input) {
        std::string_view name;
        if (v.get_string().get(name) || name.find('/') != std::string_view::npos || name == "." || name == "..")
          return TritonFieldError(source, sub, "must be a file name in the model directory");
        spec.labels_file = std::string(name);  // read by the caller (LoadOutputLabels)
      } else {
        return TritonFieldError(source, sub, "is not supported by thaw");
      }
    }
    if (spec.name.empty()) return TritonFieldError(source, field + ".name", "is required");
    if (obj["data_type"].error()) return TritonFieldError(source, field + ".data_type", "is required");
    if (obj["dims"].error()) return TritonFieldError(source, field + ".dims", "is required");
    out->push_back(std::move(spec));
  }
  return Status::Ok();
}

}  // namespace

bool LooksLikeTritonModelConfig(std::string_view json) {
  simdjson::dom::parser parser;
  simdjson::dom::object obj;
  if (parser.parse(json.data(), json.size()).get_object().get(obj)) return false;
  for (std::string_view key : {"input", "output", "max_batch_size", "instance_group", "dynamic_batching", "version_policy",
                               "default_model_filename", "sequence_batching", "ensemble_scheduling", "optimization",
                               "model_warmup"})
    if (!obj[key].error()) return true;
  return false;
}

StatusOr<ModelConfig> ApplyTritonModelConfig(const ModelConfig& base, std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root))
    return InvalidArgument(source + ": malformed JSON: " + simdjson::error_message(err));
  simdjson::dom::object obj;
  if (root.get_object().get(obj)) return InvalidArgument(source + ": must be a JSON object");
  THAW_RETURN_IF_ERROR(CheckNoRepeatedKey(obj, source));
  ModelConfig config = base;
  int64_t max_batch_size = base.batching == Batching::kOff ? 0 : base.max_batch_size;
  element value;
  if (!obj["max_batch_size"].get(value)) {
    if (value.get_int64().get(max_batch_size) || max_batch_size < 0 || max_batch_size > 1024)
      return TritonFieldError(source, "max_batch_size", "must be an integer in [0, 1024]");
  }
  const bool batch_dim = max_batch_size > 0;
  bool dynamic_batching = false;
  for (auto [k, v] : obj) {
    const std::string key(k);
    if (key == "name") {
      std::string_view name;
      if (v.get_string().get(name) || (!name.empty() && name != base.name))
        return TritonFieldError(source, key, "must be the model's name '" + base.name + "'");
    } else if (key == "platform") {
      std::string_view platform;
      if (v.get_string().get(platform) || (platform != base.platform && platform != "pytorch_libtorch" && !platform.empty()))
        return TritonFieldError(source, key, "must be '" + base.platform + "' or 'pytorch_libtorch': thaw runs TorchScript");
    } else if (key == "backend") {
      std::string_view backend;
      if (v.get_string().get(backend) || (backend != "pytorch" && backend != base.backend && !backend.empty()))
        return TritonFieldError(source, key, "must be 'pytorch': thaw runs TorchScript");
    } else if (key == "max_batch_size" || key == "version_policy" || key == "parameters") {
      // read above; one version only; no parameters thaw reads
    } else if (key == "input" || key == "output") {
      simdjson::dom::array items;
      if (v.get_array().get(items)) return TritonFieldError(source, key, "must be an array");
      std::vector<TensorSpec> specs;
      THAW_RETURN_IF_ERROR(ReadTritonTensors(items, key == "input", batch_dim, source, &specs));
      (key == "input" ? config.inputs : config.outputs) = std::move(specs);
    } else if (key == "dynamic_batching") {
      simdjson::dom::object batching;
      if (v.get_object().get(batching)) return TritonFieldError(source, key, "must be an object");
      dynamic_batching = true;
      config.preferred_batch_sizes.clear();
      for (auto [bk, bv] : batching) {
        const std::string sub = key + "." + std::string(bk);
        if (bk == "preferred_batch_size") {
          simdjson::dom::array sizes;
          if (bv.get_array().get(sizes)) return TritonFieldError(source, sub, "must be an array of integers");
          for (element size : sizes) {
            int64_t n;
            if (size.get_int64().get(n) || n < 1 || n > 1024) return TritonFieldError(source, sub, "entries must be in [1, 1024]");
            config.preferred_batch_sizes.push_back(static_cast<int>(n));
          }
        } else if (bk == "max_queue_delay_microseconds") {
          if (bv.get_int64().get(config.max_queue_delay_us)) return TritonFieldError(source, sub, "must be an integer");
        } else if (bk == "preserve_ordering") {  // each request is answered on its own
          bool flag = true;
          if (bv.get_bool().get(flag) || flag) return TritonFieldError(source, sub, "must be false in thaw");
        } else if (bk == "priority_levels" || bk == "default_priority_level") {  // one level
          int64_t level = 1;
          if (bv.get_int64().get(level) || level != 0) return TritonFieldError(source, sub, "must be 0 in thaw");
        } else {
          return TritonFieldError(source, sub, "is not supported by thaw");
        }
      }
    } else if (key == "instance_group") {
      simdjson::dom::array groups;
      if (v.get_array().get(groups)) return TritonFieldError(source, key, "must be an array");
      int64_t count = 0;
      size_t index = 0;
      for (element group : groups) {
        const std::string at = key + "[" + std::to_string(index++) + "]";
        simdjson::dom::object g;
        if (group.get_object().get(g)) return TritonFieldError(source, at, "must be an object");
        int64_t n = 1;  // Triton's default count
        for (auto [gk, gv] : g) {
          const std::string sub = at + "." + std::string(gk);
          if (gk == "count") {
            if (gv.get_int64().get(n) || n < 1) return TritonFieldError(source, sub, "must be a positive integer");
          } else if (gk == "kind") {
            std::string_view kind;
            if (gv.get_string().get(kind) || (kind != "KIND_CPU" && kind != "KIND_AUTO"))
              return TritonFieldError(source, sub, "must be KIND_CPU: thaw runs on CPUs");
          } else if (gk == "gpus") {
            simdjson::dom::array gpus;
            if (gv.get_array().get(gpus) || gpus.size() != 0) return TritonFieldError(source, sub, "must be empty: thaw runs on CPUs");
          } else if (gk != "name") {
            return TritonFieldError(source, sub, "is not supported by thaw");
          }
        }
        count += n;
      }
      if (count < 1 || count > 1 << 20) return TritonFieldError(source, key, "must count at least one instance");
      config.max_concurrency = static_cast<int>(count);
      if (config.min_instances > config.max_concurrency) config.min_instances = config.max_concurrency;
    } else if (key == "default_model_filename") {
      std::string_view file;
      if (v.get_string().get(file) || file.empty() || file.find('/') != std::string_view::npos)
        return TritonFieldError(source, key, "must be a file name inside the model directory");
      config.model_file = std::string(file);
    } else {
      return TritonFieldError(source, key, "is not supported by thaw");
    }
  }
  // The batch dim: tensors not given keep the base's shapes, which have it
  // when the base batches; a changed max_batch_size with unchanged tensors
  // keeps them as they are.
  if (dynamic_batching && !batch_dim)
    return TritonFieldError(source, "dynamic_batching", "needs max_batch_size > 0");
  // Batching changes only when the override says so: dynamic_batching turns
  // it on (adaptive stays adaptive: Triton has no such mode, and a round
  // trip of GET .../config must not change it); a max_batch_size without
  // dynamic_batching means a batch dim but no batcher, as in Triton.
  if (batch_dim) config.max_batch_size = static_cast<int>(max_batch_size);
  if (dynamic_batching) {
    if (base.batching == Batching::kOff) config.batching = Batching::kFixed;
  } else if (!obj["max_batch_size"].error()) {
    config.batching = Batching::kOff;
  }
  if (Status valid = ValidateModelConfig(config, source); !valid.ok()) return valid;
  return config;
}

}  // namespace thaw::v2
