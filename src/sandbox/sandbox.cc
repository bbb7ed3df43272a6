#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <linux/mount.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/json_writer.h"

namespace thaw::sandbox {
namespace {

std::string Errno(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

int64_t NowMicros() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

template <typename T>
bool ParseNumber(std::string_view text, T* out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && end == text.data() + text.size();
}

SandboxStep Applied() { return {true, ""}; }
SandboxStep NotApplied(std::string reason) { return {false, std::move(reason)}; }

// ---- 1. descriptors --------------------------------------------------------

// ---- 2. rlimits ------------------------------------------------------------

SandboxStep SetLimits(const SandboxOptions& options) {
  auto lower = [](int resource, rlim_t value) -> bool {
    rlimit current{};
    if (::getrlimit(resource, &current) != 0) return false;
    rlimit next{std::min(value, current.rlim_max), std::min(value, current.rlim_max)};
    return ::setrlimit(resource, &next) == 0;
  };
  std::string failed;
  if (!lower(RLIMIT_NOFILE, static_cast<rlim_t>(options.max_open_files))) failed += Errno("RLIMIT_NOFILE") + "; ";
  if (!lower(RLIMIT_CORE, 0)) failed += Errno("RLIMIT_CORE") + "; ";
  if (!lower(RLIMIT_FSIZE, static_cast<rlim_t>(options.max_file_size_mb) << 20)) failed += Errno("RLIMIT_FSIZE") + "; ";
  ::signal(SIGXFSZ, SIG_IGN);
  if (!failed.empty()) return NotApplied(failed.substr(0, failed.size() - 2));
  return Applied();
}

// ---- 3. network namespace --------------------------------------------------

SandboxStep NewNetworkNamespace() {
  if (::unshare(CLONE_NEWNET) != 0) return NotApplied(Errno("unshare(CLONE_NEWNET)"));
  return Applied();
}

// ---- 4. read-only view -----------------------------------------------------

int MountSetattr(const char* path, unsigned flags, uint64_t set, uint64_t clear) {
  mount_attr attr{};
  attr.attr_set = set;
  attr.attr_clr = clear;
  return static_cast<int>(::syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &attr, sizeof attr));
}

// Mount points from /proc/self/mountinfo (field 5), octal escapes decoded.
std::vector<std::string> MountPoints() {
  std::vector<std::string> points;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point;
    if (!(fields >> id >> parent >> dev >> root >> point)) continue;
    std::string decoded;
    for (size_t i = 0; i < point.size(); ++i) {
      if (point[i] == '\\' && i + 3 < point.size()) {
        decoded += static_cast<char>(std::strtol(point.substr(i + 1, 3).c_str(), nullptr, 8));
        i += 3;
      } else {
        decoded += point[i];
      }
    }
    points.push_back(decoded);
  }
  return points;
}

// Read-only remount of each mount but `writable`, for kernels without
// mount_setattr. Mounts that refuse (locked flags) are skipped.
bool RemountEachReadOnly(const std::string& writable, std::string* error) {
  for (const std::string& point : MountPoints()) {
    if (!writable.empty() && point == writable) continue;
    if (::mount(nullptr, point.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
      if (point == "/") *error = Errno("remount / read-only");
    }
  }
  return error->empty();
}

SandboxStep ReadOnlyView(const std::string& writable_dir) {
  std::string writable;
  if (!writable_dir.empty()) {
    char resolved[PATH_MAX];
    if (!::realpath(writable_dir.c_str(), resolved)) return NotApplied(Errno("realpath " + writable_dir));
    writable = resolved;
  }
  if (::unshare(CLONE_NEWNS) != 0) return NotApplied(Errno("unshare(CLONE_NEWNS)"));
  // Changes stay in this namespace, and the host's later mounts stay out.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return NotApplied(Errno("make / private"));
  if (!writable.empty() && ::mount(writable.c_str(), writable.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    return NotApplied(Errno("bind " + writable));
  if (MountSetattr("/", AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0) == 0) {
    if (!writable.empty() && MountSetattr(writable.c_str(), AT_RECURSIVE, 0, MOUNT_ATTR_RDONLY) != 0)
      return NotApplied(Errno("mount_setattr rw " + writable));
    return Applied();
  }
  std::string error;
  if (!RemountEachReadOnly(writable, &error)) return NotApplied(error);
  return Applied();
}

// ---- 5. uid/gid ------------------------------------------------------------

SandboxStep DropUser(const std::optional<WorkerUser>& user) {
  if (!user) return NotApplied("kept uid " + std::to_string(::getuid()) + " (not root, or no --worker-user)");
  if (::setgroups(0, nullptr) != 0) return NotApplied(Errno("setgroups"));
  if (::setresgid(user->gid, user->gid, user->gid) != 0) return NotApplied(Errno("setresgid"));
  if (::setresuid(user->uid, user->uid, user->uid) != 0) return NotApplied(Errno("setresuid"));
  uid_t r, e, s;
  if (::getresuid(&r, &e, &s) != 0 || r != user->uid || e != user->uid || s != user->uid)
    return NotApplied("uid did not change");
  return Applied();
}

// ---- 7. seccomp ------------------------------------------------------------

// What libtorch inference, the worker's IPC and a spawner's fork need:
// derived from strace -f of workers (fraud, fashion, textenc, large) on the
// exec, template and zygote paths, plus the usual glibc/OpenMP calls.
// Everything else fails with EPERM: networking (socket only AF_UNIX;
// connect, bind, listen, accept never), ptrace, process_vm_*, mount,
// pivot_root, chroot, unshare, setns, kexec, modules, bpf, perf_event_open,
// keyrings, reboot, swap, io_uring, execve, setuid and friends, kill (a
// worker signals only its own threads, with tgkill; tkill, which names a
// thread of any process, never), and every ioctl but a
// few harmless ones (no TIOCSTI: typing into a terminal the worker shares).
// scripts/sandbox-audit checks this list against strace of real workers.
constexpr const char* kAllowed[] = {
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync", "mlock", "munlock", "mlock2",
    "get_mempolicy", "set_mempolicy", "mbind", "membarrier", "memfd_create",
    // files (the mount namespace decides what is writable)
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "open",
    "openat", "close", "close_range", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs", "lseek",
    "access", "faccessat", "faccessat2", "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir",
    "fchdir", "fcntl", "dup", "dup2", "dup3", "pipe", "pipe2", "flock", "fsync", "fdatasync", "ftruncate",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "umask", "fadvise64",
    "sendfile", "copy_file_range", "splice",
    // threads, scheduling, processes (a spawner forks; clone3 -> ENOSYS below)
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address", "rseq", "fork",
    "vfork", "exit", "exit_group", "wait4", "waitid", "sched_yield", "sched_getaffinity", "sched_setaffinity",
    "sched_getparam", "sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getattr", "sched_setattr", "getpriority", "setpriority", "arch_prctl", "prctl",
    "getcpu",
    // signals (own threads only)
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "rt_sigsuspend", "rt_sigpending",
    "sigaltstack", "tgkill", "restart_syscall", "pause",
    // identity and limits (read; prlimit64 can only lower limits now)
    "getpid", "getppid", "gettid", "getuid", "geteuid", "getgid", "getegid", "getgroups", "getresuid", "getresgid",
    "getpgrp", "getpgid", "getsid", "getrlimit", "setrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname",
    "setpgid",  // a zygote child becoming a template leads its own process group
    "capget",
    // time
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time", "alarm", "setitimer",
    "getitimer", "timer_create", "timer_settime", "timer_gettime", "timer_delete", "timerfd_create",
    "timerfd_settime", "timerfd_gettime",
    // waiting
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait",
    "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4",
    // the worker's Unix socket (SCM_RIGHTS for spawners)
    "sendmsg", "recvmsg", "sendto", "recvfrom", "shutdown", "getsockopt", "setsockopt", "getsockname",
    "getpeername",
    // randomness
    "getrandom",
    // more filters (RestrictSignalsToSelf): a filter can only narrow what is allowed
    "seccomp",
};

SandboxStep InstallSeccomp() {
  scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ERRNO(EPERM));
  if (!ctx) return NotApplied("seccomp_init failed");
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { ::seccomp_release(ctx); }
  } release{ctx};
  // Other threads (if any) get the same filter.
  ::seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
  for (const char* name : kAllowed) {
    const int nr = ::seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) continue;  // not on this architecture
    int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    if (rc != 0 && rc != -EEXIST) return NotApplied("seccomp_rule_add " + std::string(name) + ": " + std::strerror(-rc));
  }
  // Only Unix sockets: the worker's own protocol needs nothing else.
  int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  if (rc == 0) rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
  // ioctl: terminal queries, non-blocking and close-on-exec flags, bytes
  // readable. The request is an int: compare its low 32 bits.
  for (const unsigned long request : {TCGETS, TIOCGWINSZ, FIONBIO, FIONREAD, FIOCLEX, FIONCLEX})
    if (rc == 0)
      rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, request));
  // clone3 passes its flags in memory a filter cannot read: ENOSYS makes
  // glibc fall back to clone, whose flags are checked here (no new
  // namespaces: a user namespace would give back capabilities).
  if (rc == 0) rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
  if (rc == 0) {
    const uint64_t namespaces = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC |
                                CLONE_NEWUTS | CLONE_NEWCGROUP;
    rc = ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, namespaces, 0));
  }
  if (rc != 0) return NotApplied(std::string("seccomp_rule_add: ") + std::strerror(-rc));
  rc = ::seccomp_load(ctx);
  if (rc != 0) return NotApplied(std::string("seccomp_load: ") + std::strerror(-rc));
  return Applied();
}

