#include "cgroup/memory_cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace thaw::cgroup {
namespace {

namespace fs = std::filesystem;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
}

// A temporary directory standing in for /sys/fs/cgroup.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/thaw-cgroup-test-XXXXXX";
    path_ = ::mkdtemp(pattern);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A pid that no longer runs: a child that exited and was reaped.
int DeadPid() {
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  return static_cast<int>(child);
}

constexpr std::string_view kV1MountInfo =
    "30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

TEST(MountInfoTest, ParsesFieldsAndDecodesEscapes) {
  auto mounts = ParseMountInfo(
      "34 30 0:31 / /sys/fs/cgroup/memory rw,relatime shared:5 - cgroup cgroup rw,memory\n"
      "50 30 0:40 /sub /mnt/with\\040space rw - cgroup2 none rw\n"
      "garbage line\n");
  ASSERT_EQ(mounts.size(), 2u);
  EXPECT_EQ(mounts[0].mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ(mounts[0].fs_type, "cgroup");
  EXPECT_EQ(mounts[0].super_options, "rw,memory");
  EXPECT_EQ(mounts[1].root, "/sub");
  EXPECT_EQ(mounts[1].mount_point, "/mnt/with space");
  EXPECT_EQ(mounts[1].fs_type, "cgroup2");
}

TEST(FindMemoryHierarchyTest, V1WhenCgroup2HasNoMemoryController) {
  // This machine's layout: the unified hierarchy exists without memory.
  auto found = FindMemoryHierarchy(kV1MountInfo, "9:name=systemd:/\n4:memory:/process_api/abc\n0::/\n");
  ASSERT_TRUE(found.ok()) << found.status().message();
  EXPECT_EQ(found->version, CgroupVersion::kV1);
  EXPECT_EQ(found->mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ(found->own_dir, "/sys/fs/cgroup/memory/process_api/abc");
}

TEST(FindMemoryHierarchyTest, V2WhenItsControllersListMemory) {
  TempDir root;
  fs::create_directories(root.path() / "app.slice");
  WriteText(root.path() / "app.slice" / "cgroup.controllers", "cpuset cpu io memory pids\n");
  const std::string mountinfo = "40 30 0:37 / " + root.path().string() + " rw - cgroup2 cgroup2 rw\n" +
                                "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
  auto found = FindMemoryHierarchy(mountinfo, "4:memory:/x\n0::/app.slice\n");
  ASSERT_TRUE(found.ok()) << found.status().message();
  EXPECT_EQ(found->version, CgroupVersion::kV2);
  EXPECT_EQ(found->own_dir, (root.path() / "app.slice").string());

  // Without memory in the list, the v1 hierarchy is used.
  WriteText(root.path() / "app.slice" / "cgroup.controllers", "cpu pids\n");
  found = FindMemoryHierarchy(mountinfo, "4:memory:/x\n0::/app.slice\n");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->version, CgroupVersion::kV1);
  EXPECT_EQ(found->own_dir, "/sys/fs/cgroup/memory/x");
}

TEST(FindMemoryHierarchyTest, MountOfASubtreeIsJoinedWithTheGroupPath) {
  auto found = FindMemoryHierarchy("34 30 0:31 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
                                   "4:memory:/docker/c1/worker\n");
  ASSERT_TRUE(found.ok());
  EXPECT_EQ(found->own_dir, "/sys/fs/cgroup/memory/worker");
}

TEST(FindMemoryHierarchyTest, NoneSaysWhy) {
  auto found = FindMemoryHierarchy("40 30 0:37 / /nonexistent-cgroup2 rw - cgroup2 cgroup2 rw\n", "0::/\n");
  ASSERT_FALSE(found.ok());
  EXPECT_NE(found.status().message().find("no memory controller"), std::string::npos) << found.status().message();
  EXPECT_NE(found.status().message().find("no cgroup v1 memory hierarchy"), std::string::npos);
}

// A fake v1 hierarchy in a temporary directory: the writes land in files.
struct FakeV1 {
  TempDir root;
  fs::path own;
  MemoryCgroupsOptions options;
  explicit FakeV1(bool swap_accounting) {
    own = root.path() / "own";
    fs::create_directories(own);
    if (swap_accounting) WriteText(own / "memory.memsw.limit_in_bytes", "9223372036854771712\n");
    WriteText(root.path() / "mountinfo", "34 30 0:31 / " + root.path().string() + " rw - cgroup cgroup rw,memory\n");
    WriteText(root.path() / "self_cgroup", "4:memory:/own\n");
    options.mountinfo_path = (root.path() / "mountinfo").string();
    options.self_cgroup_path = (root.path() / "self_cgroup").string();
  }
};

TEST(MemoryCgroupsTest, FakeV1WritesLimitsAndRemovesGroups) {
  FakeV1 fake(/*swap_accounting=*/true);
  fake.options.server_pid = 4242;
  std::string parent;
  {
    MemoryCgroups groups(fake.options);
    ASSERT_TRUE(groups.enforced()) << groups.description();
    EXPECT_EQ(groups.version(), CgroupVersion::kV1);
    parent = groups.parent_dir();
    EXPECT_EQ(parent, (fake.own / "thaw-4242").string());
    EXPECT_NE(groups.description().find("cgroup v1"), std::string::npos);

    auto dir = groups.Create("instance-7", 128LL << 20);
    ASSERT_TRUE(dir.ok()) << dir.status().message();
    EXPECT_EQ(*dir, parent + "/instance-7");
    EXPECT_EQ(ReadText(*dir + "/memory.limit_in_bytes"), "134217728");
    EXPECT_EQ(ReadText(*dir + "/memory.memsw.limit_in_bytes"), "134217728");  // swap cannot dodge it

    EXPECT_FALSE(groups.Create("../escape", 1 << 20).ok());
    EXPECT_FALSE(groups.Create("", 1 << 20).ok());

    ASSERT_TRUE(groups.Remove(*dir).ok());
    EXPECT_FALSE(fs::exists(*dir));
    ASSERT_TRUE(groups.Create("instance-8", 256LL << 20).ok());
  }
  EXPECT_FALSE(fs::exists(parent)) << "the parent goes with the server";
}

TEST(MemoryCgroupsTest, WithoutSwapAccountingOnlyMemoryIsLimited) {
  FakeV1 fake(/*swap_accounting=*/false);
  MemoryCgroups groups(fake.options);
  ASSERT_TRUE(groups.enforced());
  EXPECT_NE(groups.description().find("no swap accounting"), std::string::npos);
  auto dir = groups.Create("instance-1", 128LL << 20);
  ASSERT_TRUE(dir.ok());
  EXPECT_FALSE(fs::exists(*dir + "/memory.memsw.limit_in_bytes"));
}

TEST(MemoryCgroupsTest, FakeV2EnablesTheControllerAndWritesMemoryMax) {
  TempDir root;
  const fs::path own = root.path() / "app.slice";
  fs::create_directories(own);
  WriteText(own / "cgroup.controllers", "cpu memory pids\n");
  WriteText(root.path() / "mountinfo", "40 30 0:37 / " + root.path().string() + " rw - cgroup2 cgroup2 rw\n");
  WriteText(root.path() / "self_cgroup", "0::/app.slice\n");
  MemoryCgroups groups({.mountinfo_path = (root.path() / "mountinfo").string(),
                        .self_cgroup_path = (root.path() / "self_cgroup").string(),
                        .server_pid = 99});
  ASSERT_TRUE(groups.enforced()) << groups.description();
  EXPECT_EQ(groups.version(), CgroupVersion::kV2);
  EXPECT_EQ(ReadText(own / "cgroup.subtree_control"), "+memory");
  EXPECT_EQ(ReadText(own / "thaw-99" / "cgroup.subtree_control"), "+memory");
  auto dir = groups.Create("instance-2", 512LL << 20);
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  EXPECT_EQ(ReadText(*dir + "/memory.max"), "536870912");
}

TEST(MemoryCgroupsTest, RemovesParentsOfDeadServersOnly) {
  FakeV1 fake(false);
  const int dead = DeadPid();
  fs::create_directories(fake.own / ("thaw-" + std::to_string(dead)) / "instance-3");
  WriteText(fake.own / ("thaw-" + std::to_string(dead)) / "instance-3" / "memory.limit_in_bytes", "1");
  fs::create_directories(fake.own / ("thaw-" + std::to_string(::getppid())));  // a live server
  fs::create_directories(fake.own / "other-1");
  MemoryCgroups groups(fake.options);
  EXPECT_EQ(groups.stale_removed(), 1);
  EXPECT_FALSE(fs::exists(fake.own / ("thaw-" + std::to_string(dead))));
  EXPECT_TRUE(fs::exists(fake.own / ("thaw-" + std::to_string(::getppid()))));
  EXPECT_TRUE(fs::exists(fake.own / "other-1"));
}

TEST(MemoryCgroupsTest, NotEnforcedSaysWhy) {
  TempDir root;
  WriteText(root.path() / "mountinfo", "30 22 0:27 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n");
  WriteText(root.path() / "self_cgroup", "0::/\n");
  MemoryCgroups groups({.mountinfo_path = (root.path() / "mountinfo").string(),
                        .self_cgroup_path = (root.path() / "self_cgroup").string()});
  EXPECT_FALSE(groups.enforced());
  EXPECT_NE(groups.description().find("not enforced"), std::string::npos) << groups.description();
  auto dir = groups.Create("instance-1", 128LL << 20);
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), StatusCode::kUnavailable);
}

