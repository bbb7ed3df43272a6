#include "server/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <array>
#include <charconv>
#include <chrono>
#include <list>
#include <optional>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "protocol/v2.h"
#include "server/request_parsing.h"

namespace thaw {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
// Bound to the io_context's executor type: no type-erased executor per operation.
using Socket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;
using Acceptor = asio::basic_socket_acceptor<tcp, asio::io_context::executor_type>;
// Microseconds in a chrono duration (the options' timeouts).
Micros ToMicros(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

namespace {

// After refusing a request whose body is still arriving, read and drop what
// the client sends for this long, so that it reads the refusal instead of a
// reset (the kernel resets a connection closed with unread data).
constexpr auto kLingerAfterRefusal = std::chrono::seconds(2);
// Accepts per wake-up of the listening socket, so that a flood of
// connections does not keep the loop from its other work.
constexpr int kAcceptBatch = 64;

class Session;

// What the server and its sessions share; a session may outlive the server
// object while its last handlers drain.
struct Connections {
  Connections(asio::io_context& io, V2Handler& handler, const Clock& clock, HttpServerOptions options)
      : handler(handler), clock(clock), options(std::move(options)), sweep(io) {}

  V2Handler& handler;
  const Clock& clock;  // when reads started, for the idle and body-read timeouts
  const HttpServerOptions options;
  std::list<Session*> open;  // sessions alive, in no particular order
  // One coarse timer per server closes connections idle too long and ends
  // body reads that take too long, so that no timer is armed and cancelled
  // per request.
  asio::steady_timer sweep;
  bool sweep_armed = false;
  HttpServerStats stats;  // buffered_body_bytes: the sum of the sessions' reservations
};

void ArmSweep(const std::shared_ptr<Connections>& connections);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, std::shared_ptr<Connections> connections)
      : socket_(std::move(socket)), connections_(std::move(connections)) {
    buffer_.reserve(kRequestReadBufferBytes);
    connections_->open.push_front(this);
    self_in_list_ = connections_->open.begin();
    ArmSweep(connections_);
  }
  ~Session() {
    ReleaseBodyBytes();
    connections_->open.erase(self_in_list_);
  }

  void Start() { ReadRequest(); }

  // Called by the sweep. Closes the connection if it has waited for a
  // request (or the rest of its header) since before `idle_cutoff`; ends a
  // body read started before `body_cutoff` with 408. Pending operations
  // complete with an error and the session ends.
  void Sweep(Micros idle_cutoff_us, Micros body_cutoff_us) {
    if (reading_body_ && body_since_us_ <= body_cutoff_us && !body_timed_out_) {
      body_timed_out_ = true;
      beast::error_code ignored;
      socket_.cancel(ignored);  // the read completes with operation_aborted: OnBodyRead answers 408
      return;
    }
    if (!reading_ || reading_since_us_ > idle_cutoff_us) return;
    beast::error_code ignored;
    socket_.close(ignored);
  }

 private:
  const HttpServerOptions& options() const { return connections_->options; }
  HttpServerStats& stats() { return connections_->stats; }

  void ReadRequest() {
    StartRequestParser(&parser_, options());
    reading_ = true;
    reading_since_us_ = connections_->clock.NowMicros();
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Clients such as curl send "Expect: 100-continue" with large bodies and
  // wait (curl: 1 s) for the go-ahead before sending them.
  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
    LimitChunkedBody(*parser_, chunk_limit_, options());
    reading_body_ = true;
    body_since_us_ = connections_->clock.NowMicros();
    body_timed_out_ = false;
    auto expect = parser_->get()[http::field::expect];
    if (beast::iequals(expect, "100-continue")) {
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      return asio::async_write(socket_, asio::buffer(kContinue.data(), kContinue.size()),
                               [self = shared_from_this()](beast::error_code ec, size_t) {
                                 if (ec) return self->Close();
                                 self->ReadBody();
                               });
    }
    // The body usually came with the header: parse it here, as async_read
    // would post its completion for another trip through the event loop.
    ec = ParseBufferedBody(*parser_, buffer_);
    if (ec) return OnRead(ec);
    if (parser_->is_done()) return OnRead({});
    ReadBody();
  }

  // Reads the body a piece at a time (at most 64 KiB per read), counting
  // its bytes against the server's cap as they arrive.
  void ReadBody() {
    http::async_read_some(socket_, buffer_, *parser_,
                          [self = shared_from_this()](beast::error_code ec, size_t) { self->OnBodyRead(ec); });
  }

  void OnBodyRead(beast::error_code ec) {
    if (body_timed_out_) {
      ++stats().body_read_timeouts;
      return Refuse(408, "request body not complete within " +
                             std::to_string(options().body_read_timeout.count()) + " ms");
    }
    if (ec) return OnRead(ec);
    if (!parser_->is_done()) {
      const size_t body_bytes = parser_->get().body().size();
      auto& s = stats();
      s.buffered_body_bytes += body_bytes - reserved_body_bytes_;
      reserved_body_bytes_ = body_bytes;
      s.peak_buffered_body_bytes = std::max(s.peak_buffered_body_bytes, s.buffered_body_bytes);
      if (s.buffered_body_bytes > options().max_buffered_body_bytes) {
        ++s.refused_buffered_bytes;
        return Refuse(503, "the server is buffering too many request bodies (over " +
                               std::to_string(options().max_buffered_body_bytes) + " bytes); retry later",
                      /*retry_after=*/true);
      }
      return ReadBody();
    }
    OnRead({});
  }

  void ReleaseBodyBytes() {
    connections_->stats.buffered_body_bytes -= reserved_body_bytes_;
    reserved_body_bytes_ = 0;
  }

  // Answers `status` without reading the rest of the request, frees what
  // was buffered for it, and closes the connection after the response.
  void Refuse(int status, std::string message, bool retry_after = false) {
    reading_ = false;
    reading_body_ = false;
    ReleaseBodyBytes();
    parser_.reset();
    buffer_.clear();
    buffer_.shrink_to_fit();
    keep_alive_ = false;
    linger_ = true;
    HttpResponse response;
    response.status = status;
    response.body = v2::EncodeError(message);
    if (retry_after) response.headers.emplace_back("Retry-After", "1");
    Write(std::move(response));
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;
    reading_body_ = false;
    ReleaseBodyBytes();
    if (ec == http::error::body_limit) {
      ++stats().refused_body_too_large;
      return Refuse(413, "request body exceeds " + std::to_string(options().max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      ++stats().refused_header_too_large;
      return Refuse(431, "request header exceeds 8192 bytes");
    }
    if (ec) return Close();  // closed by the peer, idle too long, or not HTTP
    auto& message = parser_->get();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == http::verb::head;
    StatusOr<HttpRequest> request = ToHttpRequest(message);
    if (!request.ok()) return Write(ErrorResponse(request.status()));
    parser_.reset();  // nothing of the request stays behind in the session
    connections_->handler.Handle(std::move(request).value(),
                                 [self = shared_from_this()](HttpResponse response) { self->Write(std::move(response)); });
  }

  // Serializes the response head into a buffer the session keeps (no
  // allocation once it has grown) and sends head and body in one write.
  void Write(HttpResponse response) {
    const int status = response.status;
    char digits[24];
    out_head_.assign("HTTP/1.1 ");
    out_head_.append(digits, std::to_chars(digits, digits + sizeof(digits), status).ptr);
    out_head_ += ' ';
    const beast::string_view reason = http::obsolete_reason(http::int_to_status(static_cast<unsigned>(status)));
    out_head_.append(reason.data(), reason.size());
    out_head_ += "\r\nServer: thaw\r\nContent-Type: ";
    out_head_ += response.content_type;
    out_head_ += "\r\n";
    for (const auto& [name, value] : response.headers) {
      out_head_ += name;
      out_head_ += ": ";
      out_head_ += value;
      out_head_ += "\r\n";
    }
    if (!keep_alive_) out_head_ += "Connection: close\r\n";
    // 1xx, 204 and 304 carry no body and no Content-Length (RFC 9110 8.6).
    if (status >= 200 && status != 204 && status != 304) {
      out_head_ += "Content-Length: ";
      out_head_.append(digits, std::to_chars(digits, digits + sizeof(digits), response.body.size()).ptr);
      out_head_ += "\r\n";
    }
    out_head_ += "\r\n";
    out_body_ = std::move(response.body);
    if (head_) out_body_.clear();  // HEAD: the length of the body a GET would get, but no body
    std::array<asio::const_buffer, 2> buffers{asio::buffer(out_head_), asio::buffer(out_body_)};
    asio::async_write(socket_, buffers, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (!ec && self->linger_) return self->Linger();
      if (ec || !self->keep_alive_) return self->Close();
      std::string().swap(self->out_body_);  // a big response's memory goes now, not at the next one
      self->ReadRequest();
    });
  }

  // After a refusal: sends FIN, then reads and drops what the client still
  // sends until it closes or kLingerAfterRefusal passes.
  void Linger() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    std::string().swap(out_body_);
    linger_timer_.emplace(socket_.get_executor());
    linger_timer_->expires_after(kLingerAfterRefusal);
    linger_timer_->async_wait([weak = weak_from_this()](beast::error_code ec) {
      if (auto self = weak.lock(); self && !ec) self->Close();
    });
    Drain();
  }

  void Drain() {
    socket_.async_read_some(asio::buffer(drain_), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) {
        if (self->linger_timer_) self->linger_timer_->cancel();
        return self->Close();
      }
      self->Drain();
    });
  }

  void Close() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    socket_.close(ignored);
  }

  Socket socket_;
  std::shared_ptr<Connections> connections_;
  std::list<Session*>::iterator self_in_list_;
  beast::flat_buffer buffer_;
  std::optional<HttpRequestParser> parser_;
  ChunkedBodyLimit chunk_limit_;  // the parser points at it
  std::string out_head_;
  std::string out_body_;
  bool keep_alive_ = true;
  bool head_ = false;
  bool reading_ = false;       // waiting for, or reading, a request
  bool reading_body_ = false;  // the header is in; the body is arriving
  bool body_timed_out_ = false;
  bool linger_ = false;
  size_t reserved_body_bytes_ = 0;  // counted in Connections::stats.buffered_body_bytes
  Micros reading_since_us_ = 0;
  Micros body_since_us_ = 0;
  std::optional<asio::steady_timer> linger_timer_;
  std::array<char, 4096> drain_;
};

