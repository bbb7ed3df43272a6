// The model profile file: what `thaw profile` measured and `thaw simulate`
// and `thaw plan` read. JSON:
//
//   {
//     "model": "fraud",
//     "measured": "2026-11-28T21:50:00Z",          // informational
//     "exec_us_by_rows": {"1": 180, "2": 185, "4": 190, "8": 205, "16": 230},
//     "exec_us_by_threads": {"1": {"1": 180, ...}, "2": {"1": 150, ...}},  // optional
//     "exec_cv": 0.12,                              // execution-time coefficient of variation
//     "exec_spread": [0.81, 0.86, ..., 3.4],        // optional: time / median at quantiles 0, 0.001, .., 1
//     "exec_factor_by_idle_us": {"730": 0.41, "61607": 2.79},  // optional: time by idle gap before it
//     "start_us": {"exec": 471500, "zygote": 65000, "template": 1200},
//     "memory_kb": {"rss": 72540, "pss": 17171, "private": 508,    // optional, one warm instance
//                   "cgroup_peak": 2048, "template_cgroup_peak": 60000}  // and its cgroup's and its template's peak
//   }
//
// exec_us_by_rows is the round trip of one execution (server to instance and
// back) at the config's thread count; exec_us_by_threads, when present, holds
// the same table per thread count so a planner can price memory sizes that
// change the thread count. exec_spread (1001 non-decreasing ratios), when
// present, is the measured distribution the simulator draws from instead of
// a lognormal of exec_cv. exec_factor_by_idle_us, when present, scales the
// median by how long the instance sat idle before an execution (smoothed
// over its recent idle gaps, ModelProfile::SmoothIdle), and the spread then
// adds to that (ModelProfile). Unknown fields are errors naming
// the field.
// Thread safety: pure functions.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include <vector>

#include "base/status.h"
#include "repo/model_config.h"
#include "sim/simulator.h"

namespace thaw::sim {

struct ProfileFile {
  std::string model;
  std::string measured;
  ModelProfile profile;  // exec_us_by_rows at the default thread count, start_us, exec_cv
  std::map<int, std::vector<std::pair<int64_t, Micros>>> exec_us_by_threads;
  std::map<std::string, int64_t> memory_kb;

  // The profile with the execution table for `threads` if measured, else
  // the default one, and the memory observations of memory_kb (cgroup_peak,
  // else private; template_cgroup_peak).
  ModelProfile ForThreads(int threads) const;
};

StatusOr<ProfileFile> ParseProfile(std::string_view json, const std::string& source);
StatusOr<ProfileFile> ReadProfileFile(const std::string& path);
std::string EncodeProfile(const ProfileFile& profile);

// A few lines for a person: execution time by rows, the spread's quantiles
// (not its 1,001 points), start times by level and memory.
std::string ProfileSummaryText(const ProfileFile& profile);

// The profile's start_us keys the simulator reads for instances of a
// config's start path, the first found winning (Simulate's fallbacks): exec
// {"exec"}; zygote {"prepared", "zygote"}; template {"standby", "template"}
// with a standby, else {"template"}.
std::vector<std::string> StartKeysFor(const ModelConfig& config);

// Ok when the profile has a start time for `config`'s start path
// (StartKeysFor). Otherwise kInvalidArgument naming the start path, the
// profile (`source`, its model) and the keys it does have, and how to get the
// missing time: a profile from `thaw profile --from-usage` holds only the
// starts its server made. Without this check the simulator would start such
// instances in 0 us, and report cold starts that cost nothing.
Status CheckStartTimes(const ProfileFile& profile, const ModelConfig& config, const std::string& source);

// Fills the start_us entries `profile` lacks (template_start included) from
// `measured`; entries it has are kept. Returns the keys it filled.
std::vector<std::string> BorrowStartTimes(ProfileFile* profile, const ProfileFile& measured);

// A config file given to thaw simulate or plan, and whether its model's name
// is known: from its model directory (the folder holds its model_file, as in
// a repository), or not (a config.json elsewhere, e.g. "cfg/config.json").
struct GivenConfig {
  ModelConfig config;
  bool named = false;
};

// The profile (index into `profiles`) each config runs with. A named config
// takes the profile whose "model" is its name; an unnamed one takes the
// profile of its folder's name if there is one, else the only profile when
// it is the only config, and is renamed after that profile's model. Errors
// (kInvalidArgument): a named config whose only candidate profile measured
// another model, naming both; a config no profile matches.
StatusOr<std::vector<size_t>> PairProfiles(std::vector<GivenConfig>& configs, const std::vector<ProfileFile>& profiles);

}  // namespace thaw::sim
