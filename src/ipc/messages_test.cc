#include "ipc/messages.h"

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <pthread.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>

#include <gtest/gtest.h>

namespace thaw::ipc {
namespace {

void ExpectTensorEq(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.datatype, b.datatype);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.data, b.data);
}

// Splits one encoded frame into its type and payload.
Frame Parse(const std::string& bytes) {
  FrameReader r;
  r.Append(bytes.data(), bytes.size());
  auto next = r.Next();
  EXPECT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_TRUE(next->has_value());
  return std::move(**next);
}

std::string FloatBytes(std::initializer_list<float> values) {
  std::string s(values.size() * 4, '\0');
  std::memcpy(s.data(), values.begin(), s.size());
  return s;
}

InferRequestMessage SampleRequest() {
  InferRequestMessage m;
  m.request_id = 0x1122334455667788ULL;
  m.inputs.push_back(Tensor{"x", DataType::kFp32, {2, 2}, FloatBytes({1, 2, 3, 4})});
  m.inputs.push_back(Tensor{"ids", DataType::kInt64, {1, 0}, ""});
  m.inputs.push_back(Tensor{"", DataType::kBytes, {1}, std::string("\x03\0\0\0abc", 7)});
  m.output_names = {"probs", "", "logits"};
  return m;
}

TEST(IpcMessagesTest, ReadyRoundTrip) {
  ReadyMessage m{
      .pid = 4242, .started_us = 99, .runtime_init_us = -5, .model_load_us = 123456789012LL, .warmup_us = 7,
      .start_level = 3, .sandbox = "mode on\nuid 65534\nnetns 0 unshare: Operation not permitted\n"};
  std::string bytes = Encode(m);
  EXPECT_EQ(bytes.size(), kFrameHeaderBytes + 37 + 4 + m.sandbox.size());
  Frame f = Parse(bytes);
  EXPECT_EQ(f.type, MessageType::kReady);
  auto d = DecodeReady(f.payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->pid, 4242);
  EXPECT_EQ(d->started_us, 99);
  EXPECT_EQ(d->runtime_init_us, -5);
  EXPECT_EQ(d->model_load_us, 123456789012LL);
  EXPECT_EQ(d->warmup_us, 7);
  EXPECT_EQ(d->start_level, 3);
  EXPECT_EQ(d->sandbox, m.sandbox);
}

TEST(IpcMessagesTest, ReadyWithoutSandboxFieldIsRejected) {
  // A Ready of the layout before the sandbox report: a worker of another build.
  std::string payload = Parse(Encode(ReadyMessage{.pid = 1})).payload;
  EXPECT_TRUE(DecodeReady(payload).ok());
  EXPECT_EQ(DecodeReady(payload.substr(0, payload.size() - 4)).status().code(), StatusCode::kInvalidArgument);
  // A sandbox length past the end of the payload.
  payload[payload.size() - 4] = 9;
  EXPECT_EQ(DecodeReady(payload).status().code(), StatusCode::kInvalidArgument);
}

TEST(IpcMessagesTest, InitErrorRoundTrip) {
  InitErrorMessage m{.message = std::string("no such file\0with nul", 21)};
  Frame f = Parse(Encode(m));
  EXPECT_EQ(f.type, MessageType::kInitError);
  auto d = DecodeInitError(f.payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->message, m.message);

  auto empty = DecodeInitError(Parse(Encode(InitErrorMessage{})).payload);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->message, "");
}

TEST(IpcMessagesTest, InferRequestRoundTrip) {
  InferRequestMessage m = SampleRequest();
  Frame f = Parse(Encode(m));
  EXPECT_EQ(f.type, MessageType::kInferRequest);
  auto d = DecodeInferRequest(f.payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->request_id, m.request_id);
  ASSERT_EQ(d->inputs.size(), 3u);
  for (size_t i = 0; i < 3; ++i) ExpectTensorEq(d->inputs[i], m.inputs[i]);
  EXPECT_EQ(d->output_names, m.output_names);

  auto empty = DecodeInferRequest(Parse(Encode(InferRequestMessage{})).payload);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->inputs.empty());
  EXPECT_TRUE(empty->output_names.empty());
}

