#include "worker/worker.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "base/test_paths.h"
#include "ipc/messages.h"
#include "worker/describe.h"

namespace thaw {
namespace {

namespace fs = std::filesystem;

std::string SourceDir() { return TestSourceDir(); }

std::string WorkerBinary() { return TestBuildDir() + "/thaw-worker"; }

std::string FraudDir() { return SourceDir() + "/examples/models/fraud"; }

#define SKIP_WITHOUT_FRAUD()                                                                  \
  if (!fs::exists(FraudDir() + "/config.json") || !fs::exists(FraudDir() + "/model.pt"))      \
  GTEST_SKIP() << "example model " << FraudDir() << " (config.json + model.pt) is not present"

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/thaw_worker_test_XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A model directory `<tmp>/fraud_c<N>` using the fraud model file with the
// given instance_concurrency.
std::string MakeFraudVariant(const TempDir& tmp, int instance_concurrency) {
  std::string dir = tmp.path() + "/fraud_c" + std::to_string(instance_concurrency);
  fs::create_directories(dir);
  fs::create_symlink(FraudDir() + "/model.pt", dir + "/model.pt");
  std::ofstream(dir + "/config.json")
      << R"({"backend": "torchscript", "model_file": "model.pt",
  "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 30]}],
  "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
  "max_concurrency": 4, "threads": 1, "instance_concurrency": )"
      << instance_concurrency << "}\n";
  return dir;
}

// A thaw-worker child process connected by a socketpair.
class WorkerProcess {
 public:
  // Starts `thaw-worker` with `args` followed by `--fd N`.
  explicit WorkerProcess(std::vector<std::string> args, bool pass_fd = true) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
      ADD_FAILURE() << "socketpair: " << std::strerror(errno);
      return;
    }
    fd_ = fds[0];
    // Never block a test forever on a hung worker.
    timeval tv{.tv_sec = 60, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    std::vector<std::string> argv_s = {WorkerBinary()};
    for (auto& a : args) argv_s.push_back(a);
    if (pass_fd) {
      argv_s.push_back("--fd");
      argv_s.push_back(std::to_string(fds[1]));
    }
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ == 0) {
      // Child: keep only the worker's end open across exec.
      ::fcntl(fds[1], F_SETFD, 0);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  }

