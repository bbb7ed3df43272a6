// GrpcTransport: unary gRPC calls over HTTP/2 (cleartext, prior knowledge,
// as every gRPC client connects without TLS), on the caller's io_context.
// HTTP/2 framing, HPACK and flow control are libnghttp2's; the gRPC layer
// on top (a 5-byte length-prefixed message each way, the status in
// trailers) is this file's.
//
// Why not libgrpc's server: it runs its own poller thread, so every call
// crossed threads twice to reach the io_context the runtime lives on, and
// its per-call work cost about twice the REST path's server CPU for fraud
// (bench/protocols). Here a call is parsed, served and answered on the event
// loop that serves REST, as an HTTP/1.1 request is.
//
// What a call is: a POST on /<package>.<Service>/<Method> with content-type
// application/grpc[+proto], one request message (DATA frames to
// END_STREAM). The transport hands {method, authorization, message} to the
// dispatcher, which answers once through the GrpcResponder: OK with a
// response message (headers, one DATA message, trailers grpc-status 0), or
// an error status (trailers-only: grpc-status and a percent-encoded
// grpc-message). Streaming RPCs are not served (one message each way).
//
// Refusals, each a gRPC status the client library reports:
//   - a method the dispatcher does not know: UNIMPLEMENTED (the dispatcher
//     says so);
//   - a content-type that is not application/grpc: HTTP 415, as gRPC's
//     HTTP/2 mapping asks;
//   - a request message over max_message_bytes (after decompression):
//     RESOURCE_EXHAUSTED, as libgrpc answers; its bytes are dropped as they
//     arrive, not buffered;
//   - a compressed message (grpc-encoding gzip or deflate is inflated,
//     server/compression.h) in another coding: UNIMPLEMENTED with
//     grpc-accept-encoding; corrupt data INTERNAL;
//   - no message, or more than one, or a truncated one: INTERNAL.
// A client that resets a stream cancels nothing already dispatched: the
// dispatcher's answer is dropped when it comes.
//
// File descriptors: the listening socket and accepted sockets are
// close-on-exec from creation (worker processes inherit none). Out of
// descriptors, accepting pauses for accept_backoff.
//
// Threading: everything runs on the io_context's thread, except Shutdown,
// which must be called from another thread while the io_context runs (or
// after the server has been shut down once: it is idempotent). The
// responder may be used only on the io thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "base/status.h"
#include "grpc/status_codes.h"

namespace google::protobuf {
class MessageLite;
}

namespace thaw {

struct GrpcTransportOptions {
  std::string host = "127.0.0.1";  // an IP address
  uint16_t port = 8001;            // 0 picks a free port
  size_t max_message_bytes = 256u << 20;
  std::chrono::milliseconds accept_backoff{100};
};

struct GrpcCallStatus {
  GrpcCallStatus() = default;
  GrpcCallStatus(GrpcCode code, std::string message = {}) : code(code), message(std::move(message)) {}
  GrpcCode code = GrpcCode::kOk;
  std::string message;
  bool ok() const { return code == GrpcCode::kOk; }
};

// One unary call as it arrived.
struct GrpcCall {
  std::string method;                        // ":path", e.g. "/inference.GRPCInferenceService/ModelInfer"
  std::optional<std::string> authorization;  // the "authorization" metadata entry
  std::string message;                       // the request message's bytes, decompressed
};

namespace grpc_transport_internal {
struct Hub;
struct Connection;
}  // namespace grpc_transport_internal

// Answers one call, once. Movable; dropping it unanswered is a bug (the
// call would stay open and Shutdown would wait for it).
class GrpcResponder {
 public:
  GrpcResponder(std::shared_ptr<grpc_transport_internal::Hub> hub,
                std::weak_ptr<grpc_transport_internal::Connection> connection, int32_t stream_id);
  GrpcResponder(GrpcResponder&&) = default;
  GrpcResponder& operator=(GrpcResponder&&) = default;

  // OK and `response` serialized; or the error status (response ignored).
  void Finish(const GrpcCallStatus& status, const google::protobuf::MessageLite* response);

 private:
  std::shared_ptr<grpc_transport_internal::Hub> hub_;
  std::weak_ptr<grpc_transport_internal::Connection> connection_;
  int32_t stream_id_ = 0;
};

using GrpcDispatcher = std::function<void(GrpcCall call, GrpcResponder responder)>;

class GrpcTransport {
 public:
  // `dispatcher` is called on the io thread for every complete call, until Shutdown.
  GrpcTransport(boost::asio::io_context& io, GrpcTransportOptions options, GrpcDispatcher dispatcher);
  ~GrpcTransport();

  // Binds and starts accepting. kInvalidArgument for a host that is not an
  // IP address, kUnavailable if the address cannot be bound.
  Status Start();
  uint16_t port() const;  // after Start

  // Stops accepting, tells every connection GOAWAY (calls already sent are
  // served, new ones refused), waits for every dispatched call to be
  // answered, then closes the connections. Not on the io thread (see above).
  void Shutdown();

  size_t calls_in_flight() const;

 private:
  std::shared_ptr<grpc_transport_internal::Hub> hub_;
};

}  // namespace thaw
