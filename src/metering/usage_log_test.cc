#include "metering/usage_log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "metering/usage_json.h"

namespace thaw::metering {
namespace {

namespace fs = std::filesystem;

class UsageLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "thaw_usage_log_XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = (dir_ / "usage.jsonl").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Contents() const {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  void Write(const std::string& text) const { std::ofstream(path_, std::ios::binary) << text; }

  fs::path dir_;
  std::string path_;
};

InvocationRecord Invocation(uint64_t id, Micros arrival_wall_us) {
  return InvocationRecord{.model = "fraud", .request_id = id, .instance_id = 1, .arrival_wall_us = arrival_wall_us,
                          .latency_us = 1500, .compute_us = 1000, .memory_mb = 1024, .batch_rows = 1,
                          .batch_requests = 1, .share = 1.0};
}

TEST_F(UsageLogTest, AppendBuffersAndFlushWrites) {
  auto log = UsageLog::Open(path_);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_TRUE((*log)->Append(Invocation(1, 100)).ok());
  EXPECT_TRUE((*log)->Append(ProvisionedRecord{.model = "fraud", .memory_mb = 1024, .instances = 1,
                                               .start_wall_us = 0, .end_wall_us = 50})
                  .ok());
  EXPECT_EQ(Contents(), "");  // nothing written before Flush
  EXPECT_GT((*log)->buffered_bytes(), 0u);
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ((*log)->buffered_bytes(), 0u);
  EXPECT_EQ(Contents(), EncodeUsageRecord(Invocation(1, 100)) + "\n" +
                            EncodeUsageRecord(ProvisionedRecord{.model = "fraud", .memory_mb = 1024, .instances = 1,
                                                                .start_wall_us = 0, .end_wall_us = 50}) +
                            "\n");

  auto records = ReadUsageLog(path_);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ(std::get<InvocationRecord>((*records)[0]).request_id, 1u);
  EXPECT_EQ(std::get<ProvisionedRecord>((*records)[1]).end_wall_us, 50);
}

TEST_F(UsageLogTest, DestructorFlushesAndReopeningAppends) {
  {
    auto log = UsageLog::Open(path_);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(Invocation(1, 100)).ok());
  }
  {
    auto log = UsageLog::Open(path_);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(Invocation(2, 200)).ok());
  }
  auto records = ReadUsageLog(path_);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  EXPECT_EQ(std::get<InvocationRecord>((*records)[0]).request_id, 1u);
  EXPECT_EQ(std::get<InvocationRecord>((*records)[1]).request_id, 2u);
}

TEST_F(UsageLogTest, AppendFlushesByItselfWhenTheBufferIsLarge) {
  auto log = UsageLog::Open(path_, {.flush_at_bytes = 1});
  ASSERT_TRUE(log.ok());
  ASSERT_TRUE((*log)->Append(Invocation(1, 100)).ok());
  EXPECT_EQ((*log)->buffered_bytes(), 0u);
  EXPECT_EQ(Contents(), EncodeUsageRecord(Invocation(1, 100)) + "\n");
}

TEST_F(UsageLogTest, TornLastLineStaysAloneAndIsReported) {
  Write("{\"kind\":\"invocation\",\"mod");  // a crash mid-write
  {
    auto log = UsageLog::Open(path_);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE((*log)->Append(Invocation(7, 100)).ok());
  }
  EXPECT_EQ(Contents(), "{\"kind\":\"invocation\",\"mod\n" + EncodeUsageRecord(Invocation(7, 100)) + "\n");
  auto records = ReadUsageLog(path_);
  ASSERT_FALSE(records.ok());
  EXPECT_NE(records.status().message().find("line 1:"), std::string::npos) << records.status().message();
}

