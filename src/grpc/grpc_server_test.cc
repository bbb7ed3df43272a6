// GrpcServer with a C++ client generated from the project's .proto: every
// RPC answers what the REST route answers, tensors go both ways raw and as
// typed contents, errors carry the gRPC code of the REST status, tokens are
// checked. Real worker processes and the fraud example model.
#include "grpc/grpc_server.h"

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <pthread.h>
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <future>
#include <thread>

#include "base/test_paths.h"
#ifdef THAW_WITH_GRPC_LOAD
#include "grpc/grpc_load.h"
#endif
#include "grpc_service.grpc.pb.h"
#include "model_runtime.grpc.pb.h"
#include "server/inference_statistics.h"

namespace thaw {
namespace {

namespace asio = boost::asio;
namespace pb = ::inference;

constexpr char kInferToken[] = "infer-token-0123456789";
constexpr char kAdminToken[] = "admin-token-0123456789";

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string fraud = TestSourceDir() + "/examples/models/fraud";
    if (!std::filesystem::exists(fraud + "/model.pt")) GTEST_SKIP() << "example model 'fraud' is missing";
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &child, nullptr);
    // Statistics fed as `thaw serve` feeds them: usage records and executions.
    runtime_ = std::make_unique<Runtime>(
        io_, clock_,
        RuntimeOptions{.worker_path = TestBuildDir() + "/thaw-worker",
                       .on_execution = [this](const ExecutionRecord& e) { statistics_.OnExecution(e); },
                       .usage = &statistics_});
    auto config = LoadModelConfig(fraud);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    ASSERT_TRUE(LoadOutputLabels(&config.value(), "fraud").ok());
    ASSERT_TRUE(runtime_->AddModel(config.value()).ok());
    Observability observability{.inference_statistics = &statistics_};
    handler_ = std::make_unique<V2Handler>(*runtime_, clock_, TestSourceDir() + "/examples/models", observability);
    access_ = std::make_unique<AccessPolicy>(AccessOptions{
        .tokens = {{kInferToken, Scope::kInfer}, {kAdminToken, Scope::kAdmin}}});
    server_ = std::make_unique<GrpcServer>(io_, *handler_, GrpcServerOptions{.port = 0});
    ASSERT_TRUE(server_->Start().ok());
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
    stub_ = pb::GRPCInferenceService::NewStub(
        grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    server_->Shutdown();
    asio::post(io_, [this] {
      runtime_->Shutdown();
      work_.reset();
      io_.stop();
    });
    thread_.join();
  }

  void RequireTokens() {
    std::promise<void> done;
    asio::post(io_, [&] {
      handler_->SetAccess(access_.get(), RouteSet::kAll);
      done.set_value();
    });
    done.get_future().get();
  }

  static std::unique_ptr<grpc::ClientContext> Context(const char* token = nullptr) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    if (token) context->AddMetadata("authorization", std::string("Bearer ") + token);
    return context;
  }

  static pb::ModelInferRequest FraudRequest(bool raw, int rows = 2) {
    pb::ModelInferRequest request;
    request.set_model_name("fraud");
    request.set_id("req-1");
    auto* input = request.add_inputs();
    input->set_name("features");
    input->set_datatype("FP32");
    input->add_shape(rows);
    input->add_shape(30);
    std::vector<float> values(static_cast<size_t>(rows) * 30);
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 7) * 0.25f;
    if (raw) {
      request.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values.data()), values.size() * 4));
    } else {
      for (float v : values) input->mutable_contents()->add_fp32_contents(v);
    }
    return request;
  }

  asio::io_context io_;
  RealClock clock_;
  InferenceStatistics statistics_;
  std::unique_ptr<Runtime> runtime_;
  std::unique_ptr<V2Handler> handler_;
  std::unique_ptr<AccessPolicy> access_;
  std::unique_ptr<GrpcServer> server_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::unique_ptr<pb::GRPCInferenceService::Stub> stub_;
};

