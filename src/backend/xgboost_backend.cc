// XGBoost backend. The only translation unit in thaw that includes an
// XGBoost header.
#include "backend/xgboost_backend.h"

#if !defined(THAW_WITH_XGBOOST)

namespace thaw {

bool XgboostBuiltIn() { return false; }

StatusOr<std::unique_ptr<Backend>> CreateXgboostBackend(const ModelConfig& config, const Clock&, BackendLoadTimings*,
                                                        const BackendLoadOptions&) {
  return Unavailable("model '" + config.name +
                     "': backend 'xgboost' is not built into this thaw (install libxgboost-dev, then scripts/build)");
}

}  // namespace thaw

#else

#include <xgboost/c_api.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace thaw {
namespace {

// XGBoost's last error on this thread as one line a client may see: its
// first line without the "[hh:mm:ss] source.h:157: " prefix (the stack
// trace after it names addresses in this process).
std::string LastError() {
  std::string_view message = XGBGetLastError();
  message = message.substr(0, message.find('\n'));
  if (message.starts_with('[')) {
    const size_t time_end = message.find("] ");
    const size_t source_end = time_end == std::string_view::npos ? time_end : message.find(": ", time_end + 2);
    if (source_end != std::string_view::npos) message.remove_prefix(source_end + 2);
  }
  return ClientEngineMessage(message);
}

// This thread's proxy DMatrix for in-place prediction: without one XGBoost
// makes one per call (30 us for fraud-xgb's 2 rows here; 12 us with it
// reused). A proxy only carries the call's input, so one per thread serves
// every booster; null if it cannot be made (XGBoost then makes its own).
DMatrixHandle ThreadProxy() {
  struct Proxy {
    DMatrixHandle handle = nullptr;
    Proxy() {
      if (XGProxyDMatrixCreate(&handle) != 0) handle = nullptr;
    }
    ~Proxy() {
      if (handle) XGDMatrixFree(handle);
    }
  };
  thread_local Proxy proxy;
  return proxy.handle;
}

// In-place prediction of `rows` rows of `features` floats at `data` (no
// copy: the array interface names the bytes), strict shape, NaN missing, on
// this thread's proxy. XGBoost's return code; the result is XGBoost's
// per-thread buffer, valid until this thread's next prediction.
int PredictDense(BoosterHandle booster, const void* data, int64_t rows, int64_t features, const bst_ulong** shape,
                 bst_ulong* dims, const float** result) {
  const std::string array = "{\"data\":[" + std::to_string(reinterpret_cast<uintptr_t>(data)) + ",true],\"shape\":[" +
                            std::to_string(rows) + "," + std::to_string(features) +
                            "],\"typestr\":\"<f4\",\"version\":3}";
  static constexpr char kPredict[] =
      "{\"type\":0,\"training\":false,\"iteration_begin\":0,\"iteration_end\":0,\"strict_shape\":true,"
      "\"missing\":NaN,\"cache_id\":0}";
  return XGBoosterPredictFromDense(booster, array.c_str(), kPredict, ThreadProxy(), shape, dims, result);
}

// How the booster's values per row become the output.
enum class OutputForm {
  kAsIs,         // [-1, k] or [-1] (k == 1): the booster's values
  kBothClasses,  // [-1, 2] from binary:logistic's p: 1 - p, p
};

class XgboostBackend final : public Backend {
 public:
  XgboostBackend(ModelConfig config, BoosterHandle booster, int64_t values_per_row, OutputForm form)
      : config_(std::move(config)), booster_(booster), values_per_row_(values_per_row), form_(form) {}
  ~XgboostBackend() override { XGBoosterFree(booster_); }

