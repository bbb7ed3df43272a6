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
  // parameters.binary_data; when absent the request-wide binary_data_output
  // decides, when given it overrides it either way (as Triton does).
  std::optional<bool> binary_data;
  // parameters.classification: the top N classes instead of the tensor
  // (Triton's classification extension, ClassifyOutputs); 0 = the tensor.
  int64_t classification = 0;
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

// The binary extension's raw request (Inference-Header-Content-Length: 0):
// the whole body is the data of the model's only input, as Triton takes it.
// The shape is the input's config shape, its batch dim 1 when the model
// batches; the one variable dim left (at most one) follows from the byte
// count. A BYTES input is one element: the body is its bytes. Every output
// is returned, as binary data. Errors (kInvalidArgument): a model with
// more than one input, more than one variable dim, a size that does not
// divide into whole rows.
StatusOr<InferRequest> ParseRawInferRequest(const ModelConfig& model, std::string_view body);

// Triton's classification extension: each selected output with
// parameters.classification N becomes a BYTES tensor of its top min(N,
// classes) entries, highest first (ties by lower index), each
// "<score>:<index>" or "<score>:<index>:<label>" with the output's labels
// (TensorSpec::labels), score printed with 6 decimals. An output whose dim 0
// is the batch dim (-1 in the config) is ranked per row: shape [rows, k];
// otherwise over all its elements: shape [k]. kInvalidArgument for a BYTES
// output. `outputs` are the model's outputs (all or the selected ones), found by name.
Status ClassifyOutputs(const ModelConfig& model, const InferRequest& request, std::vector<Tensor>* outputs);

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

// The client side of the binary tensor extension: `request` as a body whose
// JSON header (header_length bytes) names every input with
// parameters.binary_data_size, followed by the inputs' bytes in order. Its
// outputs, binary_data_output, id and timeout_ms are carried over.
// ParseInferRequest(body, header_length) reads it back to `request`.
EncodedBody EncodeBinaryInferRequest(const InferRequest& request);

// {"error": "<message>"}
std::string EncodeError(std::string_view message);

// GET /v2
std::string EncodeServerMetadata(std::string_view name, std::string_view version,
                                 const std::vector<std::string>& extensions);

// GET /v2/models/{m}
std::string EncodeModelMetadata(const ModelConfig& model);

// GET /v2/models/{m}/config: the model as Triton's model configuration
// (ModelConfig as JSON: name, platform, backend, max_batch_size, input and
// output with data_type "TYPE_FP32", format and dims, dynamic_batching,
// instance_group, ...). With batching off, max_batch_size is 0 and dims are
// the whole shape; with batching on it is the config's max_batch_size and
// dims leave out the batch dim, as Triton's convention is. thaw's own
// settings are at /v2/models/{m}/settings.
std::string EncodeTritonModelConfig(const ModelConfig& model);

// A load's parameters.config override in Triton's model configuration
// format (what EncodeTritonModelConfig writes, edited), applied to `base`
// (the model's config.json): input and output (data_type, dims, format),
// max_batch_size with dims that leave out the batch dim, dynamic_batching
// (preferred_batch_size, max_queue_delay_microseconds: thaw's "fixed"
// batching), instance_group count (max_concurrency; CPU only),
// default_model_filename. version_policy, parameters and the fields that
// EncodeTritonModelConfig writes with their defaults are accepted as they
// are; any other field is kInvalidArgument naming it (thaw has no such
// setting), as is a bad value. The result is validated like config.json.
StatusOr<ModelConfig> ApplyTritonModelConfig(const ModelConfig& base, std::string_view json, const std::string& source);

// Whether a config text is in Triton's format (it has a key only Triton's
// has: input, output, max_batch_size, instance_group, dynamic_batching,
// version_policy, sequence_batching, ...) rather than thaw's.
bool LooksLikeTritonModelConfig(std::string_view json);

}  // namespace thaw::v2
