// HttpServer: HTTP/1.1 with keep-alive (requests parsed by Boost.Beast), on
// the caller's io_context (one thread). Each connection reads one request,
// hands it to the V2Handler, writes the response, and reads the next; many
// connections are served concurrently by the event loop.
//
// Limits (HttpServerOptions; each refusal is a JSON {"error": ...} body and
// closes the connection after the response, draining what the client still
// sends for a moment so that it can read the answer):
//   - a body above max_body_bytes gets 413, before it is read;
//   - request bodies still arriving hold at most max_buffered_body_bytes
//     together; the request whose bytes would pass it gets 503 with
//     Retry-After, and its buffered bytes are freed at once;
//   - a body that is not complete body_read_timeout after its header gets
//     408; a connection that has waited idle_timeout for a request (or for
//     the rest of its header) is closed without a response. Both are
//     enforced by one sweep, at most a quarter of the timeout late;
//   - a header over 8 KiB gets 431.
// File descriptors: the listening socket and every accepted socket are
// close-on-exec from creation (accept4 with SOCK_CLOEXEC), so processes the
// server starts inherit none of them. When accept fails for lack of file
// descriptors (RLIMIT_NOFILE or the system's limit), the server answers one
// waiting client 503 through a reserved descriptor, stops accepting for
// accept_backoff and tries again (no busy loop); it logs accept_fd_limit
// once per episode and accept_recovered when accepting works again.
// Threading: not thread-safe; run the io_context on one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "server/v2_handler.h"

namespace thaw {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                            // 0 picks a free port
  size_t max_body_bytes = 256u << 20;              // 256 MiB per request
  size_t max_buffered_body_bytes = size_t{512} << 20;  // 512 MiB over all incomplete bodies
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(5);
  std::chrono::milliseconds body_read_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds accept_backoff = std::chrono::milliseconds(100);

  // kInvalidArgument naming the field if a limit or timeout is zero. A
  // body_read_timeout longer than idle_timeout has no effect (the idle
  // timeout ends the read first).
  Status Validate() const;
};

// Counters of the limits at work, for tests and logs.
struct HttpServerStats {
  uint64_t connections_accepted = 0;
  uint64_t refused_body_too_large = 0;     // 413
  uint64_t refused_buffered_bytes = 0;     // 503: the global cap
  uint64_t body_read_timeouts = 0;         // 408
  uint64_t refused_header_too_large = 0;   // 431
  uint64_t accept_fd_limit_backoffs = 0;   // times accept stopped for lack of descriptors
  uint64_t shed_at_fd_limit = 0;           // clients answered 503 through the reserve descriptor
  size_t buffered_body_bytes = 0;          // now
  size_t peak_buffered_body_bytes = 0;
};

class HttpServer {
 public:
  // `clock` times the idle and body-read timeouts; it must outlive the server.
  HttpServer(boost::asio::io_context& io, V2Handler& handler, const Clock& clock, HttpServerOptions options);
  ~HttpServer();

  // Binds and starts accepting. kInvalidArgument for a bad host or options,
  // kUnavailable if the address is in use.
  Status Start();
  // The bound port (after Start).
  uint16_t port() const;
  // Stops accepting; open connections finish their current exchange.
  void Stop();
  // On the io_context thread.
  HttpServerStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace thaw
