// Batch assembly for adaptive batching: ConcatBatch joins several requests'
// inputs into one batch along dim 0 (the batch dimension), SplitBatch cuts a
// batch's outputs back into per-request outputs, and ShapeKey says which
// requests may share a batch.
//
// Guarantees: data is row-major, so rows along dim 0 are contiguous and a
// concatenation is a byte append per tensor; a BYTES tensor's data is its
// length-prefixed elements back to back, so the same append concatenates the
// element lists. SplitBatch(ConcatBatch(r), rows of r) == r, byte for byte.
// Every tensor handled here must have rank >= 1 (a batch dim) and data that
// passes CheckTensorData. Within one request all tensors must agree on dim 0
// (the request's row count); across requests only dim 0 may differ.
// Errors: kInvalidArgument naming the offending tensor (and request index).
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/status.h"
#include "tensor/tensor.h"

namespace thaw {

// A request's row count: dim 0 shared by all its tensors. kInvalidArgument if
// it has no tensors, a tensor has rank 0, or the tensors disagree on dim 0.
StatusOr<int64_t> BatchRows(const std::vector<Tensor>& tensors);

// Concatenates along dim 0. All requests must hold the same number of
// tensors with, position by position, the same name, datatype and non-batch
// dims. Result tensor i has name/datatype of request 0's tensor i and dim 0
// equal to the sum of the requests' dim 0. At least one request is required.
StatusOr<std::vector<Tensor>> ConcatBatch(const std::vector<std::vector<Tensor>>& requests);

// The inverse of ConcatBatch: each output's dim 0 must equal the sum of
// rows_per_request (each >= 0); result[r] holds, for every output, rows
// [sum of earlier rows, + rows_per_request[r]) with the same name/datatype.
StatusOr<std::vector<std::vector<Tensor>>> SplitBatch(const std::vector<Tensor>& outputs,
                                                      const std::vector<int64_t>& rows_per_request);

// A key naming each tensor's name, datatype and non-batch dims in order
// (e.g. "5:input:FP32[*,3,224];"); requests with equal keys may be
// concatenated (given consistent dim 0). Rank-0 tensors give "[]".
std::string ShapeKey(const std::vector<Tensor>& inputs);

}  // namespace thaw
