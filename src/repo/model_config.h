// Model repository: a directory with one sub-directory per model. Each model
// directory holds the model file and a `config.json` (format in README.md,
// "Model repository"). The directory name is the model name.
//
// Loading validates every field once; an error names the file and the field.
// A model that fails validation is reported and skipped; it never stops the
// others from loading (ScanRepository).
// Thread safety: value types and pure functions; no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tensor/tensor.h"

namespace thaw {

class JsonWriter;  // base/json_writer.h

// An image input's layout, as Triton's model configuration names it (its
// image clients read it); none for other tensors.
enum class TensorFormat : uint8_t { kNone, kNchw, kNhwc };
std::string_view TensorFormatName(TensorFormat format);  // NONE, NCHW, NHWC
std::optional<TensorFormat> ParseTensorFormat(std::string_view name);

// A BYTES input that the model process turns into token ids before the
// model runs ("tokenizer" in an input of config.json; src/text). Each row of
// the input is one UTF-8 text; the model gets INT64 [rows, tokens] as its
// input `feeds`, rows padded to the longest with `pad_token`.
struct TokenizerSpec {
  // "words": lower-cased (Unicode lower-casing, as Python's str.lower), runs
  // of ASCII letters and digits are the words, everything else separates.
  std::string kind = "words";
  std::string vocab_file;     // in the model directory; line i is token id i
  std::string feeds;          // the model's input name for the ids
  std::string begin_token;    // put first in every row; empty = none
  std::string unknown_token;  // for words not in the vocabulary
  std::string pad_token;      // pads rows to the longest in the execution
  int64_t max_tokens = 128;   // per row, begin token included; 1..65536

  bool operator==(const TokenizerSpec&) const = default;
};

struct TensorSpec {
  std::string name;
  DataType datatype = DataType::kFp32;
  Shape shape;  // -1 marks a variable dimension (usually the batch, dim 0)
  // Inputs only: NCHW or NHWC for an image (3 dims after the batch dim);
  // informational, reported in the Triton model configuration.
  TensorFormat format = TensorFormat::kNone;
  // Outputs only: a file in the model directory with one class name per
  // line ("labels" in config.json; Triton's label_filename), and its lines,
  // read by ScanRepository / LoadOutputLabels (the server's concern: workers
  // load configs without them). Used by classification.
  std::string labels_file;
  std::vector<std::string> labels;
  // Inputs only: a BYTES input tokenized in the model process.
  std::optional<TokenizerSpec> tokenizer;
};

// How a new instance of a model comes to life.
enum class StartPath {
  kExec,      // a fresh thaw-worker process: runtime init + model load + warm-up
  kZygote,    // fork of a process with the engines initialised; loads the model after fork
  kTemplate,  // fork of a per-model process that has loaded and warmed the model
};

std::string_view StartPathName(StartPath path);
std::optional<StartPath> ParseStartPath(std::string_view name);

// What an instance started from, the cheapest first: a template's warmed
// standby, a ready template, the zygote with the model's prepared artifact
// (frozen once, cached on disk by content), the zygote with the model file
// alone (load and freeze it), or a fresh process. Each has its own start
// time (measured in the cold-start breakdown, profiled for the simulator).
// In a model's run directory (the runtime's copy that workers read), its
// prepared artifact, when one has been made (backend.h, PrepareArtifact).
inline constexpr char kPreparedArtifactFile[] = "thaw-prepared.pt";
// Every field config.json may have (others are an error); README's config
// table lists each of them.
extern const std::string_view kModelConfigFields[29];
// The fields that define the model itself: ApplySettings refuses them, and
// settings/setting_changes.h classes exactly these as kModelIdentity.
inline constexpr std::string_view kModelIdentityFields[] = {"backend", "model_file", "platform", "inputs", "outputs"};
// The kind of bytes PrepareArtifact makes; part of an artifact's name in the
// store, so a store never hands out an artifact of an older kind.
inline constexpr int kPreparedArtifactFormat = 3;  // 3: flatbuffer, linear weights transposed unless a CNN

enum class StartLevel : uint8_t { kExec, kZygote, kPrepared, kTemplate, kStandby };
std::string_view StartLevelName(StartLevel level);  // exec, zygote, prepared, template, standby

// Request batching (src/policy/batching.h): none, a dynamic batcher with
// fixed limits, or batch size and wait chosen online to meet an SLO.
enum class Batching { kOff, kFixed, kAdaptive };
std::string_view BatchingName(Batching mode);  // off, fixed, adaptive
std::optional<Batching> ParseBatching(std::string_view name);

// Keep-alive policy (src/policy/keep_alive.h): a fixed idle time, the hybrid
// histogram policy, or windows planned from the model's idle times.
enum class KeepAlive { kFixed, kHistogram, kAdaptive };
std::string_view KeepAliveName(KeepAlive policy);  // fixed, histogram, adaptive
std::optional<KeepAlive> ParseKeepAlive(std::string_view name);

// A weekly window (UTC) that raises a model's provisioned minimum, e.g.
// weekdays 08:00-18:00: 4 instances. An end before the start crosses midnight.
struct ScheduleWindow {
  uint8_t days_mask = 0x7f;  // bit 0 Monday .. bit 6 Sunday
  int start_minute = 0;      // 0..1439
  int end_minute = 1440;     // 1..1440, != start_minute
  int min_instances = 0;     // 0..max_concurrency
};

struct ModelConfig {
  std::string name;       // the directory name
  std::string directory;  // absolute path of the model directory

