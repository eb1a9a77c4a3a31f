#include "server/aggregator/snapshot_builder.h"

#include <string>

#include "server/aggregator/metric_catalog.h"

namespace rta::agg::detail {
namespace {

double Ratio(double numerator, uint64_t denominator) {
  return denominator == 0 ? 0.0 : numerator / static_cast<double>(denominator);
}

// The value of a scalar (non-dimension) metric in one window.
double ScalarValue(Metric metric, const TickMetrics& m, const WindowResult& w) {
  const SessionTotals& s = w.sessions;
  switch (metric) {
    case Metric::kEventsTotal:
      return static_cast<double>(w.counters.events);
    case Metric::kPageViews:
      return static_cast<double>(w.counters.page_views);
    case Metric::kConversions:
      return static_cast<double>(w.counters.conversions);
    case Metric::kRevenue:
      return w.counters.revenue;
    case Metric::kEventsPerSecond:
      return m.events_per_second;
    case Metric::kEventsPerSecond10s:
      return m.events_per_second_10s;
    case Metric::kUniqueVisitors:
      return w.unique_visitors;
    case Metric::kSessions:
      return static_cast<double>(s.sessions);
    case Metric::kActiveSessions:
      return static_cast<double>(m.active_sessions);
    case Metric::kBounceRate:
      return Ratio(static_cast<double>(s.bounced), s.sessions);
    case Metric::kAvgSessionDurationSeconds:
      return Ratio(static_cast<double>(s.duration_ms) / 1000.0, s.sessions);
    case Metric::kConversionRate:
      return Ratio(static_cast<double>(w.counters.conversions), s.sessions);
    case Metric::kPageLoadMsP50:
      return w.page_load_p50;
    case Metric::kPageLoadMsP95:
      return w.page_load_p95;
    case Metric::kPageLoadMsP99:
      return w.page_load_p99;
    case Metric::kTopPages:
      return static_cast<double>(w.counters.ranked_totals[0]);
    case Metric::kTopReferrers:
      return static_cast<double>(w.counters.ranked_totals[1]);
    case Metric::kTopCampaigns:
      return static_cast<double>(w.counters.ranked_totals[2]);
    case Metric::kRageClicks:
      return static_cast<double>(w.counters.signals[0]);
    case Metric::kSuspectedBots:
      return static_cast<double>(w.counters.signals[1]);
    case Metric::kCartAbandonments:
      return static_cast<double>(w.counters.signals[2]);
    case Metric::kEventsByCountry:
    case Metric::kEventsByDevice:
      break;
  }
  return 0.0;
}

int RankedIndex(Metric metric) {
  switch (metric) {
    case Metric::kTopPages:
      return 0;
    case Metric::kTopReferrers:
      return 1;
    case Metric::kTopCampaigns:
      return 2;
    default:
      return -1;
  }
}

bool SameSeries(const MetricPoint& a, const MetricPoint& b) {
  return a.window == b.window && a.name == b.name && a.label_key == b.label_key &&
         a.label_value == b.label_value;
}

}  // namespace

std::shared_ptr<const Snapshot> BuildSnapshot(const TickMetrics& metrics, uint64_t epoch,
                                              uint64_t sequence, int64_t time_ms,
                                              const Snapshot* previous) {
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->epoch = epoch;
  snapshot->sequence = sequence;
  snapshot->time_ms = time_ms;
  std::vector<MetricPoint>& points = snapshot->points;
  size_t dimension_series = 0;
  for (const auto* values : metrics.dimension_values) dimension_series += values->size();
  points.reserve((kMetricCount - kDimensionCount + dimension_series) * kWindowCount);

  for (size_t i = 0; i < kMetricCount; ++i) {
    const auto metric = static_cast<Metric>(i);
    const std::string name(kMetricNames[i]);
    if (metric == Metric::kEventsByCountry || metric == Metric::kEventsByDevice) {
      const size_t d = metric == Metric::kEventsByCountry ? 0 : 1;
      const std::vector<std::string>& values = *metrics.dimension_values[d];
      for (size_t v = 0; v < values.size(); ++v) {
        for (size_t w = 0; w < kWindowCount; ++w) {
          MetricPoint& point = points.emplace_back();
          point.name = name;
          point.window = kWindows[w];
          point.label_key = std::string(kDimensionLabels[d]);
          point.label_value = values[v];
          const auto& counts = metrics.windows[w].dimensions[d];
          point.value = v < counts.size() ? static_cast<double>(counts[v]) : 0.0;
        }
      }
      continue;
    }
    const int ranked = RankedIndex(metric);
    for (size_t w = 0; w < kWindowCount; ++w) {
      MetricPoint& point = points.emplace_back();
      point.name = name;
      point.window = kWindows[w];
      point.value = ScalarValue(metric, metrics, metrics.windows[w]);
      if (ranked >= 0) point.top = metrics.windows[w].top[static_cast<size_t>(ranked)];
    }
  }

  // Series only ever get inserted, so one forward cursor over the previous snapshot finds each
  // surviving series.
  size_t cursor = 0;
  const size_t previous_size = previous == nullptr ? 0 : previous->points.size();
  for (MetricPoint& point : points) {
    point.changed_sequence = sequence;
    if (cursor < previous_size && SameSeries(previous->points[cursor], point)) {
      const MetricPoint& before = previous->points[cursor++];
      if (before.value == point.value && before.top == point.top) {
        point.changed_sequence = before.changed_sequence;
      }
    }
  }
  return snapshot;
}

}  // namespace rta::agg::detail
