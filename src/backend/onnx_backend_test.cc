// The onnx backend (OpenCV DNN) through CreateBackend: the fashion model as
// TorchScript and as its ONNX export answer alike (conformance), batches
// against single rows, what OpenCV 4.6 cannot import fails the load on one
// line, and bad inputs.
#include "backend/onnx_backend.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "base/clock.h"
#include "base/test_paths.h"
#include "repo/model_config.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;

#define SKIP_WITHOUT_ONNX() \
  if (!OnnxBuiltIn()) GTEST_SKIP() << "thaw is built without OpenCV DNN (apt-get install libopencv-dnn-dev)"

std::string Testdata() { return TestSourceDir() + "/src/backend/testdata"; }
std::string Example(const std::string& model) { return TestSourceDir() + "/examples/models/" + model; }

TensorSpec Spec(std::string name, DataType type, Shape shape) { return TensorSpec{std::move(name), type, std::move(shape)}; }

ModelConfig TinyConfig(const std::string& file) {
  ModelConfig c;
  c.name = "tiny";
  c.backend = "onnx";
  c.directory = Testdata();
  c.model_file = file;
  c.inputs = {Spec("image", DataType::kFp32, {-1, 1, 6, 6})};
  c.outputs = {Spec("scores", DataType::kFp32, {-1, 5})};
  return c;
}

StatusOr<std::unique_ptr<Backend>> Load(const ModelConfig& config) {
  RealClock clock;
  BackendLoadTimings timings;
  return CreateBackend(config, clock, &timings);
}

Tensor Images(int64_t rows, int64_t side, float phase) {
  std::vector<float> v(static_cast<size_t>(rows * side * side));
  for (size_t i = 0; i < v.size(); ++i) v[i] = 0.5f + 0.5f * std::sin(phase + 0.37f * static_cast<float>(i));
  std::string bytes(v.size() * sizeof(float), '\0');
  if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
  return Tensor{"image", DataType::kFp32, {rows, 1, side, side}, std::move(bytes)};
}

std::vector<float> Values(const Tensor& t) {
  std::vector<float> v(t.data.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), v.size() * sizeof(float));
  return v;
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return a.size() == b.size() ? worst : INFINITY;
}

// Conformance: the TorchScript model and its ONNX export, each in its own
// engine, give the same logits for the same images (8 in one batch).
TEST(OnnxBackendTest, FashionOnnxAgreesWithTorchScript) {
  SKIP_WITHOUT_ONNX();
  auto torch_config = LoadModelConfig(Example("fashion"));
  auto onnx_config = LoadModelConfig(Example("fashion-onnx"));
  ASSERT_TRUE(torch_config.ok() && onnx_config.ok());
  EXPECT_EQ(onnx_config->platform, "onnx_opencv");
  auto torch = Load(*torch_config);
  auto onnx = Load(*onnx_config);
  ASSERT_TRUE(torch.ok()) << torch.status().ToString();
  ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
  std::vector<Tensor> from_torch, from_onnx;
  ASSERT_TRUE((*torch)->Run({Images(8, 28, 0.3f)}, &from_torch).ok());
  ASSERT_TRUE((*onnx)->Run({Images(8, 28, 0.3f)}, &from_onnx).ok());
  ASSERT_EQ(from_onnx[0].shape, (Shape{8, 10}));
  EXPECT_EQ(from_onnx[0].name, "logits");
  EXPECT_LT(MaxAbsDiff(Values(from_torch[0]), Values(from_onnx[0])), 1e-4f);
}

// A batch's rows within a tolerance of the rows sent alone (OpenCV's
// convolutions may block a batch differently from one image).
TEST(OnnxBackendTest, BatchRowsMatchSingleRows) {
  SKIP_WITHOUT_ONNX();
  auto onnx = Load(*LoadModelConfig(Example("fashion-onnx")));
  ASSERT_TRUE(onnx.ok()) << onnx.status().ToString();
  const Tensor batch = Images(4, 28, 1.1f);
  std::vector<Tensor> all;
  ASSERT_TRUE((*onnx)->Run({batch}, &all).ok());
  const std::vector<float> together = Values(all[0]);
  for (int r = 0; r < 4; ++r) {
    Tensor one{"image", DataType::kFp32, {1, 1, 28, 28}, batch.data.substr(static_cast<size_t>(r) * 784 * 4, 784 * 4)};
    std::vector<Tensor> alone;
    ASSERT_TRUE((*onnx)->Run({one}, &alone).ok());
    const std::vector<float> row = Values(alone[0]);
    EXPECT_LT(MaxAbsDiff(row, {together.begin() + 10 * r, together.begin() + 10 * (r + 1)}), 1e-5f) << "row " << r;
  }
}