// ---- report text -----------------------------------------------------------

struct NamedStep {
  const char* name;
  SandboxStep SandboxReport::*step;
};
constexpr NamedStep kSteps[] = {
    {"fds_closed", &SandboxReport::fds_closed},   {"rlimits", &SandboxReport::rlimits},
    {"netns", &SandboxReport::netns},             {"readonly_fs", &SandboxReport::readonly_fs},
    {"uid_drop", &SandboxReport::uid_drop},       {"no_new_privs", &SandboxReport::no_new_privs},
    {"seccomp", &SandboxReport::seccomp},
};

}  // namespace

std::string_view SandboxModeName(SandboxMode mode) {
  switch (mode) {
    case SandboxMode::kOff: return "off";
    case SandboxMode::kOn: return "on";
    case SandboxMode::kNoSeccomp: return "no-seccomp";
  }
  return "?";
}

StatusOr<SandboxMode> ParseSandboxMode(std::string_view text) {
  for (SandboxMode m : {SandboxMode::kOff, SandboxMode::kOn, SandboxMode::kNoSeccomp})
    if (text == SandboxModeName(m)) return m;
  return InvalidArgument("sandbox mode must be on, off or no-seccomp, not '" + std::string(text) + "'");
}

StatusOr<WorkerUser> ParseWorkerUser(std::string_view text) {
  std::string_view user_part = text, group_part;
  if (size_t colon = text.find(':'); colon != std::string_view::npos) {
    user_part = text.substr(0, colon);
    group_part = text.substr(colon + 1);
    if (group_part.empty()) return InvalidArgument("worker user '" + std::string(text) + "': empty group after ':'");
  }
  if (user_part.empty()) return InvalidArgument("worker user is empty (NAME|UID[:GID])");
  WorkerUser user;
  std::optional<gid_t> primary;
  uint32_t number = 0;
  std::vector<char> buf(16384);
  if (ParseNumber(user_part, &number)) {
    user.uid = number;
    passwd pw{}, *found = nullptr;
    if (::getpwuid_r(user.uid, &pw, buf.data(), buf.size(), &found) == 0 && found) primary = pw.pw_gid;
  } else {
    passwd pw{}, *found = nullptr;
    const std::string name(user_part);
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
      return InvalidArgument("worker user '" + name + "' does not exist (NAME|UID[:GID])");
    user.uid = pw.pw_uid;
    primary = pw.pw_gid;
  }
  if (group_part.empty()) {
    user.gid = primary.value_or(user.uid);
  } else if (ParseNumber(group_part, &number)) {
    user.gid = number;
  } else {
    group gr{}, *found = nullptr;
    const std::string name(group_part);
    if (::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found) != 0 || !found)
      return InvalidArgument("worker group '" + name + "' does not exist");
    user.gid = gr.gr_gid;
  }
  return user;
}

