// V2Handler with decoding and encoding off the event loop: the same
// responses as inline, for every example model's request, JSON and binary.
// Real worker processes and models; the handler is called on the io thread.
#include "server/v2_handler.h"

#include <gtest/gtest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "base/test_paths.h"

namespace thaw {
namespace {

namespace asio = boost::asio;

std::string ReadFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// The same tensors as `json_body`, as a binary-tensor body asking for
// binary outputs. Returns the body and its JSON header's length.
std::pair<std::string, size_t> BinaryBody(const std::string& json_body) {
  auto parsed = v2::ParseInferRequest(json_body, std::nullopt);
  EXPECT_TRUE(parsed.ok()) << parsed.status().ToString();
  std::string header = "{\"inputs\":[";
  std::string data;
  for (size_t i = 0; i < parsed->inputs.size(); ++i) {
    const Tensor& t = parsed->inputs[i];
    if (i) header += ',';
    header += "{\"name\":\"" + t.name + "\",\"shape\":[";
    for (size_t d = 0; d < t.shape.size(); ++d) header += (d ? "," : "") + std::to_string(t.shape[d]);
    header += "],\"datatype\":\"" + std::string(DataTypeName(t.datatype)) +
              "\",\"parameters\":{\"binary_data_size\":" + std::to_string(t.data.size()) + "}}";
    data += t.data;
  }
  header += "],\"parameters\":{\"binary_data_output\":true}}";
  return {header + data, header.size()};
}

// The part of a response after its timing parameters: ids and outputs.
std::string Outputs(const std::string& body) {
  const size_t at = body.find(",\"outputs\":[");
  return at == std::string::npos ? "no outputs in: " + body.substr(0, 300) : body.substr(at);
}

class V2HandlerOffloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runtime_ = std::make_unique<Runtime>(io_, clock_, RuntimeOptions{TestBuildDir() + "/thaw-worker"});
    for (const char* name : {"fraud", "fashion", "textenc", "large"}) {
      const std::string dir = TestSourceDir() + "/examples/models/" + name;
      if (!std::filesystem::exists(dir + "/model.pt") ||
          !std::filesystem::exists(TestSourceDir() + "/examples/requests/" + name + ".json"))
        continue;
      auto config = LoadModelConfig(dir);
      ASSERT_TRUE(config.ok()) << config.status().ToString();
      ASSERT_TRUE(runtime_->AddModel(config.value()).ok());
      models_.push_back(name);
    }
    if (models_.empty()) GTEST_SKIP() << "no example model; run models/build_models.py";
    inline_ = std::make_unique<V2Handler>(*runtime_, clock_, "", Observability{}, V2HandlerOptions{});
    // Everything off the loop: the threshold is 0.
    offload_ = std::make_unique<V2Handler>(*runtime_, clock_, "", Observability{},
                                           V2HandlerOptions{.io = &io_, .offload_threads = 2, .offload_min_bytes = 0});
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
    sigset_t child;
    sigemptyset(&child);
    sigaddset(&child, SIGCHLD);
    pthread_sigmask(SIG_BLOCK, &child, nullptr);
  }

  void TearDown() override {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] {
      runtime_->Shutdown();
      work_.reset();
      io_.stop();
    });
    thread_.join();
    offload_.reset();
  }

  HttpResponse Call(V2Handler& handler, HttpRequest request) {
    std::promise<HttpResponse> promise;
    asio::post(io_, [&] { handler.Handle(std::move(request), [&](HttpResponse r) { promise.set_value(std::move(r)); }); });
    return promise.get_future().get();
  }

  // Cold starts of four models on a busy machine may pass a request's
  // deadline; the first request of each model is retried until served.
  HttpResponse CallUntilServed(V2Handler& handler, const HttpRequest& request) {
    HttpResponse response;
    for (int attempt = 0; attempt < 6; ++attempt) {
      response = Call(handler, request);
      if (response.status != 504 && response.status != 503) break;
    }
    return response;
  }

  asio::io_context io_;
  RealClock clock_;
  std::unique_ptr<Runtime> runtime_;
  std::vector<std::string> models_;
  std::unique_ptr<V2Handler> inline_;
  std::unique_ptr<V2Handler> offload_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
};

TEST_F(V2HandlerOffloadTest, ReadyOnlyOnceEveryModelCanServeAndTheBodyListsTheOthers) {
  // Just deployed: artifacts are being made (one at a time) and the zygote starts.
  HttpResponse ready = Call(*inline_, {.method = "GET", .target = "/v2/health/ready"});
  ASSERT_EQ(ready.status, 400) << ready.body;
  const std::string last = models_.back();  // prepared last
  EXPECT_NE(ready.body.find("\"models\":["), std::string::npos) << ready.body;
  EXPECT_NE(ready.body.find("{\"name\":\"" + last + "\",\"reason\":"), std::string::npos) << ready.body;
  HttpResponse model_ready = Call(*inline_, {.method = "GET", .target = "/v2/models/" + last + "/ready"});
  EXPECT_EQ(model_ready.status, 400) << model_ready.body;
  for (int i = 0; i < 1200 && ready.status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ready = Call(*inline_, {.method = "GET", .target = "/v2/health/ready"});
  }
  ASSERT_EQ(ready.status, 200) << ready.body;
  for (const std::string& model : models_)
    EXPECT_EQ(Call(*inline_, {.method = "GET", .target = "/v2/models/" + model + "/ready"}).status, 200) << model;
}