TEST(MemoryCgroupsTest, CountersParseBothVersions) {
  TempDir root;
  WriteText(root.path() / "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
  WriteText(root.path() / "memory.usage_in_bytes", "1048576\n");
  WriteText(root.path() / "memory.limit_in_bytes", "134217728\n");
  WriteText(root.path() / "memory.max_usage_in_bytes", "2097152\n");
  EXPECT_EQ(*OomKillCount(root.path().string()), 3);
  EXPECT_EQ(*MemoryPeakBytes(root.path().string()), 2097152);
  EXPECT_EQ(*MemoryUsageBytes(root.path().string()), 1048576);
  EXPECT_EQ(*MemoryLimitBytes(root.path().string()), 134217728);
  fs::create_directories(root.path() / "v2");
  WriteText(root.path() / "v2" / "memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n");
  WriteText(root.path() / "v2" / "memory.current", "4096\n");
  WriteText(root.path() / "v2" / "memory.max", "max\n");
  WriteText(root.path() / "v2" / "memory.peak", "8192\n");
  EXPECT_EQ(*MemoryPeakBytes((root.path() / "v2").string()), 8192);
  EXPECT_EQ(*OomKillCount((root.path() / "v2").string()), 2);
  EXPECT_EQ(*MemoryUsageBytes((root.path() / "v2").string()), 4096);
  EXPECT_EQ(*MemoryLimitBytes((root.path() / "v2").string()), INT64_MAX);
  EXPECT_FALSE(OomKillCount((root.path() / "missing").string()).ok());
}

// The real controller, where this machine has one.
class RealCgroupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    groups_ = std::make_unique<MemoryCgroups>(MemoryCgroupsOptions{.parent_prefix = "thaw-test-"});
    if (!groups_->enforced()) GTEST_SKIP() << "no writable memory controller: " << groups_->description();
  }
  // Runs `body` in a forked child; returns its wait status.
  static int RunChild(const std::function<int()>& body) {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(body());
    int status = 0;
    ::waitpid(child, &status, 0);
    return status;
  }
  std::unique_ptr<MemoryCgroups> groups_;
};

