#include "cgroup/memory_cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <optional>

#include "base/log.h"

namespace thaw::cgroup {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// Reads a small file whole (cgroup files are a page at most).
StatusOr<std::string> ReadSmallFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return err == ENOENT ? NotFound(path + ": " + ErrnoText(err)) : Unavailable(path + ": " + ErrnoText(err));
  }
  std::string text;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Unavailable(path + ": " + ErrnoText(err));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

// One write(2) of the whole value: cgroup files take a value per write.
// `create` only matters off a cgroup filesystem (tests' fake roots), where
// control files are ordinary files; on cgroupfs they exist or cannot be made.
Status WriteFile(const std::string& path, std::string_view value, bool create = true) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0644);
  if (fd < 0) return Unavailable("cannot open " + path + ": " + ErrnoText(errno));
  ssize_t n;
  do n = ::write(fd, value.data(), value.size());
  while (n < 0 && errno == EINTR);
  const int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size()))
    return Unavailable("cannot write '" + std::string(value) + "' to " + path + ": " + (n < 0 ? ErrnoText(err) : "short write"));
  return Status::Ok();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  return s;
}

std::optional<int64_t> ParseInt(std::string_view s) {
  s = Trim(s);
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

// The value of `key` in a "key value" per line file (memory.events, memory.oom_control).
std::optional<int64_t> KeyedValue(std::string_view text, std::string_view key) {
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return ParseInt(line.substr(key.size() + 1));
  }
  return std::nullopt;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string_view oct = s.substr(i + 1, 3);
      int v = 0;
      auto [end, ec] = std::from_chars(oct.data(), oct.data() + 3, v, 8);
      if (ec == std::errc() && end == oct.data() + 3) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    const size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

bool HasWord(std::string_view list, std::string_view word, char sep) {
  for (std::string_view part : Split(list, sep))
    if (Trim(part) == word) return true;
  return false;
}

// The group path of `mount` as seen by the process: /proc/self/cgroup gives
// it relative to the hierarchy's root; the mount may show a subtree.
std::string OwnDir(const Mount& mount, std::string_view group) {
  std::string_view rel = group;
  if (mount.root != "/" && rel.starts_with(mount.root)) rel.remove_prefix(mount.root.size());
  std::string dir = mount.mount_point;
  while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
  if (!rel.empty()) dir += "/" + std::string(rel);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

}  // namespace

std::vector<Mount> ParseMountInfo(std::string_view text) {
  std::vector<Mount> mounts;
  for (std::string_view line : Split(text, '\n')) {
    // id parent major:minor root mount_point options [optional...] - fstype source super_options
    const size_t dash = line.find(" - ");
    if (dash == std::string_view::npos) continue;
    std::vector<std::string_view> head = Split(line.substr(0, dash), ' ');
    std::vector<std::string_view> tail = Split(line.substr(dash + 3), ' ');
    if (head.size() < 6 || tail.size() < 3) continue;
    mounts.push_back({Unescape(head[3]), Unescape(head[4]), std::string(tail[0]), std::string(tail[2])});
  }
  return mounts;
}

StatusOr<MemoryHierarchy> FindMemoryHierarchy(std::string_view mountinfo, std::string_view self_cgroup) {
  // /proc/self/cgroup: "hierarchy-id:controllers:path"; v2 is "0::path".
  std::optional<std::string> v2_group, v1_memory_group;
  for (std::string_view line : Split(self_cgroup, '\n')) {
    const size_t a = line.find(':');
    const size_t b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    const std::string_view controllers = line.substr(a + 1, b - a - 1);
    const std::string path(Trim(line.substr(b + 1)));
    if (line.substr(0, a) == "0" && controllers.empty()) v2_group = path;
    else if (HasWord(controllers, "memory", ',')) v1_memory_group = path;
  }
  const std::vector<Mount> mounts = ParseMountInfo(mountinfo);
  std::string v2_reason = "no cgroup2 mount";
  if (v2_group) {
    for (const Mount& m : mounts) {
      if (m.fs_type != "cgroup2") continue;
      const std::string own = OwnDir(m, *v2_group);
      auto controllers = ReadSmallFile(own + "/cgroup.controllers");
      if (controllers.ok() && HasWord(Trim(*controllers), "memory", ' '))
        return MemoryHierarchy{CgroupVersion::kV2, m.mount_point, own};
      v2_reason = "cgroup2 at " + m.mount_point + " has no memory controller";
    }
  }
  if (v1_memory_group) {
    for (const Mount& m : mounts)
      if (m.fs_type == "cgroup" && HasWord(m.super_options, "memory", ','))
        return MemoryHierarchy{CgroupVersion::kV1, m.mount_point, OwnDir(m, *v1_memory_group)};
  }
  return NotFound(v2_reason + " and no cgroup v1 memory hierarchy");
}

MemoryCgroups::MemoryCgroups(MemoryCgroupsOptions options) : options_(std::move(options)) {
  if (options_.server_pid == 0) options_.server_pid = static_cast<int>(::getpid());
  auto mountinfo = ReadSmallFile(options_.mountinfo_path);
  auto self_cgroup = ReadSmallFile(options_.self_cgroup_path);
  if (!mountinfo.ok() || !self_cgroup.ok()) {
    description_ = "not enforced (cannot read " +
                   (mountinfo.ok() ? self_cgroup.status().message() : mountinfo.status().message()) + ")";
    return;
  }
  auto hierarchy = FindMemoryHierarchy(*mountinfo, *self_cgroup);
  if (!hierarchy.ok()) {
    description_ = "not enforced (" + hierarchy.status().message() + ")";
    return;
  }
  hierarchy_ = *hierarchy;
  RemoveStaleParents();
  parent_dir_ = hierarchy_.own_dir + "/" + options_.parent_prefix + std::to_string(options_.server_pid);
  if (::mkdir(parent_dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    description_ = "not enforced (cannot create " + parent_dir_ + ": " + ErrnoText(errno) +
                   (errno == EACCES || errno == EPERM || errno == EROFS ? "; run as root or delegate the group" : "") + ")";
    parent_dir_.clear();
    return;
  }
  if (hierarchy_.version == CgroupVersion::kV2) {
    // Children get the memory controller only if each parent enables it.
    for (const std::string& dir : {hierarchy_.own_dir, parent_dir_}) {
      Status enabled = WriteFile(dir + "/cgroup.subtree_control", "+memory");
      if (!enabled.ok()) {
        description_ = "not enforced (" + enabled.message() + ")";
        ::rmdir(parent_dir_.c_str());
        parent_dir_.clear();
        return;
      }
    }
  } else {
    swap_accounting_ = Exists(hierarchy_.own_dir + "/memory.memsw.limit_in_bytes");
  }
  enforced_ = true;
  description_ = std::string(hierarchy_.version == CgroupVersion::kV2 ? "cgroup v2" : "cgroup v1") +
                 " memory controller, groups under " + parent_dir_ +
                 (hierarchy_.version == CgroupVersion::kV1 && !swap_accounting_ ? " (no swap accounting)" : "");
}

MemoryCgroups::~MemoryCgroups() {
  if (parent_dir_.empty()) return;
  // Killed workers take a moment to leave their groups.
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (RemoveGroupTree(parent_dir_).ok()) return;
    ::usleep(10 * 1000);
  }
  LogEvent(LogLevel::kWarning, "cgroup_remove_failed",
           LogFields({{"dir", LogValue(parent_dir_)}, {"error", LogValue("still in use")}}));
}

void MemoryCgroups::RemoveStaleParents() {
  DIR* dir = ::opendir(hierarchy_.own_dir.c_str());
  if (!dir) return;
  std::vector<std::string> stale;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (!name.starts_with(options_.parent_prefix)) continue;
    auto pid = ParseInt(name.substr(options_.parent_prefix.size()));
    if (!pid || *pid <= 0 || *pid == options_.server_pid) continue;
    if (::kill(static_cast<pid_t>(*pid), 0) == 0 || errno != ESRCH) continue;  // alive (or not ours to judge)
    stale.push_back(hierarchy_.own_dir + "/" + std::string(name));
  }
  ::closedir(dir);
  for (const std::string& path : stale) {
    Status removed = RemoveGroupTree(path);
    if (removed.ok()) ++stale_removed_;
    LogEvent(removed.ok() ? LogLevel::kInfo : LogLevel::kWarning, "cgroup_stale_removed",
             LogFields({{"dir", LogValue(path)}, {"ok", removed.ok() ? "true" : "false"},
                        {"error", LogValue(removed.ok() ? "" : removed.message())}}));
  }
}

