// HTTP content codings for inference bodies, as Triton's clients use them
// (request_compression_algorithm / response_compression_algorithm):
// requests may come with Content-Encoding gzip or deflate, responses are
// compressed when Accept-Encoding asks for either. Inference-Header-Content-
// Length always counts the uncompressed JSON, so a body is inflated before
// it is split, and compressed after it is built.
//
// Guarantees: Decompress never produces more than `max_bytes` (a small body
// that inflates past it is refused, not buffered: no decompression bombs).
// Errors: kInvalidArgument naming the coding and the problem (unsupported
// coding, corrupt data, over the limit). Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace thaw {

enum class ContentCoding { kIdentity, kGzip, kDeflate };
std::string_view ContentCodingName(ContentCoding coding);  // identity, gzip, deflate

// A request's Content-Encoding: absent or "identity" -> identity; "gzip"
// ("x-gzip"), "deflate" (case-insensitive). Anything else, or a list of
// codings, is kInvalidArgument (the server answers 415 with Accept-Encoding).
StatusOr<ContentCoding> ParseContentEncoding(const std::optional<std::string>& header);

// The coding for a response from Accept-Encoding (RFC 9110 12.5.3): the
// highest q among gzip, deflate and identity (the first listed on a tie;
// "*" stands for gzip); identity when absent or when nothing acceptable is
// listed with q > 0.
ContentCoding ChooseResponseCoding(const std::optional<std::string>& accept_encoding);

// gzip: a gzip member; deflate: zlib-wrapped data (RFC 1950), or raw DEFLATE
// (RFC 1951), which some clients send under that name.
StatusOr<std::string> Decompress(std::string_view data, ContentCoding coding, size_t max_bytes);
// gzip: a gzip member; deflate: zlib-wrapped, as RFC 9110 defines it.
// nullopt if zlib fails (the caller sends the body as it is).
std::optional<std::string> Compress(std::string_view data, ContentCoding coding);

}  // namespace thaw
