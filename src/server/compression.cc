#include "server/compression.h"

#include "server/header_text.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <vector>

namespace thaw {
namespace {

// Inflates with zlib's window_bits (15|32: zlib or gzip header; -15: raw).
StatusOr<std::string> Inflate(std::string_view data, int window_bits, size_t max_bytes, std::string_view name) {
  z_stream stream{};
  if (inflateInit2(&stream, window_bits) != Z_OK) return InvalidArgument(std::string(name) + ": cannot start inflating");
  std::string out;
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  int result = Z_OK;
  char chunk[64 << 10];
  while (result != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(chunk);
    stream.avail_out = sizeof chunk;
    result = inflate(&stream, Z_NO_FLUSH);
    if (result != Z_OK && result != Z_STREAM_END) {
      inflateEnd(&stream);
      if (result == Z_BUF_ERROR) return InvalidArgument(std::string(name) + " body is truncated");
      return InvalidArgument(std::string(name) + " body is not valid " + std::string(name) + " data" +
                             (stream.msg ? std::string(" (") + stream.msg + ")" : std::string()));
    }
    const size_t produced = sizeof chunk - stream.avail_out;
    if (out.size() + produced > max_bytes) {
      inflateEnd(&stream);
      return InvalidArgument(std::string(name) + " body inflates to more than " + std::to_string(max_bytes) + " bytes");
    }
    out.append(chunk, produced);
    if (result != Z_STREAM_END && stream.avail_in == 0 && produced == 0) {
      inflateEnd(&stream);
      return InvalidArgument(std::string(name) + " body is truncated");
    }
  }
  const bool trailing = stream.avail_in != 0;
  inflateEnd(&stream);
  if (trailing) return InvalidArgument(std::string(name) + " body has data after its end");
  return out;
}

}  // namespace

std::string_view ContentCodingName(ContentCoding coding) {
  switch (coding) {
    case ContentCoding::kIdentity: return "identity";
    case ContentCoding::kGzip: return "gzip";
    case ContentCoding::kDeflate: return "deflate";
  }
  return "identity";
}

StatusOr<ContentCoding> ParseContentEncoding(const std::optional<std::string>& header) {
  if (!header) return ContentCoding::kIdentity;
  const std::string value = AsciiLower(TrimHeaderSpace(*header));
  if (value.empty() || value == "identity") return ContentCoding::kIdentity;
  if (value == "gzip" || value == "x-gzip") return ContentCoding::kGzip;
  if (value == "deflate") return ContentCoding::kDeflate;
  return InvalidArgument("Content-Encoding '" + *header + "' is not supported; use gzip, deflate or identity");
}

ContentCoding ChooseResponseCoding(const std::optional<std::string>& accept_encoding) {
  if (!accept_encoding) return ContentCoding::kIdentity;
  ContentCoding best = ContentCoding::kIdentity;
  double best_q = 0;
  std::string_view rest = *accept_encoding;
  while (!rest.empty()) {
    std::string_view item = rest.substr(0, rest.find(','));
    rest.remove_prefix(std::min(rest.size(), item.size() + 1));
    std::string_view coding = TrimHeaderSpace(item.substr(0, item.find(';')));
    double q = 1;
    if (size_t semi = item.find(';'); semi != std::string_view::npos) {
      std::string_view param = TrimHeaderSpace(item.substr(semi + 1));
      if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        std::string text(param.substr(2));
        char* end = nullptr;
        q = std::strtod(text.c_str(), &end);
        if (end == text.c_str()) q = 0;
      }
    }
    const std::string name = AsciiLower(coding);
    std::optional<ContentCoding> candidate;
    if (name == "gzip" || name == "x-gzip" || name == "*") candidate = ContentCoding::kGzip;
    else if (name == "deflate") candidate = ContentCoding::kDeflate;
    else if (name == "identity") candidate = ContentCoding::kIdentity;
    if (candidate && q > best_q) {
      best = *candidate;
      best_q = q;
    }
  }
  return best;
}

StatusOr<std::string> Decompress(std::string_view data, ContentCoding coding, size_t max_bytes) {
  switch (coding) {
    case ContentCoding::kIdentity:
      if (data.size() > max_bytes) return InvalidArgument("body exceeds " + std::to_string(max_bytes) + " bytes");
      return std::string(data);
    case ContentCoding::kGzip:
      return Inflate(data, 16 + MAX_WBITS, max_bytes, "gzip");
    case ContentCoding::kDeflate: {
      // zlib-wrapped as the RFC says; raw DEFLATE as some clients send.
      const auto b0 = static_cast<unsigned char>(data.size() > 0 ? data[0] : 0);
      const auto b1 = static_cast<unsigned char>(data.size() > 1 ? data[1] : 0);
      const bool zlib_header = data.size() >= 2 && (b0 & 0x0f) == Z_DEFLATED && (b0 * 256 + b1) % 31 == 0;
      return Inflate(data, zlib_header ? MAX_WBITS : -MAX_WBITS, max_bytes, "deflate");
    }
  }
  return InvalidArgument("unknown content coding");
}

std::optional<std::string> Compress(std::string_view data, ContentCoding coding) {
  if (coding == ContentCoding::kIdentity) return std::string(data);
  z_stream stream{};
  // Level 1: inference responses are small or float noise; speed matters more than ratio.
  const int window_bits = coding == ContentCoding::kGzip ? 16 + MAX_WBITS : MAX_WBITS;
  if (deflateInit2(&stream, 1, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return std::nullopt;
  std::string out(deflateBound(&stream, static_cast<uLong>(data.size())), '\0');
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  stream.avail_in = static_cast<uInt>(data.size());
  stream.next_out = reinterpret_cast<Bytef*>(out.data());
  stream.avail_out = static_cast<uInt>(out.size());
  const int result = deflate(&stream, Z_FINISH);
  out.resize(out.size() - stream.avail_out);
  deflateEnd(&stream);
  if (result != Z_STREAM_END) return std::nullopt;
  return out;
}

}  // namespace thaw