TEST_F(UsageLogTest, MalformedLineIsAnErrorNamingItsNumber) {
  Write(EncodeUsageRecord(Invocation(1, 100)) + "\n\n" + "{\"kind\":\"invocation\",\"model\":\"m\",\"colour\":1}\n");
  auto records = ReadUsageLog(path_);
  ASSERT_FALSE(records.ok());
  EXPECT_EQ(records.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(records.status().message().find(path_), std::string::npos);
  EXPECT_NE(records.status().message().find("line 3:"), std::string::npos) << records.status().message();
  EXPECT_NE(records.status().message().find("colour"), std::string::npos);
}

TEST_F(UsageLogTest, EmptyLinesAndAMissingFinalNewlineAreFine) {
  Write("\n" + EncodeUsageRecord(Invocation(1, 100)) + "\n\n" + EncodeUsageRecord(Invocation(2, 100)));
  auto records = ReadUsageLog(path_);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  EXPECT_EQ(records->size(), 2u);
}

TEST_F(UsageLogTest, MissingLogIsNotFound) {
  auto records = ReadUsageLog(path_ + ".nope");
  EXPECT_EQ(records.status().code(), StatusCode::kNotFound);
  EXPECT_NE(records.status().message().find(".nope"), std::string::npos);
}

TEST_F(UsageLogTest, OpenFailureNamesThePath) {
  auto log = UsageLog::Open((dir_ / "no" / "such" / "dir.jsonl").string());
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(log.status().message().find("dir.jsonl"), std::string::npos);
}

TEST_F(UsageLogTest, SinceSelectsByRecordTimeAndClipsProvisionedIntervals) {
  {
    auto log = UsageLog::Open(path_);
    ASSERT_TRUE(log.ok());
    (void)(*log)->Append(Invocation(1, 999));   // before
    (void)(*log)->Append(Invocation(2, 1000));  // at: kept
    (void)(*log)->Append(InstanceRecord{.model = "fraud", .start_wall_us = 0, .stop_wall_us = 500});    // stopped before
    (void)(*log)->Append(InstanceRecord{.model = "fraud", .start_wall_us = 0, .stop_wall_us = 1500});   // kept whole
    (void)(*log)->Append(ProvisionedRecord{.model = "fraud", .instances = 1, .start_wall_us = 0, .end_wall_us = 900});
    (void)(*log)->Append(ProvisionedRecord{.model = "fraud", .instances = 1, .start_wall_us = 400, .end_wall_us = 4000});
  }
  auto records = ReadUsageLog(path_, 1000);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 3u);
  EXPECT_EQ(std::get<InvocationRecord>((*records)[0]).request_id, 2u);
  EXPECT_EQ(std::get<InstanceRecord>((*records)[1]).start_wall_us, 0);
  const auto& p = std::get<ProvisionedRecord>((*records)[2]);
  EXPECT_EQ(p.start_wall_us, 1000);  // clipped
  EXPECT_EQ(p.end_wall_us, 4000);

  int calls = 0;
  ASSERT_TRUE(ReadUsageLog(path_, kSinceBeginning, [&](UsageRecord) { ++calls; }).ok());
  EXPECT_EQ(calls, 6);
}

TEST_F(UsageLogTest, SinceClipsHeldIntervalsLikeProvisionedOnes) {
  {
    auto log = UsageLog::Open(path_);
    ASSERT_TRUE(log.ok());
    (void)(*log)->Append(HeldRecord{.model = "fraud", .kind = HeldKind::kTemplate, .memory_mb = 1024,
                                    .start_wall_us = 0, .end_wall_us = 999});  // ended before: dropped
    (void)(*log)->Append(HeldRecord{.model = "fraud", .kind = HeldKind::kStandby, .memory_mb = 512,
                                    .start_wall_us = 200, .end_wall_us = 3000});  // straddles: clipped
    (void)(*log)->Append(HeldRecord{.kind = HeldKind::kZygote, .memory_mb = 256, .start_wall_us = 1200,
                                    .end_wall_us = 5000});  // after: whole
  }
  auto records = ReadUsageLog(path_, 1000);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 2u);
  const auto& standby = std::get<HeldRecord>((*records)[0]);
  EXPECT_EQ(standby.kind, HeldKind::kStandby);
  EXPECT_EQ(standby.start_wall_us, 1000);  // clipped
  EXPECT_EQ(standby.end_wall_us, 3000);
  EXPECT_EQ(standby.memory_mb, 512);
  const auto& zygote = std::get<HeldRecord>((*records)[1]);
  EXPECT_EQ(zygote.kind, HeldKind::kZygote);
  EXPECT_EQ(zygote.start_wall_us, 1200);  // not clipped
  EXPECT_EQ(zygote.end_wall_us, 5000);
  EXPECT_EQ(RecordWallUs(zygote), 5000);
  auto all = ReadUsageLog(path_);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  EXPECT_EQ(std::get<HeldRecord>((*all)[1]).start_wall_us, 200);
}

