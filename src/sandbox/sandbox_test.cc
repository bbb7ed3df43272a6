#include "sandbox/sandbox.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace thaw::sandbox {
namespace {

TEST(SandboxTest, ParsesWorkerUser) {
  auto nobody = ParseWorkerUser("nobody");
  ASSERT_TRUE(nobody.ok()) << nobody.status().message();
  EXPECT_EQ(nobody->uid, 65534u);
  EXPECT_EQ(nobody->gid, 65534u);  // nobody's primary group
  EXPECT_EQ(*ParseWorkerUser("1234"), (WorkerUser{1234, 1234}));   // unknown uid: gid = uid
  EXPECT_EQ(*ParseWorkerUser("1234:77"), (WorkerUser{1234, 77}));
  EXPECT_EQ(*ParseWorkerUser("nobody:nogroup"), (WorkerUser{65534, 65534}));
  EXPECT_EQ(*ParseWorkerUser("0:root"), (WorkerUser{0, 0}));
  for (const char* bad : {"", ":", "1234:", ":5", "no-such-user-thaw", "nobody:no-such-group-thaw", "-1", "12x"}) {
    auto parsed = ParseWorkerUser(bad);
    EXPECT_FALSE(parsed.ok()) << bad;
    if (!parsed.ok()) {
      EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_EQ(DefaultWorkerUser(), (WorkerUser{65534, 65534}));
}

TEST(SandboxTest, ParsesMode) {
  EXPECT_EQ(*ParseSandboxMode("on"), SandboxMode::kOn);
  EXPECT_EQ(*ParseSandboxMode("off"), SandboxMode::kOff);
  EXPECT_EQ(*ParseSandboxMode("no-seccomp"), SandboxMode::kNoSeccomp);
  EXPECT_FALSE(ParseSandboxMode("yes").ok());
}

SandboxReport SampleReport() {
  SandboxReport r;
  r.mode = SandboxMode::kOn;
  r.uid = 65534;
  r.gid = 65533;
  r.apply_us = 812;
  r.fds_closed = {true, ""};
  r.rlimits = {true, ""};
  r.netns = {false, "unshare(CLONE_NEWNET): Operation not permitted"};
  r.readonly_fs = {false, "bind /x: \"quoted\"\nnext line"};
  r.uid_drop = {true, ""};
  r.no_new_privs = {true, ""};
  r.seccomp = {true, ""};
  return r;
}

TEST(SandboxTest, ReportRoundTrips) {
  SandboxReport r = SampleReport();
  auto decoded = DecodeReport(EncodeReport(r));
  ASSERT_TRUE(decoded.ok()) << decoded.status().message();
  r.readonly_fs.reason = "bind /x: \"quoted\" next line";  // newlines become spaces on the wire
  EXPECT_EQ(*decoded, r);
  EXPECT_FALSE(decoded->Complete());
  EXPECT_NE(decoded->Summary().find("netns=no(unshare(CLONE_NEWNET)"), std::string::npos);
  EXPECT_NE(decoded->Summary().find("seccomp=yes"), std::string::npos);
  const std::string json = decoded->ToJson();
  EXPECT_NE(json.find("\"uid\":65534"), std::string::npos) << json;
  EXPECT_NE(json.find("\"netns\":false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"readonly_fs\":\"bind /x: \\\"quoted\\\" next line\""), std::string::npos) << json;
}

TEST(SandboxTest, ReportRejectsBadText) {
  const std::string good = EncodeReport(SampleReport());
  EXPECT_FALSE(DecodeReport("").ok());                                     // everything missing
  EXPECT_FALSE(DecodeReport(good.substr(0, good.size() - 1)).ok());        // unterminated
  EXPECT_FALSE(DecodeReport(good + "uid 3\n").ok());                       // repeated
  EXPECT_FALSE(DecodeReport(good + "colour blue\n").ok());                 // unknown
  std::string bad_step = good;
  bad_step.replace(bad_step.find("seccomp 1"), 9, "seccomp 7");
  EXPECT_FALSE(DecodeReport(bad_step).ok());
  std::string bad_uid = good;
  bad_uid.replace(bad_uid.find("uid 65534"), 9, "uid 6x534");
  EXPECT_FALSE(DecodeReport(bad_uid).ok());
}

std::string StatusField(const std::string& name) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(name + ":")) {
      std::string value = line.substr(name.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  return "";
}

// Runs `check` in a forked child after ApplySandbox; returns what the child
// wrote to its result pipe (the one descriptor the sandbox leaves open).
std::string InSandboxedChild(const SandboxOptions& base, const std::function<std::string(const SandboxReport&)>& check) {
  int result[2];
  if (::pipe(result) != 0) return "pipe failed";
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(result[0]);
    SandboxOptions options = base;
    options.keep_fd = result[1];
    SandboxReport report = ApplySandbox(options);
    std::string out = check(report);
    (void)!::write(result[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(result[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(result[0], buf, sizeof buf)) > 0) out.append(buf, n);
  ::close(result[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) out += " [child died, status " + std::to_string(status) + "]";
  return out;
}

class SandboxRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root: namespaces and the uid drop need CAP_SYS_ADMIN/CAP_SETUID";
    char pattern[] = "/tmp/thaw-sandbox-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    // The run directory belongs to the worker user, like a scratch dir.
    ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);
    outside_ = dir_ + ".outside";
    std::filesystem::create_directories(outside_);
    ASSERT_EQ(::chmod(outside_.c_str(), 0777), 0);  // only the read-only view stops writes here
  }
  void TearDown() override {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
    if (!outside_.empty()) std::filesystem::remove_all(outside_, ignored);
  }
  std::string dir_, outside_;
};

TEST_F(SandboxRootTest, ChildIsConfined) {
  int inherited = ::open("/dev/null", O_RDONLY);  // without O_CLOEXEC: must be closed by the sandbox
  ASSERT_GE(inherited, 3);
  SandboxOptions options{.mode = SandboxMode::kOn, .user = WorkerUser{65534, 65534}, .writable_dir = dir_};
  const std::string dir = dir_, outside = outside_;
  std::string out = InSandboxedChild(options, [&](const SandboxReport& report) {
    std::ostringstream errors;
    if (!report.Complete()) errors << "incomplete: " << report.Summary() << "\n";
    if (::fcntl(inherited, F_GETFD) != -1) errors << "inherited fd still open\n";
    errno = 0;
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s >= 0 || errno != EPERM) errors << "socket(AF_INET): fd " << s << " errno " << errno << "\n";
    errno = 0;
    s = ::socket(AF_INET6, SOCK_DGRAM, 0);
    if (s >= 0 || errno != EPERM) errors << "socket(AF_INET6): fd " << s << " errno " << errno << "\n";
    int unix_socket = ::socket(AF_UNIX, SOCK_STREAM, 0);  // allowed: the worker protocol
    if (unix_socket < 0) errors << "socket(AF_UNIX) failed: " << std::strerror(errno) << "\n";
    errno = 0;
    if (::accept(0, nullptr, nullptr) >= 0 || errno != EPERM) errors << "accept: errno " << errno << "\n";
    errno = 0;
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) == 0 || errno != EPERM) errors << "ptrace allowed\n";
    errno = 0;
    if (::unshare(CLONE_NEWUSER) == 0 || errno != EPERM) errors << "unshare allowed\n";
    errno = 0;
    char c = 'x';
    if (::ioctl(2, TIOCSTI, &c) == 0 || errno != EPERM) errors << "ioctl(TIOCSTI): errno " << errno << "\n";
    int nonblocking = 1;
    if (unix_socket >= 0 && ::ioctl(unix_socket, FIONBIO, &nonblocking) != 0)
      errors << "ioctl(FIONBIO) failed: " << std::strerror(errno) << "\n";
    if (::open("/etc/shadow", O_RDONLY) >= 0) errors << "/etc/shadow readable\n";
    errno = 0;
    int w = ::open((outside + "/x").c_str(), O_WRONLY | O_CREAT, 0644);
    if (w >= 0 || errno != EROFS) errors << "write outside the run dir: fd " << w << " errno " << errno << "\n";
    w = ::open((dir + "/scratch").c_str(), O_WRONLY | O_CREAT, 0644);
    if (w < 0) errors << "write inside the run dir failed: " << std::strerror(errno) << "\n";
    if (::open("/dev/null", O_WRONLY) < 0) errors << "/dev/null not writable\n";
    if (StatusField("NoNewPrivs") != "1") errors << "NoNewPrivs " << StatusField("NoNewPrivs") << "\n";
    if (StatusField("Seccomp") != "2") errors << "Seccomp " << StatusField("Seccomp") << "\n";
    if (!StatusField("Uid").starts_with("65534\t65534\t65534")) errors << "Uid " << StatusField("Uid") << "\n";
    if (!StatusField("Gid").starts_with("65534\t65534\t65534")) errors << "Gid " << StatusField("Gid") << "\n";
    if (StatusField("Groups") != "") errors << "Groups " << StatusField("Groups") << "\n";
    if (StatusField("CapEff") != "0000000000000000") errors << "CapEff " << StatusField("CapEff") << "\n";
    rlimit nofile{};
    ::getrlimit(RLIMIT_NOFILE, &nofile);
    if (nofile.rlim_max != 256) errors << "RLIMIT_NOFILE " << nofile.rlim_max << "\n";
    // A forked child (a template's instance) inherits the filter and can fork.
    pid_t grandchild = ::fork();
    if (grandchild == 0) ::_exit(::socket(AF_INET, SOCK_STREAM, 0) < 0 && errno == EPERM ? 0 : 1);
    int status = -1;
    if (grandchild < 0 || ::waitpid(grandchild, &status, 0) != grandchild || status != 0)
      errors << "forked child: status " << status << "\n";
    return errors.str();
  });
  ::close(inherited);
  EXPECT_EQ(out, "");
  EXPECT_FALSE(std::filesystem::exists(outside_ + "/x"));
}

