#include "grpc/grpc_load.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/message_lite.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>
#include <unordered_map>
#include <utility>

#include "grpc/grpc_wire.h"
#include "grpc/status_codes.h"
#include "grpc_service.pb.h"
#include "protocol/v2.h"

namespace thaw {
namespace {

namespace asio = boost::asio;
namespace pb = ::inference;
using tcp = asio::ip::tcp;
using load::ErrorCause;
using load::Outcome;
using load::ParameterMean;
using load::RequestRecord;

constexpr size_t kPrefixBytes = kGrpcPrefixBytes;
constexpr int32_t kWindow = 1 << 30;

StatusOr<pb::ModelInferRequest> ToMessage(const std::string& model, const std::string& json) {
  auto parsed = v2::ParseInferRequest(json, std::nullopt);
  if (!parsed.ok()) return InvalidArgument("the request: " + parsed.status().message());
  pb::ModelInferRequest message;
  message.set_model_name(model);
  if (parsed->id) message.set_id(*parsed->id);
  if (parsed->timeout_ms) (*message.mutable_parameters())["timeout_ms"].set_int64_param(*parsed->timeout_ms);
  for (Tensor& t : parsed->inputs) {
    auto* input = message.add_inputs();
    input->set_name(t.name);
    input->set_datatype(std::string(DataTypeName(t.datatype)));
    for (int64_t d : t.shape) input->add_shape(d);
    message.add_raw_input_contents(std::move(t.data));
  }
  for (const v2::RequestedOutput& o : parsed->outputs) {
    auto* output = message.add_outputs();
    output->set_name(o.name);
    if (o.classification > 0) (*output->mutable_parameters())["classification"].set_int64_param(o.classification);
  }
  return message;
}

void ReadParameters(const pb::ModelInferResponse& response, RequestRecord& record, bool measured,
                    std::vector<ParameterMean>& means) {
  for (const auto& [key, value] : response.parameters()) {
    double number = 0;
    if (value.parameter_choice_case() == pb::InferParameter::kInt64Param) {
      number = static_cast<double>(value.int64_param());
    } else if (value.parameter_choice_case() == pb::InferParameter::kDoubleParam) {
      number = value.double_param();
    } else if (value.parameter_choice_case() == pb::InferParameter::kUint64Param) {
      number = static_cast<double>(value.uint64_param());
    } else {
      continue;
    }
    load::RecordResponseParameter(key, number, measured, record, means);
  }
}


// One Run on one HTTP/2 connection. Single-threaded: everything happens in
// handlers of its own io_context, as the REST generator's.
class Runner {
 public:
  Runner(const Clock& clock, const GrpcLoadOptions& options, const std::vector<Micros>& offsets, std::string framed,
         std::string authority, size_t warmup_count)
      : clock_(clock),
        options_(options),
        offsets_(offsets),
        framed_(std::move(framed)),
        authority_(std::move(authority)),
        authorization_(options.bearer_token.empty() ? "" : "Bearer " + options.bearer_token),
        warmup_count_(warmup_count),
        socket_(io_),
        timer_(io_),
        drain_timer_(io_),
        records_(offsets.size()) {
    for (size_t i = 0; i < offsets.size(); ++i) records_[i].offset_us = offsets[i];
  }

  ~Runner() {
    if (session_) nghttp2_session_del(session_);
  }

  // Connects, retrying until connect_timeout_s. kUnavailable if it never does.
  Status Connect(const tcp::resolver::results_type& endpoints) {
    const Micros deadline = clock_.NowMicros() + static_cast<Micros>(options_.connect_timeout_s * kMicrosPerSecond);
    for (;;) {
      boost::system::error_code ec;
      asio::connect(socket_, endpoints, ec);
      if (!ec) break;
      if (clock_.NowMicros() >= deadline) return Unavailable("cannot connect over gRPC: " + ec.message());
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    nghttp2_session_callbacks* callbacks = nullptr;
    if (nghttp2_session_callbacks_new(&callbacks) != 0) return Internal("nghttp2: out of memory");
    nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
    nghttp2_option* option = nullptr;
    if (nghttp2_option_new(&option) != 0) {
      nghttp2_session_callbacks_del(callbacks);
      return Internal("nghttp2: out of memory");
    }
    nghttp2_option_set_no_closed_streams(option, 1);  // no priorities: nothing to keep them for
    const int created = nghttp2_session_client_new2(&session_, callbacks, this, option);
    nghttp2_option_del(option);
    nghttp2_session_callbacks_del(callbacks);
    if (created != 0) return Internal("nghttp2: cannot start a session");
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(kWindow)},
                                               {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                               {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1}};
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, kWindow);
    return Status::Ok();
  }

  load::LoadResult Run() {
    start_ = clock_.NowMicros();
    Flush();
    Read();
    if (!offsets_.empty()) ArmTimer();
    else Close();
    io_.run();
    load::LoadResult result;
    result.warmup_requests = static_cast<int64_t>(warmup_count_);
    result.requests.assign(records_.begin() + static_cast<std::ptrdiff_t>(warmup_count_), records_.end());
    result.connections_opened = 1;
    result.parameters = std::move(means_);
    return result;
  }

