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

#include "base/log.h"
#include "protocol/v2.h"

namespace thaw {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
// Bound to the io_context's executor type: no type-erased executor per operation.
using Socket = asio::basic_stream_socket<tcp, asio::io_context::executor_type>;
using Acceptor = asio::basic_socket_acceptor<tcp, asio::io_context::executor_type>;
using SteadyClock = std::chrono::steady_clock;

namespace {

// Room for a typical request in one read: a request that fits is read with
// one recv (beast's default 512-byte reads took two or more).
constexpr size_t kReadBufferBytes = 8 << 10;

class Session;

// What the server and its sessions share; a session may outlive the server
// object while its last handlers drain.
struct Connections {
  Connections(asio::io_context& io, V2Handler& handler, HttpServerOptions options)
      : handler(handler), options(std::move(options)), sweep(io) {}

  V2Handler& handler;
  const HttpServerOptions options;
  std::list<Session*> open;  // sessions alive, in no particular order
  // One coarse timer per server closes connections idle too long, so that
  // no timer is armed and cancelled per request.
  asio::steady_timer sweep;
  bool sweep_armed = false;
};

void ArmSweep(const std::shared_ptr<Connections>& connections);

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Socket socket, std::shared_ptr<Connections> connections)
      : socket_(std::move(socket)), connections_(std::move(connections)) {
    buffer_.reserve(kReadBufferBytes);
    connections_->open.push_front(this);
    self_in_list_ = connections_->open.begin();
    ArmSweep(connections_);
  }
  ~Session() { connections_->open.erase(self_in_list_); }

  void Start() { ReadRequest(); }

  // Closes the connection if it has waited for (or been reading) a request
  // since before `cutoff`. Pending operations complete with an error and the
  // session ends.
  void CloseIfIdleSince(SteadyClock::time_point cutoff) {
    if (!reading_ || reading_since_ > cutoff) return;
    beast::error_code ignored;
    socket_.close(ignored);
  }

 private:
  const HttpServerOptions& options() const { return connections_->options; }

  void ReadRequest() {
    parser_.emplace();
    parser_->body_limit(options().max_body_bytes);
    reading_ = true;
    reading_since_ = SteadyClock::now();
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  // Clients such as curl send "Expect: 100-continue" with large bodies and
  // wait (curl: 1 s) for the go-ahead before sending them.
  void OnHeader(beast::error_code ec) {
    if (ec) return OnRead(ec);
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
    auto length = parser_->content_length();
    if (!parser_->is_done() && length && buffer_.size() >= *length) {
      while (!parser_->is_done() && buffer_.size() > 0) {
        const size_t used = parser_->put(buffer_.data(), ec);
        buffer_.consume(used);
        if (ec || used == 0) break;
      }
      if (ec && ec != http::error::need_more) return OnRead(ec);
    }
    if (parser_->is_done()) return OnRead({});
    ReadBody();
  }

  void ReadBody() {
    http::async_read(socket_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      HttpResponse response;
      response.status = 413;
      response.body = v2::EncodeError("request body exceeds " + std::to_string(options().max_body_bytes) + " bytes");
      return Write(std::move(response));
    }
    if (ec) return Close();  // closed by the peer, idle too long, or not HTTP
    auto& message = parser_->get();
    keep_alive_ = message.keep_alive();
    head_ = message.method() == http::verb::head;
    HttpRequest request;
    request.method = std::string(message.method_string());
    request.target = std::string(message.target());
    auto header_length = message.find("Inference-Header-Content-Length");
    if (header_length != message.end()) {
      size_t value = 0;
      auto text = header_length->value();
      auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (err != std::errc() || end != text.data() + text.size()) {
        HttpResponse response = ErrorResponse(InvalidArgument("header Inference-Header-Content-Length must be a "
                                                              "non-negative integer"));
        return Write(std::move(response));
      }
      request.inference_header_length = value;
    }
    request.body = std::move(message.body());
    connections_->handler.Handle(std::move(request),
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
      if (ec || !self->keep_alive_) return self->Close();
      self->ReadRequest();
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
  std::optional<http::request_parser<http::string_body>> parser_;
  std::string out_head_;
  std::string out_body_;
  bool keep_alive_ = true;
  bool head_ = false;
  bool reading_ = false;  // waiting for, or reading, a request
  SteadyClock::time_point reading_since_;
};

// While connections are open, every quarter of the idle timeout closes those
// that have waited for a request for longer than the timeout: an idle
// connection closes between 1 and 1.25 timeouts after its last response.
void ArmSweep(const std::shared_ptr<Connections>& connections) {
  if (connections->sweep_armed) return;
  connections->sweep_armed = true;
  const auto timeout = connections->options.idle_timeout;
  connections->sweep.expires_after(std::max<SteadyClock::duration>(timeout / 4, std::chrono::milliseconds(1)));
  connections->sweep.async_wait([weak = std::weak_ptr<Connections>(connections)](const beast::error_code& ec) {
    auto connections = weak.lock();
    if (ec || !connections) return;
    connections->sweep_armed = false;
    const auto cutoff = SteadyClock::now() - connections->options.idle_timeout;
    for (Session* session : connections->open) session->CloseIfIdleSince(cutoff);
    if (!connections->open.empty()) ArmSweep(connections);
  });
}

}  // namespace

struct HttpServer::Impl {
  Impl(asio::io_context& io, V2Handler& handler, HttpServerOptions options)
      : connections(std::make_shared<Connections>(io, handler, std::move(options))), acceptor(io.get_executor()) {}

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        socket.set_option(tcp::no_delay(true), ec);
        std::make_shared<Session>(std::move(socket), connections)->Start();
      }
      Accept();
    });
  }

  const HttpServerOptions& options() const { return connections->options; }

  std::shared_ptr<Connections> connections;
  Acceptor acceptor;
};

HttpServer::HttpServer(asio::io_context& io, V2Handler& handler, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(io, handler, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  beast::error_code ec;
  const HttpServerOptions& options = impl_->options();
  auto address = asio::ip::make_address(options.host, ec);
  if (ec) return InvalidArgument("host '" + options.host + "' is not an IP address");
  tcp::endpoint endpoint(address, options.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + options.host + ":" + std::to_string(options.port) + ": " + ec.message());
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
}

}  // namespace thaw
