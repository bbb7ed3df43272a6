#include "sim/profile_json.h"

#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "base/format.h"
#include "base/json_writer.h"
#include "json/object_fields.h"

namespace thaw::sim {
namespace {

using simdjson::dom::element;
using simdjson::dom::object;

Status FieldError(const std::string& source, std::string_view field, std::string_view what) {
  return InvalidArgument(source + ": field '" + std::string(field) + "': " + std::string(what));
}

StatusOr<int64_t> KeyInt(std::string_view key) {
  int64_t v = 0;
  auto [end, err] = std::from_chars(key.data(), key.data() + key.size(), v);
  if (err != std::errc() || end != key.data() + key.size()) return InvalidArgument("not an integer");
  return v;
}

// {"1": 180, "2": 185} -> sorted (rows, us) pairs.
Status ReadTable(element value, const std::string& source, const std::string& field,
                 std::vector<std::pair<int64_t, Micros>>* out) {
  object table;
  if (value.get_object().get(table)) return FieldError(source, field, "must be an object of rows -> microseconds");
  for (auto entry : table) {
    auto rows = KeyInt(entry.key);
    int64_t us = 0;
    if (!rows.ok() || *rows < 1) return FieldError(source, field, "keys must be row counts >= 1");
    if (entry.value.get_int64().get(us) || us < 1) return FieldError(source, field, "values must be integers >= 1 (us)");
    out->push_back({*rows, us});
  }
  std::sort(out->begin(), out->end());
  if (out->empty()) return FieldError(source, field, "is empty");
  // "1" and "01" are the same row count: one of them would be dropped silently.
  for (size_t i = 1; i < out->size(); ++i)
    if ((*out)[i].first == (*out)[i - 1].first)
      return FieldError(source, field, "row count " + std::to_string((*out)[i].first) + " appears twice");
  return Status::Ok();
}

// The shortest text that parses back to exactly `x` (a rounded one could
// turn a valid ratio such as 0.00004 into an invalid 0).
void WriteTable(JsonWriter& w, const std::vector<std::pair<int64_t, Micros>>& table) {
  w.BeginObject();
  for (const auto& [rows, us] : table) w.Field(std::to_string(rows), us);
  w.EndObject();
}

}  // namespace

ModelProfile ProfileFile::ForThreads(int threads) const {
  ModelProfile p = profile;
  if (auto it = exec_us_by_threads.find(threads); it != exec_us_by_threads.end()) p.exec_us_by_rows = it->second;
  auto kb = [&](std::string_view key) {
    auto it = memory_kb.find(std::string(key));
    return it == memory_kb.end() ? int64_t{0} : it->second;
  };
  p.instance_memory_kb = kb("cgroup_peak") > 0 ? kb("cgroup_peak") : kb("private");
  p.template_memory_kb = kb("template_cgroup_peak");
  return p;
}

StatusOr<ProfileFile> ParseProfile(std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  auto parsed = json::ParseObject(parser, json, source);
  if (!parsed.ok()) return parsed.status();
  const object obj = *parsed;
  static constexpr std::string_view kKnown[] = {"model",       "measured", "exec_us_by_rows", "exec_us_by_threads",
                                                "exec_cv",     "exec_spread", "exec_factor_by_idle_us", "start_us",
                                                "memory_kb"};
  if (auto problem = json::FindKeyProblem(obj, kKnown))
    return FieldError(source, problem->key, problem->repeated ? "appears twice" : "unknown field");
  ProfileFile out;
  std::string_view text;
  if (!obj["model"].get_string().get(text)) out.model = std::string(text);
  if (!obj["measured"].get_string().get(text)) out.measured = std::string(text);
  element value;
  if (obj["exec_us_by_rows"].get(value)) return FieldError(source, "exec_us_by_rows", "is required");
  THAW_RETURN_IF_ERROR(ReadTable(value, source, "exec_us_by_rows", &out.profile.exec_us_by_rows));
  if (!obj["exec_us_by_threads"].get(value)) {
    object by_threads;
    if (value.get_object().get(by_threads)) return FieldError(source, "exec_us_by_threads", "must be an object");
    for (auto entry : by_threads) {
      auto threads = KeyInt(entry.key);
      if (!threads.ok() || *threads < 1 || *threads > 64)
        return FieldError(source, "exec_us_by_threads", "keys must be thread counts 1..64");
      if (out.exec_us_by_threads.count(static_cast<int>(*threads)))
        return FieldError(source, "exec_us_by_threads", "thread count " + std::to_string(*threads) + " appears twice");
      THAW_RETURN_IF_ERROR(ReadTable(entry.value, source, "exec_us_by_threads." + std::string(entry.key),
                                     &out.exec_us_by_threads[static_cast<int>(*threads)]));
    }
  }
  if (!obj["exec_cv"].get(value) && value.get_double().get(out.profile.exec_cv))
    return FieldError(source, "exec_cv", "must be a number");
  if (!obj["exec_spread"].get(value)) {
    simdjson::dom::array spread;
    if (value.get_array().get(spread)) return FieldError(source, "exec_spread", "must be an array of numbers");
    for (element x : spread) {
      double ratio = 0;
      if (x.get_double().get(ratio)) return FieldError(source, "exec_spread", "must be an array of numbers");
      out.profile.exec_spread.push_back(ratio);
    }
  }
  if (!obj["exec_factor_by_idle_us"].get(value)) {
    object factors;
    if (value.get_object().get(factors)) return FieldError(source, "exec_factor_by_idle_us", "must be an object");
    for (auto entry : factors) {
      int64_t gap = 0;
      double factor = 0;
      const std::string key(entry.key);
      auto [end, err] = std::from_chars(key.data(), key.data() + key.size(), gap);
      if (err != std::errc() || end != key.data() + key.size() || entry.value.get_double().get(factor))
        return FieldError(source, "exec_factor_by_idle_us", "must map idle microseconds to numbers");
      out.profile.exec_factor_by_idle_us.push_back({gap, factor});
    }
    std::sort(out.profile.exec_factor_by_idle_us.begin(), out.profile.exec_factor_by_idle_us.end());
  }
  if (!obj["start_us"].get(value)) {
    object starts;
    if (value.get_object().get(starts)) return FieldError(source, "start_us", "must be an object");
    for (auto entry : starts) {
      int64_t us = 0;
      if (entry.value.get_int64().get(us) || us < 0) return FieldError(source, "start_us", "values must be integers >= 0");
      if (!out.profile.start_us.emplace(std::string(entry.key), us).second)
        return FieldError(source, "start_us", "'" + std::string(entry.key) + "' appears twice");
    }
  }
  if (!obj["memory_kb"].get(value)) {
    object memory;
    if (value.get_object().get(memory)) return FieldError(source, "memory_kb", "must be an object");
    for (auto entry : memory) {
      int64_t kb = 0;
      if (entry.value.get_int64().get(kb) || kb < 0) return FieldError(source, "memory_kb", "values must be integers >= 0");
      if (!out.memory_kb.emplace(std::string(entry.key), kb).second)
        return FieldError(source, "memory_kb", "'" + std::string(entry.key) + "' appears twice");
    }
  }
  if (Status valid = out.profile.Validate(); !valid.ok()) return InvalidArgument(source + ": " + valid.message());
  return out;
}

StatusOr<ProfileFile> ReadProfileFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("profile '" + path + "' cannot be read");
  std::stringstream text;
  text << in.rdbuf();
  return ParseProfile(text.str(), path);
}