Status MemoryCgroups::WriteLimit(const std::string& dir, int64_t limit_bytes) {
  const std::string value = std::to_string(limit_bytes);
  if (hierarchy_.version == CgroupVersion::kV2) {
    THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.max", value));
    // No swap: the limit is on memory, not on memory the process can push out.
    if (Exists(dir + "/memory.swap.max")) THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.swap.max", "0"));
    // An OOM kill takes the whole instance, not one of its threads' victims.
    if (Exists(dir + "/memory.oom.group")) (void)WriteFile(dir + "/memory.oom.group", "1");
    return Status::Ok();
  }
  // A fresh group is unlimited, so memory first, then memory+swap (>= memory).
  THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.limit_in_bytes", value));
  if (swap_accounting_) THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.memsw.limit_in_bytes", value));
  // Best effort (deprecated in newer kernels): a standby's private pages follow it.
  (void)WriteFile(dir + "/memory.move_charge_at_immigrate", "1");
  return Status::Ok();
}

Status MemoryCgroups::SetLimit(const std::string& dir, int64_t limit_bytes) {
  if (!enforced_) return Unavailable("memory limits are " + description_);
  if (hierarchy_.version == CgroupVersion::kV2) return WriteFile(dir + "/memory.max", std::to_string(limit_bytes));
  // v1 keeps memory+swap >= memory at every step: raising, memsw goes first.
  const std::string value = std::to_string(limit_bytes);
  StatusOr<int64_t> current = MemoryLimitBytes(dir);
  const bool raising = !current.ok() || limit_bytes > *current;
  if (swap_accounting_ && raising) THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.memsw.limit_in_bytes", value));
  THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.limit_in_bytes", value));
  if (swap_accounting_ && !raising) THAW_RETURN_IF_ERROR(WriteFile(dir + "/memory.memsw.limit_in_bytes", value));
  return Status::Ok();
}

