// TorchScript backend. The only translation unit in thaw that includes a
// torch header; it includes <torch/script.h> only (<torch/torch.h> costs
// ~17 s of compile time).
#include "backend/torch_backend.h"

#include <sys/stat.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/script.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"

namespace thaw {
namespace {

// Number of warm-up runs at load time. The profiling executor needs a couple
// of runs before it settles on an optimised plan.
constexpr int kWarmupRuns = 3;

// Intra-op thread count requested by SetTorchIntraOpThreads; 0 = not set.
std::atomic<int> g_intra_op_threads{0};

// Sends libtorch warnings (TORCH_WARN) to the log as one line each instead
// of glog's multi-line stderr output.
class LogWarningHandler final : public c10::WarningHandler {
 public:
  void process(const c10::SourceLocation& where, const std::string& msg, const bool verbatim) override {
    LogEvent(LogLevel::kWarning, "torch_warning",
             LogFields({{"message", LogValue(msg)},
                        {"source", LogValue(std::string(where.file) + ":" + std::to_string(where.line))}}));
  }
};

// Per-thread engine setup, done before a thread's first torch call:
// - at::set_num_threads sets the OpenMP thread count of the calling thread;
//   depending on the OpenMP runtime, threads created later (executor
//   threads) may start from the default, so each applies the count itself.
// - libtorch 1.13 keeps its warning handler per thread.
void PrepareThisThread() {
  thread_local int applied = 0;
  thread_local bool handler_set = false;
  if (!handler_set) {
    static LogWarningHandler handler;
    c10::Warning::set_warning_handler(&handler);
    handler_set = true;
  }
  int want = g_intra_op_threads.load(std::memory_order_relaxed);
  if (want > 0 && applied != want) {
    at::set_num_threads(want);
    applied = want;
  }
}

std::optional<at::ScalarType> TorchType(DataType type) {
  switch (type) {
    case DataType::kBool: return at::kBool;
    case DataType::kUint8: return at::kByte;
    case DataType::kInt8: return at::kChar;
    case DataType::kInt16: return at::kShort;
    case DataType::kInt32: return at::kInt;
    case DataType::kInt64: return at::kLong;
    case DataType::kFp16: return at::kHalf;
    case DataType::kFp32: return at::kFloat;
    case DataType::kFp64: return at::kDouble;
    case DataType::kUint16:
    case DataType::kUint32:
    case DataType::kUint64:
    case DataType::kBytes:
      return std::nullopt;
  }
  return std::nullopt;
}

// The engine's message without its C++ backtrace.
std::string EngineMessage(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

// True if every declared dim (other than -1) matches `actual`.
bool ShapeMatches(const Shape& declared, at::IntArrayRef actual) {
  if (declared.size() != actual.size()) return false;
  for (size_t i = 0; i < declared.size(); ++i)
    if (declared[i] >= 0 && declared[i] != actual[i]) return false;
  return true;
}

class TorchScriptBackend final : public Backend {
 public:
  TorchScriptBackend(ModelConfig config, torch::jit::Module module, std::vector<at::ScalarType> input_types,
                     std::vector<at::ScalarType> output_types)
      : config_(std::move(config)),
        module_(std::move(module)),
        input_types_(std::move(input_types)),
        output_types_(std::move(output_types)) {}

  Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) override;

 private:
  Status CollectOutputs(const c10::IValue& result, std::vector<at::Tensor>* tensors) const;

  const ModelConfig config_;
  // Module::forward is safe to call from several threads: the graph
  // executor guards its plan cache with a mutex and frozen weights are only
  // read.
  torch::jit::Module module_;
  const std::vector<at::ScalarType> input_types_;
  const std::vector<at::ScalarType> output_types_;
};

Status TorchScriptBackend::Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) {
  if (inputs.size() != config_.inputs.size())
    return InvalidArgument("model '" + config_.name + "' expects " + std::to_string(config_.inputs.size()) +
                           " input(s), got " + std::to_string(inputs.size()));
  PrepareThisThread();

  std::vector<c10::IValue> args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    const TensorSpec& spec = config_.inputs[i];
    if (in.datatype != spec.datatype)
      return InvalidArgument("input '" + spec.name + "': datatype " + std::string(DataTypeName(in.datatype)) +
                             ", model expects " + std::string(DataTypeName(spec.datatype)));
    // Checked here as well as by the caller: a graph after
    // optimize_for_inference can crash the process (not throw) on a shape
    // the model does not accept, e.g. [2,7] for a Linear(30, ...).
    if (!ShapeMatches(spec.shape, in.shape))
      return InvalidArgument("input '" + spec.name + "': shape " + ShapeToString(in.shape) +
                             " does not match the declared shape " + ShapeToString(spec.shape));
    int64_t count = in.element_count();
    if (count < 0) return InvalidArgument("input '" + spec.name + "': invalid shape " + ShapeToString(in.shape));
    size_t want = static_cast<size_t>(count) * DataTypeSize(in.datatype);
    if (in.data.size() != want)
      return InvalidArgument("input '" + spec.name + "': " + std::to_string(in.data.size()) + " bytes for shape " +
                             ShapeToString(in.shape) + ", expected " + std::to_string(want));
    // No copy: the tensor borrows the request's bytes for the duration of the
    // call. A model that modifies its input in place would write into the
    // request, which is discarded after the call anyway.
    args.emplace_back(at::from_blob(const_cast<char*>(in.data.data()), in.shape,
                                    at::TensorOptions().dtype(input_types_[i])));
  }