  ~WorkerProcess() {
    CloseSocket();
    if (pid_ > 0 && !waited_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }

  int fd() const { return fd_; }
  pid_t pid() const { return pid_; }

  void CloseSocket() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  // The exit code, or -1 (with a test failure) if it did not exit normally
  // within the timeout.
  int WaitForExit(std::chrono::seconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        waited_ = true;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        ADD_FAILURE() << "worker died with signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : -1);
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ADD_FAILURE() << "worker did not exit within " << timeout.count() << " s";
    return -1;
  }

  // Reads the Ready frame; fails the test on anything else.
  std::optional<ipc::ReadyMessage> ReadReady() {
    auto frame = ipc::ReadFrame(fd_);
    EXPECT_TRUE(frame.ok()) << frame.status().ToString();
    if (!frame.ok()) return std::nullopt;
    if (frame->type == ipc::MessageType::kInitError) {
      ADD_FAILURE() << "InitError: " << ipc::DecodeInitError(frame->payload)->message;
      return std::nullopt;
    }
    EXPECT_EQ(frame->type, ipc::MessageType::kReady);
    auto ready = ipc::DecodeReady(frame->payload);
    EXPECT_TRUE(ready.ok());
    if (!ready.ok()) return std::nullopt;
    return *ready;
  }

  Status Send(const ipc::InferRequestMessage& m) { return ipc::WriteAll(fd_, ipc::Encode(m)); }

  StatusOr<ipc::InferResponseMessage> Receive() {
    auto frame = ipc::ReadFrame(fd_);
    if (!frame.ok()) return frame.status();
    if (frame->type != ipc::MessageType::kInferResponse)
      return Internal("unexpected frame type " + std::to_string(int(frame->type)));
    return ipc::DecodeInferResponse(frame->payload);
  }

 private:
  int fd_ = -1;
  pid_t pid_ = -1;
  bool waited_ = false;
};

Tensor Features(int rows) {
  std::vector<float> v;
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < 30; ++i) v.push_back(0.1f * (i + 1) + r);
  Tensor t;
  t.name = "features";
  t.datatype = DataType::kFp32;
  t.shape = {rows, 30};
  t.data.assign(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  return t;
}

ipc::InferRequestMessage Request(uint64_t id, int rows, std::vector<std::string> output_names = {}) {
  ipc::InferRequestMessage m;
  m.request_id = id;
  m.inputs.push_back(Features(rows));
  m.output_names = std::move(output_names);
  return m;
}

void ExpectProbabilities(const ipc::InferResponseMessage& r, int rows) {
  ASSERT_EQ(r.code, StatusCode::kOk) << r.error;
  ASSERT_EQ(r.outputs.size(), 1u);
  EXPECT_EQ(r.outputs[0].name, "probabilities");
  EXPECT_EQ(r.outputs[0].datatype, DataType::kFp32);
  EXPECT_EQ(r.outputs[0].shape, (Shape{rows, 2}));
  EXPECT_EQ(r.outputs[0].data.size(), size_t(rows) * 2 * sizeof(float));
  EXPECT_GE(r.compute_us, 0);
}

// ---- Command line --------------------------------------------------------

TEST(WorkerArgsTest, Parses) {
  const char* a[] = {"thaw-worker", "--model-dir", "/m/fraud", "--fd", "5"};
  auto o = ParseWorkerArgs(5, a);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->model_dir, "/m/fraud");
  EXPECT_EQ(o->fd, 5);

  const char* b[] = {"thaw-worker", "--fd=7", "--model-dir=/x"};
  o = ParseWorkerArgs(3, b);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(o->model_dir, "/x");
  EXPECT_EQ(o->fd, 7);
  EXPECT_EQ(o->cgroup_dir, "");

  const char* c[] = {"thaw-worker", "--template", "--model-dir", "/x", "--fd", "3", "--cgroup", "/sys/fs/cgroup/memory/g"};
  o = ParseWorkerArgs(8, c);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->cgroup_dir, "/sys/fs/cgroup/memory/g");
  EXPECT_FALSE(o->zygote_standby);

  const char* d[] = {"thaw-worker", "--zygote", "--standby", "--fd", "3"};
  o = ParseWorkerArgs(5, d);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_TRUE(o->zygote_standby);
}

TEST(WorkerArgsTest, Rejects) {
  const char* no_fd[] = {"w", "--model-dir", "/m"};
  EXPECT_FALSE(ParseWorkerArgs(3, no_fd).ok());
  const char* no_dir[] = {"w", "--fd", "3"};
  EXPECT_FALSE(ParseWorkerArgs(3, no_dir).ok());
  const char* bad_fd[] = {"w", "--model-dir", "/m", "--fd", "3x"};
  EXPECT_FALSE(ParseWorkerArgs(5, bad_fd).ok());
  const char* neg_fd[] = {"w", "--model-dir", "/m", "--fd", "-1"};
  EXPECT_FALSE(ParseWorkerArgs(5, neg_fd).ok());
  const char* missing_value[] = {"w", "--model-dir", "/m", "--fd"};
  EXPECT_FALSE(ParseWorkerArgs(4, missing_value).ok());
  const char* unknown[] = {"w", "--model-dir", "/m", "--fd", "3", "--verbose"};
  EXPECT_FALSE(ParseWorkerArgs(6, unknown).ok());
  const char* empty_cgroup[] = {"w", "--model-dir", "/m", "--fd", "3", "--cgroup="};
  EXPECT_FALSE(ParseWorkerArgs(6, empty_cgroup).ok());
  const char* template_standby[] = {"w", "--template", "--standby", "--model-dir", "/m", "--fd", "3"};
  EXPECT_FALSE(ParseWorkerArgs(7, template_standby).ok());
}

