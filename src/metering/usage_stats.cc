#include "metering/usage_stats.h"

#include <simdjson.h>

#include <algorithm>
#include <set>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <variant>

#include "base/format.h"
#include "metering/price_sheet.h"
#include "metering/usage_json.h"
#include "metering/usage_log.h"

namespace thaw::metering {
namespace {

// Bucket i holds (gamma^(i-1), gamma^i] and reports 2 gamma^i / (gamma + 1),
// within (gamma - 1) / (gamma + 1) of any value in it. That bound is set a
// little under kRelativeError so floating-point error at bucket edges stays
// inside it.
constexpr double kBucketError = LatencyHistogram::kRelativeError * 0.99;
const double kGamma = (1 + kBucketError) / (1 - kBucketError);
const double kLogGamma = std::log(kGamma);

int BucketIndex(Micros value_us) {
  return static_cast<int>(std::ceil(std::log(static_cast<double>(value_us)) / kLogGamma));
}

double BucketValue(int index) { return 2 * std::pow(kGamma, index) / (kGamma + 1); }

bool Is2xx(int status) { return status >= 200 && status < 300; }

// Memory held for us (a negative duration counts as 0), in GB-s.
double Held(Micros us, int64_t memory_mb) { return policy::GbSeconds(std::max<Micros>(us, 0), memory_mb); }

// Number for report JSON: 10 significant digits, enough for dollars and GB-s.
std::string Num(double value) {
  if (!std::isfinite(value)) return "0";
  char buf[40];
  std::snprintf(buf, sizeof(buf), "%.10g", value);
  return buf;
}

// A number in the text table: 4 significant digits, never "0.00000000".
std::string Sig(double value) { return SignificantText(value, 4); }


// A row's fields, in the object `w` has open.
void RowFields(JsonWriter& w, const ModelUsage& row) {
  auto num = [&w](std::string_view key, double value) { w.Key(key).Raw(Num(value)); };
  w.Field("model", row.model).Field("invocations", row.invocations).Field("ok", row.ok);
  w.Key("status_counts").BeginObject();
  for (const auto& [status, count] : row.status_counts) w.Field(std::to_string(status), count);
  w.EndObject();
  w.Field("cold_starts", row.cold_starts).Key("latency_ms").BeginObject().Field("count", row.latency_count);
  num("p50", row.p50_ms);
  num("p90", row.p90_ms);
  num("p99", row.p99_ms);
  w.EndObject();
  num("mean_batch_rows", row.mean_batch_rows);
  w.Field("instances_stopped", row.instances_stopped).Field("billed_requests", row.usage.requests);
  const policy::UsageTotals& u = row.usage;
  w.Key("gb_s").BeginObject();
  num("on_demand_duration", u.on_demand_duration_gb_s);
  num("init", u.init_gb_s);
  num("provisioned_capacity", u.provisioned_capacity_gb_s);
  num("provisioned_duration", u.provisioned_duration_gb_s);
  num("idle_warm", u.idle_warm_gb_s);
  w.EndObject();
  const policy::Bill& b = row.bill;
  w.Key("usd").BeginObject();
  num("requests", b.request_usd);
  num("on_demand_duration", b.on_demand_duration_usd);
  num("init", b.init_usd);
  num("provisioned_capacity", b.provisioned_capacity_usd);
  num("provisioned_duration", b.provisioned_duration_usd);
  num("total", b.total_usd);
  w.EndObject();
  num("usd_per_million_ok", row.usd_per_million_ok);
  const policy::HeldMemory& h = u.held;
  w.Key("held_gb_s").BeginObject();
  num("busy", h.busy_gb_s);
  num("idle_warm", h.idle_warm_gb_s);
  num("provisioned", h.provisioned_gb_s);
  num("template", h.template_gb_s);
  num("standby", h.standby_gb_s);
  num("zygote", h.zygote_gb_s);
  num("total", h.total_gb_s());
  w.EndObject();
  num("host_usd", b.host_usd);
  num("host_usd_per_million_ok", row.host_usd_per_million_ok);
}

// A text table: columns right-aligned at their widths (the first, the
// model name, left-aligned), one space apart; group labels ("--- label ---")
// over runs of columns on a line above the header.
class TextTable {
 public:
  explicit TextTable(std::vector<std::pair<std::string, size_t>> columns) : columns_(std::move(columns)) {}

