#include "server/history_query.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "server/dimension_filters.h"
#include "server/storage/rollup_accumulator.h"

namespace rta::server {
namespace {

using storage::Resolution;
using storage::RollupCell;

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kMaxPoints = 10'000;
constexpr uint32_t kMaxBreakdownLimit = 1000;
constexpr uint32_t kDefaultBreakdownLimit = 10;

grpc::Status Invalid(std::string message) {
  return {grpc::StatusCode::INVALID_ARGUMENT, std::move(message)};
}

std::string MetricList() {
  std::string out;
  for (std::string_view name : kRangeMetrics) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

int MetricIndex(std::string_view name) {
  for (size_t i = 0; i < kRangeMetrics.size(); ++i) {
    if (kRangeMetrics[i] == name) return static_cast<int>(i);
  }
  return -1;
}

double Ratio(double numerator, uint64_t denominator) {
  return denominator == 0 ? 0.0 : numerator / static_cast<double>(denominator);
}

// unique_visitors and the page-load quantiles come from the sketches; the rest from counters.
bool NeedsSketches(size_t metric) { return metric == 4 || metric >= 8; }

double MetricValue(size_t metric, const RollupCell& cell) {
  const storage::RollupCounters& c = cell.counters;
  switch (metric) {
    case 0:
      return static_cast<double>(c.events);
    case 1:
      return static_cast<double>(c.page_views);
    case 2:
      return static_cast<double>(c.conversions);
    case 3:
      return c.revenue();
    case 4:
      return cell.UniqueVisitors();
    case 5:
      return static_cast<double>(c.sessions);
    case 6:
      return Ratio(static_cast<double>(c.bounces), c.sessions);
    case 7:
      return Ratio(static_cast<double>(c.conversions), c.sessions);
    case 8:
      return cell.PageLoadQuantile(0.50);
    case 9:
      return cell.PageLoadQuantile(0.95);
    case 10:
      return cell.PageLoadQuantile(0.99);
  }
  return 0.0;
}

int64_t FloorTo(int64_t value, int64_t unit) {
  return value / unit * unit - ((value % unit < 0) ? unit : 0);
}

// [from, to) of a named range at `now_ms`.
void ResolveNamed(analytics::NamedRange range, int64_t now_ms, int64_t* from, int64_t* to) {
  const int64_t today = FloorTo(now_ms, kDayMs);
  *to = now_ms;
  switch (range) {
    case analytics::RANGE_LAST_1H:
      *from = now_ms - 3'600'000;
      break;
    case analytics::RANGE_LAST_24H:
      *from = now_ms - kDayMs;
      break;
    case analytics::RANGE_LAST_7D:
      *from = now_ms - 7 * kDayMs;
      break;
    case analytics::RANGE_LAST_30D:
      *from = now_ms - 30 * kDayMs;
      break;
    case analytics::RANGE_TODAY:
      *from = today;
      break;
    case analytics::RANGE_YESTERDAY:
      *from = today - kDayMs;
      *to = today;
      break;
    case analytics::RANGE_THIS_MONTH: {
      using namespace std::chrono;
      const year_month_day day{sys_days{days{today / kDayMs}}};
      const sys_days first{day.year() / day.month() / 1};
      *from = static_cast<int64_t>(first.time_since_epoch().count()) * kDayMs;
      break;
    }
    default:
      break;
  }
}

Resolution ResolutionOf(int64_t step_seconds) {
  if (step_seconds == 60) return Resolution::kMinute;
  if (step_seconds == 3600) return Resolution::kHour;
  return Resolution::kDay;
}

// MetricValue, or NaN for a sketch's KPI when the cell has no sketches (a pair cell, the
// counters-only __other__ row).
double MetricValueOrNaN(size_t metric, const RollupCell& cell, bool has_sketches) {
  return NeedsSketches(metric) && !has_sketches ? std::numeric_limits<double>::quiet_NaN()
                                                : MetricValue(metric, cell);
}

// The cells of `segment` in [from_s, to_s): the series (one point per bucket) and their merge.
// `has_sketches`: the segment's cells keep sketches (all but pair cells).
grpc::Status ScanSeries(const storage::RollupStore& store, Resolution resolution,
                        const std::string& segment, int64_t from_s, int64_t to_s,
                        const std::vector<size_t>& metrics, bool has_sketches,
                        analytics::RangeResult* series_out, RollupCell* total) {
  const storage::CellParts parts =
      has_sketches && std::any_of(metrics.begin(), metrics.end(), NeedsSketches)
          ? storage::CellParts::kAll
          : storage::CellParts::kCounters;
  std::string error;
  const bool ok = store.Scan(
      resolution, segment, from_s, to_s,
      [&](int64_t bucket_s, const RollupCell& cell) {
        if (series_out != nullptr) {
          analytics::RangePoint* point = series_out->add_series();
          point->set_start_ms(bucket_s * 1000);
          for (size_t metric : metrics) {
            point->add_values(MetricValueOrNaN(metric, cell, has_sketches));
          }
        }
        total->Merge(cell);
      },
      &error, parts);
  if (!ok) return {grpc::StatusCode::INTERNAL, "reading the history: " + error};
  return grpc::Status::OK;
}

}  // namespace

grpc::Status AnswerRangeQuery(const analytics::RangeQuery& query, const storage::RollupStore& store,
                              int64_t now_ms, analytics::RangeResult* out) {
  // Metrics.
  std::vector<size_t> metrics;
  for (int i = 0; i < query.metrics_size(); ++i) {
    const int index = MetricIndex(query.metrics(i));
    if (index < 0) {
      return Invalid("metrics[" + std::to_string(i) + "]: unknown metric '" + query.metrics(i) +
                     "' (a range query answers " + MetricList() + ")");
    }
    metrics.push_back(static_cast<size_t>(index));
  }
  if (metrics.empty()) {
    for (size_t i = 0; i < kRangeMetrics.size(); ++i) metrics.push_back(i);
  }

  // The range.
  int64_t from_ms = query.from_ms();
  int64_t to_ms = query.to_ms() == 0 ? now_ms : query.to_ms();
  if (query.range() != analytics::RANGE_UNSPECIFIED) {
    if (!analytics::NamedRange_IsValid(query.range())) {
      return Invalid("range: unknown named range " + std::to_string(query.range()));
    }
    if (query.from_ms() != 0 || query.to_ms() != 0) {
      return Invalid("range: give a named range or from_ms/to_ms, not both");
    }
    ResolveNamed(query.range(), now_ms, &from_ms, &to_ms);
  }
  if (from_ms < 0 || to_ms < 0) return Invalid("from_ms: must not be negative");
  if (from_ms >= to_ms) {
    return Invalid("from_ms: must be before to_ms, got [" + std::to_string(from_ms) + ", " +
                   std::to_string(to_ms) + ")");
  }
  const int64_t span_ms = to_ms - from_ms;

  // Filters and breakdown.
  std::vector<agg::SegmentCondition> conditions;
  if (std::string error = ParseDimensionFilters(query.filters(), "the history keeps", &conditions);
      !error.empty()) {
    return Invalid(std::move(error));
  }
  if (conditions.size() > 2) {
    return {grpc::StatusCode::UNIMPLEMENTED,
            "filters: " + std::to_string(conditions.size()) +
                " conditions; the history keeps segments of at most two (every pair of "
                "dimensions, per day)"};
  }
  std::string segment;
  if (conditions.size() == 1)
    segment = storage::SegmentKey(conditions[0].dimension, conditions[0].value);
  if (conditions.size() == 2) {
    segment = storage::PairSegmentKey(conditions[0].dimension, conditions[0].value,
                                      conditions[1].dimension, conditions[1].value);
  }
  int breakdown = -1;
  size_t rank_metric = 1;  // page_views
  if (!query.breakdown().empty()) {
    breakdown = storage::RollupDimensionIndex(query.breakdown());
    if (breakdown < 0) {
      return Invalid("breakdown: unknown dimension '" + query.breakdown() + "' (one of " +
                     DimensionList() + ")");
    }
    for (const auto& [dimension, value] : conditions) {
      if (dimension == static_cast<size_t>(breakdown)) {
        return Invalid("breakdown: '" + query.breakdown() +
                       "' is also a filter; break down by another dimension");
      }
    }
    if (conditions.size() > 1) {
      return {grpc::StatusCode::UNIMPLEMENTED,
              "breakdown: a breakdown within two conditions is not stored (a cell keeps at most "
              "two dimensions); drop a filter"};
    }
    if (query.breakdown() == "event_type") rank_metric = 0;  // only page views have a page
    if (!query.breakdown_by().empty()) {
      const int index = MetricIndex(query.breakdown_by());
      if (index < 0) {
        return Invalid("breakdown_by: unknown metric '" + query.breakdown_by() + "' (one of " +
                       MetricList() + ")");
      }
      rank_metric = static_cast<size_t>(index);
    }
    if (!conditions.empty() && NeedsSketches(rank_metric)) {
      return Invalid("breakdown_by: '" + query.breakdown_by() +
                     "' is not kept for a breakdown within a filter (its cells keep the "
                     "additive KPIs); rank by one of those");
    }
    if (query.breakdown_limit() > kMaxBreakdownLimit) {
      return Invalid("breakdown_limit: at most " + std::to_string(kMaxBreakdownLimit) + ", got " +
                     std::to_string(query.breakdown_limit()));
    }
  } else if (!query.breakdown_by().empty() || query.breakdown_limit() != 0) {
    return Invalid("breakdown: breakdown_by and breakdown_limit need a breakdown dimension");
  }

  // The step, and with it the resolution. Pair cells (two conditions, or a condition and the
  // breakdown's dimension) are kept per day only.
  const bool segmented = !segment.empty() || breakdown >= 0;
  const bool paired = conditions.size() == 2 || (conditions.size() == 1 && breakdown >= 0);
  int64_t step = query.step_seconds();
  if (step == 0) {
    step = span_ms <= 6 * 3'600'000 ? 60 : span_ms <= 14 * kDayMs ? 3600 : 86'400;
    if (segmented) step = std::max<int64_t>(step, 3600);
    if (paired) step = 86'400;
  } else if (step != 60 && step != 3600 && step != 86'400) {
    return Invalid("step_seconds: must be 0 (automatic), 60, 3600 or 86400, got " +
                   std::to_string(step));
  } else if (step == 60 && segmented) {
    return Invalid(
        "step_seconds: 60 keeps totals only; a filter or a breakdown needs 3600 or "
        "86400");
  } else if (step != 86'400 && paired) {
    return Invalid(
        "step_seconds: two conditions, or a filter with a breakdown, are kept per day; use "
        "86400 (or 0, automatic)");
  }
  const int64_t step_ms = step * 1000;
  const int64_t aligned_from = FloorTo(from_ms, step_ms);
  if ((to_ms - aligned_from) / step_ms > kMaxPoints) {
    return Invalid("step_seconds: " + std::to_string(step) + " gives " +
                   std::to_string((to_ms - aligned_from) / step_ms) +
                   " points over the range, at most " + std::to_string(kMaxPoints) +
                   "; use a longer step");
  }
  const Resolution resolution = ResolutionOf(step);

  for (size_t metric : metrics) out->add_metrics(std::string(kRangeMetrics[metric]));
  out->set_from_ms(aligned_from);
  out->set_to_ms(to_ms);
  out->set_step_seconds(step);
  // Bucket starts in [from_s, to_s): the last, partial step included.
  const int64_t from_s = aligned_from / 1000;
  const int64_t to_s = (to_ms + 999) / 1000;

  const bool series_sketches = conditions.size() < 2;
  RollupCell total;
  grpc::Status status =
      ScanSeries(store, resolution, segment, from_s, to_s, metrics, series_sketches, out, &total);
  if (!status.ok()) return status;
  for (size_t metric : metrics) {
    out->add_totals(MetricValueOrNaN(metric, total, series_sketches));
  }

  if (query.compare_previous()) {
    const int64_t previous_from = aligned_from - (to_ms - aligned_from);
    RollupCell previous;
    status = ScanSeries(store, resolution, segment, previous_from / 1000, from_s, metrics,
                        series_sketches, nullptr, &previous);
    if (!status.ok()) return status;
    out->set_previous_from_ms(previous_from);
    out->set_previous_to_ms(aligned_from);
    for (size_t metric : metrics) {
      out->add_previous_totals(MetricValueOrNaN(metric, previous, series_sketches));
    }
  }

  if (breakdown >= 0) {
    // Ranking needs the counters of every value's cells (a 30-day breakdown by page reads
    // thousands); the sketches are read only for the values listed. __other__ then gets the
    // additive KPIs only (NaN for the rest), unless the ranking itself needed the sketches.
    // Within a filter the rows are pair cells, which keep the additive KPIs only.
    const bool rank_by_sketch = NeedsSketches(rank_metric);
    const bool rows_need_sketches = std::any_of(metrics.begin(), metrics.end(), NeedsSketches);
    const std::string prefix =
        paired ? storage::PairSegmentPrefix(conditions[0].dimension, conditions[0].value,
                                            static_cast<size_t>(breakdown))
               : std::string(storage::kRollupDimensions[static_cast<size_t>(breakdown)]) + "=";
    std::map<std::string, RollupCell, std::less<>> by_value;
    std::string error;
    const bool ok = store.ScanSegments(
        resolution, prefix, from_s, to_s,
        [&](std::string_view key, int64_t, const RollupCell& cell) {
          auto found = by_value.find(key.substr(prefix.size()));
          if (found == by_value.end()) {
            found = by_value.emplace(std::string(key.substr(prefix.size())), RollupCell()).first;
          }
          found->second.Merge(cell);
        },
        &error, rank_by_sketch ? storage::CellParts::kAll : storage::CellParts::kCounters);
    if (!ok) return {grpc::StatusCode::INTERNAL, "reading the history: " + error};
    std::vector<std::pair<double, const std::pair<const std::string, RollupCell>*>> ranked;
    ranked.reserve(by_value.size());
    for (const auto& entry : by_value) {
      ranked.emplace_back(MetricValue(rank_metric, entry.second), &entry);
    }
    // Highest first; ties by value, so the order is stable.
    std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second->first < b.second->first;
    });
    const size_t limit =
        query.breakdown_limit() == 0 ? kDefaultBreakdownLimit : query.breakdown_limit();
    RollupCell rest;
    bool has_rest = false;
    size_t listed = 0;
    for (const auto& [rank_value, entry] : ranked) {
      const auto& [value, cell] = *entry;
      if (listed >= limit || value == storage::kRollupOtherValue) {
        rest.Merge(cell);
        has_rest = true;
        continue;
      }
      ++listed;
      const RollupCell* row_cell = &cell;
      RollupCell full;
      if (rows_need_sketches && !rank_by_sketch && !paired) {
        status = ScanSeries(store, resolution, prefix + value, from_s, to_s, metrics, true, nullptr,
                            &full);
        if (!status.ok()) return status;
        row_cell = &full;
      }
      analytics::BreakdownRow* row = out->add_breakdown();
      row->set_value(value);
      for (size_t metric : metrics) row->add_values(MetricValueOrNaN(metric, *row_cell, !paired));
    }
    if (has_rest) {
      analytics::BreakdownRow* row = out->add_breakdown();
      row->set_value(std::string(storage::kRollupOtherValue));
      for (size_t metric : metrics) {
        row->add_values(MetricValueOrNaN(metric, rest, rank_by_sketch));
      }
      if (rows_need_sketches && !rank_by_sketch && !paired) {
        out->add_notes(
            "breakdown: the __other__ row has the additive KPIs only (its visitors and "
            "page-load quantiles are NaN); rank by unique_visitors to get them");
      }
    }
  }