// Workers share one uid, so only the extra filter keeps an instance from
// signalling another worker: the same signal reaches a same-uid sibling
// before RestrictSignalsToSelf and not after; the process's own threads
// still get theirs.
TEST_F(SandboxRootTest, InstanceSignalsOnlyItself) {
  SandboxOptions options{.mode = SandboxMode::kOn, .user = WorkerUser{65534, 65534}, .writable_dir = dir_};
  std::string out = InSandboxedChild(options, [&](const SandboxReport& report) {
    std::ostringstream errors;
    if (!report.Complete()) errors << "incomplete: " << report.Summary() << "\n";
    int alive[2];  // the sibling lives until this process exits and closes alive[1]
    if (::pipe(alive) != 0) return std::string("pipe failed");
    const pid_t sibling = ::fork();  // same uid: stands for another model's worker
    if (sibling == 0) {
      ::close(alive[1]);
      char c;
      (void)!::read(alive[0], &c, 1);
      ::_exit(0);
    }
    ::close(alive[0]);
    // Before: the kernel lets a uid signal its own processes (signal 0 only checks).
    if (::syscall(SYS_tgkill, sibling, sibling, 0) != 0) errors << "tgkill before: " << std::strerror(errno) << "\n";
    if (Status restricted = RestrictSignalsToSelf(); !restricted.ok()) errors << restricted.message() << "\n";
    errno = 0;
    if (::syscall(SYS_tgkill, sibling, sibling, SIGTERM) == 0 || errno != EPERM)
      errors << "tgkill of a sibling after: errno " << errno << "\n";
    errno = 0;
    if (::syscall(SYS_tkill, sibling, SIGTERM) == 0 || errno != EPERM) errors << "tkill allowed: errno " << errno << "\n";
    static volatile sig_atomic_t got = 0;
    ::signal(SIGUSR1, [](int) { got = 1; });
    if (::raise(SIGUSR1) != 0 || !got) errors << "raise(SIGUSR1) did not arrive\n";
    int status = 0;
    if (::waitpid(sibling, &status, WNOHANG) != 0) errors << "the sibling died\n";
    return errors.str();
  });
  EXPECT_EQ(out, "");
}

