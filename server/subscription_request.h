#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "analytics.pb.h"
#include "server/metric_filter.h"

namespace rta::server {

// Limits on what a subscriber may ask for.
inline constexpr uint32_t kMaxHistorySeconds = 3600;  // the history the hub keeps
inline constexpr size_t kMaxDashboardIdBytes = 256;

// Checks a parsed SubscriptionRequest the way SubscribeMetrics / SubscribeMetricBatches do
// before a subscriber is registered: known metric names and windows (MetricFilter::Build; an
// empty window list means `default_windows`),
// history_seconds <= kMaxHistorySeconds, dashboard_id <= kMaxDashboardIdBytes. Returns "" and
// sets *filter when the request is acceptable, else the message for an INVALID_ARGUMENT status
// (and leaves *filter alone). No gRPC calls: the fuzz target runs exactly this code.
std::string CheckSubscriptionRequest(const analytics::SubscriptionRequest& request,
                                     WindowMask default_windows, MetricFilter* filter);

}  // namespace rta::server
