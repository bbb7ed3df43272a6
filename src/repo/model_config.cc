#include "repo/model_config.h"

#include <simdjson.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/json_writer.h"
#include "json/object_fields.h"

namespace thaw {

const std::string_view kModelConfigFields[29] = {
    "backend", "model_file", "platform", "inputs", "outputs", "memory_mb", "timeout_ms", "start_timeout_ms",
    "max_concurrency", "instance_concurrency", "min_instances", "keep_alive_s", "max_queue", "threads", "start_path",
    "template_standby", "template_keep_alive_s", "keep_alive_policy", "histogram_bin_ms", "histogram_range_s",
    "target_concurrency", "stable_window_s", "panic_window_s", "provisioned_schedule", "batching", "max_batch_size",
    "max_queue_delay_us", "preferred_batch_sizes", "slo_p99_ms"};
namespace {

namespace fs = std::filesystem;
using simdjson::dom::element;
using simdjson::dom::object;

Status FieldError(const std::string& source, std::string_view field, std::string_view what) {
  return InvalidArgument(source + ": field '" + std::string(field) + "': " + std::string(what));
}

// Reads an integer field if present; range-checked by ValidateModelConfig.
template <typename T>
Status ReadInt(const object& obj, std::string_view key, const std::string& source, T* out) {
  element value;
  if (obj[key].get(value)) return Status::Ok();  // absent: keep the default
  int64_t v;
  if (value.get_int64().get(v)) return FieldError(source, key, "must be an integer");
  *out = static_cast<T>(v);
  return Status::Ok();
}

Status ReadBool(const object& obj, std::string_view key, const std::string& source, bool* out) {
  element value;
  if (obj[key].get(value)) return Status::Ok();
  if (value.get_bool().get(*out)) return FieldError(source, key, "must be true or false");
  return Status::Ok();
}

Status ReadDouble(const object& obj, std::string_view key, const std::string& source, double* out) {
  element value;
  if (obj[key].get(value)) return Status::Ok();
  if (value.get_double().get(*out)) return FieldError(source, key, "must be a number");
  return Status::Ok();
}

Status ReadIntList(const object& obj, std::string_view key, const std::string& source, std::vector<int>* out) {
  element value;
  if (obj[key].get(value)) return Status::Ok();
  simdjson::dom::array items;
  if (value.get_array().get(items)) return FieldError(source, key, "must be an array of integers");
  out->clear();
  for (element item : items) {
    int64_t v;
    if (item.get_int64().get(v) || v < 0 || v > 1000000) return FieldError(source, key, "must be an array of integers");
    out->push_back(static_cast<int>(v));
  }
  return Status::Ok();
}

Status ReadString(const object& obj, std::string_view key, const std::string& source, std::string* out) {
  element value;
  if (obj[key].get(value)) return Status::Ok();
  std::string_view s;
  if (value.get_string().get(s)) return FieldError(source, key, "must be a string");
  *out = std::string(s);
  return Status::Ok();
}

constexpr std::string_view kDayNames[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

// "HH:MM" -> minute of the day; "24:00" allowed for an end.
std::optional<int> ParseMinute(std::string_view text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  for (size_t i : {0, 1, 3, 4})
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  const int h = (text[0] - '0') * 10 + (text[1] - '0'), m = (text[3] - '0') * 10 + (text[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && m != 0)) return std::nullopt;
  return h * 60 + m;
}

std::string MinuteText(int minute) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

Status ReadSchedule(const object& obj, const std::string& source, std::vector<ScheduleWindow>* out) {
  element value;
  if (obj["provisioned_schedule"].get(value)) return Status::Ok();
  simdjson::dom::array windows;
  if (value.get_array().get(windows)) return FieldError(source, "provisioned_schedule", "must be an array");
  size_t index = 0;
  for (element item : windows) {
    const std::string field = "provisioned_schedule[" + std::to_string(index++) + "]";
    object w;
    if (item.get_object().get(w)) return FieldError(source, field, "must be an object");
    static constexpr std::string_view kWindowKeys[] = {"days", "start", "end", "min_instances"};
    if (auto problem = json::FindKeyProblem(w, kWindowKeys))
      return FieldError(source, field + "." + std::string(problem->key),
                        problem->repeated ? "appears twice" : "unknown field");
    ScheduleWindow window;
    element days;
    if (w["days"].get(days)) return FieldError(source, field + ".days", "is required");
    std::string_view days_text;
    simdjson::dom::array day_list;
    if (!days.get_string().get(days_text)) {
      if (days_text == "daily") window.days_mask = 0x7f;
      else if (days_text == "weekdays") window.days_mask = 0x1f;
      else if (days_text == "weekends") window.days_mask = 0x60;
      else return FieldError(source, field + ".days", "use daily, weekdays, weekends or a list of mon..sun");
    } else if (!days.get_array().get(day_list)) {
      window.days_mask = 0;
      for (element d : day_list) {
        std::string_view name;
        auto it = d.get_string().get(name) ? std::end(kDayNames) : std::find(std::begin(kDayNames), std::end(kDayNames), name);
        if (it == std::end(kDayNames)) return FieldError(source, field + ".days", "day names are mon, tue, ..., sun");
        window.days_mask |= 1 << (it - std::begin(kDayNames));
      }
      if (window.days_mask == 0) return FieldError(source, field + ".days", "lists no day");
    } else {
      return FieldError(source, field + ".days", "must be a string or a list of day names");
    }
    std::string_view start, end;
    std::optional<int> start_minute, end_minute;
    if (w["start"].get_string().get(start) || !(start_minute = ParseMinute(start)) || *start_minute >= 1440)
      return FieldError(source, field + ".start", "must be \"HH:MM\" (UTC)");
    if (w["end"].get_string().get(end) || !(end_minute = ParseMinute(end)) || *end_minute == 0)
      return FieldError(source, field + ".end", "must be \"HH:MM\" (UTC), 00:01..24:00");
    if (*start_minute == *end_minute) return FieldError(source, field + ".end", "must differ from start");
    window.start_minute = *start_minute;
    window.end_minute = *end_minute;
    int64_t min = 0;
    if (w["min_instances"].get_int64().get(min) || min < 0)
      return FieldError(source, field + ".min_instances", "must be a non-negative integer");
    window.min_instances = static_cast<int>(min);
    out->push_back(window);
  }
  if (out->size() > 64) return FieldError(source, "provisioned_schedule", "has more than 64 windows");
  return Status::Ok();
}

bool IsFileName(std::string_view file) {
  return !file.empty() && file.find('/') == std::string_view::npos && file != "." && file != "..";
}

// An input's "tokenizer" object, into spec.tokenizer.
Status ReadTokenizer(element value, TensorSpec& spec, const std::string& source, const std::string& field) {
  object obj;
  if (value.get_object().get(obj)) return FieldError(source, field, "must be an object");
  static constexpr std::string_view kKeys[] = {"kind", "vocab", "feeds", "begin", "unknown", "pad", "max_tokens"};
  if (auto problem = json::FindKeyProblem(obj, kKeys))
    return FieldError(source, field + "." + std::string(problem->key), problem->repeated ? "appears twice" : "unknown field");
  if (spec.datatype != DataType::kBytes)
    return FieldError(source, field, "needs a BYTES input (the texts); '" + spec.name + "' is " +
                                         std::string(DataTypeName(spec.datatype)));
  if (spec.shape.empty() || spec.shape.size() > 2 || (spec.shape.size() == 2 && spec.shape[1] != 1))
    return FieldError(source, field, "needs one text per row: shape [-1] or [-1, 1]; '" + spec.name + "' has " +
                                         ShapeToString(spec.shape));
  TokenizerSpec t;
  auto text = [&](std::string_view key, std::string* out, bool required) -> Status {
    std::string_view v;
    element e;
    if (obj[key].get(e)) return required ? FieldError(source, field + "." + std::string(key), "is required") : Status::Ok();
    if (e.get_string().get(v)) return FieldError(source, field + "." + std::string(key), "must be a string");
    *out = std::string(v);
    return Status::Ok();
  };
  THAW_RETURN_IF_ERROR(text("kind", &t.kind, false));
  if (t.kind != "words") return FieldError(source, field + ".kind", "is '" + t.kind + "'; supported: words");
  THAW_RETURN_IF_ERROR(text("vocab", &t.vocab_file, true));
  if (!IsFileName(t.vocab_file)) return FieldError(source, field + ".vocab", "must be a file name in the model directory");
  THAW_RETURN_IF_ERROR(text("feeds", &t.feeds, true));
  if (t.feeds.empty()) return FieldError(source, field + ".feeds", "must name the model's input for the token ids");
  THAW_RETURN_IF_ERROR(text("begin", &t.begin_token, false));
  THAW_RETURN_IF_ERROR(text("unknown", &t.unknown_token, true));
  THAW_RETURN_IF_ERROR(text("pad", &t.pad_token, true));
  element max_tokens;
  if (!obj["max_tokens"].get(max_tokens) &&
      (max_tokens.get_int64().get(t.max_tokens) || t.max_tokens < 1 || t.max_tokens > 65536))
    return FieldError(source, field + ".max_tokens", "must be an integer in [1, 65536]");
  spec.tokenizer = std::move(t);
  return Status::Ok();
}

Status ReadTensorSpecs(const object& obj, std::string_view key, const std::string& source,
                       std::vector<TensorSpec>* out) {
  element value;
  if (obj[key].get(value)) return FieldError(source, key, "is required");
  simdjson::dom::array items;
  if (value.get_array().get(items)) return FieldError(source, key, "must be an array");
  size_t index = 0;
  for (element item : items) {
    const std::string field = std::string(key) + "[" + std::to_string(index++) + "]";
    object spec_obj;
    if (item.get_object().get(spec_obj)) return FieldError(source, field, "must be an object");
    static constexpr std::string_view kInputKeys[] = {"name", "datatype", "shape", "format", "tokenizer"};
    static constexpr std::string_view kOutputKeys[] = {"name", "datatype", "shape", "labels"};
    const bool input = key == "inputs";
    if (auto problem = input ? json::FindKeyProblem(spec_obj, kInputKeys) : json::FindKeyProblem(spec_obj, kOutputKeys))
      return FieldError(source, field + "." + std::string(problem->key),
                        problem->repeated ? "appears twice" : "unknown field");
    TensorSpec spec;
    std::string_view name, datatype;
    if (spec_obj["name"].get_string().get(name) || name.empty())
      return FieldError(source, field + ".name", "must be a non-empty string");
    spec.name = std::string(name);
    if (spec_obj["datatype"].get_string().get(datatype))
      return FieldError(source, field + ".datatype", "must be a string");
    auto type = ParseDataType(datatype);
    if (!type) return FieldError(source, field + ".datatype", "unknown datatype '" + std::string(datatype) + "'");
    spec.datatype = *type;
    simdjson::dom::array dims;
    if (spec_obj["shape"].get_array().get(dims)) return FieldError(source, field + ".shape", "must be an array of integers");
    for (element dim : dims) {
      int64_t d;
      if (dim.get_int64().get(d) || d < -1 || d == 0)
        return FieldError(source, field + ".shape", "dimensions must be positive integers or -1");
      spec.shape.push_back(d);
    }
    element format_value;
    if (input && !spec_obj["format"].get(format_value)) {
      std::string_view format;
      if (format_value.get_string().get(format))
        return FieldError(source, field + ".format", "must be a string: NONE, NCHW or NHWC");
      auto parsed = ParseTensorFormat(format);
      if (!parsed) return FieldError(source, field + ".format", "is '" + std::string(format) + "'; must be NONE, NCHW or NHWC");
      // An image has 3 dims (C, H, W or H, W, C) after an optional batch dim.
      if (*parsed != TensorFormat::kNone && spec.shape.size() != 3 && spec.shape.size() != 4)
        return FieldError(source, field + ".format",
                          std::string(TensorFormatName(*parsed)) + " needs an image shape: 3 dims, or 4 with the batch dim first; '" +
                              spec.name + "' has shape " + ShapeToString(spec.shape));
      spec.format = *parsed;
    }
    element tokenizer_value;
    if (input && !spec_obj["tokenizer"].get(tokenizer_value))
      THAW_RETURN_IF_ERROR(ReadTokenizer(tokenizer_value, spec, source, field + ".tokenizer"));
    element labels_value;
    if (!input && !spec_obj["labels"].get(labels_value)) {
      std::string_view file;
      if (labels_value.get_string().get(file) || !IsFileName(file))
        return FieldError(source, field + ".labels", "must be a file name in the model directory");
      spec.labels_file = std::string(file);
    }
    out->push_back(std::move(spec));
  }
  return Status::Ok();
}

Status CheckRange(const std::string& source, std::string_view field, int64_t value, int64_t lo, int64_t hi) {
  if (value < lo || value > hi)
    return FieldError(source, field,
                      "is " + std::to_string(value) + "; must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return Status::Ok();
}

Status CheckSpecs(const std::string& source, std::string_view key, const std::vector<TensorSpec>& specs) {
  if (specs.empty()) return FieldError(source, key, "must list at least one tensor");
  for (size_t i = 0; i < specs.size(); ++i)
    for (size_t j = i + 1; j < specs.size(); ++j)
      if (specs[i].name == specs[j].name)
        return FieldError(source, key, "tensor name '" + specs[i].name + "' appears twice");
  // A tokenized input's ids take the place of the input: their name must
  // not be another input's.
  for (size_t i = 0; i < specs.size(); ++i) {
    if (!specs[i].tokenizer) continue;
    for (size_t j = 0; j < specs.size(); ++j)
      if (j != i && specs[j].name == specs[i].tokenizer->feeds)
        return FieldError(source, std::string(key) + "[" + std::to_string(i) + "].tokenizer.feeds",
                          "'" + specs[j].name + "' is another input");
  }
  return Status::Ok();
}

}  // namespace

std::string_view StartLevelName(StartLevel level) {
  switch (level) {
    case StartLevel::kExec: return "exec";
    case StartLevel::kZygote: return "zygote";
    case StartLevel::kPrepared: return "prepared";
    case StartLevel::kTemplate: return "template";
    case StartLevel::kStandby: return "standby";
  }
  return "exec";
}

std::string_view TensorFormatName(TensorFormat format) {
  switch (format) {
    case TensorFormat::kNone: return "NONE";
    case TensorFormat::kNchw: return "NCHW";
    case TensorFormat::kNhwc: return "NHWC";
  }
  return "NONE";
}

std::optional<TensorFormat> ParseTensorFormat(std::string_view name) {
  for (TensorFormat f : {TensorFormat::kNone, TensorFormat::kNchw, TensorFormat::kNhwc})
    if (TensorFormatName(f) == name) return f;
  return std::nullopt;
}

std::string_view StartPathName(StartPath path) {
  switch (path) {
    case StartPath::kExec: return "exec";
    case StartPath::kZygote: return "zygote";
    case StartPath::kTemplate: return "template";
  }
  return "template";
}

std::optional<StartPath> ParseStartPath(std::string_view name) {
  for (StartPath p : {StartPath::kExec, StartPath::kZygote, StartPath::kTemplate})
    if (StartPathName(p) == name) return p;
  return std::nullopt;
}

std::string_view BatchingName(Batching mode) {
  switch (mode) {
    case Batching::kOff: return "off";
    case Batching::kFixed: return "fixed";
    case Batching::kAdaptive: return "adaptive";
  }
  return "off";
}

std::optional<Batching> ParseBatching(std::string_view name) {
  for (Batching b : {Batching::kOff, Batching::kFixed, Batching::kAdaptive})
    if (BatchingName(b) == name) return b;
  return std::nullopt;
}

std::string_view KeepAliveName(KeepAlive policy) {
  switch (policy) {
    case KeepAlive::kFixed: return "fixed";
    case KeepAlive::kHistogram: return "histogram";
    case KeepAlive::kAdaptive: return "adaptive";
  }
  return "fixed";
}

std::optional<KeepAlive> ParseKeepAlive(std::string_view name) {
  for (KeepAlive k : {KeepAlive::kFixed, KeepAlive::kHistogram, KeepAlive::kAdaptive})
    if (KeepAliveName(k) == name) return k;
  return std::nullopt;
}

StatusOr<ModelConfig> ParseModelConfig(std::string_view json, const std::string& name,
                                       const std::string& directory, const std::string& source) {
  simdjson::dom::parser parser;
  auto parsed = json::ParseObject(parser, json, source);
  if (!parsed.ok()) return parsed.status();
  const object obj = *parsed;

  if (auto problem = json::FindKeyProblem(obj, kModelConfigFields))
    return FieldError(source, problem->key, problem->repeated ? "appears twice" : "unknown field");

  ModelConfig config;
  config.name = name;
  config.directory = directory;
  THAW_RETURN_IF_ERROR(ReadString(obj, "backend", source, &config.backend));
  THAW_RETURN_IF_ERROR(ReadString(obj, "model_file", source, &config.model_file));
  config.platform = config.backend == "xgboost" ? "xgboost" : config.backend == "onnx" ? "onnx_opencv" : "pytorch_torchscript";
  THAW_RETURN_IF_ERROR(ReadString(obj, "platform", source, &config.platform));
  THAW_RETURN_IF_ERROR(ReadTensorSpecs(obj, "inputs", source, &config.inputs));
  THAW_RETURN_IF_ERROR(ReadTensorSpecs(obj, "outputs", source, &config.outputs));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "memory_mb", source, &config.memory_mb));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "timeout_ms", source, &config.timeout_ms));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "start_timeout_ms", source, &config.start_timeout_ms));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "max_concurrency", source, &config.max_concurrency));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "instance_concurrency", source, &config.instance_concurrency));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "min_instances", source, &config.min_instances));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "keep_alive_s", source, &config.keep_alive_s));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "max_queue", source, &config.max_queue));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "threads", source, &config.threads));
  std::string start_path(StartPathName(config.start_path));
  THAW_RETURN_IF_ERROR(ReadString(obj, "start_path", source, &start_path));
  auto path = ParseStartPath(start_path);
  if (!path) return FieldError(source, "start_path", "unknown start path '" + start_path + "'; use exec, zygote or template");
  config.start_path = *path;
  THAW_RETURN_IF_ERROR(ReadBool(obj, "template_standby", source, &config.template_standby));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "template_keep_alive_s", source, &config.template_keep_alive_s));
  std::string keep_alive(KeepAliveName(config.keep_alive_policy));
  THAW_RETURN_IF_ERROR(ReadString(obj, "keep_alive_policy", source, &keep_alive));
  auto keep_alive_policy = ParseKeepAlive(keep_alive);
  if (!keep_alive_policy) return FieldError(source, "keep_alive_policy", "is '" + keep_alive + "'; use adaptive, fixed or histogram");
  config.keep_alive_policy = *keep_alive_policy;
  THAW_RETURN_IF_ERROR(ReadInt(obj, "histogram_bin_ms", source, &config.histogram_bin_ms));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "histogram_range_s", source, &config.histogram_range_s));
  THAW_RETURN_IF_ERROR(ReadDouble(obj, "target_concurrency", source, &config.target_concurrency));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "stable_window_s", source, &config.stable_window_s));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "panic_window_s", source, &config.panic_window_s));
  THAW_RETURN_IF_ERROR(ReadSchedule(obj, source, &config.provisioned_schedule));
  std::string batching(BatchingName(config.batching));
  THAW_RETURN_IF_ERROR(ReadString(obj, "batching", source, &batching));
  auto batching_mode = ParseBatching(batching);
  if (!batching_mode) return FieldError(source, "batching", "is '" + batching + "'; use off, fixed or adaptive");
  config.batching = *batching_mode;
  THAW_RETURN_IF_ERROR(ReadInt(obj, "max_batch_size", source, &config.max_batch_size));
  THAW_RETURN_IF_ERROR(ReadInt(obj, "max_queue_delay_us", source, &config.max_queue_delay_us));
  THAW_RETURN_IF_ERROR(ReadIntList(obj, "preferred_batch_sizes", source, &config.preferred_batch_sizes));
  THAW_RETURN_IF_ERROR(ReadDouble(obj, "slo_p99_ms", source, &config.slo_p99_ms));
  THAW_RETURN_IF_ERROR(ValidateModelConfig(config, source));
  return config;
}

