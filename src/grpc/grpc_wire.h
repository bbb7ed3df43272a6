// What the gRPC transport (grpc_transport.h) and `thaw load --protocol grpc`
// (grpc_load.h) both put on the wire: nghttp2 header entries, a message
// with gRPC's 5-byte prefix (compressed flag 0, big-endian length), and the
// bytes an nghttp2 session has to send. Pure functions; thread safety is
// the session's (one thread).
#pragma once

#include <google/protobuf/message_lite.h>
#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace thaw {

inline constexpr size_t kGrpcPrefixBytes = 5;

// A header entry pointing at `name` and `value`; nghttp2 copies both when
// the frame is submitted.
inline nghttp2_nv Http2Header(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), name.size(), value.size(),
                    NGHTTP2_NV_FLAG_NONE};
}

// `message` serialized after its uncompressed gRPC prefix; nullopt if it
// cannot be serialized.
inline std::optional<std::string> FramedGrpcMessage(const google::protobuf::MessageLite& message) {
  const size_t size = message.ByteSizeLong();
  std::string framed(kGrpcPrefixBytes + size, '\0');
  for (int b = 0; b < 4; ++b) framed[1 + b] = static_cast<char>((size >> (24 - 8 * b)) & 0xff);
  if (!message.SerializeToArray(framed.data() + kGrpcPrefixBytes, static_cast<int>(size))) return std::nullopt;
  return framed;
}

// Appends every byte `session` has to send now to `out`; false on an
// nghttp2 error (the connection is done).
inline bool TakeOutgoing(nghttp2_session* session, std::string* out) {
  for (;;) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session, &data);
    if (n < 0) return false;
    if (n == 0) return true;
    out->append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
  }
}

}  // namespace thaw