StatusOr<std::string> MemoryCgroups::Create(std::string_view name, int64_t limit_bytes) {
  if (!enforced_) return Unavailable("memory limits are " + description_);
  if (name.empty() || name.find('/') != std::string_view::npos || name == "." || name == "..")
    return InvalidArgument("bad cgroup name '" + std::string(name) + "'");
  const std::string dir = parent_dir_ + "/" + std::string(name);
  if (Exists(dir)) THAW_RETURN_IF_ERROR(RemoveGroupTree(dir));
  if (::mkdir(dir.c_str(), 0755) != 0) return Unavailable("cannot create " + dir + ": " + ErrnoText(errno));
  Status limited = WriteLimit(dir, limit_bytes);
  if (limited.ok() && options_.worker_uid >= 0) {
    for (const char* file : {"/cgroup.procs", "/tasks"}) {
      const std::string path = dir + file;
      if (!Exists(path)) continue;
      if (::chown(path.c_str(), static_cast<uid_t>(options_.worker_uid), static_cast<gid_t>(options_.worker_gid)) != 0) {
        limited = Unavailable("cannot chown " + path + ": " + ErrnoText(errno));
        break;
      }
    }
  }
  if (!limited.ok()) {
    ::rmdir(dir.c_str());
    return limited;
  }
  return dir;
}

Status MemoryCgroups::Remove(const std::string& dir) {
  if (dir.empty()) return Status::Ok();
  return RemoveGroupTree(dir);
}

Status RemoveGroupTree(const std::string& path) {
  if (DIR* dir = ::opendir(path.c_str())) {
    std::vector<std::string> children;
    while (dirent* entry = ::readdir(dir)) {
      std::string_view name = entry->d_name;
      if (name == "." || name == "..") continue;
      const std::string child = path + "/" + std::string(name);
      struct stat st;
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) children.push_back(child);
    }
    ::closedir(dir);
    for (const std::string& child : children) THAW_RETURN_IF_ERROR(RemoveGroupTree(child));
  }
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return Status::Ok();
  if (errno == ENOTEMPTY) {
    // Not a cgroup filesystem (a test's fake root): the control files are ordinary files.
    if (DIR* dir = ::opendir(path.c_str())) {
      while (dirent* entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name != "." && name != "..") ::unlink((path + "/" + std::string(name)).c_str());
      }
      ::closedir(dir);
      if (::rmdir(path.c_str()) == 0) return Status::Ok();
    }
  }
  return Unavailable("cannot remove " + path + ": " + ErrnoText(errno));
}

Status JoinMemoryCgroup(const std::string& dir) { return MoveToMemoryCgroup(dir, ::getpid()); }

Status MoveToMemoryCgroup(const std::string& dir, pid_t pid) {
  if (dir.empty()) return Status::Ok();
  // cgroup.procs moves every thread of the process.
  return WriteFile(dir + "/cgroup.procs", std::to_string(pid), /*create=*/false);
}

StatusOr<int64_t> OomKillCount(const std::string& dir) {
  auto events = ReadSmallFile(dir + "/memory.events");
  if (events.ok()) {
    if (auto n = KeyedValue(*events, "oom_kill")) return *n;
    return Unavailable(dir + "/memory.events has no oom_kill");
  }
  auto control = ReadSmallFile(dir + "/memory.oom_control");
  if (!control.ok()) return control.status();
  if (auto n = KeyedValue(*control, "oom_kill")) return *n;
  return Unavailable(dir + "/memory.oom_control has no oom_kill");
}

namespace {
StatusOr<int64_t> ReadBytes(const std::string& dir, const char* v2_file, const char* v1_file) {
  auto text = ReadSmallFile(dir + "/" + v2_file);
  if (!text.ok() && text.status().code() == StatusCode::kNotFound) text = ReadSmallFile(dir + "/" + v1_file);
  if (!text.ok()) return text.status();
  if (Trim(*text) == "max") return std::numeric_limits<int64_t>::max();
  if (auto v = ParseInt(*text)) return *v;
  return Unavailable("unreadable value in " + dir);
}
}  // namespace

StatusOr<int64_t> MemoryUsageBytes(const std::string& dir) { return ReadBytes(dir, "memory.current", "memory.usage_in_bytes"); }
StatusOr<int64_t> MemoryPeakBytes(const std::string& dir) { return ReadBytes(dir, "memory.peak", "memory.max_usage_in_bytes"); }
StatusOr<int64_t> MemoryLimitBytes(const std::string& dir) { return ReadBytes(dir, "memory.max", "memory.limit_in_bytes"); }

}  // namespace thaw::cgroup
