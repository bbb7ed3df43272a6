// Lambda runtime mode: thaw as an AWS Lambda function of the custom runtime
// (`provided`), serving one model through the Lambda Runtime API
// (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html):
//   GET  /2018-06-01/runtime/invocation/next        an event (long poll)
//   POST /2018-06-01/runtime/invocation/{id}/response
//   POST /2018-06-01/runtime/invocation/{id}/error
//   POST /2018-06-01/runtime/init/error
// An event is either a KServe v2 inference request (the model's infer), or
// an HTTP event (API Gateway HTTP API / function URL payload 2.0, or REST
// API 1.0) whose method and path go to any v2 route; the v2 handler runs it
// in-process, as `thaw serve` does for a socket. The answer to an HTTP event
// is its HTTP response shape (statusCode, headers, body); to a direct
// invocation the v2 response body, and an error status becomes an
// invocation error (errorType, errorMessage).
//
// Init: the model's first instance is started (the fast path: template,
// zygote or exec as configured) before the first event is asked for; a model
// that cannot start is reported as an init error and the process exits 1, as
// Lambda expects. Each invocation logs Lambda's REPORT line (Duration, Billed
// Duration, Memory Size, Max Memory Used, and Init Duration on the first).
//
// Thread safety: RuntimeApiClient lives on the server's event loop.
// Errors: a Runtime API that cannot be reached ends the process (exit 1).
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/clock.h"
#include "base/status.h"
#include "runtime/runtime.h"
#include "server/v2_handler.h"

namespace thaw::lambda {

// An event as the v2 handler takes it.
struct Invocation {
  HttpRequest request;
  bool http_event = false;  // answered in the HTTP event's response shape
};

// InvalidArgument naming the problem: not JSON, neither shape, a bad body
// encoding.
StatusOr<Invocation> ParseEvent(std::string_view payload, const std::string& model);

struct Reply {
  std::string payload;
  bool error = false;  // post it to .../error (a direct invocation's failure)
};
Reply ReplyFor(const HttpResponse& response, bool http_event);

// The payload of an invocation or init error: {"errorType", "errorMessage"}.
std::string ErrorPayload(std::string_view type, std::string_view message);

// Lambda's REPORT line: "REPORT RequestId: ID\tDuration: 1.23 ms\tBilled
// Duration: 2 ms\tMemory Size: 512 MB\tMax Memory Used: 80 MB" and
// "\tInit Duration: 45.67 ms" when init_ms is given. Billed: the duration as
// printed, rounded up to whole ms, at least 1.
std::string ReportLine(std::string_view request_id, double duration_ms, int64_t memory_size_mb,
                       int64_t max_memory_used_mb, std::optional<double> init_ms);

std::string Base64Encode(std::string_view bytes);
// nullopt for text that is not standard base64 (padding optional).
std::optional<std::string> Base64Decode(std::string_view text);

struct RuntimeApiOptions {
  std::string endpoint;            // AWS_LAMBDA_RUNTIME_API: host:port
  std::string model;               // the function's model (_HANDLER)
  int64_t memory_size_mb = 0;      // AWS_LAMBDA_FUNCTION_MEMORY_SIZE, for the REPORT line
  Micros process_start_us = 0;     // for Init Duration
  Micros init_timeout_us = 60'000'000;
};

class RuntimeApiClient {
 public:
  // on_exit(code) is called once: 1 after an init error or a Runtime API
  // that fails. Handler and runtime outlive the client.
  RuntimeApiClient(boost::asio::io_context& io, V2Handler& handler, Runtime& runtime, const Clock& clock,
                   RuntimeApiOptions options, std::function<void(int)> on_exit);
  ~RuntimeApiClient();
  void Start();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace thaw::lambda
