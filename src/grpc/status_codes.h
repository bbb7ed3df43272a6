// The one mapping between REST statuses and gRPC codes: the server answers
// an RPC with the code of the status its REST route gave (GrpcCodeOf), and
// `thaw load --protocol grpc` counts a call's code as that REST status
// (HttpStatusOf), so the two directions cannot drift apart.
// Several 4xx map to INVALID_ARGUMENT; back, it is 400. Statuses without a
// code of their own are INTERNAL, and INTERNAL and unlisted codes are 500.
// Pure functions.
#pragma once

#include <grpcpp/support/status.h>

namespace thaw {

inline grpc::StatusCode GrpcCodeOf(int http_status) {
  switch (http_status) {
    case 400:
    case 408:
    case 413:
    case 415:
    case 431: return grpc::StatusCode::INVALID_ARGUMENT;
    case 401: return grpc::StatusCode::UNAUTHENTICATED;
    case 403: return grpc::StatusCode::PERMISSION_DENIED;
    case 404: return grpc::StatusCode::NOT_FOUND;
    case 405: return grpc::StatusCode::UNIMPLEMENTED;
    case 429: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case 503: return grpc::StatusCode::UNAVAILABLE;
    case 504: return grpc::StatusCode::DEADLINE_EXCEEDED;
    default: return grpc::StatusCode::INTERNAL;
  }
}

inline int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::UNAUTHENTICATED: return 401;
    case grpc::StatusCode::PERMISSION_DENIED: return 403;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::UNIMPLEMENTED: return 405;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 429;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    default: return 500;
  }
}

}  // namespace thaw