TEST(OnnxBackendTest, OpsetTenLoadsAndOpsetThirteenReluSixIsRefusedOnOneLine) {
  SKIP_WITHOUT_ONNX();
  auto ten = Load(TinyConfig("onnx_relu6_opset10.onnx"));
  ASSERT_TRUE(ten.ok()) << ten.status().ToString();
  std::vector<Tensor> out;
  ASSERT_TRUE((*ten)->Run({Images(3, 6, 0)}, &out).ok());
  EXPECT_EQ(out[0].shape, (Shape{3, 5}));

  auto thirteen = Load(TinyConfig("onnx_relu6_opset13.onnx"));
  ASSERT_FALSE(thirteen.ok());
  EXPECT_EQ(thirteen.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = thirteen.status().message();
  EXPECT_NE(m.find("cannot import onnx_relu6_opset13.onnx"), std::string::npos) << m;
  EXPECT_NE(m.find("Node [Clip@ai.onnx]"), std::string::npos) << m;
  EXPECT_NE(m.find("(expected: 'node_proto.input_size() == 1'), where 'node_proto.input_size()' is 3"), std::string::npos)
      << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_EQ(m.find("onnx_importer.cpp"), std::string::npos) << m;
}

TEST(OnnxBackendTest, ConfigThatDisagreesFailsTheLoad) {
  SKIP_WITHOUT_ONNX();
  {
    ModelConfig c = TinyConfig("onnx_relu6_opset10.onnx");
    c.outputs[0].name = "probabilities";  // the graph's output is "scores"
    auto b = Load(c);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status().ToString();
    EXPECT_NE(b.status().message().find("output 'probabilities' is not an output of onnx_relu6_opset10.onnx (its "
                                        "outputs: scores)"),
              std::string::npos)
        << b.status().message();
  }
  {
    ModelConfig c = TinyConfig("onnx_relu6_opset10.onnx");
    c.outputs[0].shape = {-1, 7};
    auto b = Load(c);
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.status().message().find("[-1,7]"), std::string::npos) << b.status().message();
  }
  {
    ModelConfig c = TinyConfig("onnx_relu6_opset10.onnx");
    c.inputs[0].datatype = DataType::kInt64;
    auto b = Load(c);
    ASSERT_FALSE(b.ok());
    EXPECT_NE(b.status().message().find("FP32"), std::string::npos) << b.status().message();
  }
}

TEST(OnnxBackendTest, MissingOrCorruptFile) {
  SKIP_WITHOUT_ONNX();
  EXPECT_EQ(Load(TinyConfig("no_such.onnx")).status().code(), StatusCode::kNotFound);
  const std::string dir = ::testing::TempDir() + "/onnx_corrupt_" + std::to_string(::getpid());
  fs::create_directories(dir);
  for (const std::string& contents : {std::string("not a protobuf"), std::string(), std::string("\x08\x07\x12", 3)}) {
    std::ofstream(dir + "/model.onnx", std::ios::trunc) << contents;
    ModelConfig c = TinyConfig("model.onnx");
    c.directory = dir;
    auto b = Load(c);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument) << b.status().ToString();
    EXPECT_NE(b.status().message().find("model.onnx"), std::string::npos) << b.status().message();
    EXPECT_EQ(b.status().message().find('\n'), std::string::npos) << b.status().message();
  }
  fs::remove_all(dir);
}

TEST(OnnxBackendTest, BadInputsAreInvalidArgument) {
  SKIP_WITHOUT_ONNX();
  auto b = Load(TinyConfig("onnx_relu6_opset10.onnx"));
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::vector<Tensor> out;
  Tensor wrong_side = Images(1, 5, 0);
  EXPECT_EQ((*b)->Run({wrong_side}, &out).code(), StatusCode::kInvalidArgument);
  Tensor short_data = Images(2, 6, 0);
  short_data.data.resize(10);
  EXPECT_EQ((*b)->Run({short_data}, &out).code(), StatusCode::kInvalidArgument);
  Tensor doubles{"image", DataType::kFp64, {1, 1, 6, 6}, std::string(36 * 8, '\0')};
  EXPECT_EQ((*b)->Run({doubles}, &out).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*b)->Run({}, &out).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE((*b)->Run({Images(0, 6, 0)}, &out).ok());
  EXPECT_EQ(out[0].shape, (Shape{0, 5}));
  EXPECT_TRUE((*b)->Run({Images(1, 6, 0)}, &out).ok());
}

TEST(OnnxClientMessageTest, KeepsTheNodeAndTheReason) {
  const std::string opencv =
      "OpenCV(4.6.0) ./modules/dnn/src/onnx/onnx_importer.cpp:1040: error: (-2:Unspecified error) in function "
      "'handleNode'\n> Node [Shape@ai.onnx]:(onnx_node!/Shape) parse error: OpenCV(4.6.0) "
      "./modules/dnn/src/onnx/onnx_importer.cpp:2846: error: (-215:Assertion failed) !isDynamicShape in function "
      "'parseShape'\n> \n";
  EXPECT_EQ(OnnxClientMessage(opencv), "Node [Shape@ai.onnx]:(onnx_node!/Shape); assertion !isDynamicShape");
  EXPECT_EQ(OnnxClientMessage("OpenCV(4.6.0) /build/x.cpp:12: error: (-5:Bad argument) Can't read ONNX file: m.onnx in function 'f'"),
            "Can't read ONNX file: m.onnx");
  EXPECT_EQ(OnnxClientMessage(""), "the ONNX importer failed");
}

}  // namespace
}  // namespace thaw
