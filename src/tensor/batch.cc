#include "tensor/batch.h"

#include <cstring>

namespace thaw {
namespace {

std::string Quote(const Tensor& t) { return "'" + t.name + "'"; }

Shape NonBatchDims(const Shape& shape) { return Shape(shape.begin() + 1, shape.end()); }

// Byte offset of the start of each element in a BYTES tensor's data, plus the
// end; the data must already have passed CheckTensorData.
std::vector<size_t> BytesElementOffsets(const Tensor& t) {
  const int64_t count = t.element_count();
  std::vector<size_t> offsets;
  offsets.reserve(static_cast<size_t>(count) + 1);
  size_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    offsets.push_back(pos);
    uint32_t len;
    std::memcpy(&len, t.data.data() + pos, 4);
    pos += 4 + len;
  }
  offsets.push_back(pos);
  return offsets;
}

}  // namespace

StatusOr<int64_t> BatchRows(const std::vector<Tensor>& tensors) {
  if (tensors.empty()) return InvalidArgument("a batched request needs at least one tensor");
  int64_t rows = -1;
  for (const Tensor& t : tensors) {
    if (t.shape.empty()) return InvalidArgument("tensor " + Quote(t) + " has rank 0; batching needs a batch dim");
    if (t.shape[0] < 0) return InvalidArgument("tensor " + Quote(t) + " has a negative batch dim");
    if (rows < 0) {
      rows = t.shape[0];
    } else if (t.shape[0] != rows) {
      return InvalidArgument("tensor " + Quote(t) + " has batch dim " + std::to_string(t.shape[0]) +
                             " but the request's other tensors have " + std::to_string(rows));
    }
  }
  return rows;
}

StatusOr<std::vector<Tensor>> ConcatBatch(const std::vector<std::vector<Tensor>>& requests) {
  if (requests.empty()) return InvalidArgument("ConcatBatch needs at least one request");
  const std::vector<Tensor>& first = requests[0];
  for (size_t r = 0; r < requests.size(); ++r) {
    const std::vector<Tensor>& req = requests[r];
    auto rows = BatchRows(req);
    if (!rows.ok()) return Status(rows.status().code(), "request " + std::to_string(r) + ": " + rows.status().message());
    if (req.size() != first.size())
      return InvalidArgument("request " + std::to_string(r) + " has " + std::to_string(req.size()) +
                             " tensors; request 0 has " + std::to_string(first.size()));
    for (size_t i = 0; i < req.size(); ++i) {
      const Tensor& t = req[i];
      const Tensor& f = first[i];
      const std::string where = "request " + std::to_string(r) + " tensor " + Quote(t);
      if (t.name != f.name) return InvalidArgument(where + " is at position " + std::to_string(i) + " where request 0 has " + Quote(f));
      if (t.datatype != f.datatype)
        return InvalidArgument(where + " is " + std::string(DataTypeName(t.datatype)) + "; request 0 has " +
                               std::string(DataTypeName(f.datatype)));
      if (NonBatchDims(t.shape) != NonBatchDims(f.shape))
        return InvalidArgument(where + " has shape " + ShapeToString(t.shape) + "; request 0 has " +
                               ShapeToString(f.shape) + " (only dim 0 may differ)");
      THAW_RETURN_IF_ERROR(CheckTensorData(t));
    }
  }
  std::vector<Tensor> out;
  out.reserve(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    Tensor t;
    t.name = first[i].name;
    t.datatype = first[i].datatype;
    t.shape = first[i].shape;
    t.shape[0] = 0;
    size_t bytes = 0;
    for (const auto& req : requests) bytes += req[i].data.size();
    t.data.reserve(bytes);
    for (const auto& req : requests) {
      t.shape[0] += req[i].shape[0];
      t.data += req[i].data;
    }
    out.push_back(std::move(t));
  }
  return out;
}

StatusOr<std::vector<std::vector<Tensor>>> SplitBatch(const std::vector<Tensor>& outputs,
                                                      const std::vector<int64_t>& rows_per_request) {
  int64_t total = 0;
  for (size_t r = 0; r < rows_per_request.size(); ++r) {
    if (rows_per_request[r] < 0) return InvalidArgument("request " + std::to_string(r) + " has a negative row count");
    total += rows_per_request[r];
  }
  std::vector<std::vector<Tensor>> result(rows_per_request.size());
  for (auto& req : result) req.reserve(outputs.size());
  for (const Tensor& t : outputs) {
    if (t.shape.empty()) return InvalidArgument("output " + Quote(t) + " has rank 0; cannot split along a batch dim");
    if (t.shape[0] != total)
      return InvalidArgument("output " + Quote(t) + " has batch dim " + std::to_string(t.shape[0]) +
                             " but the requests' rows sum to " + std::to_string(total));
    THAW_RETURN_IF_ERROR(CheckTensorData(t));
    Shape row_shape = t.shape;
    row_shape[0] = 1;
    const int64_t per_row = ElementCount(row_shape);
    std::vector<size_t> offsets;  // BYTES only
    if (t.datatype == DataType::kBytes) offsets = BytesElementOffsets(t);
    const size_t row_bytes = static_cast<size_t>(per_row) * DataTypeSize(t.datatype);
    int64_t row = 0;
    for (size_t r = 0; r < rows_per_request.size(); ++r) {
      Tensor part;
      part.name = t.name;
      part.datatype = t.datatype;
      part.shape = t.shape;
      part.shape[0] = rows_per_request[r];
      const int64_t end_row = row + rows_per_request[r];
      if (t.datatype == DataType::kBytes) {
        const size_t begin = offsets[static_cast<size_t>(row * per_row)];
        const size_t end = offsets[static_cast<size_t>(end_row * per_row)];
        part.data = t.data.substr(begin, end - begin);
      } else {
        part.data = t.data.substr(static_cast<size_t>(row) * row_bytes, static_cast<size_t>(rows_per_request[r]) * row_bytes);
      }
      row = end_row;
      result[r].push_back(std::move(part));
    }
  }
  return result;
}

std::string ShapeKey(const std::vector<Tensor>& inputs) {
  std::string key;
  for (const Tensor& t : inputs) {
    // Length-prefixed so no name can forge a separator.
    key += std::to_string(t.name.size());
    key += ':';
    key += t.name;
    key += ':';
    key += DataTypeName(t.datatype);
    key += '[';
    for (size_t d = 0; d < t.shape.size(); ++d) {
      if (d > 0) key += ',';
      key += d == 0 ? std::string("*") : std::to_string(t.shape[d]);
    }
    key += "];";
  }
  return key;
}

}  // namespace thaw
