#include "cli/variants_command.h"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <functional>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "json/object_fields.h"

extern char** environ;

namespace thaw::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kMethods[] = {"int8-dynamic", "int8-static", "prune-magnitude", "prune-channels", "distill",
                                    "distill-int8"};

std::string RepoOrDefault(const std::string& repo) {
  if (!repo.empty()) return repo;
  return fs::is_directory("examples/models") ? "examples/models" : THAW_DEFAULT_REPO;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Flags with a value; the one positional argument is the model.
bool ParseFlags(const std::vector<std::string>& args, std::string* model, std::string* error,
                const std::function<bool(const std::string& flag, const std::string& value, bool* ok)>& flag,
                const std::function<bool(const std::string& flag)>& boolean = {}) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!a.starts_with("--")) {
      if (!model->empty()) {
        *error = "unexpected argument '" + a + "'";
        return false;
      }
      *model = a;
      continue;
    }
    if (boolean && boolean(a)) continue;
    if (i + 1 >= args.size()) {
      *error = a + " needs a value";
      return false;
    }
    const std::string& v = args[++i];
    bool ok = true;
    if (!flag(a, v, &ok)) {
      *error = "unknown flag '" + a + "'";
      return false;
    }
    if (!ok) {
      *error = "bad value for " + a + ": '" + v + "'";
      return false;
    }
  }
  if (model->empty()) {
    *error = "which model? give its name (a directory of the repository)";
    return false;
  }
  return true;
}

std::string SizeText(double bytes) {
  if (bytes >= 1024 * 1024) return DecimalText(bytes / (1024 * 1024), 2) + " MB";
  return DecimalText(bytes / 1024, 1) + " KB";
}

}  // namespace

std::string OptimizeHelp() {
  return R"(  thaw optimize MODEL [--repo DIR] [--method all|M[,M...]] [--epochs N] [--sparsity S]
      Make smaller variants of MODEL, each a model directory of its own,
      <repo>/<MODEL>-<method>, with variant.json: how it was made, its file
      size and parameters, and its test accuracy beside the base's, both
      measured on the base's held-out test split. Methods (all: those that
      apply to the model):
        int8-dynamic     int8 Linear weights (MLP, text encoder)
        int8-static      post-training static int8, calibrated (CNN)
        prune-magnitude  global L1 pruning to --sparsity + fine-tune (CNN)
        prune-channels   structured: drops --sparsity of each block's
                         expansion channels + fine-tune (CNN)
        distill          a smaller student trained on the model's outputs (CNN)
        distill-int8     the student, then int8-static (CNN)
      Runs models/optimize.py on Debian's python3-torch; seeded.
      --epochs N        training epochs (default: distill 3, fine-tune 1)
      --sparsity S      share removed by pruning, in (0, 1) (default 0.5)
      --out-root DIR    where variant directories go (default: the repository)
      --python PATH     the interpreter (default /usr/bin/python3)
      --request FILE --references-dir DIR
                        also write each variant's outputs for this v2 request
                        to DIR/<variant>.json
)";
}

std::string VariantsHelp() {
  return R"(  thaw variants MODEL [--repo DIR] [--json]
      MODEL and its variants (directories with a variant.json naming it as
      their base, as thaw optimize writes them) side by side: method, file
      size, parameters, test accuracy and points lost against MODEL.
)";
}