std::string EncodeProfile(const ProfileFile& p) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Field("model", p.model).Field("measured", p.measured).Key("exec_us_by_rows");
  WriteTable(w, p.profile.exec_us_by_rows);
  if (!p.exec_us_by_threads.empty()) {
    w.Key("exec_us_by_threads").BeginObject();
    for (const auto& [threads, table] : p.exec_us_by_threads) {
      w.Key(std::to_string(threads));
      WriteTable(w, table);
    }
    w.EndObject();
  }
  w.Field("exec_cv", p.profile.exec_cv);
  if (!p.profile.exec_spread.empty()) {
    w.Key("exec_spread").BeginArray();
    for (double ratio : p.profile.exec_spread) w.Double(ratio);
    w.EndArray();
  }
  if (!p.profile.exec_factor_by_idle_us.empty()) {
    w.Key("exec_factor_by_idle_us").BeginObject();
    for (const auto& [gap, factor] : p.profile.exec_factor_by_idle_us) w.Key(std::to_string(gap)).Double(factor);
    w.EndObject();
  }
  w.Key("start_us").BeginObject();
  for (const auto& [path, us] : p.profile.start_us) w.Field(path, us);
  w.EndObject();
  if (!p.memory_kb.empty()) {
    w.Key("memory_kb").BeginObject();
    for (const auto& [kind, kb] : p.memory_kb) w.Field(kind, kb);
    w.EndObject();
  }
  w.EndObject();
  return out;
}

