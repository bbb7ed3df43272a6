// The worker IPC decoders (ipc/messages.h): FrameReader splitting a byte
// stream delivered in pieces, and every Decode* function on every frame's
// payload (whatever its type byte says, as a hostile peer may lie).
// Input: byte 0 picks the piece size; the rest is the stream.
// Properties: no crash; errors are kInvalidArgument; a decoded message
// encodes to a frame that decodes to the same message (compared through a
// second encoding); frames come out the same whatever the piece size.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "ipc/messages.h"

namespace {

namespace ipc = thaw::ipc;

template <typename Message>
void CheckDecoder(thaw::StatusOr<Message> (*decode)(std::string_view), std::string_view payload) {
  auto message = decode(payload);
  if (!message.ok()) {
    FUZZ_CHECK(message.status().code() == thaw::StatusCode::kInvalidArgument, "decode error is not kInvalidArgument");
    return;
  }
  const std::string frame = ipc::Encode(message.value());
  FUZZ_CHECK(frame.size() >= ipc::kFrameHeaderBytes, "encoded frame too short");
  auto again = decode(std::string_view(frame).substr(ipc::kFrameHeaderBytes));
  FUZZ_CHECK(again.ok(), "re-encoded message does not decode");
  FUZZ_CHECK(ipc::Encode(again.value()) == frame, "IPC round trip changed the message");
}

void DecodeAll(std::string_view payload) {
  CheckDecoder(&ipc::DecodeReady, payload);
  CheckDecoder(&ipc::DecodeInitError, payload);
  CheckDecoder(&ipc::DecodeInferRequest, payload);
  CheckDecoder(&ipc::DecodeInferResponse, payload);
  CheckDecoder(&ipc::DecodeSpawn, payload);
  CheckDecoder(&ipc::DecodePrepared, payload);
  CheckDecoder(&ipc::DecodeForked, payload);
}

// Frames read from `stream` appended `piece` bytes at a time; stops at the first error.
std::vector<ipc::Frame> ReadFrames(std::string_view stream, size_t piece, bool* failed) {
  ipc::FrameReader reader;
  std::vector<ipc::Frame> frames;
  *failed = false;
  for (size_t at = 0; at < stream.size() && !*failed; at += piece) {
    const std::string_view part = stream.substr(at, piece);
    reader.Append(part.data(), part.size());
    for (;;) {
      auto next = reader.Next();
      if (!next.ok()) {
        FUZZ_CHECK(next.status().code() == thaw::StatusCode::kInvalidArgument, "frame error is not kInvalidArgument");
        *failed = true;
        break;
      }
      if (!next->has_value()) break;
      frames.push_back(std::move(**next));
    }
  }
  return frames;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t piece = data[0] == 0 ? size : data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  bool failed_in_pieces = false, failed_whole = false;
  const std::vector<ipc::Frame> frames = ReadFrames(stream, piece, &failed_in_pieces);
  const std::vector<ipc::Frame> whole = ReadFrames(stream, stream.size() + 1, &failed_whole);
  FUZZ_CHECK(failed_in_pieces == failed_whole && frames.size() == whole.size(), "frames depend on the piece size");
  for (size_t i = 0; i < frames.size(); ++i) {
    FUZZ_CHECK(frames[i].type == whole[i].type && frames[i].payload == whole[i].payload,
               "frames depend on the piece size");
    DecodeAll(frames[i].payload);
  }
  // The decoders on the raw bytes too, so they are fuzzed without framing.
  DecodeAll(stream);
  return 0;
}
