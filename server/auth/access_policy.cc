#include "server/auth/access_policy.h"

#include <array>

namespace rta::auth {
namespace {

constexpr std::string_view kAnalytics = "analytics.AnalyticsService";

constexpr std::string_view kUsers = "userservice.UserService";
constexpr std::string_view kTokens = "userservice.TokenService";
constexpr std::string_view kReflection = "grpc.reflection.v1alpha.ServerReflection";

constexpr std::array<MethodAccess, 14> kTable = {{
    {kAnalytics, "ReportEvent", Role::kReporter},
    {kAnalytics, "ReportEventBatches", Role::kReporter},
    {kAnalytics, "PublishEvents", Role::kReporter},
    {kAnalytics, "GetMetrics", Role::kViewer},
    {kAnalytics, "QueryMetrics", Role::kViewer},
    {kAnalytics, "SubscribeMetrics", Role::kViewer},
    {kAnalytics, "SubscribeMetricBatches", Role::kViewer},
    {kAnalytics, "AnalyzeSession", Role::kAnalyst},
    {kUsers, "GetUser", Role::kAdmin},
    {kUsers, "ListUsers", Role::kAdmin},
    {kUsers, "UpdateUser", Role::kAdmin},
    {kUsers, "ChatSupport", Role::kAnalyst},
    {kTokens, "ListTokens", Role::kAdmin},
    // Beyond loopback only (reflection_service.h): on loopback it needs no token.
    {kReflection, "ServerReflectionInfo", Role::kReporter, /*any_role=*/true},
}};

}  // namespace

std::span<const MethodAccess> AccessTable() { return kTable; }

const MethodAccess* FindMethod(std::string_view method) {
  for (const MethodAccess& entry : kTable) {
    if (entry.method == method) return &entry;
  }
  return nullptr;
}

std::string RequirementText(const MethodAccess& entry) {
  return entry.any_role ? "any role" : RoleName(entry.required);
}

}  // namespace rta::auth
