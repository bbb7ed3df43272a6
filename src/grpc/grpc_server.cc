#include "grpc/grpc_server.h"

#include <google/protobuf/arena.h>
#include <google/protobuf/util/json_util.h>
#include <simdjson.h>

#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <limits>
#include <optional>
#include <set>
#include <unordered_map>
#include <type_traits>
#include <utility>
#include <variant>

#include "base/json_writer.h"
#include "base/log.h"
#include "grpc/grpc_transport.h"
#include "grpc_service.pb.h"
#include "model_runtime.pb.h"
#include "repo/model_config.h"
#include "grpc/status_codes.h"
#include "protocol/v2.h"

namespace thaw {
namespace {

namespace pb = ::inference;
namespace mm = ::mmesh;

GrpcCallStatus GrpcStatus(int http_status, const std::string& message) {
  return GrpcCallStatus(GrpcCodeOf(http_status), message);
}

// The message of a REST error body ({"error": "..."}), else the body.
std::string ErrorMessage(const HttpResponse& response) {
  simdjson::dom::parser parser;
  std::string_view message;
  if (!parser.parse(response.body).get_object()["error"].get_string().get(message)) return std::string(message);
  return response.body;
}

GrpcCallStatus ErrorStatus(const HttpResponse& response) { return GrpcStatus(response.status, ErrorMessage(response)); }

// A model name as a path segment: the REST routes take no '/', '?' or empty names.
bool IsPathSegment(const std::string& name) {
  return !name.empty() && name.find_first_of("/?#%") == std::string::npos && name != "." && name != "..";
}

std::string ModelPath(const std::string& name, const std::string& version) {
  return "/v2/models/" + name + (version.empty() ? "" : "/versions/" + version);
}

template <typename Message>
GrpcCallStatus FromJson(const std::string& json, Message* message) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  auto status = google::protobuf::util::JsonStringToMessage(json, message, options);
  if (!status.ok())
    return GrpcCallStatus(GrpcCode::kInternal, "cannot convert the REST answer: " + std::string(status.message()));
  return GrpcCallStatus{};
}

// ---------------------------------------------------------------------------
// Tensors: gRPC messages <-> thaw's Tensor (the binary extension's bytes).

template <typename T, typename Repeated>
void AppendAs(std::string* out, const Repeated& values) {
  out->reserve(out->size() + static_cast<size_t>(values.size()) * sizeof(T));
  for (auto value : values) {
    const T v = static_cast<T>(value);
    out->append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
}

template <typename T, typename Repeated>
bool InRange(const Repeated& values) {
  for (auto value : values)
    if (value < std::numeric_limits<T>::min() || value > std::numeric_limits<T>::max()) return false;
  return true;
}

// contents -> bytes for `datatype`; an error message names the field.
std::optional<std::string> ContentsBytes(const pb::InferTensorContents& c, DataType type, std::string* data) {
  switch (type) {
    case DataType::kBool:
      for (bool b : c.bool_contents()) data->push_back(b ? 1 : 0);
      return std::nullopt;
    case DataType::kInt8:
      if (!InRange<int8_t>(c.int_contents())) return "int_contents has values outside INT8";
      AppendAs<int8_t>(data, c.int_contents());
      return std::nullopt;
    case DataType::kInt16:
      if (!InRange<int16_t>(c.int_contents())) return "int_contents has values outside INT16";
      AppendAs<int16_t>(data, c.int_contents());
      return std::nullopt;
    case DataType::kInt32: AppendAs<int32_t>(data, c.int_contents()); return std::nullopt;
    case DataType::kInt64: AppendAs<int64_t>(data, c.int64_contents()); return std::nullopt;
    case DataType::kUint8:
      if (!InRange<uint8_t>(c.uint_contents())) return "uint_contents has values outside UINT8";
      AppendAs<uint8_t>(data, c.uint_contents());
      return std::nullopt;
    case DataType::kUint16:
      if (!InRange<uint16_t>(c.uint_contents())) return "uint_contents has values outside UINT16";
      AppendAs<uint16_t>(data, c.uint_contents());
      return std::nullopt;
    case DataType::kUint32: AppendAs<uint32_t>(data, c.uint_contents()); return std::nullopt;
    case DataType::kUint64: AppendAs<uint64_t>(data, c.uint64_contents()); return std::nullopt;
    case DataType::kFp32: AppendAs<float>(data, c.fp32_contents()); return std::nullopt;
    case DataType::kFp64: AppendAs<double>(data, c.fp64_contents()); return std::nullopt;
    case DataType::kFp16: return "FP16 has no typed contents; send it in raw_input_contents";
    case DataType::kBytes:
      for (const std::string& element : c.bytes_contents()) AppendBytesElement(data, element);
      return std::nullopt;
  }
  return "unknown datatype";
}

StatusOr<v2::InferRequest> ToInferRequest(const pb::ModelInferRequest& message) {
  v2::InferRequest request;
  if (!message.id().empty()) request.id = message.id();
  for (const auto& [key, value] : message.parameters()) {
    if (key == "timeout_ms") {
      if (value.parameter_choice_case() != pb::InferParameter::kInt64Param || value.int64_param() < 0)
        return InvalidArgument("parameters.timeout_ms must be a non-negative int64_param");
      request.timeout_ms = value.int64_param();
    }
  }
  const bool raw = message.raw_input_contents_size() > 0;
  if (raw && message.raw_input_contents_size() != message.inputs_size())
    return InvalidArgument("raw_input_contents has " + std::to_string(message.raw_input_contents_size()) +
                           " entries for " + std::to_string(message.inputs_size()) + " inputs");
  if (message.inputs_size() == 0) return InvalidArgument("'inputs' must not be empty");
  for (int i = 0; i < message.inputs_size(); ++i) {
    const auto& input = message.inputs(i);
    const std::string who = "input '" + input.name() + "'";
    Tensor t;
    t.name = input.name();
    auto type = ParseDataType(input.datatype());
    if (!type) return InvalidArgument(who + ": unknown datatype '" + input.datatype() + "'");
    t.datatype = *type;
    for (int64_t d : input.shape()) {
      if (d < 0) return InvalidArgument(who + ": shape dims must be non-negative");
      t.shape.push_back(d);
    }
    if (t.element_count() < 0) return InvalidArgument(who + ": shape " + ShapeToString(t.shape) + " is too large");
    if (raw) {
      if (input.has_contents()) return InvalidArgument(who + ": has contents while the request uses raw_input_contents");
      t.data = message.raw_input_contents(i);
    } else if (auto problem = ContentsBytes(input.contents(), t.datatype, &t.data)) {
      return InvalidArgument(who + ": " + *problem);
    }
    if (Status s = CheckTensorData(t); !s.ok())
      return InvalidArgument(who + ": " + s.message() + " (shape " + ShapeToString(t.shape) + ", " +
                             std::string(DataTypeName(t.datatype)) + ")");
    request.inputs.push_back(std::move(t));
  }
  for (const auto& output : message.outputs()) {
    v2::RequestedOutput requested{.name = output.name()};
    for (const auto& [key, value] : output.parameters()) {
      if (key == "classification") {
        if (value.parameter_choice_case() != pb::InferParameter::kInt64Param || value.int64_param() < 0)
          return InvalidArgument("output '" + output.name() + "': parameters.classification must be a "
                                 "non-negative int64_param");
        requested.classification = value.int64_param();
      }
    }
    request.outputs.push_back(std::move(requested));
  }
  return request;
}

// The response's parameters (TimingParameterList) as typed InferParameters.
void SetParameters(const InvocationTiming& timing, google::protobuf::Map<std::string, pb::InferParameter>* parameters) {
  for (ResponseParameter& p : TimingParameterList(timing)) {
    pb::InferParameter& out = (*parameters)[std::move(p.name)];
    std::visit(
        [&](const auto& v) {
          using V = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<V, ResponseParameter::Millis>) out.set_double_param(static_cast<double>(v.us) / 1000.0);
          else if constexpr (std::is_same_v<V, std::string_view>) out.set_string_param(std::string(v));
          else if constexpr (std::is_same_v<V, bool>) out.set_bool_param(v);
          else out.set_int64_param(v);
        },
        p.value);
  }
}

void FillResponse(const std::string& model, const v2::InferRequest& request, InferOutcome& outcome,
                  pb::ModelInferResponse* response) {
  response->set_model_name(model);
  response->set_model_version("1");
  if (request.id) response->set_id(*request.id);
  SetParameters(outcome.timing, response->mutable_parameters());
  auto add = [&](Tensor& t) {
    auto* out = response->add_outputs();
    out->set_name(t.name);
    out->set_datatype(std::string(DataTypeName(t.datatype)));
    for (int64_t d : t.shape) out->add_shape(d);
    response->add_raw_output_contents(std::move(t.data));
  };
  // The request's outputs in its order, else every output in config order.
  if (request.outputs.empty()) {
    for (Tensor& t : outcome.outputs) add(t);
    return;
  }
  for (const v2::RequestedOutput& r : request.outputs)
    for (Tensor& t : outcome.outputs)
      if (t.name == r.name) {
        add(t);
        break;
      }
}

}  // namespace