// While connections are open, the sweep runs every quarter of the shorter
// timeout: it closes connections that have waited for a request for longer
// than the idle timeout (between 1 and 1.25 timeouts after their last
// response) and ends body reads older than the body-read timeout.
void ArmSweep(const std::shared_ptr<Connections>& connections) {
  if (connections->sweep_armed) return;
  connections->sweep_armed = true;
  const auto period = std::min(connections->options.idle_timeout, connections->options.body_read_timeout) / 4;
  connections->sweep.expires_after(std::max<std::chrono::steady_clock::duration>(period, std::chrono::milliseconds(1)));
  connections->sweep.async_wait([weak = std::weak_ptr<Connections>(connections)](const beast::error_code& ec) {
    auto connections = weak.lock();
    if (ec || !connections) return;
    connections->sweep_armed = false;
    const Micros now = connections->clock.NowMicros();
    const Micros idle_cutoff = now - ToMicros(connections->options.idle_timeout);
    const Micros body_cutoff = now - ToMicros(connections->options.body_read_timeout);
    // Sweep may close a socket, whose session then ends later (from its
    // handler), so iterating the list here is safe.
    for (Session* session : connections->open) session->Sweep(idle_cutoff, body_cutoff);
    if (!connections->open.empty()) ArmSweep(connections);
  });
}