  // A label over columns [first, last].
  void Group(size_t first, size_t last, const std::string& label) {
    size_t begin = 0;
    for (size_t i = 0; i < first; ++i) begin += columns_[i].second + 1;
    size_t span = 0;
    for (size_t i = first; i <= last; ++i) span += columns_[i].second + (i > first ? 1 : 0);
    const std::string text = " " + label + " ";
    const size_t left = (span - text.size()) / 2;
    groups_.resize(begin, ' ');
    groups_ += std::string(left, '-') + text + std::string(span - left - text.size(), '-');
  }

  // The group line and the column names.
  std::string Header() const {
    std::vector<std::string> names;
    for (const auto& column : columns_) names.push_back(column.first);
    return groups_ + "\n" + Line(names);
  }

  std::string Line(const std::vector<std::string>& cells) const {
    std::string line;
    for (size_t i = 0; i < cells.size(); ++i) {
      const size_t width = columns_[i].second;
      const std::string& cell = cells[i];
      const std::string pad(cell.size() < width ? width - cell.size() : 0, ' ');
      line += (i ? " " : "") + (i == 0 ? cell + pad : pad + cell);
    }
    return line + "\n";
  }

 private:
  std::vector<std::pair<std::string, size_t>> columns_;
  std::string groups_;
};

std::string GranularityMs(Micros granularity_us) { return Num(static_cast<double>(granularity_us) / kMicrosPerMilli); }

// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian
// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms").
void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

}  // namespace

void LatencyHistogram::Add(Micros value_us) {
  ++count_;
  if (value_us <= 0) {
    ++zeros_;
    return;
  }
  const int index = BucketIndex(value_us);
  if (counts_.empty()) {
    first_index_ = index;
    counts_.assign(1, 0);
  } else if (index < first_index_) {
    counts_.insert(counts_.begin(), static_cast<size_t>(first_index_ - index), 0);
    first_index_ = index;
  } else if (index >= first_index_ + static_cast<int>(counts_.size())) {
    counts_.resize(static_cast<size_t>(index - first_index_ + 1), 0);
  }
  ++counts_[static_cast<size_t>(index - first_index_)];
}

void LatencyHistogram::Merge(const LatencyHistogram& other) {
  if (other.counts_.empty()) {
    count_ += other.count_;
    zeros_ += other.zeros_;
    return;
  }
  if (counts_.empty()) {
    const int64_t count = count_ + other.count_, zeros = zeros_ + other.zeros_;
    *this = other;
    count_ = count;
    zeros_ = zeros;
    return;
  }
  const int first = std::min(first_index_, other.first_index_);
  const int end = std::max(first_index_ + static_cast<int>(counts_.size()),
                           other.first_index_ + static_cast<int>(other.counts_.size()));
  std::vector<int64_t> merged(static_cast<size_t>(end - first), 0);
  for (size_t i = 0; i < counts_.size(); ++i) merged[first_index_ - first + i] += counts_[i];
  for (size_t i = 0; i < other.counts_.size(); ++i) merged[other.first_index_ - first + i] += other.counts_[i];
  counts_ = std::move(merged);
  first_index_ = first;
  count_ += other.count_;
  zeros_ += other.zeros_;
}

double LatencyHistogram::QuantileUs(double q) const {
  if (count_ == 0) return 0;
  // The epsilon keeps q x count from rounding up past an exact rank (0.9 x 10).
  auto rank = static_cast<int64_t>(std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(count_) - 1e-9));
  rank = std::clamp<int64_t>(rank, 1, count_);
  if (rank <= zeros_) return 0;
  int64_t seen = zeros_;
  for (size_t i = 0; i < counts_.size(); ++i) {
    seen += counts_[i];
    if (seen >= rank) return BucketValue(first_index_ + static_cast<int>(i));
  }
  return BucketValue(first_index_ + static_cast<int>(counts_.size()) - 1);
}

UsageStats::UsageStats(Micros granularity_us) : granularity_us_(std::max<Micros>(granularity_us, 1)) {
  rounding_.granularity_us = granularity_us_;
}

