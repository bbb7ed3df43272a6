#include "grpc/grpc_transport.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "base/log.h"
#include "grpc/grpc_wire.h"
#include "server/compression.h"

namespace thaw {
namespace grpc_transport_internal {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

constexpr size_t kPrefixBytes = kGrpcPrefixBytes;
constexpr size_t kReadBytes = 64 << 10;
constexpr int32_t kStreamWindow = 16 << 20;
constexpr int32_t kConnectionWindow = 256 << 20;
constexpr uint32_t kMaxConcurrentStreams = 1024;
constexpr uint32_t kMaxFrameBytes = 256 << 10;

// grpc-message: printable ASCII but '%' as it is, the rest %XX (gRPC's HTTP/2 mapping).
std::string PercentEncode(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (unsigned char c : message) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

constexpr std::string_view kAcceptEncoding = "identity,deflate,gzip";

}  // namespace

// State shared by the transport, its connections and responders: whichever
// goes last frees it, so nothing dangles when the transport goes first.
struct Hub {
  Hub(asio::io_context& io, GrpcTransportOptions options, GrpcDispatcher dispatcher)
      : io(io), options(std::move(options)), dispatcher(std::move(dispatcher)), acceptor(io), backoff(io) {}

  void CallDone() {
    std::lock_guard lock(mu);
    if (--calls_open == 0) drained.notify_all();
  }

  asio::io_context& io;
  GrpcTransportOptions options;
  GrpcDispatcher dispatcher;
  tcp::acceptor acceptor;
  tcp protocol = tcp::v4();
  asio::steady_timer backoff;
  bool stopping = false;                        // io thread
  std::unordered_set<Connection*> connections;  // io thread

  std::mutex mu;
  std::condition_variable drained;
  size_t calls_open = 0;  // dispatched, not yet answered (under mu)
  bool shutdown_started = false;  // under mu
};

struct Connection : std::enable_shared_from_this<Connection> {
  struct Stream {
    std::string method;
    std::string content_type;
    std::optional<std::string> authorization;
    std::string encoding;
    std::string body;
    bool too_large = false;
    bool dispatched = false;
    // The answer being sent: the framed message, then grpc-status 0.
    std::string response;
    size_t sent = 0;
  };

  Connection(std::shared_ptr<Hub> hub, tcp::socket socket) : hub(std::move(hub)), socket(std::move(socket)) {}

  ~Connection() {
    hub->connections.erase(this);
    if (session) nghttp2_session_del(session);
  }