TEST_F(V2HandlerOffloadTest, OffLoopDecodeAndEncodeGiveTheInlineResponses) {
  for (const std::string& model : models_) {
    const std::string json = ReadFile(TestSourceDir() + "/examples/requests/" + model + ".json");
    auto [binary, header_length] = BinaryBody(json);
    const std::string target = "/v2/models/" + model + "/infer";
    HttpResponse json_inline = CallUntilServed(*inline_, {.method = "POST", .target = target, .body = json});
    HttpResponse json_offload = Call(*offload_, {.method = "POST", .target = target, .body = json});
    ASSERT_EQ(json_inline.status, 200) << model << ": " << json_inline.body.substr(0, 300);
    ASSERT_EQ(json_offload.status, 200) << model << ": " << json_offload.body.substr(0, 300);
    EXPECT_EQ(json_offload.content_type, json_inline.content_type) << model;
    EXPECT_EQ(Outputs(json_offload.body), Outputs(json_inline.body)) << model;
    HttpResponse binary_inline = Call(
        *inline_, {.method = "POST", .target = target, .body = binary, .inference_header_length = header_length});
    HttpResponse binary_offload = Call(
        *offload_, {.method = "POST", .target = target, .body = binary, .inference_header_length = header_length});
    ASSERT_EQ(binary_inline.status, 200) << model << ": " << binary_inline.body.substr(0, 300);
    ASSERT_EQ(binary_offload.status, 200) << model << ": " << binary_offload.body.substr(0, 300);
    EXPECT_EQ(binary_offload.content_type, "application/octet-stream") << model;
    EXPECT_EQ(Outputs(binary_offload.body), Outputs(binary_inline.body)) << model;
  }
}

TEST_F(V2HandlerOffloadTest, OffLoopErrorsAndStatusMatchInline) {
  const std::string target = "/v2/models/" + models_[0] + "/infer";
  HttpResponse bad_inline = Call(*inline_, {.method = "POST", .target = target, .body = "{\"inputs\": ["});
  HttpResponse bad_offload = Call(*offload_, {.method = "POST", .target = target, .body = "{\"inputs\": ["});
  EXPECT_EQ(bad_offload.status, 400);
  EXPECT_EQ(bad_offload.body, bad_inline.body);
  HttpResponse status = Call(*offload_, {.method = "GET", .target = "/v2/models/" + models_[0] + "/status"});
  EXPECT_EQ(status.status, 200) << status.body;
  EXPECT_NE(status.body.find("\"instances\":["), std::string::npos) << status.body;
  EXPECT_NE(status.body.find("\"rss_kb\":"), std::string::npos) << status.body;
}

// Bodies compressed as Triton's clients send them, responses compressed as
// they ask, and the raw binary body: the same outputs as plain JSON, on the
// loop and off it.
TEST_F(V2HandlerOffloadTest, CompressedAndRawBodiesGiveThePlainOutputs) {
  const std::string& model = models_[0];
  const std::string json = ReadFile(TestSourceDir() + "/examples/requests/" + model + ".json");
  const std::string target = "/v2/models/" + model + "/infer";
  HttpResponse plain = CallUntilServed(*inline_, {.method = "POST", .target = target, .body = json});
  ASSERT_EQ(plain.status, 200) << plain.body.substr(0, 300);
  auto [binary, header_length] = BinaryBody(json);
  for (V2Handler* handler : {inline_.get(), offload_.get()}) {
    for (ContentCoding coding : {ContentCoding::kGzip, ContentCoding::kDeflate}) {
      const std::string name(ContentCodingName(coding));
      HttpResponse r = Call(*handler, {.method = "POST", .target = target, .body = *Compress(json, coding),
                                       .content_encoding = name, .accept_encoding = name});
      ASSERT_EQ(r.status, 200) << name << ": " << r.body.substr(0, 300);
      auto header = std::find_if(r.headers.begin(), r.headers.end(), [](auto& h) { return h.first == "Content-Encoding"; });
      ASSERT_NE(header, r.headers.end()) << name;
      EXPECT_EQ(header->second, name);
      auto body = Decompress(r.body, coding, 1 << 30);
      ASSERT_TRUE(body.ok()) << body.status().ToString();
      EXPECT_EQ(Outputs(*body), Outputs(plain.body)) << name;
      // Binary tensors compressed: the header length counts the inflated JSON.
      HttpResponse b = Call(*handler, {.method = "POST", .target = target, .body = *Compress(binary, coding),
                                       .inference_header_length = header_length, .content_encoding = name});
      ASSERT_EQ(b.status, 200) << name << ": " << b.body.substr(0, 300);
      EXPECT_EQ(b.content_type, "application/octet-stream");
    }
    HttpResponse bad = Call(*handler, {.method = "POST", .target = target, .body = json, .content_encoding = "gzip"});
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("not valid gzip"), std::string::npos) << bad.body;
    HttpResponse br = Call(*handler, {.method = "POST", .target = target, .body = json, .content_encoding = "br"});
    EXPECT_EQ(br.status, 415);
    EXPECT_NE(br.body.find("'br' is not supported"), std::string::npos) << br.body;
  }
  // Raw: the one input's bytes as the body give the binary request's outputs.
  auto parsed = v2::ParseInferRequest(json, std::nullopt);
  ASSERT_TRUE(parsed.ok());
  if (parsed->inputs.size() == 1) {
    HttpResponse with_header = Call(
        *inline_, {.method = "POST", .target = target, .body = binary, .inference_header_length = header_length});
    for (V2Handler* handler : {inline_.get(), offload_.get()}) {
      HttpResponse raw = Call(*handler, {.method = "POST", .target = target, .body = parsed->inputs[0].data,
                                         .inference_header_length = 0});
      ASSERT_EQ(raw.status, 200) << raw.body.substr(0, 300);
      EXPECT_EQ(raw.content_type, "application/octet-stream");
      EXPECT_EQ(Outputs(raw.body), Outputs(with_header.body));
    }
  }
}

}  // namespace
}  // namespace thaw
