#include "metering/usage_json.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <variant>
#include <vector>

#include "json/object_fields.h"

namespace thaw::metering {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

// One record's object, opened with its "kind", on the one JSON writer.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string_view kind) : w_(&out_) { w_.BeginObject().Field("kind", kind); }
  void Str(std::string_view key, std::string_view value) { w_.Field(key, value); }
  void Int(std::string_view key, int64_t value) { w_.Key(key).Int(value); }
  void Uint(std::string_view key, uint64_t value) { w_.Key(key).Uint(value); }
  void Bool(std::string_view key, bool value) { w_.Field(key, value); }
  void Double(std::string_view key, double value) { w_.Key(key).Raw(JsonNumber(value)); }
  std::string Done() && {
    w_.EndObject();
    return std::move(out_);
  }

 private:
  std::string out_;
  JsonWriter w_;
};

std::string Quote(std::string_view line) {
  constexpr size_t kMax = 200;
  return line.size() <= kMax ? std::string(line) : std::string(line.substr(0, kMax)) + "...";
}

// Reads typed fields of one record's object; errors name the field and quote the line.
class FieldReader {
 public:
  FieldReader(object obj, std::string_view line) : obj_(obj), line_(line) {}

  Status Error(std::string_view field, std::string_view what) const {
    return InvalidArgument("usage record: field '" + std::string(field) + "' " + std::string(what) + " in line: " +
                           Quote(line_));
  }

  // Every key is one of `known`, and none repeats.
  Status CheckKeys(std::initializer_list<std::string_view> known) const {
    auto problem = json::FindKeyProblem(obj_, std::span<const std::string_view>(known.begin(), known.size()));
    return problem ? Error(problem->key, problem->repeated ? "appears twice" : "is unknown") : Status::Ok();
  }

  Status Str(std::string_view key, std::string* out, bool required = false) const {
    element v;
    if (obj_[key].get(v)) return required ? Error(key, "is required") : Status::Ok();
    std::string_view s;
    if (v.get_string().get(s)) return Error(key, "must be a string");
    *out = std::string(s);
    return Status::Ok();
  }

  template <typename T>
  Status Int(std::string_view key, T* out, int64_t min = 0, int64_t max = std::numeric_limits<int64_t>::max()) const {
    element v;
    if (obj_[key].get(v)) return Status::Ok();
    int64_t i;
    if (v.get_int64().get(i)) return Error(key, "must be an integer");
    if (i < min || i > max)
      return Error(key, "must be in [" + std::to_string(min) + ", " + std::to_string(max) + "], got " + std::to_string(i));
    *out = static_cast<T>(i);
    return Status::Ok();
  }

  Status Uint(std::string_view key, uint64_t* out) const {
    element v;
    if (obj_[key].get(v)) return Status::Ok();
    if (v.get_uint64().get(*out)) return Error(key, "must be an integer >= 0");
    return Status::Ok();
  }

  Status Bool(std::string_view key, bool* out) const {
    element v;
    if (obj_[key].get(v)) return Status::Ok();
    if (v.get_bool().get(*out)) return Error(key, "must be true or false");
    return Status::Ok();
  }

  Status Share(std::string_view key, double* out) const {
    element v;
    if (obj_[key].get(v)) return Status::Ok();
    double d;
    if (v.get_double().get(d) || !std::isfinite(d) || d < 0 || d > 1) return Error(key, "must be a number in [0, 1]");
    *out = d;
    return Status::Ok();
  }

 private:
  object obj_;
  std::string_view line_;
};


StatusOr<UsageRecord> DecodeInvocation(const FieldReader& r) {
  THAW_RETURN_IF_ERROR(r.CheckKeys({"kind", "model", "request_id", "instance_id", "arrival_wall_us", "latency_us",
                                    "queue_us", "batch_wait_us", "compute_us", "http_status", "memory_mb", "batch_rows",
                                    "batch_requests", "share", "cold_start", "init_us", "provisioned", "start_path"}));
  InvocationRecord rec;
  THAW_RETURN_IF_ERROR(r.Str("model", &rec.model, true));
  THAW_RETURN_IF_ERROR(r.Uint("request_id", &rec.request_id));
  THAW_RETURN_IF_ERROR(r.Uint("instance_id", &rec.instance_id));
  THAW_RETURN_IF_ERROR(r.Int("arrival_wall_us", &rec.arrival_wall_us, std::numeric_limits<int64_t>::min()));
  THAW_RETURN_IF_ERROR(r.Int("latency_us", &rec.latency_us));
  THAW_RETURN_IF_ERROR(r.Int("queue_us", &rec.queue_us));
  THAW_RETURN_IF_ERROR(r.Int("batch_wait_us", &rec.batch_wait_us));
  THAW_RETURN_IF_ERROR(r.Int("compute_us", &rec.compute_us));
  THAW_RETURN_IF_ERROR(r.Int("http_status", &rec.http_status, 100, 599));
  THAW_RETURN_IF_ERROR(r.Int("memory_mb", &rec.memory_mb));
  THAW_RETURN_IF_ERROR(r.Int("batch_rows", &rec.batch_rows));
  THAW_RETURN_IF_ERROR(r.Int("batch_requests", &rec.batch_requests, 0, std::numeric_limits<int>::max()));
  THAW_RETURN_IF_ERROR(r.Share("share", &rec.share));
  THAW_RETURN_IF_ERROR(r.Bool("cold_start", &rec.cold_start));
  THAW_RETURN_IF_ERROR(r.Int("init_us", &rec.init_us));
  THAW_RETURN_IF_ERROR(r.Bool("provisioned", &rec.provisioned));
  THAW_RETURN_IF_ERROR(r.Str("start_path", &rec.start_path));
  return UsageRecord(std::move(rec));
}

