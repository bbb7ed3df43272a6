#include "backend/backend.h"
#include "base/test_paths.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <simdjson.h>

#include "base/clock.h"
#include "repo/model_config.h"
#include "tensor/batch.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;

std::string SourceDir() { return TestSourceDir(); }
std::string BuildDir() { return TestBuildDir(); }

std::string ExampleModelDir(const std::string& model) { return SourceDir() + "/examples/models/" + model; }

bool ExampleModelPresent(const std::string& model) {
  auto config = LoadModelConfig(ExampleModelDir(model));
  return config.ok() && fs::exists(config->ModelPath());
}

#define SKIP_WITHOUT_EXAMPLE(model)                                                              \
  if (!ExampleModelPresent(model))                                                               \
  GTEST_SKIP() << "example model " << ExampleModelDir(model)                                     \
               << " (config.json + its model file) is not present; build the examples to run this test"

template <typename T>
std::string Bytes(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(t.data.size() / sizeof(T));
  std::memcpy(v.data(), t.data.data(), v.size() * sizeof(T));
  return v;
}

struct Loaded {
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  BackendLoadTimings timings;
};

// Loads an example model; fails the test on error.
Loaded LoadExample(const std::string& model, const BackendLoadOptions& options = {}) {
  Loaded l;
  auto config = LoadModelConfig(ExampleModelDir(model));
  EXPECT_TRUE(config.ok()) << config.status().ToString();
  if (!config.ok()) return l;
  l.config = *config;
  RealClock clock;
  auto backend = CreateBackend(l.config, clock, &l.timings, options);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  if (backend.ok()) l.backend = std::move(backend).value();
  return l;
}

// A config for one of the small models in src/backend/testdata.
ModelConfig TestdataConfig(const std::string& file) {
  ModelConfig c;
  c.name = file;
  c.directory = SourceDir() + "/src/backend/testdata";
  c.model_file = file + ".pt";
  return c;
}

TensorSpec Spec(std::string name, DataType type, Shape shape) { return TensorSpec{std::move(name), type, std::move(shape)}; }

// Fraud features: `rows` rows of 30 plausible values.
Tensor FraudInput(int rows) {
  std::vector<float> v;
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < 30; ++i) v.push_back(0.05f * (i + 1) * (r + 1));
  return Tensor{"features", DataType::kFp32, {rows, 30}, Bytes(v)};
}

// ---- JSON helpers for examples/requests and examples/references ----------

void Flatten(simdjson::dom::element e, std::vector<double>* out) {
  if (e.is_array()) {
    for (simdjson::dom::element child : e.get_array()) Flatten(child, out);
  } else if (e.is_bool()) {
    out->push_back(bool(e.get_bool()) ? 1.0 : 0.0);
  } else {
    out->push_back(double(e.get_double()));
  }
}

// Encodes JSON numbers as raw bytes of the given datatype.
std::string Encode(DataType type, const std::vector<double>& v) {
  std::string s;
  auto put = [&](auto x) { s.append(reinterpret_cast<const char*>(&x), sizeof(x)); };
  for (double d : v) {
    switch (type) {
      case DataType::kFp32: put(float(d)); break;
      case DataType::kFp64: put(d); break;
      case DataType::kInt64: put(int64_t(d)); break;
      case DataType::kInt32: put(int32_t(d)); break;
      case DataType::kInt16: put(int16_t(d)); break;
      case DataType::kInt8: put(int8_t(d)); break;
      case DataType::kUint8: put(uint8_t(d)); break;
      case DataType::kBool: put(uint8_t(d != 0)); break;
      default: ADD_FAILURE() << "unsupported datatype in example JSON"; break;
    }
  }
  return s;
}

std::vector<double> Decode(const Tensor& t) {
  std::vector<double> v;
  switch (t.datatype) {
    case DataType::kFp32: for (float x : Values<float>(t)) v.push_back(x); break;
    case DataType::kFp64: return Values<double>(t);
    case DataType::kInt64: for (int64_t x : Values<int64_t>(t)) v.push_back(double(x)); break;
    case DataType::kInt32: for (int32_t x : Values<int32_t>(t)) v.push_back(x); break;
    case DataType::kBool:
    case DataType::kUint8: for (uint8_t x : Values<uint8_t>(t)) v.push_back(x); break;
    default: ADD_FAILURE() << "unsupported output datatype"; break;
  }
  return v;
}