  bool Open() {
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) return false;
    nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &OnData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
    // No stream priorities (gRPC uses none): closed streams are freed at
    // once, no priority tree is kept.
    nghttp2_option* option = nullptr;
    if (nghttp2_option_new(&option) != 0) {
      nghttp2_session_callbacks_del(callbacks);
      return false;
    }
    nghttp2_option_set_no_closed_streams(option, 1);
    const int created = nghttp2_session_server_new2(&session, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) return false;
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, kMaxConcurrentStreams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kStreamWindow)},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, kMaxFrameBytes},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, settings, std::size(settings)) != 0) return false;
    if (nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, kConnectionWindow) != 0) return false;
    hub->connections.insert(this);
    return true;
  }

  void Start() {
    Flush();
    Read();
  }

  void Read() {
    socket.async_read_some(asio::buffer(read_buffer), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
      if (ec) return self->Close();
      const ssize_t used = nghttp2_session_mem_recv(self->session, self->read_buffer.data(), n);
      if (used < 0) return self->Close();  // not HTTP/2 or a protocol error nghttp2 could not answer
      self->DispatchReady();
      self->Flush();
      if (self->closed) return;
      self->Read();
    });
  }

  // Calls complete in the bytes just read, handed over outside nghttp2's
  // callbacks (the dispatcher may answer at once).
  void DispatchReady() {
    std::vector<int32_t> ids;
    ids.swap(ready);
    for (int32_t id : ids) {
      auto it = streams.find(id);
      if (it == streams.end() || it->second.dispatched) continue;
      it->second.dispatched = true;
      Dispatch(id, it->second);
    }
  }

  void Dispatch(int32_t id, Stream& stream) {
    GrpcResponder responder(hub, weak_from_this(), id);
    {
      std::lock_guard lock(hub->mu);
      ++hub->calls_open;
    }
    if (stream.content_type.rfind("application/grpc", 0) != 0) {
      SubmitHttpError(id, "415");
      hub->CallDone();
      return;
    }
    auto fail = [&](GrpcCode code, std::string message) { responder.Finish({code, std::move(message)}, nullptr); };
    if (hub->stopping) return fail(GrpcCode::kUnavailable, "the server is shutting down");
    if (stream.too_large)
      return fail(GrpcCode::kResourceExhausted, "the request message is larger than the server's limit of " +
                                                    std::to_string(hub->options.max_message_bytes) + " bytes");
    const std::string& body = stream.body;
    if (body.size() < kPrefixBytes) return fail(GrpcCode::kInternal, "the request has no gRPC message");
    const auto* p = reinterpret_cast<const unsigned char*>(body.data());
    const uint32_t length = (uint32_t{p[1]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 8) | p[4];
    if (body.size() != kPrefixBytes + length)
      return fail(GrpcCode::kInternal, "the request is not exactly one gRPC message (" + std::to_string(body.size()) +
                                           " bytes for a message of " + std::to_string(length) + ")");
    GrpcCall call{.method = std::move(stream.method), .authorization = std::move(stream.authorization)};
    if (p[0] & 1) {
      std::optional<std::string> coding_header;
      if (!stream.encoding.empty()) coding_header = stream.encoding;
      auto coding = ParseContentEncoding(coding_header);
      if (!coding.ok() || *coding == ContentCoding::kIdentity) {
        SubmitStatus(id, {GrpcCode::kUnimplemented, "grpc-encoding '" + stream.encoding + "' is not supported"},
                     /*accept_encoding=*/true);
        hub->CallDone();
        return;
      }
      auto inflated = Decompress(std::string_view(body).substr(kPrefixBytes), *coding, hub->options.max_message_bytes);
      if (!inflated.ok()) {
        const bool over = inflated.status().message().find("inflates to more than") != std::string::npos;
        return fail(over ? GrpcCode::kResourceExhausted : GrpcCode::kInternal,
                    "the request message: " + inflated.status().message());
      }
      call.message = std::move(*inflated);
    } else {
      call.message.assign(body, kPrefixBytes, std::string::npos);
    }
    std::string().swap(stream.body);
    hub->dispatcher(std::move(call), std::move(responder));
  }

  // The answer to stream `id`: `framed` is the prefixed message (empty for
  // trailers-only).
  void Answer(int32_t id, const GrpcCallStatus& status, std::string framed) {
    auto it = streams.find(id);
    if (it == streams.end() || closed) return;  // reset by the client, or the connection is gone
    if (!status.ok() || framed.empty()) {
      SubmitStatus(id, status, false);
    } else {
      Stream& stream = it->second;
      stream.response = std::move(framed);
      const nghttp2_nv headers[] = {Http2Header(":status", "200"), Http2Header("content-type", "application/grpc"),
                                    Http2Header("grpc-accept-encoding", kAcceptEncoding)};
      nghttp2_data_provider data{.source = {.ptr = &stream}, .read_callback = &ReadResponse};
      (void)nghttp2_submit_response(session, id, headers, std::size(headers), &data);
    }
    Flush();
  }

  // Trailers-only: the status in the response's only HEADERS frame.
  void SubmitStatus(int32_t id, const GrpcCallStatus& status, bool accept_encoding) {
    const std::string code = std::to_string(static_cast<int>(status.code));
    const std::string message = PercentEncode(status.message);
    std::vector<nghttp2_nv> headers = {Http2Header(":status", "200"), Http2Header("content-type", "application/grpc"),
                                       Http2Header("grpc-status", code)};
    if (!message.empty()) headers.push_back(Http2Header("grpc-message", message));
    if (accept_encoding) headers.push_back(Http2Header("grpc-accept-encoding", kAcceptEncoding));
    (void)nghttp2_submit_response(session, id, headers.data(), headers.size(), nullptr);
  }

  void SubmitHttpError(int32_t id, std::string_view http_status) {
    const nghttp2_nv headers[] = {Http2Header(":status", http_status), Http2Header("content-type", "text/plain")};
    (void)nghttp2_submit_response(session, id, headers, std::size(headers), nullptr);
  }

  // Writes what nghttp2 has to send, one write at a time.
  void Flush() {
    if (writing || closed) return;
    out.clear();
    if (!TakeOutgoing(session, &out)) return Close();
    if (out.empty()) {
      if (close_when_written || (!nghttp2_session_want_read(session) && !nghttp2_session_want_write(session))) Close();
      return;
    }
    writing = true;
    asio::async_write(socket, asio::buffer(out), [self = shared_from_this()](boost::system::error_code ec, size_t) {
      self->writing = false;
      if (ec) return self->Close();
      self->Flush();
    });
  }

  void GoAway() {
    if (closed) return;
    (void)nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session),
                                NGHTTP2_NO_ERROR, nullptr, 0);
    Flush();
  }

  void Close() {
    if (closed) return;
    closed = true;
    boost::system::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  static Connection& Of(void* user_data) { return *static_cast<Connection*>(user_data); }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST)
      Of(user_data).streams.try_emplace(frame->hd.stream_id);
    return 0;
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t name_length,
                      const uint8_t* value, size_t value_length, uint8_t, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    auto it = Of(user_data).streams.find(frame->hd.stream_id);
    if (it == Of(user_data).streams.end()) return 0;
    const std::string_view key(reinterpret_cast<const char*>(name), name_length);
    const std::string_view text(reinterpret_cast<const char*>(value), value_length);
    Stream& stream = it->second;
    if (key == ":path") stream.method = text;
    else if (key == "content-type") stream.content_type = text;
    else if (key == "authorization") stream.authorization = std::string(text);
    else if (key == "grpc-encoding") stream.encoding = text;
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t length, void* user_data) {
    Connection& c = Of(user_data);
    auto it = c.streams.find(stream_id);
    if (it == c.streams.end()) return 0;
    Stream& stream = it->second;
    if (stream.too_large) return 0;
    if (stream.body.size() + length > c.hub->options.max_message_bytes + kPrefixBytes) {
      stream.too_large = true;
      std::string().swap(stream.body);
      return 0;
    }
    stream.body.append(reinterpret_cast<const char*>(data), length);
    return 0;
  }

  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user_data) {
    if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && Of(user_data).streams.count(frame->hd.stream_id))
      Of(user_data).ready.push_back(frame->hd.stream_id);
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t, void* user_data) {
    Of(user_data).streams.erase(stream_id);
    return 0;
  }

  static ssize_t ReadResponse(nghttp2_session* session, int32_t stream_id, uint8_t* buffer, size_t length,
                              uint32_t* flags, nghttp2_data_source* source, void*) {
    Stream& stream = *static_cast<Stream*>(source->ptr);
    const size_t n = std::min(length, stream.response.size() - stream.sent);
    std::memcpy(buffer, stream.response.data() + stream.sent, n);
    stream.sent += n;
    if (stream.sent == stream.response.size()) {
      *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
      const nghttp2_nv trailers[] = {Http2Header("grpc-status", "0")};
      if (nghttp2_submit_trailer(session, stream_id, trailers, std::size(trailers)) != 0)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return static_cast<ssize_t>(n);
  }

  std::shared_ptr<Hub> hub;
  tcp::socket socket;
  nghttp2_session* session = nullptr;
  std::array<uint8_t, kReadBytes> read_buffer;
  std::string out;
  bool writing = false;
  bool closed = false;
  bool close_when_written = false;  // shutting down: close once the last answers are out
  std::unordered_map<int32_t, Stream> streams;  // node-based: data providers point into it
  std::vector<int32_t> ready;
};

