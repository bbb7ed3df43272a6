#include "tensor/tensor.h"

#include <cstring>
#include <limits>

namespace thaw {
namespace {

struct TypeInfo {
  DataType type;
  std::string_view name;
  size_t size;
};

constexpr TypeInfo kTypes[] = {
    {DataType::kBool, "BOOL", 1},     {DataType::kUint8, "UINT8", 1},
    {DataType::kUint16, "UINT16", 2}, {DataType::kUint32, "UINT32", 4},
    {DataType::kUint64, "UINT64", 8}, {DataType::kInt8, "INT8", 1},
    {DataType::kInt16, "INT16", 2},   {DataType::kInt32, "INT32", 4},
    {DataType::kInt64, "INT64", 8},   {DataType::kFp16, "FP16", 2},
    {DataType::kFp32, "FP32", 4},     {DataType::kFp64, "FP64", 8},
    {DataType::kBytes, "BYTES", 0},
};

}  // namespace

std::optional<DataType> ParseDataType(std::string_view name) {
  for (const auto& t : kTypes)
    if (t.name == name) return t.type;
  return std::nullopt;
}

std::string_view DataTypeName(DataType type) {
  for (const auto& t : kTypes)
    if (t.type == type) return t.name;
  return "UNKNOWN";
}

size_t DataTypeSize(DataType type) {
  for (const auto& t : kTypes)
    if (t.type == type) return t.size;
  return 0;
}

int64_t ElementCount(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) return -1;
    n *= d;
  }
  return n;
}

bool ShapeMatches(const Shape& declared, std::span<const int64_t> actual) {
  if (declared.size() != actual.size()) return false;
  for (size_t i = 0; i < declared.size(); ++i)
    if (actual[i] < 0 || (declared[i] >= 0 && declared[i] != actual[i])) return false;
  return true;
}

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(shape[i]);
  }
  s += ']';
  return s;
}

void AppendBytesElement(std::string* data, std::string_view element) {
  const uint32_t length = static_cast<uint32_t>(element.size());
  char prefix[4];
  std::memcpy(prefix, &length, sizeof prefix);  // little-endian host (x86-64 / aarch64)
  data->append(prefix, sizeof prefix);
  data->append(element);
}

std::vector<std::string_view> BytesElements(std::string_view data) {
  std::vector<std::string_view> elements;
  size_t pos = 0;
  while (data.size() - pos >= 4) {
    uint32_t length;
    std::memcpy(&length, data.data() + pos, 4);
    pos += 4;
    if (data.size() - pos < length) break;
    elements.push_back(data.substr(pos, length));
    pos += length;
  }
  return elements;
}

Status CheckTensorData(const Tensor& tensor) {
  const int64_t count = tensor.element_count();
  if (count < 0) return InvalidArgument("tensor '" + tensor.name + "' has an invalid shape " + ShapeToString(tensor.shape));
  if (tensor.datatype != DataType::kBytes) {
    // count * size can overflow (shape [2^61] of FP64 would "need" 0 bytes).
    const size_t elem = DataTypeSize(tensor.datatype);
    if (static_cast<uint64_t>(count) > std::numeric_limits<size_t>::max() / elem)
      return InvalidArgument("tensor '" + tensor.name + "': shape " + ShapeToString(tensor.shape) + " of " +
                             std::string(DataTypeName(tensor.datatype)) + " has too many bytes");
    const size_t want = static_cast<size_t>(count) * elem;
    if (tensor.data.size() != want)
      return InvalidArgument("tensor '" + tensor.name + "' has " + std::to_string(tensor.data.size()) +
                             " bytes of data; shape " + ShapeToString(tensor.shape) + " of " +
                             std::string(DataTypeName(tensor.datatype)) + " needs " + std::to_string(want));
    return Status::Ok();
  }
  size_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (tensor.data.size() - pos < 4) return InvalidArgument("tensor '" + tensor.name + "': BYTES data is truncated");
    uint32_t len;
    std::memcpy(&len, tensor.data.data() + pos, 4);
    pos += 4;
    if (tensor.data.size() - pos < len) return InvalidArgument("tensor '" + tensor.name + "': BYTES element is truncated");
    pos += len;
  }
  if (pos != tensor.data.size()) return InvalidArgument("tensor '" + tensor.name + "': BYTES data has trailing bytes");
  return Status::Ok();
}

}  // namespace thaw
