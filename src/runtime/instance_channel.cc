#include "runtime/instance_channel.h"

#include <boost/asio/write.hpp>
#include <vector>

namespace thaw {

namespace asio = boost::asio;

InstanceChannel::InstanceChannel(asio::io_context& io, int fd) : socket_(io) {
  socket_.assign(asio::local::stream_protocol(), fd);
}

void InstanceChannel::Start(Handlers handlers) {
  handlers_ = std::move(handlers);
  ReadMore();
}

void InstanceChannel::Close() {
  if (closed_) return;
  closed_ = true;
  boost::system::error_code ignored;
  socket_.close(ignored);
}

void InstanceChannel::Send(ipc::InferRequestFrame frame) {
  if (closed_) return;
  write_queue_.push_back(std::move(frame));
  WriteMore();
}

void InstanceChannel::WriteMore() {
  if (writing_ || write_queue_.empty() || closed_) return;
  writing_ = true;
  std::vector<asio::const_buffer> buffers;
  for (std::string_view piece : write_queue_.front().Pieces()) buffers.push_back(asio::buffer(piece));
  asio::async_write(socket_, buffers, [self = shared_from_this()](const boost::system::error_code& ec, size_t) {
    self->writing_ = false;
    if (self->closed_) return;
    self->write_queue_.pop_front();
    // A write error shows up as EOF on the read side, which reports it.
    if (!ec) self->WriteMore();
  });
}

void InstanceChannel::ReadMore() {
  socket_.async_read_some(asio::buffer(read_buffer_), [self = shared_from_this()](const boost::system::error_code& ec,
                                                                                 size_t n) {
    if (self->closed_) return;
    if (ec) {
      self->closed_ = true;
      self->handlers_.closed();
      return;
    }
    self->reader_.Append(self->read_buffer_.data(), n);
    while (!self->closed_) {
      auto frame = self->reader_.Next();
      if (!frame.ok()) {
        self->handlers_.malformed(frame.status().message());
        break;
      }
      if (!frame->has_value()) break;
      self->handlers_.frame((*frame)->type, (*frame)->payload);
    }
    self->handlers_.after_read();
    if (!self->closed_) self->ReadMore();
  });
}

}  // namespace thaw
