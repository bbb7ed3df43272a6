// Backend: the one narrow interface between thaw and an inference engine.
// Nothing outside src/backend includes an engine header (torch, OpenCV,
// XGBoost); a new engine is a new file here plus one line in CreateBackend.
//
// Lifecycle: CreateBackend loads the model file named by the config, prepares
// it for inference (for TorchScript: freeze + optimize_for_inference) and
// warms it with inputs of the declared shape (-1 dims become 1), zeros for
// floating types and ones for integer/BOOL types (0 is usually a padding
// token id or a "masked" flag), so the first real request runs at warm
// speed. A warm-up failure (e.g. the model returns fewer outputs than the
// config declares) fails the load with kInvalidArgument.
//
// Threading: Run may be called from several threads at once (an instance with
// instance_concurrency > 1). Thread count for intra-op parallelism is set by
// SetIntraOpThreads, per process; call it before the first Run in a process
// (and again in a forked child: a parent must stay single-threaded or the
// child hangs in OpenMP).
//
// Errors: kNotFound (no model file), kInvalidArgument (model and config
// disagree, e.g. wrong input count or output count; unreadable model file;
// a datatype the engine lacks), kInternal (engine error while running, with
// the engine's message). Run also rejects inputs whose shape, datatype or
// byte size disagrees with the config (kInvalidArgument): an optimised
// TorchScript graph can crash the process on a wrong shape instead of
// throwing.
#pragma once

#include <memory>
#include <vector>

#include "base/clock.h"
#include "base/status.h"
#include "repo/model_config.h"
#include "tensor/tensor.h"

namespace thaw {

struct BackendLoadTimings {
  Micros model_load_us = 0;  // reading, freezing and optimising the model
  Micros warmup_us = 0;      // warm-up runs
};

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
                                                 BackendLoadTimings* timings);

// Runs `backend` `runs` times on warm-up inputs of the config's shapes (-1
// dims become 1, 2, 4, 1, ... in turn; floating inputs zeros, integer and
// BOOL inputs ones, since 0 is usually padding). Used at load, and by forked standby instances to
// fault in their pages and thread pool before they are given work.
Status WarmUp(Backend& backend, const ModelConfig& config, int runs);

// Sets the engine's intra-op thread count for this process.
void SetIntraOpThreads(int threads);

}  // namespace thaw
