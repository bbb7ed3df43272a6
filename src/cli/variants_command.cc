#include "cli/variants_command.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/json_writer.h"
#include "cli/cli.h"
#include "cli/profile_command.h"
#include "json/object_fields.h"
#include "metering/usage_stats.h"
#include "policy/pricing.h"
#include "repo/model_config.h"
#include "sim/profile_json.h"
#include "sim/simulator.h"
#include "trace/synthetic.h"

extern char** environ;

namespace thaw::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMethods[] = {"int8-dynamic", "int8-static", "prune-magnitude", "prune-channels", "distill",
                                    "distill-int8"};

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string SizeText(double bytes) {
  if (bytes >= 1024 * 1024) return DecimalText(bytes / (1024 * 1024), 2) + " MB";
  return DecimalText(bytes / 1024, 1) + " KB";
}

}  // namespace

bool ParseOptimizeArgs(const std::vector<std::string>& args, OptimizeCommandOptions* o, std::string* error) {
  return ParseModelAndFlags("optimize", args, &o->model, error, [&](const std::string& a, const std::string& v, bool* ok) {
    if (a == "--repo") o->repo = v;
    else if (a == "--out-root") o->out_root = v;
    else if (a == "--python") o->python = v;
    else if (a == "--script") o->script = v;
    else if (a == "--request") o->request_path = v;
    else if (a == "--references-dir") o->references_dir = v;
    else if (a == "--method") {
      o->methods = v;
      if (v != "all") {
        std::stringstream in(v);
        std::string m;
        while (std::getline(in, m, ','))
          *ok = *ok && std::find(std::begin(kMethods), std::end(kMethods), m) != std::end(kMethods);
      }
    } else if (a == "--epochs") {
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), o->epochs);
      *ok = err == std::errc() && end == v.data() + v.size() && o->epochs >= 1 && o->epochs <= 100;
    } else if (a == "--sparsity") {
      char* end = nullptr;
      o->sparsity = std::strtod(v.c_str(), &end);
      *ok = end != v.c_str() && *end == '\0' && o->sparsity > 0 && o->sparsity < 1;
    } else {
      return false;
    }
    return true;
  }) && (o->request_path.empty() == o->references_dir.empty() ||
         (*error = "--request and --references-dir go together", false));
}

bool ParseVariantsArgs(const std::vector<std::string>& args, VariantsCommandOptions* o, std::string* error) {
  return ParseModelAndFlags(
      "variants", args, &o->model, error,
      [&](const std::string& a, const std::string& v, bool* ok) {
        auto integer = [&](int* out, int least, int most) {
          auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), *out);
          *ok = err == std::errc() && end == v.data() + v.size() && *out >= least && *out <= most;
        };
        auto number = [&](double* out, double least, double most) {
          char* end = nullptr;
          *out = std::strtod(v.c_str(), &end);
          *ok = end != v.c_str() && *end == '\0' && *out >= least && *out <= most;
        };
        if (a == "--repo") o->repo = v;
        else if (a == "--request") o->request_path = v;
        else if (a == "--cold-reps") integer(&o->cold_reps, 1, 1000);
        else if (a == "--reps") integer(&o->reps, 2, 100000);
        else if (a == "--served-s") integer(&o->served_s, 0, 3600);
        else if (a == "--rate") number(&o->rate_per_s, 0.001, 100000);
        else if (a == "--duration-s") number(&o->duration_s, 1, 30 * 86400);
        else return false;
        return true;
      },
      [&](const std::string& a) {
        if (a == "--json") return o->json = true;
        if (a == "--measure") return o->measure = true;
        return false;
      });
}