StatusOr<UsageRecord> DecodeInstance(const FieldReader& r) {
  THAW_RETURN_IF_ERROR(r.CheckKeys({"kind", "model", "instance_id", "start_path", "memory_mb", "held_mb", "start_wall_us",
                                    "stop_wall_us", "init_us", "busy_us", "idle_us", "provisioned", "stop_reason"}));
  InstanceRecord rec;
  THAW_RETURN_IF_ERROR(r.Str("model", &rec.model, true));
  THAW_RETURN_IF_ERROR(r.Uint("instance_id", &rec.instance_id));
  THAW_RETURN_IF_ERROR(r.Str("start_path", &rec.start_path));
  THAW_RETURN_IF_ERROR(r.Int("memory_mb", &rec.memory_mb));
  THAW_RETURN_IF_ERROR(r.Int("held_mb", &rec.held_mb));
  THAW_RETURN_IF_ERROR(r.Int("start_wall_us", &rec.start_wall_us, std::numeric_limits<int64_t>::min()));
  THAW_RETURN_IF_ERROR(r.Int("stop_wall_us", &rec.stop_wall_us, std::numeric_limits<int64_t>::min()));
  THAW_RETURN_IF_ERROR(r.Int("init_us", &rec.init_us));
  THAW_RETURN_IF_ERROR(r.Int("busy_us", &rec.busy_us));
  THAW_RETURN_IF_ERROR(r.Int("idle_us", &rec.idle_us));
  THAW_RETURN_IF_ERROR(r.Bool("provisioned", &rec.provisioned));
  THAW_RETURN_IF_ERROR(r.Str("stop_reason", &rec.stop_reason));
  if (rec.stop_wall_us < rec.start_wall_us) return r.Error("stop_wall_us", "is before start_wall_us");
  return UsageRecord(std::move(rec));
}

StatusOr<UsageRecord> DecodeProvisioned(const FieldReader& r) {
  THAW_RETURN_IF_ERROR(r.CheckKeys({"kind", "model", "memory_mb", "instances", "start_wall_us", "end_wall_us"}));
  ProvisionedRecord rec;
  THAW_RETURN_IF_ERROR(r.Str("model", &rec.model, true));
  THAW_RETURN_IF_ERROR(r.Int("memory_mb", &rec.memory_mb));
  THAW_RETURN_IF_ERROR(r.Int("instances", &rec.instances, 0, std::numeric_limits<int>::max()));
  THAW_RETURN_IF_ERROR(r.Int("start_wall_us", &rec.start_wall_us, std::numeric_limits<int64_t>::min()));
  THAW_RETURN_IF_ERROR(r.Int("end_wall_us", &rec.end_wall_us, std::numeric_limits<int64_t>::min()));
  if (rec.end_wall_us < rec.start_wall_us) return r.Error("end_wall_us", "is before start_wall_us");
  return UsageRecord(std::move(rec));
}

StatusOr<UsageRecord> DecodeHeld(const FieldReader& r) {
  THAW_RETURN_IF_ERROR(r.CheckKeys({"kind", "model", "held_kind", "memory_mb", "start_wall_us", "end_wall_us"}));
  HeldRecord rec;
  THAW_RETURN_IF_ERROR(r.Str("model", &rec.model, true));
  std::string held_kind;
  THAW_RETURN_IF_ERROR(r.Str("held_kind", &held_kind, true));
  if (held_kind == HeldKindName(HeldKind::kTemplate)) rec.kind = HeldKind::kTemplate;
  else if (held_kind == HeldKindName(HeldKind::kStandby)) rec.kind = HeldKind::kStandby;
  else if (held_kind == HeldKindName(HeldKind::kZygote)) rec.kind = HeldKind::kZygote;
  else return r.Error("held_kind", "must be template, standby or zygote, got '" + held_kind + "'");
  if (rec.kind == HeldKind::kZygote && !rec.model.empty())
    return r.Error("model", "must be empty for the zygote (the platform's)");
  if (rec.kind != HeldKind::kZygote && rec.model.empty())
    return r.Error("model", "must name the model of a " + held_kind);
  THAW_RETURN_IF_ERROR(r.Int("memory_mb", &rec.memory_mb));
  THAW_RETURN_IF_ERROR(r.Int("start_wall_us", &rec.start_wall_us, std::numeric_limits<int64_t>::min()));
  THAW_RETURN_IF_ERROR(r.Int("end_wall_us", &rec.end_wall_us, std::numeric_limits<int64_t>::min()));
  if (rec.end_wall_us < rec.start_wall_us) return r.Error("end_wall_us", "is before start_wall_us");
  return UsageRecord(std::move(rec));
}