TEST_F(UsageLogTest, WriteFailuresKeepTheBufferThenDropAndCount) {
  if (::access("/dev/full", W_OK) != 0) GTEST_SKIP() << "no /dev/full";
  const size_t line_bytes = EncodeUsageRecord(Invocation(1, 100)).size() + 1;
  auto log = UsageLog::Open("/dev/full", {.flush_at_bytes = 10 * line_bytes, .max_buffer_bytes = 10 * line_bytes});
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_TRUE((*log)->Append(Invocation(1, 100)).ok());
  Status flushed = (*log)->Flush();
  EXPECT_EQ(flushed.code(), StatusCode::kUnavailable);
  EXPECT_NE(flushed.message().find("/dev/full"), std::string::npos);
  EXPECT_EQ((*log)->buffered_bytes(), line_bytes);  // kept for the next try
  int errors = 0;
  for (int i = 0; i < 20; ++i) errors += (*log)->Append(Invocation(1, 100)).ok() ? 0 : 1;
  EXPECT_GT(errors, 0);
  EXPECT_EQ((*log)->buffered_bytes(), 10 * line_bytes);  // bounded
  EXPECT_EQ((*log)->dropped_records(), 11);               // 21 appended, 10 fit
}

}  // namespace
}  // namespace thaw::metering