namespace {

void Accept(const std::shared_ptr<Hub>& hub) {
  hub->acceptor.async_wait(tcp::acceptor::wait_read, [hub](boost::system::error_code ec) {
    if (ec || !hub->acceptor.is_open()) return;
    for (int i = 0; i < 16; ++i) {
      const int fd = ::accept4(hub->acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        const int error = errno;
        if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
        if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
          LogEvent(LogLevel::kWarning, "grpc_accept_fd_limit", LogFields({{"error", LogValue(std::strerror(error))}}));
          hub->backoff.expires_after(hub->options.accept_backoff);
          hub->backoff.async_wait([hub](boost::system::error_code ec) {
            if (!ec) Accept(hub);
          });
          return;
        }
        break;
      }
      tcp::socket socket(hub->io);
      boost::system::error_code assigned;
      socket.assign(hub->protocol, fd, assigned);
      if (assigned) {
        ::close(fd);
        continue;
      }
      socket.set_option(tcp::no_delay(true), assigned);
      auto connection = std::make_shared<Connection>(hub, std::move(socket));
      if (connection->Open()) connection->Start();
    }
    Accept(hub);
  });
}

}  // namespace
}  // namespace grpc_transport_internal

using grpc_transport_internal::Connection;
using grpc_transport_internal::Hub;

