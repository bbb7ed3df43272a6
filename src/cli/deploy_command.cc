#include "cli/deploy_command.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/cli.h"
#include "repo/model_config.h"

namespace thaw::cli {
namespace fs = std::filesystem;

bool ParseDeployArgs(const std::vector<std::string>& args, DeployCommandOptions* o, std::string* error) {
  const bool parsed = ParseModelAndFlags("deploy", args, &o->action, error,
                                         [&](const std::string& a, const std::string& v, bool* ok) {
    auto integer = [&](auto* out, int64_t least, int64_t most) {
      auto [end, err] = std::from_chars(v.data(), v.data() + v.size(), *out);
      *ok = err == std::errc() && end == v.data() + v.size() && *out >= least && *out <= most;
    };
    if (a == "--target") {
      auto target = deploy::ParseTarget(v);
      *ok = target.has_value();
      if (target) o->target = *target;
      o->target_given = true;
    } else if (a == "--repo") {
      o->repo = v;
    } else if (a == "--out") {
      o->out = v;
    } else if (a == "--models") {
      o->models = SplitCommas(v);
      *ok = std::none_of(o->models.begin(), o->models.end(), [](const std::string& m) { return m.empty(); });
    } else if (a == "--image") {
      o->render.image = v;
    } else if (a == "--namespace") {
      o->render.namespace_name = v;
    } else if (a == "--storage-uri") {
      o->render.storage_uri = v;
    } else if (a == "--max-scale") {
      integer(&o->render.max_scale, 0, 100000);
    } else if (a == "--pod-overhead-mb") {
      integer(&o->render.pod_overhead_mb, 0, 1 << 20);
    } else if (a == "--capacity-mb") {
      integer(&o->render.capacity_mb, 128, 1 << 24);
    } else if (a == "--max-revision-timeout-s") {
      integer(&o->render.max_revision_timeout_s, 1, 86400);
    } else {
      return false;
    }
    return true;
  });
  if (!parsed) {
    if (*error == "thaw deploy needs a MODEL") *error = "deploy needs an action: render or mappings";
    return false;
  }
  if (o->action != "render" && o->action != "mappings") {
    *error = "deploy: unknown action '" + o->action + "'; render or mappings";
    return false;
  }
  if (!o->target_given) {
    *error = "deploy " + o->action + " needs --target knative, kserve, lambda or modelmesh";
    return false;
  }
  if (Status valid = deploy::Validate(o->render); !valid.ok()) {
    *error = "deploy: " + valid.message();
    return false;
  }
  return true;
}

int RunDeploy(const DeployCommandOptions& o) {
  if (o.action == "mappings") {
    std::cout << deploy::MappingTable(o.target);
    return 0;
  }
  const std::string repo = RepoOrDefault(o.repo);
  auto scan = ScanRepository(repo);
  if (!scan.ok()) {
    std::cerr << "thaw: " << scan.status().message() << "\n";
    return 1;
  }
  auto wanted = [&](const std::string& name) {
    return o.models.empty() || std::find(o.models.begin(), o.models.end(), name) != o.models.end();
  };
  bool invalid = false;
  for (const auto& e : scan->errors) {
    if (!wanted(e.model)) continue;
    std::cerr << "thaw: model '" << e.model << "': " << e.status.message() << "\n";
    invalid = true;
  }
  std::vector<ModelConfig> models;
  for (const auto& m : scan->models)
    if (wanted(m.name)) models.push_back(m);
  for (const auto& name : o.models) {
    if (std::none_of(models.begin(), models.end(), [&](auto& m) { return m.name == name; }) &&
        std::none_of(scan->errors.begin(), scan->errors.end(), [&](auto& e) { return e.model == name; })) {
      std::cerr << "thaw: --models: no model '" << name << "' in " << repo << "\n";
      invalid = true;
    }
  }
  if (invalid) return 1;
  auto files = deploy::Render(o.target, models, o.render);
  if (!files.ok()) {
    std::cerr << "thaw: deploy render --target " << deploy::TargetName(o.target) << ": " << files.status().message()
              << "\n";
    return 1;
  }
  const fs::path out = o.out.empty() ? fs::path("thaw-" + std::string(deploy::TargetName(o.target))) : fs::path(o.out);
  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) {
    std::cerr << "thaw: cannot create " << out.string() << ": " << ec.message() << "\n";
    return 1;
  }
  for (const auto& file : *files) {
    std::ofstream f(out / file.name, std::ios::binary | std::ios::trunc);
    f << file.json;
    if (!f) {
      std::cerr << "thaw: cannot write " << (out / file.name).string() << "\n";
      return 1;
    }
  }
  std::cout << "thaw deploy render: " << files->size() << " objects for " << deploy::TargetName(o.target) << " ("
            << models.size() << " models from " << repo << ") in " << out.string() << "\n"
            << "  apply: kubectl apply -f " << out.string() << "\n";
  return 0;
}

}  // namespace thaw::cli