WorkerUser DefaultWorkerUser() {
  WorkerUser user{65534, 65534};
  std::vector<char> buf(16384);
  passwd pw{}, *pfound = nullptr;
  if (::getpwnam_r("nobody", &pw, buf.data(), buf.size(), &pfound) == 0 && pfound) user.uid = pw.pw_uid;
  group gr{}, *gfound = nullptr;
  if (::getgrnam_r("nogroup", &gr, buf.data(), buf.size(), &gfound) == 0 && gfound) user.gid = gr.gr_gid;
  return user;
}

bool SandboxReport::Complete() const {
  for (const NamedStep& s : kSteps)
    if (!(this->*s.step).applied) return false;
  return true;
}

std::string SandboxReport::Summary() const {
  std::string out = "mode=" + std::string(SandboxModeName(mode)) + " uid=" + std::to_string(uid) +
                    " gid=" + std::to_string(gid) + " apply_us=" + std::to_string(apply_us);
  for (const NamedStep& s : kSteps) {
    const SandboxStep& step = this->*s.step;
    out += " " + std::string(s.name) + "=" + (step.applied ? "yes" : "no(" + step.reason + ")");
  }
  return out;
}

std::string SandboxReport::ToJson() const {
  std::string out;
  JsonWriter w(&out);
  w.BeginObject().Field("mode", SandboxModeName(mode)).Field("uid", uid).Field("gid", gid).Field("apply_us", apply_us);
  for (const NamedStep& s : kSteps) w.Field(s.name, (this->*s.step).applied);
  w.Key("not_applied").BeginObject();
  for (const NamedStep& s : kSteps)
    if (!(this->*s.step).applied) w.Field(s.name, (this->*s.step).reason);
  w.EndObject().EndObject();
  return out;
}

