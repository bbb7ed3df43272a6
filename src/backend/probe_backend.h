// The probe engine: a stand-in for hostile native code inside a worker (an
// exploit of a model deserializer, a malicious custom op), for the isolation
// tests only. It is linked into the test binary thaw-worker-probe, never into
// thaw-worker.
//
// Every Run attempts, from inside the worker process, what such code would
// try, and returns what happened as one FP32 row per input row:
//   [0] errno of socket(AF_INET, SOCK_STREAM)                (0 = it worked)
//   [1] errno of open("/etc/shadow", O_RDONLY)
//   [2] errno of creating a file in /tmp, outside the run directory
//   [3] errno of accept4 on every open descriptor (0 if any accepted;
//       ENOTSOCK/EINVAL mean no listening socket was there to try)
//   [4] number of open descriptors other than 0, 1, 2 and one socket (its own)
//   [5] errno of ptrace(PTRACE_ATTACH) on the parent process
// The model's config must declare one FP32 input [-1, 1] and one FP32 output
// [-1, 6]. The model file must be readable (it is opened, not parsed): it
// proves the sandboxed worker can still read its run directory.
#pragma once

namespace thaw {

// Makes CreateBackend build probe engines for every model in this process.
void UseProbeBackend();

}  // namespace thaw
