#include "cli/init_command.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "base/json_writer.h"
#include "cli/cli.h"
#include "json/object_fields.h"

extern char** environ;

namespace thaw::cli {
namespace fs = std::filesystem;

std::string InitHelp() {
  return R"(  thaw init MODEL_FILE [--name N] [--repo DIR] [--example-input FILE] [--force]
      Make a model directory for a TorchScript file (torch.jit.trace or
      torch.jit.script, then torch.jit.save): checks that this build's
      libtorch (1.13) loads it, reads forward's argument names, and writes
      DIR/N/model.pt, a minimal config.json and a sample request
      DIR/N/request.json, so that `thaw serve --repo DIR` serves it.
      Outputs are output__0, output__1, ... in the order forward returns
      them (a Tensor, or a tuple or list of Tensors).
      --name    model name (default: the file name without extension)
      --repo    model repository to write into (default ./thaw-models)
      --example-input  a JSON file with one call's inputs, as a KServe v2
                request: {"inputs": [{"name": "x", "datatype": "FP32",
                "shape": [1, 4]}, ...]} in forward's order ("data" is
                ignored). Needed unless each input reaches a linear layer
                first, maybe through element-wise ops such as a
                standardisation (its shape is then read from the weight); a dim 0
                shared by every input and output becomes the batch (-1)
      --force   replace the files of an existing DIR/N
)";
}

bool ParseInitArgs(const std::vector<std::string>& args, InitCommandOptions* o, std::string* error) {
  const bool parsed = ParseModelAndFlags(
      "init", args, &o->model_file, error,
      [&](const std::string& a, const std::string& v, bool* ok) {
        if (a == "--name") {
          o->name = v;
          *ok = ValidModelName(v);
        } else if (a == "--repo") {
          o->repo = v;
          *ok = !v.empty();
        } else if (a == "--example-input") {
          o->example_input = v;
          *ok = !v.empty();
        } else if (a == "--worker") {
          o->worker_path = v;
        } else {
          return false;
        }
        return true;
      },
      [&](const std::string& a) {
        if (a != "--force") return false;
        o->force = true;
        return true;
      });
  if (!parsed) {
    if (*error == "thaw init needs a MODEL") *error = "thaw init needs a MODEL_FILE (a TorchScript .pt file)";
    if (error->starts_with("--name: bad value"))
      *error += " (a model name is letters, digits, '_', '-' and '.', not starting with '.')";
    return false;
  }
  if (o->name.empty()) o->name = DefaultModelName(o->model_file);
  return true;
}

namespace {
bool NameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.';
}
}  // namespace

std::string DefaultModelName(std::string_view model_file) {
  std::string name = fs::path(model_file).stem().string();
  for (char& c : name)
    if (!NameChar(c)) c = '-';
  while (!name.empty() && name[0] == '.') name.erase(0, 1);
  if (name.size() > 128) name.resize(128);
  return name.empty() ? "model" : name;
}

bool ValidModelName(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name)
    if (!NameChar(c)) return false;
  return true;
}

