// Messages between the server and a worker process over a Unix stream socket.
//
// Wire format: every message is one frame
//   u32 payload_length (little-endian) | u8 MessageType | payload
// where payload_length counts the type byte and the payload. Integers are
// little-endian; strings and tensor data are u32/u64 length-prefixed.
//
// Conversation: the worker sends exactly one kReady or kInitError after it
// has loaded its model; then the server sends kInferRequest frames and the
// worker answers each with one kInferResponse carrying the same request_id
// (possibly out of order when instance_concurrency > 1).
//
// Spawners (zygote and template processes) have a control socket of their
// own: they send one kReady (or kInitError) when they can fork, then take
// kSpawn frames, each carrying the instance's socket as SCM_RIGHTS
// ancillary data. The forked instance talks on that socket as above.
//
// Errors: decoding returns kInvalidArgument for a malformed payload; a frame
// longer than kMaxFrameBytes is rejected.
// Thread safety: pure functions; FrameReader is not thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "tensor/tensor.h"

namespace thaw::ipc {

constexpr size_t kMaxFrameBytes = size_t{1} << 30;
constexpr size_t kFrameHeaderBytes = 5;  // u32 length + u8 type

enum class MessageType : uint8_t {
  kReady = 1,
  kInitError = 2,
  kInferRequest = 3,
  kInferResponse = 4,
  kSpawn = 5,
  kPrepared = 6,
  kForked = 7,
};

// Worker -> server, first, from an instance forked by a template or the
// zygote: its pid, before it loads anything (the server learns which process
// is starting, and can move it into its memory cgroup meanwhile).
struct ForkedMessage {
  int32_t pid = 0;
};

// Worker -> server, once, after the model is loaded and warmed.
struct ReadyMessage {
  int32_t pid = 0;
  Micros started_us = 0;       // RealClock time at main() entry, or right after fork
  Micros runtime_init_us = 0;  // process start to backend ready to load
  Micros model_load_us = 0;    // loading (and optimising) the model file
  Micros warmup_us = 0;        // first runs before serving
  // How it started: a StartLevel (repo/model_config.h) as a number.
  uint8_t start_level = 0;
  // What the worker's sandbox applied, in sandbox::EncodeReport's text form
  // (src/sandbox/sandbox.h); empty from a worker that reported nothing.
  std::string sandbox;
};

// Worker -> server, instead of kReady, when the model cannot be loaded.
struct InitErrorMessage {
  std::string message;
};

// Server -> worker.
struct InferRequestMessage {
  uint64_t request_id = 0;
  std::vector<Tensor> inputs;             // in the model config's input order
  std::vector<std::string> output_names;  // empty = all outputs
};

// Worker -> server.
struct InferResponseMessage {
  uint64_t request_id = 0;
  StatusCode code = StatusCode::kOk;
  std::string error;            // set when code != kOk
  std::vector<Tensor> outputs;  // when code == kOk
  Micros compute_us = 0;        // time inside the backend
};

// Server -> spawner: fork an instance that serves on the attached socket.
struct SpawnMessage {
  std::string model_dir;  // zygote: the model to load after fork; template: ignored
  // Zygote: the child prepares the model's artifact (PreparedMessage) and
  // exits instead of serving.
  bool prepare = false;
  // Zygote: the child becomes model_dir's template: it sends Forked (its
  // pid), loads and warms the model, sends Ready, and then serves Spawn
  // frames on the attached socket, its control socket, as a template does.
  // Not with `prepare`.
  bool as_template = false;
};

// Worker -> server, instead of kReady, from a child forked to prepare a
// model: the artifact (backend.h, PrepareArtifact) in pieces of at most
// kPreparedChunkBytes, in order, the last one marked, then it exits. Pieces
// keep the server's memory flat whatever the model's size.
struct PreparedMessage {
  std::string chunk;
  bool last = false;
  Micros prepare_us = 0;  // load + freeze + serialise (the last piece)
};
constexpr size_t kPreparedChunkBytes = size_t{1} << 20;

// Each Encode returns a complete frame ready to write.
std::string Encode(const ReadyMessage& m);
std::string Encode(const InitErrorMessage& m);
std::string Encode(const InferRequestMessage& m);
std::string Encode(const InferResponseMessage& m);
std::string Encode(const SpawnMessage& m);
std::string Encode(const PreparedMessage& m);
std::string Encode(const ForkedMessage& m);

// An infer request as pieces for a gather write, so that the tensors are
// not copied into a frame (a 200 MB input copied on the server's event loop
// stalled every other request): Pieces(), written in order, are the bytes
// Encode(message) returns. The input data stays in `message`; the views
// are valid while the frame lives and is not modified.
struct InferRequestFrame {
  InferRequestMessage message;
  std::vector<std::string> framing;  // framing[i] comes before inputs[i].data; the last one after the last input
  std::vector<std::string_view> Pieces() const;
};
InferRequestFrame EncodeInferRequestFrame(InferRequestMessage message);

// Each Decode takes the payload of a frame (after the type byte).
StatusOr<ReadyMessage> DecodeReady(std::string_view payload);
StatusOr<InitErrorMessage> DecodeInitError(std::string_view payload);
StatusOr<InferRequestMessage> DecodeInferRequest(std::string_view payload);
StatusOr<InferResponseMessage> DecodeInferResponse(std::string_view payload);
StatusOr<SpawnMessage> DecodeSpawn(std::string_view payload);
StatusOr<PreparedMessage> DecodePrepared(std::string_view payload);
StatusOr<ForkedMessage> DecodeForked(std::string_view payload);

struct Frame {
  MessageType type;
  std::string payload;  // bytes after the type byte
};

// Splits a byte stream into frames.
class FrameReader {
 public:
  // Appends bytes read from the socket.
  void Append(const char* data, size_t size);
  // The next complete frame, nullopt if more bytes are needed, or an error
  // for an oversized or unknown frame (the stream is then unusable).
  StatusOr<std::optional<Frame>> Next();

 private:
  std::string buffer_;
  size_t consumed_ = 0;
};

// Blocking helpers for the worker side: write a whole frame; read one frame.
// ReadFrame returns kUnavailable on EOF (peer closed). With `received_fd`,
// a descriptor passed with the frame (SCM_RIGHTS) is stored there (close-on-
// exec), or -1 if none came.
Status WriteAll(int fd, std::string_view bytes);
StatusOr<Frame> ReadFrame(int fd, int* received_fd = nullptr);

// Sends one whole frame with `passed_fd` attached, without blocking:
// kUnavailable if the socket buffer is full or the peer is gone.
Status SendFrameWithFd(int socket_fd, std::string_view frame, int passed_fd);

}  // namespace thaw::ipc
