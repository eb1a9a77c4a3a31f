#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "analytics.pb.h"
#include "server/aggregator/live_segment.h"
#include "server/metric_filter.h"

namespace rta::server {

// Limits on what a subscriber may ask for.
inline constexpr uint32_t kMaxHistorySeconds = 3600;  // the history the hub keeps
inline constexpr size_t kMaxDashboardIdBytes = 256;

// Checks a parsed SubscriptionRequest the way SubscribeMetrics / SubscribeMetricBatches do
// before a subscriber is registered: known metric names and windows (MetricFilter::Build; an
// empty window list means `default_windows`),
// history_seconds <= kMaxHistorySeconds, dashboard_id <= kMaxDashboardIdBytes, and the live
// segment's `filters` (ParseDimensionFilters). Returns "" and sets *filter (and *conditions,
// when given) when the request is acceptable, else the message for an INVALID_ARGUMENT status
// (and leaves them alone). No gRPC calls: the fuzz target runs exactly this code.
std::string CheckSubscriptionRequest(const analytics::SubscriptionRequest& request,
                                     WindowMask default_windows, MetricFilter* filter,
                                     std::vector<agg::SegmentCondition>* conditions = nullptr);

}  // namespace rta::server