  Status Run(const std::vector<Tensor>& inputs, std::vector<Tensor>* outputs) override {
    // The config's input is FP32 [-1, the booster's features] (checked at load).
    THAW_RETURN_IF_ERROR(CheckInputs(config_, inputs));
    const Tensor& in = inputs[0];
    const int64_t rows = in.shape[0];
    THAW_RETURN_IF_ERROR(ApplyThreads());

    outputs->clear();
    Tensor out;
    out.name = config_.outputs[0].name;
    out.datatype = DataType::kFp32;
    const int64_t columns = form_ == OutputForm::kBothClasses ? 2 : values_per_row_;
    out.shape = config_.outputs[0].shape.size() == 1 ? std::vector<int64_t>{rows} : std::vector<int64_t>{rows, columns};
    if (rows == 0) {
      outputs->push_back(std::move(out));
      return Status::Ok();
    }
    const bst_ulong* shape = nullptr;
    bst_ulong dims = 0;
    const float* result = nullptr;
    if (PredictDense(booster_, in.data.data(), rows, in.shape[1], &shape, &dims, &result) != 0)
      return Internal("xgboost: " + LastError());
    if (dims != 2 || static_cast<int64_t>(shape[0]) != rows || static_cast<int64_t>(shape[1]) != values_per_row_)
      return Internal("xgboost: prediction of unexpected shape");
    const size_t values = static_cast<size_t>(rows * values_per_row_);
    if (form_ == OutputForm::kAsIs) {
      out.data.assign(reinterpret_cast<const char*>(result), values * sizeof(float));
    } else {
      std::vector<float> both(static_cast<size_t>(rows) * 2);
      for (size_t r = 0; r < static_cast<size_t>(rows); ++r) {
        both[2 * r] = 1.0f - result[r];
        both[2 * r + 1] = result[r];
      }
      out.data.assign(reinterpret_cast<const char*>(both.data()), both.size() * sizeof(float));
    }
    outputs->push_back(std::move(out));
    return Status::Ok();
  }

 private:
  // XGBoosterSetParam is not safe beside a prediction; the count changes
  // only before a process's first Run (backend.h), so the lock is
  // uncontended after that.
  Status ApplyThreads() {
    const int want = IntraOpThreads();
    if (applied_threads_.load(std::memory_order_acquire) == want) return Status::Ok();
    std::lock_guard lock(threads_mu_);
    if (applied_threads_.load(std::memory_order_relaxed) == want) return Status::Ok();
    if (XGBoosterSetParam(booster_, "nthread", std::to_string(want).c_str()) != 0)
      return Internal("xgboost: cannot set nthread: " + LastError());
    applied_threads_.store(want, std::memory_order_release);
    return Status::Ok();
  }

  const ModelConfig config_;
  const BoosterHandle booster_;
  const int64_t values_per_row_;  // the booster's values per row (strict shape)
  const OutputForm form_;
  std::mutex threads_mu_;
  std::atomic<int> applied_threads_{0};
};

// The objective a booster was trained with ("binary:logistic", ...), from
// its JSON configuration; empty if it cannot be read.
std::string ObjectiveOf(BoosterHandle booster) {
  bst_ulong length = 0;
  const char* json = nullptr;
  if (XGBoosterSaveJsonConfig(booster, &length, &json) != 0) return "";
  const std::string_view config(json, length);
  static constexpr std::string_view kKey = "\"learner_train_param\":";
  size_t at = config.find(kKey);
  if (at == std::string_view::npos) return "";
  static constexpr std::string_view kObjective = "\"objective\":\"";
  at = config.find(kObjective, at);
  if (at == std::string_view::npos) return "";
  at += kObjective.size();
  const size_t end = config.find('"', at);
  return end == std::string_view::npos ? "" : std::string(config.substr(at, end - at));
}

}  // namespace

bool XgboostBuiltIn() { return true; }

