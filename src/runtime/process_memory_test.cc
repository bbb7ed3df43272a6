#include "runtime/process_memory.h"

#include <gtest/gtest.h>
#include <unistd.h>

namespace thaw {
namespace {

TEST(ProcessMemoryTest, ParsesRollup) {
  const std::string text =
      "55d0c0a00000-7ffd8f1ff000 ---p 00000000 00:00 0                          [rollup]\n"
      "Rss:              168448 kB\n"
      "Pss:               21337 kB\n"
      "Pss_Anon:           4000 kB\n"
      "Shared_Clean:     150000 kB\n"
      "Private_Clean:       512 kB\n"
      "Private_Dirty:      6000 kB\n";
  ProcessMemory memory = ParseSmapsRollup(text);
  EXPECT_EQ(memory.rss_kb, 168448);
  EXPECT_EQ(memory.pss_kb, 21337);
  EXPECT_EQ(memory.private_kb, 6512);
}

TEST(ProcessMemoryTest, ReadsThisProcess) {
  auto memory = ReadProcessMemory(::getpid());
  ASSERT_TRUE(memory.ok()) << memory.status().ToString();
  EXPECT_GT(memory->rss_kb, 0);
  EXPECT_GT(memory->pss_kb, 0);
  EXPECT_LE(memory->pss_kb, memory->rss_kb);
}

TEST(ProcessMemoryTest, MissingProcessIsNotFound) {
  EXPECT_EQ(ReadProcessMemory(-5).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace thaw
