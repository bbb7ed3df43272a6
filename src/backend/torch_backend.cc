// TorchScript backend. The only translation unit in thaw that includes a
// torch header; it includes <torch/script.h> only (<torch/torch.h> costs
// ~17 s of compile time).
#include "backend/torch_backend.h"

#include <sys/stat.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/passes/frozen_linear_transpose.h>
#include <torch/csrc/jit/serialization/flatbuffer_serializer_jit.h>
#include <torch/script.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/versions.h>

#include <algorithm>
#include <atomic>
#include <sstream>
#include <cstring>
#include <exception>
#include <fstream>
#include <cerrno>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "base/log.h"

namespace thaw {
namespace {

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

bool ShapeMatches(const Shape& declared, at::IntArrayRef actual) {
  return thaw::ShapeMatches(declared, std::span<const int64_t>(actual.data(), actual.size()));
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
  // Checked here as well as by the caller: a graph after
  // optimize_for_inference can crash the process (not throw) on a shape the
  // model does not accept, e.g. [2,7] for a Linear(30, ...).
  THAW_RETURN_IF_ERROR(CheckInputs(config_, inputs));
  PrepareThisThread();

  std::vector<c10::IValue> args;
  args.reserve(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
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


// In a prepared artifact: "0" when its instances skip optimize_for_inference
// (a model without convolutions, stored with the one rewrite of it that
// speeds such models up, linear weights transposed ahead: the full pass
// costs a load ~12 ms), "1" when they run it. Absent (a model file): run it.
constexpr char kOptimizeAtLoad[] = "thaw_optimize_at_load";

// Loads `path` (a zip archive or a flatbuffer) as a TorchScript module in
// eval mode; errors name the model. `optimize` (may be null) tells whether
// its instances run optimize_for_inference (kOptimizeAtLoad).
StatusOr<torch::jit::Module> LoadModule(const ModelConfig& config, const std::string& path, const std::string& shown_name,
                                        bool* optimize = nullptr) {
  try {
    // Quantized models need the onednn engine on x86 (see engine notes);
    // harmless for float models.
    const auto& engines = at::globalContext().supportedQEngines();
    if (std::find(engines.begin(), engines.end(), at::QEngine::ONEDNN) != engines.end())
      at::globalContext().setQEngine(at::QEngine::ONEDNN);
    torch::jit::ExtraFilesMap extra{{kOptimizeAtLoad, ""}};
    torch::jit::Module module = torch::jit::load(path, c10::nullopt, extra);
    module.eval();
    if (optimize != nullptr) *optimize = extra[kOptimizeAtLoad] != "0";
    return module;
  } catch (const std::exception& e) {
    const std::string full = EngineMessage(e);
    LogEvent(LogLevel::kWarning, "model_load_error",
             LogFields({{"model", LogValue(config.name)}, {"path", LogValue(path)}, {"error", LogValue(full)}}));
    return InvalidArgument("model '" + config.name + "': cannot load TorchScript file " + shown_name + ": " +
                           ClientEngineMessage(full));
  }
}

torch::jit::Module Freeze(const ModelConfig& config, torch::jit::Module module) {
  try {
    return torch::jit::freeze(module);
  } catch (const std::exception& e) {
    LogEvent(LogLevel::kWarning, "torch_freeze_failed",
             LogFields({{"model", LogValue(config.name)}, {"error", LogValue(EngineMessage(e))}}));
    return module;
  }
}

// `module` in the flatbuffer format, which loads several times faster than
// the zip format (no unpickling, no recompiling its code), with `extra` files.
std::string SaveFlatbuffer(const torch::jit::Module& module, const torch::jit::ExtraFilesMap& extra = {}) {
  torch::jit::DetachedBuffer::UniqueDetachedBuffer saved = torch::jit::save_jit_module_to_bytes(module, extra);
  return std::string(static_cast<const char*>(saved->data()), saved->size());
}

torch::jit::Module LoadFlatbuffer(const std::string& bytes) {
  std::shared_ptr<char> data(static_cast<char*>(std::malloc(bytes.size())), std::free);
  if (!data) throw std::bad_alloc();
  std::memcpy(data.get(), bytes.data(), bytes.size());
  torch::jit::ExtraFilesMap extra;
  torch::jit::Module module = torch::jit::parse_and_initialize_jit_module(std::move(data), bytes.size(), extra);
  module.eval();
  return module;
}

// optimize_for_inference in place; on failure the module stays as it was (logged).
void OptimizeForInference(const ModelConfig& config, torch::jit::Module& module) {
  try {
    module = torch::jit::optimize_for_inference(module);
  } catch (const std::exception& e) {
    LogEvent(LogLevel::kWarning, "torch_optimize_failed",
             LogFields({{"model", LogValue(config.name)}, {"error", LogValue(EngineMessage(e))}}));
  }
}

// True if `module`'s forward graph has a convolution (at any depth), the
// operators optimize_for_inference rewrites for speed on CPU (mkldnn
// layouts, conv-add-relu fusion).
bool HasConvolution(torch::jit::Module& module) {
  std::vector<torch::jit::Block*> blocks{module.get_method("forward").graph()->block()};
  while (!blocks.empty()) {
    torch::jit::Block* block = blocks.back();
    blocks.pop_back();
    for (torch::jit::Node* node : block->nodes()) {
      if (std::string_view(node->kind().toQualString()).find("conv") != std::string_view::npos) return true;
      for (torch::jit::Block* inner : node->blocks()) blocks.push_back(inner);
    }
  }
  return false;
}

// Rewrites a frozen module as far as it can be saved and returns whether it
// still needs optimize_for_inference after loading (kOptimizeAtLoad): a CNN
// does (its optimised weights are mkldnn tensors, which do not serialise).
// For a model without convolutions, what optimize_for_inference gains it
// (measured here, medians of 300 warm calls: fraud at 32 rows 14.8 -> 11.1
// us, textenc 4.2 -> 3.7 ms) comes from linear weights transposed ahead,
// done here; the rest does not speed such a model up. Throws on a module
// without a forward graph.
bool RewriteForLoad(torch::jit::Module& module) {
  if (HasConvolution(module)) return true;
  std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph();
  torch::jit::FrozenLinearTranspose(graph);
  return false;
}

}  // namespace

Status WarmTorchScriptEngine() {
  // A small module exercising what loading a prepared model uses: the
  // deserializers, the TorchScript compiler, freeze, optimize_for_inference
  // (conv folding, the mkldnn rewrite) and the graph executor.
  try {
    PrepareThisThread();
    torch::jit::Module module("thaw_engine_warmup");
    module.register_parameter("w", at::full({8, 8}, 0.01), false);
    module.register_parameter("k", at::full({4, 1, 3, 3}, 0.01), false);
    module.register_parameter("g", at::ones({4}), false);
    module.register_parameter("b", at::zeros({4}), false);
    module.register_parameter("e", at::full({16, 8}, 0.01), false);
    module.define(R"(
def forward(self, x, image, tokens):
    y = torch.relu(torch.matmul(x, self.w))
    z = torch.conv2d(image, self.k, None, [1, 1], [1, 1])
    z = torch.batch_norm(z, self.g, self.b, self.b, self.g, False, 0.1, 1e-5, False)
    t = torch.embedding(self.e, tokens)
    t = torch.layer_norm(t, [8])
    return torch.softmax(y, 1), torch.adaptive_avg_pool2d(torch.relu(z), [1, 1]), torch.tanh(t)
)");
    module.eval();
    torch::jit::Module frozen = torch::jit::freeze(module);
    std::stringstream saved;  // both formats: model files are zip archives, prepared artifacts flatbuffers
    frozen.save(saved);
    torch::jit::load(saved);
    torch::jit::Module reloaded = LoadFlatbuffer(SaveFlatbuffer(frozen));
    torch::jit::Module optimized = torch::jit::optimize_for_inference(reloaded);
    c10::InferenceMode guard;
    for (int i = 0; i < 2; ++i)
      optimized.forward({at::ones({2, 8}), at::ones({1, 1, 8, 8}), at::ones({1, 4}, at::kLong)});
    return Status::Ok();
  } catch (const std::exception& e) {
    return Internal("engine warm-up failed: " + EngineMessage(e));
  }
}

StatusOr<std::string> PrepareTorchScriptArtifact(const ModelConfig& config) {
  const std::string path = config.ModelPath();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return NotFound("model '" + config.name + "': model file " + path + " not found");
  std::vector<at::ScalarType> input_types, output_types;
  THAW_RETURN_IF_ERROR(CheckSpecTypes(config, config.inputs, "input", &input_types));
  THAW_RETURN_IF_ERROR(CheckSpecTypes(config, config.outputs, "output", &output_types));
  PrepareThisThread();
  StatusOr<torch::jit::Module> module = LoadModule(config, path, config.model_file);
  if (!module.ok()) return module.status();
  torch::jit::Module frozen = Freeze(config, std::move(module).value());
  std::string artifact;
  torch::jit::Module instance;
  bool optimize = false;
  try {
    optimize = RewriteForLoad(frozen);
    artifact = SaveFlatbuffer(frozen, {{kOptimizeAtLoad, optimize ? "1" : "0"}});
    instance = LoadFlatbuffer(artifact);
  } catch (const std::exception& e) {
    return InvalidArgument("model '" + config.name + "': cannot save its frozen module: " +
                           ClientEngineMessage(EngineMessage(e)));
  }
  if (optimize) OptimizeForInference(config, instance);
  // Proven once, here: optimised as an instance will, it runs on the
  // config's inputs and gives its outputs, so an instance that loads the
  // artifact may skip its own warm-up run (BackendLoadOptions).
  TorchScriptBackend backend(config, std::move(instance), std::move(input_types), std::move(output_types));
  THAW_RETURN_IF_ERROR(WarmUp(backend, config, 1));
  return artifact;
}

StatusOr<std::unique_ptr<Backend>> CreateTorchScriptBackend(const ModelConfig& config, const Clock& clock,
                                                            BackendLoadTimings* timings,
                                                            const BackendLoadOptions& options) {
  std::vector<at::ScalarType> input_types, output_types;
  THAW_RETURN_IF_ERROR(CheckSpecTypes(config, config.inputs, "input", &input_types));
  THAW_RETURN_IF_ERROR(CheckSpecTypes(config, config.outputs, "output", &output_types));

  const std::string path = config.ModelPath();
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return NotFound("model '" + config.name + "': model file " + path + " not found");

  PrepareThisThread();
  // Process-wide: this process loads one model (or, a template, forks
  // instances that inherit the setting).
  torch::jit::getProfilingMode() = options.profiling_executor;
  const Micros load_start = clock.NowMicros();
  torch::jit::Module module;
  bool prepared = false;
  bool optimize = true;
  if (!options.prepared_path.empty() && ::stat(options.prepared_path.c_str(), &st) == 0) {
    StatusOr<torch::jit::Module> loaded = LoadModule(config, options.prepared_path, "(prepared)", &optimize);
    if (loaded.ok()) {
      module = std::move(loaded).value();
      prepared = true;
    }
  }
  if (!prepared) {
    StatusOr<torch::jit::Module> loaded = LoadModule(config, path, config.model_file);
    if (!loaded.ok()) return loaded.status();
    module = Freeze(config, std::move(loaded).value());
    try {
      optimize = RewriteForLoad(module);  // as its preparation does
    } catch (const std::exception& e) {
      optimize = true;  // no forward graph to read: let the optimiser report it
    }
  }
  if (optimize) OptimizeForInference(config, module);
  const Micros load_end = clock.NowMicros();

  auto backend = std::make_unique<TorchScriptBackend>(config, std::move(module), std::move(input_types),
                                                      std::move(output_types));
  THAW_RETURN_IF_ERROR(
      WarmUp(*backend, config, prepared && options.prepared_warmup_runs >= 0 ? options.prepared_warmup_runs : options.warmup_runs));
  const Micros warm_end = clock.NowMicros();

  timings->model_load_us = load_end - load_start;
  timings->warmup_us = warm_end - load_end;
  timings->used_prepared = prepared;
  timings->optimized_at_load = optimize;
  return std::unique_ptr<Backend>(std::move(backend));
}

namespace {

std::optional<DataType> ThawType(at::ScalarType type) {
  for (DataType t : {DataType::kBool, DataType::kUint8, DataType::kInt8, DataType::kInt16, DataType::kInt32,
                     DataType::kInt64, DataType::kFp16, DataType::kFp32, DataType::kFp64})
    if (TorchType(t) == type) return t;
  return std::nullopt;
}

// The first number after `marker` in `text`; 0 if none.
int64_t NumberAfter(const std::string& text, std::string_view marker) {
  size_t at = text.find(marker);
  if (at == std::string::npos) return 0;
  at += marker.size();
  int64_t n = 0;
  while (at < text.size() && text[at] >= '0' && text[at] <= '9') n = n * 10 + (text[at++] - '0');
  return n;
}

// [-1, in_features] when `input` reaches a linear layer with a constant
// weight (a frozen MLP's first layer) first, directly or through
// element-wise ops that keep its shape (a standardisation, an activation);
// nullopt otherwise. The example call that follows checks the guess.
std::optional<Shape> ShapeFromFirstLinear(torch::jit::Value* input, int depth = 0) {
  static const std::set<std::string> kElementwise = {"aten::sub", "aten::div",  "aten::mul",     "aten::add",
                                                     "aten::relu", "aten::tanh", "aten::sigmoid", "aten::dropout",
                                                     "aten::neg", "aten::clamp"};
  if (depth > 8) return std::nullopt;
  for (const torch::jit::Use& use : input->uses()) {
    torch::jit::Node* node = use.user;
    if (use.offset != 0) continue;
    const std::string kind = node->kind().toQualString();
    if (kind == "aten::linear") {
      std::optional<c10::IValue> weight = torch::jit::toIValue(node->input(1));
      if (weight && weight->isTensor() && weight->toTensor().dim() == 2) return Shape{-1, weight->toTensor().size(1)};
    } else if (kElementwise.count(kind) != 0 && node->outputs().size() == 1) {
      bool keeps_shape = true;  // other tensor operands at most 1-d: broadcasting keeps the input's shape
      for (size_t i = 1; i < node->inputs().size(); ++i) {
        std::optional<c10::IValue> operand = torch::jit::toIValue(node->input(i));
        if (!operand || (operand->isTensor() && operand->toTensor().dim() > 1)) keeps_shape = false;
      }
      if (keeps_shape)
        if (std::optional<Shape> shape = ShapeFromFirstLinear(node->output(), depth + 1)) return shape;
    }
  }
  return std::nullopt;
}

}  // namespace

ModelFileDescription DescribeTorchScriptFile(const std::string& path, const std::vector<TensorSpec>& example_inputs) {
  ModelFileDescription d;
  auto fail = [&](const char* problem, std::string message) {
    d.inputs.clear();
    d.outputs.clear();
    d.problem = problem;
    d.engine_message = std::move(message);
    return d;
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return fail("missing", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail("missing", "not a regular file");
  PrepareThisThread();
  // What kind of file this is, before torch::jit::load's less telling errors.
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    if (!reader.hasRecord("constants.pkl") && !reader.hasRecord("bytecode.pkl") && reader.hasRecord("data.pkl"))
      return fail("not_torchscript", "a torch.save archive: data.pkl without TorchScript code");
  } catch (const std::exception& e) {
    const std::string message = EngineMessage(e);
    if (message.find("Attempted to read a PyTorch file with version") != std::string::npos) {
      fail("newer_format", ClientEngineMessage(message));
      d.file_version = NumberAfter(message, "with version ");
      d.max_file_version = static_cast<int64_t>(caffe2::serialize::kMaxSupportedFileFormatVersion);
      return d;
    }
    // Not a zip archive: a flatbuffer module loads below; anything else
    // (a legacy torch.save pickle) is no TorchScript.
    std::ifstream file(path, std::ios::binary);
    char magic[8] = {};
    file.read(magic, sizeof magic);
    if (std::string_view(magic + 4, 4) != "PTMF")
      return fail("not_torchscript", "not a zip archive (" + ClientEngineMessage(message) + ")");
  }
  torch::jit::Module module;
  try {
    module = torch::jit::load(path);
    module.eval();
  } catch (const std::exception& e) {
    return fail("load", ClientEngineMessage(EngineMessage(e)));
  }
  try {
    torch::jit::Module frozen = torch::jit::freeze(module);
    std::shared_ptr<torch::jit::Graph> graph = frozen.get_method("forward").graph();
    const c10::FunctionSchema& schema = module.get_method("forward").function().getSchema();
    for (size_t i = 1; i < schema.arguments().size(); ++i) {  // 0 is self
      const c10::Argument& argument = schema.arguments()[i];
      TensorSpec spec;
      spec.name = argument.name();
      if (!argument.type()->isSubtypeOf(*c10::TensorType::get())) {
        d.input = spec.name;
        return fail("no_shape", "forward's argument '" + spec.name + "' is a " + argument.type()->str() +
                                     ", not a Tensor");
      }
      if (!example_inputs.empty()) {
        if (example_inputs.size() != schema.arguments().size() - 1)
          return fail("run", "the example has " + std::to_string(example_inputs.size()) +
                                 " input(s), forward takes " + std::to_string(schema.arguments().size() - 1));
        spec.datatype = example_inputs[i - 1].datatype;
        spec.shape = example_inputs[i - 1].shape;
      } else {
        std::optional<Shape> shape =
            i < graph->inputs().size() ? ShapeFromFirstLinear(graph->inputs()[i]) : std::nullopt;
        if (!shape) {
          d.input = spec.name;
          return fail("no_shape", "");
        }
        spec.shape = *shape;
      }
      d.inputs.push_back(std::move(spec));
    }
    // One call; -1 dims (the batch) as 2 rows.
    constexpr int64_t kRows = 2;
    std::vector<c10::IValue> args;
    for (const TensorSpec& spec : d.inputs) {
      std::vector<int64_t> dims = spec.shape;
      for (int64_t& dim : dims)
        if (dim < 0) dim = kRows;
      std::optional<at::ScalarType> type = TorchType(spec.datatype);
      if (!type) return fail("run", "input '" + spec.name + "': datatype " + std::string(DataTypeName(spec.datatype)) +
                                        " is not one the torchscript backend takes");
      args.emplace_back(at::isIntegralType(*type, true) ? at::ones(dims, *type) : at::zeros(dims, *type));
    }
    c10::InferenceMode guard;
    c10::IValue result = module.forward(std::move(args));
    std::vector<at::Tensor> tensors;
    if (result.isTensor()) {
      tensors.push_back(result.toTensor());
    } else if (result.isTuple()) {
      for (const c10::IValue& v : result.toTupleRef().elements()) {
        if (!v.isTensor()) return fail("run", "forward returned a tuple containing " + v.tagKind() + "; thaw serves Tensors");
        tensors.push_back(v.toTensor());
      }
    } else if (result.isTensorList()) {
      tensors = result.toTensorVector();
    } else {
      return fail("run", "forward returned " + result.tagKind() + "; thaw serves a Tensor or a tuple/list of Tensors");
    }
    // The batch dim: 0 of every input, and of every output that has the same size.
    std::optional<int64_t> batch;
    bool batched = !d.inputs.empty();
    for (const TensorSpec& spec : d.inputs) {
      if (spec.shape.empty()) { batched = false; break; }
      const int64_t rows = spec.shape[0] < 0 ? kRows : spec.shape[0];
      if (batch && *batch != rows) batched = false;
      batch = rows;
    }
    for (size_t i = 0; i < tensors.size(); ++i) {
      std::optional<DataType> type = ThawType(tensors[i].scalar_type());
      if (!type)
        return fail("run", "output " + std::to_string(i) + " has dtype " +
                               std::string(c10::toString(tensors[i].scalar_type())) + ", which thaw cannot return");
      TensorSpec spec;
      spec.name = "output__" + std::to_string(i);
      spec.datatype = *type;
      spec.shape = tensors[i].sizes().vec();
      if (spec.shape.empty() || spec.shape[0] != batch.value_or(-1)) batched = false;
      d.outputs.push_back(std::move(spec));
    }
    if (batched) {
      for (TensorSpec& spec : d.inputs) spec.shape[0] = -1;
      for (TensorSpec& spec : d.outputs) spec.shape[0] = -1;
    }
    return d;
  } catch (const std::exception& e) {
    return fail("run", ClientEngineMessage(EngineMessage(e)));
  }
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
