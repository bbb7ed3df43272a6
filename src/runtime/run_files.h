// The files workers read: each model's run directory holds config.json as
// the runtime holds it (settings may change while serving) and a copy of the
// model file taken at load. Every file the runtime creates for workers is
// created here, atomically (written aside, then renamed), readable by the
// workers' group.
// Errors: kInternal for a file that cannot be written, kNotFound for a model
// file that cannot be copied. Thread safety: functions on their arguments.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "base/status.h"
#include "repo/model_config.h"
#include "sandbox/sandbox.h"

namespace thaw {

// SHA-256 of a file's content, hex; remembered per (device, inode, size,
// mtime) so a file (or hard links to it) is read once.
class ContentKeys {
 public:
  StatusOr<std::string> Of(const std::string& path);

 private:
  std::map<std::string, std::string> known_;
};

// Snapshots of model files, one per content: a model file is copied into
// `store_dir` once per content (its SHA-256) and hard-linked from there into
// run directories, so deploying N models that share a file (copies under
// other names, a package store's hard links) copies it once, and a snapshot
// is still the runtime's own: editing the repository file changes nothing
// served until a load/reload. Not thread-safe.
class ModelSnapshots {
 public:
  explicit ModelSnapshots(std::string store_dir) : store_dir_(std::move(store_dir)) {}
  // Places the snapshot of `source` at `target` (atomically).
  Status Place(const std::string& source, const std::string& target);

 private:
  ContentKeys keys_;
  std::string store_dir_;
};

// Places the stored file `stored` at `target`, read-only and atomically: a
// hard link where they share a file system, else a copy. Processes that
// opened the old `target` keep it.
Status LinkStoredFile(const std::string& stored, const std::string& target);

// Writes `config` as config.json in `directory` and, if asked, a snapshot of
// the model file and of its inputs' tokenizer vocabularies: through
// `snapshots` when given, else a plain copy.
Status WriteRunFiles(const std::string& directory, const ModelConfig& config, bool snapshot_model_file,
                     ModelSnapshots* snapshots = nullptr);

// A fresh /tmp/thaw-run-XXXXXX, readable by `workers` (mode 0750, their group).
StatusOr<std::string> MakeRunDirectory(const std::optional<sandbox::WorkerUser>& workers);


}  // namespace thaw