TEST(WorkerProcessTest, UsageErrorExits64) {
  WorkerProcess w({"--model-dir", "/nonexistent"}, /*pass_fd=*/false);
  EXPECT_EQ(w.WaitForExit(), kWorkerExitUsage);
}

// ---- Serving -------------------------------------------------------------

TEST(WorkerProcessTest, ServesFraud) {
  SKIP_WITHOUT_FRAUD();
  ASSERT_TRUE(fs::exists(WorkerBinary())) << WorkerBinary();
  WorkerProcess w({"--model-dir", FraudDir()});
  auto ready = w.ReadReady();
  ASSERT_TRUE(ready.has_value());
  EXPECT_EQ(ready->pid, w.pid());
  EXPECT_GT(ready->runtime_init_us, 0);
  EXPECT_GT(ready->model_load_us, 0);
  EXPECT_GT(ready->warmup_us, 0);

  ASSERT_TRUE(w.Send(Request(7, 2)).ok());
  ASSERT_TRUE(w.Send(Request(8, 3, {"probabilities"})).ok());
  ASSERT_TRUE(w.Send(Request(9, 1, {"no_such_output"})).ok());
  ipc::InferRequestMessage bad_shape = Request(10, 1);
  bad_shape.inputs[0].shape = {30, 1};
  ASSERT_TRUE(w.Send(bad_shape).ok());
  ASSERT_TRUE(w.Send(ipc::InferRequestMessage{.request_id = 11, .inputs = {}, .output_names = {}}).ok());

  // instance_concurrency is 1: answers come back in order.
  auto r7 = w.Receive();
  ASSERT_TRUE(r7.ok()) << r7.status().ToString();
  EXPECT_EQ(r7->request_id, 7u);
  ExpectProbabilities(*r7, 2);

  auto r8 = w.Receive();
  ASSERT_TRUE(r8.ok()) << r8.status().ToString();
  EXPECT_EQ(r8->request_id, 8u);
  ExpectProbabilities(*r8, 3);

  auto r9 = w.Receive();
  ASSERT_TRUE(r9.ok());
  EXPECT_EQ(r9->request_id, 9u);
  EXPECT_EQ(r9->code, StatusCode::kInvalidArgument);
  EXPECT_NE(r9->error.find("no_such_output"), std::string::npos) << r9->error;
  EXPECT_TRUE(r9->outputs.empty());

  auto r10 = w.Receive();
  ASSERT_TRUE(r10.ok());
  EXPECT_EQ(r10->request_id, 10u);
  EXPECT_EQ(r10->code, StatusCode::kInvalidArgument) << r10->error;

  auto r11 = w.Receive();
  ASSERT_TRUE(r11.ok());
  EXPECT_EQ(r11->request_id, 11u);
  EXPECT_EQ(r11->code, StatusCode::kInvalidArgument) << r11->error;

  w.CloseSocket();
  EXPECT_EQ(w.WaitForExit(), kWorkerExitOk);
}