namespace thaw::metering {
namespace {

// A write(2) stand-in: fails with `error` while `failing`, else writes for real
// (at most `max_chunk` bytes at a time, to produce short writes).
struct FlakyDisk {
  bool failing = false;
  int error = ENOSPC;
  size_t max_chunk = SIZE_MAX;
  int calls = 0;
  std::function<ssize_t(int, const char*, size_t)> Writer() {
    return [this](int fd, const char* data, size_t size) -> ssize_t {
      ++calls;
      if (failing) {
        errno = error;
        return -1;
      }
      return ::write(fd, data, std::min(size, max_chunk));
    };
  }
};

TEST_F(UsageLogTest, FailedWritesAreRetriedWithBackoffAndNothingIsLost) {
  FlakyDisk disk{.failing = true};
  auto log = UsageLog::Open(path_, {.flush_at_bytes = 1, .max_buffer_bytes = 1 << 20, .flush_interval_ms = 1000,
                                    .max_retry_interval_ms = 8000, .write_for_test = disk.Writer()});
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  EXPECT_EQ((*log)->next_flush_delay_ms(), 1000);
  Status appended = (*log)->Append(Invocation(1, 100));  // flush_at_bytes = 1: tries to write at once
  EXPECT_EQ(appended.code(), StatusCode::kUnavailable);
  EXPECT_NE(appended.message().find("No space left on device"), std::string::npos) << appended.message();
  EXPECT_EQ(disk.calls, 1);
  // While failing, appends only buffer: no write per record.
  for (uint64_t id = 2; id <= 5; ++id) EXPECT_TRUE((*log)->Append(Invocation(id, 100)).ok());
  EXPECT_EQ(disk.calls, 1);
  UsageLogHealth health = (*log)->health();
  EXPECT_FALSE(health.ok);
  EXPECT_EQ(health.error, "No space left on device");
  EXPECT_EQ(health.buffered_records, 5);
  EXPECT_EQ(health.dropped_records, 0);
  EXPECT_EQ(health.write_errors, 1);
  EXPECT_EQ((*log)->next_flush_delay_ms(), 2000);
  EXPECT_FALSE((*log)->Flush().ok());
  EXPECT_EQ((*log)->next_flush_delay_ms(), 4000);
  EXPECT_FALSE((*log)->Flush().ok());
  EXPECT_FALSE((*log)->Flush().ok());
  EXPECT_EQ((*log)->next_flush_delay_ms(), 8000);  // capped
  EXPECT_FALSE((*log)->Flush().ok());
  EXPECT_EQ((*log)->next_flush_delay_ms(), 8000);
  EXPECT_EQ((*log)->health().write_errors, 5);
  EXPECT_EQ(Contents(), "");

  disk.failing = false;  // space again
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ((*log)->next_flush_delay_ms(), 1000);
  health = (*log)->health();
  EXPECT_TRUE(health.ok);
  EXPECT_EQ(health.error, "");
  EXPECT_EQ(health.buffered_records, 0);
  auto records = ReadUsageLog(path_);
  ASSERT_TRUE(records.ok()) << records.status().ToString();
  ASSERT_EQ(records->size(), 5u);
  for (uint64_t id = 1; id <= 5; ++id) EXPECT_EQ(std::get<InvocationRecord>((*records)[id - 1]).request_id, id);
  EXPECT_TRUE((*log)->Close().ok());
}

TEST_F(UsageLogTest, ShortWritesKeepWholeLinesCounted) {
  FlakyDisk disk{.max_chunk = 7};
  auto log = UsageLog::Open(path_, {.write_for_test = disk.Writer()});
  ASSERT_TRUE(log.ok());
  for (uint64_t id = 1; id <= 3; ++id) ASSERT_TRUE((*log)->Append(Invocation(id, 100)).ok());
  EXPECT_EQ((*log)->buffered_records(), 3);
  ASSERT_TRUE((*log)->Flush().ok());
  EXPECT_EQ((*log)->buffered_records(), 0);
  EXPECT_EQ(ReadUsageLog(path_)->size(), 3u);
}

TEST_F(UsageLogTest, BufferIsBoundedAndDropsAreCountedWithTheReason) {
  FlakyDisk disk{.failing = true, .error = EIO};
  const size_t line_bytes = EncodeUsageRecord(Invocation(1, 100)).size() + 1;
  auto log = UsageLog::Open(path_, {.flush_at_bytes = line_bytes, .max_buffer_bytes = 3 * line_bytes,
                                    .write_for_test = disk.Writer()});
  ASSERT_TRUE(log.ok());
  EXPECT_FALSE((*log)->Append(Invocation(1, 100)).ok());  // the write fails; the record stays
  EXPECT_TRUE((*log)->Append(Invocation(2, 100)).ok());
  EXPECT_TRUE((*log)->Append(Invocation(3, 100)).ok());
  Status dropped = (*log)->Append(Invocation(4, 100));
  EXPECT_EQ(dropped.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(dropped.message().find("Input/output error"), std::string::npos) << dropped.message();
  EXPECT_EQ((*log)->health().dropped_records, 1);
  EXPECT_EQ((*log)->health().buffered_records, 3);
  EXPECT_EQ((*log)->buffered_bytes(), 3 * line_bytes);

  disk.failing = false;
  ASSERT_TRUE((*log)->Flush().ok());
  auto records = ReadUsageLog(path_);
  ASSERT_TRUE(records.ok());
  EXPECT_EQ(records->size(), 3u);
  // The drop is not forgotten at close.
  Status closed = (*log)->Close();
  EXPECT_EQ(closed.code(), StatusCode::kUnavailable);
  EXPECT_NE(closed.message().find("1 usage record(s) were never written"), std::string::npos) << closed.message();
}

TEST_F(UsageLogTest, CloseSaysHowManyRecordsAreLost) {
  FlakyDisk disk{.failing = true};
  auto log = UsageLog::Open(path_, {.write_for_test = disk.Writer()});
  ASSERT_TRUE(log.ok());
  for (uint64_t id = 1; id <= 4; ++id) ASSERT_TRUE((*log)->Append(Invocation(id, 100)).ok());
  Status closed = (*log)->Close();
  EXPECT_EQ(closed.code(), StatusCode::kUnavailable);
  EXPECT_NE(closed.message().find("4 usage record(s) were never written"), std::string::npos) << closed.message();
  EXPECT_NE(closed.message().find("4 still buffered at close"), std::string::npos) << closed.message();
  EXPECT_NE(closed.message().find("No space left on device"), std::string::npos) << closed.message();
  // After close, records are dropped and counted, not buffered.
  EXPECT_FALSE((*log)->Append(Invocation(5, 100)).ok());
  EXPECT_EQ((*log)->dropped_records(), 5);
  EXPECT_EQ((*log)->buffered_bytes(), 0u);
}

TEST_F(UsageLogTest, InvalidRetryOptionsAreRefused) {
  EXPECT_EQ(UsageLog::Open(path_, {.flush_interval_ms = 0}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(UsageLog::Open(path_, {.flush_interval_ms = 5000, .max_retry_interval_ms = 1000}).status().code(),
            StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace thaw::metering
