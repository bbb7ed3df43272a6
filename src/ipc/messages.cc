#include "ipc/messages.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <limits>

// Payload layouts (all integers little-endian; see messages.h for framing):
//   string  = u32 length | bytes
//   blob    = u64 length | bytes
//   tensor  = string name | u8 DataType | u32 rank | i64 dims[rank] | blob data
//   Ready         = i32 pid | i64 started_us | i64 runtime_init_us | i64 model_load_us | i64 warmup_us | str sandbox
//   InitError     = string message
//   InferRequest  = u64 request_id | u32 n | tensor[n] | u32 m | string output_names[m]
//   InferResponse = u64 request_id | u8 StatusCode | string error | u32 n | tensor[n] | i64 compute_us
// Enum bytes are the enumerators' values in tensor.h and status.h.

namespace thaw::ipc {
namespace {

// ---- Encoding -------------------------------------------------------------

// Appends little-endian integers and length-prefixed blobs to a frame that
// starts with a placeholder header; Finish() fills in the length.
class Writer {
 public:
  Writer(MessageType type, size_t reserve) {
    out_.reserve(kFrameHeaderBytes + reserve);
    out_.append(4, '\0');
    out_.push_back(static_cast<char>(type));
  }

  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Int(v); }
  void U64(uint64_t v) { Int(v); }
  void I32(int32_t v) { Int(static_cast<uint32_t>(v)); }
  void I64(int64_t v) { Int(static_cast<uint64_t>(v)); }

  void String(std::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }

  void Blob(std::string_view s) {
    U64(s.size());
    out_.append(s);
  }

  // Everything of a tensor but its data: name, type, shape, data length.
  void TensorMeta(const Tensor& t) {
    String(t.name);
    U8(static_cast<uint8_t>(t.datatype));
    U32(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) I64(d);
    U64(t.data.size());
  }

  void TensorValue(const Tensor& t) {
    TensorMeta(t);
    out_.append(t.data);
  }

  size_t size() const { return out_.size(); }

  // `elsewhere`: bytes of the frame written from other buffers (gather write).
  std::string Finish(size_t elsewhere = 0) {
    uint32_t len = static_cast<uint32_t>(out_.size() + elsewhere - 4);
    for (int i = 0; i < 4; ++i) out_[i] = static_cast<char>((len >> (8 * i)) & 0xff);
    return std::move(out_);
  }

 private:
  template <typename U>
  void Int(U v) {
    char b[sizeof(U)];
    for (size_t i = 0; i < sizeof(U); ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(b, sizeof(U));
  }

  std::string out_;
};

size_t TensorEncodedSize(const Tensor& t) {
  return 4 + t.name.size() + 1 + 4 + 8 * t.shape.size() + 8 + t.data.size();
}

// ---- Decoding -------------------------------------------------------------

// Reads from a payload; every read checks bounds. After the first failure
// all reads fail and ok() is false.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  bool AtEnd() const { return pos_ == in_.size(); }
  size_t remaining() const { return in_.size() - pos_; }

  bool U8(uint8_t* v) { return Int(v); }
  bool U32(uint32_t* v) { return Int(v); }
  bool U64(uint64_t* v) { return Int(v); }
  bool I32(int32_t* v) {
    uint32_t u;
    if (!Int(&u)) return false;
    *v = static_cast<int32_t>(u);
    return true;
  }
  bool I64(int64_t* v) {
    uint64_t u;
    if (!Int(&u)) return false;
    *v = static_cast<int64_t>(u);
    return true;
  }

  bool String(std::string* s) {
    uint32_t n;
    if (!U32(&n)) return false;
    return Bytes(n, s);
  }

  bool Blob(std::string* s) {
    uint64_t n;
    if (!U64(&n)) return false;
    return Bytes(n, s);
  }

  bool TensorValue(Tensor* t) {
    uint8_t type;
    uint32_t rank;
    if (!String(&t->name) || !U8(&type)) return false;
    if (type > static_cast<uint8_t>(DataType::kBytes)) return Fail();
    t->datatype = static_cast<DataType>(type);
    if (!U32(&rank)) return false;
    if (rank > remaining() / 8) return Fail();
    t->shape.resize(rank);
    for (auto& d : t->shape)
      if (!I64(&d)) return false;
    return Blob(&t->data);
  }

  // A count of items that each take at least `min_item_bytes`; rejects
  // counts the remaining payload cannot possibly hold.
  bool Count(uint32_t* n, size_t min_item_bytes) {
    if (!U32(n)) return false;
    if (*n > remaining() / min_item_bytes) return Fail();
    return true;
  }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }

  bool Bytes(uint64_t n, std::string* s) {
    if (!ok_ || n > remaining()) return Fail();
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  template <typename U>
  bool Int(U* v) {
    if (!ok_ || remaining() < sizeof(U)) return Fail();
    U r = 0;
    for (size_t i = 0; i < sizeof(U); ++i)
      r |= static_cast<U>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    *v = r;
    pos_ += sizeof(U);
    return true;
  }

  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

// Smallest encoding of one tensor: empty name, type, rank 0, empty data.
constexpr size_t kMinTensorBytes = 4 + 1 + 4 + 8;

Status Malformed(std::string_view what, const Reader& r) {
  std::string m = "malformed ";
  m += what;
  m += r.ok() ? " message: trailing bytes" : " message: truncated or inconsistent payload";
  return InvalidArgument(std::move(m));
}

bool ValidStatusCode(uint8_t c) { return c <= static_cast<uint8_t>(StatusCode::kInternal); }

bool KnownType(uint8_t t) {
  return t >= static_cast<uint8_t>(MessageType::kReady) &&
         t <= static_cast<uint8_t>(MessageType::kForked);
}

uint32_t LoadU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// Checks a frame header; `length` counts the type byte and the payload.
Status CheckHeader(uint32_t length, uint8_t type) {
  if (length == 0) return InvalidArgument("IPC frame with zero length (no type byte)");
  if (length > kMaxFrameBytes)
    return InvalidArgument("IPC frame of " + std::to_string(length) + " bytes exceeds the limit of " +
                           std::to_string(kMaxFrameBytes));
  if (!KnownType(type)) return InvalidArgument("IPC frame of unknown type " + std::to_string(type));
  return Status::Ok();
}

}  // namespace

// ---- Messages -------------------------------------------------------------

std::string Encode(const ReadyMessage& m) {
  Writer w(MessageType::kReady, 37 + 4 + m.sandbox.size());
  w.I32(m.pid);
  w.I64(m.started_us);
  w.I64(m.runtime_init_us);
  w.I64(m.model_load_us);
  w.I64(m.warmup_us);
  w.U8(m.start_level);
  w.String(m.sandbox);
  return w.Finish();
}

std::string Encode(const InitErrorMessage& m) {
  Writer w(MessageType::kInitError, 4 + m.message.size());
  w.String(m.message);
  return w.Finish();
}

std::string Encode(const InferRequestMessage& m) {
  size_t size = 8 + 4 + 4;
  for (const auto& t : m.inputs) size += TensorEncodedSize(t);
  for (const auto& n : m.output_names) size += 4 + n.size();
  Writer w(MessageType::kInferRequest, size);
  w.U64(m.request_id);
  w.U32(static_cast<uint32_t>(m.inputs.size()));
  for (const auto& t : m.inputs) w.TensorValue(t);
  w.U32(static_cast<uint32_t>(m.output_names.size()));
  for (const auto& n : m.output_names) w.String(n);
  return w.Finish();
}

std::vector<std::string_view> InferRequestFrame::Pieces() const {
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < framing.size(); ++i) {
    pieces.push_back(framing[i]);
    if (i < message.inputs.size() && !message.inputs[i].data.empty()) pieces.push_back(message.inputs[i].data);
  }
  return pieces;
}

InferRequestFrame EncodeInferRequestFrame(InferRequestMessage m) {
  size_t size = 8 + 4 + 4, data_bytes = 0;
  for (const auto& t : m.inputs) {
    size += TensorEncodedSize(t);
    data_bytes += t.data.size();
  }
  for (const auto& n : m.output_names) size += 4 + n.size();
  Writer w(MessageType::kInferRequest, size - data_bytes);
  w.U64(m.request_id);
  w.U32(static_cast<uint32_t>(m.inputs.size()));
  std::vector<size_t> cuts;  // where each input's data goes
  for (const auto& t : m.inputs) {
    w.TensorMeta(t);
    cuts.push_back(w.size());
  }
  w.U32(static_cast<uint32_t>(m.output_names.size()));
  for (const auto& n : m.output_names) w.String(n);
  const std::string framing = w.Finish(data_bytes);
  InferRequestFrame frame;
  size_t from = 0;
  for (size_t cut : cuts) {
    frame.framing.push_back(framing.substr(from, cut - from));
    from = cut;
  }
  frame.framing.push_back(framing.substr(from));
  frame.message = std::move(m);
  return frame;
}