void UsageStats::AddTo(Accumulator& acc, const UsageRecord& record) const {
  if (const auto* r = std::get_if<InvocationRecord>(&record)) {
    ++acc.invocations;
    ++acc.status_counts[r->http_status];
    if (r->cold_start) ++acc.cold_starts;
    if (Is2xx(r->http_status)) {
      ++acc.ok;
      acc.latency.Add(r->latency_us);
      acc.batch_rows_ok += r->batch_rows;
    }
    if (r->instance_id != 0) {
      ++acc.usage.requests;
      const double gb_s = policy::ExecutionShareGbSeconds(r->compute_us, r->memory_mb, r->share, rounding_);
      (r->provisioned ? acc.usage.provisioned_duration_gb_s : acc.usage.on_demand_duration_gb_s) += gb_s;
      // A provisioned instance's init is covered by its provisioned capacity.
      if (r->cold_start && !r->provisioned)
        acc.usage.init_gb_s += policy::ExecutionShareGbSeconds(r->init_us, r->memory_mb, r->share, rounding_);
    }
  } else if (const auto* r = std::get_if<InstanceRecord>(&record)) {
    ++acc.instances_stopped;
    const int64_t held_mb = r->held_mb > 0 ? r->held_mb : r->memory_mb;
    if (r->provisioned) {
      acc.usage.held.provisioned_gb_s += Held(r->stop_wall_us - r->start_wall_us, held_mb);
    } else {
      // Idle-warm time at the configured size (what a Lambda-style sheet
      // would price); memory held at what the node's budget reserved.
      acc.usage.idle_warm_gb_s += Held(r->idle_us, r->memory_mb);
      acc.usage.held.idle_warm_gb_s += Held(r->idle_us, held_mb);
      acc.usage.held.busy_gb_s += Held(std::max<Micros>(r->init_us, 0) + std::max<Micros>(r->busy_us, 0), held_mb);
    }
  } else if (const auto* p = std::get_if<ProvisionedRecord>(&record)) {
    acc.usage.provisioned_capacity_gb_s +=
        policy::ProvisionedCapacityGbSeconds(p->instances, p->end_wall_us - p->start_wall_us, p->memory_mb);
  } else {
    const auto& h = std::get<HeldRecord>(record);
    const double gb_s = Held(h.end_wall_us - h.start_wall_us, h.memory_mb);
    switch (h.kind) {
      case HeldKind::kTemplate: acc.usage.held.template_gb_s += gb_s; break;
      case HeldKind::kStandby: acc.usage.held.standby_gb_s += gb_s; break;
      case HeldKind::kZygote: acc.usage.held.zygote_gb_s += gb_s; break;
    }
  }
}

void UsageStats::Add(const UsageRecord& record) {
  static_assert(std::variant_size_v<UsageRecord> == 4, "count every kind of record");
  Micros start = 0, end = 0;
  std::string_view model;
  if (const auto* r = std::get_if<InvocationRecord>(&record)) {
    start = r->arrival_wall_us;
    end = r->arrival_wall_us + r->latency_us;
    model = r->model;
  } else if (const auto* r = std::get_if<InstanceRecord>(&record)) {
    start = r->start_wall_us;
    end = r->stop_wall_us;
    model = r->model;
  } else if (const auto* p = std::get_if<ProvisionedRecord>(&record)) {
    start = p->start_wall_us;
    end = p->end_wall_us;
    model = p->model;
  } else {
    const auto& h = std::get<HeldRecord>(record);
    start = h.start_wall_us;
    end = h.end_wall_us;
    model = h.model;
  }
  from_wall_us_ = records_ == 0 ? start : std::min(from_wall_us_, start);
  to_wall_us_ = records_ == 0 ? end : std::max(to_wall_us_, end);
  ++records_;
  if (model.empty()) {
    has_platform_ = true;
    AddTo(platform_, record);
  } else {
    auto it = models_.find(model);
    if (it == models_.end()) it = models_.emplace(std::string(model), Accumulator{}).first;
    AddTo(it->second, record);
  }
  AddTo(total_, record);
}

ModelUsage UsageStats::Row(const std::string& model, const Accumulator& acc, const policy::PriceSheet& prices) {
  ModelUsage row;
  row.model = model;
  row.invocations = acc.invocations;
  row.ok = acc.ok;
  row.status_counts.assign(acc.status_counts.begin(), acc.status_counts.end());
  row.cold_starts = acc.cold_starts;
  row.latency_count = acc.latency.count();
  row.p50_ms = acc.latency.QuantileUs(0.50) / kMicrosPerMilli;
  row.p90_ms = acc.latency.QuantileUs(0.90) / kMicrosPerMilli;
  row.p99_ms = acc.latency.QuantileUs(0.99) / kMicrosPerMilli;
  if (acc.ok > 0) row.mean_batch_rows = static_cast<double>(acc.batch_rows_ok) / static_cast<double>(acc.ok);
  row.instances_stopped = acc.instances_stopped;
  row.usage = acc.usage;
  row.bill = policy::ComputeBill(acc.usage, prices);
  if (acc.ok > 0) {
    row.usd_per_million_ok = row.bill.total_usd / static_cast<double>(acc.ok) * 1e6;
    row.host_usd_per_million_ok = row.bill.host_usd / static_cast<double>(acc.ok) * 1e6;
  }
  return row;
}

