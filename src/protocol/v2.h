// KServe v2 / Open Inference Protocol, REST: decoding infer requests and
// encoding responses, errors and metadata. JSON tensors (nested or flat data)
// and the binary tensor data extension (Inference-Header-Content-Length,
// parameters.binary_data_size, binary_data, binary_data_output).
//
// Errors: every failure is kInvalidArgument with a message that names the
// offending field or tensor, suitable for returning to the client as
// {"error": "..."} with HTTP 400.
// Thread safety: pure functions; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "repo/model_config.h"
#include "tensor/tensor.h"

namespace thaw::v2 {

struct RequestedOutput {
  std::string name;
  bool binary_data = false;  // parameters.binary_data; binary_data_output also makes it binary
};

struct InferRequest {
  std::optional<std::string> id;        // echoed in the response when present
  std::vector<Tensor> inputs;           // after ValidateInferRequest: config order
  std::vector<RequestedOutput> outputs; // empty = every output (binary iff binary_data_output)
  bool binary_data_output = false;      // request-wide parameters.binary_data_output
  std::optional<int64_t> timeout_ms;    // request parameters.timeout_ms, if given
};

// `body` is the whole HTTP body. `header_length` is the value of the
// Inference-Header-Content-Length header when present: the JSON is then
// body[0, header_length) and binary tensor data follows in input order.
StatusOr<InferRequest> ParseInferRequest(std::string_view body, std::optional<size_t> header_length);

// Checks the request against the model: each config input given exactly once
// and no others; datatype equal; rank equal; each fixed dim equal; requested
// outputs exist. Sorts inputs into config order.
Status ValidateInferRequest(const ModelConfig& model, InferRequest* request);

struct EncodedBody {
  std::string body;
  std::optional<size_t> header_length;  // set when any output is binary
  std::string content_type;             // application/json or application/octet-stream
};

// Encodes a response. `outputs` are the model's outputs in config order; the
// response carries those the request selected (all when none selected), each
// as JSON data or as binary data per the request, in the request's order (config
// order when none selected). `parameters_json` is an optional JSON object text
// ("{...}") placed as the response's "parameters". Floats are written as the
// shortest text that reads back exactly; NaN and infinities as null.
EncodedBody EncodeInferResponse(const std::string& model_name, const InferRequest& request,
                                const std::vector<Tensor>& outputs, std::string_view parameters_json = {});

// {"error": "<message>"}
std::string EncodeError(std::string_view message);

// GET /v2
std::string EncodeServerMetadata(std::string_view name, std::string_view version,
                                 const std::vector<std::string>& extensions);

// GET /v2/models/{m}
std::string EncodeModelMetadata(const ModelConfig& model);

}  // namespace thaw::v2