  try {
    c10::InferenceMode guard;
    c10::IValue result = module_.forward(std::move(args));
    std::vector<at::Tensor> tensors;
    THAW_RETURN_IF_ERROR(CollectOutputs(result, &tensors));

    outputs->clear();
    outputs->reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
      const TensorSpec& spec = config_.outputs[i];
      at::Tensor t = tensors[i];
      if (!ShapeMatches(spec.shape, t.sizes()))
        return InvalidArgument("model '" + config_.name + "' output " + std::to_string(i) + " ('" + spec.name +
                               "') has shape " + ShapeToString(t.sizes().vec()) + ", config declares " +
                               ShapeToString(spec.shape));
      t = t.to(at::kCPU, output_types_[i]).contiguous();
      Tensor out;
      out.name = spec.name;
      out.datatype = spec.datatype;
      out.shape = t.sizes().vec();
      out.data.assign(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
      outputs->push_back(std::move(out));
    }
    return Status::Ok();
  } catch (const std::exception& e) {
    // The traceback (with the host's source paths) is for the operator only.
    const std::string full = EngineMessage(e);
    LogEvent(LogLevel::kWarning, "model_error", LogFields({{"model", LogValue(config_.name)}, {"error", LogValue(full)}}));
    return Internal("model '" + config_.name + "' failed: " + ClientEngineMessage(full));
  }
}

Status TorchScriptBackend::CollectOutputs(const c10::IValue& result, std::vector<at::Tensor>* tensors) const {
  auto bad_type = [&](const std::string& what) {
    return InvalidArgument("model '" + config_.name + "' returned " + what +
                           "; expected a Tensor or a tuple/list of Tensors");
  };
  if (result.isTensor()) {
    tensors->push_back(result.toTensor());
  } else if (result.isTuple()) {
    for (const c10::IValue& v : result.toTupleRef().elements()) {
      if (!v.isTensor()) return bad_type("a tuple containing " + v.tagKind());
      tensors->push_back(v.toTensor());
    }
  } else if (result.isTensorList()) {
    for (const at::Tensor& t : result.toTensorVector()) tensors->push_back(t);
  } else if (result.isList()) {
    for (const c10::IValue& v : result.toListRef()) {
      if (!v.isTensor()) return bad_type("a list containing " + v.tagKind());
      tensors->push_back(v.toTensor());
    }
  } else {
    return bad_type(result.tagKind());
  }
  if (tensors->size() != config_.outputs.size())
    return InvalidArgument("model '" + config_.name + "' returned " + std::to_string(tensors->size()) +
                           " output(s), config declares " + std::to_string(config_.outputs.size()));
  return Status::Ok();
}

Status CheckSpecTypes(const ModelConfig& config, const std::vector<TensorSpec>& specs, const char* kind,
                      std::vector<at::ScalarType>* types) {
  for (const TensorSpec& spec : specs) {
    std::optional<at::ScalarType> t = TorchType(spec.datatype);
    if (!t)
      return InvalidArgument("model '" + config.name + "': " + kind + " '" + spec.name + "' has datatype " +
                             std::string(DataTypeName(spec.datatype)) +
                             ", which the torchscript backend does not support");
    types->push_back(*t);
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateTorchScriptBackend(const ModelConfig& config, const Clock& clock,
                                                            BackendLoadTimings* timings) {
  std::vector<at::ScalarType> input_types, output_types;
  THAW_RETURN_IF_ERROR(CheckSpecTypes(config, config.inputs, "input", &input_types));
  THAW_RETURN_IF_ERROR(CheckSpecTypes(config, config.outputs, "output", &output_types));

  const std::string path = config.ModelPath();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return NotFound("model '" + config.name + "': model file " + path + " not found");

  PrepareThisThread();
  const Micros load_start = clock.NowMicros();
  torch::jit::Module module;
  try {
    // Quantized models need the onednn engine on x86 (see engine notes);
    // harmless for float models.
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end())
      at::globalContext().setQEngine(at::QEngine::ONEDNN);
    module = torch::jit::load(path);
    module.eval();
  } catch (const std::exception& e) {
    const std::string full = EngineMessage(e);
    LogEvent(LogLevel::kWarning, "model_load_error",
             LogFields({{"model", LogValue(config.name)}, {"path", LogValue(path)}, {"error", LogValue(full)}}));
    return InvalidArgument("model '" + config.name + "': cannot load TorchScript file " + config.model_file + ": " +
                           ClientEngineMessage(full));
  }
  try {
    module = torch::jit::freeze(module);
  } catch (const std::exception& e) {
    LogEvent(LogLevel::kWarning, "torch_freeze_failed",
             LogFields({{"model", LogValue(config.name)}, {"error", LogValue(EngineMessage(e))}}));
  }
  try {
    module = torch::jit::optimize_for_inference(module);
  } catch (const std::exception& e) {
    LogEvent(LogLevel::kWarning, "torch_optimize_failed",
             LogFields({{"model", LogValue(config.name)}, {"error", LogValue(EngineMessage(e))}}));
  }
  const Micros load_end = clock.NowMicros();

  auto backend = std::make_unique<TorchScriptBackend>(config, std::move(module), std::move(input_types),
                                                      std::move(output_types));
  THAW_RETURN_IF_ERROR(WarmUp(*backend, config, kWarmupRuns));
  const Micros warm_end = clock.NowMicros();

  timings->model_load_us = load_end - load_start;
  timings->warmup_us = warm_end - load_end;
  return std::unique_ptr<Backend>(std::move(backend));
}

void SetTorchIntraOpThreads(int threads) {
  if (threads < 1) threads = 1;
  g_intra_op_threads.store(threads, std::memory_order_relaxed);
  // The inter-op pool is left alone: at::set_num_interop_threads throws if
  // called twice or after the pool started, and TorchScript models without
  // fork/wait never use it.
  at::set_num_threads(threads);
}

}  // namespace thaw
