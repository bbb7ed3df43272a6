// The XGBoost backend (libxgboost's C API, Debian libxgboost-dev 1.7).
// Private to src/backend: this header includes no XGBoost header; only
// xgboost_backend.cc sees it, and only when thaw is built with it
// (THAW_WITH_XGBOOST, set by CMake when pkg-config finds xgboost).
//
// A model is a booster file (config.model_file: .ubj, .json, or the legacy
// binary format; UBJSON loads fastest) with one FP32 input of shape
// [-1, features] (features = the booster's own count) and one FP32 output:
//  - [-1, k] for a booster that predicts k values per row (multi:softprob
//    with k classes; 1 for a regression or binary:logistic);
//  - [-1, 2] for a binary:logistic booster: both classes' probabilities,
//    1 - p and p, as a two-class classifier reports them (so the output can
//    carry labels like any classifier's).
//  - [-1] for a booster that predicts one value per row.
// Anything else fails the load with kInvalidArgument naming both shapes.
// Missing values are NaN in the input, as XGBoost's own default.
//
// Threads: the booster's nthread is IntraOpThreads() (1 until
// SetIntraOpThreads), applied before the next prediction; a template or zygote
// therefore predicts on one thread (an OpenMP parent must stay
// single-threaded for its forked children). Predictions are row-wise
// independent: a batch's rows are bit-identical to the same rows sent alone.
//
// Thread safety: Run may be called from several threads at once (XGBoost's
// in-place prediction is thread-safe). Errors: as backend.h; an engine
// error while predicting is kInternal with XGBoost's message.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace thaw {

// Loads config.ModelPath(), checks it against the config and warms it up.
// Without XGBoost built in: kUnavailable saying so.
StatusOr<std::unique_ptr<Backend>> CreateXgboostBackend(const ModelConfig& config, const Clock& clock,
                                                        BackendLoadTimings* timings, const BackendLoadOptions& options);

// Whether this build has the XGBoost engine.
bool XgboostBuiltIn();

}  // namespace thaw
