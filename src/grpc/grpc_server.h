// GrpcServer: the Open Inference Protocol's gRPC service
// (inference.GRPCInferenceService, grpc_service.proto) on its own port,
// beside the REST server and sharing everything behind it.
//
// What it serves: ServerLive, ServerReady, ModelReady, ServerMetadata,
// ModelMetadata, ModelInfer, and Triton's ModelConfig, ModelStatistics,
// RepositoryIndex, RepositoryModelLoad, RepositoryModelUnload. Other RPCs of
// Triton's proto (streaming, shared memory, trace, logging) answer
// UNIMPLEMENTED.
//
// How: the calls arrive over HTTP/2 (grpc/grpc_transport.h: libnghttp2 on
// the io_context the runtime and handler live on, no thread of its own).
// ModelInfer goes straight to V2Handler::InferTensors (the REST path's
// validation, deadline, runtime and classification; no JSON in between),
// tensors from raw_input_contents or typed contents and back as
// raw_output_contents, as Triton's gRPC server answers. Every other RPC is
// the REST route's request made on the handler (GET /v2/models/{m}/config,
// ...) with its JSON read into the message, so the two protocols cannot
// disagree. Access is the REST route's: the "authorization" metadata entry
// carries the bearer token (server/auth.h), health RPCs are open. Request
// messages may be compressed (grpc-encoding gzip or deflate); a method not
// listed here is UNIMPLEMENTED.
//
// Errors: a gRPC status per HTTP status (grpc/status_codes.h: 400
// INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404
// NOT_FOUND, 405 UNIMPLEMENTED, 429 RESOURCE_EXHAUSTED, 503 UNAVAILABLE, 504
// DEADLINE_EXCEEDED, else INTERNAL) with the REST error's message. ServerReady and ModelReady answer
// ready=false (not an error) where REST says 400 or 404.
//
// ModelMesh (with options.model_runtime): loadModel reads the config.json
// in modelPath (a model directory), deploys it under the name modelId, starts
// one instance and answers once it is idle, with sizeInBytes = what the
// model's instance and template count against the memory budget; a config
// that cannot be read is INVALID_ARGUMENT (nothing loaded), a model that
// fails to start is unloaded again and INTERNAL with its error, a start
// past the model's start_timeout_ms DEADLINE_EXCEEDED. unloadModel removes
// it (OK if it is not loaded); predictModelSize is memory_mb from the
// config; runtimeStatus unloads every model ModelMesh loaded (a restarted
// mesh) and answers READY with the memory budget as capacity and the
// inference methods (ModelInfer, ModelMetadata, ModelReady: model name
// at field 1) ModelMesh may forward. Models loaded this way are served by
// every route like any other. Its calls can load any model directory the
// server can read: serve it only where the mesh alone reaches the port.
//
// Threading: Start, and every call, on the io_context's thread (Start may
// also come before the io_context runs). Shutdown from another thread while
// the io_context runs: it stops taking calls and waits for those in flight
// (the runtime's timeouts bound them); idempotent. Destroying the server
// without Shutdown stops accepting and refuses calls on open connections
// (UNAVAILABLE), but must not happen with calls in flight.
#pragma once

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "base/status.h"
#include "server/v2_handler.h"

namespace thaw {

struct GrpcServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8001;                   // 0 picks a free port
  size_t max_message_bytes = 256u << 20;  // a request message, as --max-body-mb for REST
  // KServe ModelMesh's model-runtime API (mmesh.ModelRuntime,
  // model_runtime.proto) beside the inference service, on the same port,
  // when set (`thaw serve --modelmesh on`); it must outlive the server.
  Runtime* model_runtime = nullptr;
  int64_t capacity_mb = 0;  // runtimeStatus's capacity: the runtime's memory budget
};

class GrpcServer {
 public:
  // `handler` and `io` must outlive the server.
  GrpcServer(boost::asio::io_context& io, V2Handler& handler, GrpcServerOptions options);
  ~GrpcServer();

  // Binds and starts serving. kUnavailable if the address cannot be bound.
  Status Start();
  uint16_t port() const;  // after Start
  void Shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace thaw