UsageStats::Accumulator UsageStats::WithRunning(Accumulator acc, std::string_view model, bool all,
                                                std::span<const InstanceRecord> running) const {
  for (const InstanceRecord& r : running) {
    if (!all && r.model != model) continue;
    AddTo(acc, r);
    --acc.instances_stopped;  // still running
  }
  return acc;
}

UsageReport UsageStats::Report(const policy::PriceSheet& prices, std::span<const InstanceRecord> running) const {
  UsageReport report;
  report.prices = prices;
  report.granularity_us = granularity_us_;
  report.records = records_;
  report.from_wall_us = from_wall_us_;
  report.to_wall_us = to_wall_us_;
  std::set<std::string_view> models;
  for (const auto& [model, acc] : models_) models.insert(model);
  for (const InstanceRecord& r : running) models.insert(r.model);
  for (std::string_view model : models) {
    auto it = models_.find(model);
    report.models.push_back(Row(std::string(model), WithRunning(it == models_.end() ? Accumulator{} : it->second, model,
                                                                 false, running),
                                prices));
  }
  if (has_platform_) report.models.push_back(Row(std::string(kPlatformModel), platform_, prices));
  report.total = Row("", WithRunning(total_, "", true, running), prices);
  return report;
}

ModelUsage UsageStats::ModelReport(std::string_view model, const policy::PriceSheet& prices,
                                   std::span<const InstanceRecord> running) const {
  if (model == kPlatformModel) return Row(std::string(kPlatformModel), platform_, prices);
  auto it = models_.find(model);
  return Row(std::string(model), WithRunning(it == models_.end() ? Accumulator{} : it->second, model, false, running),
             prices);
}

std::string ReportJson(const UsageReport& report) {
  std::string j;
  JsonWriter w(&j);
  w.BeginObject().Key("prices").Raw(PriceSheetJson(report.prices));
  w.Key("granularity_ms").Raw(GranularityMs(report.granularity_us));
  w.Field("records", report.records).Field("from_wall_us", report.from_wall_us).Field("to_wall_us", report.to_wall_us);
  if (report.virtual_origin_wall_us)
    w.Field("from_virtual_s", (report.from_wall_us - *report.virtual_origin_wall_us) / 1e6)
        .Field("to_virtual_s", (report.to_wall_us - *report.virtual_origin_wall_us) / 1e6);
  w.Key("models").BeginArray();
  for (const ModelUsage& row : report.models) {
    w.BeginObject();
    RowFields(w, row);
    w.EndObject();
  }
  w.EndArray().Key("total").BeginObject();
  RowFields(w, report.total);
  w.EndObject().EndObject();
  return j + "\n";
}

std::string ModelReportJson(const ModelUsage& row, const policy::PriceSheet& prices, Micros granularity_us) {
  std::string j;
  JsonWriter w(&j);
  w.BeginObject();
  RowFields(w, row);
  w.Key("prices").Raw(PriceSheetJson(prices)).Key("granularity_ms").Raw(GranularityMs(granularity_us)).EndObject();
  return j + "\n";
}