namespace {

// One {"name", "datatype", "shape"} object; `negative_ok` allows -1 dims.
StatusOr<TensorSpec> ReadSpec(simdjson::dom::element element, const std::string& where, bool negative_ok) {
  simdjson::dom::object object;
  if (element.get_object().get(object) != simdjson::SUCCESS) return InvalidArgument(where + ": must be an object");
  TensorSpec spec;
  std::string_view text;
  if (object["name"].get_string().get(text) != simdjson::SUCCESS || text.empty())
    return InvalidArgument(where + ": field 'name': a non-empty string is needed");
  spec.name = std::string(text);
  if (object["datatype"].get_string().get(text) != simdjson::SUCCESS)
    return InvalidArgument(where + " ('" + spec.name + "'): field 'datatype': a string is needed, e.g. \"FP32\"");
  std::optional<DataType> type = ParseDataType(text);
  if (!type)
    return InvalidArgument(where + " ('" + spec.name + "'): field 'datatype': unknown datatype '" + std::string(text) +
                           "'");
  spec.datatype = *type;
  simdjson::dom::array shape;
  if (object["shape"].get_array().get(shape) != simdjson::SUCCESS)
    return InvalidArgument(where + " ('" + spec.name + "'): field 'shape': an array of sizes is needed, e.g. [1, 4]");
  for (simdjson::dom::element dim : shape) {
    int64_t size = 0;
    if (dim.get_int64().get(size) != simdjson::SUCCESS || size < (negative_ok ? -1 : 0))
      return InvalidArgument(where + " ('" + spec.name + "'): field 'shape': sizes are " +
                             (negative_ok ? "integers >= -1" : "integers >= 0 (one call's sizes, no -1)"));
    spec.shape.push_back(size);
  }
  return spec;
}

StatusOr<std::vector<TensorSpec>> ReadSpecs(simdjson::dom::object object, std::string_view key,
                                            const std::string& source, bool negative_ok) {
  simdjson::dom::array array;
  if (object[key].get_array().get(array) != simdjson::SUCCESS)
    return InvalidArgument(source + ": field '" + std::string(key) + "': an array is needed");
  std::vector<TensorSpec> specs;
  for (simdjson::dom::element element : array) {
    StatusOr<TensorSpec> spec =
        ReadSpec(element, source + ": " + std::string(key) + "[" + std::to_string(specs.size()) + "]", negative_ok);
    if (!spec.ok()) return spec.status();
    specs.push_back(std::move(spec).value());
  }
  return specs;
}


std::string SpecList(const std::vector<TensorSpec>& specs) {
  std::string out;
  for (const TensorSpec& spec : specs) {
    if (!out.empty()) out += ", ";
    out += spec.name + " " + std::string(DataTypeName(spec.datatype)) + " " + ShapeToString(spec.shape);
  }
  return out;
}

}  // namespace

StatusOr<std::vector<TensorSpec>> ParseExampleInput(std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  StatusOr<simdjson::dom::object> object = json::ParseObject(parser, json, source);
  if (!object.ok()) return object.status();
  StatusOr<std::vector<TensorSpec>> specs = ReadSpecs(*object, "inputs", source, /*negative_ok=*/false);
  if (specs.ok() && specs->empty()) return InvalidArgument(source + ": field 'inputs': at least one input is needed");
  return specs;
}

StatusOr<InitDescription> ParseDescription(std::string_view json) {
  const std::string source = "thaw-worker --describe's answer";
  simdjson::dom::parser parser;
  StatusOr<simdjson::dom::object> object = json::ParseObject(parser, json, source);
  if (!object.ok()) return object.status();
  InitDescription d;
  std::string_view text;
  if ((*object)["problem"].get_string().get(text) == simdjson::SUCCESS) {
    d.problem = std::string(text);
    if ((*object)["message"].get_string().get(text) == simdjson::SUCCESS) d.message = std::string(text);
    if ((*object)["input"].get_string().get(text) == simdjson::SUCCESS) d.input = std::string(text);
    // Present with "newer_format" only; 0 otherwise.
    if ((*object)["file_version"].get_int64().get(d.file_version) != simdjson::SUCCESS) d.file_version = 0;
    if ((*object)["max_file_version"].get_int64().get(d.max_file_version) != simdjson::SUCCESS) d.max_file_version = 0;
    return d;
  }
  StatusOr<std::vector<TensorSpec>> inputs = ReadSpecs(*object, "inputs", source, true);
  if (!inputs.ok()) return inputs.status();
  StatusOr<std::vector<TensorSpec>> outputs = ReadSpecs(*object, "outputs", source, true);
  if (!outputs.ok()) return outputs.status();
  d.inputs = std::move(inputs).value();
  d.outputs = std::move(outputs).value();
  return d;
}