bool ParseOptimizeArgs(const std::vector<std::string>& args, OptimizeCommandOptions* o, std::string* error) {
  return ParseFlags(args, &o->model, error, [&](const std::string& a, const std::string& v, bool* ok) {
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
  return ParseFlags(
      args, &o->model, error,
      [&](const std::string& a, const std::string& v, bool*) {
        if (a != "--repo") return false;
        o->repo = v;
        return true;
      },
      [&](const std::string& a) { return a == "--json" ? (o->json = true) : false; });
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

int RunVariants(const VariantsCommandOptions& o) {
  const fs::path repo = RepoOrDefault(o.repo);
  const fs::path base_dir = repo / o.model;
  if (!fs::is_regular_file(base_dir / "config.json")) {
    std::cerr << "thaw: model '" << o.model << "' not found in " << repo.string() << "\n";
    return 2;
  }
  struct Row {
    std::string name, method;
    double file_bytes = 0, parameters = 0, accuracy = NAN, delta_points = NAN;
  };
  std::vector<Row> rows;
  {
    Row base{o.model, "base"};
    simdjson::dom::parser parser;
    const std::string text = ReadFile(base_dir / "accuracy.json");
    if (auto obj = json::ParseObject(parser, text, (base_dir / "accuracy.json").string()); obj.ok()) {
      double acc = 0;
      if ((*obj)["test_accuracy"].get_double().get(acc) == simdjson::SUCCESS) base.accuracy = acc;
    }
    rows.push_back(base);
  }
  std::vector<std::string> errors;
  for (const auto& entry : fs::directory_iterator(repo)) {
    const fs::path file = entry.path() / "variant.json";
    if (!fs::is_regular_file(file)) continue;
    simdjson::dom::parser parser;
    const std::string text = ReadFile(file);
    auto obj = json::ParseObject(parser, text, file.string());
    if (!obj.ok()) {
      errors.push_back(obj.status().message());
      continue;
    }
    std::string_view base;
    if ((*obj)["base"].get_string().get(base) != simdjson::SUCCESS || base != o.model) continue;
    Row row{entry.path().filename().string()};
    std::string_view method;
    double value = 0;
    if ((*obj)["method"].get_string().get(method) == simdjson::SUCCESS) row.method = method;
    if ((*obj)["file_bytes"].get_double().get(value) == simdjson::SUCCESS) row.file_bytes = value;
    if ((*obj)["parameters"].get_double().get(value) == simdjson::SUCCESS) row.parameters = value;
    if ((*obj)["test_accuracy"].get_double().get(value) == simdjson::SUCCESS) row.accuracy = value;
    if ((*obj)["base_test_accuracy"].get_double().get(value) == simdjson::SUCCESS) {
      row.delta_points = (row.accuracy - value) * 100;
      rows[0].accuracy = value;  // measured in the same run as the variant's
    }
    if ((*obj)["base_file_bytes"].get_double().get(value) == simdjson::SUCCESS) rows[0].file_bytes = value;
    if ((*obj)["base_parameters"].get_double().get(value) == simdjson::SUCCESS) rows[0].parameters = value;
    rows.push_back(row);
  }
  std::sort(rows.begin() + 1, rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
  for (const std::string& e : errors) std::cerr << "thaw: skipped " << e << "\n";
  if (o.json) {
    std::cout << "[";
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      auto num = [](double v, int d) { return std::isnan(v) ? std::string("null") : DecimalText(v, d); };
      std::cout << (i ? "," : "") << "\n  {\"model\":\"" << r.name << "\",\"method\":\"" << r.method
                << "\",\"file_bytes\":" << num(r.file_bytes, 0) << ",\"parameters\":" << num(r.parameters, 0)
                << ",\"test_accuracy\":" << num(r.accuracy, 4)
                << ",\"accuracy_delta_points\":" << num(i == 0 ? 0.0 : r.delta_points, 2) << "}";
    }
    std::cout << "\n]\n";
    return 0;
  }
  if (rows.size() == 1)
    std::cout << "no variants of '" << o.model << "' in " << repo.string() << " (make some with: thaw optimize "
              << o.model << ")\n";
  std::printf("%-28s %-16s %11s %11s %9s %12s\n", "model", "method", "file", "parameters", "accuracy",
              "vs base");
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    const std::string delta =
        i == 0 ? "" : std::isnan(r.delta_points) ? "?" : (r.delta_points >= 0 ? "+" : "") + DecimalText(r.delta_points, 2) + " pt";
    std::printf("%-28s %-16s %11s %11.0f %9s %12s\n", r.name.c_str(), r.method.c_str(), SizeText(r.file_bytes).c_str(),
                r.parameters, std::isnan(r.accuracy) ? "?" : DecimalText(r.accuracy, 4).c_str(), delta.c_str());
  }
  return 0;
}

}  // namespace thaw::cli