TEST(IpcMessagesTest, InferRequestPiecesAreTheEncodedFrame) {
  std::vector<InferRequestMessage> messages;
  messages.push_back(SampleRequest());
  messages.push_back(InferRequestMessage{.request_id = 9});  // no inputs, no outputs
  InferRequestMessage empty_data = SampleRequest();
  empty_data.inputs[0].data.clear();  // zero-length data: no piece for it
  empty_data.output_names = {"a", "bc"};
  messages.push_back(empty_data);
  InferRequestMessage two = SampleRequest();
  two.inputs.push_back(two.inputs[0]);
  two.inputs[1].name = "second";
  messages.push_back(two);
  for (const InferRequestMessage& m : messages) {
    const std::string whole = Encode(m);
    const InferRequestFrame frame = EncodeInferRequestFrame(m);
    std::string joined;
    for (std::string_view piece : frame.Pieces()) joined += piece;
    EXPECT_EQ(joined, whole) << "request " << m.request_id << " with " << m.inputs.size() << " inputs";
    // The data is written from the message, not copied into the framing.
    size_t framing_bytes = 0;
    for (const std::string& f : frame.framing) framing_bytes += f.size();
    size_t data_bytes = 0;
    for (const Tensor& t : m.inputs) data_bytes += t.data.size();
    EXPECT_EQ(framing_bytes + data_bytes, whole.size());
  }
}

TEST(IpcMessagesTest, InferResponseRoundTrip) {
  InferResponseMessage ok;
  ok.request_id = 9;
  ok.outputs.push_back(Tensor{"probs", DataType::kFp32, {1, 2}, FloatBytes({0.25f, 0.75f})});
  ok.outputs.push_back(Tensor{"flag", DataType::kBool, {}, std::string("\x01", 1)});
  ok.compute_us = 1234;
  Frame f = Parse(Encode(ok));
  EXPECT_EQ(f.type, MessageType::kInferResponse);
  auto d = DecodeInferResponse(f.payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->request_id, 9u);
  EXPECT_EQ(d->code, StatusCode::kOk);
  EXPECT_EQ(d->error, "");
  ASSERT_EQ(d->outputs.size(), 2u);
  ExpectTensorEq(d->outputs[0], ok.outputs[0]);
  ExpectTensorEq(d->outputs[1], ok.outputs[1]);
  EXPECT_EQ(d->compute_us, 1234);

  for (StatusCode code : {StatusCode::kInvalidArgument, StatusCode::kNotFound, StatusCode::kResourceExhausted,
                          StatusCode::kUnavailable, StatusCode::kDeadlineExceeded, StatusCode::kInternal}) {
    InferResponseMessage err{.request_id = 10, .code = code, .error = "boom", .outputs = {}, .compute_us = 3};
    auto e = DecodeInferResponse(Parse(Encode(err)).payload);
    ASSERT_TRUE(e.ok());
    EXPECT_EQ(e->code, code);
    EXPECT_EQ(e->error, "boom");
    EXPECT_TRUE(e->outputs.empty());
    EXPECT_EQ(e->compute_us, 3);
  }
}

TEST(IpcMessagesTest, AllDataTypesRoundTrip) {
  for (int t = 0; t <= static_cast<int>(DataType::kBytes); ++t) {
    InferResponseMessage m;
    m.outputs.push_back(Tensor{"t", static_cast<DataType>(t), {1}, "abcdefgh"});
    auto d = DecodeInferResponse(Parse(Encode(m)).payload);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->outputs[0].datatype, static_cast<DataType>(t));
  }
}