  if (paired && std::any_of(metrics.begin(), metrics.end(), NeedsSketches)) {
    out->add_notes(
        conditions.size() == 2
            ? "filters: a segment of two conditions keeps the additive KPIs only (events, "
              "page views, conversions, revenue, sessions, bounce and conversion rates, "
              "all exact); its unique_visitors and page-load quantiles are NaN"
            : "breakdown: rows within a filter keep the additive KPIs only (exact); "
              "their unique_visitors and page-load quantiles are NaN (the totals have "
              "them)");
  }
  const storage::RollupRetention& retention = store.retention();
  if (now_ms / 1000 - retention.For(resolution) > from_s) {
    out->add_notes("part of the range is older than the " +
                   std::string(storage::ResolutionName(resolution)) + " resolution's retention (" +
                   std::to_string(retention.For(resolution) / 86'400) + " days): it has no data");
  }
  if (std::find(metrics.begin(), metrics.end(), 4) != metrics.end()) {
    // The precision of what was merged: 14 for the whole traffic's hours and days,
    // --history-minute-precision for its minutes, --history-segment-precision for a segment
    // (a range over several is folded to the lowest).
    const int precision = total.visitors().precision();
    char error_text[96];
    std::snprintf(error_text, sizeof error_text, "%.1f%% standard error, precision %d%s",
                  104.0 / std::sqrt(static_cast<double>(uint64_t{1} << precision)), precision,
                  conditions.empty() && !query.breakdown().empty()
                      ? "; a breakdown's rows are segments"
                      : "");
    out->add_notes("unique_visitors: a HyperLogLog estimate (" + std::string(error_text) +
                   "), over the range as one set (a visitor on several days counts once)");
  }
  if (std::any_of(metrics.begin(), metrics.end(), [](size_t m) { return m >= 8; })) {
    out->add_notes("page_load_ms quantiles: from a sketch, within 0.5% of the true value");
  }
  return grpc::Status::OK;
}

}  // namespace rta::server