struct JsonTensor {
  std::string name;
  DataType datatype;
  Shape shape;
  std::vector<double> values;
};

std::vector<JsonTensor> ReadJsonTensors(const std::string& path, const char* key) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(path);
  std::vector<JsonTensor> out;
  for (simdjson::dom::element t : doc[key].get_array()) {
    JsonTensor j;
    j.name = std::string(std::string_view(t["name"]));
    j.datatype = *ParseDataType(std::string_view(t["datatype"]));
    for (simdjson::dom::element d : t["shape"].get_array()) j.shape.push_back(int64_t(d));
    Flatten(t["data"], &j.values);
    out.push_back(std::move(j));
  }
  return out;
}

// ---- Example models ------------------------------------------------------

TEST(BackendTest, FraudVariableBatch) {
  SKIP_WITHOUT_EXAMPLE("fraud");
  Loaded l = LoadExample("fraud");
  ASSERT_NE(l.backend, nullptr);
  EXPECT_GT(l.timings.model_load_us, 0);
  EXPECT_GT(l.timings.warmup_us, 0);
  for (int rows : {2, 3, 1}) {
    std::vector<Tensor> outputs;
    Status s = l.backend->Run({FraudInput(rows)}, &outputs);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(outputs.size(), 1u);
    EXPECT_EQ(outputs[0].name, "probabilities");
    EXPECT_EQ(outputs[0].datatype, DataType::kFp32);
    EXPECT_EQ(outputs[0].shape, (Shape{rows, 2}));
    std::vector<float> p = Values<float>(outputs[0]);
    ASSERT_EQ(p.size(), size_t(rows * 2));
    for (int r = 0; r < rows; ++r) {
      EXPECT_GE(p[2 * r], 0.0f);
      EXPECT_GE(p[2 * r + 1], 0.0f);
      EXPECT_NEAR(p[2 * r] + p[2 * r + 1], 1.0f, 1e-5) << "row " << r;
    }
  }
}