TEST(IpcMessagesTest, LargeTensorRoundTrip) {
  InferRequestMessage m;
  m.request_id = 1;
  std::string data(600 * 1024, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31);
  m.inputs.push_back(Tensor{"img", DataType::kFp32, {1, 3, 224, 224}, data.substr(0, 3 * 224 * 224 * 4)});
  auto d = DecodeInferRequest(Parse(Encode(m)).payload);
  ASSERT_TRUE(d.ok());
  ExpectTensorEq(d->inputs[0], m.inputs[0]);
}

TEST(IpcMessagesTest, TruncatedPayloadsAreRejected) {
  std::vector<std::pair<std::string, std::function<Status(std::string_view)>>> cases = {
      {Encode(ReadyMessage{.pid = 1, .sandbox = "mode off\n"}), [](std::string_view p) { return DecodeReady(p).status(); }},
      {Encode(InitErrorMessage{"abc"}), [](std::string_view p) { return DecodeInitError(p).status(); }},
      {Encode(SampleRequest()), [](std::string_view p) { return DecodeInferRequest(p).status(); }},
  };
  InferResponseMessage resp;
  resp.outputs.push_back(Tensor{"y", DataType::kFp32, {1}, FloatBytes({1})});
  cases.push_back({Encode(resp), [](std::string_view p) { return DecodeInferResponse(p).status(); }});

  for (auto& [frame, decode] : cases) {
    std::string payload = frame.substr(kFrameHeaderBytes);
    ASSERT_TRUE(decode(payload).ok());
    for (size_t n = 0; n < payload.size(); ++n) {
      Status s = decode(std::string_view(payload).substr(0, n));
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "prefix " << n;
    }
    Status s = decode(payload + "x");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << "trailing byte";
  }
}

TEST(IpcMessagesTest, InconsistentPayloadsAreRejected) {
  // A tensor count far larger than the payload could hold.
  std::string p(8, '\0');
  p += std::string("\xff\xff\xff\xff", 4);
  EXPECT_EQ(DecodeInferRequest(p).status().code(), StatusCode::kInvalidArgument);

  // A bad datatype byte.
  InferRequestMessage m;
  m.inputs.push_back(Tensor{"x", DataType::kFp32, {1}, FloatBytes({1})});
  std::string payload = Encode(m).substr(kFrameHeaderBytes);
  payload[8 + 4 + 4 + 1] = 100;  // request id, count, name length, name
  EXPECT_EQ(DecodeInferRequest(payload).status().code(), StatusCode::kInvalidArgument);

  // A bad status code.
  std::string resp = Encode(InferResponseMessage{}).substr(kFrameHeaderBytes);
  resp[8] = 77;
  EXPECT_EQ(DecodeInferResponse(resp).status().code(), StatusCode::kInvalidArgument);
}

TEST(IpcFrameReaderTest, BytesOneAtATime) {
  std::string stream = Encode(SampleRequest()) + Encode(ReadyMessage{.pid = 3}) + Encode(InitErrorMessage{"e"});
  FrameReader r;
  std::vector<Frame> frames;
  for (char c : stream) {
    r.Append(&c, 1);
    for (;;) {
      auto next = r.Next();
      ASSERT_TRUE(next.ok());
      if (!next->has_value()) break;
      frames.push_back(std::move(**next));
    }
  }
  ASSERT_EQ(frames.size(), 3u);
  EXPECT_EQ(frames[0].type, MessageType::kInferRequest);
  EXPECT_EQ(frames[1].type, MessageType::kReady);
  EXPECT_EQ(frames[2].type, MessageType::kInitError);
  EXPECT_EQ(DecodeReady(frames[1].payload)->pid, 3);
  EXPECT_EQ(DecodeInitError(frames[2].payload)->message, "e");
  EXPECT_EQ(DecodeInferRequest(frames[0].payload)->request_id, SampleRequest().request_id);
}

