// v2 infer request decoding (protocol/v2.h), JSON and binary tensors.
// Input: one mode byte, then for mode 1 a u32 little-endian
// Inference-Header-Content-Length; the rest is the HTTP body.
// Properties: no crash; every error is kInvalidArgument; a decoded request
// validates against the example models without crashing; re-encoding its
// inputs as a JSON response gives valid JSON, and as a binary response reads
// back to the same tensors byte for byte.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "protocol/v2.h"

namespace {

using thaw::ModelConfig;

std::vector<ModelConfig> Models() {
  const char* configs[] = {
      R"({"inputs":[{"name":"features","datatype":"FP32","shape":[-1,30]}],
          "outputs":[{"name":"probability","datatype":"FP32","shape":[-1,1]}]})",
      R"({"inputs":[{"name":"input_ids","datatype":"INT64","shape":[-1,-1]}],
          "outputs":[{"name":"logits","datatype":"FP32","shape":[-1,8]}]})",
      R"({"inputs":[{"name":"text","datatype":"BYTES","shape":[-1]},{"name":"x","datatype":"FP16","shape":[2]}],
          "outputs":[{"name":"y","datatype":"BOOL","shape":[-1]}]})",
  };
  std::vector<ModelConfig> models;
  for (const char* json : configs) {
    auto config = thaw::ParseModelConfig(json, "m", "/nonexistent/m", "fuzz");
    if (!config.ok()) std::abort();
    models.push_back(config.value());
  }
  return models;
}

void CheckRoundTrip(const thaw::v2::InferRequest& request) {
  const thaw::v2::InferRequest select_all;
  thaw::v2::EncodedBody json = thaw::v2::EncodeInferResponse("m", select_all, request.inputs);
  simdjson::dom::parser parser;
  simdjson::dom::element ignored;
  const bool valid = !parser.parse(json.body).get(ignored);
  if (!valid) std::fprintf(stderr, "response: %s\n", json.body.c_str());
  FUZZ_CHECK(valid, "JSON response is not valid JSON");

  thaw::v2::InferRequest binary_out;
  binary_out.binary_data_output = true;
  thaw::v2::EncodedBody binary = thaw::v2::EncodeInferResponse("m", binary_out, request.inputs);
  if (request.inputs.empty()) return;
  FUZZ_CHECK(binary.header_length.has_value(), "binary response without a header length");
  // An output entry has an input's fields: read the response back as a request.
  std::string body = binary.body;
  const size_t at = body.find("\"outputs\":");
  FUZZ_CHECK(at != std::string::npos && at < *binary.header_length, "no outputs in the response");
  body.replace(at, 10, "\"inputs\": ");
  auto back = thaw::v2::ParseInferRequest(body, binary.header_length);
  FUZZ_CHECK(back.ok(), "binary response does not read back");
  FUZZ_CHECK(back->inputs.size() == request.inputs.size(), "binary round trip changed the input count");
  for (size_t i = 0; i < request.inputs.size(); ++i) {
    const thaw::Tensor& a = request.inputs[i];
    const thaw::Tensor& b = back->inputs[i];
    FUZZ_CHECK(a.name == b.name && a.datatype == b.datatype && a.shape == b.shape && a.data == b.data,
               "binary round trip changed a tensor");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<ModelConfig> models = Models();
  if (size < 1) return 0;
  std::optional<size_t> header_length;
  size_t skip = 1;
  if (data[0] & 1) {
    if (size < 5) return 0;
    uint32_t length;
    std::memcpy(&length, data + 1, 4);
    header_length = length;
    skip = 5;
  }
  const std::string_view body(reinterpret_cast<const char*>(data + skip), size - skip);
  auto request = thaw::v2::ParseInferRequest(body, header_length);
  if (!request.ok()) {
    FUZZ_CHECK(request.status().code() == thaw::StatusCode::kInvalidArgument, "error is not kInvalidArgument");
    return 0;
  }
  for (const thaw::Tensor& t : request->inputs) FUZZ_CHECK(thaw::CheckTensorData(t).ok(), "decoded tensor is inconsistent");
  CheckRoundTrip(request.value());
  for (const ModelConfig& model : models) {
    thaw::v2::InferRequest copy = request.value();
    thaw::Status s = thaw::v2::ValidateInferRequest(model, &copy);
    FUZZ_CHECK(s.ok() || s.code() == thaw::StatusCode::kInvalidArgument, "validation error is not kInvalidArgument");
    if (s.ok()) FUZZ_CHECK(copy.inputs.size() == model.inputs.size(), "validated request lacks inputs");
  }
  return 0;
}