  std::string backend = "torchscript";  // the engine: "torchscript", "xgboost" or "onnx" (src/backend)
  std::string model_file = "model.pt";  // relative to `directory`
  // Reported in v2 metadata; when the file has none, the backend's
  // ("pytorch_torchscript", "xgboost", "onnx_opencv").
  std::string platform = "pytorch_torchscript";
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;

  // Serverless settings. Defaults follow AWS Lambda where it has one.
  int64_t memory_mb = 1024;      // memory an instance is sized and billed for; 128..10240
  int64_t timeout_ms = 30000;    // per-request deadline; 1..900000
  // Longest a start may take (an instance on any path, or a template or
  // zygote) until it reports ready; an overrun start is killed and replaced
  // and its waiting requests fail with 503. 1..3600000.
  int64_t start_timeout_ms = 60000;
  int max_concurrency = 4;       // cap on instances of this model; >= 1
  int instance_concurrency = 1;  // requests one instance runs at once; >= 1
  int min_instances = 0;         // provisioned instances kept warm; 0..max_concurrency
  std::vector<ScheduleWindow> provisioned_schedule;  // windows raising min_instances; at most 64
  int64_t keep_alive_s = 600;    // idle time before an instance is stopped; >= 0
  int max_queue = 128;           // requests waiting for an instance; >= 0
  int threads = 1;               // intra-op threads per instance; 1..64
  StartPath start_path = StartPath::kTemplate;
  // Template path: keep one child forked and warmed ahead of demand, so a
  // cold start only hands it a socket. Costs the child's private pages.
  bool template_standby = true;
  // Template path: how long after the model was last wanted (a request, a
  // start other than a keep-alive pre-warm, a warm-up) its template and standby are held; then they stop and
  // instances start from the zygote until the model is called again
  // (policy/template_cache.h). A provisioned floor holds them. 0..7 days.
  int64_t template_keep_alive_s = 300;

  // Keep-alive policy: "adaptive" (windows planned from the model's idle
  // times, never worse than "fixed" keep_alive_s on the history), "fixed"
  // (keep_alive_s) or "histogram" (the hybrid histogram policy).
  KeepAlive keep_alive_policy = KeepAlive::kAdaptive;
  int64_t histogram_bin_ms = 60000;  // idle-time histogram bin width; >= 1
  int64_t histogram_range_s = 14400; // histogram range; a multiple of the bin width

  // Autoscaler (Knative-KPA-like) on in-flight + queued requests.
  double target_concurrency = 0;  // per instance; 0 = instance_concurrency
  int64_t stable_window_s = 60;   // averaging window; 1..3600
  int64_t panic_window_s = 6;     // burst window; 1..stable_window_s

  // Request batching (src/policy/batching.h): "off", "fixed" (a dynamic
  // batcher: full batch, preferred size or max_queue_delay_us) or "adaptive"
  // (batch size and wait chosen online to keep queueing + execution within
  // slo_p99_ms). Batching needs every input and output to have a variable
  // dim 0 (-1), the batch dimension.
  Batching batching = Batching::kOff;
  int max_batch_size = 8;                  // rows per execution; 1..1024
  int64_t max_queue_delay_us = 1000;       // longest wait for a batch to fill; 0..10000000
  std::vector<int> preferred_batch_sizes;  // fixed: sizes sent at once; each 1..max_batch_size, distinct
  double slo_p99_ms = 100;                 // adaptive: latency target; > 0, <= timeout_ms

  std::string ModelPath() const { return directory + "/" + model_file; }
};

// Parses and validates `<model_dir>/config.json`. The model name is the last
// component of model_dir. Errors are kInvalidArgument (bad field: message
// names "<file>: field '<f>': ...") or kNotFound (no config or model file).
StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

// Reads each output's labels_file (relative to config->directory) into its
// labels. kNotFound naming the field and file if one cannot be read.
Status LoadOutputLabels(ModelConfig* config, const std::string& source);

// Parses config JSON text; `source` names the file in error messages.
StatusOr<ModelConfig> ParseModelConfig(std::string_view json, const std::string& name,
                                       const std::string& directory, const std::string& source);

// The config as config.json text (every field, defaults included);
// ParseModelConfig reads it back to an equal config.
std::string EncodeModelConfig(const ModelConfig& config);

// Writes `specs` as config.json's "inputs"/"outputs" array (name, datatype,
// shape, and format, labels, tokenizer where set) at `w`'s current position.
void WriteTensorSpecs(JsonWriter& w, const std::vector<TensorSpec>& specs);

// Applies a JSON object of serverless settings (memory_mb, timeout_ms,
// max_concurrency, ..., as in config.json) to `current` and validates the
// result like a config file. Fields that define the model itself
// (kModelIdentityFields) cannot change this way: kInvalidArgument
// naming the field, as for an unknown field or a bad value.
StatusOr<ModelConfig> ApplySettings(const ModelConfig& current, std::string_view settings_json,
                                    const std::string& source);

// Checks value ranges and consistency; messages start with `source`.
Status ValidateModelConfig(const ModelConfig& config, const std::string& source);

struct RepositoryEntryError {
  std::string model;
  Status status;
};

struct RepositoryScan {
  std::vector<ModelConfig> models;           // valid models, sorted by name
  std::vector<RepositoryEntryError> errors;  // one per invalid model directory
};

// Loads every sub-directory of `root` that contains a config.json, with
// its outputs' labels (a labels file that cannot be read makes it an error).
// kNotFound if `root` is not a directory.
StatusOr<RepositoryScan> ScanRepository(const std::string& root);

}  // namespace thaw