template <typename... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;  // clang 15 deduces no aggregate templates without it

}  // namespace


std::string JsonNumber(double value) {
  if (!std::isfinite(value)) return "0";
  char buf[64];
  auto [end, error] = std::to_chars(buf, buf + sizeof(buf), value);
  return error == std::errc() ? std::string(buf, end) : "0";
}

std::string_view UsageRecordKind(const UsageRecord& record) {
  return std::visit(Overloaded{[](const InvocationRecord&) { return std::string_view("invocation"); },
                               [](const InstanceRecord&) { return std::string_view("instance"); },
                               [](const ProvisionedRecord&) { return std::string_view("provisioned"); },
                               [](const HeldRecord&) { return std::string_view("held"); }},
                    record);
}

std::string EncodeUsageRecord(const UsageRecord& record) {
  static_assert(std::variant_size_v<UsageRecord> == 4, "encode (and decode) every kind of record");
  ObjectWriter w(UsageRecordKind(record));
  if (const auto* r = std::get_if<InvocationRecord>(&record)) {
    w.Str("model", r->model);
    w.Uint("request_id", r->request_id);
    w.Uint("instance_id", r->instance_id);
    w.Int("arrival_wall_us", r->arrival_wall_us);
    w.Int("latency_us", r->latency_us);
    w.Int("queue_us", r->queue_us);
    w.Int("batch_wait_us", r->batch_wait_us);
    w.Int("compute_us", r->compute_us);
    w.Int("http_status", r->http_status);
    w.Int("memory_mb", r->memory_mb);
    w.Int("batch_rows", r->batch_rows);
    w.Int("batch_requests", r->batch_requests);
    w.Double("share", r->share);
    w.Bool("cold_start", r->cold_start);
    w.Int("init_us", r->init_us);
    w.Bool("provisioned", r->provisioned);
    w.Str("start_path", r->start_path);
  } else if (const auto* r = std::get_if<InstanceRecord>(&record)) {
    w.Str("model", r->model);
    w.Uint("instance_id", r->instance_id);
    w.Str("start_path", r->start_path);
    w.Int("memory_mb", r->memory_mb);
    w.Int("held_mb", r->held_mb);
    w.Int("start_wall_us", r->start_wall_us);
    w.Int("stop_wall_us", r->stop_wall_us);
    w.Int("init_us", r->init_us);
    w.Int("busy_us", r->busy_us);
    w.Int("idle_us", r->idle_us);
    w.Bool("provisioned", r->provisioned);
    w.Str("stop_reason", r->stop_reason);
  } else if (const auto* p = std::get_if<ProvisionedRecord>(&record)) {
    w.Str("model", p->model);
    w.Int("memory_mb", p->memory_mb);
    w.Int("instances", p->instances);
    w.Int("start_wall_us", p->start_wall_us);
    w.Int("end_wall_us", p->end_wall_us);
  } else {
    const auto& h = std::get<HeldRecord>(record);
    w.Str("model", h.model);
    w.Str("held_kind", HeldKindName(h.kind));
    w.Int("memory_mb", h.memory_mb);
    w.Int("start_wall_us", h.start_wall_us);
    w.Int("end_wall_us", h.end_wall_us);
  }
  return std::move(w).Done();
}

StatusOr<UsageRecord> DecodeUsageRecord(std::string_view line) {
  // One parser per thread: its buffers are reused from line to line.
  thread_local simdjson::dom::parser parser;
  simdjson::padded_string padded(line);
  element root;
  if (auto error = parser.parse(padded).get(root))
    return InvalidArgument("usage record: malformed JSON (" + std::string(simdjson::error_message(error)) +
                           ") in line: " + Quote(line));
  object obj;
  if (root.get_object().get(obj)) return InvalidArgument("usage record: not a JSON object in line: " + Quote(line));
  FieldReader reader(obj, line);
  std::string kind;
  THAW_RETURN_IF_ERROR(reader.Str("kind", &kind, true));
  if (kind == "invocation") return DecodeInvocation(reader);
  if (kind == "instance") return DecodeInstance(reader);
  if (kind == "provisioned") return DecodeProvisioned(reader);
  if (kind == "held") return DecodeHeld(reader);
  return reader.Error("kind", "must be invocation, instance, provisioned or held, got '" + kind + "'");
}

}  // namespace thaw::metering