Status ValidateModelConfig(const ModelConfig& c, const std::string& source) {
  if (c.backend != "torchscript" && c.backend != "xgboost" && c.backend != "onnx")
    return FieldError(source, "backend", "unknown backend '" + c.backend + "'; supported: torchscript, xgboost, onnx");
  if (c.model_file.empty() || c.model_file.find("..") != std::string::npos || c.model_file.front() == '/')
    return FieldError(source, "model_file", "must be a file name inside the model directory");
  THAW_RETURN_IF_ERROR(CheckSpecs(source, "inputs", c.inputs));
  THAW_RETURN_IF_ERROR(CheckSpecs(source, "outputs", c.outputs));
  THAW_RETURN_IF_ERROR(CheckRange(source, "memory_mb", c.memory_mb, 128, 10240));
  THAW_RETURN_IF_ERROR(CheckRange(source, "timeout_ms", c.timeout_ms, 1, 900000));
  THAW_RETURN_IF_ERROR(CheckRange(source, "start_timeout_ms", c.start_timeout_ms, 1, 3600000));
  THAW_RETURN_IF_ERROR(CheckRange(source, "max_concurrency", c.max_concurrency, 1, 1000));
  THAW_RETURN_IF_ERROR(CheckRange(source, "instance_concurrency", c.instance_concurrency, 1, 1000));
  THAW_RETURN_IF_ERROR(CheckRange(source, "min_instances", c.min_instances, 0, c.max_concurrency));
  THAW_RETURN_IF_ERROR(CheckRange(source, "keep_alive_s", c.keep_alive_s, 0, 7 * 24 * 3600));
  THAW_RETURN_IF_ERROR(CheckRange(source, "template_keep_alive_s", c.template_keep_alive_s, 0, 7 * 24 * 3600));
  THAW_RETURN_IF_ERROR(CheckRange(source, "max_queue", c.max_queue, 0, 1000000));
  THAW_RETURN_IF_ERROR(CheckRange(source, "threads", c.threads, 1, 64));
  THAW_RETURN_IF_ERROR(CheckRange(source, "histogram_bin_ms", c.histogram_bin_ms, 1, 3600 * 1000));
  THAW_RETURN_IF_ERROR(CheckRange(source, "histogram_range_s", c.histogram_range_s, 1, 7 * 24 * 3600));
  if ((c.histogram_range_s * 1000) % c.histogram_bin_ms != 0 || c.histogram_range_s * 1000 / c.histogram_bin_ms > 1000000)
    return FieldError(source, "histogram_range_s", "must be a multiple of histogram_bin_ms, at most 1e6 bins");
  if (!(c.target_concurrency >= 0 && c.target_concurrency <= 1e6))
    return FieldError(source, "target_concurrency", "must be in [0, 1e6] (0 = instance_concurrency)");
  THAW_RETURN_IF_ERROR(CheckRange(source, "stable_window_s", c.stable_window_s, 1, 3600));
  THAW_RETURN_IF_ERROR(CheckRange(source, "panic_window_s", c.panic_window_s, 1, c.stable_window_s));
  for (size_t i = 0; i < c.provisioned_schedule.size(); ++i)
    THAW_RETURN_IF_ERROR(CheckRange(source, "provisioned_schedule[" + std::to_string(i) + "].min_instances",
                                    c.provisioned_schedule[i].min_instances, 0, c.max_concurrency));
  THAW_RETURN_IF_ERROR(CheckRange(source, "max_batch_size", c.max_batch_size, 1, 1024));
  THAW_RETURN_IF_ERROR(CheckRange(source, "max_queue_delay_us", c.max_queue_delay_us, 0, 10000000));
  for (size_t i = 0; i < c.preferred_batch_sizes.size(); ++i) {
    const int size = c.preferred_batch_sizes[i];
    if (size < 1 || size > c.max_batch_size)
      return FieldError(source, "preferred_batch_sizes",
                        "size " + std::to_string(size) + " is outside [1, max_batch_size=" + std::to_string(c.max_batch_size) + "]");
    if (std::find(c.preferred_batch_sizes.begin(), c.preferred_batch_sizes.begin() + i, size) !=
        c.preferred_batch_sizes.begin() + i)
      return FieldError(source, "preferred_batch_sizes", "size " + std::to_string(size) + " appears twice");
  }
  if (!(c.slo_p99_ms > 0 && c.slo_p99_ms <= 3600e3))
    return FieldError(source, "slo_p99_ms", "must be in (0, 3600000]");
  if (c.batching == Batching::kAdaptive && c.slo_p99_ms > static_cast<double>(c.timeout_ms))
    return FieldError(source, "slo_p99_ms", "exceeds timeout_ms: a request would time out before the SLO is missed");
  if (c.batching != Batching::kOff) {
    // Requests are joined along dim 0; a fixed dim 0 has no room for that.
    for (const auto* specs : {&c.inputs, &c.outputs})
      for (const TensorSpec& spec : *specs)
        if (spec.shape.empty() || spec.shape[0] != -1)
          return FieldError(source, "batching",
                            "needs a variable batch dimension (-1 first in shape) on every tensor; '" + spec.name +
                                "' has shape " + ShapeToString(spec.shape));
  }
  return Status::Ok();
}