StatusOr<std::unique_ptr<Backend>> CreateXgboostBackend(const ModelConfig& config, const Clock& clock,
                                                        BackendLoadTimings* timings, const BackendLoadOptions& options) {
  const std::string path = config.ModelPath();
  const std::string file = std::filesystem::path(path).filename().string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return NotFound("model '" + config.name + "': no model file " + file);
  if (config.inputs.size() != 1 || config.outputs.size() != 1)
    return InvalidArgument("model '" + config.name + "': an xgboost model has one input and one output, the config declares " +
                           std::to_string(config.inputs.size()) + " and " + std::to_string(config.outputs.size()));
  const TensorSpec& input = config.inputs[0];
  const TensorSpec& output = config.outputs[0];
  if (input.datatype != DataType::kFp32 || output.datatype != DataType::kFp32)
    return InvalidArgument("model '" + config.name + "': an xgboost model's input and output are FP32");
  if (input.shape.size() != 2 || input.shape[0] != -1 || input.shape[1] < 1)
    return InvalidArgument("model '" + config.name + "': input '" + input.name + "' must have shape [-1, features], not " +
                           ShapeToString(input.shape));
  if (output.shape.empty() || output.shape.size() > 2 || output.shape[0] != -1)
    return InvalidArgument("model '" + config.name + "': output '" + output.name + "' must have shape [-1] or [-1, k], not " +
                           ShapeToString(output.shape));

  const Micros start = clock.NowMicros();
  BoosterHandle booster = nullptr;
  if (XGBoosterCreate(nullptr, 0, &booster) != 0) return Internal("xgboost: " + LastError());
  struct FreeOnError {
    BoosterHandle* booster;
    ~FreeOnError() {
      if (*booster) XGBoosterFree(*booster);
    }
  } free_on_error{&booster};
  if (XGBoosterLoadModel(booster, path.c_str()) != 0)
    return InvalidArgument("model '" + config.name + "': cannot load " + file + " as an XGBoost model: " +
                           LastError());
  if (XGBoosterSetParam(booster, "nthread", std::to_string(IntraOpThreads()).c_str()) != 0)
    return Internal("xgboost: cannot set nthread: " + LastError());
  bst_ulong features = 0;
  if (XGBoosterGetNumFeature(booster, &features) != 0) return Internal("xgboost: " + LastError());
  if (static_cast<int64_t>(features) != input.shape[1])
    return InvalidArgument("model '" + config.name + "': input '" + input.name + "' declares " +
                           std::to_string(input.shape[1]) + " features, " + file + " was trained on " +
                           std::to_string(features));

  // Values per row, from one prediction of a row of zeros (strict shape).
  const std::vector<float> zeros(features, 0.0f);
  const bst_ulong* shape = nullptr;
  bst_ulong dims = 0;
  const float* result = nullptr;
  if (PredictDense(booster, zeros.data(), 1, static_cast<int64_t>(features), &shape, &dims, &result) != 0)
    return InvalidArgument("model '" + config.name + "': " + file + " cannot predict: " + LastError());
  const int64_t values_per_row = dims == 2 ? static_cast<int64_t>(shape[1]) : 0;
  const std::string objective = ObjectiveOf(booster);
  OutputForm form = OutputForm::kAsIs;
  const int64_t declared = output.shape.size() == 1 ? 1 : output.shape[1];
  if (declared == 2 && values_per_row == 1 && objective == "binary:logistic") {
    form = OutputForm::kBothClasses;
  } else if (declared != values_per_row) {
    return InvalidArgument("model '" + config.name + "': output '" + output.name + "' declares shape " +
                           ShapeToString(output.shape) + ", " + file + " (objective " +
                           (objective.empty() ? "unknown" : objective) + ") predicts " + std::to_string(values_per_row) +
                           " value(s) per row" +
                           (values_per_row == 1 ? " ([-1] or [-1, 1]; [-1, 2] for binary:logistic)" : ""));
  }
  timings->model_load_us = clock.NowMicros() - start;
  timings->used_prepared = false;
  timings->optimized_at_load = false;

  auto backend = std::make_unique<XgboostBackend>(config, booster, values_per_row, form);
  booster = nullptr;  // owned by the backend now
  const Micros warm_start = clock.NowMicros();
  THAW_RETURN_IF_ERROR(WarmUp(*backend, config, options.warmup_runs));
  timings->warmup_us = clock.NowMicros() - warm_start;
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace thaw

#endif  // THAW_WITH_XGBOOST
