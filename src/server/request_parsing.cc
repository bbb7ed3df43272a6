#include "server/request_parsing.h"

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <algorithm>
#include <charconv>
#include <system_error>

namespace thaw {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// A SyncReadStream over bytes in memory: each read returns at most
// `read_size` bytes, like a socket delivering the stream in pieces; then EOF.
class MemoryReadStream {
 public:
  MemoryReadStream(std::string_view bytes, size_t read_size) : bytes_(bytes), read_size_(std::max<size_t>(read_size, 1)) {}

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers, beast::error_code& ec) {
    if (bytes_.empty()) {
      ec = asio::error::eof;
      return 0;
    }
    ec = {};
    const size_t n = asio::buffer_copy(buffers, asio::buffer(bytes_.data(), std::min(read_size_, bytes_.size())));
    bytes_.remove_prefix(n);
    return n;
  }

  template <class MutableBufferSequence>
  size_t read_some(const MutableBufferSequence& buffers) {
    beast::error_code ec;
    const size_t n = read_some(buffers, ec);
    if (ec) throw beast::system_error(ec);
    return n;
  }

 private:
  std::string_view bytes_;
  size_t read_size_;
};

}  // namespace

void StartRequestParser(std::optional<HttpRequestParser>* parser, const HttpServerOptions& options) {
  parser->emplace();
  (*parser)->body_limit(options.max_body_bytes);
}

void LimitChunkedBody(HttpRequestParser& parser, ChunkedBodyLimit& limit, const HttpServerOptions& options) {
  if (!parser.chunked()) return;
  parser.body_limit(boost::none);
  limit.bytes_left = options.max_body_bytes;
  limit.on_chunk = [&limit](uint64_t size, beast::string_view, beast::error_code& ec) {
    if (size > limit.bytes_left) {
      ec = http::error::body_limit;
      return;
    }
    limit.bytes_left -= size;
  };
  parser.on_chunk_header(limit.on_chunk);
}

beast::error_code ParseBufferedBody(HttpRequestParser& parser, beast::flat_buffer& buffer) {
  beast::error_code ec;
  const auto length = parser.content_length();
  if (parser.is_done() || !length || buffer.size() < *length) return ec;
  while (!parser.is_done() && buffer.size() > 0) {
    const size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec || used == 0) break;
  }
  if (ec == http::error::need_more) ec = {};
  return ec;
}

StatusOr<HttpRequest> ToHttpRequest(HttpRequestParser::value_type& message) {
  HttpRequest request;
  request.method = std::string(message.method_string());
  request.target = std::string(message.target());
  auto header_length = message.find("Inference-Header-Content-Length");
  if (header_length != message.end()) {
    size_t value = 0;
    auto text = header_length->value();
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (err != std::errc() || end != text.data() + text.size())
      return InvalidArgument("header Inference-Header-Content-Length must be a non-negative integer");
    request.inference_header_length = value;
  }
  auto header = [&message](http::field field) -> std::optional<std::string> {
    auto found = message.find(field);
    if (found == message.end()) return std::nullopt;
    return std::string(found->value());
  };
  request.authorization = header(http::field::authorization);
  request.host = header(http::field::host);
  request.origin = header(http::field::origin);
  request.content_type = header(http::field::content_type);
  request.content_encoding = header(http::field::content_encoding);
  request.accept_encoding = header(http::field::accept_encoding);
  request.forwarded_by_edge = message.find(kForwardedByEdgeHeader) != message.end();
  request.body = std::move(message.body());
  return request;
}

std::vector<ParsedRequest> ParseRequestStream(std::string_view bytes, const HttpServerOptions& options,
                                              size_t read_size) {
  MemoryReadStream stream(bytes, read_size);
  beast::flat_buffer buffer;
  buffer.reserve(kRequestReadBufferBytes);
  std::optional<HttpRequestParser> parser;
  ChunkedBodyLimit chunk_limit;
  std::vector<ParsedRequest> parsed;
  for (;;) {
    StartRequestParser(&parser, options);
    beast::error_code ec;
    http::read_header(stream, buffer, *parser, ec);
    if (ec == http::error::end_of_stream) break;  // closed between requests
    ParsedRequest& r = parsed.emplace_back();
    if (!ec) {
      LimitChunkedBody(*parser, chunk_limit, options);
      r.expect_continue = beast::iequals(parser->get()[http::field::expect], "100-continue");
      // A session sends "100 Continue" first and only then reads the body.
      if (!r.expect_continue) ec = ParseBufferedBody(*parser, buffer);
      if (!ec && !parser->is_done()) http::read(stream, buffer, *parser, ec);
    }
    if (ec == http::error::body_limit) {
      r.outcome = ParsedRequest::Outcome::kBodyTooLarge;
      break;
    }
    if (ec) {
      r.outcome = ParsedRequest::Outcome::kMalformed;
      break;
    }
    r.keep_alive = parser->get().keep_alive();
    StatusOr<HttpRequest> request = ToHttpRequest(parser->get());
    if (request.ok()) {
      r.outcome = ParsedRequest::Outcome::kRequest;
      r.request = std::move(request).value();
    } else {
      r.outcome = ParsedRequest::Outcome::kBadRequest;
      r.error = request.status();
    }
    if (!r.keep_alive) break;
  }
  return parsed;
}

}  // namespace thaw