TEST(IpcFrameReaderTest, ManyFramesInOneAppend) {
  std::string stream;
  for (uint64_t i = 0; i < 1000; ++i) {
    InferResponseMessage m;
    m.request_id = i;
    m.outputs.push_back(Tensor{"y", DataType::kFp32, {1}, FloatBytes({float(i)})});
    stream += Encode(m);
  }
  FrameReader r;
  r.Append(stream.data(), stream.size());
  for (uint64_t i = 0; i < 1000; ++i) {
    auto next = r.Next();
    ASSERT_TRUE(next.ok());
    ASSERT_TRUE(next->has_value());
    auto d = DecodeInferResponse((*next)->payload);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->request_id, i);
  }
  auto end = r.Next();
  ASSERT_TRUE(end.ok());
  EXPECT_FALSE(end->has_value());
}

TEST(IpcFrameReaderTest, LargeFramesInOddChunks) {
  // Several 600 KB frames fed in chunks that straddle frame boundaries.
  std::string stream;
  const int kFrames = 20;
  for (int i = 0; i < kFrames; ++i) {
    InferRequestMessage m;
    m.request_id = i;
    m.inputs.push_back(Tensor{"img", DataType::kUint8, {600 * 1024}, std::string(600 * 1024, char('a' + i))});
    stream += Encode(m);
  }
  FrameReader r;
  int seen = 0;
  const size_t kChunk = 65521;
  for (size_t off = 0; off < stream.size(); off += kChunk) {
    r.Append(stream.data() + off, std::min(kChunk, stream.size() - off));
    for (;;) {
      auto next = r.Next();
      ASSERT_TRUE(next.ok());
      if (!next->has_value()) break;
      auto d = DecodeInferRequest((*next)->payload);
      ASSERT_TRUE(d.ok());
      EXPECT_EQ(d->request_id, uint64_t(seen));
      EXPECT_EQ(d->inputs[0].data, std::string(600 * 1024, char('a' + seen)));
      ++seen;
    }
  }
  EXPECT_EQ(seen, kFrames);
}

TEST(IpcFrameReaderTest, PartialFrameWaits) {
  std::string f = Encode(ReadyMessage{.pid = 1});
  FrameReader r;
  r.Append(f.data(), f.size() - 1);
  auto next = r.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_FALSE(next->has_value());
  r.Append(f.data() + f.size() - 1, 1);
  next = r.Next();
  ASSERT_TRUE(next.ok());
  EXPECT_TRUE(next->has_value());
}

std::string Header(uint32_t length, uint8_t type) {
  std::string h(5, '\0');
  for (int i = 0; i < 4; ++i) h[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  h[4] = static_cast<char>(type);
  return h;
}

TEST(IpcFrameReaderTest, OversizedFrameIsRejected) {
  FrameReader r;
  std::string h = Header(static_cast<uint32_t>(kMaxFrameBytes + 1), 3);
  r.Append(h.data(), h.size());
  auto next = r.Next();
  EXPECT_EQ(next.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(next.status().message().find("exceeds"), std::string::npos);
}

TEST(IpcFrameReaderTest, UnknownTypeIsRejected) {
  for (uint8_t type : {0, 8, 255}) {
    FrameReader r;
    std::string h = Header(1, type);
    r.Append(h.data(), h.size());
    EXPECT_EQ(r.Next().status().code(), StatusCode::kInvalidArgument) << int(type);
  }
}

TEST(IpcFrameReaderTest, ZeroLengthIsRejected) {
  FrameReader r;
  std::string h = Header(0, 1);
  r.Append(h.data(), h.size());
  EXPECT_EQ(r.Next().status().code(), StatusCode::kInvalidArgument);
}

class IpcSocketPairTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds_), 0); }
  void TearDown() override {
    for (int& fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  void Close(int i) {
    ::close(fds_[i]);
    fds_[i] = -1;
  }
  int fds_[2] = {-1, -1};
};

TEST_F(IpcSocketPairTest, WriteAllReadFrame) {
  // Bigger than the socket buffer, so WriteAll must do partial writes while
  // the reader drains concurrently.
  InferRequestMessage big;
  big.request_id = 77;
  big.inputs.push_back(Tensor{"img", DataType::kUint8, {3 << 20}, std::string(3 << 20, 'z')});
  std::string frames = Encode(big) + Encode(ReadyMessage{.pid = 5});
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(fds_[0], frames).ok());
    Close(0);
  });
  auto f1 = ReadFrame(fds_[1]);
  ASSERT_TRUE(f1.ok()) << f1.status().ToString();
  EXPECT_EQ(f1->type, MessageType::kInferRequest);
  auto d = DecodeInferRequest(f1->payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->request_id, 77u);
  EXPECT_EQ(d->inputs[0].data.size(), size_t{3} << 20);
  auto f2 = ReadFrame(fds_[1]);
  ASSERT_TRUE(f2.ok());
  EXPECT_EQ(DecodeReady(f2->payload)->pid, 5);
  writer.join();
  auto eof = ReadFrame(fds_[1]);
  EXPECT_EQ(eof.status().code(), StatusCode::kUnavailable);
}