// One call of any RPC: answered once, from the io thread.
class AsyncCall {
 public:
  virtual ~AsyncCall() = default;
  virtual void Finish(GrpcCallStatus status) = 0;
};

struct GrpcServer::Impl {
  Impl(boost::asio::io_context& io, V2Handler& handler, GrpcServerOptions options)
      : io(io), handler(handler), options(std::move(options)) {}

  // ---- ModelMesh's model-runtime API (on the io thread; grpc_server.h) ----

  static uint64_t ChargeBytes(const ModelStatus& status) {
    return static_cast<uint64_t>(status.instance_charge_mb + status.template_charge_mb) << 20;
  }

  void MeshLoad(AsyncCall* reactor, const GrpcCall&, const mm::LoadModelRequest* request,
                mm::LoadModelResponse* response) {
    Runtime& runtime = *options.model_runtime;
    const std::string& id = request->modelid();
    if (!IsPathSegment(id))
      return reactor->Finish(GrpcCallStatus(GrpcCode::kInvalidArgument,
                                          "modelId '" + id + "' cannot name a model (empty, or has '/', '?', '#', '%')"));
    if (!runtime.FindModel(id)) {
      auto config = LoadModelConfig(request->modelpath());
      if (!config.ok())
        return reactor->Finish(GrpcCallStatus(GrpcCode::kInvalidArgument,
                                            "modelPath '" + request->modelpath() + "': " + config.status().message()));
      config->name = id;
      if (Status added = runtime.AddModel(*config); !added.ok())
        return reactor->Finish(GrpcCallStatus(GrpcCode::kInvalidArgument, added.message()));
      mesh_models.insert(id);
      LogEvent(LogLevel::kInfo, "modelmesh_load",
               LogFields({{"model", LogValue(id)}, {"path", LogValue(request->modelpath())},
                          {"type", LogValue(request->modeltype())}}));
    }
    if (auto warmed = runtime.Warm(id, 1); !warmed.ok())
      return MeshFail(reactor, id, GrpcCode::kInternal, warmed.status().message());
    const int64_t polls = runtime.FindModel(id)->start_timeout_ms / 2 + 1;
    MeshWaitLoaded(reactor, id, response, polls);
  }

