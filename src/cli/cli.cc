#include "cli/cli.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string_view>

#include "cli/commands.h"
#include "load/load_generator.h"
#include "sim/variant_choice.h"

namespace thaw::cli {
namespace {

StatusOr<uint16_t> ParsePort(const std::string& text, const std::string& flag = "--port") {
  unsigned value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc() || end != text.data() + text.size() || value > 65535)
    return InvalidArgument(flag + " must be an integer in [0, 65535], got '" + text + "'");
  return static_cast<uint16_t>(value);
}

// A number of seconds or a rate: finite, in [min, max] (min excluded when
// min_exclusive).
StatusOr<double> ParseNumber(const std::string& flag, const std::string& text, double min, bool min_exclusive,
                             double max) {
  double value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  const bool in_range = min_exclusive ? value > min : value >= min;
  if (err != std::errc() || end != text.data() + text.size() || !std::isfinite(value) || !in_range || value > max)
    return InvalidArgument(flag + " must be a number " + (min_exclusive ? "> " : ">= ") + std::to_string(static_cast<int64_t>(min)) +
                           " and at most " + std::to_string(static_cast<int64_t>(max)) + ", got '" + text + "'");
  return value;
}

template <typename Int>
StatusOr<Int> ParseInteger(const std::string& flag, const std::string& text, Int min, Int max) {
  Int value = 0;
  auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (err != std::errc() || end != text.data() + text.size() || value < min || value > max)
    return InvalidArgument(flag + " must be an integer in [" + std::to_string(min) + ", " + std::to_string(max) +
                           "], got '" + text + "'");
  return value;
}

// Splits "--name=value" and "--name value"; advances *i past a separate value.
Status NextFlag(const std::vector<std::string>& args, size_t* i, std::string* name, std::string* value) {
  const std::string& flag = args[*i];
  if (auto eq = flag.find('='); flag.starts_with("--") && eq != std::string::npos) {
    *name = flag.substr(0, eq);
    *value = flag.substr(eq + 1);
  } else if (flag.starts_with("--")) {
    if (*i + 1 >= args.size()) return InvalidArgument(flag + " needs a value");
    *name = flag;
    *value = args[++*i];
  } else {
    return InvalidArgument("unexpected argument '" + flag + "'; see 'thaw " + args[0] + " --help'");
  }
  return Status::Ok();
}

bool IsHelp(const std::string& arg) { return arg == "--help" || arg == "-h"; }

// The NodeMemoryFlags flags: true if `name` is one of them (and it parsed).
StatusOr<bool> ParseNodeMemoryFlag(const std::string& name, const std::string& value, NodeMemoryFlags* node) {
  if (name == "--memory-charge") {
    auto charge = sched::ParseMemoryCharge(value);
    if (!charge) return InvalidArgument("--memory-charge must be measured or configured, got '" + value + "'");
    node->memory_charge = *charge;
  } else if (name == "--eviction") {
    auto order = policy::ParseEvictionOrder(value);
    if (!order) return InvalidArgument("--eviction must be lru or cheapest_restart, got '" + value + "'");
    node->eviction_order = *order;
  } else if (name == "--template-starts") {
    auto n = ParseInteger<int>(name, value, 0, 1024);
    if (!n.ok()) return n.status();
    node->template_starts = *n;
  } else if (name == "--template-admit-calls") {
    auto n = ParseInteger<int>(name, value, 1, 1'000'000);
    if (!n.ok()) return n.status();
    node->template_admit_calls = *n;
  } else if (name == "--keep-alive-pool") {
    if (value != "on" && value != "off") return InvalidArgument("--keep-alive-pool must be on or off, got '" + value + "'");
    node->keep_alive_pool = value == "on";
  } else {
    return false;
  }
  return true;
}

Status ParseServe(const std::vector<std::string>& args, ServeOptions* serve, bool* help) {
  bool admin_host_given = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (IsHelp(args[i])) {
      *help = true;
      return Status::Ok();
    }
    std::string name, value;
    THAW_RETURN_IF_ERROR(NextFlag(args, &i, &name, &value));
    if (name == "--repo") {
      serve->repo = value;
    } else if (name == "--models") {
      serve->models = SplitCommas(value);
      for (const std::string& model : serve->models)
        if (model.empty()) return InvalidArgument("--models needs model names separated by commas, got '" + value + "'");
    } else if (name == "--host") {
      serve->host = value;
    } else if (name == "--port") {
      auto port = ParsePort(value);
      if (!port.ok()) return port.status();
      serve->port = *port;
    } else if (name == "--memory-mb") {
      int64_t mb = 0;
      auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), mb);
      if (err != std::errc() || end != value.data() + value.size() || mb < 128)
        return InvalidArgument("--memory-mb must be an integer >= 128, got '" + value + "'");
      serve->memory_mb = mb;
    } else if (name == "--worker") {
      serve->worker_path = value;
    } else if (name == "--usage-log") {
      serve->usage_log_path = value;  // empty: no log
    } else if (name == "--usage-log-buffer-mb") {
      int64_t mb = 0;
      auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), mb);
      if (err != std::errc() || end != value.data() + value.size() || mb < 1 || mb > 65536)
        return InvalidArgument("--usage-log-buffer-mb must be an integer in [1, 65536], got '" + value + "'");
      serve->usage_log_buffer_mb = mb;
    } else if (name == "--prices") {
      if (value.empty()) return InvalidArgument("--prices needs aws-x86, aws-arm64 or a price sheet file");
      serve->prices = value;
    } else if (auto node = ParseNodeMemoryFlag(name, value, &serve->node); !node.ok() || *node) {
      if (!node.ok()) return node.status();
    } else if (name == "--memory-limits") {
      if (value != "on" && value != "off") return InvalidArgument("--memory-limits must be on or off, got '" + value + "'");
      serve->memory_limits = value == "on";
    } else if (name == "--prepare") {
      if (value != "on" && value != "off") return InvalidArgument("--prepare must be on or off, got '" + value + "'");
      serve->prepare = value == "on";
    } else if (name == "--zygote-standby") {
      if (value != "on" && value != "off") return InvalidArgument("--zygote-standby must be on or off, got '" + value + "'");
      serve->zygote_standby = value == "on";
    } else if (name == "--upstream") {
      if (!value.starts_with("http://")) return InvalidArgument("--upstream must be http://host:port, got '" + value + "'");
      serve->upstream = value;
    } else if (name == "--modelmesh") {
      if (value != "on" && value != "off") return InvalidArgument("--modelmesh must be on or off, got '" + value + "'");
      serve->modelmesh = value == "on";
    } else if (name == "--strict-readiness") {
      if (value != "on" && value != "off") return InvalidArgument("--strict-readiness must be on or off, got '" + value + "'");
      serve->strict_readiness = value == "on";
    } else if (name == "--prepared-dir") {
      if (value.empty()) return InvalidArgument("--prepared-dir needs a directory");
      serve->prepared_dir = value;
    } else if (name == "--sandbox") {
      auto mode = sandbox::ParseSandboxMode(value);
      if (!mode.ok()) return InvalidArgument("--sandbox: " + mode.status().message());
      serve->sandbox = *mode;
    } else if (name == "--worker-user") {
      auto user = sandbox::ParseWorkerUser(value);
      if (!user.ok()) return InvalidArgument("--worker-user: " + user.status().message());
      serve->worker_user = *user;
    } else if (name == "--max-body-mb" || name == "--max-buffered-body-mb" || name == "--body-timeout-s" ||
               name == "--idle-timeout-s" || name == "--offload-threads") {
      int64_t number = 0;
      auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), number);
      const int64_t lowest = name == "--offload-threads" ? 0 : 1;
      if (err != std::errc() || end != value.data() + value.size() || number < lowest || number > (int64_t{1} << 30))
        return InvalidArgument(name + " must be an integer >= " + std::to_string(lowest) + ", got '" + value + "'");
      if (name == "--max-body-mb") serve->max_body_mb = number;
      if (name == "--max-buffered-body-mb") serve->max_buffered_body_mb = number;
      if (name == "--body-timeout-s") serve->body_timeout_s = number;
      if (name == "--idle-timeout-s") serve->idle_timeout_s = number;
      if (name == "--offload-threads") serve->offload_threads = static_cast<int>(std::min<int64_t>(number, 64));
    } else if (name == "--auth-tokens") {
      if (value.empty()) return InvalidArgument("--auth-tokens needs a token file");
      serve->auth_tokens_path = value;
    } else if (name == "--admin-port") {
      auto port = ParsePort(value, "--admin-port");
      if (!port.ok()) return port.status();
      serve->admin_port = *port;
    } else if (name == "--grpc-port") {
      auto port = ParsePort(value, "--grpc-port");
      if (!port.ok()) return port.status();
      serve->grpc_port = *port;
    } else if (name == "--admin-host") {
      serve->admin_host = value;
      admin_host_given = true;
    } else if (name == "--allowed-host") {
      if (value.empty() || value.find_first_of("/ \t") != std::string::npos)
        return InvalidArgument("--allowed-host needs a host name such as gpu-box.example.com, got '" + value + "'");
      serve->allowed_hosts.push_back(value);
    } else if (name == "--allowed-origin") {
      // scheme://host[:port], as browsers send it: no path.
      const size_t scheme_end = value.find("://");
      const bool origin_like = (value.starts_with("http://") || value.starts_with("https://")) &&
                               value.size() > scheme_end + 3 &&
                               value.find('/', scheme_end + 3) == std::string::npos;
      if (!origin_like)
        return InvalidArgument("--allowed-origin needs an origin such as https://dash.example.com (scheme, host and "
                               "optional port, no path), got '" + value + "'");
      serve->allowed_origins.push_back(value);
    } else {
      return InvalidArgument("unknown flag '" + name + "' for 'thaw serve'; see 'thaw serve --help'");
    }
  }
  if (admin_host_given && !serve->admin_port) return InvalidArgument("--admin-host needs --admin-port");
  if (serve->grpc_port && *serve->grpc_port != 0 &&
      (*serve->grpc_port == serve->port || (serve->admin_port && *serve->grpc_port == *serve->admin_port)))
    return InvalidArgument("--grpc-port must differ from --port and --admin-port");
  if (serve->admin_port && *serve->admin_port != 0 && *serve->admin_port == serve->port &&
      serve->admin_host == serve->host)
    return InvalidArgument("--admin-port must differ from --port");
  return Status::Ok();
}

