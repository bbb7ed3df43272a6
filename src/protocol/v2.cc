#include "protocol/v2.h"

#include "base/json_writer.h"

#include <simdjson.h>

#include <bit>
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
      const uint32_t len = static_cast<uint32_t>(s.size());
      char prefix[4];
      std::memcpy(prefix, &len, 4);  // little-endian host (x86-64 / aarch64)
      t->data.append(prefix, 4);
      t->data.append(s);
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
      if (Field(params, "binary_data", &b) && b.get_bool().get(out.binary_data))
        return InvalidArgument(who + ": parameters.binary_data must be a boolean");
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
    bool match = t.shape.size() == spec.shape.size();
    for (size_t d = 0; match && d < t.shape.size(); ++d)
      match = t.shape[d] >= 0 && (spec.shape[d] < 0 || spec.shape[d] == t.shape[d]);
    if (!match)
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
    size_t pos = 0;
    bool first = true;
    while (d.size() - pos >= 4) {
      const uint32_t len = Load<uint32_t>(d.data() + pos);
      pos += 4;
      if (d.size() - pos < len) break;
      if (!first) out->push_back(',');
      first = false;
      AppendJsonString(out, std::string_view(d).substr(pos, len));
      pos += len;
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
          selected.emplace_back(&t, r.binary_data || request.binary_data_output);
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

}  // namespace thaw::v2