void WriteTensorSpecs(JsonWriter& w, const std::vector<TensorSpec>& specs) {
  w.BeginArray();
  for (const TensorSpec& spec : specs) {
    w.BeginObject().Field("name", spec.name).Field("datatype", DataTypeName(spec.datatype)).Key("shape").BeginArray();
    for (int64_t d : spec.shape) w.Int(d);
    w.EndArray();
    if (spec.format != TensorFormat::kNone) w.Field("format", TensorFormatName(spec.format));
    if (!spec.labels_file.empty()) w.Field("labels", spec.labels_file);
    if (const auto& t = spec.tokenizer) {
      w.Key("tokenizer").BeginObject().Field("kind", t->kind).Field("vocab", t->vocab_file).Field("feeds", t->feeds);
      if (!t->begin_token.empty()) w.Field("begin", t->begin_token);
      w.Field("unknown", t->unknown_token).Field("pad", t->pad_token).Field("max_tokens", t->max_tokens).EndObject();
    }
    w.EndObject();
  }
  w.EndArray();
}


std::string EncodeModelConfig(const ModelConfig& c) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("backend", c.backend).Field("model_file", c.model_file).Field("platform", c.platform);
  w.Key("inputs");
  WriteTensorSpecs(w, c.inputs);
  w.Key("outputs");
  WriteTensorSpecs(w, c.outputs);
  w.Field("memory_mb", c.memory_mb).Field("timeout_ms", c.timeout_ms).Field("start_timeout_ms", c.start_timeout_ms);
  w.Field("max_concurrency", c.max_concurrency).Field("instance_concurrency", c.instance_concurrency);
  w.Field("min_instances", c.min_instances).Field("keep_alive_s", c.keep_alive_s).Field("max_queue", c.max_queue);
  w.Field("threads", c.threads).Field("start_path", StartPathName(c.start_path));
  w.Field("template_standby", c.template_standby).Field("template_keep_alive_s", c.template_keep_alive_s);
  w.Field("keep_alive_policy", KeepAliveName(c.keep_alive_policy));
  w.Field("histogram_bin_ms", c.histogram_bin_ms).Field("histogram_range_s", c.histogram_range_s);
  w.Field("target_concurrency", c.target_concurrency).Field("stable_window_s", c.stable_window_s);
  w.Field("panic_window_s", c.panic_window_s).Field("batching", BatchingName(c.batching));
  w.Field("max_batch_size", c.max_batch_size).Field("max_queue_delay_us", c.max_queue_delay_us);
  w.Key("preferred_batch_sizes").BeginArray();
  for (int size : c.preferred_batch_sizes) w.Int(size);
  w.EndArray().Field("slo_p99_ms", c.slo_p99_ms).Key("provisioned_schedule").BeginArray();
  for (const ScheduleWindow& window : c.provisioned_schedule) {
    w.BeginObject().Key("days").BeginArray();
    for (int d = 0; d < 7; ++d)
      if (window.days_mask & (1 << d)) w.String(kDayNames[d]);
    w.EndArray().Field("start", MinuteText(window.start_minute)).Field("end", MinuteText(window.end_minute));
    w.Field("min_instances", window.min_instances).EndObject();
  }
  w.EndArray().EndObject();
  return out;
}