std::string ProblemMessage(const std::string& model_file, const InitDescription& d) {
  const std::string export_how =
      "load the weights into the model class in Python, then torch.jit.trace(model, example_inputs) (or "
      "torch.jit.script(model)) and torch.jit.save(traced, \"model.pt\")";
  if (d.problem == "missing") return "cannot read model file " + model_file + ": " + d.message;
  if (d.problem == "newer_format")
    return model_file + " was saved by a newer torch: its zip records TorchScript file format version " +
           std::to_string(d.file_version) + ", and this thaw's libtorch (1.13) reads versions up to " +
           std::to_string(d.max_file_version) +
           ". torch.jit.save has no setting that writes an older version: re-export the model with torch 1.13 "
           "(Debian's python3-torch, or pip install torch==1.13.1): " + export_how;
  if (d.problem == "not_torchscript")
    return model_file + " is not TorchScript (" + d.message +
           "): it looks like torch.save of a state_dict or of an eager module, which only Python can rebuild. "
           "thaw serves TorchScript: " + export_how;
  if (d.problem == "load")
    return "libtorch 1.13 cannot load " + model_file + ": " + d.message +
           " (a file from a newer torch that uses operators 1.13 lacks: re-export with torch 1.13; a custom "
           "operator (torch.ops.*) or a torch.compile-only model cannot be served)";
  if (d.problem == "no_shape") {
    if (!d.message.empty()) return model_file + ": " + d.message + "; thaw passes each input to forward as a Tensor";
    return model_file + ": the shape of input '" + d.input +
           "' cannot be read from the graph (only an input that reaches a linear layer first gives one): give --example-input FILE "
           "with one call's inputs, e.g. {\"inputs\": [{\"name\": \"" + d.input +
           "\", \"datatype\": \"FP32\", \"shape\": [1, ...]}]}";
  }
  if (d.problem == "run")
    return model_file + " loads, but one call on its inputs failed: " + d.message +
           " (check --example-input's names, datatypes and shapes against forward's arguments)";
  return model_file + ": " + d.problem + ": " + d.message;
}

std::string InitConfigJson(const InitDescription& d) {
  std::string out;
  JsonWriter w(&out, {.indent_top_level = true});
  w.BeginObject().Key("inputs");
  WriteTensorSpecs(w, d.inputs);
  w.Key("outputs");
  WriteTensorSpecs(w, d.outputs);
  w.EndObject();
  return out + "\n";
}

std::string SampleRequestJson(const std::vector<TensorSpec>& inputs) {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Key("inputs").BeginArray();
  for (const TensorSpec& spec : inputs) {
    Shape shape = spec.shape;
    for (int64_t& dim : shape)
      if (dim < 0) dim = 1;
    w.BeginObject().Field("name", spec.name).Field("datatype", DataTypeName(spec.datatype)).Key("shape").BeginArray();
    for (int64_t dim : shape) w.Int(dim);
    w.EndArray().Key("data").BeginArray();
    const int64_t count = ElementCount(shape);
    for (int64_t i = 0; i < count; ++i) {
      if (spec.datatype == DataType::kBool) w.Bool(true);
      else if (spec.datatype == DataType::kFp16 || spec.datatype == DataType::kFp32 || spec.datatype == DataType::kFp64)
        w.Double(0.5);
      else w.Int(1);
    }
    w.EndArray().EndObject();
  }
  w.EndArray().EndObject();
  return out + "\n";
}

std::string NextSteps(const std::string& repo, const std::string& name) {
  const std::string request = (fs::path(repo) / name / "request.json").string();
  return "Next:\n  thaw serve --repo " + repo + "\n  curl -s -H 'Content-Type: application/json' -d @" + request +
         " http://127.0.0.1:8080/v2/models/" +
         name + "/infer\n  thaw load --help   (a load test; docs/own-model.md)\n";
}

namespace {

// Runs `argv` with stdout into `out` and stderr into `err`; the exit code,
// or -1 (err says why) when it did not exit.
int RunCapturing(std::vector<std::string> argv, std::string* out, std::string* err) {
  char out_path[] = "/tmp/thaw-init-out-XXXXXX";
  char err_path[] = "/tmp/thaw-init-err-XXXXXX";
  const int out_fd = ::mkstemp(out_path);
  const int err_fd = ::mkstemp(err_path);
  auto slurp = [](const char* path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  };
  auto cleanup = [&] {
    if (out_fd >= 0) ::close(out_fd), ::unlink(out_path);
    if (err_fd >= 0) ::close(err_fd), ::unlink(err_path);
  };
  if (out_fd < 0 || err_fd < 0) {
    *err = std::string("cannot make a temporary file: ") + std::strerror(errno);
    cleanup();
    return -1;
  }
  posix_spawn_file_actions_t files;
  ::posix_spawn_file_actions_init(&files);
  ::posix_spawn_file_actions_adddup2(&files, out_fd, 1);
  ::posix_spawn_file_actions_adddup2(&files, err_fd, 2);
  std::vector<char*> raw;
  for (std::string& a : argv) raw.push_back(a.data());
  raw.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawn(&pid, raw[0], &files, nullptr, raw.data(), environ);
  ::posix_spawn_file_actions_destroy(&files);
  if (spawned != 0) {
    *err = "cannot run " + argv[0] + ": " + std::strerror(spawned);
    cleanup();
    return -1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  *out = slurp(out_path);
  *err = slurp(err_path);
  cleanup();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  *err += "\n" + argv[0] + " was killed by signal " + std::to_string(WTERMSIG(status));
  return -1;
}

bool WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return out.good();
}

}  // namespace

