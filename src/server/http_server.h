// HttpServer: HTTP/1.1 with keep-alive (requests parsed by Boost.Beast), on
// the caller's io_context (one thread). Each connection reads one request,
// hands it to the V2Handler, writes the response, and reads the next; many
// connections are served concurrently by the event loop.
// Limits: bodies above max_body_bytes get 413; a connection that has waited
// idle_timeout for a request (or for the rest of one) is closed, at most a
// quarter of idle_timeout later. Malformed HTTP closes the connection.
// Threading: not thread-safe; run the io_context on one thread.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "server/v2_handler.h"

namespace thaw {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;                 // 0 picks a free port
  size_t max_body_bytes = 256u << 20;   // 256 MiB
  std::chrono::milliseconds idle_timeout = std::chrono::minutes(5);
};

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& io, V2Handler& handler, HttpServerOptions options);
  ~HttpServer();

  // Binds and starts accepting. kInvalidArgument for a bad host,
  // kUnavailable if the address is in use.
  Status Start();
  // The bound port (after Start).
  uint16_t port() const;
  // Stops accepting; open connections finish their current exchange.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace thaw
