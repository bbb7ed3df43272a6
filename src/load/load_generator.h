// LoadGenerator: an open-loop HTTP/1.1 client that sends KServe v2 infer
// requests (POST /v2/models/{model}/infer) to one server at the times a
// schedule gives (arrivals.h), and records what happened to each request.
// Every request is the same one, or, with several targets (trace replay of
// several models), the one of the target the schedule names for it.
//
// Open loop. A request is sent at its scheduled time whether or not earlier
// ones have been answered: at that time it takes an idle keep-alive
// connection, else opens a new one while fewer than max_connections are
// open, else it is not sent and is recorded as kClientOverload -- the
// generator, not the server, was the limit, so such a run understates the
// load offered. Latency is measured from the *scheduled* time to the end of
// the response, so a late send (the generator fell behind) counts against the
// latency instead of silently shifting the schedule (no coordinated
// omission); send lateness (dispatch - scheduled) is also recorded on its own.
// One timer wake-up sends every request that is due, so it keeps up at tens
// of thousands of requests per second on one core.
// After the last send it waits up to drain_timeout_s for outstanding
// responses; the rest are kTimeout.
//
// Connections are never pipelined: one request at a time each. A request
// that fails on a reused keep-alive connection before any response byte
// arrives (the server closed it while idle) is resent once on a fresh one.
//
// Timestamps come from the Clock given; asio timers only do the waiting.
// Ownership: the generator owns its io_context, sockets and buffers; Run
// blocks the calling thread until done. Thread safety: one Run at a time; a
// generator is not shared between threads.
// Errors: Run returns kInvalidArgument for bad options or an unsorted or
// negative schedule, kUnavailable if the host cannot be resolved, kInternal
// if the process runs out of a resource (memory, descriptors for timers). Failures
// of single requests (refused, reset, malformed HTTP) are recorded as kError
// in the result, never returned.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"

namespace thaw::load {

struct HttpUrl {
  std::string host;  // a name or an address; IPv6 without brackets
  uint16_t port = 80;
};

// "http://host[:port][/]". https, user info, paths and queries are
// kInvalidArgument: the generator only builds /v2/models/{m}/infer itself.
StatusOr<HttpUrl> ParseHttpUrl(std::string_view url);

// A model and the request body sent to it.
struct LoadTarget {
  std::string model;  // requests go to /v2/models/{model}/infer
  std::string body;   // sent as application/json, or see header_length
  // Set: `body` is the binary tensor extension's (JSON header, then tensor
  // bytes), sent as application/octet-stream with this value as
  // Inference-Header-Content-Length.
  std::optional<size_t> header_length;
};

struct LoadOptions {
  std::string url;                // http://host:port
  std::string model;              // the target of every request, unless `targets` is set
  std::string body;
  std::optional<size_t> body_header_length;  // as LoadTarget::header_length, for `body`
  std::vector<LoadTarget> targets;  // several targets: Run's target_of picks one per request
  int max_connections = 256;      // open connections at most, >= 1
  double drain_timeout_s = 30;    // wait after the last send for responses
  // Requests scheduled before this offset are sent like the others but left
  // out of the result (warm-up: cold starts, connection set-up).
  Micros warmup_us = 0;
  size_t max_response_bytes = 256u << 20;  // a larger response is kError
  // Called on the generator's thread after each batch of sends with
  // (requests sent or skipped so far, total); empty = none. For progress
  // displays: it is called often, so it should be cheap.
  std::function<void(size_t, size_t)> on_progress;
  // Sent as "Authorization: Bearer <token>" with every request; empty = no
  // header (for thaw serve --auth-tokens).
  std::string bearer_token;
};

enum class Outcome : uint8_t {
  kResponse,        // an HTTP response arrived (any status)
  kClientOverload,  // not sent: all max_connections were busy
  kTimeout,         // sent; no response by the end of the drain
  kError,           // connect, write or read failed, or the response was not HTTP
};

std::string_view OutcomeName(Outcome outcome);

// Why a kError request failed: what the socket said, for reports by cause.
enum class ErrorCause : uint8_t {
  kNone,               // not a kError
  kConnectionRefused,  // nothing listens at the url (server down, wrong port)
  kConnectionReset,    // the server reset or closed the connection mid-request
  kOther,              // anything else: a malformed response, a too large body, ...
};

std::string_view ErrorCauseName(ErrorCause cause);

struct RequestRecord {
  Micros offset_us = 0;           // scheduled time, from the start of the run
  Micros send_lateness_us = -1;   // when the generator dispatched it - scheduled; -1: not sent
  Micros latency_us = -1;         // response complete - scheduled; -1: no response
  Outcome outcome = Outcome::kTimeout;
  int status = 0;                 // HTTP status; 0 without a response
  int32_t batch_size = -1;        // parameters.batch_size of a 200 response; -1: absent
  // parameters.compute_ms of a 200 response (-1: absent): with batch_size,
  // what an execution is billed (rounded up per execution, shared by its rows).
  double compute_ms = -1;
  // parameters.instance of a 200 response (the id of the instance that ran
  // it; -1: absent): reports count distinct ids, an average means nothing.
  int64_t instance = -1;
  ErrorCause error = ErrorCause::kNone;  // set for kError
};

// The mean of one numeric field of `parameters` over the 200 responses that
// had it (batch_size excluded: it is per request).
struct ParameterMean {
  std::string name;
  double sum = 0;
  int64_t count = 0;
};

// One numeric `parameters` field of a 200 response, as every generator
// reads it: batch_size, compute_ms and instance go to `record`; every name
// but batch_size and instance adds to its mean in `means` when the request is `measured`
// (after the warm-up), at most 64 names.
void RecordResponseParameter(std::string_view name, double value, bool measured, RequestRecord& record,
                             std::vector<ParameterMean>& means);

struct LoadResult {
  // Requests scheduled at or after warmup_us, in schedule order. Offsets are
  // still from the start of the run (warm-up included).
  std::vector<RequestRecord> requests;
  int64_t warmup_requests = 0;     // scheduled before warmup_us; not in `requests`
  int64_t connections_opened = 0;  // connects attempted, warm-up included
  int64_t stale_retries = 0;       // requests resent after a reused connection failed
  std::vector<ParameterMean> parameters;  // in the order first seen
};

class LoadGenerator {
 public:
  LoadGenerator(const Clock& clock, LoadOptions options);

  // Sends one request per offset (microseconds from the start of the run,
  // ascending) and returns when all are answered, timed out or not sent.
  // With options.targets, target_of[i] (an index into targets, one per
  // offset) is request i's target; without, target_of must be empty.
  StatusOr<LoadResult> Run(const std::vector<Micros>& offsets_us, const std::vector<uint32_t>& target_of = {});

 private:
  const Clock& clock_;
  LoadOptions options_;
};

}  // namespace thaw::load