// One "key value" line per field; a step is "name 1" or "name 0 reason".
std::string EncodeReport(const SandboxReport& report) {
  std::string out = "mode " + std::string(SandboxModeName(report.mode)) + "\nuid " + std::to_string(report.uid) +
                    "\ngid " + std::to_string(report.gid) + "\napply_us " + std::to_string(report.apply_us) + "\n";
  for (const NamedStep& s : kSteps) {
    const SandboxStep& step = report.*s.step;
    std::string reason = step.reason;
    for (char& c : reason)
      if (c == '\n') c = ' ';
    out += std::string(s.name) + (step.applied ? " 1" : " 0 " + reason) + "\n";
  }
  return out;
}

StatusOr<SandboxReport> DecodeReport(std::string_view text) {
  SandboxReport report;
  std::vector<bool> seen(std::size(kSteps) + 4, false);
  auto bad = [&](std::string_view why) { return InvalidArgument("sandbox report: " + std::string(why)); };
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("unterminated line");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad("line without a value");
    std::string_view key = line.substr(0, sp), value = line.substr(sp + 1);
    size_t index = 0;
    bool known = false;
    if (key == "mode") {
      auto mode = ParseSandboxMode(value);
      if (!mode.ok()) return bad("bad mode");
      report.mode = *mode;
      index = 0, known = true;
    } else if (key == "uid" || key == "gid" || key == "apply_us") {
      int64_t* field = key == "uid" ? &report.uid : key == "gid" ? &report.gid : &report.apply_us;
      if (!ParseNumber(value, field)) return bad("bad number for " + std::string(key));
      index = key == "uid" ? 1 : key == "gid" ? 2 : 3, known = true;
    } else {
      for (size_t i = 0; i < std::size(kSteps); ++i) {
        if (key != kSteps[i].name) continue;
        SandboxStep& step = report.*kSteps[i].step;
        if (value == "1") {
          step = Applied();
        } else if (value.starts_with("0 ")) {
          step = NotApplied(std::string(value.substr(2)));
        } else {
          return bad("bad value for " + std::string(key));
        }
        index = 4 + i, known = true;
      }
    }
    if (!known) return bad("unknown key '" + std::string(key) + "'");
    if (seen[index]) return bad("repeated key '" + std::string(key) + "'");
    seen[index] = true;
  }
  for (bool s : seen)
    if (!s) return bad("missing key");
  return report;
}

