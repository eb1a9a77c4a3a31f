#include "server/auth/access_policy.h"

#include <array>

namespace rta::auth {
namespace {

constexpr std::string_view kAnalytics = "analytics.AnalyticsService";

constexpr std::string_view kUsers = "userservice.UserService";
constexpr std::string_view kTokens = "userservice.TokenService";

constexpr std::array<MethodAccess, 12> kTable = {{
    {kAnalytics, "ReportEvent", Role::kReporter},
    {kAnalytics, "ReportEventBatches", Role::kReporter},
    {kAnalytics, "PublishEvents", Role::kReporter},
    {kAnalytics, "GetMetrics", Role::kViewer},
    {kAnalytics, "SubscribeMetrics", Role::kViewer},
    {kAnalytics, "SubscribeMetricBatches", Role::kViewer},
    {kAnalytics, "AnalyzeSession", Role::kAnalyst},
    {kUsers, "GetUser", Role::kAdmin},
    {kUsers, "ListUsers", Role::kAdmin},
    {kUsers, "UpdateUser", Role::kAdmin},
    {kUsers, "ChatSupport", Role::kAnalyst},
    {kTokens, "ListTokens", Role::kAdmin},
}};

}  // namespace

std::span<const MethodAccess> AccessTable() { return kTable; }

std::optional<Role> RequiredRole(std::string_view method) {
  for (const MethodAccess& entry : kTable) {
    if (entry.method == method) return entry.required;
  }
  return std::nullopt;
}

}  // namespace rta::auth
