// UpstreamClient: an edge thaw's HTTP/1.1 client to its upstream (a central
// thaw, `thaw serve --upstream http://host:port`), for the requests the
// offload policy (policy/offload.h) sends there.
//
// Guarantees: connections are kept alive and reused (a WAN round trip per
// request, not three); at most max_connections are open, further requests
// wait for one in arrival order; a request that fails on a reused
// connection (closed by the upstream meanwhile) is sent once more on a new
// one; every Forward gets exactly one answer: the upstream's response, or
// 502 with a JSON error naming the upstream and the failure (none silently
// lost). Forwarded requests carry kForwardedByEdgeHeader, so the upstream's
// response says served_by "upstream".
// Ownership: lives on the server's event loop, which must outlive it;
// Forward is called on that loop and answers on it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "base/clock.h"
#include "base/status.h"
#include "server/v2_handler.h"

namespace thaw {

struct UpstreamOptions {
  std::string url;  // http://host:port
  int max_connections = 64;
  std::chrono::milliseconds timeout{60000};  // one request's whole exchange
};

// InvalidArgument unless url is http://host:port with a port in 1..65535.
Status Validate(const UpstreamOptions& options);

class UpstreamClient {
 public:
  UpstreamClient(boost::asio::io_context& io, const Clock& clock, UpstreamOptions options);
  ~UpstreamClient();

  // Sends `request` upstream; done(response, round_trip_us) on the loop.
  void Forward(const HttpRequest& request, std::function<void(HttpResponse, Micros)> done);

  // Requests forwarded, and their mean round trip (policy::UpdateMean); 0 before the first.
  int64_t forwarded() const;
  Micros mean_round_trip_us() const;
  const std::string& url() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace thaw
