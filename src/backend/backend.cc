#include "backend/backend.h"

#include "backend/onnx_backend.h"
#include "backend/torch_backend.h"
#include "backend/xgboost_backend.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <vector>

#include "text/word_tokenizer.h"

namespace thaw {
namespace {

Tensor WarmupInput(const TensorSpec& spec, int64_t variable_dim) {
  Tensor t;
  t.name = spec.name;
  t.datatype = spec.datatype;
  for (int64_t d : spec.shape) t.shape.push_back(d < 0 ? variable_dim : d);
  const size_t count = static_cast<size_t>(ElementCount(t.shape));
  if (spec.datatype == DataType::kBytes) {  // a short text per element
    for (size_t i = 0; i < count; ++i) AppendBytesElement(&t.data, "warm up");
    return t;
  }
  const size_t size = DataTypeSize(spec.datatype);
  t.data.assign(count * size, '\0');
  const bool floating = spec.datatype == DataType::kFp16 || spec.datatype == DataType::kFp32 ||
                        spec.datatype == DataType::kFp64;
  if (!floating)
    for (size_t i = 0; i < count; ++i) t.data[i * size] = 1;  // little-endian 1
  return t;
}

BackendFactory test_factory = nullptr;

// A model with tokenized BYTES inputs: each becomes its token ids here, in
// the model process, before the engine (which sees ConfigAfterTokenizing's
// config) runs.
class TokenizingBackend final : public Backend {
 public:
  TokenizingBackend(std::unique_ptr<Backend> engine, std::vector<std::optional<WordTokenizer>> tokenizers)
      : engine_(std::move(engine)), tokenizers_(std::move(tokenizers)) {}

  Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) override {
    if (inputs.size() != tokenizers_.size())
      return InvalidArgument("expected " + std::to_string(tokenizers_.size()) + " input(s), got " +
                             std::to_string(inputs.size()));
    std::vector<Tensor> engine_inputs;
    engine_inputs.reserve(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (!tokenizers_[i]) {
        engine_inputs.push_back(inputs[i]);
        continue;
      }
      StatusOr<Tensor> ids = tokenizers_[i]->EncodeBatch(inputs[i]);
      if (!ids.ok()) return ids.status();
      engine_inputs.push_back(std::move(ids).value());
    }
    return engine_->Run(engine_inputs, outputs);
  }

 private:
  std::unique_ptr<Backend> engine_;
  std::vector<std::optional<WordTokenizer>> tokenizers_;  // per input; none for inputs passed as they are
};

bool HasTokenizer(const ModelConfig& config) {
  for (const TensorSpec& spec : config.inputs)
    if (spec.tokenizer) return true;
  return false;
}

StatusOr<std::unique_ptr<Backend>> CreateEngineBackend(const ModelConfig& config, const Clock& clock,
                                                       BackendLoadTimings* timings, const BackendLoadOptions& options) {
  if (config.backend == "torchscript") return CreateTorchScriptBackend(config, clock, timings, options);
  if (config.backend == "xgboost") return CreateXgboostBackend(config, clock, timings, options);
  if (config.backend == "onnx") return CreateOnnxBackend(config, clock, timings, options);
  return InvalidArgument("model '" + config.name + "': unknown backend '" + config.backend +
                         "' (supported: torchscript, xgboost, onnx)");
}

}  // namespace

void SetBackendFactoryForTesting(BackendFactory factory) { test_factory = factory; }

Status WarmUp(Backend& backend, const ModelConfig& config, int runs) {
  std::vector<Tensor> outputs;
  for (int i = 0; i < runs; ++i) {
    // Variable dims cycle through 1, 2, 4: an executor that specialises on
    // shapes then has seen several, and a new batch size does not pay a
    // re-specialisation on the request path.
    std::vector<Tensor> inputs;
    for (const TensorSpec& spec : config.inputs) inputs.push_back(WarmupInput(spec, int64_t{1} << (i % 3)));
    Status s = backend.Run(inputs, &outputs);
    if (!s.ok()) {
      std::string shapes;
      for (const Tensor& t : inputs) shapes += (shapes.empty() ? "" : ",") + ShapeToString(t.shape);
      return InvalidArgument("model '" + config.name + "': warm-up with input shape(s) " + shapes +
                             " failed: " + s.message());
    }
  }
  return Status::Ok();
}


StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const Clock& clock,
                                                 BackendLoadTimings* timings, const BackendLoadOptions& options) {
  BackendLoadTimings ignored;
  if (timings == nullptr) timings = &ignored;
  if (test_factory) return test_factory(config);
  if (!HasTokenizer(config)) return CreateEngineBackend(config, clock, timings, options);
  std::vector<std::optional<WordTokenizer>> tokenizers;
  for (const TensorSpec& spec : config.inputs) {
    if (!spec.tokenizer) {
      tokenizers.emplace_back();
      continue;
    }
    auto tokenizer = WordTokenizer::Load(*spec.tokenizer, config.directory);
    if (!tokenizer.ok())
      return Status(tokenizer.status().code(),
                    "model '" + config.name + "' input '" + spec.name + "': " + tokenizer.status().message());
    tokenizers.push_back(std::move(tokenizer).value());
  }
  auto engine = CreateEngineBackend(ConfigAfterTokenizing(config), clock, timings, options);
  if (!engine.ok()) return engine.status();
  return std::unique_ptr<Backend>(std::make_unique<TokenizingBackend>(std::move(engine).value(), std::move(tokenizers)));
}

Status WarmEngine() {
  if (test_factory) return Status::Ok();
  return WarmTorchScriptEngine();
}

StatusOr<std::string> PrepareArtifact(const ModelConfig& config) {
  if (test_factory) return std::string();  // test backends have none
  if (config.backend == "torchscript") return PrepareTorchScriptArtifact(ConfigAfterTokenizing(config));
  if (config.backend == "xgboost" || config.backend == "onnx") return std::string();  // loaded as they are
  return InvalidArgument("backend '" + config.backend + "' has no prepared artifact");
}

namespace {
std::atomic<int> g_intra_op_threads{1};
}  // namespace

void SetIntraOpThreads(int threads) {
  g_intra_op_threads.store(std::max(threads, 1), std::memory_order_relaxed);
  SetTorchIntraOpThreads(threads);
}

int IntraOpThreads() { return g_intra_op_threads.load(std::memory_order_relaxed); }

}  // namespace thaw
