// The HTTP server's request parsing (server/request_parsing.h): one
// connection's bytes, delivered in reads of a size the first input byte picks.
// Properties: no crash or leak; the requests found do not depend on how the
// stream was cut into reads; a complete infer request's body goes through
// the v2 decoder like the handler would pass it.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.h"
#include "protocol/v2.h"
#include "server/request_parsing.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t read_size = data[0] == 0 ? thaw::kRequestReadBufferBytes : data[0];
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  // A small body limit so that the 413 path is reachable.
  const thaw::HttpServerOptions options{.max_body_bytes = 4096};

  auto parsed = thaw::ParseRequestStream(bytes, options, read_size);
  auto whole = thaw::ParseRequestStream(bytes, options, bytes.size() + 1);
  FUZZ_CHECK(parsed.size() == whole.size(), "request count depends on the read size");
  for (size_t i = 0; i < parsed.size(); ++i) {
    const thaw::ParsedRequest& a = parsed[i];
    const thaw::ParsedRequest& b = whole[i];
    FUZZ_CHECK(a.outcome == b.outcome, "outcome depends on the read size");
    FUZZ_CHECK(a.request.method == b.request.method && a.request.target == b.request.target &&
                   a.request.body == b.request.body &&
                   a.request.inference_header_length == b.request.inference_header_length,
               "request depends on the read size");
    if (a.outcome != thaw::ParsedRequest::Outcome::kRequest) continue;
    FUZZ_CHECK(a.request.body.size() <= options.max_body_bytes, "body over the limit accepted");
    if (a.request.method == "POST" && a.request.target.find("/infer") != std::string::npos)
      (void)thaw::v2::ParseInferRequest(a.request.body, a.request.inference_header_length);
  }
  return 0;
}
