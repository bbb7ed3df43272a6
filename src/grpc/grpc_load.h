// GrpcLoadGenerator: `thaw load --grpc`. The open-loop generator of
// load/load_generator.h, speaking the Open Inference Protocol's gRPC
// ModelInfer instead of REST, so the two protocols are measured by the same
// schedule, clock and summary (load/report.h).
//
// What is sent: the KServe v2 JSON request given (the REST load's request
// file) converted once to a ModelInferRequest whose tensors travel in
// raw_input_contents, as Triton's clients and perf_analyzer send them. All
// calls share one HTTP/2 connection (multiplexed streams, libnghttp2), the
// gRPC framing written here: the same bytes any gRPC client puts on the
// wire, at the REST generator's cost per request (libgrpc's client took
// about twice its CPU, which on a shared machine the server lost).
//
// Open loop, as the REST generator: a request is sent at its scheduled time
// while fewer than max_in_flight calls are outstanding, else it is recorded
// as kClientOverload. Latency runs from the scheduled time to the call's
// completion. After the last send, calls still outstanding after
// drain_timeout_s are abandoned (the connection closes) and recorded as
// kTimeout.
//
// Statuses: each completed call is a kResponse with the REST status of its
// gRPC code (grpc/status_codes.h, the mapping thaw's gRPC server answers
// with: OK 200, INVALID_ARGUMENT 400, ..., other codes 500), so summaries
// read alike; an answer without grpc-status is its HTTP status (or 500).
// Run first connects, retrying for up to connect_timeout_s, and returns
// kUnavailable if it never does; a connection lost later makes the calls
// out and every later one kError (kConnectionReset), without reconnecting.
// Numeric response parameters of a successful call are read as REST's are
// (load::RecordResponseParameter).
//
// Timestamps come from the Clock given; timers and the connect retry's
// sleep only wait. Thread safety: Run blocks the calling thread, which does
// everything (one io_context, no other thread). One Run at a time.
// Errors: kInvalidArgument for bad options, a request that does not parse or
// an unsorted schedule; kUnavailable if the server cannot be reached.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "load/load_generator.h"

namespace thaw {

struct GrpcLoadOptions {
  std::string url;             // http://host:port of `thaw serve --grpc-port`
  std::string model;
  std::string request_json;    // a KServe v2 REST infer request (JSON, no binary part)
  int max_in_flight = 256;     // calls outstanding at most, >= 1
  double drain_timeout_s = 30;
  double connect_timeout_s = 10;
  Micros warmup_us = 0;        // as LoadOptions::warmup_us
  std::function<void(size_t, size_t)> on_progress;
  std::string bearer_token;    // sent as metadata "authorization: Bearer <token>"
};

class GrpcLoadGenerator {
 public:
  GrpcLoadGenerator(const Clock& clock, GrpcLoadOptions options);

  // One call per offset (microseconds from the start, ascending).
  StatusOr<load::LoadResult> Run(const std::vector<Micros>& offsets_us);

 private:
  const Clock& clock_;
  GrpcLoadOptions options_;
};

}  // namespace thaw
