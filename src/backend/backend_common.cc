// The engine-free part of backend.h: ClientEngineMessage (an engine's error
// as a client may see it) and CheckInputs. No engine here, so every backend,
// built with its engine or without, can link it.
#include <string>
#include <string_view>
#include <vector>

#include "backend/backend.h"

namespace thaw {

namespace {

bool StartsWithSpace(std::string_view line) { return !line.empty() && (line[0] == ' ' || line[0] == '\t'); }

// "/a/b/c.py" -> "c.py" for every token that starts with '/' and has a second '/'.
std::string CutAbsolutePaths(std::string_view text) {
  auto ends_token = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\'' || c == '"' || c == ')' || c == ',' || c == ';' ||
           c == ':';
  };
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const bool starts = text[i] == '/' && (i == 0 || ends_token(text[i - 1]) || text[i - 1] == '(');
    if (!starts) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && !ends_token(text[end])) ++end;
    const std::string_view token = text.substr(i, end - i);
    const size_t last_slash = token.rfind('/');
    if (last_slash == 0 || last_slash + 1 == token.size()) out += token;  // "/x" or a directory: keep
    else out += token.substr(last_slash + 1);
    i = end;
  }
  return out;
}

}  // namespace

std::string ClientEngineMessage(std::string_view message) {
  std::vector<std::string_view> lines;
  for (size_t start = 0; start <= message.size();) {
    size_t end = message.find('\n', start);
    if (end == std::string_view::npos) end = message.size();
    std::string_view line = message.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    start = end + 1;
  }
  while (!lines.empty() && lines.back().find_first_not_of(" \t") == std::string_view::npos) lines.pop_back();
  const bool traceback = message.find("Traceback of TorchScript") != std::string_view::npos ||
                         message.find("The following operation failed in the TorchScript interpreter") !=
                             std::string_view::npos;
  size_t first = 0;
  if (traceback) {
    // The error follows the last (indented) code excerpt of the traceback.
    first = lines.size();
    while (first > 0 && !StartsWithSpace(lines[first - 1]) && !lines[first - 1].starts_with("Traceback of") &&
           !lines[first - 1].starts_with("The following operation failed"))
      --first;
    if (first == lines.size()) first = 0;  // no error line after all: keep everything
  }
  std::string text;
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].empty()) continue;
    if (!text.empty()) text += '\n';
    std::string_view line = lines[i];
    if (traceback && line.starts_with("builtins.")) line.remove_prefix(9);
    text += line;
  }
  text = CutAbsolutePaths(text);
  constexpr size_t kMaxBytes = 1000;
  if (text.size() > kMaxBytes) {
    size_t cut = kMaxBytes;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;  // whole UTF-8 characters
    text.resize(cut);
    text += "...";
  }
  return text;
}

Status CheckInputs(const ModelConfig& config, const std::vector<Tensor>& inputs) {
  if (inputs.size() != config.inputs.size())
    return InvalidArgument("model '" + config.name + "' expects " + std::to_string(config.inputs.size()) +
                           " input(s), got " + std::to_string(inputs.size()));
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    const TensorSpec& spec = config.inputs[i];
    if (in.datatype != spec.datatype)
      return InvalidArgument("input '" + spec.name + "': datatype " + std::string(DataTypeName(in.datatype)) +
                             ", model expects " + std::string(DataTypeName(spec.datatype)));
    if (!ShapeMatches(spec.shape, in.shape))
      return InvalidArgument("input '" + spec.name + "': shape " + ShapeToString(in.shape) +
                             " does not match the declared shape " + ShapeToString(spec.shape));
    const int64_t count = in.element_count();
    if (count < 0) return InvalidArgument("input '" + spec.name + "': invalid shape " + ShapeToString(in.shape));
    const size_t want = static_cast<size_t>(count) * DataTypeSize(in.datatype);
    if (in.data.size() != want)
      return InvalidArgument("input '" + spec.name + "': " + std::to_string(in.data.size()) + " bytes for shape " +
                             ShapeToString(in.shape) + ", expected " + std::to_string(want));
  }
  return Status::Ok();
}

}  // namespace thaw