 private:
  struct Stream {
    size_t index = 0;
    size_t sent = 0;  // of framed_
    int http_status = 0;
    int grpc_status = -1;
    std::string body;
  };

  void ArmTimer() {
    const Micros wait = start_ + offsets_[next_] - clock_.NowMicros();
    timer_.expires_after(std::chrono::microseconds(std::max<Micros>(wait, 0)));
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) OnTimer();
    });
  }

  // Sends everything due (a slow wake-up catches up in one go), then one write.
  void OnTimer() {
    Micros now = clock_.NowMicros();
    while (next_ < offsets_.size() && start_ + offsets_[next_] <= now) {
      while (next_ < offsets_.size() && start_ + offsets_[next_] <= now) Send(next_++, now);
      now = clock_.NowMicros();
    }
    Flush();
    if (options_.on_progress) options_.on_progress(next_, offsets_.size());
    if (next_ < offsets_.size()) return ArmTimer();
    if (streams_.empty()) return Close();
    drain_timer_.expires_after(std::chrono::microseconds(static_cast<Micros>(options_.drain_timeout_s * kMicrosPerSecond)));
    drain_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) Close();  // calls still out stay kTimeout
    });
  }

  void Send(size_t i, Micros now) {
    RequestRecord& record = records_[i];
    if (closed_) {
      record.outcome = Outcome::kError;
      record.error = ErrorCause::kConnectionReset;
      return;
    }
    if (streams_.size() >= static_cast<size_t>(options_.max_in_flight)) {
      record.outcome = Outcome::kClientOverload;
      return;
    }
    record.send_lateness_us = now - (start_ + offsets_[i]);
    auto stream = std::make_unique<Stream>();
    stream->index = i;
    std::array<nghttp2_nv, 8> headers;
    size_t n = 0;
    headers[n++] = Http2Header(":method", "POST");
    headers[n++] = Http2Header(":scheme", "http");
    headers[n++] = Http2Header(":path", "/inference.GRPCInferenceService/ModelInfer");
    headers[n++] = Http2Header(":authority", authority_);
    headers[n++] = Http2Header("content-type", "application/grpc");
    headers[n++] = Http2Header("te", "trailers");
    if (!authorization_.empty()) headers[n++] = Http2Header("authorization", authorization_);
    nghttp2_data_provider data{.source = {.ptr = stream.get()}, .read_callback = &ReadRequest};
    const int32_t id = nghttp2_submit_request(session_, nullptr, headers.data(), n, &data, this);
    if (id < 0) {
      record.outcome = Outcome::kError;
      record.error = ErrorCause::kOther;
      return;
    }
    streams_.emplace(id, std::move(stream));
  }

  void Read() {
    socket_.async_read_some(asio::buffer(read_buffer_), [this](boost::system::error_code ec, size_t n) {
      if (ec) return Lost();
      if (nghttp2_session_mem_recv(session_, read_buffer_.data(), n) < 0) return Lost();
      Flush();
      if (next_ == offsets_.size() && streams_.empty()) return Close();
      if (!closed_) Read();
    });
  }

  void Flush() {
    if (writing_ || closed_) return;
    out_.clear();
    if (!TakeOutgoing(session_, &out_)) return Lost();
    if (out_.empty()) return;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_), [this](boost::system::error_code ec, size_t) {
      writing_ = false;
      if (ec) return Lost();
      Flush();
    });
  }

  // The connection failed: every call out is an error.
  void Lost() {
    for (auto& [id, stream] : streams_) {
      records_[stream->index].outcome = Outcome::kError;
      records_[stream->index].error = ErrorCause::kConnectionReset;
    }
    streams_.clear();
    Close();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    streams_.clear();
    timer_.cancel();
    drain_timer_.cancel();
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  void Complete(Stream& stream, uint32_t error_code) {
    RequestRecord& record = records_[stream.index];
    if (stream.grpc_status < 0 && stream.http_status == 0) {
      record.outcome = Outcome::kError;
      record.error = error_code ? ErrorCause::kConnectionReset : ErrorCause::kOther;
      return;
    }
    record.outcome = Outcome::kResponse;
    record.latency_us = clock_.NowMicros() - (start_ + record.offset_us);
    // No grpc-status: an HTTP error (e.g. 415) or a broken answer.
    record.status = stream.grpc_status >= 0 ? HttpStatusOf(stream.grpc_status)
                                            : (stream.http_status != 200 ? stream.http_status : 500);
    if (stream.grpc_status != 0) return;
    // On an arena in a block of the runner's: no allocation per field.
    google::protobuf::ArenaOptions arena_options;
    arena_options.initial_block = arena_block_.data();
    arena_options.initial_block_size = arena_block_.size();
    google::protobuf::Arena arena(arena_options);
    auto* response = google::protobuf::Arena::CreateMessage<pb::ModelInferResponse>(&arena);
    if (stream.body.size() < kPrefixBytes ||
        !response->ParseFromArray(stream.body.data() + kPrefixBytes, static_cast<int>(stream.body.size() - kPrefixBytes))) {
      record.status = 500;
      return;
    }
    ReadParameters(*response, record, stream.index >= warmup_count_, means_);
  }

  static Runner& Of(void* user_data) { return *static_cast<Runner*>(user_data); }

  Stream* Find(int32_t id) {
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t name_length,
                      const uint8_t* value, size_t value_length, uint8_t, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Stream* stream = Of(user_data).Find(frame->hd.stream_id);
    if (!stream) return 0;
    const std::string_view key(reinterpret_cast<const char*>(name), name_length);
    const std::string text(reinterpret_cast<const char*>(value), value_length);
    if (key == ":status") stream->http_status = std::atoi(text.c_str());
    else if (key == "grpc-status") stream->grpc_status = std::atoi(text.c_str());
    return 0;
  }

  static int OnData(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t length, void* user_data) {
    if (Stream* stream = Of(user_data).Find(stream_id))
      stream->body.append(reinterpret_cast<const char*>(data), length);
    return 0;
  }

  static int OnStreamClose(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* user_data) {
    Runner& runner = Of(user_data);
    auto it = runner.streams_.find(stream_id);
    if (it == runner.streams_.end()) return 0;
    runner.Complete(*it->second, error_code);
    runner.streams_.erase(it);
    return 0;
  }

  static ssize_t ReadRequest(nghttp2_session*, int32_t, uint8_t* buffer, size_t length, uint32_t* flags,
                             nghttp2_data_source* source, void* user_data) {
    const std::string& framed = Of(user_data).framed_;
    Stream& stream = *static_cast<Stream*>(source->ptr);
    const size_t n = std::min(length, framed.size() - stream.sent);
    std::memcpy(buffer, framed.data() + stream.sent, n);
    stream.sent += n;
    if (stream.sent == framed.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  const Clock& clock_;
  const GrpcLoadOptions& options_;
  const std::vector<Micros>& offsets_;
  const std::string framed_;  // the request message with its gRPC prefix, the same for every call
  const std::string authority_;
  const std::string authorization_;
  const size_t warmup_count_;
  asio::io_context io_{1};
  tcp::socket socket_;
  asio::steady_timer timer_;
  asio::steady_timer drain_timer_;
  nghttp2_session* session_ = nullptr;
  std::array<uint8_t, 64 << 10> read_buffer_;
  alignas(8) std::array<char, 8192> arena_block_;
  std::string out_;
  bool writing_ = false;
  bool closed_ = false;
  std::unordered_map<int32_t, std::unique_ptr<Stream>> streams_;  // calls out
  std::vector<RequestRecord> records_;
  std::vector<ParameterMean> means_;
  Micros start_ = 0;
  size_t next_ = 0;
};

}  // namespace

GrpcLoadGenerator::GrpcLoadGenerator(const Clock& clock, GrpcLoadOptions options)
    : clock_(clock), options_(std::move(options)) {}

StatusOr<load::LoadResult> GrpcLoadGenerator::Run(const std::vector<Micros>& offsets_us) {
  auto url = load::ParseHttpUrl(options_.url);
  if (!url.ok()) return url.status();
  if (options_.model.empty()) return InvalidArgument("model name is empty");
  if (options_.max_in_flight < 1) return InvalidArgument("max_in_flight must be at least 1");
  for (double s : {options_.drain_timeout_s, options_.connect_timeout_s})
    if (!std::isfinite(s) || s < 0 || s > 86400) return InvalidArgument("timeouts must be in [0, 86400] s");
  for (size_t i = 0; i < offsets_us.size(); ++i)
    if (offsets_us[i] < 0 || (i > 0 && offsets_us[i] < offsets_us[i - 1]))
      return InvalidArgument("schedule offset " + std::to_string(i) + " is negative or out of order");
  auto message = ToMessage(options_.model, options_.request_json);
  if (!message.ok()) return message.status();
  auto framed = FramedGrpcMessage(*message);
  if (!framed) return InvalidArgument("the request cannot be serialized as a ModelInferRequest");

  const bool ipv6 = url->host.find(':') != std::string::npos;
  const std::string authority = (ipv6 ? "[" + url->host + "]" : url->host) + ":" + std::to_string(url->port);
  boost::asio::io_context resolver_io;
  tcp::resolver resolver(resolver_io);
  boost::system::error_code ec;
  auto endpoints = resolver.resolve(url->host, std::to_string(url->port), ec);
  if (ec) return Unavailable("cannot resolve '" + url->host + "': " + ec.message());
  const size_t warmup_count = static_cast<size_t>(
      std::lower_bound(offsets_us.begin(), offsets_us.end(), options_.warmup_us) - offsets_us.begin());
  // Large (it holds the io_context and a read buffer): off the stack.
  auto runner = std::make_unique<Runner>(clock_, options_, offsets_us, std::move(*framed), authority, warmup_count);
  if (Status connected = runner->Connect(endpoints); !connected.ok())
    return Unavailable("cannot connect to " + authority + " over gRPC: " + connected.message());
  return runner->Run();
}

}  // namespace thaw
