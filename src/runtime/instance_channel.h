// InstanceChannel: the runtime's end of a worker's socket. Frames
// (src/ipc) are read as they arrive and handed over one by one; requests are
// written from their tensors (gather writes, no copy on the event loop), one
// after another. A worker that closes its socket, or sends bytes that are
// not a frame, is reported once; after Close nothing more is.
// Threading: the io_context's thread only. Ownership: owns the socket; keep
// it in a shared_ptr (reads and writes hold it while pending).
#pragma once

#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "ipc/messages.h"

namespace thaw {

class InstanceChannel : public std::enable_shared_from_this<InstanceChannel> {
 public:
  struct Handlers {
    std::function<void(ipc::MessageType type, const std::string& payload)> frame;
    std::function<void(const std::string& error)> malformed;  // then nothing more is read
    std::function<void()> closed;                             // EOF or a socket error
    std::function<void()> after_read;                         // after each read's frames
  };

  // Takes the socket descriptor `fd`.
  InstanceChannel(boost::asio::io_context& io, int fd);

  // Starts reading; call once.
  void Start(Handlers handlers);
  // Queues `frame` to be written after the ones before it. A write error
  // shows up as `closed` on the read side.
  void Send(ipc::InferRequestFrame frame);
  // Closes the socket; no handler is called after this.
  void Close();
  bool is_closed() const { return closed_; }

 private:
  void ReadMore();
  void WriteMore();

  boost::asio::local::stream_protocol::socket socket_;
  ipc::FrameReader reader_;
  std::array<char, 256 * 1024> read_buffer_;
  std::deque<ipc::InferRequestFrame> write_queue_;
  bool writing_ = false;
  bool closed_ = false;
  Handlers handlers_;
};

}  // namespace thaw
