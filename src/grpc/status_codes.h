// gRPC status codes (the numbers every gRPC library uses) and the one
// mapping between REST statuses and them: the server answers an RPC with the
// code of the status its REST route gave (GrpcCodeOf), and `thaw load
// --protocol grpc` counts a call's code as that REST status (HttpStatusOf),
// so the two directions cannot drift apart.
// Several 4xx map to INVALID_ARGUMENT; back, it is 400. Statuses without a
// code of their own are INTERNAL, and INTERNAL and unlisted codes are 500.
// Pure functions.
#pragma once

namespace thaw {

enum class GrpcCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

inline GrpcCode GrpcCodeOf(int http_status) {
  switch (http_status) {
    case 400:
    case 408:
    case 413:
    case 415:
    case 431: return GrpcCode::kInvalidArgument;
    case 401: return GrpcCode::kUnauthenticated;
    case 403: return GrpcCode::kPermissionDenied;
    case 404: return GrpcCode::kNotFound;
    case 405: return GrpcCode::kUnimplemented;
    case 429: return GrpcCode::kResourceExhausted;
    case 503: return GrpcCode::kUnavailable;
    case 504: return GrpcCode::kDeadlineExceeded;
    default: return GrpcCode::kInternal;
  }
}

// `code` as a client library reports it (grpc::StatusCode's numbers).
inline int HttpStatusOf(int code) {
  switch (static_cast<GrpcCode>(code)) {
    case GrpcCode::kOk: return 200;
    case GrpcCode::kInvalidArgument: return 400;
    case GrpcCode::kUnauthenticated: return 401;
    case GrpcCode::kPermissionDenied: return 403;
    case GrpcCode::kNotFound: return 404;
    case GrpcCode::kUnimplemented: return 405;
    case GrpcCode::kResourceExhausted: return 429;
    case GrpcCode::kUnavailable: return 503;
    case GrpcCode::kDeadlineExceeded: return 504;
    default: return 500;
  }
}

}  // namespace thaw
