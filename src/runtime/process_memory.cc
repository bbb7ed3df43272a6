#include "runtime/process_memory.h"

#include <fstream>
#include <limits>
#include <sstream>
#include <string>

namespace thaw {

ProcessMemory ParseSmapsRollup(const std::string& text) {
  ProcessMemory memory;
  std::istringstream lines(text);
  std::string key;
  int64_t value_kb;
  while (lines >> key) {
    if (!(lines >> value_kb)) {
      lines.clear();
      lines.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
      continue;
    }
    if (key == "Rss:") memory.rss_kb = value_kb;
    else if (key == "Pss:") memory.pss_kb = value_kb;
    else if (key == "Private_Clean:" || key == "Private_Dirty:") memory.private_kb += value_kb;
    lines.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return memory;
}

StatusOr<ProcessMemory> ReadProcessMemory(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  if (!in) return NotFound("no memory figures for process " + std::to_string(pid));
  std::stringstream text;
  text << in.rdbuf();
  return ParseSmapsRollup(text.str());
}

}  // namespace thaw