// Preformatted (EncodeError's text): sent when accept fails for want of a
// descriptor, without allocating.
constexpr std::string_view kFdLimitResponse =
    "HTTP/1.1 503 Service Unavailable\r\nServer: thaw\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    "Connection: close\r\nContent-Length: 62\r\n\r\n"
    "{\"error\":\"the server is out of file descriptors; retry later\"}";

}  // namespace

struct HttpServer::Impl {
  Impl(asio::io_context& io, V2Handler& handler, const Clock& clock, HttpServerOptions options)
      : io(io),
        connections(std::make_shared<Connections>(io, handler, clock, std::move(options))),
        acceptor(io.get_executor()),
        backoff(io) {}
  ~Impl() {
    if (reserve_fd >= 0) ::close(reserve_fd);
  }

  // Waits for the listening socket to be readable, then accepts with
  // accept4 (close-on-exec and non-blocking from the start; asio's accept
  // sets neither atomically).
  void Accept() {
    acceptor.async_wait(Acceptor::wait_read, [this](beast::error_code ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      for (int i = 0; i < kAcceptBatch; ++i) {
        const int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
          OnAccepted(fd);
          continue;
        }
        const int error = errno;
        if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
        if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) return BackOff(error);
        if (error != EAGAIN && error != EWOULDBLOCK)
          LogEvent(LogLevel::kWarning, "accept_failed", LogFields({{"error", LogValue(std::strerror(error))}}));
        break;
      }
      Accept();
    });
  }

  void OnAccepted(int fd) {
    ++connections->stats.connections_accepted;
    if (at_fd_limit) {
      at_fd_limit = false;
      LogEvent(LogLevel::kInfo, "accept_recovered",
               LogFields({{"shed", std::to_string(connections->stats.shed_at_fd_limit)}}));
    }
    Socket socket(io.get_executor());
    beast::error_code ec;
    socket.assign(protocol, fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Session>(std::move(socket), connections)->Start();
  }

  // Out of descriptors: the waiting clients would make the listening socket
  // readable at once, forever. Answer one of them through the reserve
  // descriptor, then stop accepting for accept_backoff.
  void BackOff(int error) {
    ++connections->stats.accept_fd_limit_backoffs;
    if (!at_fd_limit) {
      at_fd_limit = true;
      LogEvent(LogLevel::kWarning, "accept_fd_limit",
               LogFields({{"error", LogValue(std::strerror(error))},
                          {"backoff_ms", std::to_string(options().accept_backoff.count())}}));
    }
    if (reserve_fd >= 0) {
      ::close(reserve_fd);
      reserve_fd = -1;
      const int fd = ::accept4(acceptor.native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd >= 0) {
        (void)::send(fd, kFdLimitResponse.data(), kFdLimitResponse.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        ::shutdown(fd, SHUT_WR);
        ::close(fd);
        ++connections->stats.shed_at_fd_limit;
      }
      reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // fails while still at the limit: retried next time
    }
    backoff.expires_after(options().accept_backoff);
    backoff.async_wait([this](beast::error_code ec) {
      if (ec || !acceptor.is_open()) return;
      if (reserve_fd < 0) reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      Accept();
    });
  }

  const HttpServerOptions& options() const { return connections->options; }

  asio::io_context& io;
  std::shared_ptr<Connections> connections;
  Acceptor acceptor;
  tcp protocol = tcp::v4();
  asio::steady_timer backoff;
  int reserve_fd = -1;  // closed to accept (and refuse) one client when out of descriptors
  bool at_fd_limit = false;
};

Status HttpServerOptions::Validate() const {
  if (max_body_bytes == 0) return InvalidArgument("max_body_bytes must be positive");
  if (max_buffered_body_bytes == 0) return InvalidArgument("max_buffered_body_bytes must be positive");
  if (idle_timeout.count() <= 0) return InvalidArgument("idle_timeout must be positive");
  if (body_read_timeout.count() <= 0) return InvalidArgument("body_read_timeout must be positive");
  if (accept_backoff.count() <= 0) return InvalidArgument("accept_backoff must be positive");
  return Status::Ok();
}

HttpServer::HttpServer(asio::io_context& io, V2Handler& handler, const Clock& clock, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(io, handler, clock, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  const HttpServerOptions& options = impl_->options();
  if (Status valid = options.Validate(); !valid.ok()) return valid;
  beast::error_code ec;
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) return InvalidArgument("host '" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  impl_->protocol = endpoint.protocol();
  auto& acceptor = impl_->acceptor;
  // Close-on-exec from creation: asio opens sockets without it.
  const int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Unavailable("cannot open a socket: " + std::string(std::strerror(errno)));
  acceptor.assign(endpoint.protocol(), fd, ec);
  if (ec) ::close(fd);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
  if (impl_->reserve_fd < 0) impl_->reserve_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  impl_->Accept();
  return Status::Ok();
}

uint16_t HttpServer::port() const {
  beast::error_code ec;
  auto endpoint = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : endpoint.port();
}

void HttpServer::Stop() {
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
  impl_->backoff.cancel();
}

HttpServerStats HttpServer::stats() const { return impl_->connections->stats; }

}  // namespace thaw