int RunInit(const InitCommandOptions& o) {
  std::error_code ec;
  if (!fs::is_regular_file(o.model_file, ec)) {
    std::cerr << "thaw init: model file " << o.model_file << " not found (or not a regular file)\n";
    return 1;
  }
  std::vector<std::string> argv = {o.worker_path, "--describe", fs::absolute(o.model_file, ec).string()};
  if (argv[0].empty()) argv[0] = (fs::read_symlink("/proc/self/exe", ec).parent_path() / "thaw-worker").string();
  if (!o.example_input.empty()) {
    std::ifstream in(o.example_input, std::ios::binary);
    if (!in) {
      std::cerr << "thaw init: cannot read --example-input " << o.example_input << "\n";
      return 1;
    }
    std::ostringstream text;
    text << in.rdbuf();
    StatusOr<std::vector<TensorSpec>> example = ParseExampleInput(text.str(), o.example_input);
    if (!example.ok()) {
      std::cerr << "thaw init: " << example.status().message() << "\n";
      return 1;
    }
    for (const TensorSpec& spec : *example) {
      std::string dims;
      for (int64_t dim : spec.shape) dims += (dims.empty() ? "" : "x") + std::to_string(dim);
      argv.insert(argv.end(), {"--input", spec.name + ":" + std::string(DataTypeName(spec.datatype)) + ":" + dims});
    }
  }
  const fs::path dir = fs::path(o.repo) / o.name;
  if (fs::exists(dir, ec) && !o.force) {
    std::cerr << "thaw init: " << dir.string()
              << " exists; --force replaces its model.pt, config.json and request.json\n";
    return 1;
  }

  std::string out, err;
  const int code = RunCapturing(argv, &out, &err);
  StatusOr<InitDescription> described = ParseDescription(out);
  if (!described.ok() || (code != 0 && described->problem.empty())) {
    std::cerr << "thaw init: " << argv[0] << " --describe " << o.model_file << " gave no answer (exit " << code
              << ")\n" << err;
    return 1;
  }
  if (!described->problem.empty()) {
    std::cerr << "thaw init: " << ProblemMessage(o.model_file, *described) << "\n";
    return 1;
  }
  const std::string config_text = InitConfigJson(*described);
  StatusOr<ModelConfig> config = ParseModelConfig(config_text, o.name, fs::absolute(dir, ec).string(), "config.json");
  if (!config.ok()) {  // a description thaw cannot serve, e.g. an input of a type the config refuses
    std::cerr << "thaw init: " << o.model_file << ": " << config.status().message() << "\n";
    return 1;
  }
  fs::create_directories(dir, ec);
  if (ec) {
    std::cerr << "thaw init: cannot create " << dir.string() << ": " << ec.message() << "\n";
    return 1;
  }
  fs::copy_file(o.model_file, dir / "model.pt", fs::copy_options::overwrite_existing, ec);
  if (ec) {
    std::cerr << "thaw init: cannot copy " << o.model_file << " to " << (dir / "model.pt").string() << ": "
              << ec.message() << "\n";
    return 1;
  }
  for (const auto& [file, text] : {std::pair<const char*, std::string>{"config.json", config_text},
                                   {"request.json", SampleRequestJson(described->inputs)}}) {
    if (!WriteText(dir / file, text)) {
      std::cerr << "thaw init: cannot write " << (dir / file).string() << "\n";
      return 1;
    }
  }
  std::cout << "Wrote " << dir.string() << ": model.pt, config.json, request.json\n"
            << "  inputs:  " << SpecList(described->inputs) << "\n"
            << "  outputs: " << SpecList(described->outputs) << "\n"
            << NextSteps(o.repo, o.name);
  return 0;
}

}  // namespace thaw::cli