TEST_F(SandboxRootTest, NoSeccompModeLeavesTheFilterOff) {
  SandboxOptions options{.mode = SandboxMode::kNoSeccomp, .user = WorkerUser{65534, 65534}, .writable_dir = dir_};
  std::string out = InSandboxedChild(options, [](const SandboxReport& report) {
    std::ostringstream errors;
    if (report.seccomp.applied || !report.uid_drop.applied || !report.netns.applied) errors << report.Summary();
    if (StatusField("Seccomp") != "0") errors << "Seccomp " << StatusField("Seccomp") << "\n";
    // Without the filter the network namespace still leaves no route out.
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(80);
    to.sin_addr.s_addr = htonl(0x08080808);
    if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) errors << "connected out\n";
    return errors.str();
  });
  EXPECT_EQ(out, "");
}

TEST_F(SandboxRootTest, OffModeAppliesNothing) {
  std::string out = InSandboxedChild({.mode = SandboxMode::kOff}, [](const SandboxReport& report) {
    std::ostringstream errors;
    if (report.seccomp.applied || report.uid_drop.applied || report.fds_closed.applied) errors << report.Summary();
    if (report.uid != 0) errors << "uid " << report.uid;
    if (StatusField("NoNewPrivs") != "0") errors << "NoNewPrivs set\n";
    return errors.str();
  });
  EXPECT_EQ(out, "");
}

TEST(SandboxTest, CloseInheritedFdsKeepsTheGivenOnes) {
  int a = ::open("/dev/null", O_RDONLY), b = ::open("/dev/null", O_RDONLY), c = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(a, 3);
  pid_t child = ::fork();
  if (child == 0) {
    if (!CloseInheritedFds(c, a).ok()) ::_exit(1);
    bool ok = ::fcntl(a, F_GETFD) >= 0 && ::fcntl(b, F_GETFD) < 0 && ::fcntl(c, F_GETFD) >= 0 &&
              ::fcntl(2, F_GETFD) >= 0;
    ::_exit(ok ? 0 : 2);
  }
  int status = -1;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ::close(a), ::close(b), ::close(c);
}

}  // namespace
}  // namespace thaw::sandbox