int RunOptimize(const OptimizeCommandOptions& o) {
  const fs::path model_dir = fs::path(RepoOrDefault(o.repo)) / o.model;
  if (!fs::is_regular_file(model_dir / "config.json")) {
    std::cerr << "thaw: model '" << o.model << "' not found: " << (model_dir / "config.json").string()
              << " does not exist\n";
    return 2;
  }
  const std::string script = o.script.empty() ? THAW_OPTIMIZE_SCRIPT : o.script;
  if (!fs::is_regular_file(script)) {
    std::cerr << "thaw: the optimize script " << script << " is missing (it ships in the source tree's models/)\n";
    return 2;
  }
  if (::access(o.python.c_str(), X_OK) != 0) {
    std::cerr << "thaw: no Python interpreter at " << o.python
              << " (install Debian's python3-torch, or give --python)\n";
    return 2;
  }
  std::vector<std::string> argv = {o.python, script, "--model-dir", model_dir.string(), "--method", o.methods,
                                   "--sparsity", DecimalText(o.sparsity, 4)};
  if (o.epochs > 0) argv.insert(argv.end(), {"--epochs", std::to_string(o.epochs)});
  if (!o.out_root.empty()) argv.insert(argv.end(), {"--out-root", o.out_root});
  if (!o.request_path.empty()) argv.insert(argv.end(), {"--request", o.request_path, "--references-dir", o.references_dir});
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_t pid = 0;
  if (int err = ::posix_spawn(&pid, raw[0], nullptr, nullptr, raw.data(), environ); err != 0) {
    std::cerr << "thaw: cannot run " << o.python << ": " << std::strerror(err) << "\n";
    return 1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::cerr << "thaw: " << script << " was killed by signal " << WTERMSIG(status) << "\n";
  return 1;
}

namespace {

double Get(simdjson::dom::object obj, std::string_view key) {
  double value = NAN;
  return obj[key].get_double().get(value) == simdjson::SUCCESS ? value : NAN;
}

}  // namespace

StatusOr<std::vector<VariantRow>> ReadVariants(const fs::path& repo, const std::string& model) {
  const fs::path base_dir = repo / model;
  if (!fs::is_regular_file(base_dir / "config.json"))
    return NotFound("model '" + model + "' not found in " + repo.string());
  std::vector<VariantRow> rows(1);
  rows[0].name = model;
  rows[0].method = "base";
  {
    simdjson::dom::parser parser;
    const std::string text = ReadFile(base_dir / "accuracy.json");
    if (auto obj = json::ParseObject(parser, text, "accuracy.json"); obj.ok()) rows[0].accuracy = Get(*obj, "test_accuracy");
    if (auto config = LoadModelConfig(base_dir.string()); config.ok()) {
      std::error_code ec;
      rows[0].file_bytes = static_cast<double>(fs::file_size(config->ModelPath(), ec));
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(repo, ec)) {
    const fs::path file = entry.path() / "variant.json";
    if (!fs::is_regular_file(file)) continue;
    simdjson::dom::parser parser;
    const std::string text = ReadFile(file);
    auto obj = json::ParseObject(parser, text, file.string());
    if (!obj.ok()) {
      std::cerr << "thaw: skipped " << obj.status().message() << "\n";
      continue;
    }
    std::string_view base, method;
    if ((*obj)["base"].get_string().get(base) != simdjson::SUCCESS || base != model) continue;
    VariantRow row;
    row.name = entry.path().filename().string();
    if ((*obj)["method"].get_string().get(method) == simdjson::SUCCESS) row.method = method;
    row.file_bytes = Get(*obj, "file_bytes");
    row.parameters = Get(*obj, "parameters");
    row.accuracy = Get(*obj, "test_accuracy");
    // The base measured again in the same run as the variant, on the same split.
    if (const double base_accuracy = Get(*obj, "base_test_accuracy"); !std::isnan(base_accuracy)) {
      row.delta_points = (row.accuracy - base_accuracy) * 100;
      rows[0].accuracy = base_accuracy;
    }
    if (const double v = Get(*obj, "base_parameters"); !std::isnan(v)) rows[0].parameters = v;
    rows.push_back(row);
  }
  std::sort(rows.begin() + 1, rows.end(), [](const VariantRow& a, const VariantRow& b) { return a.name < b.name; });
  return rows;
}

namespace {

// Profiles `row` with real workers (writing <dir>/profile.json) and prices a Poisson stream in the simulator.
Status Measure(const VariantsCommandOptions& o, const fs::path& repo, const std::string& request_path, VariantRow* row) {
  auto config = LoadModelConfig((repo / row->name).string());
  if (!config.ok()) return config.status();
  ProfileCommandOptions p;
  p.model = row->name;
  p.repo = repo.string();
  p.request_path = request_path;
  p.out_path = (repo / row->name / "profile.json").string();
  p.batch_sizes = {1, 8};
  p.threads = {config->threads};
  p.start_paths = {"exec", "template"};
  p.reps = o.reps;
  p.spread_reps = std::max(2, o.reps);
  p.cold_reps = o.cold_reps;
  p.served_s = o.served_s;
  p.print_summary = false;
  std::cerr << "measuring " << row->name << " ...\n";
  if (RunProfile(p) != 0) return Internal("thaw profile " + row->name + " failed (above)");
  auto profile = sim::ReadProfileFile(p.out_path);
  if (!profile.ok()) return profile.status();
  row->measured = true;
  row->b1_ms = static_cast<double>(profile->profile.ExecUs(1)) / 1000;
  row->b8_ms = static_cast<double>(profile->profile.ExecUs(8)) / 1000;
  const auto& start = profile->profile.start_us;
  auto level = [&](std::initializer_list<const char*> names) -> double {
    for (const char* n : names)
      if (auto it = start.find(n); it != start.end()) return static_cast<double>(it->second) / 1000;
    return NAN;
  };
  row->cold_template_ms = level({"standby", "template"});
  row->cold_exec_ms = level({"exec"});
  auto kb = [&](const char* key) -> double {
    auto it = profile->memory_kb.find(key);
    return it == profile->memory_kb.end() ? NAN : static_cast<double>(it->second) / 1024;
  };
  row->rss_mb = kb("rss");
  row->private_mb = kb("private");

  auto trace = trace::MakePoissonTrace({.rate_per_s = o.rate_per_s, .duration_s = o.duration_s});
  if (!trace.ok()) return trace.status();
  std::vector<sim::SimArrival> arrivals;
  arrivals.reserve(trace->arrivals.size());
  for (const trace::Arrival& a : trace->arrivals) arrivals.push_back({a.time_us, 0, 1});
  auto result = sim::Simulate({sim::SimModel{*config, profile->ForThreads(config->threads)}}, arrivals,
                              policy::AwsLambdaX86());
  if (!result.ok()) return result.status();
  for (const metering::ModelUsage& m : result->report.models) {
    if (m.model != row->name || m.ok == 0) continue;
    const policy::UsageTotals& u = m.usage;
    const double billed_gb_s =
        u.on_demand_duration_gb_s + u.init_gb_s + u.provisioned_capacity_gb_s + u.provisioned_duration_gb_s;
    row->gb_s_per_million = billed_gb_s / static_cast<double>(m.ok) * 1e6;
    row->usd_per_million = m.usd_per_million_ok;
  }
  return Status::Ok();
}

std::string Num(double v, int decimals) { return std::isnan(v) ? "?" : DecimalText(v, decimals); }
std::string Ratio(double v, double base) {
  return std::isnan(v) || std::isnan(base) || base <= 0 ? "?" : DecimalText(v / base, 2) + "x";
}

}  // namespace

int RunVariants(const VariantsCommandOptions& o) {
  const fs::path repo = RepoOrDefault(o.repo);
  auto rows = ReadVariants(repo, o.model);
  if (!rows.ok()) {
    std::cerr << "thaw: " << rows.status().message() << "\n";
    return 2;
  }
  if (o.measure) {
    const std::string request_path =
        o.request_path.empty() ? (repo.parent_path() / "requests" / (o.model + ".json")).string() : o.request_path;
    if (!fs::is_regular_file(request_path)) {
      std::cerr << "thaw: --request " << request_path << " does not exist (a KServe v2 request for " << o.model
                << ")\n";
      return 2;
    }
    for (VariantRow& row : *rows) {
      if (Status measured = Measure(o, repo, request_path, &row); !measured.ok()) {
        std::cerr << "thaw: " << row.name << ": " << measured.message() << "\n";
        return 1;
      }
    }
  }
  const VariantRow& base = rows->front();
  if (o.json) {
    // As the table shows them: rounded; unknown values null.
    auto rounded = [](double v, int decimals) {
      const double scale = std::pow(10.0, decimals);
      return std::round(v * scale) / scale;
    };
    std::string json;
    JsonWriter w(&json);
    w.BeginArray();
    for (size_t i = 0; i < rows->size(); ++i) {
      const VariantRow& r = (*rows)[i];
      w.BeginObject().Field("model", r.name).Field("method", r.method);
      w.Field("file_bytes", rounded(r.file_bytes, 0)).Field("parameters", rounded(r.parameters, 0));
      w.Field("test_accuracy", rounded(r.accuracy, 4));
      w.Field("accuracy_delta_points", i == 0 ? 0.0 : rounded(r.delta_points, 2));
      if (r.measured) {
        w.Field("b1_ms", rounded(r.b1_ms, 3)).Field("b8_ms", rounded(r.b8_ms, 3));
        w.Field("cold_template_ms", rounded(r.cold_template_ms, 2)).Field("cold_exec_ms", rounded(r.cold_exec_ms, 1));
        w.Field("rss_mb", rounded(r.rss_mb, 1)).Field("private_mb", rounded(r.private_mb, 1));
        w.Field("gb_s_per_million", rounded(r.gb_s_per_million, 3));
        w.Field("usd_per_million", rounded(r.usd_per_million, 4)).Field("rate_per_s", o.rate_per_s);
      }
      w.EndObject();
    }
    w.EndArray();
    std::cout << json << "\n";
    return 0;
  }
  if (rows->size() == 1)
    std::cout << "no variants of '" << o.model << "' in " << repo.string() << " (make some with: thaw optimize "
              << o.model << ")\n";
  std::printf("%-26s %-15s %10s %8s %9s", "model", "method", "file", "accuracy", "vs base");
  if (o.measure)
    std::printf(" %8s %8s %7s %9s %8s %8s %10s %9s %7s", "b1 ms", "b8 ms", "b1 x", "cold tpl", "cold exe",
                "priv MB", "GB-s/1M", "$/1M", "$ x");
  std::printf("\n");
  for (size_t i = 0; i < rows->size(); ++i) {
    const VariantRow& r = (*rows)[i];
    const std::string delta = i == 0                     ? ""
                              : std::isnan(r.delta_points) ? "?"
                                                           : (r.delta_points >= 0 ? "+" : "") + DecimalText(r.delta_points, 2) + " pt";
    std::printf("%-26s %-15s %10s %8s %9s", r.name.c_str(), r.method.c_str(), SizeText(r.file_bytes).c_str(),
                Num(r.accuracy, 4).c_str(), delta.c_str());
    if (o.measure)
      std::printf(" %8s %8s %7s %9s %8s %8s %10s %9s %7s", Num(r.b1_ms, 3).c_str(), Num(r.b8_ms, 3).c_str(),
                  Ratio(r.b1_ms, base.b1_ms).c_str(), Num(r.cold_template_ms, 1).c_str(), Num(r.cold_exec_ms, 0).c_str(),
                  Num(r.private_mb, 1).c_str(), Num(r.gb_s_per_million, 1).c_str(), Num(r.usd_per_million, 3).c_str(),
                  Ratio(r.usd_per_million, base.usd_per_million).c_str());
    std::printf("\n");
  }
  if (o.measure)
    std::cout << "\nb1/b8: round trip of one execution of 1 and 8 rows on a warm instance (median of " << o.reps
              << "); cold: start to ready forked from the model's template, and as a fresh process (median of "
              << o.cold_reps << "); priv MB: a warm instance's private memory; GB-s and $ per 1 M requests: a Poisson "
              << DecimalText(o.rate_per_s, 0) << " req/s stream for " << DecimalText(o.duration_s, 0)
              << " s simulated with each model's config and measured profile (AWS Lambda x86 prices). Profiles "
                 "written to <model>/profile.json.\n";
  return 0;
}

}  // namespace thaw::cli