TEST_F(GrpcServerTest, HealthMetadataConfigAndIndex) {
  pb::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(Context().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  pb::ServerReadyResponse ready;
  for (int i = 0; i < 600 && !ready.ready(); ++i) {
    ASSERT_TRUE(stub_->ServerReady(Context().get(), {}, &ready).ok());
    if (!ready.ready()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(ready.ready());
  pb::ModelReadyRequest model_ready;
  model_ready.set_name("fraud");
  pb::ModelReadyResponse model_ready_response;
  ASSERT_TRUE(stub_->ModelReady(Context().get(), model_ready, &model_ready_response).ok());
  EXPECT_TRUE(model_ready_response.ready());
  model_ready.set_name("nosuchmodel");
  ASSERT_TRUE(stub_->ModelReady(Context().get(), model_ready, &model_ready_response).ok());
  EXPECT_FALSE(model_ready_response.ready());  // unknown is "not ready", as Triton answers

  pb::ServerMetadataResponse server_metadata;
  ASSERT_TRUE(stub_->ServerMetadata(Context().get(), {}, &server_metadata).ok());
  EXPECT_EQ(server_metadata.name(), "thaw");
  EXPECT_NE(std::find(server_metadata.extensions().begin(), server_metadata.extensions().end(), "statistics"),
            server_metadata.extensions().end());

  pb::ModelMetadataRequest metadata_request;
  metadata_request.set_name("fraud");
  pb::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(Context().get(), metadata_request, &metadata).ok());
  EXPECT_EQ(metadata.name(), "fraud");
  ASSERT_EQ(metadata.inputs_size(), 1);
  EXPECT_EQ(metadata.inputs(0).name(), "features");
  EXPECT_EQ(metadata.inputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(metadata.inputs(0).shape().begin(), metadata.inputs(0).shape().end()),
            (std::vector<int64_t>{-1, 30}));
  metadata_request.set_name("nosuchmodel");
  grpc::Status missing = stub_->ModelMetadata(Context().get(), metadata_request, &metadata);
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(missing.error_message().find("nosuchmodel"), std::string::npos) << missing.error_message();

  pb::ModelConfigRequest config_request;
  config_request.set_name("fraud");
  pb::ModelConfigResponse config;
  ASSERT_TRUE(stub_->ModelConfig(Context().get(), config_request, &config).ok());
  EXPECT_EQ(config.config().name(), "fraud");
  EXPECT_EQ(config.config().backend(), "pytorch");
  EXPECT_EQ(config.config().max_batch_size(), 0);
  ASSERT_EQ(config.config().input_size(), 1);
  EXPECT_EQ(config.config().input(0).data_type(), pb::TYPE_FP32);
  EXPECT_EQ(config.config().output(0).label_filename(), "labels.txt");
  ASSERT_EQ(config.config().instance_group_size(), 1);
  EXPECT_EQ(config.config().instance_group(0).kind(), pb::ModelInstanceGroup::KIND_CPU);

  pb::RepositoryIndexRequest index_request;
  index_request.set_ready(true);
  pb::RepositoryIndexResponse index;
  ASSERT_TRUE(stub_->RepositoryIndex(Context().get(), index_request, &index).ok());
  bool fraud_ready = false;
  for (const auto& model : index.models()) {
    EXPECT_EQ(model.state(), "READY") << model.name();
    fraud_ready = fraud_ready || model.name() == "fraud";
  }
  EXPECT_TRUE(fraud_ready);
}

TEST_F(GrpcServerTest, InferRawAndTypedGiveTheSameOutputsAndStatisticsCountThem) {
  pb::ModelInferResponse raw, typed;
  grpc::Status status;
  for (int attempt = 0; attempt < 5; ++attempt) {  // the first call is a cold start
    status = stub_->ModelInfer(Context().get(), FraudRequest(true), &raw);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(stub_->ModelInfer(Context().get(), FraudRequest(false), &typed).ok());
  EXPECT_EQ(raw.model_name(), "fraud");
  EXPECT_EQ(raw.model_version(), "1");
  EXPECT_EQ(raw.id(), "req-1");
  ASSERT_EQ(raw.outputs_size(), 1);
  EXPECT_EQ(raw.outputs(0).name(), "probabilities");
  EXPECT_EQ(raw.outputs(0).datatype(), "FP32");
  EXPECT_EQ(std::vector<int64_t>(raw.outputs(0).shape().begin(), raw.outputs(0).shape().end()),
            (std::vector<int64_t>{2, 2}));
  ASSERT_EQ(raw.raw_output_contents_size(), 1);
  EXPECT_EQ(raw.raw_output_contents(0).size(), 16u);
  EXPECT_EQ(raw.raw_output_contents(0), typed.raw_output_contents(0));
  float p[4];
  std::memcpy(p, raw.raw_output_contents(0).data(), sizeof p);
  EXPECT_NEAR(p[0] + p[1], 1.0, 1e-5);  // softmax rows
  // Flat scalar parameters, typed.
  ASSERT_TRUE(raw.parameters().contains("total_ms"));
  EXPECT_EQ(raw.parameters().at("total_ms").parameter_choice_case(), pb::InferParameter::kDoubleParam);
  EXPECT_EQ(raw.parameters().at("cold_start").parameter_choice_case(), pb::InferParameter::kBoolParam);
  EXPECT_EQ(raw.parameters().at("batch_size").int64_param(), 2);

  // Classification over gRPC: BYTES "score:index:label".
  pb::ModelInferRequest classify = FraudRequest(true);
  auto* output = classify.add_outputs();
  output->set_name("probabilities");
  (*output->mutable_parameters())["classification"].set_int64_param(1);
  pb::ModelInferResponse classified;
  ASSERT_TRUE(stub_->ModelInfer(Context().get(), classify, &classified).ok());
  EXPECT_EQ(classified.outputs(0).datatype(), "BYTES");
  const std::string& first = classified.raw_output_contents(0);
  ASSERT_GT(first.size(), 4u);
  uint32_t length;
  std::memcpy(&length, first.data(), 4);
  const std::string entry = first.substr(4, length);
  EXPECT_TRUE(entry.ends_with(":benign") || entry.ends_with(":malignant")) << entry;

  pb::ModelStatisticsRequest stats_request;
  stats_request.set_name("fraud");
  pb::ModelStatisticsResponse stats;
  ASSERT_TRUE(stub_->ModelStatistics(Context().get(), stats_request, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  EXPECT_GE(stats.model_stats(0).inference_stats().success().count(), 3u);
  EXPECT_GE(stats.model_stats(0).inference_count(), 6u);
  EXPECT_GT(stats.model_stats(0).inference_stats().compute_infer().ns(), 0u);
}

TEST_F(GrpcServerTest, BadRequestsGetTheRestErrorsAsGrpcCodes) {
  pb::ModelInferResponse response;
  pb::ModelInferRequest unknown = FraudRequest(true);
  unknown.set_model_name("nosuchmodel");
  grpc::Status status = stub_->ModelInfer(Context().get(), unknown, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("nosuchmodel"), std::string::npos);

  pb::ModelInferRequest wrong_shape = FraudRequest(false);
  wrong_shape.mutable_inputs(0)->set_shape(1, 29);
  status = stub_->ModelInfer(Context().get(), wrong_shape, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("features"), std::string::npos) << status.error_message();

  pb::ModelInferRequest short_raw = FraudRequest(true);
  short_raw.mutable_raw_input_contents(0)->resize(100);
  status = stub_->ModelInfer(Context().get(), short_raw, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  pb::ModelInferRequest fp16 = FraudRequest(false);
  fp16.mutable_inputs(0)->set_datatype("FP16");
  status = stub_->ModelInfer(Context().get(), fp16, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("raw_input_contents"), std::string::npos) << status.error_message();

  pb::ModelInferRequest version = FraudRequest(true);
  version.set_model_version("7");
  EXPECT_EQ(stub_->ModelInfer(Context().get(), version, &response).error_code(), grpc::StatusCode::NOT_FOUND);
}

// The HTTP/2 transport's own answers: compressed messages are inflated, a
// method it does not serve is UNIMPLEMENTED, a message over the limit
// (on the wire or once inflated) RESOURCE_EXHAUSTED.
TEST_F(GrpcServerTest, CompressedMessagesLimitsAndUnknownMethods) {
  pb::ModelInferResponse plain;
  ASSERT_TRUE(stub_->ModelInfer(Context().get(), FraudRequest(true), &plain).ok());
  for (grpc_compression_algorithm algorithm : {GRPC_COMPRESS_GZIP, GRPC_COMPRESS_DEFLATE}) {
    auto context = Context();
    context->set_compression_algorithm(algorithm);
    pb::ModelInferResponse compressed;
    grpc::Status status = stub_->ModelInfer(context.get(), FraudRequest(true), &compressed);
    ASSERT_TRUE(status.ok()) << algorithm << ": " << status.error_message();
    EXPECT_EQ(compressed.raw_output_contents(0), plain.raw_output_contents(0)) << algorithm;
  }

  // ModelMesh's service is not on a server started without it.
  auto mesh = mmesh::ModelRuntime::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()), grpc::InsecureChannelCredentials()));
  mmesh::RuntimeStatusResponse runtime_status;
  EXPECT_EQ(mesh->runtimeStatus(Context().get(), {}, &runtime_status).error_code(), grpc::StatusCode::UNIMPLEMENTED);

  // A second server with a 2 KiB message limit, on the same loop.
  GrpcServer small(io_, *handler_, GrpcServerOptions{.port = 0, .max_message_bytes = 2048});
  std::promise<Status> started;
  asio::post(io_, [&] { started.set_value(small.Start()); });
  ASSERT_TRUE(started.get_future().get().ok());
  auto small_stub = pb::GRPCInferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(small.port()), grpc::InsecureChannelCredentials()));
  pb::ModelInferResponse response;
  EXPECT_TRUE(small_stub->ModelInfer(Context().get(), FraudRequest(true, 2), &response).ok());  // 240 bytes of tensor
  grpc::Status status = small_stub->ModelInfer(Context().get(), FraudRequest(true, 40), &response);  // 4,800
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("2048"), std::string::npos) << status.error_message();
  // Compressed under the limit, inflated over it.
  pb::ModelInferRequest zeros = FraudRequest(true, 40);
  zeros.mutable_raw_input_contents(0)->assign(40 * 30 * 4, '\0');
  auto context = Context();
  context->set_compression_algorithm(GRPC_COMPRESS_GZIP);
  status = small_stub->ModelInfer(context.get(), zeros, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
  EXPECT_NE(status.error_message().find("inflates to more than 2048"), std::string::npos) << status.error_message();
  small.Shutdown();
}

TEST_F(GrpcServerTest, TokensAreTheRestRoutesTokens) {
  RequireTokens();
  pb::ModelInferResponse response;
  grpc::Status status = stub_->ModelInfer(Context().get(), FraudRequest(true), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_NE(status.error_message().find("token"), std::string::npos) << status.error_message();
  for (int attempt = 0; attempt < 5; ++attempt) {
    status = stub_->ModelInfer(Context(kInferToken).get(), FraudRequest(true), &response);
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  EXPECT_TRUE(status.ok()) << status.error_message();
  // Repository RPCs are admin routes; health is open.
  pb::RepositoryModelUnloadRequest unload;
  unload.set_model_name("fraud");
  pb::RepositoryModelUnloadResponse unloaded;
  status = stub_->RepositoryModelUnload(Context(kInferToken).get(), unload, &unloaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << status.error_message();
  pb::ServerLiveResponse live;
  EXPECT_TRUE(stub_->ServerLive(Context().get(), {}, &live).ok());
  // Admin may unload, then load it again from the repository.
  ASSERT_TRUE(stub_->RepositoryModelUnload(Context(kAdminToken).get(), unload, &unloaded).ok());
  pb::ModelReadyRequest ready_request;
  ready_request.set_name("fraud");
  pb::ModelReadyResponse ready;
  ASSERT_TRUE(stub_->ModelReady(Context(kInferToken).get(), ready_request, &ready).ok());
  EXPECT_FALSE(ready.ready());
  pb::RepositoryModelLoadRequest load;
  load.set_model_name("fraud");
  (*load.mutable_parameters())["file:1/model.pt"].set_bytes_param("x");
  pb::RepositoryModelLoadResponse loaded;
  status = stub_->RepositoryModelLoad(Context(kAdminToken).get(), load, &loaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("file:1/model.pt"), std::string::npos) << status.error_message();
  load.clear_parameters();
  status = stub_->RepositoryModelLoad(Context(kAdminToken).get(), load, &loaded);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

#ifdef THAW_WITH_GRPC_LOAD
// thaw load --protocol grpc's generator against the server: the JSON request file
// becomes raw_input_contents, every scheduled call is answered, response
// parameters are read, and the in-flight cap turns excess into client
// overload rather than queueing it.
TEST_F(GrpcServerTest, LoadGeneratorRunsTheScheduleOverGrpc) {
  std::ifstream file(TestSourceDir() + "/examples/requests/fraud.json");
  const std::string json((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(json.empty());
  const std::string url = "http://127.0.0.1:" + std::to_string(server_->port());
  std::vector<Micros> offsets;
  for (int i = 0; i < 20; ++i) offsets.push_back(i * 5000);
  GrpcLoadGenerator generator(clock_, {.url = url, .model = "fraud", .request_json = json, .warmup_us = 10000});
  auto result = generator.Run(offsets);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  EXPECT_EQ(result->warmup_requests, 2);
  ASSERT_EQ(result->requests.size(), 18u);
  for (const load::RequestRecord& r : result->requests) {
    EXPECT_EQ(r.outcome, load::Outcome::kResponse);
    EXPECT_EQ(r.status, 200);
    EXPECT_GE(r.batch_size, 2);  // the request's two rows
    EXPECT_GE(r.compute_ms, 0);
    EXPECT_GE(r.latency_us, 0);
  }
  bool saw_compute = false;
  for (const load::ParameterMean& p : result->parameters) saw_compute = saw_compute || p.name == "compute_ms";
  EXPECT_TRUE(saw_compute);

  // All due at once with one call allowed: one is sent, the rest are the
  // client's overload, never queued.
  GrpcLoadGenerator one(clock_, {.url = url, .model = "fraud", .request_json = json, .max_in_flight = 1});
  auto burst = one.Run(std::vector<Micros>(6, 0));
  ASSERT_TRUE(burst.ok()) << burst.status().ToString();
  ASSERT_EQ(burst->requests.size(), 6u);
  EXPECT_EQ(burst->requests[0].status, 200);
  for (size_t i = 1; i < 6; ++i) EXPECT_EQ(burst->requests[i].outcome, load::Outcome::kClientOverload);

  // Server errors arrive as the REST status of their gRPC code.
  GrpcLoadGenerator missing(clock_, {.url = url, .model = "nosuch", .request_json = json});
  auto not_found = missing.Run({0});
  ASSERT_TRUE(not_found.ok());
  EXPECT_EQ(not_found->requests.at(0).status, 404);

  GrpcLoadGenerator bad(clock_, {.url = url, .model = "fraud", .request_json = "{\"inputs\": 3}"});
  EXPECT_EQ(bad.Run({0}).status().code(), StatusCode::kInvalidArgument);
}

TEST(GrpcLoadGenerator, AnUnreachableServerIsUnavailable) {
  RealClock clock;
  GrpcLoadGenerator generator(clock, {.url = "http://127.0.0.1:1", .model = "fraud",
                                      .request_json = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
                                      .connect_timeout_s = 0.3});
  EXPECT_EQ(generator.Run({0}).status().code(), StatusCode::kUnavailable);
}

#endif  // THAW_WITH_GRPC_LOAD

}  // namespace
}  // namespace thaw