TEST_F(IpcSocketPairTest, EofInsideFrameIsUnavailable) {
  std::string f = Encode(InitErrorMessage{"abcdef"});
  ASSERT_TRUE(WriteAll(fds_[0], std::string_view(f).substr(0, f.size() - 2)).ok());
  Close(0);
  EXPECT_EQ(ReadFrame(fds_[1]).status().code(), StatusCode::kUnavailable);
}

TEST_F(IpcSocketPairTest, EofInsideHeaderIsUnavailable) {
  ASSERT_TRUE(WriteAll(fds_[0], "\x01\x00").ok());
  Close(0);
  EXPECT_EQ(ReadFrame(fds_[1]).status().code(), StatusCode::kUnavailable);
}

TEST_F(IpcSocketPairTest, BadHeaderIsInvalidArgument) {
  ASSERT_TRUE(WriteAll(fds_[0], Header(1, 99)).ok());
  EXPECT_EQ(ReadFrame(fds_[1]).status().code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(WriteAll(fds_[0], Header(static_cast<uint32_t>(kMaxFrameBytes) + 10, 3)).ok());
  EXPECT_EQ(ReadFrame(fds_[1]).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(IpcSocketPairTest, WriteToClosedPeerIsUnavailableWithoutSigpipe) {
  Close(1);
  Status s = WriteAll(fds_[0], Encode(ReadyMessage{}));
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
}

TEST(IpcWriteAllTest, WorksOnPipes) {
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::string f = Encode(ReadyMessage{.pid = 12});
  ASSERT_TRUE(WriteAll(p[1], f).ok());
  ::close(p[1]);
  auto frame = ReadFrame(p[0]);
  ASSERT_TRUE(frame.ok());
  EXPECT_EQ(DecodeReady(frame->payload)->pid, 12);
  EXPECT_EQ(ReadFrame(p[0]).status().code(), StatusCode::kUnavailable);
  ::close(p[0]);
}

// Signals interrupting blocked reads and writes must not surface as errors.
void NoopHandler(int) {}

TEST_F(IpcSocketPairTest, SurvivesEintr) {
  struct sigaction sa {};
  sa.sa_handler = NoopHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: blocked calls fail with EINTR
  struct sigaction old {};
  ASSERT_EQ(::sigaction(SIGUSR1, &sa, &old), 0);

  pthread_t reader_thread = ::pthread_self();
  std::atomic<bool> done{false};
  std::string payload(2 << 20, 'q');
  InferRequestMessage m;
  m.inputs.push_back(Tensor{"x", DataType::kUint8, {2 << 20}, payload});
  std::string frame = Encode(m);

  std::thread writer([&] {
    // Interrupt the reader a few times while it waits, then send the frame.
    for (int i = 0; i < 5; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      ::pthread_kill(reader_thread, SIGUSR1);
    }
    EXPECT_TRUE(WriteAll(fds_[0], frame).ok());
    done = true;
  });
  pthread_t writer_thread = writer.native_handle();
  std::thread pinger([&] {
    while (!done) {
      ::pthread_kill(reader_thread, SIGUSR1);
      ::pthread_kill(writer_thread, SIGUSR1);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  auto f = ReadFrame(fds_[1]);
  writer.join();
  pinger.join();
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  auto d = DecodeInferRequest(f->payload);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->inputs[0].data, payload);
  ::sigaction(SIGUSR1, &old, nullptr);
}

TEST(IpcMessagesTest, SpawnRoundTrip) {
  Frame f = Parse(Encode(SpawnMessage{.model_dir = "/models/fashion"}));
  EXPECT_EQ(f.type, MessageType::kSpawn);
  auto d = DecodeSpawn(f.payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->model_dir, "/models/fashion");
  EXPECT_FALSE(d->prepare);
  EXPECT_FALSE(DecodeSpawn(f.payload + "x").ok());
  auto prepare = DecodeSpawn(Parse(Encode(SpawnMessage{.model_dir = "m", .prepare = true})).payload);
  ASSERT_TRUE(prepare.ok());
  EXPECT_TRUE(prepare->prepare);
  EXPECT_FALSE(prepare->as_template);
  auto as_template = DecodeSpawn(Parse(Encode(SpawnMessage{.model_dir = "m", .as_template = true})).payload);
  ASSERT_TRUE(as_template.ok());
  EXPECT_TRUE(as_template->as_template);
  EXPECT_FALSE(as_template->prepare);
  std::string bad = f.payload;
  bad.back() = 3;  // not an instance (0), a preparation (1) or a template (2)
  EXPECT_FALSE(DecodeSpawn(bad).ok());
}

TEST(IpcMessagesTest, ForkedRoundTrip) {
  Frame f = Parse(Encode(ForkedMessage{.pid = 31337}));
  EXPECT_EQ(f.type, MessageType::kForked);
  auto d = DecodeForked(f.payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->pid, 31337);
  EXPECT_FALSE(DecodeForked(Parse(Encode(ForkedMessage{.pid = 0})).payload).ok());
  EXPECT_FALSE(DecodeForked(f.payload + "x").ok());
}

TEST(IpcMessagesTest, PreparedRoundTrip) {
  const std::string artifact("PK\0\x03 frozen bytes", 17);
  Frame f = Parse(Encode(PreparedMessage{.chunk = artifact, .last = true, .prepare_us = 4321}));
  EXPECT_EQ(f.type, MessageType::kPrepared);
  auto d = DecodePrepared(f.payload);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->chunk, artifact);
  EXPECT_TRUE(d->last);
  EXPECT_EQ(d->prepare_us, 4321);
  EXPECT_FALSE(DecodePrepared(f.payload.substr(0, f.payload.size() - 1)).ok());
  // A piece over kPreparedChunkBytes is refused: the server's memory stays bounded.
  EXPECT_FALSE(DecodePrepared(Parse(Encode(PreparedMessage{.chunk = std::string(kPreparedChunkBytes + 1, 'x')})).payload).ok());
}

TEST_F(IpcSocketPairTest, PassesDescriptorWithFrame) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const std::string frame = Encode(SpawnMessage{.model_dir = "m"});
  ASSERT_TRUE(SendFrameWithFd(fds_[0], frame, pipe_fds[1]).ok());
  ::close(pipe_fds[1]);
  int received = -1;
  auto got = ReadFrame(fds_[1], &received);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->type, MessageType::kSpawn);
  ASSERT_GE(received, 0);
  // The received descriptor is the pipe's write end: bytes written to it arrive.
  ASSERT_EQ(::write(received, "ok", 2), 2);
  ::close(received);
  char buf[2];
  ASSERT_EQ(::read(pipe_fds[0], buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "ok");
  ::close(pipe_fds[0]);
}

TEST_F(IpcSocketPairTest, FrameWithoutDescriptorReportsNone) {
  ASSERT_TRUE(WriteAll(fds_[0], Encode(SpawnMessage{.model_dir = "m"})).ok());
  int received = 7;
  ASSERT_TRUE(ReadFrame(fds_[1], &received).ok());
  EXPECT_EQ(received, -1);
}

}  // namespace
}  // namespace thaw::ipc
