// How the HTTP server turns bytes into HttpRequests, apart from socket I/O:
// a fresh parser with the server's limits per request, the body bytes that
// came with the header, and the message -> HttpRequest conversion.
// HttpServer's sessions run these steps with Beast's asynchronous reads;
// ParseRequestStream runs the same steps with Beast's synchronous reads on
// bytes in memory, so the fuzzer (fuzz/http_request_fuzz.cc) and tests reach
// the server's parsing without sockets.
// Errors: Beast error codes for malformed HTTP (the server closes the
// connection) and body_limit (413); kInvalidArgument from ToHttpRequest for a
// malformed Inference-Header-Content-Length (400).
// Thread safety: pure functions on the caller's objects.
#pragma once

#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "server/http_server.h"
#include "server/v2_handler.h"

namespace thaw {

using HttpRequestParser = boost::beast::http::request_parser<boost::beast::http::string_body>;

// Room for a typical request in one read: a request that fits is read with
// one recv (beast's default 512-byte reads took two or more).
constexpr size_t kRequestReadBufferBytes = 8 << 10;

// Replaces `parser` with a fresh one for the next request on a connection,
// limited as `options` say.
void StartRequestParser(std::optional<HttpRequestParser>* parser, const HttpServerOptions& options);

// The body limit of a chunked request, counted once per chunk. (Beast 1.74
// subtracts a chunk's size from its body_limit again each time the chunk's
// extensions arrive in pieces, so a small body read in small pieces could
// be refused as too large.) The parser keeps a pointer to `on_chunk`: the
// object must stay in place while the parser lives.
struct ChunkedBodyLimit {
  uint64_t bytes_left = 0;
  std::function<void(uint64_t, boost::beast::string_view, boost::beast::error_code&)> on_chunk;
};

// Once the header is read: a chunked request's body is limited by `limit`
// to options.max_body_bytes instead of by the parser. Content-Length bodies
// keep the parser's limit (checked when the header ends).
void LimitChunkedBody(HttpRequestParser& parser, ChunkedBodyLimit& limit, const HttpServerOptions& options);

// After the header: when `buffer` already holds the whole body (it usually
// came with the header), parses it from there. Returns an error other than
// need_more if the body is malformed or over the limit; the caller reads the
// rest from the socket when the parser is not done.
boost::beast::error_code ParseBufferedBody(HttpRequestParser& parser, boost::beast::flat_buffer& buffer);

// The complete message as the handler's request (moves the body out).
StatusOr<HttpRequest> ToHttpRequest(HttpRequestParser::value_type& message);

// One request as a session would see it.
struct ParsedRequest {
  enum class Outcome {
    kRequest,       // a complete request; `request` is set
    kBadRequest,    // complete HTTP but ToHttpRequest refused it (400); `error` is set
    kBodyTooLarge,  // the body exceeds max_body_bytes (413, then close)
    kMalformed,     // not HTTP, or the stream ended inside a request (close)
  };
  Outcome outcome = Outcome::kMalformed;
  HttpRequest request;
  Status error;
  bool keep_alive = false;
  bool expect_continue = false;  // the session answers "100 Continue" before reading the body
};

// Parses `bytes` as one connection's stream the way a session does: request
// after request while the connection would stay open, each socket read
// returning at most `read_size` (>= 1) bytes. Stops at the first outcome
// that closes the connection or when the bytes end between requests.
std::vector<ParsedRequest> ParseRequestStream(std::string_view bytes, const HttpServerOptions& options,
                                              size_t read_size = kRequestReadBufferBytes);

}  // namespace thaw
