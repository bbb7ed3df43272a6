#include "settings/setting_changes.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace thaw {
namespace {

// Adding a config.json field (kModelConfigFields) without deciding what
// changing it restarts fails here.
TEST(SettingChanges, EveryConfigFieldHasAClass) {
  for (std::string_view field : kModelConfigFields)
    EXPECT_TRUE(SettingChangeOf(field).has_value()) << "config.json field '" << field << "' has no SettingChange";
  EXPECT_FALSE(SettingChangeOf("no_such_field").has_value());
}

// The fields a PUT refuses (repo's ApplySettings) are exactly the model's
// identity here: a field in one list and not the other fails.
TEST(SettingChanges, ModelIdentityIsWhatApplySettingsRefuses) {
  const std::set<std::string_view> refused(std::begin(kModelIdentityFields), std::end(kModelIdentityFields));
  for (std::string_view field : kModelConfigFields)
    EXPECT_EQ(SettingChangeOf(field) == SettingChange::kModelIdentity, refused.contains(field)) << field;
  for (std::string_view field : refused) EXPECT_TRUE(SettingChangeOf(field).has_value()) << field;
}

TEST(SettingChanges, RuntimeSettingsAreLiveWorkerSettingsAreNot) {
  for (std::string_view field : {"keep_alive_s", "keep_alive_policy", "max_queue", "max_concurrency", "min_instances",
                                 "timeout_ms", "start_timeout_ms", "batching", "max_batch_size", "max_queue_delay_us",
                                 "target_concurrency", "template_keep_alive_s", "provisioned_schedule", "slo_p99_ms"})
    EXPECT_EQ(SettingChangeOf(field), SettingChange::kLive) << field;
  for (std::string_view field : {"memory_mb", "threads", "instance_concurrency", "start_path", "template_standby"})
    EXPECT_EQ(SettingChangeOf(field), SettingChange::kNewWorkers) << field;
  for (std::string_view field : {"backend", "model_file", "platform", "inputs", "outputs"})
    EXPECT_EQ(SettingChangeOf(field), SettingChange::kModelIdentity) << field;
}

ModelConfig Base() {
  ModelConfig c;
  c.name = "m";
  c.inputs = {{.name = "x", .datatype = DataType::kFp32, .shape = {-1, 4}}};
  c.outputs = {{.name = "y", .datatype = DataType::kFp32, .shape = {-1, 2}}};
  return c;
}

TEST(SettingChanges, ChangedFieldsNamesEachChangeAndOnlyIt) {
  const ModelConfig a = Base();
  EXPECT_TRUE(ChangedFields(a, a).empty());
  ModelConfig b = a;
  b.keep_alive_s = 5;
  b.max_queue = 3;
  EXPECT_EQ(ChangedFields(a, b), (std::vector<std::string_view>{"keep_alive_s", "max_queue"}));
  EXPECT_FALSE(WorkersDiffer(a, b));
  b.provisioned_schedule = {{.days_mask = 1, .start_minute = 0, .end_minute = 60, .min_instances = 1}};
  b.preferred_batch_sizes = {2};
  b.batching = Batching::kFixed;
  EXPECT_FALSE(WorkersDiffer(a, b));
  b.threads = 2;
  EXPECT_TRUE(WorkersDiffer(a, b));
  EXPECT_EQ(ChangedFields(a, b).size(), 6u);
}

TEST(SettingChanges, EachWorkerFieldAloneNeedsNewWorkers) {
  const ModelConfig a = Base();
  auto differs = [&](auto edit) {
    ModelConfig b = a;
    edit(b);
    return WorkersDiffer(a, b);
  };
  EXPECT_TRUE(differs([](ModelConfig& c) { c.memory_mb = 2048; }));
  EXPECT_TRUE(differs([](ModelConfig& c) { c.instance_concurrency = 2; }));
  EXPECT_TRUE(differs([](ModelConfig& c) { c.start_path = StartPath::kExec; }));
  EXPECT_TRUE(differs([](ModelConfig& c) { c.template_standby = false; }));
  EXPECT_TRUE(differs([](ModelConfig& c) { c.model_file = "other.pt"; }));
  EXPECT_TRUE(differs([](ModelConfig& c) { c.inputs[0].shape = {-1, 5}; }));
  EXPECT_FALSE(differs([](ModelConfig& c) { c.slo_p99_ms = 50; }));
  EXPECT_FALSE(differs([](ModelConfig& c) { c.stable_window_s = 30; }));
}

}  // namespace
}  // namespace thaw
