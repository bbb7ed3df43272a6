#include "settings/setting_changes.h"

#include <functional>

namespace thaw {

namespace {

bool SpecsEqual(const std::vector<TensorSpec>& x, const std::vector<TensorSpec>& y) {
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i].name != y[i].name || x[i].datatype != y[i].datatype || x[i].shape != y[i].shape ||
        x[i].format != y[i].format || x[i].labels_file != y[i].labels_file || x[i].tokenizer != y[i].tokenizer)
      return false;
  return true;
}

bool WindowsEqual(const std::vector<ScheduleWindow>& x, const std::vector<ScheduleWindow>& y) {
  if (x.size() != y.size()) return false;
  for (size_t i = 0; i < x.size(); ++i)
    if (x[i].days_mask != y[i].days_mask || x[i].start_minute != y[i].start_minute ||
        x[i].end_minute != y[i].end_minute || x[i].min_instances != y[i].min_instances)
      return false;
  return true;
}

struct FieldRow {
  std::string_view field;
  SettingChange change;
  std::function<bool(const ModelConfig&, const ModelConfig&)> equal;
};

#define THAW_SAME(member) [](const ModelConfig& a, const ModelConfig& b) { return a.member == b.member; }

const std::vector<FieldRow>& Table() {
  using enum SettingChange;
  static const std::vector<FieldRow> kTable = {
      {"backend", kModelIdentity, THAW_SAME(backend)},
      {"model_file", kModelIdentity, THAW_SAME(model_file)},
      {"platform", kModelIdentity, THAW_SAME(platform)},
      {"inputs", kModelIdentity, [](const ModelConfig& a, const ModelConfig& b) { return SpecsEqual(a.inputs, b.inputs); }},
      {"outputs", kModelIdentity,
       [](const ModelConfig& a, const ModelConfig& b) { return SpecsEqual(a.outputs, b.outputs); }},
      {"memory_mb", kNewWorkers, THAW_SAME(memory_mb)},
      {"timeout_ms", kLive, THAW_SAME(timeout_ms)},
      {"start_timeout_ms", kLive, THAW_SAME(start_timeout_ms)},
      {"max_concurrency", kLive, THAW_SAME(max_concurrency)},
      {"instance_concurrency", kNewWorkers, THAW_SAME(instance_concurrency)},
      {"min_instances", kLive, THAW_SAME(min_instances)},
      {"keep_alive_s", kLive, THAW_SAME(keep_alive_s)},
      {"max_queue", kLive, THAW_SAME(max_queue)},
      {"threads", kNewWorkers, THAW_SAME(threads)},
      {"start_path", kNewWorkers, THAW_SAME(start_path)},
      {"template_standby", kNewWorkers, THAW_SAME(template_standby)},
      {"template_keep_alive_s", kLive, THAW_SAME(template_keep_alive_s)},
      {"keep_alive_policy", kLive, THAW_SAME(keep_alive_policy)},
      {"histogram_bin_ms", kLive, THAW_SAME(histogram_bin_ms)},
      {"histogram_range_s", kLive, THAW_SAME(histogram_range_s)},
      {"target_concurrency", kLive, THAW_SAME(target_concurrency)},
      {"stable_window_s", kLive, THAW_SAME(stable_window_s)},
      {"panic_window_s", kLive, THAW_SAME(panic_window_s)},
      {"provisioned_schedule", kLive,
       [](const ModelConfig& a, const ModelConfig& b) { return WindowsEqual(a.provisioned_schedule, b.provisioned_schedule); }},
      {"batching", kLive, THAW_SAME(batching)},
      {"max_batch_size", kLive, THAW_SAME(max_batch_size)},
      {"max_queue_delay_us", kLive, THAW_SAME(max_queue_delay_us)},
      {"preferred_batch_sizes", kLive, THAW_SAME(preferred_batch_sizes)},
      {"slo_p99_ms", kLive, THAW_SAME(slo_p99_ms)},
  };
  return kTable;
}

#undef THAW_SAME

const FieldRow* RowOf(std::string_view field) {
  for (const FieldRow& row : Table())
    if (row.field == field) return &row;
  return nullptr;
}

}  // namespace

std::string_view SettingChangeName(SettingChange change) {
  switch (change) {
    case SettingChange::kLive: return "live";
    case SettingChange::kNewWorkers: return "new_workers";
    case SettingChange::kModelIdentity: return "model_identity";
  }
  return "?";
}

std::optional<SettingChange> SettingChangeOf(std::string_view field) {
  const FieldRow* row = RowOf(field);
  if (!row) return std::nullopt;
  return row->change;
}

std::vector<std::string_view> ChangedFields(const ModelConfig& a, const ModelConfig& b) {
  std::vector<std::string_view> changed;
  for (std::string_view field : kModelConfigFields) {
    const FieldRow* row = RowOf(field);
    // A field without a row is a bug the unit test reports; count it as changed.
    if (!row || !row->equal(a, b)) changed.push_back(field);
  }
  return changed;
}

bool WorkersDiffer(const ModelConfig& a, const ModelConfig& b) {
  for (std::string_view field : ChangedFields(a, b)) {
    const std::optional<SettingChange> change = SettingChangeOf(field);
    if (!change || *change != SettingChange::kLive) return true;
  }
  return false;
}

}  // namespace thaw
