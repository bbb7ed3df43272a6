// Memory of a process as the kernel accounts it, from /proc/PID/smaps_rollup.
// RSS counts every resident page the process maps; PSS divides each shared
// page among its sharers, so instances forked from one template show a PSS
// far below their RSS. Errors: kNotFound if the process is gone or the file
// cannot be read.
#pragma once

#include <cstdint>

#include "base/status.h"

namespace thaw {

struct ProcessMemory {
  int64_t rss_kb = 0;
  int64_t pss_kb = 0;
  int64_t private_kb = 0;  // Private_Clean + Private_Dirty
};

StatusOr<ProcessMemory> ReadProcessMemory(int pid);

// Parses the text of an smaps_rollup file.
ProcessMemory ParseSmapsRollup(const std::string& text);

}  // namespace thaw