TEST_F(RealCgroupTest, AllocationPastTheLimitIsKilledAndCounted) {
  auto dir = groups_->Create("oom", 64LL << 20);
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  EXPECT_EQ(*MemoryLimitBytes(*dir), 64LL << 20);
  EXPECT_EQ(*OomKillCount(*dir), 0);
  const int status = RunChild([&] {
    if (!JoinMemoryCgroup(*dir).ok()) return 3;
    const size_t bytes = size_t{512} << 20;
    volatile char* p = static_cast<volatile char*>(std::malloc(bytes));  // volatile: the writes must happen
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;  // touch every page
    return 0;
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_EQ(*OomKillCount(*dir), 1);
  EXPECT_TRUE(groups_->Remove(*dir).ok());
}

TEST_F(RealCgroupTest, WithinTheLimitRunsAndIsCharged) {
  auto dir = groups_->Create("fits", 256LL << 20);
  ASSERT_TRUE(dir.ok());
  const int status = RunChild([&] {
    if (!JoinMemoryCgroup(*dir).ok()) return 3;
    const size_t bytes = size_t{64} << 20;
    volatile char* p = static_cast<volatile char*>(std::malloc(bytes));  // volatile: the writes must happen
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    auto usage = MemoryUsageBytes(*dir);
    return usage.ok() && *usage >= static_cast<int64_t>(bytes) ? 0 : 4;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(*OomKillCount(*dir), 0);
  // The child is gone and its charge with it; the peak stays (a v2 kernel
  // before 5.19 keeps none).
  auto peak = MemoryPeakBytes(*dir);
  if (peak.ok() || peak.status().code() != StatusCode::kNotFound) {
    ASSERT_TRUE(peak.ok()) << peak.status().message();
    EXPECT_GE(*peak, int64_t{64} << 20);
  }
  EXPECT_TRUE(groups_->Remove(*dir).ok());
}

TEST_F(RealCgroupTest, RemoveWaitsForTheProcessToLeave) {
  auto dir = groups_->Create("busy", 64LL << 20);
  ASSERT_TRUE(dir.ok());
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    char c;
    ::close(pipe_fds[1]);
    ::_exit(JoinMemoryCgroup(*dir).ok() && ::read(pipe_fds[0], &c, 1) >= 0 ? 0 : 3);
  }
  ::close(pipe_fds[0]);
  for (int i = 0; i < 200 && ReadText(*dir + "/cgroup.procs").empty(); ++i) ::usleep(5000);
  Status busy = groups_->Remove(*dir);
  EXPECT_EQ(busy.code(), StatusCode::kUnavailable) << busy.message();
  ::close(pipe_fds[1]);
  ::waitpid(child, nullptr, 0);
  EXPECT_TRUE(groups_->Remove(*dir).ok());
}

// A worker that dropped to an unprivileged uid joins only a group whose
// procs file the server gave it.
TEST_F(RealCgroupTest, UnprivilegedWorkerJoinsOnlyAGroupGivenToIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to another uid";
  groups_.reset();
  groups_ = std::make_unique<MemoryCgroups>(
      MemoryCgroupsOptions{.parent_prefix = "thaw-test-", .worker_uid = 65534, .worker_gid = 65534});
  ASSERT_TRUE(groups_->enforced());
  auto given = groups_->Create("given", 64LL << 20);
  ASSERT_TRUE(given.ok()) << given.status().message();
  MemoryCgroups root_only(MemoryCgroupsOptions{.parent_prefix = "thaw-test-", .server_pid = static_cast<int>(::getpid()) + 1000000});
  ASSERT_TRUE(root_only.enforced());
  auto not_given = root_only.Create("not-given", 64LL << 20);
  ASSERT_TRUE(not_given.ok());
  const int status = RunChild([&] {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) return 5;
    if (JoinMemoryCgroup(*not_given).ok()) return 6;  // refused: not its group
    if (!JoinMemoryCgroup(*given).ok()) return 7;
    const std::string self = ReadText("/proc/self/cgroup");
    return self.find("/given") != std::string::npos ? 0 : 8;
  });
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace thaw::cgroup
