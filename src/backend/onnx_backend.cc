// ONNX backend on OpenCV DNN. The only translation unit in thaw that
// includes an OpenCV header.
#include "backend/onnx_backend.h"

#include <string>
#include <string_view>
#include <vector>

namespace thaw {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '>' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
}  // namespace

// Keeps, from each line: a node's "Node [Op@domain]:(name)", an assertion's
// condition, an "(expected: ...)" and the values after it, and a message
// after "error: (-N:kind)" that is not just "in function".
std::string OnnxClientMessage(std::string_view error) {
  std::string out;
  // `continues`: part of the previous piece (an expectation's lines), not a new one.
  auto add = [&out](std::string_view part, bool continues = false) {
    part = Trim(part);
    if (part.empty() || out.find(part) != std::string::npos) return;
    if (!out.empty()) out += continues ? " " : "; ";
    out += part;
  };
  while (!error.empty()) {
    const size_t end = error.find('\n');
    std::string_view line = Trim(error.substr(0, end));
    error = end == std::string_view::npos ? std::string_view() : error.substr(end + 1);
    if (const size_t node = line.find("Node ["); node != std::string_view::npos) {
      const size_t parse = line.find(" parse error", node);
      add(line.substr(node, parse == std::string_view::npos ? std::string_view::npos : parse - node));
    }
    if (const size_t failed = line.find("Assertion failed) "); failed != std::string_view::npos) {
      std::string_view condition = line.substr(failed + 18);
      add("assertion " + std::string(condition.substr(0, condition.find(" in function"))));
    } else if (const size_t kind = line.find("error: (-"); kind != std::string_view::npos) {
      std::string_view rest = line.substr(kind);
      const size_t close = rest.find(") ");
      if (close != std::string_view::npos) {
        rest = rest.substr(close + 2);
        add(rest.substr(0, rest.find("in function")));
      }
    }
    if (line.starts_with("(expected:")) add(line);
    else if (line.starts_with("'") || line.starts_with("must be")) add(line, /*continues=*/true);
  }
  if (out.empty()) out = "the ONNX importer failed";
  return ClientEngineMessage(out);
}

}  // namespace thaw

#if !defined(THAW_WITH_OPENCV_DNN)

namespace thaw {

bool OnnxBuiltIn() { return false; }

StatusOr<std::unique_ptr<Backend>> CreateOnnxBackend(const ModelConfig& config, const Clock&, BackendLoadTimings*,
                                                     const BackendLoadOptions&) {
  return Unavailable("model '" + config.name +
                     "': backend 'onnx' is not built into this thaw (install libopencv-dnn-dev, then scripts/build)");
}

}  // namespace thaw

#else

#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>

#include <algorithm>
#include <filesystem>
#include <mutex>

namespace thaw {
namespace {

class OnnxBackend final : public Backend {
 public:
  OnnxBackend(ModelConfig config, cv::dnn::Net net) : config_(std::move(config)), net_(std::move(net)) {
    for (const TensorSpec& spec : config_.outputs) output_names_.push_back(spec.name);
  }

  Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) override {
    THAW_RETURN_IF_ERROR(CheckInputs(config_, inputs));  // the config's inputs are FP32 (checked at load)
    outputs->clear();
    const bool no_rows = !inputs.empty() && !inputs.back().shape.empty() && inputs.back().shape[0] == 0;
    if (no_rows) return EmptyOutputs(outputs);

    std::lock_guard lock(mu_);
    if (const int want = IntraOpThreads(); want != applied_threads_) {
      cv::setNumThreads(want);
      applied_threads_ = want;
    }
    std::vector<cv::Mat> results;
    try {
      for (size_t i = 0; i < inputs.size(); ++i) {
        std::vector<int> dims(inputs[i].shape.begin(), inputs[i].shape.end());
        // Borrows the request's bytes: setInput copies them into the network.
        cv::Mat blob(static_cast<int>(dims.size()), dims.data(), CV_32F, const_cast<char*>(inputs[i].data.data()));
        net_.setInput(blob, config_.inputs[i].name);
      }
      net_.forward(results, output_names_);
    } catch (const cv::Exception& e) {
      return Internal("onnx: " + OnnxClientMessage(e.what()));
    }
    if (results.size() != config_.outputs.size())
      return Internal("onnx: " + std::to_string(results.size()) + " output(s), the config declares " +
                      std::to_string(config_.outputs.size()));
    for (size_t i = 0; i < results.size(); ++i) {
      const cv::Mat& m = results[i];
      const TensorSpec& spec = config_.outputs[i];
      Tensor out;
      out.name = spec.name;
      out.datatype = DataType::kFp32;
      for (int d = 0; d < m.dims; ++d) out.shape.push_back(m.size[d]);
      if (m.type() != CV_32F || !ShapeMatches(spec.shape, out.shape))
        return Internal("onnx: output '" + spec.name + "' has shape " + ShapeToString(out.shape) +
                        ", the config declares " + ShapeToString(spec.shape));
      const cv::Mat dense = m.isContinuous() ? m : m.clone();
      out.data.assign(reinterpret_cast<const char*>(dense.data), dense.total() * sizeof(float));
      outputs->push_back(std::move(out));
    }
    return Status::Ok();
  }

