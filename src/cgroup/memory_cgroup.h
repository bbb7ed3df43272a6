// Memory cgroups: the hard per-process memory limit behind a model's
// memory_mb. The server (MemoryCgroups) makes one parent group per server
// process, `<own group>/thaw-<server pid>/`, and one group below it per
// instance (limit memory_mb), per template (limit 2 x memory_mb: the
// template and the standby it warms before handing it an instance) and for
// the zygote (kZygoteGroupMemoryMb). Exec'd instances, templates and the
// zygote move themselves in (JoinMemoryCgroup) before they load anything or
// drop privileges; a process forked by a sandboxed template or zygote (an
// instance, a standby, a template) cannot write cgroup files, so the server
// moves it (MoveToMemoryCgroup) as soon as it reports its pid, and an
// instance gets work only once its move has landed.
//
// Which kernel interface: cgroup v2 where a cgroup2 mount lists "memory" in
// the server's group's cgroup.controllers (memory.max, memory.swap.max=0,
// memory.oom.group=1; OOM kills read from memory.events), else the v1
// memory hierarchy (memory.limit_in_bytes, memory.memsw.limit_in_bytes when
// swap accounting exists so swap cannot dodge the limit; OOM kills read from
// memory.oom_control's oom_kill). Neither (no controller, not root, v2
// without delegation): enforced() is false and description() says why; the
// server then runs without limits.
//
// What the limit bounds: what a process allocates itself. Pages a forked
// instance shares copy-on-write with its template stay charged to the
// template's group (the kernel charges a page to the group of its first
// toucher); an instance's own allocations, including its private copies of
// written pages, are charged to the instance. On v1 the instance groups set
// memory.move_charge_at_immigrate, so a standby's private warm-up pages move
// with it into its instance group (where the kernel still supports it).
//
// Order in a worker (exec'd instance, template, zygote): join first, then
// drop privileges, then load. A worker that drops to an unprivileged
// uid before joining can join only if the server made the group's procs file
// its own (MemoryCgroupsOptions::worker_uid); on v2 moving between groups
// also needs write access to the common parent, which this does not grant.
//
// Lifetime: groups are removed (rmdir) once their processes are gone;
// Remove() says kUnavailable while one still holds a process, so callers
// retry after it exits. The destructor removes the whole parent (waiting up
// to a second for killed processes to leave). Parents left by a server that
// died (thaw-<pid> with <pid> no longer running) are removed at startup.
// Pids are those of the server's pid namespace.
//
// Thread safety: MemoryCgroups is not thread-safe; use it on one thread.
// The free functions are safe anywhere (JoinMemoryCgroup after fork too: it
// makes only system calls and does not allocate beyond a small string).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace thaw::cgroup {

// The zygote holds the engines only (~170 MB here): what it is metered as
// holding for the platform.
constexpr int64_t kZygoteMemoryMb = 1024;
// The limit of the zygote's group, which also holds its children (instances,
// templates, preparations) from their fork until the server's move into
// their own group lands: they start loading at once, and a cgroup v1 attach
// takes 5-15 ms, so a burst of starts leaves several loading there (at 1024
// MB the kernel killed the zygote under the 1,000-model trace).
constexpr int64_t kZygoteGroupMemoryMb = 4096;

enum class CgroupVersion { kV1, kV2 };

// One line of /proc/self/mountinfo.
struct Mount {
  std::string root;         // the path of the mounted filesystem's root within it
  std::string mount_point;  // where it is mounted (octal escapes decoded)
  std::string fs_type;      // cgroup, cgroup2, tmpfs, ...
  std::string super_options;  // for cgroup v1: the controllers, e.g. "rw,memory"
};

// Parses /proc/self/mountinfo text; malformed lines are skipped.
std::vector<Mount> ParseMountInfo(std::string_view text);

// Where the memory controller is, and the server's own group in it.
struct MemoryHierarchy {
  CgroupVersion version = CgroupVersion::kV1;
  std::string mount_point;
  std::string own_dir;  // the directory of the calling process's group
};