namespace {

double NumberAt(simdjson::dom::element parent, std::string_view key) {
  double value = 0;
  if (parent[key].get_double().get(value) || !std::isfinite(value)) return 0;
  return value;
}

int64_t IntegerAt(simdjson::dom::element parent, std::string_view key) { return std::llround(NumberAt(parent, key)); }

ModelUsage RowOf(simdjson::dom::element row) {
  ModelUsage m;
  std::string_view name;
  if (!row["model"].get_string().get(name)) m.model = std::string(name);
  m.invocations = IntegerAt(row, "invocations");
  m.ok = IntegerAt(row, "ok");
  simdjson::dom::object statuses;
  if (!row["status_counts"].get_object().get(statuses))
    for (auto [key, value] : statuses) {
      int64_t count = 0;
      if (value.get_int64().get(count)) continue;
      m.status_counts.emplace_back(std::atoi(std::string(key).c_str()), count);
    }
  std::sort(m.status_counts.begin(), m.status_counts.end());
  m.cold_starts = IntegerAt(row, "cold_starts");
  simdjson::dom::element latency;
  if (!row["latency_ms"].get(latency)) {
    m.latency_count = IntegerAt(latency, "count");
    m.p50_ms = NumberAt(latency, "p50");
    m.p90_ms = NumberAt(latency, "p90");
    m.p99_ms = NumberAt(latency, "p99");
  }
  m.mean_batch_rows = NumberAt(row, "mean_batch_rows");
  m.instances_stopped = IntegerAt(row, "instances_stopped");
  m.usage.requests = IntegerAt(row, "billed_requests");
  simdjson::dom::element part;
  if (!row["gb_s"].get(part)) {
    m.usage.on_demand_duration_gb_s = NumberAt(part, "on_demand_duration");
    m.usage.init_gb_s = NumberAt(part, "init");
    m.usage.provisioned_capacity_gb_s = NumberAt(part, "provisioned_capacity");
    m.usage.provisioned_duration_gb_s = NumberAt(part, "provisioned_duration");
    m.usage.idle_warm_gb_s = NumberAt(part, "idle_warm");
  }
  if (!row["usd"].get(part)) {
    m.bill.request_usd = NumberAt(part, "requests");
    m.bill.on_demand_duration_usd = NumberAt(part, "on_demand_duration");
    m.bill.init_usd = NumberAt(part, "init");
    m.bill.provisioned_capacity_usd = NumberAt(part, "provisioned_capacity");
    m.bill.provisioned_duration_usd = NumberAt(part, "provisioned_duration");
    m.bill.total_usd = NumberAt(part, "total");
  }
  m.usd_per_million_ok = NumberAt(row, "usd_per_million_ok");
  if (!row["held_gb_s"].get(part)) {
    m.usage.held.busy_gb_s = NumberAt(part, "busy");
    m.usage.held.idle_warm_gb_s = NumberAt(part, "idle_warm");
    m.usage.held.provisioned_gb_s = NumberAt(part, "provisioned");
    m.usage.held.template_gb_s = NumberAt(part, "template");
    m.usage.held.standby_gb_s = NumberAt(part, "standby");
    m.usage.held.zygote_gb_s = NumberAt(part, "zygote");
  }
  m.bill.host_usd = NumberAt(row, "host_usd");
  m.host_usd_per_million_ok = NumberAt(row, "host_usd_per_million_ok");
  return m;
}

}  // namespace

StatusOr<UsageReport> ParseReportJson(std::string_view json, const std::string& source) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(simdjson::padded_string(json)).get(doc) || !doc.is_object())
    return InvalidArgument(source + ": not a usage report (a JSON object)");
  UsageReport report;
  simdjson::dom::element prices;
  if (!doc["prices"].get(prices)) {
    if (auto sheet = ParsePriceSheet(simdjson::to_string(prices), source + " prices"); sheet.ok()) report.prices = *sheet;
  }
  report.granularity_us = static_cast<Micros>(std::llround(NumberAt(doc, "granularity_ms") * kMicrosPerMilli));
  simdjson::dom::array models;
  if (!doc["models"].get_array().get(models)) {
    report.records = IntegerAt(doc, "records");
    report.from_wall_us = IntegerAt(doc, "from_wall_us");
    report.to_wall_us = IntegerAt(doc, "to_wall_us");
    for (simdjson::dom::element row : models) report.models.push_back(RowOf(row));
    simdjson::dom::element total;
    if (doc["total"].get(total)) return InvalidArgument(source + ": usage report without 'total'");
    report.total = RowOf(total);
  } else if (doc["invocations"].is_int64() || doc["invocations"].is_double()) {
    report.total = RowOf(doc);  // one model's row
    report.models.push_back(report.total);
    report.total.model = "";
    report.records = -1;
  } else {
    return InvalidArgument(source + ": not a usage report (no 'models' or 'invocations')");
  }
  return report;
}