Status ParseLoad(const std::vector<std::string>& args, LoadCommandOptions* load, bool* help) {
  bool has_rate = false, has_duration = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (IsHelp(args[i])) {
      *help = true;
      return Status::Ok();
    }
    std::string name, value;
    THAW_RETURN_IF_ERROR(NextFlag(args, &i, &name, &value));
    if (name == "--url") {
      auto url = load::ParseHttpUrl(value);
      if (!url.ok()) return InvalidArgument("--url: " + url.status().message());
      load->url = value;
    } else if (name == "--model") {
      if (value.empty() || value.find_first_of("/?# \r\n") != std::string::npos)
        return InvalidArgument("--model must be a model name, got '" + value + "'");
      load->model = value;
    } else if (name == "--request") {
      if (value.empty()) return InvalidArgument("--request needs a file name");
      load->request_path = value;
    } else if (name == "--protocol") {
      if (value != "http" && value != "grpc") return InvalidArgument("--protocol must be http or grpc, got '" + value + "'");
      load->protocol = value == "grpc" ? LoadCommandOptions::Protocol::kGrpc : LoadCommandOptions::Protocol::kHttp;
    } else if (name == "--tensors") {
      if (value != "json" && value != "binary") return InvalidArgument("--tensors must be json or binary, got '" + value + "'");
      load->binary_tensors = value == "binary";
    } else if (name == "--rate") {
      auto rate = ParseNumber(name, value, 0, true, 10'000'000);
      if (!rate.ok()) return rate.status();
      load->rate_per_s = *rate;
      has_rate = true;
    } else if (name == "--duration-s") {
      auto duration = ParseNumber(name, value, 0, true, 86400);
      if (!duration.ok()) return duration.status();
      load->duration_s = *duration;
      has_duration = true;
    } else if (name == "--arrivals") {
      auto process = load::ParseArrivalProcess(value);
      if (!process.ok()) return InvalidArgument("--arrivals must be 'poisson' or 'constant', got '" + value + "'");
      load->arrivals = *process;
    } else if (name == "--seed") {
      auto seed = ParseInteger<uint64_t>(name, value, 0, UINT64_MAX);
      if (!seed.ok()) return seed.status();
      load->seed = *seed;
    } else if (name == "--max-connections") {
      auto n = ParseInteger<int>(name, value, 1, 60000);
      if (!n.ok()) return n.status();
      load->max_connections = *n;
    } else if (name == "--warmup-s") {
      auto warmup = ParseNumber(name, value, 0, false, 86400);
      if (!warmup.ok()) return warmup.status();
      load->warmup_s = *warmup;
    } else if (name == "--drain-timeout-s") {
      auto drain = ParseNumber(name, value, 0, false, 86400);
      if (!drain.ok()) return drain.status();
      load->drain_timeout_s = *drain;
    } else if (name == "--json") {
      load->json_path = value;
    } else if (name == "--csv") {
      load->csv_path = value;
    } else {
      return InvalidArgument("unknown flag '" + name + "' for 'thaw load'; see 'thaw load --help'");
    }
  }
  for (auto [missing, flag] : {std::pair{load->url.empty(), "--url"}, {load->model.empty(), "--model"},
                               {load->request_path.empty(), "--request"}, {!has_rate, "--rate"},
                               {!has_duration, "--duration-s"}}) {
    if (missing) return InvalidArgument(std::string("thaw load needs ") + flag + "; see 'thaw load --help'");
  }
  if (load->binary_tensors && load->protocol == LoadCommandOptions::Protocol::kGrpc)
    return InvalidArgument("--tensors binary is for --protocol http; gRPC always sends raw_input_contents");
  if (load->rate_per_s * (load->duration_s + load->warmup_s) > static_cast<double>(load::kMaxArrivals))
    return InvalidArgument("--rate x (--duration-s + --warmup-s) asks for more than " +
                           std::to_string(load::kMaxArrivals) + " requests");
  return Status::Ok();
}


// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant,
// "chrono-Compatible Low-Level Date Algorithms").
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool IsLeapYear(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Reads exactly `digits` decimal digits at text[*pos].
std::optional<int64_t> Digits(std::string_view text, size_t* pos, size_t digits) {
  if (*pos + digits > text.size()) return std::nullopt;
  int64_t value = 0;
  for (size_t i = 0; i < digits; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + (c - '0');
  }
  *pos += digits;
  return value;
}

bool Expect(std::string_view text, size_t* pos, char c) {
  if (*pos >= text.size() || text[*pos] != c) return false;
  ++*pos;
  return true;
}

// YYYY-MM-DDTHH:MM[:SS[.f{1,6}]]Z -> microseconds since the epoch.
std::optional<Micros> ParseIsoUtc(std::string_view text) {
  size_t pos = 0;
  auto year = Digits(text, &pos, 4);
  if (!year || !Expect(text, &pos, '-')) return std::nullopt;
  auto month = Digits(text, &pos, 2);
  if (!month || !Expect(text, &pos, '-')) return std::nullopt;
  auto day = Digits(text, &pos, 2);
  if (!day || !Expect(text, &pos, 'T')) return std::nullopt;
  auto hour = Digits(text, &pos, 2);
  if (!hour || !Expect(text, &pos, ':')) return std::nullopt;
  auto minute = Digits(text, &pos, 2);
  if (!minute) return std::nullopt;
  int64_t second = 0, micros = 0;
  if (Expect(text, &pos, ':')) {
    auto s = Digits(text, &pos, 2);
    if (!s) return std::nullopt;
    second = *s;
    if (Expect(text, &pos, '.')) {
      int n = 0;
      while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9' && n < 6) {
        micros = micros * 10 + (text[pos++] - '0');
        ++n;
      }
      if (n == 0) return std::nullopt;
      for (; n < 6; ++n) micros *= 10;
    }
  }
  if (!Expect(text, &pos, 'Z') || pos != text.size()) return std::nullopt;
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (*month < 1 || *month > 12) return std::nullopt;
  const int days_in_month = kDaysInMonth[*month - 1] + (*month == 2 && IsLeapYear(*year) ? 1 : 0);
  if (*day < 1 || *day > days_in_month || *hour > 23 || *minute > 59 || second > 59) return std::nullopt;
  const int64_t days = DaysFromCivil(*year, static_cast<unsigned>(*month), static_cast<unsigned>(*day));
  return ((days * 24 + *hour) * 60 + *minute) * 60 * kMicrosPerSecond + second * kMicrosPerSecond + micros;
}