 private:
  // No rows in: no rows out, each output's other dims from the config.
  Status EmptyOutputs(std::vector<Tensor>* outputs) const {
    for (const TensorSpec& spec : config_.outputs) {
      Tensor out{spec.name, DataType::kFp32, spec.shape, {}};
      if (out.shape.empty()) return InvalidArgument("model '" + config_.name + "': no rows for a scalar output");
      out.shape[0] = 0;
      for (size_t d = 1; d < out.shape.size(); ++d)
        if (out.shape[d] < 0) return InvalidArgument("output '" + spec.name + "' has no fixed shape for 0 rows");
      outputs->push_back(std::move(out));
    }
    return Status::Ok();
  }

  const ModelConfig config_;
  std::vector<std::string> output_names_;
  std::mutex mu_;
  cv::dnn::Net net_;  // guarded by mu_
  int applied_threads_ = 0;
};

}  // namespace

bool OnnxBuiltIn() { return true; }

StatusOr<std::unique_ptr<Backend>> CreateOnnxBackend(const ModelConfig& config, const Clock& clock,
                                                     BackendLoadTimings* timings, const BackendLoadOptions& options) {
  const std::string path = config.ModelPath();
  const std::string file = std::filesystem::path(path).filename().string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return NotFound("model '" + config.name + "': no model file " + file);
  for (const auto* specs : {&config.inputs, &config.outputs})
    for (const TensorSpec& spec : *specs)
      if (spec.datatype != DataType::kFp32)
        return InvalidArgument("model '" + config.name + "': '" + spec.name + "' is " +
                               std::string(DataTypeName(spec.datatype)) + "; the onnx backend takes FP32 tensors");
  // The importer's reasons come back in the exception; its log lines would
  // repeat them on stderr.
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  cv::setNumThreads(IntraOpThreads());
  const Micros start = clock.NowMicros();
  cv::dnn::Net net;
  try {
    net = cv::dnn::readNetFromONNX(path);
  } catch (const cv::Exception& e) {
    return InvalidArgument("model '" + config.name + "': OpenCV " CV_VERSION " cannot import " + file + ": " +
                           OnnxClientMessage(e.what()));
  }
  if (net.empty()) return InvalidArgument("model '" + config.name + "': " + file + " holds no network");
  const std::vector<std::string> graph_outputs = net.getUnconnectedOutLayersNames();
  for (const TensorSpec& spec : config.outputs)
    if (std::find(graph_outputs.begin(), graph_outputs.end(), spec.name) == graph_outputs.end()) {
      std::string names;
      for (const std::string& n : graph_outputs) names += (names.empty() ? "" : ", ") + n;
      return InvalidArgument("model '" + config.name + "': output '" + spec.name + "' is not an output of " + file +
                             " (its outputs: " + names + ")");
    }
  net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  timings->model_load_us = clock.NowMicros() - start;
  timings->used_prepared = false;
  timings->optimized_at_load = false;
  auto backend = std::make_unique<OnnxBackend>(config, std::move(net));
  const Micros warm_start = clock.NowMicros();
  THAW_RETURN_IF_ERROR(WarmUp(*backend, config, std::max(options.warmup_runs, 1)));
  timings->warmup_us = clock.NowMicros() - warm_start;
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace thaw

#endif  // THAW_WITH_OPENCV_DNN
