// The files workers read: each model's run directory holds config.json as
// the runtime holds it (settings may change while serving) and a copy of the
// model file taken at load. Every file the runtime creates for workers is
// created here, atomically (written aside, then renamed), readable by the
// workers' group.
// Errors: kInternal for a file that cannot be written, kNotFound for a model
// file that cannot be copied. Thread safety: functions on their arguments.
#pragma once

#include <optional>
#include <string>

#include "base/status.h"
#include "repo/model_config.h"
#include "sandbox/sandbox.h"

namespace thaw {

// Writes `config` as config.json in `directory` and, if asked, a copy of the
// model file.
Status WriteRunFiles(const std::string& directory, const ModelConfig& config, bool snapshot_model_file);

// A fresh /tmp/thaw-run-XXXXXX, readable by `workers` (mode 0750, their group).
StatusOr<std::string> MakeRunDirectory(const std::optional<sandbox::WorkerUser>& workers);

// Whether workers started under `a` and under `b` differ: fields a worker
// reads (src/worker: the model, its tensors and warm-up, threads, how many
// requests it runs at once, its standby, its start path) and memory_mb (its
// size). Other settings (keep-alive, queue, scaling, batching, timeouts) are
// the runtime's alone and change without touching a worker.
bool WorkersDiffer(const ModelConfig& a, const ModelConfig& b);

}  // namespace thaw