Status ParseCost(const std::vector<std::string>& args, CostCommandOptions* cost, bool* help) {
  for (size_t i = 1; i < args.size(); ++i) {
    if (IsHelp(args[i])) {
      *help = true;
      return Status::Ok();
    }
    // --json is a switch: it takes no value.
    if (args[i] == "--json") {
      cost->json = true;
      continue;
    }
    if (args[i].starts_with("--json=")) return InvalidArgument("--json takes no value");
    std::string name, value;
    THAW_RETURN_IF_ERROR(NextFlag(args, &i, &name, &value));
    if (name == "--usage-log") {
      if (value.empty()) return InvalidArgument("--usage-log needs a file name");
      cost->usage_log_path = value;
    } else if (name == "--since") {
      auto since = ParseSince(value);
      if (!since.ok()) return since.status();
      cost->since = *since;
    } else if (name == "--prices") {
      if (value.empty()) return InvalidArgument("--prices needs aws-x86, aws-arm64 or a price sheet file");
      cost->prices = value;
    } else {
      return InvalidArgument("unknown flag '" + name + "' for 'thaw cost'; see 'thaw cost --help'");
    }
  }
  return Status::Ok();
}

// "1,2,4" -> {1, 2, 4}, each in [min, max]; errors name the flag.
template <typename Int>
Status ParseIntegerList(const std::string& flag, const std::string& text, Int min, Int max, std::vector<Int>* out) {
  out->clear();
  for (const std::string& piece : SplitCommas(text)) {
    auto n = ParseInteger<Int>(flag, piece, min, max);
    if (!n.ok()) return n.status();
    out->push_back(*n);
  }
  return Status::Ok();
}

