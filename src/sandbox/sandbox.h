// Sandbox: confines a worker process (instance, template or zygote) before it
// loads model code, so that native code running inside it (a deserializer
// exploit, a custom op) cannot reach the network, other tenants' files, the
// server's sockets or more privileges.
//
// ApplySandbox is the single entry point. It runs these steps in this order
// (each later step needs the earlier ones, or loses the right to do them):
//   1. close every inherited descriptor >= 3 except the worker's own socket
//   2. rlimits: RLIMIT_NOFILE <= max_open_files, RLIMIT_CORE 0,
//      RLIMIT_FSIZE <= max_file_size_mb (SIGXFSZ ignored: writes fail with
//      EFBIG instead of killing). RLIMIT_NPROC is NOT set: it counts every
//      process of the uid, and all workers share one uid while a template
//      forks many instances.
//   3. a new network namespace (only a loopback device, down)       [root]
//   4. a new mount namespace where every mount is read-only except
//      writable_dir (bind-mounted onto itself)                        [root]
//   5. setgroups([]), setresgid(gid), setresuid(uid)                  [root]
//   6. PR_SET_NO_NEW_PRIVS
//   7. a seccomp allowlist, default action EPERM (see sandbox.cc)
// Anything that must run with the server's privileges (e.g. joining a
// cgroup) is done by the caller BEFORE ApplySandbox. Steps marked [root]
// need CAP_SYS_ADMIN / CAP_SETUID; where the kernel refuses, the step is
// skipped and the report says why (the worker still starts: degrade, warn).
//
// Processes forked after ApplySandbox (a template's or zygote's instances)
// inherit steps 2-7; they call CloseInheritedFds themselves for step 1.
//
// Thread safety: ApplySandbox and CloseInheritedFds are meant for a process
// that has not started threads yet (unshare(CLONE_NEWNS) fails in a
// multi-threaded process; the seccomp filter is synced to all threads
// anyway). The other functions are pure or read only the user database.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"

namespace thaw::sandbox {

enum class SandboxMode {
  kOff,         // nothing applied (debugging)
  kOn,          // everything the kernel allows
  kNoSeccomp,   // everything but the seccomp filter (to measure its cost)
};
std::string_view SandboxModeName(SandboxMode mode);
// "on", "off", "no-seccomp".
StatusOr<SandboxMode> ParseSandboxMode(std::string_view text);

// The uid/gid workers run as.
struct WorkerUser {
  uid_t uid = 0;
  gid_t gid = 0;
  bool operator==(const WorkerUser&) const = default;
};
// NAME | UID | NAME:GROUP | UID:GID (a group may be a name or a number).
// Without a group: the user's primary group if the user exists, else gid = uid.
// kInvalidArgument for an unknown name or a malformed number.
StatusOr<WorkerUser> ParseWorkerUser(std::string_view text);
// nobody / nogroup (65534:65534 when they are not in the user database).
WorkerUser DefaultWorkerUser();

struct SandboxOptions {
  SandboxMode mode = SandboxMode::kOn;
  int keep_fd = -1;                 // the one descriptor >= 3 left open; -1 = none
  std::optional<WorkerUser> user;   // nullopt = keep the current uid/gid
  std::string writable_dir;         // stays writable; empty = the whole view is read-only
  int max_open_files = 256;         // RLIMIT_NOFILE (soft and hard)
  int64_t max_file_size_mb = 1024;  // RLIMIT_FSIZE (soft and hard)
};

// One step of the sandbox: applied, or why not.
struct SandboxStep {
  bool applied = false;
  std::string reason;  // empty when applied
  bool operator==(const SandboxStep&) const = default;
};

// What ApplySandbox did. Sent to the server in the Ready message.
struct SandboxReport {
  SandboxMode mode = SandboxMode::kOff;
  int64_t uid = -1;  // real uid after the sandbox
  int64_t gid = -1;
  int64_t apply_us = 0;  // time ApplySandbox took
  SandboxStep fds_closed, rlimits, netns, readonly_fs, uid_drop, no_new_privs, seccomp;
  bool operator==(const SandboxReport&) const = default;

  // Every step applied.
  bool Complete() const;
  // "uid=65534 gid=65534 fds_closed=yes ... netns=no(reason)" for logs.
  std::string Summary() const;
  // {"mode":"on","uid":..,"gid":..,"apply_us":..,"fds_closed":true,...,"not_applied":{"netns":"reason"}}
  std::string ToJson() const;
};

// A line-based text form for the wire (ipc ReadyMessage::sandbox).
std::string EncodeReport(const SandboxReport& report);
// kInvalidArgument for text EncodeReport would not produce.
StatusOr<SandboxReport> DecodeReport(std::string_view text);

// Applies the sandbox to the calling process (steps in the order above).
// Never fails as a whole: a step the kernel refuses is reported. With
// mode kOff, applies nothing.
SandboxReport ApplySandbox(const SandboxOptions& options);

// For instances only, after ApplySandbox with seccomp: adds a filter so that
// tgkill reaches only this process's own threads. Every worker runs as the
// same user, so without it one model's code could signal another model's
// workers. Not for a template or the zygote: their forked children would
// inherit a rule naming the parent's pid and could not signal themselves.
// kUnavailable if the filter cannot be loaded.
Status RestrictSignalsToSelf();

// Closes every descriptor >= 3 except keep_fd (-1: none) and, if given,
// also_keep. Returns the error of close_range, if any.
Status CloseInheritedFds(int keep_fd, int also_keep = -1);

// Makes `dir` (a directory the server created, e.g. the run directory)
// readable by `user` and nobody else but its owner: group user.gid, mode
// 0750. Requires owning the directory (or root).
Status ShareDirectoryWith(const std::string& dir, const WorkerUser& user);

}  // namespace thaw::sandbox
