// Backend: the one narrow interface between thaw and an inference engine.
// Nothing outside src/backend includes an engine header (torch, OpenCV,
// XGBoost); a new engine is a new file here plus one line in CreateBackend.
// Engines: "torchscript" (torch_backend.h), "xgboost" (xgboost_backend.h)
// and "onnx" (onnx_backend.h, OpenCV DNN); the last two are optional at
// build time and each says so at load when it is missing.
//
// Lifecycle: CreateBackend loads the model file named by the config (or its
// prepared artifact), prepares it for inference (for TorchScript: freeze,
// then optimize_for_inference for a model with convolutions; other models get
// their linear weights transposed ahead, the part of it that speeds them up) and
// warms it with inputs of the declared shape (-1 dims become 1), zeros for
// floating types and ones for integer/BOOL types (0 is usually a padding
// token id or a "masked" flag), so the first real request runs at warm
// speed. A warm-up failure (e.g. the model returns fewer outputs than the
// config declares) fails the load with kInvalidArgument.
//
// Text: a BYTES input with a tokenizer in the config is turned into token
// ids here, in the model process, before the engine runs (text/
// word_tokenizer.h); the engine loads, prepares and warms up with
// ConfigAfterTokenizing's config, the ids in the input's place. The
// vocabulary is read from the config's directory at load (kNotFound if it
// cannot be read, kInvalidArgument if it lacks the special tokens).
//
// Threading: Run may be called from several threads at once (an instance with
// instance_concurrency > 1). Thread count for intra-op parallelism is set by
// SetIntraOpThreads, per process; call it before the first Run in a process
// (and again in a forked child: a parent must stay single-threaded or the
// child hangs in OpenMP).
//
// Errors: kNotFound (no model file), kInvalidArgument (model and config
// disagree, e.g. wrong input count or output count; unreadable model file;
// a datatype the engine lacks), kInternal (engine error while running: the
// model failed, HTTP 500, also when the input provoked it, since the config
// accepted the input). The kInternal message is short and safe to show a
// client (ClientEngineMessage): the engine's error line without the
// TorchScript traceback and with absolute paths cut to file names; the full
// message is logged (model_error, warning) for the operator. Run also rejects inputs whose shape, datatype or
// byte size disagrees with the config (kInvalidArgument): an optimised
// TorchScript graph can crash the process on a wrong shape instead of
// throwing.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "repo/model_config.h"
#include "tensor/tensor.h"

namespace thaw {

struct BackendLoadTimings {
  Micros model_load_us = 0;  // reading, freezing and optimising the model
  Micros warmup_us = 0;      // warm-up runs
  bool used_prepared = false;  // loaded from the prepared artifact
  // The load ran the engine's inference optimisation (not needed when the
  // prepared artifact was stored optimised).
  bool optimized_at_load = false;
};

// How to load. The defaults suit a process that will fork many instances (a
// template): the most warm-up. An instance that loads for itself after fork
// wants the first request sooner.
struct BackendLoadOptions {
  // A prepared artifact of this model (PrepareArtifact's bytes in a file):
  // loaded instead of the model file when it loads, skipping the freeze.
  // Empty or unloadable: the model file. Never trusted beyond its own model:
  // it is keyed by the model file's content.
  std::string prepared_path;
  int warmup_runs = 3;
  // Warm-up runs when the prepared artifact loaded (its preparation ran the
  // model once on the config's inputs); -1 = warmup_runs.
  int prepared_warmup_runs = -1;
  // TorchScript: the profiling executor specialises a graph over its first
  // calls (slow ones); off, the first call runs the optimised graph as is
  // (the same warm speed here, engine notes).
  bool profiling_executor = true;
};

// The model prepared once for fast loads, as bytes to store: for TorchScript
// the frozen module in the flatbuffer format (it loads several times faster
// than the zip format of a model file: no unpickling, no recompiling), marked
// with whether its instances optimise it after loading (a CNN's do: its
// optimised weights are mkldnn tensors, which do not serialise; other models
// are stored with their one useful rewrite done). It is run once on
// warm-up inputs, as an instance will run it (a model that disagrees with its
// config fails here, at deploy). Empty: the backend has none (its instances
// load the model file). Errors as CreateBackend's. Bump
// kPreparedArtifactFormat (repo/model_config.h) when these bytes change
// meaning.
StatusOr<std::string> PrepareArtifact(const ModelConfig& config);

class Backend {
 public:
  virtual ~Backend() = default;