Status ParseSimulate(const std::vector<std::string>& args, SimulateCommandOptions* sim, bool* help, bool plan,
                     bool replay) {
  const std::string command = replay ? "thaw replay" : plan ? "thaw plan" : "thaw simulate";
  for (size_t i = 1; i < args.size(); ++i) {
    if (IsHelp(args[i])) {
      *help = true;
      return Status::Ok();
    }
    if (args[i] == "--json") {
      sim->json = true;
      continue;
    }
    if (!replay && args[i] == "--per-function") {
      sim->per_function = true;
      continue;
    }
    std::string name, value;
    THAW_RETURN_IF_ERROR(NextFlag(args, &i, &name, &value));
    if (name == "--from-s" || name == "--to-s") {
      auto at = ParseNumber(name, value, 0, false, 4e9);
      if (!at.ok()) return at.status();
      (name == "--from-s" ? sim->from_s : sim->to_s) = *at;
    } else if (!plan && !replay && name == "--nodes") {
      auto n = ParseInteger<int>(name, value, 1, 1024);
      if (!n.ok()) return n.status();
      sim->nodes = *n;
    } else if (!plan && !replay && name == "--node-memory-mb") {
      auto n = ParseInteger<int64_t>(name, value, 128, int64_t{1} << 30);
      if (!n.ok()) return n.status();
      sim->node_memory_mb = *n;
    } else if (!plan && !replay && name == "--copy-rate") {
      auto r = ParseNumber(name, value, 0, true, 1e9);
      if (!r.ok()) return r.status();
      sim->copy_rate_per_s = *r;
    } else if (name == "--suite") {
      if (value.empty()) return InvalidArgument("--suite needs a trace name (thaw simulate --help lists them)");
      sim->suite = value;
    } else if (name == "--trace" || name == "--azure") {
      if (value.empty()) return InvalidArgument(name + " needs a file name");
      sim->trace_path = value;
      sim->azure = name == "--azure";
    } else if (name == "--azure-top") {
      auto top = ParseInteger<size_t>(name, value, 1, 100000);
      if (!top.ok()) return top.status();
      sim->azure_top = *top;
    } else if (name == "--spread") {
      if (value != "uniform" && value != "poisson") return InvalidArgument("--spread must be uniform or poisson, got '" + value + "'");
      sim->spread = value;
    } else if (name == "--time-scale") {
      auto scale = ParseNumber(name, value, 0, true, 1e6);
      if (!scale.ok()) return scale.status();
      sim->time_scale = *scale;
    } else if (name == "--poisson") {
      auto rate = ParseNumber(name, value, 0, true, 1e8);
      if (!rate.ok()) return rate.status();
      sim->poisson_rate_per_s = *rate;
    } else if (name == "--duration-s") {
      auto duration = ParseNumber(name, value, 0, true, 1e8);
      if (!duration.ok()) return duration.status();
      sim->duration_s = *duration;
    } else if (name == "--profile") {
      sim->profile_paths.push_back(value);
    } else if (name == "--config") {
      sim->config_paths.push_back(value);
    } else if (!replay && name == "--start-times-from") {
      if (value.empty()) return InvalidArgument("--start-times-from needs a profile file");
      sim->start_times_from_paths.push_back(value);
    } else if (replay && name == "--target") {
      const size_t eq = value.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
        return InvalidArgument("--target must be MODEL=REQUEST_FILE, got '" + value + "'");
      sim->targets.push_back({value.substr(0, eq), value.substr(eq + 1)});
    } else if (name == "--map") {
      if (value.find('=') == std::string::npos) return InvalidArgument("--map must be FUNCTION=MODEL, got '" + value + "'");
      sim->routes.push_back(value);
    } else if (name == "--prices") {
      if (value.empty()) return InvalidArgument("--prices needs aws-x86, aws-arm64 or a price sheet file");
      sim->prices = value;
    } else if (name == "--seed") {
      auto seed = ParseInteger<uint64_t>(name, value, 0, std::numeric_limits<uint64_t>::max());
      if (!seed.ok()) return seed.status();
      sim->seed = *seed;
    } else if (!replay && name == "--memory-mb") {
      auto mb = ParseInteger<int64_t>(name, value, 128, int64_t{1} << 40);
      if (!mb.ok()) return mb.status();
      sim->memory_mb = *mb;
    } else if (auto node = replay ? StatusOr<bool>(false) : ParseNodeMemoryFlag(name, value, &sim->node);
               !node.ok() || *node) {
      if (!node.ok()) return node.status();
    } else if (name == "--rows") {
      auto rows = ParseInteger<int64_t>(name, value, 1, 1 << 20);
      if (!rows.ok()) return rows.status();
      sim->rows_per_request = *rows;
    } else if (plan && name == "--slo-p99-ms") {
      auto slo = ParseNumber(name, value, 0, true, 3.6e6);
      if (!slo.ok()) return slo.status();
      sim->slo_p99_ms = *slo;
    } else if (plan && name == "--out") {
      sim->out_path = value;
    } else if (plan && name == "--accuracy-floor") {
      if (auto floor = sim::ParseAccuracyFloor(value); !floor.ok()) return floor.status();
      sim->accuracy_floor = value;
    } else if (plan && name == "--memory-grid") {
      THAW_RETURN_IF_ERROR(ParseIntegerList<int64_t>(name, value, 128, 10240, &sim->plan_memory_mb));
    } else if (plan && name == "--max-concurrency-grid") {
      THAW_RETURN_IF_ERROR(ParseIntegerList<int>(name, value, 1, 1000, &sim->plan_max_concurrency));
    } else if (plan && name == "--min-instances-grid") {
      THAW_RETURN_IF_ERROR(ParseIntegerList<int>(name, value, 0, 1000, &sim->plan_min_instances));
    } else if (plan && name == "--keep-alive-grid") {
      THAW_RETURN_IF_ERROR(ParseIntegerList<int64_t>(name, value, 0, 86400, &sim->plan_keep_alive_s));
    } else if (plan && name == "--threads-grid") {
      THAW_RETURN_IF_ERROR(ParseIntegerList<int>(name, value, 1, 64, &sim->plan_threads));
    } else if (plan && name == "--keep-alive-policies") {
      sim->plan_keep_alive_policies = SplitCommas(value);
      for (const std::string& policy : sim->plan_keep_alive_policies)
        if (policy != "fixed" && policy != "adaptive" && policy != "histogram")
          return InvalidArgument("--keep-alive-policies takes fixed, adaptive and histogram, got '" + policy + "'");
    } else if (plan && name == "--template-keep-alive-grid") {
      THAW_RETURN_IF_ERROR(ParseIntegerList<int64_t>(name, value, 0, 86400, &sim->plan_template_keep_alive_s));
    } else if (plan && (name == "--bill-weight" || name == "--host-weight")) {
      auto weight = ParseNumber(name, value, 0, false, 1e6);
      if (!weight.ok()) return weight.status();
      (name == "--bill-weight" ? sim->bill_weight : sim->host_weight) = *weight;
    } else if (replay && name == "--url") {
      auto url = load::ParseHttpUrl(value);
      if (!url.ok()) return InvalidArgument("--url: " + url.status().message());
      sim->url = value;
    } else if (replay && name == "--model") {
      sim->model = value;
    } else if (replay && name == "--request") {
      sim->request_path = value;
    } else if (replay && name == "--max-connections") {
      auto n = ParseInteger<int>(name, value, 1, 100000);
      if (!n.ok()) return n.status();
      sim->max_connections = *n;
    } else {
      return InvalidArgument("unknown flag '" + name + "' for '" + command + "'; see '" + command + " --help'");
    }
  }
  if (replay) {
    const bool one_model = !sim->model.empty() || !sim->request_path.empty();
    if (sim->url.empty() || (one_model ? sim->model.empty() || sim->request_path.empty() || !sim->targets.empty()
                                       : sim->targets.empty()))
      return InvalidArgument(command + " needs --url, and --model with --request, or --target MODEL=FILE per model");
    if (sim->profile_paths.empty() != sim->config_paths.empty())
      return InvalidArgument(command + " compares with a simulation given --profile and --config both, or neither");
  } else {
    if (sim->profile_paths.empty()) return InvalidArgument(command + " needs --profile FILE");
    if (sim->config_paths.empty()) return InvalidArgument(command + " needs --config FILE");
    if (plan && sim->config_paths.size() > 1) return InvalidArgument(command + " plans one model: give one --config");
  }
  if (plan && sim->slo_p99_ms <= 0) return InvalidArgument(command + " needs --slo-p99-ms X");
  if (plan && sim->bill_weight == 0 && sim->host_weight == 0)
    return InvalidArgument(command + ": --bill-weight and --host-weight cannot both be 0");
  const bool synthetic = sim->poisson_rate_per_s > 0;
  if ((synthetic ? 1 : 0) + (sim->trace_path.empty() ? 0 : 1) + (sim->suite.empty() ? 0 : 1) != 1)
    return InvalidArgument(command +
                           " needs one trace: --trace FILE, --azure FILE, --suite NAME or --poisson RATE --duration-s S");
  if (sim->to_s > 0 && sim->to_s <= sim->from_s) return InvalidArgument("--to-s must be after --from-s");
  if (sim->per_function && sim->config_paths.empty())
    return InvalidArgument("--per-function copies a --config per trace function: give one, or one per kind");
  if (sim->per_function && !sim->routes.empty()) return InvalidArgument("--per-function and --map do not go together");
  if (sim->per_function && plan) return InvalidArgument(command + " plans one model: --per-function is for thaw simulate");
  if (synthetic && sim->duration_s <= 0) return InvalidArgument("--poisson needs --duration-s");
  return Status::Ok();
}

}  // namespace