std::string WallTimeText(Micros wall_us) {
  const Micros seconds = wall_us >= 0 ? wall_us / kMicrosPerSecond : -((-wall_us + kMicrosPerSecond - 1) / kMicrosPerSecond);
  const int64_t days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
  const int64_t in_day = seconds - days * 86400;
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<long long>(y), m, d,
                static_cast<long long>(in_day / 3600), static_cast<long long>(in_day / 60 % 60),
                static_cast<long long>(in_day % 60));
  return buf;
}

std::string ReportTable(const UsageReport& report) {
  std::string out = "prices " + report.prices.name + " (" + GranularityMs(report.granularity_us) +
                    " ms granularity, init " + (report.prices.bill_init ? "billed" : "not billed") + ")" +
                    (report.records >= 0 ? "; " + std::to_string(report.records) + " records" : "");
  // Before 2001 a "wall" time is a virtual one whose origin was not kept: shown from 0, never as 1970.
  constexpr Micros kEarliestWallUs = Micros{978307200} * kMicrosPerSecond;
  if (report.records > 0 && report.virtual_origin_wall_us) {
    out += ", simulated " + OffsetText(report.from_wall_us - *report.virtual_origin_wall_us) + " to " +
           OffsetText(report.to_wall_us - *report.virtual_origin_wall_us);
  } else if (report.records > 0 && report.from_wall_us < kEarliestWallUs) {
    out += ", " + OffsetText(report.from_wall_us) + " to " + OffsetText(report.to_wall_us) + " (trace time)";
  } else if (report.records > 0) {
    out += ", " + WallTimeText(report.from_wall_us) + " to " + WallTimeText(report.to_wall_us);
  }
  out += "\n";
  if (report.prices.granularity_us != report.granularity_us)
    out += "NOTE: durations were rounded to " + GranularityMs(report.granularity_us) + " ms, not the sheet's " +
           GranularityMs(report.prices.granularity_us) + " ms\n";

  size_t model_width = 5;
  for (const ModelUsage& row : report.models) model_width = std::max(model_width, row.model.size());
  TextTable billed({{"model", model_width}, {"invocations", 11}, {"2xx", 8}, {"cold", 6}, {"p50", 8}, {"p90", 8},
                    {"p99", 8}, {"batch", 6}, {"on-demand", 10}, {"init", 9}, {"provisioned", 11}, {"idle-warm", 10},
                    {"$", 12}, {"$/1M 2xx", 10}});
  billed.Group(4, 6, "latency of 2xx, ms");
  billed.Group(8, 11, "GB-s");
  out += billed.Header();
  auto add_row = [&](const ModelUsage& row, const std::string& name) {
    const policy::UsageTotals& u = row.usage;
    out += billed.Line({name, std::to_string(row.invocations), std::to_string(row.ok), std::to_string(row.cold_starts),
                        Sig(row.p50_ms), Sig(row.p90_ms), Sig(row.p99_ms), Sig(row.mean_batch_rows),
                        Sig(u.on_demand_duration_gb_s), Sig(u.init_gb_s),
                        Sig(u.provisioned_capacity_gb_s + u.provisioned_duration_gb_s), Sig(u.idle_warm_gb_s),
                        Sig(row.bill.total_usd), Sig(row.usd_per_million_ok)});
  };
  for (const ModelUsage& row : report.models) add_row(row, row.model);
  add_row(report.total, "total");
  const policy::Bill& b = report.total.bill;
  out += "total $: requests " + Sig(b.request_usd) + " (" + std::to_string(report.total.usage.requests) +
         ")  on-demand duration " + Sig(b.on_demand_duration_usd) + "  init " + Sig(b.init_usd) +
         "  provisioned capacity " + Sig(b.provisioned_capacity_usd) + "  provisioned duration " +
         Sig(b.provisioned_duration_usd) + "  = " + Sig(b.total_usd) + "\n";
  out += "(idle-warm GB-s: on-demand instances kept alive without work; not billed by this price sheet)\n";

  // Memory held and what the host would cost for it: a second bill, beside the first.
  out += "\n";
  TextTable held({{"model", model_width}, {"busy", 10}, {"idle-warm", 10}, {"provisioned", 11}, {"template", 10},
                  {"standby", 10}, {"zygote", 10}, {"total", 11}, {"host $", 12}, {"host $/1M 2xx", 13}});
  held.Group(1, 7, "memory held, GB-s");
  out += held.Header();
  auto add_held = [&](const ModelUsage& row, const std::string& name) {
    const policy::HeldMemory& h = row.usage.held;
    out += held.Line({name, Sig(h.busy_gb_s), Sig(h.idle_warm_gb_s), Sig(h.provisioned_gb_s),
                      Sig(h.template_gb_s), Sig(h.standby_gb_s), Sig(h.zygote_gb_s),
                      Sig(h.total_gb_s()), Sig(row.bill.host_usd), Sig(row.host_usd_per_million_ok)});
  };
  for (const ModelUsage& row : report.models) add_held(row, row.model);
  add_held(report.total, "total");
  const double held_gb_s = report.total.usage.held.total_gb_s();
  out += "host $: " + Sig(held_gb_s) + " GB-s held = " + Sig(held_gb_s / 3600) + " GB-hours x $" +
         Num(report.prices.host_usd_per_gb_hour) + " per GB-hour = " + Sig(b.host_usd) +
         " (the host's cost of the memory held; not in total $)\n";
  return out;
}