  // Polls every 2 ms until an instance of `id` is up (or its start failed).
  void MeshWaitLoaded(AsyncCall* reactor, const std::string& id, mm::LoadModelResponse* response, int64_t polls) {
    Runtime& runtime = *options.model_runtime;
    auto status = runtime.GetModelStatus(id);
    if (!status.ok())
      return reactor->Finish(GrpcCallStatus(GrpcCode::kAborted, "model '" + id + "' was unloaded while loading"));
    const bool up = std::any_of(status->instances.begin(), status->instances.end(), [](const InstanceStatus& i) {
      return i.state == InstanceState::kIdle || i.state == InstanceState::kBusy;
    });
    if (up) {
      response->set_sizeinbytes(ChargeBytes(*status));
      return reactor->Finish(GrpcCallStatus{});
    }
    if (!status->last_start_error.empty())
      return MeshFail(reactor, id, GrpcCode::kInternal, status->last_start_error);
    if (polls <= 0) return MeshFail(reactor, id, GrpcCode::kDeadlineExceeded, "no instance within start_timeout_ms");
    auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::milliseconds(2));
    timer->async_wait([this, timer, reactor, id, response, polls](const boost::system::error_code&) {
      MeshWaitLoaded(reactor, id, response, polls - 1);
    });
  }

  // A load that failed leaves nothing behind.
  void MeshFail(AsyncCall* reactor, const std::string& id, GrpcCode code, const std::string& why) {
    (void)options.model_runtime->RemoveModel(id);
    mesh_models.erase(id);
    LogEvent(LogLevel::kWarning, "modelmesh_load_failed", LogFields({{"model", LogValue(id)}, {"error", LogValue(why)}}));
    reactor->Finish(GrpcCallStatus(code, "model '" + id + "' failed to load: " + why));
  }

  void MeshUnload(AsyncCall* reactor, const GrpcCall&, const mm::UnloadModelRequest* request,
                  mm::UnloadModelResponse*) {
    const std::string& id = request->modelid();
    if (options.model_runtime->FindModel(id)) {
      if (Status removed = options.model_runtime->RemoveModel(id); !removed.ok())
        return reactor->Finish(GrpcCallStatus(GrpcCode::kInternal, removed.message()));
      LogEvent(LogLevel::kInfo, "modelmesh_unload", LogFields({{"model", LogValue(id)}}));
    }
    mesh_models.erase(id);
    reactor->Finish(GrpcCallStatus{});
  }

  void MeshPredictSize(AsyncCall* reactor, const GrpcCall&, const mm::PredictModelSizeRequest* request,
                       mm::PredictModelSizeResponse* response) {
    // Reads one small file: fast, as ModelMesh asks. memory_mb bounds an instance.
    auto config = LoadModelConfig(request->modelpath());
    response->set_sizeinbytes(static_cast<uint64_t>(config.ok() ? config->memory_mb : thaw::ModelConfig().memory_mb) << 20);
    reactor->Finish(GrpcCallStatus{});
  }

  void MeshSize(AsyncCall* reactor, const GrpcCall&, const mm::ModelSizeRequest* request,
                mm::ModelSizeResponse* response) {
    auto status = options.model_runtime->GetModelStatus(request->modelid());
    if (!status.ok())
      return reactor->Finish(GrpcCallStatus(GrpcCode::kNotFound, "model '" + request->modelid() + "' is not loaded"));
    response->set_sizeinbytes(ChargeBytes(*status));
    reactor->Finish(GrpcCallStatus{});
  }

  void MeshStatus(AsyncCall* reactor, const GrpcCall&, const mm::RuntimeStatusRequest*,
                  mm::RuntimeStatusResponse* response) {
    // A (re)starting mesh knows of no model here: purge what it loaded before.
    for (const std::string& id : mesh_models) (void)options.model_runtime->RemoveModel(id);
    mesh_models.clear();
    response->set_status(mm::RuntimeStatusResponse::READY);
    response->set_capacityinbytes(static_cast<uint64_t>(std::max<int64_t>(options.capacity_mb, 0)) << 20);
    response->set_maxloadingconcurrency(1);
    response->set_modelloadingtimeoutms(static_cast<uint32_t>(thaw::ModelConfig().start_timeout_ms));
    response->set_defaultmodelsizeinbytes(static_cast<uint64_t>(thaw::ModelConfig().memory_mb) << 20);
    response->set_runtimeversion("thaw-0.1.0");
    for (const char* method : {"inference.GRPCInferenceService/ModelInfer", "inference.GRPCInferenceService/ModelMetadata",
                               "inference.GRPCInferenceService/ModelReady"})
      (*response->mutable_methodinfos())[method].add_idinjectionpath(1);
    reactor->Finish(GrpcCallStatus{});
  }

  std::set<std::string> mesh_models;  // loaded through loadModel (io thread)

  // The REST route's request on the handler (on the io thread); `done` gets
  // its response there.
  void Rest(const GrpcCall& call, std::string method, std::string target, std::string body,
            std::function<void(HttpResponse)> done) {
    HttpRequest request{.method = std::move(method), .target = std::move(target), .body = std::move(body)};
    request.authorization = call.authorization;
    if (!request.body.empty()) request.content_type = "application/json";
    handler.Handle(std::move(request), std::move(done));
  }

  // A REST GET whose JSON (wrapped by `wrap`) is the message.
  template <typename Message>
  void JsonCall(AsyncCall* reactor, const GrpcCall& call, std::string method, std::string target,
                std::string body, Message* message, std::string (*wrap)(std::string)) {
    Rest(call, std::move(method), std::move(target), std::move(body), [reactor, message, wrap](HttpResponse r) {
      if (r.status != 200) return reactor->Finish(ErrorStatus(r));
      reactor->Finish(FromJson(wrap ? wrap(std::move(r.body)) : r.body, message));
    });
  }

  void ServerLive(AsyncCall* reactor, const GrpcCall& call, const pb::ServerLiveRequest* request,
                  pb::ServerLiveResponse* response) {
    Rest(call, "GET", "/v2/health/live", "", [reactor, response](HttpResponse r) {
      response->set_live(r.status == 200);
      reactor->Finish(GrpcCallStatus{});
    });
  }

  void ServerReady(AsyncCall* reactor, const GrpcCall& call, const pb::ServerReadyRequest* request,
                   pb::ServerReadyResponse* response) {
    Rest(call, "GET", "/v2/health/ready", "", [reactor, response](HttpResponse r) {
      if (r.status != 200 && r.status != 400) return reactor->Finish(ErrorStatus(r));
      response->set_ready(r.status == 200);
      reactor->Finish(GrpcCallStatus{});
    });
  }

  void ModelReady(AsyncCall* reactor, const GrpcCall& call, const pb::ModelReadyRequest* request,
                  pb::ModelReadyResponse* response) {
    if (!IsPathSegment(request->name())) {
      response->set_ready(false);
      return reactor->Finish(GrpcCallStatus{});
    }
    Rest(call, "GET", ModelPath(request->name(), request->version()) + "/ready", "",
         [reactor, response](HttpResponse r) {
           // Not ready and unknown are both "false", as Triton answers.
           if (r.status != 200 && r.status != 400 && r.status != 404) return reactor->Finish(ErrorStatus(r));
           response->set_ready(r.status == 200);
           reactor->Finish(GrpcCallStatus{});
         });
  }

  void ServerMetadata(AsyncCall* reactor, const GrpcCall& call, const pb::ServerMetadataRequest* request,
                      pb::ServerMetadataResponse* response) {
    return JsonCall(reactor, call, "GET", "/v2", "", response, nullptr);
  }

  void ModelMetadata(AsyncCall* reactor, const GrpcCall& call, const pb::ModelMetadataRequest* request,
                     pb::ModelMetadataResponse* response) {
    if (!IsPathSegment(request->name()))
      return reactor->Finish(GrpcCallStatus(GrpcCode::kNotFound, "no model '" + request->name() + "'"));
    return JsonCall(reactor, call, "GET", ModelPath(request->name(), request->version()), "", response, nullptr);
  }

  void ModelConfig(AsyncCall* reactor, const GrpcCall& call, const pb::ModelConfigRequest* request,
                   pb::ModelConfigResponse* response) {
    if (!IsPathSegment(request->name()))
      return reactor->Finish(GrpcCallStatus(GrpcCode::kNotFound, "no model '" + request->name() + "'"));
    return JsonCall(reactor, call, "GET", ModelPath(request->name(), request->version()) + "/config", "", response,
                    [](std::string json) { return "{\"config\":" + json + "}"; });
  }

  void ModelStatistics(AsyncCall* reactor, const GrpcCall& call, const pb::ModelStatisticsRequest* request,
                       pb::ModelStatisticsResponse* response) {
    if (request->name().empty()) return JsonCall(reactor, call, "GET", "/v2/models/stats", "", response, nullptr);
    if (!IsPathSegment(request->name()))
      return reactor->Finish(GrpcCallStatus(GrpcCode::kNotFound, "no model '" + request->name() + "'"));
    return JsonCall(reactor, call, "GET", ModelPath(request->name(), request->version()) + "/stats", "", response, nullptr);
  }

  void RepositoryIndex(AsyncCall* reactor, const GrpcCall& call, const pb::RepositoryIndexRequest* request,
                       pb::RepositoryIndexResponse* response) {
    return JsonCall(reactor, call, "POST", "/v2/repository/index", request->ready() ? R"({"ready":true})" : "{}", response,
                    [](std::string json) { return "{\"models\":" + json + "}"; });
  }

  // Load and unload: the REST body from the parameters map.
  static std::string RepositoryBody(const google::protobuf::Map<std::string, pb::ModelRepositoryParameter>& parameters) {
    std::string json;
    JsonWriter w(&json);
    w.BeginObject().Key("parameters").BeginObject();
    for (const auto& [key, value] : parameters) {
      w.Key(key);
      switch (value.parameter_choice_case()) {
        case pb::ModelRepositoryParameter::kBoolParam: w.Bool(value.bool_param()); break;
        case pb::ModelRepositoryParameter::kInt64Param: w.Int(value.int64_param()); break;
        case pb::ModelRepositoryParameter::kStringParam: w.String(value.string_param()); break;
        default: w.Null(); break;  // bytes (file:<path>): refused by the load route, which names the key
      }
    }
    w.EndObject().EndObject();
    return json;
  }

  void RepositoryModelLoad(AsyncCall* reactor, const GrpcCall& call, const pb::RepositoryModelLoadRequest* request,
                           pb::RepositoryModelLoadResponse* response) {
    if (!IsPathSegment(request->model_name()))
      return reactor->Finish(GrpcCallStatus(GrpcCode::kInvalidArgument,
                                            "'" + request->model_name() + "' is not a model name"));
    Rest(call, "POST", "/v2/repository/models/" + request->model_name() + "/load",
         RepositoryBody(request->parameters()), [reactor](HttpResponse r) {
           reactor->Finish(r.status == 200 ? GrpcCallStatus{} : ErrorStatus(r));
         });
  }

  void RepositoryModelUnload(AsyncCall* reactor, const GrpcCall& call,
                             const pb::RepositoryModelUnloadRequest* request,
                             pb::RepositoryModelUnloadResponse* response) {
    if (!IsPathSegment(request->model_name()))
      return reactor->Finish(GrpcCallStatus(GrpcCode::kInvalidArgument,
                                            "'" + request->model_name() + "' is not a model name"));
    Rest(call, "POST", "/v2/repository/models/" + request->model_name() + "/unload", "",
         [reactor](HttpResponse r) { reactor->Finish(r.status == 200 ? GrpcCallStatus{} : ErrorStatus(r)); });
  }

  void ModelInfer(AsyncCall* reactor, const GrpcCall& call, const pb::ModelInferRequest* request,
                  pb::ModelInferResponse* response) {
    if (!request->model_version().empty() && request->model_version() != "1")
      return reactor->Finish(GrpcCallStatus(GrpcCode::kNotFound,
                                          "model '" + request->model_name() + "' has no version '" +
                                              request->model_version() + "'; the only version is 1"));
    // Its decoding errors are answered after the token and model checks, as over REST.
    handler.InferTensors(request->model_name(), ToInferRequest(*request), call.authorization,
                         [reactor, request, response](V2Handler::TensorsResult result) {
                           if (result.http_status != 200)
                             return reactor->Finish(GrpcStatus(result.http_status, result.outcome.status.message()));
                           FillResponse(request->model_name(), *result.request, result.outcome, response);
                           reactor->Finish(GrpcCallStatus{});
                         });
  }

  // A unary RPC's call: its request parsed from the message, served by
  // `serve` (one of the handlers above), its response sent on Finish. Both
  // messages live on an arena that starts inside the call: one allocation
  // for most calls instead of one per string, map entry and sub-message.
  template <typename Request, typename Response>
  class UnaryCall final : public AsyncCall {
   public:
    using Serve = void (Impl::*)(AsyncCall*, const GrpcCall&, const Request*, Response*);

    static void Start(Impl& impl, Serve serve, GrpcCall call, GrpcResponder responder) {
      auto* self = new UnaryCall(std::move(call), std::move(responder));
      if (!self->request_->ParseFromString(self->call_.message))
        return self->Finish(GrpcCallStatus{GrpcCode::kInvalidArgument,
                                           "the request is not a valid " + self->request_->GetTypeName() + " message"});
      std::string().swap(self->call_.message);
      (impl.*serve)(self, self->call_, self->request_, self->response_);
    }

    void Finish(GrpcCallStatus status) override {
      responder_.Finish(status, response_);
      delete this;
    }

   private:
    UnaryCall(GrpcCall call, GrpcResponder responder)
        : call_(std::move(call)),
          responder_(std::move(responder)),
          arena_(ArenaOptions(first_block_, sizeof(first_block_))),
          request_(google::protobuf::Arena::CreateMessage<Request>(&arena_)),
          response_(google::protobuf::Arena::CreateMessage<Response>(&arena_)) {}

    static google::protobuf::ArenaOptions ArenaOptions(char* block, size_t size) {
      google::protobuf::ArenaOptions options;
      options.initial_block = block;
      options.initial_block_size = size;
      return options;
    }

    GrpcCall call_;
    GrpcResponder responder_;
    alignas(8) char first_block_[4096];
    google::protobuf::Arena arena_;
    Request* request_;    // on arena_
    Response* response_;  // on arena_
  };

  template <typename Request, typename Response>
  void Route(const char* method, typename UnaryCall<Request, Response>::Serve serve) {
    routes[method] = [this, serve](GrpcCall call, GrpcResponder responder) {
      UnaryCall<Request, Response>::Start(*this, serve, std::move(call), std::move(responder));
    };
  }

  void RouteAll() {
    constexpr const char* kInference = "/inference.GRPCInferenceService/";
    auto name = [&](const char* method) { return std::string(kInference) + method; };
    Route<pb::ModelInferRequest, pb::ModelInferResponse>(name("ModelInfer").c_str(), &Impl::ModelInfer);
    Route<pb::ServerLiveRequest, pb::ServerLiveResponse>(name("ServerLive").c_str(), &Impl::ServerLive);
    Route<pb::ServerReadyRequest, pb::ServerReadyResponse>(name("ServerReady").c_str(), &Impl::ServerReady);
    Route<pb::ModelReadyRequest, pb::ModelReadyResponse>(name("ModelReady").c_str(), &Impl::ModelReady);
    Route<pb::ServerMetadataRequest, pb::ServerMetadataResponse>(name("ServerMetadata").c_str(), &Impl::ServerMetadata);
    Route<pb::ModelMetadataRequest, pb::ModelMetadataResponse>(name("ModelMetadata").c_str(), &Impl::ModelMetadata);
    Route<pb::ModelConfigRequest, pb::ModelConfigResponse>(name("ModelConfig").c_str(), &Impl::ModelConfig);
    Route<pb::ModelStatisticsRequest, pb::ModelStatisticsResponse>(name("ModelStatistics").c_str(),
                                                                   &Impl::ModelStatistics);
    Route<pb::RepositoryIndexRequest, pb::RepositoryIndexResponse>(name("RepositoryIndex").c_str(),
                                                                   &Impl::RepositoryIndex);
    Route<pb::RepositoryModelLoadRequest, pb::RepositoryModelLoadResponse>(name("RepositoryModelLoad").c_str(),
                                                                           &Impl::RepositoryModelLoad);
    Route<pb::RepositoryModelUnloadRequest, pb::RepositoryModelUnloadResponse>(name("RepositoryModelUnload").c_str(),
                                                                               &Impl::RepositoryModelUnload);
    if (!options.model_runtime) return;
    Route<mm::LoadModelRequest, mm::LoadModelResponse>("/mmesh.ModelRuntime/loadModel", &Impl::MeshLoad);
    Route<mm::UnloadModelRequest, mm::UnloadModelResponse>("/mmesh.ModelRuntime/unloadModel", &Impl::MeshUnload);
    Route<mm::PredictModelSizeRequest, mm::PredictModelSizeResponse>("/mmesh.ModelRuntime/predictModelSize",
                                                                     &Impl::MeshPredictSize);
    Route<mm::ModelSizeRequest, mm::ModelSizeResponse>("/mmesh.ModelRuntime/modelSize", &Impl::MeshSize);
    Route<mm::RuntimeStatusRequest, mm::RuntimeStatusResponse>("/mmesh.ModelRuntime/runtimeStatus", &Impl::MeshStatus);
  }

  void Dispatch(GrpcCall call, GrpcResponder responder) {
    auto route = routes.find(call.method);
    if (route == routes.end())
      return responder.Finish({GrpcCode::kUnimplemented, "no method '" + call.method + "' on this server"}, nullptr);
    route->second(std::move(call), std::move(responder));
  }

  boost::asio::io_context& io;
  V2Handler& handler;
  GrpcServerOptions options;
  std::unordered_map<std::string, std::function<void(GrpcCall, GrpcResponder)>> routes;
  std::optional<GrpcTransport> transport;
};

GrpcServer::GrpcServer(boost::asio::io_context& io, V2Handler& handler, GrpcServerOptions options)
    : impl_(std::make_unique<Impl>(io, handler, std::move(options))) {}

GrpcServer::~GrpcServer() = default;

Status GrpcServer::Start() {
  impl_->RouteAll();
  impl_->transport.emplace(impl_->io,
                           GrpcTransportOptions{.host = impl_->options.host,
                                                .port = impl_->options.port,
                                                .max_message_bytes = impl_->options.max_message_bytes},
                           [impl = impl_.get()](GrpcCall call, GrpcResponder responder) {
                             impl->Dispatch(std::move(call), std::move(responder));
                           });
  if (Status started = impl_->transport->Start(); !started.ok()) {
    impl_->transport.reset();
    return Unavailable("gRPC: " + started.message());
  }
  return Status::Ok();
}

uint16_t GrpcServer::port() const { return impl_->transport ? impl_->transport->port() : 0; }

void GrpcServer::Shutdown() {
  if (impl_->transport) impl_->transport->Shutdown();
}

}  // namespace thaw