  // Runs one execution. `inputs` are in the config's input order and have
  // already been checked against the config (names, datatypes, shapes).
  // Fills `outputs` with the config's outputs, in config order, each named
  // as in the config and with the datatype the config declares.
  virtual Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) = 0;
};

StatusOr<std::unique_ptr<Backend>> CreateBackend(const ModelConfig& config, const Clock& clock,
                                                 BackendLoadTimings* timings, const BackendLoadOptions& options = {});

// Runs `backend` `runs` times on warm-up inputs of the config's shapes (-1
// dims become 1, 2, 4, 1, ... in turn; floating inputs zeros, integer and
// BOOL inputs ones, since 0 is usually padding). Used at load, and by forked standby instances to
// fault in their pages and thread pool before they are given work.
Status WarmUp(Backend& backend, const ModelConfig& config, int runs);

// Checks `inputs` against the config's: their count, then each one's
// datatype, shape (ShapeMatches) and byte size; kInvalidArgument naming the
// input. Every engine's Run calls it first (see Backend::Run). Pure.
Status CheckInputs(const ModelConfig& config, const std::vector<Tensor>& inputs);

// For test binaries only (e.g. the isolation probe, probe_backend.h): makes
// CreateBackend call `factory` for every model of this process instead of an
// engine; nullptr restores the engines. Call before the first CreateBackend.
using BackendFactory = StatusOr<std::unique_ptr<Backend>> (*)(const ModelConfig& config);
void SetBackendFactoryForTesting(BackendFactory factory);
// An engine error as a client may see it: for a TorchScript traceback only the
// error at its end ("RuntimeError: The size of tensor a (3) must match ..."),
// "builtins." dropped; otherwise the message itself. Absolute paths in it
// (host source files, the run directory) become their file names. At most
// 1000 bytes. Pure; no engine needed.
std::string ClientEngineMessage(std::string_view engine_message);

// Runs each engine's lazy one-time setup (its compiler, graph passes and
// executor) on a tiny built-in model, so a process forked afterwards that
// loads a model does not pay it (the zygote calls this before it forks).
// Single-threaded when SetIntraOpThreads(1) came first.
Status WarmEngine();

// What `thaw init` learns of a TorchScript file (DescribeTorchScriptFile).
// `problem` empty: it loads here, `inputs` are forward's arguments in order
// and `outputs` what one call on the inputs' shapes returned (output__0,
// output__1, ... in the order of its tuple or list; the backend maps
// outputs by position). Otherwise nothing else but the fields it names:
//   "missing"          no readable file (engine_message says why)
//   "newer_format"     the zip's version record (file_version) is newer than
//                      this libtorch reads (max_file_version)
//   "not_torchscript"  a torch.save archive (data.pkl, no code) or not a zip
//   "load"             torch::jit::load failed otherwise (engine_message)
//   "no_shape"         input `input` has no shape to be read from the graph
//   "run"              the example call failed (engine_message)
struct ModelFileDescription {
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  std::string problem;
  std::string engine_message;
  int64_t file_version = 0;
  int64_t max_file_version = 0;
  std::string input;
};

// Loads `path` as TorchScript and describes it. `example_inputs` (name,
// datatype, shape with no -1) stand for forward's arguments in order; empty:
// each input's datatype is FP32 and its shape is read from the frozen graph
// where the input reaches a linear layer first, directly or through
// element-wise ops ([-1, in_features]); other inputs are "no_shape". A dim 0 of the example equal in every input and
// output becomes -1 (the batch). Never throws.
ModelFileDescription DescribeTorchScriptFile(const std::string& path, const std::vector<TensorSpec>& example_inputs);

// Sets the engine's intra-op thread count for this process.
void SetIntraOpThreads(int threads);
// The count SetIntraOpThreads last set in this process (at least 1); 1
// before any call, so a template or zygote stays single-threaded.
int IntraOpThreads();

}  // namespace thaw
