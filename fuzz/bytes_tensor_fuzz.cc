// The BYTES tensor format (tensor/tensor.h: elements of u32 length + bytes)
// where it is decoded: CheckTensorData, the v2 binary and JSON codecs, the
// IPC tensor codec and batch split/concatenation.
// Input: byte 0 picks rows (low 4 bits) and whether the element count comes
// from the shape (high bit clear: shape [rows, byte 1 % 4]) or from the whole
// elements found in the data (shape [n]); byte 2 picks a batch split; the
// rest is the tensor data.
// Properties: CheckTensorData accepts exactly well-formed data; accepted
// tensors survive, byte for byte, the binary v2 round trip, the IPC round
// trip and split + concat, and the JSON v2 round trip when every element is
// valid UTF-8 (other bytes are escaped as U+0080..U+00FF by design); a
// tensor with an empty dimension is refused as a request input (400).
#include <simdjson.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "ipc/messages.h"
#include "protocol/v2.h"
#include "tensor/batch.h"

namespace {

using thaw::Tensor;

bool SameTensor(const Tensor& a, const Tensor& b) {
  return a.name == b.name && a.datatype == b.datatype && a.shape == b.shape && a.data == b.data;
}

// Whole elements at the start of `data` and the bytes they take.
std::pair<int64_t, size_t> WholeElements(std::string_view data) {
  int64_t n = 0;
  size_t pos = 0;
  while (data.size() - pos >= 4) {
    uint32_t len;
    std::memcpy(&len, data.data() + pos, 4);
    if (data.size() - pos - 4 < len) break;
    pos += 4 + len;
    ++n;
  }
  return {n, pos};
}

bool AllValidUtf8(const Tensor& t) {
  size_t pos = 0;
  while (pos < t.data.size()) {
    uint32_t len;
    std::memcpy(&len, t.data.data() + pos, 4);
    if (!simdjson::validate_utf8(t.data.data() + pos + 4, len)) return false;
    pos += 4 + len;
  }
  return true;
}

// A response's outputs read back as a request's inputs. Requests refuse
// empty dimensions (400), so a tensor with one must be refused, not read.
Tensor ReadBack(const thaw::v2::EncodedBody& encoded, bool has_empty_dimension) {
  std::string body = encoded.body;
  const size_t at = body.find("\"outputs\":");
  FUZZ_CHECK(at != std::string::npos, "no outputs in the response");
  body.replace(at, 10, "\"inputs\": ");
  auto back = thaw::v2::ParseInferRequest(body, encoded.header_length);
  if (has_empty_dimension) {
    FUZZ_CHECK(!back.ok() && back.status().code() == thaw::StatusCode::kInvalidArgument,
               "an input with an empty dimension was accepted");
    return Tensor{};
  }
  FUZZ_CHECK(back.ok(), "an encoded response does not read back");
  FUZZ_CHECK(back->inputs.size() == 1, "round trip changed the input count");
  return back->inputs[0];
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  Tensor t;
  t.name = "text";
  t.datatype = thaw::DataType::kBytes;
  std::string_view bytes(reinterpret_cast<const char*>(data + 3), size - 3);
  if (data[0] & 0x80) {
    auto [n, used] = WholeElements(bytes);
    t.shape = {n};
    t.data.assign(bytes.substr(0, used));
  } else {
    t.shape = {data[0] & 0x0f, data[1] % 4};
    t.data.assign(bytes);
  }
  thaw::Status check = thaw::CheckTensorData(t);
  const auto [n, used] = WholeElements(t.data);
  const bool well_formed = n == t.element_count() && used == t.data.size();
  FUZZ_CHECK(check.ok() == well_formed, "CheckTensorData disagrees with the format");
  if (!check.ok()) return 0;

  const bool empty = std::find(t.shape.begin(), t.shape.end(), 0) != t.shape.end();
  thaw::v2::InferRequest binary_out;
  binary_out.binary_data_output = true;
  const Tensor from_binary = ReadBack(thaw::v2::EncodeInferResponse("m", binary_out, {t}), empty);
  if (!empty) FUZZ_CHECK(SameTensor(from_binary, t), "binary v2 round trip");
  const Tensor from_json = ReadBack(thaw::v2::EncodeInferResponse("m", {}, {t}), empty);
  if (!empty && AllValidUtf8(t)) FUZZ_CHECK(SameTensor(from_json, t), "JSON v2 round trip");

  thaw::ipc::FrameReader reader;
  const std::string frame = thaw::ipc::Encode(thaw::ipc::InferRequestMessage{.request_id = 7, .inputs = {t}});
  reader.Append(frame.data(), frame.size());
  auto next = reader.Next();
  FUZZ_CHECK(next.ok() && next->has_value(), "IPC frame not read back");
  auto decoded = thaw::ipc::DecodeInferRequest((*next)->payload);
  FUZZ_CHECK(decoded.ok() && decoded->inputs.size() == 1 && SameTensor(decoded->inputs[0], t), "IPC round trip");

  // Split dim 0 into requests of 0..3 rows as byte 2's bit pairs say, the last taking the rest.
  std::vector<int64_t> rows;
  int64_t left = t.shape[0];
  for (int k = 0; k < 4 && left > 0; ++k) {
    const int64_t r = std::min<int64_t>(left, (data[2] >> (2 * k)) & 3);
    rows.push_back(r);
    left -= r;
  }
  rows.push_back(left);
  auto parts = thaw::SplitBatch({t}, rows);
  FUZZ_CHECK(parts.ok(), "split of a well-formed tensor failed");
  std::vector<std::vector<Tensor>> requests;
  for (auto& part : parts.value()) {
    FUZZ_CHECK(part.size() == 1 && thaw::CheckTensorData(part[0]).ok(), "split produced a malformed part");
    requests.push_back(part);
  }
  auto joined = thaw::ConcatBatch(requests);
  FUZZ_CHECK(joined.ok() && joined->size() == 1 && SameTensor((*joined)[0], t), "split + concat changed the tensor");
  return 0;
}
