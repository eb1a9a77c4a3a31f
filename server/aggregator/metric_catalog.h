#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "analytics.pb.h"

namespace rta::agg {

// Every metric a snapshot carries, in catalog order (the order of Aggregator::MetricNames() and of
// the series in a snapshot). The names are public API: dashboards subscribe by them.
enum class Metric : uint8_t {
  kEventsTotal,
  kPageViews,
  kConversions,
  kRevenue,
  kEventsPerSecond,
  kEventsPerSecond10s,
  kUniqueVisitors,
  kSessions,
  kActiveSessions,
  kBounceRate,
  kAvgSessionDurationSeconds,
  kConversionRate,
  kPageLoadMsP50,
  kPageLoadMsP95,
  kPageLoadMsP99,
  kTopPages,
  kTopReferrers,
  kTopCampaigns,
  kEventsByCountry,
  kEventsByDevice,
  kRageClicks,
  kSuspectedBots,
  kCartAbandonments,
};

inline constexpr size_t kMetricCount = 23;

inline constexpr std::array<std::string_view, kMetricCount> kMetricNames = {
    "events_total",
    "page_views",
    "conversions",
    "revenue",
    "events_per_second",
    "events_per_second_10s",
    "unique_visitors",
    "sessions",
    "active_sessions",
    "bounce_rate",
    "avg_session_duration_seconds",
    "conversion_rate",
    "page_load_ms_p50",
    "page_load_ms_p95",
    "page_load_ms_p99",
    "top_pages",
    "top_referrers",
    "top_campaigns",
    "events_by_country",
    "events_by_device",
    "rage_clicks",
    "suspected_bots",
    "cart_abandonments",
};

inline constexpr std::string_view MetricName(Metric metric) {
  return kMetricNames[static_cast<size_t>(metric)];
}

// The windows every metric is reported in, in snapshot order.
inline constexpr std::array<analytics::Window, 4> kWindows = {
    analytics::WINDOW_1M, analytics::WINDOW_5M, analytics::WINDOW_1H, analytics::WINDOW_TOTAL};
inline constexpr size_t kWindowCount = kWindows.size();

// The ranked (top-k) kinds and the dimensions, in the order their metrics appear.
enum class Ranked : uint8_t { kPages, kReferrers, kCampaigns };
inline constexpr size_t kRankedCount = 3;
enum class Dimension : uint8_t { kCountry, kDevice };
inline constexpr size_t kDimensionCount = 2;
inline constexpr std::array<std::string_view, kDimensionCount> kDimensionLabels = {"country",
                                                                                   "device"};
inline constexpr std::string_view kOtherValue = "__other__";
inline constexpr std::string_view kUnknownValue = "unknown";

// Session-analysis signals, in SessionSignal order.
inline constexpr size_t kSignalCount = 3;

}  // namespace rta::agg