TEST(BackendTest, FraudWrongInputCount) {
  SKIP_WITHOUT_EXAMPLE("fraud");
  Loaded l = LoadExample("fraud");
  ASSERT_NE(l.backend, nullptr);
  std::vector<Tensor> outputs;
  EXPECT_EQ(l.backend->Run({}, &outputs).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(l.backend->Run({FraudInput(1), FraudInput(1)}, &outputs).code(), StatusCode::kInvalidArgument);
}

TEST(BackendTest, FraudBadInputs) {
  SKIP_WITHOUT_EXAMPLE("fraud");
  Loaded l = LoadExample("fraud");
  ASSERT_NE(l.backend, nullptr);
  std::vector<Tensor> outputs;
  // Data size disagrees with the shape: rejected before the engine sees it.
  Tensor short_data = FraudInput(2);
  short_data.shape = {3, 30};
  EXPECT_EQ(l.backend->Run({short_data}, &outputs).code(), StatusCode::kInvalidArgument);
  // Wrong datatype.
  Tensor wrong_type = Tensor{"features", DataType::kFp64, {1, 30}, std::string(30 * 8, '\0')};
  EXPECT_EQ(l.backend->Run({wrong_type}, &outputs).code(), StatusCode::kInvalidArgument);
  // A shape that disagrees with the config: rejected by the backend (the
  // optimised graph would crash the process on it, not throw).
  Tensor wrong_width = Tensor{"features", DataType::kFp32, {2, 7}, std::string(2 * 7 * 4, '\0')};
  EXPECT_EQ(l.backend->Run({wrong_width}, &outputs).code(), StatusCode::kInvalidArgument);
  Tensor wrong_rank = Tensor{"features", DataType::kFp32, {60}, std::string(60 * 4, '\0')};
  EXPECT_EQ(l.backend->Run({wrong_rank}, &outputs).code(), StatusCode::kInvalidArgument);
  // Still serves afterwards.
  EXPECT_TRUE(l.backend->Run({FraudInput(1)}, &outputs).ok());
}

TEST(BackendTest, FraudConcurrentRuns) {
  SKIP_WITHOUT_EXAMPLE("fraud");
  Loaded l = LoadExample("fraud");
  ASSERT_NE(l.backend, nullptr);
  std::vector<Tensor> expected;
  ASSERT_TRUE(l.backend->Run({FraudInput(3)}, &expected).ok());
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        std::vector<Tensor> out;
        Status s = l.backend->Run({FraudInput(3)}, &out);
        if (!s.ok() || out.size() != 1 || out[0].data != expected[0].data) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// Every example model with a request and a reference answer must reproduce it.
// Runs the example request of `model` through `l` and compares the outputs
// with the example reference.
// Runs examples/requests/<request>.json (default: the model's own) and
// compares with `reference` (default: examples/references/<model>.json).
void ExpectReferenceOutputs(const std::string& model, Loaded& l, const std::string& request = "",
                            std::string reference = "") {
  if (reference.empty()) reference = SourceDir() + "/examples/references/" + model + ".json";
  ASSERT_NE(l.backend, nullptr);
  std::vector<Tensor> inputs;
  for (const JsonTensor& j :
       ReadJsonTensors(SourceDir() + "/examples/requests/" + (request.empty() ? model : request) + ".json", "inputs"))
    inputs.push_back(Tensor{j.name, j.datatype, j.shape, Encode(j.datatype, j.values)});
  // The request may list inputs in any order; the backend takes config order.
  std::vector<Tensor> ordered;
  for (const TensorSpec& spec : l.config.inputs)
    for (const Tensor& t : inputs)
      if (t.name == spec.name) ordered.push_back(t);
  ASSERT_EQ(ordered.size(), l.config.inputs.size());

  std::vector<Tensor> outputs;
  Status s = l.backend->Run(ordered, &outputs);
  ASSERT_TRUE(s.ok()) << s.ToString();
  for (const JsonTensor& want : ReadJsonTensors(reference, "outputs")) {
    const Tensor* got = nullptr;
    for (const Tensor& t : outputs)
      if (t.name == want.name) got = &t;
    ASSERT_NE(got, nullptr) << "no output " << want.name;
    EXPECT_EQ(got->shape, want.shape) << want.name;
    EXPECT_EQ(got->datatype, want.datatype) << want.name;
    std::vector<double> values = Decode(*got);
    ASSERT_EQ(values.size(), want.values.size()) << want.name;
    for (size_t i = 0; i < values.size(); ++i)
      EXPECT_NEAR(values[i], want.values[i], 1e-4 + 1e-4 * std::abs(want.values[i])) << want.name << "[" << i << "]";
  }
}

bool ExampleWithReference(const std::string& model) {
  return ExampleModelPresent(model) && fs::exists(SourceDir() + "/examples/requests/" + model + ".json") &&
         fs::exists(SourceDir() + "/examples/references/" + model + ".json");
}

TEST(BackendTest, ExamplesMatchReferences) {
  int checked = 0;
  for (const std::string model : {"fraud", "fraud-xgb", "fashion", "fashion-onnx", "textenc", "large"}) {
    if (!ExampleWithReference(model)) continue;
    SCOPED_TRACE(model);
    if (auto config = LoadModelConfig(ExampleModelDir(model)); config.ok() && config->backend != "torchscript") {
      RealClock clock;
      auto probe = CreateBackend(*config, clock, nullptr);
      if (probe.status().code() == StatusCode::kUnavailable) continue;  // built without its engine
    }
    Loaded l = LoadExample(model);
    ExpectReferenceOutputs(model, l);
    EXPECT_FALSE(l.timings.used_prepared);
    // Only CNNs are rewritten by optimize_for_inference (see PrepareArtifact).
    EXPECT_EQ(l.timings.optimized_at_load, model == "fashion" || model == "large");
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no example model with a request and a reference under " << SourceDir() << "/examples";
}

// Int8 variants made by thaw optimize (models/optimize.py) load on the
// onednn engine the backend selects and give what Python computes from the
// same file for the base model's request on this machine (the build runs
// models/machine_references.py: int8 kernels round by CPU, so
// examples/references/, computed elsewhere, may differ by 0.08). Then, on two intra-op threads (the
// engine notes saw onednn int8 fail there once the batch size changed), a
// row gives the same answer at batch sizes 1, 8, 3, 1, 5.
TEST(BackendTest, Int8VariantsMatchPythonAndKeepRowsAcrossBatchSizesOnTwoThreads) {
  int checked = 0;
  for (const auto& [model, base] : std::vector<std::pair<std::string, std::string>>{
           {"fashion-int8-static", "fashion"}, {"fashion-distill-int8", "fashion"},
           {"textenc-int8-dynamic", "textenc"}, {"textenc-distill-int8", "textenc"}}) {
    if (!ExampleModelPresent(model) || !fs::exists(SourceDir() + "/examples/references/" + model + ".json")) continue;
    SCOPED_TRACE(model);
    const std::string on_this_machine = BuildDir() + "/machine-references/" + model + ".json";
    ASSERT_TRUE(fs::exists(on_this_machine)) << on_this_machine << " is missing: build the machine_references target";
    Loaded l = LoadExample(model);
    ExpectReferenceOutputs(model, l, base, on_this_machine);
    ASSERT_NE(l.backend, nullptr);
    std::vector<Tensor> request;
    for (const JsonTensor& j : ReadJsonTensors(SourceDir() + "/examples/requests/" + base + ".json", "inputs"))
      request.push_back(Tensor{j.name, j.datatype, j.shape, Encode(j.datatype, j.values)});
    auto rows = SplitBatch(request, {1, *BatchRows(request) - 1});
    ASSERT_TRUE(rows.ok());
    SetIntraOpThreads(2);
    std::vector<double> single;
    for (int64_t batch : {1, 8, 3, 1, 5}) {
      auto inputs = ConcatBatch(std::vector<std::vector<Tensor>>(batch, (*rows)[0]));
      ASSERT_TRUE(inputs.ok());
      std::vector<Tensor> outputs;
      Status run = l.backend->Run(*inputs, &outputs);
      ASSERT_TRUE(run.ok()) << "batch " << batch << ": " << run.ToString();
      const std::vector<double> values = Decode(outputs[0]);
      const size_t width = values.size() / batch;
      if (single.empty()) single.assign(values.begin(), values.begin() + width);
      for (int64_t r = 0; r < batch; ++r)
        for (size_t k = 0; k < width; ++k)
          EXPECT_NEAR(values[r * width + k], single[k], 1e-4 + 1e-4 * std::abs(single[k]))
              << "batch " << batch << " row " << r << " [" << k << "]";
    }
    SetIntraOpThreads(1);
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "no int8 example variant with a reference under " << SourceDir() << "/examples";
}

// A prepared artifact loads in place of the model file and gives the model's
// outputs; a CNN's instances still optimise it for inference at load, other
// models' skip that.
TEST(BackendTest, PreparedArtifactsMatchReferences) {
  const std::string dir = ::testing::TempDir() + "/prepared_" + std::to_string(::getpid());
  fs::create_directories(dir);
  int checked = 0;
  for (const auto& [model, cnn] :
       std::vector<std::pair<std::string, bool>>{{"fraud", false}, {"textenc", false}, {"fashion", true}}) {
    if (!ExampleWithReference(model)) continue;
    SCOPED_TRACE(model);
    auto config = LoadModelConfig(ExampleModelDir(model));
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    StatusOr<std::string> artifact = PrepareArtifact(*config);
    ASSERT_TRUE(artifact.ok()) << artifact.status().ToString();
    ASSERT_FALSE(artifact->empty());
    const std::string path = dir + "/" + model + ".artifact";
    std::ofstream(path, std::ios::binary) << *artifact;

    Loaded l = LoadExample(model, BackendLoadOptions{.prepared_path = path});
    EXPECT_TRUE(l.timings.used_prepared);
    EXPECT_EQ(l.timings.optimized_at_load, cnn);
    ExpectReferenceOutputs(model, l);
    ++checked;
  }
  fs::remove_all(dir);
  if (checked == 0) GTEST_SKIP() << "no example model with a request and a reference under " << SourceDir() << "/examples";
}

// textcls: a BYTES input of raw texts with a tokenizer; the backend
// tokenizes in the model process and the engine gets the ids. The logits
// are the Python reference's (Python's tokenizer, the textenc model), also
// from the model's prepared artifact.
TEST(BackendTest, TextIsTokenizedBeforeTheEngine) {
  if (!ExampleModelPresent("textcls")) GTEST_SKIP() << "example model textcls is not present";
  simdjson::dom::parser parser;
  simdjson::dom::element request;
  ASSERT_FALSE(parser.load(SourceDir() + "/examples/requests/textcls.json").get(request));
  Tensor texts{.name = "text", .datatype = DataType::kBytes};
  for (auto text : request["inputs"].at(0)["data"].get_array()) AppendBytesElement(&texts.data, std::string_view(text));
  texts.shape = {static_cast<int64_t>(request["inputs"].at(0)["data"].get_array().size())};
  const std::vector<JsonTensor> want = ReadJsonTensors(SourceDir() + "/examples/references/textcls.json", "outputs");
  ASSERT_EQ(want.size(), 1u);

  auto config = LoadModelConfig(ExampleModelDir("textcls"));
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  StatusOr<std::string> artifact = PrepareArtifact(*config);
  ASSERT_TRUE(artifact.ok()) << artifact.status().ToString();
  const std::string artifact_path = ::testing::TempDir() + "/textcls_artifact_" + std::to_string(::getpid());
  std::ofstream(artifact_path, std::ios::binary) << *artifact;
  for (const std::string& prepared : {std::string(), artifact_path}) {
    SCOPED_TRACE(prepared.empty() ? "model file" : "prepared artifact");
    RealClock clock;
    auto backend = CreateBackend(*config, clock, nullptr, {.prepared_path = prepared});
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    ASSERT_TRUE(WarmUp(**backend, *config, 2).ok());  // as a standby warms: BYTES warm-up texts
    std::vector<Tensor> outputs;
    Status s = (*backend)->Run({texts}, &outputs);
    ASSERT_TRUE(s.ok()) << s.ToString();
    ASSERT_EQ(outputs.size(), 1u);
    EXPECT_EQ(outputs[0].shape, want[0].shape);
    const std::vector<double> got = Decode(outputs[0]);
    ASSERT_EQ(got.size(), want[0].values.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[0].values[i], 1e-4) << i;
    // Not texts: refused before the engine, naming the input.
    Tensor numbers{.name = "text", .datatype = DataType::kBytes, .shape = {1, 2}};
    AppendBytesElement(&numbers.data, "a");
    AppendBytesElement(&numbers.data, "b");
    s = (*backend)->Run({numbers}, &outputs);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("'text'"), std::string::npos) << s.message();
  }
  fs::remove(artifact_path);

  // A vocabulary without the declared unknown token fails the load, naming it.
  ModelConfig broken = *config;
  broken.inputs[0].tokenizer->unknown_token = "[MISSING]";
  RealClock clock;
  auto failed = CreateBackend(broken, clock, nullptr);
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(failed.status().message().find("[MISSING]"), std::string::npos) << failed.status().message();
}

// An artifact that does not load (here: not an artifact at all) is passed
// over: the model file loads instead.
TEST(BackendTest, UnloadablePreparedArtifactFallsBackToTheModelFile) {
  if (!ExampleWithReference("fraud")) GTEST_SKIP() << "example model fraud is not present";
  const std::string path = ::testing::TempDir() + "/bad_artifact_" + std::to_string(::getpid());
  std::ofstream(path, std::ios::binary) << "not a module";
  Loaded l = LoadExample("fraud", BackendLoadOptions{.prepared_path = path});
  EXPECT_FALSE(l.timings.used_prepared);
  ExpectReferenceOutputs("fraud", l);
  fs::remove(path);
}

// ---- Errors --------------------------------------------------------------

TEST(BackendTest, UnknownBackendIsInvalidArgument) {
  ModelConfig c = TestdataConfig("list_model");
  c.backend = "tensorflow";
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("tensorflow"), std::string::npos);
}

TEST(BackendTest, MissingModelFileIsNotFound) {
  ModelConfig c = TestdataConfig("no_such_model");
  c.inputs = {Spec("x", DataType::kFp32, {-1})};
  c.outputs = {Spec("y", DataType::kFp32, {-1})};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  EXPECT_EQ(b.status().code(), StatusCode::kNotFound);
}

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/thaw_backend_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(BackendTest, CorruptModelFileIsAnError) {
  TempDir dir;
  for (const std::string& contents : {std::string("this is not a zip file"), std::string(),
                                      std::string("PK\x03\x04garbage", 12)}) {
    std::ofstream(dir.path() + "/model.pt") << contents;
    ModelConfig c;
    c.name = "corrupt";
    c.directory = dir.path();
    c.inputs = {Spec("x", DataType::kFp32, {-1})};
    c.outputs = {Spec("y", DataType::kFp32, {-1})};
    RealClock clock;
    auto b = CreateBackend(c, clock, nullptr);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(b.status().message().find("model.pt"), std::string::npos) << b.status().message();
  }
}

TEST(BackendTest, UnsupportedDatatypeIsInvalidArgument) {
  ModelConfig c = TestdataConfig("list_model");
  c.inputs = {Spec("x", DataType::kBytes, {-1})};
  c.outputs = {Spec("a", DataType::kFp32, {-1}), Spec("b", DataType::kFp32, {-1})};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("BYTES"), std::string::npos);
}

// ---- Output forms and conversions (src/backend/testdata) -----------------

ModelConfig TupleConfig() {
  ModelConfig c = TestdataConfig("tuple_model");
  c.inputs = {Spec("x", DataType::kFp32, {-1, 4}), Spec("ids", DataType::kInt64, {-1, 3})};
  // The model returns float, int64, bool; the config asks for FP64 for the
  // first, so the backend converts.
  c.outputs = {Spec("lin", DataType::kFp64, {-1, 2}), Spec("ids2", DataType::kInt64, {-1, 3}),
               Spec("pos", DataType::kBool, {-1, 4})};
  return c;
}

TEST(BackendTest, TupleOutputWithConversion) {
  RealClock clock;
  BackendLoadTimings timings;
  auto b = CreateBackend(TupleConfig(), clock, &timings);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::vector<Tensor> outputs;
  Status s = (*b)->Run({Tensor{"x", DataType::kFp32, {2, 4}, Bytes<float>({1, 2, 3, 4, -1, -2, 0, 5})},
                        Tensor{"ids", DataType::kInt64, {2, 3}, Bytes<int64_t>({1, 2, 3, 4, 5, 6})}},
                       &outputs);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(outputs.size(), 3u);
  EXPECT_EQ(outputs[0].name, "lin");
  EXPECT_EQ(outputs[0].datatype, DataType::kFp64);
  EXPECT_EQ(outputs[0].shape, (Shape{2, 2}));
  EXPECT_EQ(Values<double>(outputs[0]), (std::vector<double>{1.5, 8.5, -0.5, 2.5}));
  EXPECT_EQ(outputs[1].name, "ids2");
  EXPECT_EQ(Values<int64_t>(outputs[1]), (std::vector<int64_t>{2, 4, 6, 8, 10, 12}));
  EXPECT_EQ(outputs[2].datatype, DataType::kBool);
  EXPECT_EQ(outputs[2].data, std::string("\1\1\1\1\0\0\0\1", 8));
}

TEST(BackendTest, ListOutput) {
  ModelConfig c = TestdataConfig("list_model");
  c.inputs = {Spec("x", DataType::kFp32, {-1})};
  c.outputs = {Spec("plus1", DataType::kFp32, {-1}), Spec("square", DataType::kFp32, {-1})};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::vector<Tensor> outputs;
  ASSERT_TRUE((*b)->Run({Tensor{"x", DataType::kFp32, {3}, Bytes<float>({1, 2, 3})}}, &outputs).ok());
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(Values<float>(outputs[0]), (std::vector<float>{2, 3, 4}));
  EXPECT_EQ(Values<float>(outputs[1]), (std::vector<float>{1, 4, 9}));
}

TEST(BackendTest, EngineErrorIsInternal) {
  ModelConfig c = TestdataConfig("raise_model");
  c.inputs = {Spec("x", DataType::kFp32, {-1})};
  c.outputs = {Spec("y", DataType::kFp32, {-1})};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::vector<Tensor> outputs;
  Status s = (*b)->Run({Tensor{"x", DataType::kFp32, {2}, Bytes<float>({1, -5})}}, &outputs);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  // The error itself, without the TorchScript traceback or the host's paths.
  EXPECT_NE(s.message().find("ValueError: negative input sum"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("Traceback"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("make_test_models.py"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('/'), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  // Still serves afterwards.
  ASSERT_TRUE((*b)->Run({Tensor{"x", DataType::kFp32, {2}, Bytes<float>({1, 5})}}, &outputs).ok());
  EXPECT_EQ(Values<float>(outputs[0]), (std::vector<float>{1, 5}));
}

TEST(BackendTest, EngineOpErrorGivesItsMessageOnly) {
  ModelConfig c = TestdataConfig("mismatch_model");
  c.inputs = {Spec("x", DataType::kFp32, {-1})};
  c.outputs = {Spec("y", DataType::kFp32, {-1})};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::vector<Tensor> outputs;
  Status s = (*b)->Run({Tensor{"x", DataType::kFp32, {3}, Bytes<float>({1, 2, 3})}}, &outputs);
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_NE(s.message().find("The size of tensor a (3) must match the size of tensor b (4)"), std::string::npos)
      << s.message();
  EXPECT_EQ(s.message().find("Traceback"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find('/'), std::string::npos) << s.message();
  EXPECT_LT(s.message().size(), 300u) << s.message();
}

TEST(ClientEngineMessageTest, KeepsTheErrorAfterATraceback) {
  const std::string traceback =
      "The following operation failed in the TorchScript interpreter.\n"
      "Traceback of TorchScript, serialized code (most recent call last):\n"
      "  File \"code/__torch__.py\", line 9, in forward\n"
      "    _0 = torch.add(x, torch.ones([4]))\n"
      "         ~~~~~~~~~ <--- HERE\n"
      "Traceback of TorchScript, original code (most recent call last):\n"
      "  File \"/home/alice/secret/train.py\", line 48, in forward\n"
      "        return x + torch.ones(4)\n"
      "               ~~~~~~~~~~~~~~~~ <--- HERE\n"
      "RuntimeError: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 0\n";
  EXPECT_EQ(ClientEngineMessage(traceback),
            "RuntimeError: The size of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 0");
  EXPECT_EQ(ClientEngineMessage("Traceback of TorchScript (most recent call last):\n  File \"/a/b.py\"\n"
                                "builtins.ValueError: bad input\n"),
            "ValueError: bad input");
}

TEST(ClientEngineMessageTest, CutsAbsolutePathsToFileNames) {
  EXPECT_EQ(ClientEngineMessage("open file failed, file path: /var/run/thaw/fraud/model.pt"),
            "open file failed, file path: model.pt");
  EXPECT_EQ(ClientEngineMessage("cannot read '/srv/models/fraud/config.json' (x)"),
            "cannot read 'config.json' (x)");
  EXPECT_EQ(ClientEngineMessage("ratio 1/2 and a/b stay; so does /"), "ratio 1/2 and a/b stay; so does /");
  EXPECT_EQ(ClientEngineMessage("plain error"), "plain error");
  EXPECT_EQ(ClientEngineMessage(""), "");
  const std::string longer(5000, 'x');
  EXPECT_EQ(ClientEngineMessage(longer).size(), 1003u);  // 1000 bytes and "..."
}

TEST(BackendTest, OutputCountMismatchFailsAtLoad) {
  ModelConfig c = TupleConfig();
  c.outputs.pop_back();
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("3 output(s)"), std::string::npos) << b.status().message();
}

TEST(BackendTest, OutputShapeMismatchFailsAtLoad) {
  ModelConfig c = TupleConfig();
  c.outputs[0].shape = {-1, 5};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
}

TEST(BackendTest, NonTensorOutputFailsAtLoad) {
  ModelConfig c = TestdataConfig("int_model");
  c.inputs = {Spec("x", DataType::kFp32, {-1})};
  c.outputs = {Spec("n", DataType::kInt64, {})};
  RealClock clock;
  auto b = CreateBackend(c, clock, nullptr);
  EXPECT_EQ(b.status().code(), StatusCode::kInvalidArgument);
}

TEST(BackendTest, TimingsUseTheClock) {
  // A clock that advances 1 ms per reading: load and warm-up each span
  // exactly two readings' difference.
  class SteppingClock : public Clock {
   public:
    Micros NowMicros() const override { return now_ += 1000; }
    Micros WallMicros() const override { return now_; }
    mutable Micros now_ = 0;
  } clock;
  BackendLoadTimings timings;
  auto b = CreateBackend(TupleConfig(), clock, &timings);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(timings.model_load_us, 1000);
  EXPECT_EQ(timings.warmup_us, 1000);
}

TEST(BackendTest, SetIntraOpThreadsAllowsRepeatedCalls) {
  SetIntraOpThreads(2);
  SetIntraOpThreads(1);
  RealClock clock;
  auto b = CreateBackend(TupleConfig(), clock, nullptr);
  ASSERT_TRUE(b.ok());
}

}  // namespace
}  // namespace thaw

// ---- DescribeTorchScriptFile (thaw init) ---------------------------------

namespace thaw {
namespace {

TEST(DescribeTorchScriptFileTest, ShapesFromAFirstLinearLayerThroughStandardisation) {
  SKIP_WITHOUT_EXAMPLE("fraud");
  // fraud's forward: (features - mean) / std, then a Linear(30, 64), ...; two classes out.
  ModelFileDescription d = DescribeTorchScriptFile(ExampleModelDir("fraud") + "/model.pt", {});
  ASSERT_EQ(d.problem, "") << d.engine_message;
  ASSERT_EQ(d.inputs.size(), 1u);
  EXPECT_EQ(d.inputs[0].name, "features");
  EXPECT_EQ(d.inputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(d.inputs[0].shape, (Shape{-1, 30}));
  ASSERT_EQ(d.outputs.size(), 1u);
  EXPECT_EQ(d.outputs[0].name, "output__0");
  EXPECT_EQ(d.outputs[0].shape, (Shape{-1, 2}));
}

TEST(DescribeTorchScriptFileTest, ConvolutionNeedsAnExample) {
  SKIP_WITHOUT_EXAMPLE("fashion");
  const std::string path = ExampleModelDir("fashion") + "/model.pt";
  ModelFileDescription d = DescribeTorchScriptFile(path, {});
  EXPECT_EQ(d.problem, "no_shape");
  EXPECT_EQ(d.input, "image");
  EXPECT_TRUE(d.inputs.empty());

  TensorSpec image{.name = "image", .datatype = DataType::kFp32, .shape = {1, 1, 28, 28}};
  d = DescribeTorchScriptFile(path, {image});
  ASSERT_EQ(d.problem, "") << d.engine_message;
  EXPECT_EQ(d.inputs[0].shape, (Shape{-1, 1, 28, 28}));
  EXPECT_EQ(d.outputs[0].shape, (Shape{-1, 10}));

  image.shape = {1, 3, 28, 28};  // the wrong channel count: the example call fails
  d = DescribeTorchScriptFile(path, {image});
  EXPECT_EQ(d.problem, "run");
  EXPECT_FALSE(d.engine_message.empty());
  d = DescribeTorchScriptFile(path, {image, image});
  EXPECT_EQ(d.problem, "run");
  EXPECT_NE(d.engine_message.find("the example has 2 input(s), forward takes 1"), std::string::npos);
}

// tuple_model: forward(x, ids) -> (linear(x), ids * 2, x > 0).
TEST(DescribeTorchScriptFileTest, TupleOutputsAreNumberedWithTheirDatatypes) {
  const std::string path = SourceDir() + "/src/backend/testdata/tuple_model.pt";
  ModelFileDescription d = DescribeTorchScriptFile(path, {});
  EXPECT_EQ(d.problem, "no_shape");  // x feeds a linear layer, ids does not
  EXPECT_EQ(d.input, "ids");

  d = DescribeTorchScriptFile(path, {TensorSpec{.name = "x", .datatype = DataType::kFp32, .shape = {2, 4}},
                                     TensorSpec{.name = "ids", .datatype = DataType::kInt64, .shape = {2, 3}}});
  ASSERT_EQ(d.problem, "") << d.engine_message;
  ASSERT_EQ(d.inputs.size(), 2u);
  EXPECT_EQ(d.inputs[1].name, "ids");
  EXPECT_EQ(d.inputs[1].shape, (Shape{-1, 3}));
  ASSERT_EQ(d.outputs.size(), 3u);
  const DataType types[] = {DataType::kFp32, DataType::kInt64, DataType::kBool};
  const Shape shapes[] = {{-1, 2}, {-1, 3}, {-1, 4}};
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(d.outputs[i].name, "output__" + std::to_string(i));
    EXPECT_EQ(d.outputs[i].datatype, types[i]);
    EXPECT_EQ(d.outputs[i].shape, shapes[i]);
  }
}

TEST(DescribeTorchScriptFileTest, MissingAndNonTorchScriptFiles) {
  EXPECT_EQ(DescribeTorchScriptFile("/nonexistent/model.pt", {}).problem, "missing");
  const std::string text = ::testing::TempDir() + "/not_a_model.pt";
  std::ofstream(text) << "just text, not a zip archive";
  ModelFileDescription d = DescribeTorchScriptFile(text, {});
  EXPECT_EQ(d.problem, "not_torchscript");
  EXPECT_NE(d.engine_message.find("not a zip archive"), std::string::npos) << d.engine_message;
}

}  // namespace
}  // namespace thaw
