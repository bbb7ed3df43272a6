// The ONNX backend, on OpenCV's DNN module (Debian libopencv-dnn-dev 4.6;
// no Debian or npm package ships ONNX Runtime). Private to src/backend: only
// onnx_backend.cc includes an OpenCV header, and only when thaw is built
// with it (THAW_WITH_OPENCV_DNN, set by CMake when the headers are found).
//
// A model is an .onnx file whose inputs and outputs the config names, all
// FP32; the first dimension may be -1 (the batch), others are fixed. OpenCV
// 4.6 imports what its ONNX importer knows (docs/engines.md lists what was
// tried here: a MobileNetV2-style CNN exported at opset 10 works; Clip with
// min/max inputs, as opset >= 11 writes ReLU6, and a transformer's dynamic
// Shape do not); anything else fails the load with kInvalidArgument naming
// the node and why, on one line.
//
// Threads: OpenCV's pool is per process: cv::setNumThreads with
// IntraOpThreads() (1 until set, as a template must stay single-threaded for
// its forked children), applied before the next run.
// Thread safety: a cv::dnn::Net is not safe for concurrent forward calls, so
// Run serialises them (instance_concurrency > 1 gains nothing here).
// Errors: as backend.h.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace thaw {

// Loads config.ModelPath() with cv::dnn::readNetFromONNX, checks it against
// the config by a warm-up. Without OpenCV DNN built in: kUnavailable saying so.
StatusOr<std::unique_ptr<Backend>> CreateOnnxBackend(const ModelConfig& config, const Clock& clock,
                                                     BackendLoadTimings* timings, const BackendLoadOptions& options);

// Whether this build has the OpenCV DNN engine.
bool OnnxBuiltIn();

// OpenCV's multi-line exception text as one line a client may see: the
// failing node and the reason, without source paths and function names.
// Pure; exposed for its test.
std::string OnnxClientMessage(std::string_view opencv_error);

}  // namespace thaw
