#include "grpc/grpc_load.h"

#include <grpc/support/time.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <utility>

#include "grpc_service.grpc.pb.h"
#include "grpc/status_codes.h"
#include "protocol/v2.h"

namespace thaw {
namespace {

namespace pb = ::inference;
using load::Outcome;
using load::ParameterMean;
using load::RequestRecord;

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

struct Call {
  size_t index = 0;
  grpc::ClientContext context;
  pb::ModelInferResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<pb::ModelInferResponse>> reader;
};

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

  const bool ipv6 = url->host.find(':') != std::string::npos;
  const std::string target = (ipv6 ? "[" + url->host + "]" : url->host) + ":" + std::to_string(url->port);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(gpr_time_from_micros(
          static_cast<int64_t>(options_.connect_timeout_s * kMicrosPerSecond), GPR_TIMESPAN)))
    return Unavailable("cannot connect to " + target + " over gRPC");
  auto stub = pb::GRPCInferenceService::NewStub(channel);
  const std::string authorization = options_.bearer_token.empty() ? "" : "Bearer " + options_.bearer_token;

  const size_t warmup_count = static_cast<size_t>(
      std::lower_bound(offsets_us.begin(), offsets_us.end(), options_.warmup_us) - offsets_us.begin());
  std::vector<RequestRecord> records(offsets_us.size());
  for (size_t i = 0; i < offsets_us.size(); ++i) records[i].offset_us = offsets_us[i];
  std::vector<ParameterMean> means;

  // Two threads: this one sends at the scheduled times (sleeping between,
  // since gRPC's own timers round to milliseconds), a second one takes
  // completions off the queue. `mu` guards what they share.
  grpc::CompletionQueue queue;
  std::mutex mu;
  std::condition_variable all_done;
  std::unordered_set<Call*> outstanding;  // owned here until they complete
  bool cancelled = false;
  const Micros start = clock_.NowMicros();

  std::thread completer([&] {
    void* tag = nullptr;
    bool ok = false;
    while (queue.Next(&tag, &ok)) {
      auto* call = static_cast<Call*>(tag);
      const Micros now = clock_.NowMicros();
      std::lock_guard lock(mu);
      RequestRecord& record = records[call->index];
      if (!cancelled) {
        record.outcome = Outcome::kResponse;
        record.status = HttpStatusOf(call->status.error_code());
        record.latency_us = now - (start + record.offset_us);
        if (call->status.ok()) ReadParameters(call->response, record, call->index >= warmup_count, means);
      }
      outstanding.erase(call);
      delete call;
      if (outstanding.empty()) all_done.notify_all();
    }
  });

  size_t next = 0;
  while (next < offsets_us.size()) {
    const Micros now = clock_.NowMicros() - start;
    if (offsets_us[next] > now) {
      std::this_thread::sleep_for(std::chrono::microseconds(offsets_us[next] - now));
      continue;
    }
    for (; next < offsets_us.size() && offsets_us[next] <= now; ++next) {
      RequestRecord& record = records[next];
      auto* call = new Call;
      {
        std::lock_guard lock(mu);
        if (outstanding.size() >= static_cast<size_t>(options_.max_in_flight)) {
          record.outcome = Outcome::kClientOverload;
          delete call;
          continue;
        }
        outstanding.insert(call);
      }
      call->index = next;
      if (!authorization.empty()) call->context.AddMetadata("authorization", authorization);
      record.send_lateness_us = now - record.offset_us;
      call->reader = stub->AsyncModelInfer(&call->context, *message, &queue);
      call->reader->Finish(&call->response, &call->status, call);
    }
    if (options_.on_progress) options_.on_progress(next, offsets_us.size());
  }
  {
    // The drain: wait for the calls left, then cancel the rest (they still
    // complete through the queue; their records stay kTimeout).
    const Micros drain_end = start + (offsets_us.empty() ? 0 : offsets_us.back()) +
                             static_cast<Micros>(options_.drain_timeout_s * kMicrosPerSecond);
    std::unique_lock lock(mu);
    all_done.wait_for(lock, std::chrono::microseconds(std::max<Micros>(drain_end - clock_.NowMicros(), 0)),
                      [&] { return outstanding.empty(); });
    if (!outstanding.empty()) {
      cancelled = true;
      for (Call* call : outstanding) call->context.TryCancel();
      all_done.wait(lock, [&] { return outstanding.empty(); });
    }
  }
  queue.Shutdown();
  completer.join();

  load::LoadResult result;
  result.warmup_requests = static_cast<int64_t>(warmup_count);
  result.requests.assign(records.begin() + static_cast<std::ptrdiff_t>(warmup_count), records.end());
  result.connections_opened = 1;
  result.parameters = std::move(means);
  return result;
}

}  // namespace thaw