TEST(WorkerProcessTest, ConcurrentInstanceAnswersEveryRequest) {
  SKIP_WITHOUT_FRAUD();
  TempDir tmp;
  WorkerProcess w({"--model-dir", MakeFraudVariant(tmp, 3)});
  ASSERT_TRUE(w.ReadReady().has_value());

  const int kRequests = 40;
  for (int i = 0; i < kRequests; ++i) ASSERT_TRUE(w.Send(Request(100 + i, 1 + i % 4)).ok());
  // Half-close: the worker sees EOF right away and must still answer every
  // request already sent.
  ASSERT_EQ(::shutdown(w.fd(), SHUT_WR), 0);

  std::set<uint64_t> ids;
  for (int i = 0; i < kRequests; ++i) {
    auto r = w.Receive();
    ASSERT_TRUE(r.ok()) << "response " << i << ": " << r.status().ToString();
    ASSERT_GE(r->request_id, 100u);
    ExpectProbabilities(*r, 1 + int(r->request_id - 100) % 4);
    ids.insert(r->request_id);
  }
  EXPECT_EQ(ids.size(), size_t(kRequests));
  EXPECT_EQ(w.Receive().status().code(), StatusCode::kUnavailable);  // worker closed its end
  EXPECT_EQ(w.WaitForExit(), kWorkerExitOk);
}

TEST(WorkerProcessTest, InlineInstanceFinishesInFlightWorkOnEof) {
  SKIP_WITHOUT_FRAUD();
  WorkerProcess w({"--model-dir", FraudDir()});
  ASSERT_TRUE(w.ReadReady().has_value());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(w.Send(Request(i, 2)).ok());
  ASSERT_EQ(::shutdown(w.fd(), SHUT_WR), 0);
  for (int i = 0; i < 10; ++i) {
    auto r = w.Receive();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->request_id, uint64_t(i));
    ExpectProbabilities(*r, 2);
  }
  EXPECT_EQ(w.WaitForExit(), kWorkerExitOk);
}

// ---- Failures ------------------------------------------------------------

TEST(WorkerProcessTest, BadModelDirSendsInitError) {
  WorkerProcess w({"--model-dir", "/nonexistent/thaw/model"});
  auto frame = ipc::ReadFrame(w.fd());
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  ASSERT_EQ(frame->type, ipc::MessageType::kInitError);
  auto err = ipc::DecodeInitError(frame->payload);
  ASSERT_TRUE(err.ok());
  EXPECT_FALSE(err->message.empty());
  EXPECT_EQ(w.WaitForExit(), kWorkerExitInitError);
}

// A worker that cannot join its memory cgroup does not start: its limit would not hold.
TEST(WorkerProcessTest, UnjoinableCgroupSendsInitError) {
  SKIP_WITHOUT_FRAUD();
  WorkerProcess w({"--model-dir", FraudDir(), "--cgroup", "/nonexistent/thaw/cgroup"});
  auto frame = ipc::ReadFrame(w.fd());
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  ASSERT_EQ(frame->type, ipc::MessageType::kInitError);
  auto err = ipc::DecodeInitError(frame->payload);
  ASSERT_TRUE(err.ok());
  EXPECT_NE(err->message.find("cannot join memory cgroup"), std::string::npos) << err->message;
  EXPECT_EQ(w.WaitForExit(), kWorkerExitInitError);
}

TEST(WorkerProcessTest, CorruptModelSendsInitError) {
  SKIP_WITHOUT_FRAUD();
  TempDir tmp;
  std::string dir = tmp.path() + "/broken";
  fs::create_directories(dir);
  fs::copy_file(FraudDir() + "/config.json", dir + "/config.json");
  std::ofstream(dir + "/model.pt") << "definitely not a TorchScript archive";
  WorkerProcess w({"--model-dir", dir});
  auto frame = ipc::ReadFrame(w.fd());
  ASSERT_TRUE(frame.ok()) << frame.status().ToString();
  ASSERT_EQ(frame->type, ipc::MessageType::kInitError);
  EXPECT_NE(ipc::DecodeInitError(frame->payload)->message.find("model.pt"), std::string::npos);
  EXPECT_EQ(w.WaitForExit(), kWorkerExitInitError);
}