// Finds the memory controller from /proc/self/mountinfo and /proc/self/cgroup
// texts: v2 first (reads <own dir>/cgroup.controllers), then v1. kNotFound
// with the reason when there is none.
StatusOr<MemoryHierarchy> FindMemoryHierarchy(std::string_view mountinfo, std::string_view self_cgroup);

struct MemoryCgroupsOptions {
  std::string mountinfo_path = "/proc/self/mountinfo";
  std::string self_cgroup_path = "/proc/self/cgroup";
  // Name of the per-server parent: prefix + server pid.
  std::string parent_prefix = "thaw-";
  int server_pid = 0;  // 0 = getpid()
  // The uid/gid workers run as when they drop privileges; each group's
  // procs file (v1: and tasks) is chowned to it. -1 = leave root's.
  int worker_uid = -1;
  int worker_gid = -1;
};

class MemoryCgroups {
 public:
  // Detects the controller, removes stale parents and creates this server's
  // parent. Never fails: see enforced() and description().
  explicit MemoryCgroups(MemoryCgroupsOptions options = {});
  ~MemoryCgroups();
  MemoryCgroups(const MemoryCgroups&) = delete;
  MemoryCgroups& operator=(const MemoryCgroups&) = delete;

  bool enforced() const { return enforced_; }
  // "cgroup v1 memory controller, groups under DIR", or why not enforced.
  const std::string& description() const { return description_; }
  const std::string& parent_dir() const { return parent_dir_; }
  CgroupVersion version() const { return hierarchy_.version; }
  // Stale parents of dead servers removed at startup.
  int stale_removed() const { return stale_removed_; }

  // Creates the group `name` (a single path component) with a hard limit of
  // `limit_bytes`, replacing a leftover of that name. Returns its directory.
  // kUnavailable when not enforced or the kernel refuses.
  StatusOr<std::string> Create(std::string_view name, int64_t limit_bytes);
  // Removes a group made by Create: kUnavailable while processes remain.
  Status Remove(const std::string& dir);
  // Changes the hard limit of a group made by Create (e.g. a standby's group
  // given to an instance of some model). Lowering it below the group's usage
  // fails (kUnavailable) after the kernel tried to reclaim.
  Status SetLimit(const std::string& dir, int64_t limit_bytes);

 private:
  Status WriteLimit(const std::string& dir, int64_t limit_bytes);
  void RemoveStaleParents();

  MemoryCgroupsOptions options_;
  MemoryHierarchy hierarchy_;
  bool enforced_ = false;
  bool swap_accounting_ = false;  // v1: memory.memsw.* present
  std::string description_;
  std::string parent_dir_;
  int stale_removed_ = 0;
};

// Moves the calling process (all its threads) into the group at `dir`.
// Empty `dir`: nothing to do, Ok. Errors name the file and errno.
Status JoinMemoryCgroup(const std::string& dir);
// Moves process `pid` (all its threads) into the group at `dir`: how the
// server places an instance forked by a sandboxed template or zygote, which
// cannot write cgroup files itself. Same errors as JoinMemoryCgroup.
Status MoveToMemoryCgroup(const std::string& dir, pid_t pid);

// The number of processes the kernel's OOM killer killed in the group at
// `dir` (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).
StatusOr<int64_t> OomKillCount(const std::string& dir);
// Current charge of the group (v2 memory.current, v1 memory.usage_in_bytes).
StatusOr<int64_t> MemoryUsageBytes(const std::string& dir);
// Highest charge the group has had (v2 memory.peak, v1
// memory.max_usage_in_bytes); kNotFound on a kernel that keeps none.
StatusOr<int64_t> MemoryPeakBytes(const std::string& dir);
// The hard limit of the group (v2 memory.max, v1 memory.limit_in_bytes);
// INT64_MAX for "max".
StatusOr<int64_t> MemoryLimitBytes(const std::string& dir);

// Removes a directory tree of groups, deepest first; kUnavailable if a group
// still holds processes.
Status RemoveGroupTree(const std::string& dir);

}  // namespace thaw::cgroup