StatusOr<Since> ParseSince(std::string_view text) {
  const auto error = [&] {
    return InvalidArgument("--since must be an ISO-8601 UTC time (2026-11-28T20:00:00Z) or a duration before now "
                           "(30s, 15m, 2h, 7d), got '" + std::string(text) + "'");
  };
  Since since;
  if (auto wall = ParseIsoUtc(text)) {
    since.kind = Since::Kind::kWallTime;
    since.wall_us = *wall;
    return since;
  }
  if (text.size() < 2) return error();
  Micros unit = 0;
  switch (text.back()) {
    case 's': unit = kMicrosPerSecond; break;
    case 'm': unit = 60 * kMicrosPerSecond; break;
    case 'h': unit = 3600 * kMicrosPerSecond; break;
    case 'd': unit = 86400 * kMicrosPerSecond; break;
    default: return error();
  }
  const std::string_view number = text.substr(0, text.size() - 1);
  int64_t count = 0;
  auto [end, err] = std::from_chars(number.data(), number.data() + number.size(), count);
  constexpr Micros kMaxBefore = Micros{36525} * 86400 * kMicrosPerSecond;  // 100 years
  if (err != std::errc() || end != number.data() + number.size() || count < 1 || count > kMaxBefore / unit)
    return error();
  since.kind = Since::Kind::kBeforeNow;
  since.before_us = count * unit;
  return since;
}