StatusOr<ModelConfig> ApplySettings(const ModelConfig& current, std::string_view settings_json,
                                    const std::string& source) {
  simdjson::dom::parser patch_parser, current_parser;
  simdjson::padded_string patch_text(settings_json);
  element patch_root;
  if (auto error = patch_parser.parse(patch_text).get(patch_root))
    return InvalidArgument(source + ": malformed JSON: " + std::string(simdjson::error_message(error)));
  object patch;
  if (patch_root.get_object().get(patch)) return InvalidArgument(source + ": must be a JSON object");
  const std::string encoded = EncodeModelConfig(current);
  simdjson::padded_string current_text(encoded);
  object base;
  if (current_parser.parse(current_text).get_object().get(base)) return Internal("cannot re-read the current config");
  std::vector<std::string_view> seen;
  for (auto field : patch) {
    // The merge below would silently take one of a repeated key's values.
    if (std::find(seen.begin(), seen.end(), field.key) != seen.end())
      return FieldError(source, field.key, "appears twice");
    seen.push_back(field.key);
    if (std::find(std::begin(kModelIdentityFields), std::end(kModelIdentityFields), field.key) !=
        std::end(kModelIdentityFields))
      return FieldError(source, field.key, "defines the model and cannot change while serving; edit config.json and load the model again");
    element ignored;
    if (base[field.key].get(ignored)) return FieldError(source, field.key, "unknown field");
  }
  std::string merged;
  JsonWriter w(&merged);
  w.BeginObject();
  for (auto field : base) {
    element value;
    w.Key(field.key).Raw(simdjson::minify(patch[field.key].get(value) ? field.value : value));
  }
  w.EndObject();
  return ParseModelConfig(merged, current.name, current.directory, source);
}

StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir) {
  std::error_code ec;
  fs::path dir = fs::absolute(model_dir, ec);
  if (ec) return NotFound(model_dir + ": " + ec.message());
  dir = dir.lexically_normal();
  if (dir.has_filename() == false) dir = dir.parent_path();
  const std::string source = (dir / "config.json").string();
  std::ifstream in(source, std::ios::binary);
  if (!in) return NotFound(source + ": cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  auto config = ParseModelConfig(text.str(), dir.filename().string(), dir.string(), source);
  if (!config.ok()) return config;
  if (!fs::is_regular_file(config->ModelPath(), ec))
    return NotFound(source + ": field 'model_file': " + config->ModelPath() + " does not exist");
  for (size_t i = 0; i < config->inputs.size(); ++i) {
    const auto& tokenizer = config->inputs[i].tokenizer;
    if (tokenizer && !fs::is_regular_file(config->directory + "/" + tokenizer->vocab_file, ec))
      return NotFound(source + ": field 'inputs[" + std::to_string(i) + "].tokenizer.vocab': " + config->directory +
                      "/" + tokenizer->vocab_file + " does not exist");
  }
  return config;
}

Status LoadOutputLabels(ModelConfig* config, const std::string& source) {
  for (size_t i = 0; i < config->outputs.size(); ++i) {
    TensorSpec& spec = config->outputs[i];
    spec.labels.clear();
    if (spec.labels_file.empty()) continue;
    const std::string path = config->directory + "/" + spec.labels_file;
    std::ifstream in(path);
    if (!in)
      return NotFound(source + ": field 'outputs[" + std::to_string(i) + "].labels': " + path + " cannot be read");
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      spec.labels.push_back(std::move(line));
    }
  }
  return Status::Ok();
}

StatusOr<RepositoryScan> ScanRepository(const std::string& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return NotFound("model repository '" + root + "' is not a directory");
  RepositoryScan scan;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    if (!entry.is_directory() || !fs::exists(entry.path() / "config.json")) continue;
    auto config = LoadModelConfig(entry.path().string());
    if (config.ok()) {
      Status labels = LoadOutputLabels(&config.value(), (entry.path() / "config.json").string());
      if (!labels.ok()) config = labels;
    }
    if (config.ok()) {
      scan.models.push_back(std::move(config).value());
    } else {
      scan.errors.push_back({entry.path().filename().string(), config.status()});
    }
  }
  if (ec) return NotFound("model repository '" + root + "': " + ec.message());
  std::sort(scan.models.begin(), scan.models.end(),
            [](const ModelConfig& a, const ModelConfig& b) { return a.name < b.name; });
  std::sort(scan.errors.begin(), scan.errors.end(),
            [](const RepositoryEntryError& a, const RepositoryEntryError& b) { return a.model < b.model; });
  return scan;
}

}  // namespace thaw
