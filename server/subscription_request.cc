#include "server/subscription_request.h"

#include "server/dimension_filters.h"
#include "server/snapshot_hub.h"

namespace rta::server {

static_assert(kMaxHistorySeconds == MetricHistory::kMaxSeconds,
              "a subscriber may ask for the whole history the hub keeps, no more");

std::string CheckSubscriptionRequest(const analytics::SubscriptionRequest& request,
                                     WindowMask default_windows, MetricFilter* filter,
                                     std::vector<agg::SegmentCondition>* conditions) {
  MetricFilter built;
  if (grpc::Status status =
          MetricFilter::Build(request.metric_types(), request.windows(), default_windows, &built);
      !status.ok()) {
    return status.error_message();
  }
  if (request.history_seconds() > kMaxHistorySeconds) {
    return "history_seconds: at most " + std::to_string(kMaxHistorySeconds) + ", got " +
           std::to_string(request.history_seconds());
  }
  if (request.dashboard_id().size() > kMaxDashboardIdBytes) {
    return "dashboard_id: at most " + std::to_string(kMaxDashboardIdBytes) + " bytes";
  }
  std::vector<agg::SegmentCondition> parsed;
  if (std::string error =
          ParseDimensionFilters(request.filters(), "live segments compare", &parsed);
      !error.empty()) {
    return error;
  }
  *filter = std::move(built);
  if (conditions != nullptr) *conditions = std::move(parsed);
  return "";
}

}  // namespace rta::server