std::string ProfileSummaryText(const ProfileFile& profile) {
  const ModelProfile& p = profile.profile;
  // p99 of a batch size: its median times the spread's (or a lognormal's, without one) 0.99 ratio.
  const double p99_ratio = !p.exec_spread.empty() ? p.SpreadAt(0.99) : std::exp(2.326 * std::sqrt(std::log1p(p.exec_cv * p.exec_cv)));
  std::string out = "  rows   p50 ms   p99 ms   (one execution's round trip; p99 from the " +
                    std::string(p.exec_spread.empty() ? "execution CV" : "measured spread") + ")\n";
  for (const auto& [rows, us] : p.exec_us_by_rows) {
    char line[96];
    std::snprintf(line, sizeof line, "  %4lld %8s %8s\n", static_cast<long long>(rows), SignificantText(us / 1000.0).c_str(),
                  SignificantText(us * p99_ratio / 1000.0).c_str());
    out += line;
  }
  if (!p.exec_spread.empty())
    out += "  spread (" + std::to_string(p.exec_spread.size()) + " points, time / median): p50 " +
           SignificantText(p.SpreadAt(0.5)) + ", p90 " + SignificantText(p.SpreadAt(0.9)) + ", p99 " +
           SignificantText(p.SpreadAt(0.99)) + ", p99.9 " + SignificantText(p.SpreadAt(0.999)) + ", max " +
           SignificantText(p.SpreadAt(1.0)) + "\n";
  if (!p.exec_factor_by_idle_us.empty()) {
    out += "  time by idle gap before it (x median):";
    for (const auto& [gap, factor] : p.exec_factor_by_idle_us)
      out += " " + SignificantText(gap / 1000.0) + " ms " + SignificantText(factor);
    out += "\n";
  }
  out += "  start to ready:";
  for (const auto& [level, us] : p.start_us) out += " " + level + " " + SignificantText(us / 1000.0) + " ms";
  out += "\n";
  if (!profile.memory_kb.empty()) {
    out += "  memory (MB):";
    for (const auto& [kind, kb] : profile.memory_kb) out += " " + kind + " " + SignificantText(kb / 1024.0);
    out += "\n";
  }
  return out;
}

std::vector<std::string> StartKeysFor(const ModelConfig& config) {
  switch (config.start_path) {
    case StartPath::kExec: return {"exec"};
    case StartPath::kZygote: return {"prepared", "zygote"};
    case StartPath::kTemplate:
      if (config.template_standby) return {"standby", "template"};
      return {"template"};
  }
  return {};
}

Status CheckStartTimes(const ProfileFile& profile, const ModelConfig& config, const std::string& source) {
  const std::vector<std::string> keys = StartKeysFor(config);
  for (const std::string& key : keys)
    if (profile.profile.start_us.count(key)) return Status::Ok();
  std::string has;
  for (const auto& [key, us] : profile.profile.start_us) has += (has.empty() ? "" : ", ") + key;
  std::string wanted;
  for (const std::string& key : keys) wanted += (wanted.empty() ? "" : " or ") + key;
  const std::string path(StartPathName(config.start_path));
  return InvalidArgument(
      "profile " + source + " (model '" + profile.model + "') has no start time for start path '" + path +
      "' of config '" + config.name + "' (start_us needs " + wanted + "; it has " + (has.empty() ? "none" : has) +
      "). A profile from `thaw profile --from-usage` holds only the starts its server made: measure them with "
      "`thaw profile " + profile.model + " --paths " + path + " --out measured.json` and add `--start-times-from "
      "measured.json`, or simulate the start path that server ran");
}

std::vector<std::string> BorrowStartTimes(ProfileFile* profile, const ProfileFile& measured) {
  std::vector<std::string> filled;
  for (const auto& [key, us] : measured.profile.start_us)
    if (profile->profile.start_us.emplace(key, us).second) filled.push_back(key);
  return filled;
}

StatusOr<std::vector<size_t>> PairProfiles(std::vector<GivenConfig>& configs, const std::vector<ProfileFile>& profiles) {
  std::vector<size_t> pairs;
  for (GivenConfig& given : configs) {
    std::optional<size_t> match;
    for (size_t i = 0; i < profiles.size(); ++i)
      if (profiles[i].model == given.config.name) match = i;
    const bool only = configs.size() == 1 && profiles.size() == 1;
    if (!match && only && given.named)
      return InvalidArgument("the config is model '" + given.config.name + "' (its directory) but the profile measured '" +
                             profiles[0].model + "'");
    if (!match && only) {
      match = 0;
      given.config.name = profiles[0].model;  // a config.json outside a model directory: the profile names it
    }
    if (!match) return InvalidArgument("no profile has \"model\": \"" + given.config.name + "\"");
    pairs.push_back(*match);
  }
  return pairs;
}

}  // namespace thaw::sim