TEST(WorkerProcessTest, MalformedFrameExits2) {
  SKIP_WITHOUT_FRAUD();
  WorkerProcess w({"--model-dir", FraudDir()});
  ASSERT_TRUE(w.ReadReady().has_value());
  ASSERT_TRUE(w.Send(Request(1, 1)).ok());
  const char unknown_type[] = {1, 0, 0, 0, 42};
  ASSERT_TRUE(ipc::WriteAll(w.fd(), std::string_view(unknown_type, sizeof(unknown_type))).ok());
  auto r = w.Receive();  // the request before the bad frame is still answered
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->request_id, 1u);
  EXPECT_EQ(w.WaitForExit(), kWorkerExitProtocolError);
}

TEST(WorkerProcessTest, UnexpectedMessageTypeExits2) {
  SKIP_WITHOUT_FRAUD();
  WorkerProcess w({"--model-dir", FraudDir()});
  ASSERT_TRUE(w.ReadReady().has_value());
  ASSERT_TRUE(ipc::WriteAll(w.fd(), ipc::Encode(ipc::ReadyMessage{})).ok());
  EXPECT_EQ(w.WaitForExit(), kWorkerExitProtocolError);
}

TEST(WorkerProcessTest, UndecodableRequestExits2) {
  SKIP_WITHOUT_FRAUD();
  WorkerProcess w({"--model-dir", FraudDir()});
  ASSERT_TRUE(w.ReadReady().has_value());
  std::string frame = ipc::Encode(Request(1, 1));
  frame.resize(frame.size() - 3);                                // drop the tail...
  uint32_t len = static_cast<uint32_t>(frame.size() - 4);        // ...and fix the length
  std::memcpy(frame.data(), &len, 4);
  ASSERT_TRUE(ipc::WriteAll(w.fd(), frame).ok());
  EXPECT_EQ(w.WaitForExit(), kWorkerExitProtocolError);
}

}  // namespace
}  // namespace thaw

// ---- thaw-worker --describe's command line --------------------------------

namespace thaw {
namespace {

TEST(DescribeArgsTest, ParsesExampleInputs) {
  const char* a[] = {"w", "--describe", "/m/net.pt", "--input", "x:FP32:2x4", "--input", "a:b:INT64:3", "--input", "s:FP64:"};
  auto args = ParseDescribeArgs(9, a);
  ASSERT_TRUE(args.ok()) << args.status().ToString();
  EXPECT_EQ(args->model_file, "/m/net.pt");
  ASSERT_EQ(args->example_inputs.size(), 3u);
  EXPECT_EQ(args->example_inputs[0].shape, (Shape{2, 4}));
  EXPECT_EQ(args->example_inputs[1].name, "a:b");  // split at the last two colons
  EXPECT_EQ(args->example_inputs[1].datatype, DataType::kInt64);
  EXPECT_EQ(args->example_inputs[1].shape, (Shape{3}));
  EXPECT_TRUE(args->example_inputs[2].shape.empty());  // a scalar
}

TEST(DescribeArgsTest, Rejects) {
  auto error = [](std::vector<const char*> argv) {
    auto args = ParseDescribeArgs(static_cast<int>(argv.size()), argv.data());
    EXPECT_FALSE(args.ok());
    return args.status().message();
  };
  EXPECT_NE(error({"w", "--describe"}).find("--describe FILE"), std::string::npos);
  EXPECT_NE(error({"w", "--describe", "m.pt", "--input", "x:FP33:2"}).find("unknown datatype"), std::string::npos);
  EXPECT_NE(error({"w", "--describe", "m.pt", "--input", "x:FP32:2x"}).find("bad dimension ''"), std::string::npos);
  EXPECT_NE(error({"w", "--describe", "m.pt", "--input", "x:FP32:-1"}).find("bad dimension '-1'"), std::string::npos);
  EXPECT_NE(error({"w", "--describe", "m.pt", "--input", "xFP32"}).find("NAME:DATATYPE:DIMS"), std::string::npos);
  EXPECT_NE(error({"w", "--describe", "m.pt", "--input"}).find("unexpected argument '--input'"), std::string::npos);
}

}  // namespace
}  // namespace thaw