std::string Encode(const InferResponseMessage& m) {
  size_t size = 8 + 1 + 4 + m.error.size() + 4 + 8;
  for (const auto& t : m.outputs) size += TensorEncodedSize(t);
  Writer w(MessageType::kInferResponse, size);
  w.U64(m.request_id);
  w.U8(static_cast<uint8_t>(m.code));
  w.String(m.error);
  w.U32(static_cast<uint32_t>(m.outputs.size()));
  for (const auto& t : m.outputs) w.TensorValue(t);
  w.I64(m.compute_us);
  return w.Finish();
}

std::string Encode(const SpawnMessage& m) {
  Writer w(MessageType::kSpawn, 5 + m.model_dir.size());
  w.String(m.model_dir);
  w.U8(m.as_template ? 2 : m.prepare ? 1 : 0);
  return w.Finish();
}

std::string Encode(const PreparedMessage& m) {
  Writer w(MessageType::kPrepared, 13 + m.chunk.size());
  w.String(m.chunk);
  w.U8(m.last ? 1 : 0);
  w.I64(m.prepare_us);
  return w.Finish();
}

std::string Encode(const ForkedMessage& m) {
  Writer w(MessageType::kForked, 4);
  w.I32(m.pid);
  return w.Finish();
}

StatusOr<ForkedMessage> DecodeForked(std::string_view payload) {
  Reader r(payload);
  ForkedMessage m;
  r.I32(&m.pid);
  if (!r.ok() || !r.AtEnd() || m.pid <= 0) return Malformed("Forked", r);
  return m;
}

StatusOr<PreparedMessage> DecodePrepared(std::string_view payload) {
  Reader r(payload);
  PreparedMessage m;
  uint8_t last = 0;
  r.String(&m.chunk);
  r.U8(&last);
  r.I64(&m.prepare_us);
  if (!r.ok() || !r.AtEnd() || last > 1 || m.chunk.size() > kPreparedChunkBytes) return Malformed("Prepared", r);
  m.last = last == 1;
  return m;
}

StatusOr<SpawnMessage> DecodeSpawn(std::string_view payload) {
  Reader r(payload);
  SpawnMessage m;
  r.String(&m.model_dir);
  uint8_t kind = 0;  // 0 an instance, 1 a preparation, 2 a template
  r.U8(&kind);
  if (!r.ok() || !r.AtEnd() || kind > 2) return Malformed("Spawn", r);
  m.prepare = kind == 1;
  m.as_template = kind == 2;
  return m;
}

StatusOr<ReadyMessage> DecodeReady(std::string_view payload) {
  Reader r(payload);
  ReadyMessage m;
  r.I32(&m.pid);
  r.I64(&m.started_us);
  r.I64(&m.runtime_init_us);
  r.I64(&m.model_load_us);
  r.I64(&m.warmup_us);
  r.U8(&m.start_level);
  r.String(&m.sandbox);
  if (!r.ok() || !r.AtEnd()) return Malformed("Ready", r);
  return m;
}

StatusOr<InitErrorMessage> DecodeInitError(std::string_view payload) {
  Reader r(payload);
  InitErrorMessage m;
  r.String(&m.message);
  if (!r.ok() || !r.AtEnd()) return Malformed("InitError", r);
  return m;
}

StatusOr<InferRequestMessage> DecodeInferRequest(std::string_view payload) {
  Reader r(payload);
  InferRequestMessage m;
  uint32_t n = 0;
  r.U64(&m.request_id);
  if (r.Count(&n, kMinTensorBytes)) {
    m.inputs.resize(n);
    for (auto& t : m.inputs)
      if (!r.TensorValue(&t)) break;
  }
  if (r.ok() && r.Count(&n, 4)) {
    m.output_names.resize(n);
    for (auto& s : m.output_names)
      if (!r.String(&s)) break;
  }
  if (!r.ok() || !r.AtEnd()) return Malformed("InferRequest", r);
  return m;
}

StatusOr<InferResponseMessage> DecodeInferResponse(std::string_view payload) {
  Reader r(payload);
  InferResponseMessage m;
  uint8_t code = 0;
  uint32_t n = 0;
  r.U64(&m.request_id);
  if (r.U8(&code) && !ValidStatusCode(code)) return InvalidArgument("malformed InferResponse message: bad status code " + std::to_string(code));
  m.code = static_cast<StatusCode>(code);
  r.String(&m.error);
  if (r.ok() && r.Count(&n, kMinTensorBytes)) {
    m.outputs.resize(n);
    for (auto& t : m.outputs)
      if (!r.TensorValue(&t)) break;
  }
  r.I64(&m.compute_us);
  if (!r.ok() || !r.AtEnd()) return Malformed("InferResponse", r);
  return m;
}

// ---- FrameReader ----------------------------------------------------------