GrpcResponder::GrpcResponder(std::shared_ptr<Hub> hub, std::weak_ptr<Connection> connection, int32_t stream_id)
    : hub_(std::move(hub)), connection_(std::move(connection)), stream_id_(stream_id) {}

void GrpcResponder::Finish(const GrpcCallStatus& status, const google::protobuf::MessageLite* response) {
  if (!hub_) return;
  if (auto connection = connection_.lock()) {
    if (!status.ok()) {
      connection->Answer(stream_id_, status, {});
    } else if (!response) {
      connection->Answer(stream_id_, {GrpcCode::kInternal, "no response"}, {});
    } else if (auto framed = FramedGrpcMessage(*response)) {
      connection->Answer(stream_id_, status, std::move(*framed));
    } else {
      connection->Answer(stream_id_, {GrpcCode::kInternal, "cannot serialize the response"}, {});
    }
  }
  auto hub = std::move(hub_);
  hub->CallDone();
}

GrpcTransport::GrpcTransport(boost::asio::io_context& io, GrpcTransportOptions options, GrpcDispatcher dispatcher)
    : hub_(std::make_shared<Hub>(io, std::move(options), std::move(dispatcher))) {}

GrpcTransport::~GrpcTransport() {
  hub_->stopping = true;  // connections still open call no dispatcher any more
  boost::system::error_code ignored;
  hub_->acceptor.close(ignored);
  hub_->backoff.cancel();
}

Status GrpcTransport::Start() {
  namespace asio = boost::asio;
  using tcp = asio::ip::tcp;
  const GrpcTransportOptions& options = hub_->options;
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) return InvalidArgument("host '" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  hub_->protocol = endpoint.protocol();
  const int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable("cannot open a socket: " + std::string(std::strerror(errno)));
  auto& acceptor = hub_->acceptor;
  acceptor.assign(endpoint.protocol(), fd, ec);
  if (ec) ::close(fd);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    acceptor.close(ec);
    return Unavailable("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
  }
  grpc_transport_internal::Accept(hub_);
  return Status::Ok();
}

uint16_t GrpcTransport::port() const {
  boost::system::error_code ec;
  auto endpoint = hub_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

size_t GrpcTransport::calls_in_flight() const {
  std::lock_guard lock(hub_->mu);
  return hub_->calls_open;
}

void GrpcTransport::Shutdown() {
  auto hub = hub_;
  // Runs `work` on the io thread and waits for it.
  auto on_io = [&hub](auto work) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    boost::asio::post(hub->io, [&] {
      work();
      std::lock_guard lock(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done; });
  };
  {
    std::lock_guard lock(hub->mu);
    if (hub->shutdown_started) return;
    hub->shutdown_started = true;
  }
  on_io([&] {
    hub->stopping = true;
    boost::system::error_code ignored;
    hub->acceptor.close(ignored);
    hub->backoff.cancel();
    for (Connection* c : hub->connections) c->GoAway();
  });
  {
    // The runtime answers every request it took (its timeouts bound this).
    std::unique_lock lock(hub->mu);
    hub->drained.wait(lock, [&] { return hub->calls_open == 0; });
  }
  on_io([&] {
    // Closing may free a connection: copy the set first.
    std::vector<std::shared_ptr<Connection>> open;
    for (Connection* c : hub->connections) open.push_back(c->shared_from_this());
    for (auto& c : open) {
      c->close_when_written = true;
      c->Flush();
    }
  });
}

}  // namespace thaw