Status RestrictSignalsToSelf() {
  scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_ALLOW);
  if (!ctx) return Unavailable("seccomp_init failed");
  struct Release {
    scmp_filter_ctx ctx;
    ~Release() { ::seccomp_release(ctx); }
  } release{ctx};
  const auto self = static_cast<scmp_datum_t>(::getpid());
  int rc = ::seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(tgkill), 1, SCMP_A0(SCMP_CMP_NE, self));
  if (rc == 0) rc = ::seccomp_load(ctx);
  if (rc != 0) return Unavailable(std::string("cannot restrict signals to this process: ") + std::strerror(-rc));
  return Status::Ok();
}

Status CloseInheritedFds(int keep_fd, int also_keep) {
  int keep[2] = {keep_fd, also_keep};
  if (keep[0] > keep[1]) std::swap(keep[0], keep[1]);
  unsigned first = 3;
  for (int k : keep) {
    if (k < static_cast<int>(first)) continue;
    if (k > static_cast<int>(first) && ::syscall(SYS_close_range, first, static_cast<unsigned>(k - 1), 0) != 0)
      return Internal(Errno("close_range"));
    first = static_cast<unsigned>(k) + 1;
  }
  if (::syscall(SYS_close_range, first, ~0U, 0) != 0) return Internal(Errno("close_range"));
  return Status::Ok();
}

SandboxReport ApplySandbox(const SandboxOptions& options) {
  SandboxReport report;
  report.mode = options.mode;
  const int64_t start = NowMicros();
  const std::string off = "sandbox off";
  if (options.mode == SandboxMode::kOff) {
    for (const NamedStep& s : kSteps) report.*s.step = NotApplied(off);
  } else {
    Status closed = CloseInheritedFds(options.keep_fd);
    report.fds_closed = closed.ok() ? Applied() : NotApplied(closed.message());
    report.rlimits = SetLimits(options);
    report.netns = NewNetworkNamespace();
    report.readonly_fs = ReadOnlyView(options.writable_dir);
    report.uid_drop = DropUser(options.user);
    report.no_new_privs = ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 ? Applied() : NotApplied(Errno("prctl"));
    report.seccomp = options.mode == SandboxMode::kNoSeccomp ? NotApplied("--sandbox=no-seccomp") : InstallSeccomp();
  }
  report.uid = ::getuid();
  report.gid = ::getgid();
  report.apply_us = NowMicros() - start;
  return report;
}

Status ShareDirectoryWith(const std::string& dir, const WorkerUser& user) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return Internal(Errno("stat " + dir));
  if (::chown(dir.c_str(), st.st_uid, user.gid) != 0) return Internal(Errno("chown " + dir));
  if (::chmod(dir.c_str(), 0750) != 0) return Internal(Errno("chmod " + dir));
  return Status::Ok();
}

}  // namespace thaw::sandbox