Micros SinceWallUs(const Since& since, Micros now_wall_us) {
  switch (since.kind) {
    case Since::Kind::kWallTime: return since.wall_us;
    case Since::Kind::kBeforeNow: return now_wall_us - since.before_us;
    case Since::Kind::kAll: break;
  }
  return std::numeric_limits<Micros>::min();
}

std::string PercentText(double part, double whole) {
  if (whole == 0) return "0 %";
  const double percent = 100.0 * part / whole;
  if (part != 0 && std::abs(percent) < 0.005) return "< 0.01 %";
  return DecimalText(percent, 2) + " %";
}

std::string DecimalText(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string DefaultUsageLogPath(const std::function<const char*(const char*)>& getenv) {
  auto set = [&getenv](const char* name) -> std::string {
    const char* value = getenv(name);
    return value == nullptr ? "" : value;
  };
  if (std::string dir = set("THAW_STATE_DIR"); !dir.empty()) return (std::filesystem::path(dir) / "usage.jsonl").string();
  if (std::string dir = set("XDG_STATE_HOME"); !dir.empty())
    return (std::filesystem::path(dir) / "thaw" / "usage.jsonl").string();
  if (std::string home = set("HOME"); !home.empty())
    return (std::filesystem::path(home) / ".local" / "state" / "thaw" / "usage.jsonl").string();
  return "/tmp/thaw-state/usage.jsonl";
}

std::string DefaultUsageLogPath() {
  return DefaultUsageLogPath([](const char* name) -> const char* { return std::getenv(name); });
}

bool AsksForHelp(const std::vector<std::string>& args) {
  if (args.empty() || IsHelp(args[0]) || args[0] == "help") return true;
  return FindCommand(args[0]) != nullptr && std::any_of(args.begin() + 1, args.end(), IsHelp);
}

StatusOr<Command> ParseCommandLine(const std::vector<std::string>& args) {
  Command command;
  if (args.empty() || IsHelp(args[0])) return command;
  if (args[0] == "help") {
    if (args.size() > 2) return InvalidArgument("thaw help takes one COMMAND; see 'thaw --help'");
    if (args.size() == 2) {
      if (FindCommand(args[1]) == nullptr) return InvalidArgument("unknown command '" + args[1] + "'; see 'thaw --help'");
      command.help_topic = args[1];
    }
    return command;
  }
  if (args[0] == "--version") {
    command.kind = CommandKind::kVersion;
    return command;
  }
  if (FindCommand(args[0]) != nullptr && std::any_of(args.begin() + 1, args.end(), IsHelp)) {
    command.help_topic = args[0];
    return command;
  }
  if (args[0] == "version") {
    if (args.size() > 1) return InvalidArgument("unexpected argument '" + args[1] + "'; see 'thaw version --help'");
    command.kind = CommandKind::kVersion;
    return command;
  }
  if (args[0] != "serve" && args[0] != "load" && args[0] != "cost" && args[0] != "simulate" && args[0] != "plan" &&
      args[0] != "replay") {
    if (args[0].starts_with("-")) return InvalidArgument("unknown flag '" + args[0] + "'; see 'thaw --help'");
    return InvalidArgument("unknown command '" + args[0] + "'; see 'thaw --help'");
  }
  bool help = false;
  command.serve.usage_log_path = command.cost.usage_log_path = DefaultUsageLogPath();
  if (args[0] == "serve") {
    command.kind = CommandKind::kServe;
    THAW_RETURN_IF_ERROR(ParseServe(args, &command.serve, &help));
  } else if (args[0] == "load") {
    command.kind = CommandKind::kLoad;
    THAW_RETURN_IF_ERROR(ParseLoad(args, &command.load, &help));
  } else if (args[0] == "simulate" || args[0] == "plan" || args[0] == "replay") {
    command.kind = args[0] == "plan" ? CommandKind::kPlan : args[0] == "replay" ? CommandKind::kReplay : CommandKind::kSimulate;
    THAW_RETURN_IF_ERROR(ParseSimulate(args, &command.simulate, &help, args[0] == "plan", args[0] == "replay"));
  } else {
    command.kind = CommandKind::kCost;
    THAW_RETURN_IF_ERROR(ParseCost(args, &command.cost, &help));
  }
  if (help) {
    command.kind = CommandKind::kHelp;
    command.help_topic = args[0];
  }
  return command;
}

std::vector<std::string> SplitCommas(std::string_view text) {
  std::vector<std::string> pieces;
  for (size_t start = 0; start <= text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    pieces.emplace_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return pieces;
}

std::string RepoOrDefault(const std::string& repo) {
  if (!repo.empty()) return repo;
  return std::filesystem::is_directory("examples/models") ? "examples/models" : THAW_DEFAULT_REPO;
}

bool ParseModelAndFlags(
    const std::string& command, const std::vector<std::string>& args, std::string* model, std::string* error,
    const std::function<bool(const std::string& flag, const std::string& value, bool* ok)>& flag,
    const std::function<bool(const std::string& flag)>& boolean) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!a.starts_with("--")) {
      if (!model->empty()) {
        *error = "unexpected argument '" + a + "'";
        return false;
      }
      *model = a;
      continue;
    }
    if (boolean && boolean(a)) continue;
    if (i + 1 >= args.size()) {
      *error = a + " needs a value";
      return false;
    }
    const std::string& v = args[++i];
    bool ok = true;
    if (!flag(a, v, &ok)) {
      *error = "unknown flag '" + a + "' for 'thaw " + command + "'; see 'thaw " + command + " --help'";
      return false;
    }
    if (!ok) {
      *error = a + ": bad value '" + v + "'";
      return false;
    }
  }
  if (model->empty()) {
    *error = "thaw " + command + " needs a MODEL";
    return false;
  }
  return true;
}

}  // namespace thaw::cli
