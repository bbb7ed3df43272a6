// thaw-worker --model-dir DIR --fd N: one model, served over the socket N;
// thaw-worker --describe FILE: what thaw init learns of a model file.
// See worker/worker.h.
#include <cstdio>
#include <string_view>

#include "base/clock.h"
#include "worker/describe.h"
#include "worker/worker.h"
#ifdef THAW_WORKER_PROBE
#include "backend/probe_backend.h"
#endif

int main(int argc, char** argv) {
  thaw::ConfigureWorkerMalloc();  // before anything allocates
#ifdef THAW_WORKER_PROBE
  thaw::UseProbeBackend();  // thaw-worker-probe: the isolation tests' hostile engine
#endif
  const thaw::Micros start = thaw::RealClock().NowMicros();
  if (argc >= 2 && std::string_view(argv[1]) == "--describe") {  // thaw init's question (worker/describe.h)
    thaw::StatusOr<thaw::DescribeArgs> describe = thaw::ParseDescribeArgs(argc, argv);
    if (!describe.ok()) {
      std::fprintf(stderr, "thaw-worker: %s\n", describe.status().message().c_str());
      return thaw::kWorkerExitUsage;
    }
    return thaw::RunDescribe(*describe);
  }
  thaw::StatusOr<thaw::WorkerOptions> options = thaw::ParseWorkerArgs(argc, argv);
  if (!options.ok()) {
    std::fprintf(stderr, "thaw-worker: %s\nusage: thaw-worker [--template] --model-dir DIR --fd N | --zygote --fd N\n",
                 options.status().message().c_str());
    return thaw::kWorkerExitUsage;
  }
  options->start_us = start;
  return options->mode == thaw::WorkerMode::kInstance ? thaw::RunWorker(*options) : thaw::RunSpawner(*options);
}
