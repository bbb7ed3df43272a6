// Tensor: a named, typed, shaped block of bytes, the unit that crosses every
// boundary in thaw (HTTP codec, IPC, backends). Data is row-major and
// little-endian with no padding. BOOL is one byte per element. BYTES elements
// are each a 4-byte little-endian length followed by that many bytes, exactly
// as in the KServe v2 binary tensor extension.
// Thread safety: a value type.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace thaw {

enum class DataType {
  kBool,
  kUint8,
  kUint16,
  kUint32,
  kUint64,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFp16,
  kFp32,
  kFp64,
  kBytes,
};

// "FP32" -> kFp32; nullopt for an unknown name.
std::optional<DataType> ParseDataType(std::string_view name);
// kFp32 -> "FP32".
std::string_view DataTypeName(DataType type);
// Bytes per element; 0 for kBytes (variable length).
size_t DataTypeSize(DataType type);

using Shape = std::vector<int64_t>;

// Product of dims; -1 if any dim is negative or the product overflows.
int64_t ElementCount(const Shape& shape);
// "[1,3,224,224]"
std::string ShapeToString(const Shape& shape);
// Whether an actual shape fits a declared one: the same rank, no negative
// actual dim, every declared dim other than -1 equal.
bool ShapeMatches(const Shape& declared, std::span<const int64_t> actual);

struct Tensor {
  std::string name;
  DataType datatype = DataType::kFp32;
  Shape shape;
  std::string data;  // raw bytes, see file comment

  int64_t element_count() const { return ElementCount(shape); }
};

// Appends one BYTES element to a tensor's data: its 4-byte little-endian
// length, then its bytes (at most 4 GiB; callers check the size).
void AppendBytesElement(std::string* data, std::string_view element);
// The whole BYTES elements at the start of `data`, in order, as views into
// it; reading stops at a truncated element (CheckTensorData refuses those).
std::vector<std::string_view> BytesElements(std::string_view data);

// Checks that data holds exactly the bytes shape and datatype call for
// (for BYTES: element_count length-prefixed strings, nothing left over).
Status CheckTensorData(const Tensor& tensor);

}  // namespace thaw