void FrameReader::Append(const char* data, size_t size) {
  // Drop consumed bytes only when they are at least half the buffer (and
  // worth moving), so each byte is moved O(1) times on average.
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ >= 4096 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
  buffer_.append(data, size);
}

StatusOr<std::optional<Frame>> FrameReader::Next() {
  size_t available = buffer_.size() - consumed_;
  if (available < kFrameHeaderBytes) return std::optional<Frame>();
  const char* p = buffer_.data() + consumed_;
  uint32_t length = LoadU32(p);
  uint8_t type = static_cast<uint8_t>(p[4]);
  THAW_RETURN_IF_ERROR(CheckHeader(length, type));
  if (available - 4 < length) return std::optional<Frame>();
  Frame frame{static_cast<MessageType>(type), std::string(p + kFrameHeaderBytes, length - 1)};
  consumed_ += 4 + static_cast<size_t>(length);
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  return std::optional<Frame>(std::move(frame));
}

// ---- Blocking I/O ---------------------------------------------------------

Status WriteAll(int fd, std::string_view bytes) {
  // send(MSG_NOSIGNAL) so a closed peer gives EPIPE rather than SIGPIPE;
  // plain write() for descriptors that are not sockets (pipes, files).
  bool use_send = true;
  while (!bytes.empty()) {
    ssize_t n = use_send ? ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL)
                         : ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (use_send && errno == ENOTSOCK) {
        use_send = false;
        continue;
      }
      int err = errno;
      if (err == EPIPE || err == ECONNRESET) return Unavailable(std::string("IPC peer closed: ") + std::strerror(err));
      return Internal(std::string("IPC write failed: ") + std::strerror(err));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

namespace {

// One read; with `received_fd`, through recvmsg to pick up a passed descriptor.
ssize_t ReadSome(int fd, char* out, size_t size, int* received_fd) {
  if (!received_fd) return ::read(fd, out, size);
  iovec iov{out, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
  if (n <= 0) return n;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int passed;
      std::memcpy(&passed, CMSG_DATA(c), sizeof(int));
      if (*received_fd >= 0) ::close(*received_fd);
      *received_fd = passed;
    }
  }
  return n;
}

// Reads exactly `size` bytes. `*got` is how many arrived before EOF or error.
Status ReadExact(int fd, char* out, size_t size, size_t* got, int* received_fd = nullptr) {
  *got = 0;
  while (*got < size) {
    ssize_t n = ReadSome(fd, out + *got, size - *got, received_fd);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      if (err == ECONNRESET) return Unavailable("IPC peer reset the connection");
      return Internal(std::string("IPC read failed: ") + std::strerror(err));
    }
    if (n == 0) return Unavailable("IPC peer closed the connection");
    *got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<Frame> ReadFrame(int fd, int* received_fd) {
  if (received_fd) *received_fd = -1;
  char header[kFrameHeaderBytes];
  size_t got = 0;
  // The sender attaches a descriptor to the frame's first bytes.
  Status s = ReadExact(fd, header, sizeof(header), &got, received_fd);
  if (!s.ok()) {
    if (got > 0 && s.code() == StatusCode::kUnavailable)
      return Unavailable("IPC peer closed the connection in the middle of a frame header");
    return s;
  }
  uint32_t length = LoadU32(header);
  uint8_t type = static_cast<uint8_t>(header[4]);
  THAW_RETURN_IF_ERROR(CheckHeader(length, type));
  Frame frame{static_cast<MessageType>(type), std::string()};
  // Grow the payload as bytes arrive, so a bogus length does not allocate
  // (and zero) a gigabyte up front.
  size_t total = length - 1;
  constexpr size_t kChunk = size_t{16} << 20;
  while (frame.payload.size() < total) {
    size_t have = frame.payload.size();
    size_t step = std::min(kChunk, total - have);
    frame.payload.resize(have + step);
    s = ReadExact(fd, frame.payload.data() + have, step, &got);
    if (!s.ok()) {
      if (s.code() == StatusCode::kUnavailable)
        return Unavailable("IPC peer closed the connection in the middle of a frame");
      return s;
    }
  }
  return frame;
}

Status SendFrameWithFd(int socket_fd, std::string_view frame, int passed_fd) {
  iovec iov{const_cast<char*>(frame.data()), frame.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &passed_fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(socket_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Unavailable(std::string("cannot pass a socket to the spawner: ") + std::strerror(errno));
  // The rest of a frame too large for one send goes without the descriptor.
  return WriteAll(socket_fd, frame.substr(static_cast<size_t>(n)));
}

}  // namespace thaw::ipc