std::string CompareReportsTable(const UsageReport& simulated, const UsageReport& replayed) {
  std::vector<std::string> names;
  for (const UsageReport* report : {&simulated, &replayed})
    for (const ModelUsage& row : report->models)
      if (std::find(names.begin(), names.end(), row.model) == names.end()) names.push_back(row.model);
  auto find = [](const UsageReport& report, const std::string& name) -> const ModelUsage* {
    for (const ModelUsage& row : report.models)
      if (row.model == name) return &row;
    return nullptr;
  };
  size_t model_width = 5;
  for (const std::string& name : names) model_width = std::max(model_width, name.size());
  TextTable table({{"model", model_width}, {"", 16}, {"simulated", 11}, {"replayed", 11}, {"difference", 11}, {"", 9}});
  std::string out = table.Header();
  auto add = [&](const std::string& name, const ModelUsage* sim, const ModelUsage* live) {
    const ModelUsage none;
    const ModelUsage& a = sim ? *sim : none;
    const ModelUsage& b = live ? *live : none;
    auto billed = [](const policy::UsageTotals& u) {
      return u.on_demand_duration_gb_s + u.init_gb_s + u.provisioned_capacity_gb_s + u.provisioned_duration_gb_s;
    };
    struct Metric {
      const char* what;
      double simulated, replayed;
      bool count;  // printed as a whole number
    };
    const Metric metrics[] = {
        {"invocations", static_cast<double>(a.invocations), static_cast<double>(b.invocations), true},
        {"2xx", static_cast<double>(a.ok), static_cast<double>(b.ok), true},
        {"cold starts", static_cast<double>(a.cold_starts), static_cast<double>(b.cold_starts), true},
        {"p50 ms", a.p50_ms, b.p50_ms, false},
        {"p99 ms", a.p99_ms, b.p99_ms, false},
        {"billed GB-s", billed(a.usage), billed(b.usage), false},
        {"$", a.bill.total_usd, b.bill.total_usd, false},
        {"held GB-s", a.usage.held.total_gb_s(), b.usage.held.total_gb_s(), false},
    };
    bool first = true;
    for (const Metric& m : metrics) {
      auto text = [&m](double value) { return m.count ? std::to_string(std::llround(value)) : Sig(value); };
      const double x = m.simulated, y = m.replayed;
      const std::string sign = y >= x ? "+" : "";
      std::string difference = "-", percent;
      if (sim && live) {
        difference = sign + text(y - x);
        if (x != 0) percent = sign + SignificantText(100 * (y - x) / x, 2) + " %";
      }
      std::string line = table.Line({first ? name : "", m.what, sim ? text(x) : "-", live ? text(y) : "-", difference, percent});
      line.erase(line.find_last_not_of(" \n") + 1);
      out += line + "\n";
      first = false;
    }
  };
  for (const std::string& name : names) add(name, find(simulated, name), find(replayed, name));
  if (names.size() != 1) add("total", &simulated.total, &replayed.total);
  return out;
}

RecentUsage::RecentUsage(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

void RecentUsage::Add(UsageRecord record) {
  if (records_.size() >= capacity_) {
    records_.pop_front();
    ++dropped_;
  }
  records_.push_back(std::move(record));
}

std::vector<UsageRecord> RecentUsage::Since(Micros since_wall_us) const {
  std::vector<UsageRecord> out;
  for (const UsageRecord& record : records_)
    if (auto selected = SelectSince(record, since_wall_us)) out.push_back(std::move(*selected));
  return out;
}

}  // namespace thaw::metering
